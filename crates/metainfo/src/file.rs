//! The files of a torrent, laid out as libtorrent lays them out: paths relative to the download
//! directory, offsets in the concatenated v1 byte space, padding files, symlinks, and duplicate
//! names renamed.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use crate::error::Error;
use crate::hash::Sha256Hash;
use crate::path;

/// Largest byte offset in a torrent (all files together): 2^48 - 1.
pub(crate) const MAX_FILE_OFFSET: u64 = (1 << 48) - 1;

/// BEP 47 file attributes (`attr`: `p` padding, `x` executable, `h` hidden, `l` symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FileAttributes {
    /// A padding file: zeros that align the next file to a piece boundary. Not written to disk.
    pub padding: bool,
    /// The file should be marked executable.
    pub executable: bool,
    /// The file should be hidden.
    pub hidden: bool,
    /// The entry is a symbolic link (see [`FileEntry::symlink_target`]).
    pub symlink: bool,
}

impl FileAttributes {
    /// Reads an `attr` string; unknown letters are ignored.
    pub fn from_attr(attr: &[u8]) -> Self {
        let mut a = FileAttributes::default();
        for &c in attr {
            match c {
                b'p' => a.padding = true,
                b'x' => a.executable = true,
                b'h' => a.hidden = true,
                b'l' => a.symlink = true,
                _ => {}
            }
        }
        a
    }

    /// The `attr` string for these attributes (letters in the order `lxhp`; empty if none).
    pub fn to_attr(&self) -> String {
        let mut s = String::new();
        for (on, c) in [
            (self.symlink, 'l'),
            (self.executable, 'x'),
            (self.hidden, 'h'),
            (self.padding, 'p'),
        ] {
            if on {
                s.push(c);
            }
        }
        s
    }
}

/// One file of a torrent: a view into the torrent's [`Files`]. The fields are plain data; the
/// raw path components are read through [`path_component_iter`](Self::path_component_iter).
#[derive(Clone, Copy)]
pub struct FileEntry<'a> {
    /// The sanitised path relative to the download directory, `/`-separated: the name alone for
    /// a single-file torrent, `name/dir/file` for a multi-file one. Exactly libtorrent's
    /// `file_storage::file_path()`, duplicate names renamed (`file.1.txt`). Padding files the
    /// torrent does not name get libtorrent's `.pad/<size>` names.
    pub path: &'a str,
    /// Length in bytes (0 for symlinks).
    pub length: u64,
    /// Offset of the first byte in the torrent's concatenated byte space (libtorrent's
    /// `file_offset`).
    pub offset: u64,
    /// BEP 47 attributes.
    pub attributes: FileAttributes,
    /// For symlinks: the sanitised target, relative to the download directory like `path`. A
    /// target that does not resolve inside the torrent is replaced by the link itself, as in
    /// libtorrent.
    pub symlink_target: Option<&'a str>,
    /// v2: the root of the file's merkle tree (`None` for empty files, symlinks, padding and
    /// v1-only torrents).
    pub pieces_root: Option<Sha256Hash>,
    /// Modification time (`mtime`), seconds since the epoch, if given and non-zero.
    pub mtime: Option<i64>,
    /// Where the raw path components are.
    raw_path: RawPath<'a>,
}

impl PartialEq for FileEntry<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
            && self.length == other.length
            && self.offset == other.offset
            && self.attributes == other.attributes
            && self.symlink_target == other.symlink_target
            && self.pieces_root == other.pieces_root
            && self.mtime == other.mtime
            && self.path_component_iter().eq(other.path_component_iter())
    }
}

impl Eq for FileEntry<'_> {}

impl std::fmt::Debug for FileEntry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        struct Components<'e, 'a>(&'e FileEntry<'a>);
        impl std::fmt::Debug for Components<'_, '_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_list()
                    .entries(
                        self.0
                            .path_component_iter()
                            .map(|c| c.escape_ascii().to_string()),
                    )
                    .finish()
            }
        }
        f.debug_struct("FileEntry")
            .field("path", &self.path)
            .field("length", &self.length)
            .field("offset", &self.offset)
            .field("attributes", &self.attributes)
            .field("symlink_target", &self.symlink_target)
            .field("pieces_root", &self.pieces_root)
            .field("mtime", &self.mtime)
            .field("raw_path", &Components(self))
            .finish()
    }
}

impl<'a> FileEntry<'a> {
    /// True for padding files.
    pub fn is_padding(&self) -> bool {
        self.attributes.padding
    }

    /// The raw path components as they appear in the torrent (v1 `path` list, the v2 file tree
    /// keys, or `name` for a single-file torrent). Empty for padding files the torrent does not
    /// name.
    ///
    /// They are copied out on each call; [`path_component_iter`](Self::path_component_iter)
    /// borrows them instead.
    pub fn path_components(&self) -> Vec<Vec<u8>> {
        self.path_component_iter().map(<[u8]>::to_vec).collect()
    }

    /// The raw path components, borrowed: the same as [`path_components`](Self::path_components)
    /// without copying.
    pub fn path_component_iter(&self) -> RawPathIter<'a> {
        self.raw_path.iter(self.path)
    }

    /// One past the last byte in the torrent's byte space.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.length)
    }
}

/// A file's raw path components, as a [`FileEntry`] sees them.
#[derive(Clone, Copy)]
enum RawPath<'a> {
    /// The components of the entry's own `path` after its first `skip` bytes: sanitising
    /// left every one of them as it was (so none holds a `/`), and they are not stored twice.
    InPath(u32),
    /// Bencoded byte strings laid end to end (`3:dir5:a.txt`).
    Encoded(&'a [u8]),
}

impl<'a> RawPath<'a> {
    /// The components, decoded, for an entry at `path`. Stops early at anything that is not a
    /// byte string (which the parser never stores).
    fn iter(self, path: &'a str) -> RawPathIter<'a> {
        match self {
            RawPath::InPath(skip) => {
                let rest = path.get(skip as usize..).unwrap_or_default();
                RawPathIter(Inner::Split((!rest.is_empty()).then_some(rest.as_bytes())))
            }
            RawPath::Encoded(e) => RawPathIter(Inner::Encoded(e)),
        }
    }
}

/// The components in `encoded`, bencoded byte strings laid end to end (`3:dir5:a.txt`).
pub(crate) fn encoded_components(encoded: &[u8]) -> RawPathIter<'_> {
    RawPathIter(Inner::Encoded(encoded))
}

/// Iterator over a file's raw path components ([`FileEntry::path_component_iter`]).
#[derive(Clone)]
pub struct RawPathIter<'a>(Inner<'a>);

#[derive(Clone)]
enum Inner<'a> {
    /// The rest of a path, split at each `/` (`None` once the last component is out).
    Split(Option<&'a [u8]>),
    Encoded(&'a [u8]),
}

impl<'a> Iterator for RawPathIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = match &mut self.0 {
            Inner::Split(split) => {
                // Components are short: a plain loop finds the '/' sooner than a search.
                let rest = split.take()?;
                return Some(match rest.iter().position(|&b| b == b'/') {
                    Some(slash) => {
                        *split = rest.get(slash + 1..);
                        rest.get(..slash).unwrap_or_default()
                    }
                    None => rest,
                });
            }
            Inner::Encoded(rest) => rest,
        };
        let colon = rest.iter().position(|&b| b == b':')?;
        let mut len = 0usize;
        for &d in rest.get(..colon)? {
            if !d.is_ascii_digit() {
                *rest = &[];
                return None;
            }
            len = len.checked_mul(10)?.checked_add(usize::from(d - b'0'))?;
        }
        let payload = rest.get(colon + 1..)?;
        let Some((component, tail)) = payload.split_at_checked(len) else {
            *rest = &[];
            return None;
        };
        *rest = tail;
        Some(component)
    }
}

/// A byte range in one of the buffers of a [`Files`].
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    pub(crate) fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Where a stored file's raw path components are, in four bytes (see [`Raw`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawAt(u32);

/// What a [`RawAt`] says.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Raw {
    /// In the file's path, after its first `skip` bytes (see [`RawPath::InPath`]).
    InPath(u32),
    /// Bencoded byte strings end to end: the span of [`Files::raw`] at this index of
    /// [`Files::raw_spans`].
    Encoded(u32),
}

impl RawAt {
    const ENCODED: u32 = 1 << 31;

    /// In the path after `skip` bytes (paths are far shorter than 2 GiB).
    pub(crate) fn in_path(skip: u32) -> RawAt {
        RawAt(skip.min(Self::ENCODED - 1))
    }

    fn encoded(index: u32) -> Option<RawAt> {
        (index < Self::ENCODED).then_some(RawAt(index | Self::ENCODED))
    }

    pub(crate) fn get(self) -> Raw {
        if self.0 & Self::ENCODED == 0 {
            Raw::InPath(self.0)
        } else {
            Raw::Encoded(self.0 & !Self::ENCODED)
        }
    }

    /// Whether the components are read back from the path.
    pub(crate) fn in_the_path(self) -> bool {
        matches!(self.get(), Raw::InPath(_))
    }
}

/// One file as stored.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    pub(crate) path: Span,
    pub(crate) length: u64,
    pub(crate) offset: u64,
    pub(crate) raw: RawAt,
    pub(crate) attributes: FileAttributes,
}

/// The files of a torrent in torrent order ([`Metainfo::files`](crate::Metainfo::files)).
///
/// Stored compactly, with every path in one shared buffer; [`get`](Self::get) and
/// [`iter`](Self::iter) hand out [`FileEntry`] views. Like libtorrent, which keeps file names
/// as pointers into the torrent's bytes, a v1 file list in its usual form is not copied when
/// the torrent is loaded: everything about it is checked then, and its paths are written out
/// once, on the first look at one.
#[derive(Clone, Default)]
pub struct Files {
    /// Every path and symlink target, end to end (but see `deferred`).
    text: String,
    /// Paths not written out yet.
    deferred: Option<Box<Deferred>>,
    /// Raw path components that are not read back from the paths, bencoded end to end, and
    /// each file's span of them.
    raw: Vec<u8>,
    raw_spans: Vec<Span>,
    slots: Vec<Slot>,
    /// Each symlink's target in `text`, sorted by file index.
    links: Vec<(u32, Span)>,
    /// Empty, or one `pieces root` per file.
    roots: Vec<Option<Sha256Hash>>,
    /// Empty, or one `mtime` per file (0: none).
    mtimes: Vec<i64>,
}

impl Files {
    /// Number of files, padding files included.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when there are no files (never for a parsed torrent).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// File `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<FileEntry<'_>> {
        let slot = self.slots.get(index)?;
        let path = self.path(index);
        let symlink_target = if slot.attributes.symlink {
            let at = self
                .links
                .binary_search_by_key(&index, |&(i, _)| i as usize)
                .ok();
            let span = at.and_then(|k| self.links.get(k)).map(|&(_, s)| s);
            Some(
                span.and_then(|s| self.text.get(s.range()))
                    .unwrap_or_default(),
            )
        } else {
            None
        };
        let raw_path = match slot.raw.get() {
            // Deferred paths all start with the root and a '/'.
            Raw::InPath(_) if self.deferred.is_some() => RawPath::InPath(self.root_skip()),
            Raw::InPath(skip) => RawPath::InPath(skip),
            Raw::Encoded(i) => {
                let span = self.raw_spans.get(i as usize).copied().unwrap_or_default();
                RawPath::Encoded(self.raw.get(span.range()).unwrap_or_default())
            }
        };
        Some(FileEntry {
            path,
            length: slot.length,
            offset: slot.offset,
            attributes: slot.attributes,
            symlink_target,
            pieces_root: self.roots.get(index).copied().flatten(),
            mtime: self.mtimes.get(index).copied().filter(|&t| t != 0),
            raw_path,
        })
    }

    /// The first file.
    pub fn first(&self) -> Option<FileEntry<'_>> {
        self.get(0)
    }

    /// The last file.
    pub fn last(&self) -> Option<FileEntry<'_>> {
        self.get(self.len().checked_sub(1)?)
    }

    /// The files in order.
    pub fn iter(&self) -> FilesIter<'_> {
        FilesIter {
            files: self,
            range: 0..self.len(),
        }
    }

    /// The `pieces root` of file `index`, borrowed.
    pub(crate) fn root_ref(&self, index: usize) -> Option<&Sha256Hash> {
        self.roots.get(index)?.as_ref()
    }

    /// The stored form of each file.
    pub(crate) fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The path of file `index`.
    pub(crate) fn path(&self, index: usize) -> &str {
        let span = match &self.deferred {
            None => self.slots.get(index).map(|s| s.path),
            Some(d) => {
                let (text, spans) = d.written(&self.slots);
                return spans
                    .get(index)
                    .and_then(|s| text.get(s.range()))
                    .unwrap_or_default();
            }
        };
        span.and_then(|s| self.text.get(s.range()))
            .unwrap_or_default()
    }

    /// Leaves the paths of files read by [`FileList`](crate::v1list::FileList) (which puts
    /// nothing in the text buffer) to be written out on first use: each slot's path is then a span of `input` holding its encoded
    /// components (a [`Raw::InPath`] file) or a span of `rel` holding its path below the
    /// root, starting with `/`, and every path is `root` followed by that.
    pub(crate) fn defer_paths(&mut self, input: bytes::Bytes, root: String, rel: String) {
        self.deferred = Some(Box::new(Deferred {
            input,
            root,
            rel,
            written: OnceLock::new(),
        }));
    }

    /// Whether the paths are still to be written out (see [`defer_paths`](Self::defer_paths)).
    #[cfg(test)]
    pub(crate) fn is_deferred(&self) -> bool {
        self.deferred.is_some()
    }

    /// Where the raw components start in a deferred path: after the root and a '/'.
    fn root_skip(&self) -> u32 {
        self.deferred
            .as_ref()
            .map_or(0, |d| u32::try_from(d.root.len() + 1).unwrap_or(u32::MAX))
    }

    /// Writes out deferred paths for good, so that the stored paths can change.
    fn write_out(&mut self) {
        let skip = self.root_skip();
        let Some(d) = self.deferred.take() else {
            return;
        };
        let Deferred {
            input,
            root,
            rel,
            written,
        } = *d;
        let (text, spans) = match written.into_inner() {
            Some(done) => done,
            None => write_paths(&self.slots, &input, &root, &rel),
        };
        for (slot, span) in self.slots.iter_mut().zip(spans) {
            slot.path = span;
            if slot.raw.in_the_path() {
                slot.raw = RawAt::in_path(skip);
            }
        }
        // A deferred list has nothing else in `text` (no links).
        self.text = text;
    }

    /// Makes room for `files` more files whose paths take about `text` bytes.
    pub(crate) fn reserve(&mut self, files: usize, text: usize) {
        self.slots.reserve_exact(files);
        self.text.reserve(text);
    }

    /// Appends `s` to the text buffer.
    pub(crate) fn push_text(&mut self, s: &str) -> Result<Span, Error> {
        self.write_out();
        let start = self.text.len();
        self.text.push_str(s);
        span(start, self.text.len())
    }

    /// Appends raw path components, bencoded end to end.
    pub(crate) fn push_raw(&mut self, encoded: &[u8]) -> Result<RawAt, Error> {
        let start = self.raw.len();
        self.raw.extend_from_slice(encoded);
        let index = u32::try_from(self.raw_spans.len()).map_err(|_| Error::FileListTooLarge)?;
        let at = RawAt::encoded(index).ok_or(Error::FileListTooLarge)?;
        self.raw_spans.push(span(start, self.raw.len())?);
        Ok(at)
    }

    /// Adds a file.
    #[inline]
    pub(crate) fn push(&mut self, slot: Slot, root: Option<Sha256Hash>, mtime: i64) {
        let i = self.slots.len();
        // The side tables start at the first file that needs them.
        if root.is_some() || !self.roots.is_empty() {
            self.roots.resize(i, None);
            self.roots.push(root);
        }
        if mtime != 0 || !self.mtimes.is_empty() {
            self.mtimes.resize(i, 0);
            self.mtimes.push(mtime);
        }
        if slot.attributes.symlink {
            self.links.push((i as u32, Span::default()));
        }
        self.slots.push(slot);
    }

    /// Adds a v1 file that is not a symlink, to files that have no `pieces root`.
    #[inline(always)]
    pub(crate) fn push_v1(&mut self, slot: Slot, mtime: i64) {
        if mtime != 0 || !self.mtimes.is_empty() {
            self.mtimes.resize(self.slots.len(), 0);
            self.mtimes.push(mtime);
        }
        self.slots.push(slot);
    }

    /// Removes file `index`, returning it as stored.
    pub(crate) fn remove(&mut self, index: usize) -> Option<Slot> {
        self.write_out();
        if index >= self.slots.len() {
            return None;
        }
        let slot = self.slots.remove(index);
        if !self.roots.is_empty() {
            self.roots.remove(index);
        }
        if !self.mtimes.is_empty() {
            self.mtimes.remove(index);
        }
        self.links.retain(|&(i, _)| i as usize != index);
        for (i, _) in &mut self.links {
            if *i as usize > index {
                *i -= 1;
            }
        }
        Some(slot)
    }

    /// Sets the offset of every file from `index` on to `offset`, then on past each file.
    pub(crate) fn set_offsets_from(&mut self, index: usize, mut offset: u64) {
        for s in self.slots.iter_mut().skip(index) {
            s.offset = offset;
            offset = offset.saturating_add(s.length);
        }
    }

    /// Gives file `index` a new path, keeping its raw components.
    pub(crate) fn rename(&mut self, index: usize, path: &str) -> Result<(), Error> {
        self.write_out();
        let Some(slot) = self.slots.get(index).copied() else {
            return Ok(());
        };
        if slot.raw.in_the_path() {
            let mut encoded = Vec::new();
            if let Some(e) = self.get(index) {
                for c in e.path_component_iter() {
                    tessera_bencode::put_bytes(&mut encoded, c);
                }
            }
            let raw = self.push_raw(&encoded)?;
            if let Some(s) = self.slots.get_mut(index) {
                s.raw = raw;
            }
        }
        let new = self.push_text(path)?;
        if let Some(s) = self.slots.get_mut(index) {
            s.path = new;
        }
        Ok(())
    }

    /// Sets the target of symlink `index`.
    pub(crate) fn set_link(&mut self, index: usize, target: &str) -> Result<(), Error> {
        let new = self.push_text(target)?;
        if let Ok(k) = self
            .links
            .binary_search_by_key(&index, |&(i, _)| i as usize)
        {
            if let Some((_, s)) = self.links.get_mut(k) {
                *s = new;
            }
        }
        Ok(())
    }

    /// The stored files, to change in place.
    pub(crate) fn slots_mut(&mut self) -> &mut [Slot] {
        &mut self.slots
    }

    /// Gives back spare room in the buffers when it is a sizeable part of them.
    pub(crate) fn shrink(&mut self) {
        // Half again as much room as used is left alone: copying the files to give it back
        // costs more than it is worth.
        fn spare<T>(v: &Vec<T>) -> bool {
            v.capacity() - v.len() > v.len() / 2
        }
        if spare(&self.slots) {
            self.slots.shrink_to_fit();
        }
        if self.text.capacity() - self.text.len() > self.text.len() / 2 {
            self.text.shrink_to_fit();
        }
        self.raw.shrink_to_fit();
        self.raw_spans.shrink_to_fit();
    }
}

/// Paths left to be written out on first use (see [`Files::defer_paths`]).
#[derive(Clone)]
struct Deferred {
    input: bytes::Bytes,
    root: String,
    rel: String,
    /// The paths end to end, and each file's span of them.
    written: OnceLock<(String, Vec<Span>)>,
}

impl Deferred {
    /// The paths, written out the first time they are asked for.
    fn written(&self, slots: &[Slot]) -> &(String, Vec<Span>) {
        self.written
            .get_or_init(|| write_paths(slots, &self.input, &self.root, &self.rel))
    }
}

/// Writes out deferred paths (see [`Files::defer_paths`]).
fn write_paths(slots: &[Slot], input: &[u8], root: &str, rel: &str) -> (String, Vec<Span>) {
    let mut len = 0usize;
    for slot in slots {
        let source = if slot.raw.in_the_path() {
            input.len()
        } else {
            rel.len()
        };
        let bytes = slot.path.range().end.min(source) - slot.path.range().start.min(source);
        len = len.saturating_add(root.len()).saturating_add(bytes);
    }
    let mut text: Vec<u8> = Vec::with_capacity(len);
    let mut spans = Vec::with_capacity(slots.len());
    for slot in slots {
        let start = text.len();
        text.extend_from_slice(root.as_bytes());
        if slot.raw.in_the_path() {
            let inner = input.get(slot.path.range()).unwrap_or_default();
            for c in encoded_components(inner) {
                text.push(b'/');
                text.extend_from_slice(c);
            }
        } else {
            text.extend_from_slice(rel.get(slot.path.range()).unwrap_or_default().as_bytes());
        }
        spans.push(span(start, text.len()).unwrap_or_default());
    }
    // UTF-8 by construction: the root is a string, and components were kept as they are only
    // when they are valid UTF-8. Were that ever wrong, the paths would come out lossy and
    // their spans off, which is still no panic.
    let text = String::from_utf8(text)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    (text, spans)
}

/// A span of `start..end` in a buffer, if both fit in 32 bits.
pub(crate) fn span(start: usize, end: usize) -> Result<Span, Error> {
    match (u32::try_from(start), u32::try_from(end)) {
        (Ok(start), Ok(end)) => Ok(Span { start, end }),
        _ => Err(Error::FileListTooLarge),
    }
}

impl PartialEq for Files {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Files {}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Files {
    type Item = FileEntry<'a>;
    type IntoIter = FilesIter<'a>;

    fn into_iter(self) -> FilesIter<'a> {
        self.iter()
    }
}

/// Iterator over the files of a torrent ([`Files::iter`]).
#[derive(Clone)]
pub struct FilesIter<'a> {
    files: &'a Files,
    range: std::ops::Range<usize>,
}

impl<'a> Iterator for FilesIter<'a> {
    type Item = FileEntry<'a>;

    fn next(&mut self) -> Option<FileEntry<'a>> {
        let i = self.range.next()?;
        self.files.get(i)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.range.size_hint()
    }

    fn nth(&mut self, n: usize) -> Option<FileEntry<'a>> {
        let i = self.range.nth(n)?;
        self.files.get(i)
    }
}

impl DoubleEndedIterator for FilesIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let i = self.range.next_back()?;
        self.files.get(i)
    }
}

impl ExactSizeIterator for FilesIter<'_> {}

impl std::iter::FusedIterator for FilesIter<'_> {}

/// What the parser knows about a file before it is placed.
pub(crate) struct NewFile<'p> {
    pub(crate) path: &'p str,
    /// Where the raw components are: in the path after this many bytes, or these encoded ones.
    pub(crate) raw_path: NewRaw<'p>,
    pub(crate) length: u64,
    pub(crate) attributes: FileAttributes,
    /// Sanitised symlink target, relative to the torrent's root directory.
    pub(crate) symlink: &'p str,
    pub(crate) pieces_root: Option<Sha256Hash>,
    pub(crate) mtime: i64,
}

/// The raw components of a [`NewFile`].
#[derive(Clone, Copy)]
pub(crate) enum NewRaw<'p> {
    /// In the path, after this many bytes.
    InPath(usize),
    /// Bencoded end to end.
    Encoded(&'p [u8]),
}

/// Builds a file list the way libtorrent's `file_storage::add_file` does.
pub(crate) struct Layout {
    pub(crate) files: Files,
    /// Per file: its path does not start with the torrent name (only unnamed v1 pad files).
    pub(crate) no_root_dir: Vec<bool>,
    /// For each symlink, in file order: its index and its target relative to the torrent root,
    /// before it is resolved.
    pub(crate) links: Vec<(usize, String)>,
    pub(crate) total: u64,
    /// The torrent name: the first component of the first file's path.
    pub(crate) name: String,
    piece_length: u64,
    /// v2 layout: pad each file to a piece boundary.
    v2: bool,
    max_files: usize,
    /// ASCII-case-insensitive hashes of the directories and file paths added so far, each
    /// tagged (`hash & !3 | tag`), for the quick collision check in [`resolve_duplicates`]:
    /// taken while each path is fresh in cache, and looked up in one tight pass at the end
    /// (so that the table's cache misses overlap rather than stall the parser one by one).
    names: Vec<u64>,
    /// The directory of the last file added, whose names are in `names` already.
    last_dir: String,
    /// Whether a name may repeat, when another thread found out from the names (see
    /// [`names_repeat`]).
    pub(crate) repeats: Option<bool>,
}

impl Layout {
    pub(crate) fn new(piece_length: u64, max_files: usize) -> Self {
        Layout {
            files: Files::default(),
            no_root_dir: Vec::new(),
            links: Vec::new(),
            total: 0,
            name: String::new(),
            piece_length,
            v2: false,
            max_files,
            names: Vec::new(),
            last_dir: String::new(),
            repeats: None,
        }
    }

    /// A layout of v1 files that are all under the torrent's root directory `name`, read by
    /// [`FileList`](crate::v1list::FileList): `names` are their tagged name hashes, taken
    /// of the paths without the root directory (which every path shares).
    pub(crate) fn from_parts(
        files: Files,
        total: u64,
        name: &str,
        names: Vec<u64>,
        piece_length: u64,
        max_files: usize,
    ) -> Self {
        Layout {
            no_root_dir: vec![false; files.len()],
            files,
            links: Vec::new(),
            total,
            name: name.to_owned(),
            piece_length,
            v2: false,
            max_files,
            names,
            last_dir: String::new(),
            repeats: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.files.len()
    }

    /// Makes room for `additional` more files (no more than the file limit allows) whose paths
    /// take about `text` bytes, so that a long file list is not copied as it grows.
    /// `additional` and `text` come from a decoded list, so they are bounded by the size of
    /// the input.
    pub(crate) fn reserve(&mut self, additional: usize, text: usize) {
        let room = self.max_files.saturating_sub(self.files.len());
        let n = additional.min(room);
        self.files.reserve(n, text);
        self.no_root_dir.reserve_exact(n);
        self.names.reserve(n.saturating_add(n / 16));
    }

    /// Adds the names [`find_renames`] would put in its table for a file at `path` (its
    /// directories below the root, then the path itself) to `names`, noting any repeat. A
    /// directory may repeat a directory; nothing else may repeat anything.
    fn note_names(&mut self, path: &str, no_root: bool) {
        if let Some(slash) = rfind_slash(path.as_bytes()) {
            let dir = path.get(..slash).unwrap_or_default();
            if dir != self.last_dir {
                self.last_dir.clear();
                self.last_dir.push_str(dir);
                let name_len = self.name.len();
                if no_root {
                    let full = format!("{}/{dir}", self.name);
                    self.note(caseless_hash(&full), Tag::Dir);
                } else if dir.len() > name_len {
                    for (k, b) in dir.bytes().enumerate().skip(name_len + 1) {
                        if b == b'/' {
                            let pre = dir.get(..k).unwrap_or_default();
                            self.note(caseless_hash(pre), Tag::Dir);
                        }
                    }
                    self.note(caseless_hash(dir), Tag::Dir);
                }
            }
        }
        self.note(caseless_hash(path), Tag::File);
    }

    fn note(&mut self, hash: u64, tag: Tag) {
        self.names.push((hash & !3) | tag as u64);
    }

    /// Whether two names noted by [`note_names`](Self::note_names) may be the same: a file's
    /// hash repeats any other name's, or a directory's repeats a file's.
    fn maybe_collision(&self) -> bool {
        if let Some(repeats) = self.repeats {
            return repeats;
        }
        let mut set = NameSet::with_capacity(self.names.len());
        self.names.iter().any(|&key| match set.insert(key) {
            None => false,
            Some(Tag::Dir) => key & 3 != Tag::Dir as u64,
            Some(Tag::File) => true,
        })
    }

    /// Stores a file whose path is `path`.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        path: &str,
        raw: NewRaw<'_>,
        length: u64,
        attributes: FileAttributes,
        root: Option<Sha256Hash>,
        mtime: i64,
        no_root: bool,
        link: &str,
    ) -> Result<(), Error> {
        if self.files.len() >= self.max_files {
            return Err(Error::TooManyFiles {
                limit: self.max_files,
            });
        }
        if !link.is_empty() {
            self.links.push((self.files.len(), link.to_owned()));
        }
        let raw = match raw {
            NewRaw::InPath(skip) => {
                RawAt::in_path(u32::try_from(skip).map_err(|_| Error::FileListTooLarge)?)
            }
            NewRaw::Encoded(e) => self.files.push_raw(e)?,
        };
        let span = self.files.push_text(path)?;
        self.note_names(path, no_root);
        self.files.push(
            Slot {
                path: span,
                length,
                offset: self.total,
                raw,
                attributes,
            },
            root,
            mtime,
        );
        self.no_root_dir.push(no_root);
        Ok(())
    }

    /// The symlink target of file `i` as read from the torrent (empty if it is not a link).
    fn link(&self, i: usize) -> &str {
        match self.links.binary_search_by_key(&i, |(j, _)| *j) {
            Ok(k) => self.links.get(k).map_or("", |(_, t)| t.as_str()),
            Err(_) => "",
        }
    }

    pub(crate) fn add(&mut self, f: NewFile<'_>) -> Result<(), Error> {
        if MAX_FILE_OFFSET - self.total < f.length {
            return Err(Error::InvalidLength {
                length: i64::try_from(f.length).unwrap_or(i64::MAX),
            });
        }
        // The first component of the file's directory, if it has one, is the path up to the
        // first '/'. Usually that is the torrent name, which is checked first.
        let p = f.path.as_bytes();
        let under_name = !self.files.is_empty()
            && p.get(self.name.len()) == Some(&b'/')
            && p.starts_with(self.name.as_bytes());
        let no_root = if under_name {
            false
        } else {
            let top_dir = f
                .path
                .find('/')
                .map(|i| f.path.get(..i).unwrap_or_default());
            if self.files.is_empty() {
                self.name = top_dir.unwrap_or(f.path).to_owned();
            }
            top_dir.is_some_and(|d| d != self.name)
        };
        if f.symlink.is_empty() && f.length > 0 && f.pieces_root.is_some() {
            self.v2 = true;
        }
        let mut attributes = f.attributes;
        attributes.symlink = !f.symlink.is_empty();
        self.push(
            f.path,
            f.raw_path,
            f.length,
            attributes,
            f.pieces_root,
            f.mtime,
            no_root,
            f.symlink,
        )?;
        self.total += f.length;
        // (No division for v1 files.)
        let rem = if self.v2 {
            self.total % self.piece_length.max(1)
        } else {
            0
        };
        if rem != 0 {
            let pad = self.piece_length - rem;
            if self.total > MAX_FILE_OFFSET - pad {
                return Err(Error::InvalidLength {
                    length: i64::try_from(pad).unwrap_or(i64::MAX),
                });
            }
            let path = format!("{}/.pad/{pad}", self.name);
            let attributes = FileAttributes {
                padding: true,
                ..FileAttributes::default()
            };
            self.push(
                &path,
                NewRaw::Encoded(&[]),
                pad,
                attributes,
                None,
                0,
                false,
                "",
            )?;
            self.total += pad;
        }
        Ok(())
    }

    /// Drops the padding after the last non-empty file (hybrids made before tail padding).
    pub(crate) fn remove_tail_padding(&mut self) {
        let slots = self.files.slots();
        let Some(last) = slots.iter().rposition(|f| f.length > 0) else {
            return;
        };
        if !slots.get(last).is_some_and(|s| s.attributes.padding) {
            return;
        }
        let Some(removed) = self.files.remove(last) else {
            return;
        };
        if last < self.no_root_dir.len() {
            self.no_root_dir.remove(last);
        }
        // A padding file is never a link; later links move down one place.
        for (j, _) in &mut self.links {
            if *j > last {
                *j -= 1;
            }
        }
        self.total -= removed.length;
        self.files.set_offsets_from(last, removed.offset);
    }

    /// The path of file `i` relative to the torrent's root directory.
    fn internal_path(&self, i: usize) -> &str {
        let path = self.files.path(i);
        let no_root = self.no_root_dir.get(i).copied().unwrap_or(false);
        if !no_root && path.contains('/') {
            path.get(self.name.len() + 1..).unwrap_or(path)
        } else {
            path
        }
    }

    /// The directory of file `i` relative to the torrent root, if it has one.
    fn internal_dir(&self, i: usize) -> Option<&str> {
        self.files.path(i).rfind('/')?;
        let p = self.internal_path(i);
        Some(p.rfind('/').and_then(|s| p.get(..s)).unwrap_or(""))
    }

    /// Whether file `j` is a symlink.
    fn is_link(&self, j: usize) -> bool {
        self.files
            .slots()
            .get(j)
            .is_some_and(|s| s.attributes.symlink)
    }

    /// Resolves symlink targets: a target must name a file or directory of the torrent
    /// (directly, relative to the link's directory, or through other links); anything else is
    /// made to point at the link itself.
    pub(crate) fn sanitize_symlinks(&mut self) -> Result<(), Error> {
        let links: Vec<usize> = self.links.iter().map(|(i, _)| *i).collect();
        if links.is_empty() {
            return Ok(());
        }
        let file_map: HashMap<String, usize> = (0..self.files.len())
            .map(|j| (self.internal_path(j).to_owned(), j))
            .collect();
        let mut paths: HashSet<String> = HashSet::new();
        let mut dir_map: HashSet<String> = HashSet::new();
        for j in 0..self.files.len() {
            if let Some(d) = self.internal_dir(j) {
                if paths.insert(d.to_owned()) {
                    let mut pv = d;
                    while !pv.is_empty() {
                        dir_map.insert(pv.to_owned());
                        pv = pv.rfind('/').and_then(|s| pv.get(..s)).unwrap_or("");
                    }
                }
            }
        }
        let mut dir_links: HashMap<String, String> = HashMap::new();
        let mut resolved: Vec<(usize, String)> = Vec::new();
        let mut to_validate: Vec<(usize, String)> = Vec::new();
        for &i in &links {
            let target = self.link(i).to_owned();
            let me = self.internal_path(i).to_owned();
            if let Some(&j) = file_map.get(&target) {
                if self.is_link(j) {
                    dir_links.insert(me, target.clone());
                }
                resolved.push((i, target));
                continue;
            }
            if dir_map.contains(&target) {
                dir_links.insert(me, target.clone());
                resolved.push((i, target));
                continue;
            }
            if let Some(dir) = self.internal_dir(i) {
                let t = if dir.is_empty() {
                    target.clone()
                } else {
                    format!("{dir}/{target}")
                };
                if paths.contains(&t) || dir_map.contains(&t) {
                    dir_links.insert(me, t.clone());
                    resolved.push((i, t));
                    continue;
                }
                if let Some(&j) = file_map.get(&t) {
                    if self.is_link(j) {
                        dir_links.insert(me, t.clone());
                    }
                    resolved.push((i, t));
                    continue;
                }
            }
            dir_links.insert(me, target.clone());
            to_validate.push((i, target));
        }
        for (i, target) in to_validate {
            let ok = resolve_through_links(&target, &dir_map, &dir_links, &file_map);
            let t = if ok {
                target
            } else {
                self.internal_path(i).to_owned()
            };
            resolved.push((i, t));
        }
        for (i, t) in resolved {
            let full = if self.name.is_empty() {
                t
            } else if t.is_empty() {
                self.name.clone()
            } else {
                format!("{}/{t}", self.name)
            };
            self.files.set_link(i, &full)?;
        }
        Ok(())
    }
}

/// Follows directory links in `target` (each at most once) and checks that the result names a
/// file or directory of the torrent.
fn resolve_through_links(
    target: &str,
    dir_map: &HashSet<String>,
    dir_links: &HashMap<String, String>,
    file_map: &HashMap<String, usize>,
) -> bool {
    let mut target = target.to_owned();
    let mut traversed: HashSet<String> = HashSet::new();
    let mut from = 0usize;
    // Each prefix of `target` that ends before a '/'.
    while let Some(sep) = target
        .get(from..)
        .and_then(|rest| rest.find('/'))
        .map(|s| s + from)
    {
        let branch = target.get(..sep).unwrap_or_default().to_owned();
        if dir_map.contains(&branch) {
            from = sep + 1;
            continue;
        }
        let Some(link) = dir_links.get(&branch) else {
            return false;
        };
        if !traversed.insert(branch) {
            return false;
        }
        let rest = target.get(sep + 1..).unwrap_or_default();
        target = if link.is_empty() {
            rest.to_owned()
        } else {
            format!("{link}/{rest}")
        };
        from = 1.min(target.len());
    }
    file_map.contains_key(&target) || dir_map.contains(&target)
}

/// Case-insensitive (ASCII) string key without allocation.
#[derive(Debug, Clone)]
struct Caseless<'a>(Cow<'a, str>);

impl PartialEq for Caseless<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}
impl Eq for Caseless<'_> {}

impl Hash for Caseless<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let b = self.0.as_bytes();
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            state.write_u64(lower8(u64::from_le_bytes(w)));
        }
        let mut w = [0u8; 8];
        for (d, s) in w.iter_mut().zip(chunks.remainder()) {
            *d = s.to_ascii_lowercase();
        }
        state.write_u64(u64::from_le_bytes(w));
        state.write_usize(b.len());
    }
}

/// ASCII-lowercases eight bytes at once.
fn lower8(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = x & !HIGH;
    let ge_a = low7.wrapping_add((0x80 - u64::from(b'A')) * ONES);
    let gt_z = low7.wrapping_add((0x80 - u64::from(b'Z') - 1) * ONES);
    let upper = ge_a & !gt_z & !x & HIGH;
    x | (upper >> 2)
}

/// A fast multiplicative hasher for [`Caseless`] keys (fed whole words).
#[derive(Default)]
struct WordHasher(u64);

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        // MurmurHash3's finaliser: every output bit depends on every input bit.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

#[derive(Default, Clone, Copy)]
struct BuildWordHasher;

impl std::hash::BuildHasher for BuildWordHasher {
    type Hasher = WordHasher;
    fn build_hasher(&self) -> WordHasher {
        WordHasher::default()
    }
}

/// What a name in the collision table belongs to.
#[derive(Clone, Copy)]
enum Owner {
    Dir,
    File(usize),
    /// A name given to a renamed file; it blocks further renames but is not compared against
    /// later files' original names (as in libtorrent).
    Renamed,
}

/// Renames files whose paths collide (ASCII case-insensitively) with a directory or an earlier
/// file, appending `.1`, `.2`, ... before the extension, as libtorrent does. Padding files of
/// equal size may share a name.
///
/// # Errors
/// [`Error::TooManyDuplicateFilenames`] when more than `max_collisions` candidate names were
/// taken.
pub(crate) fn resolve_duplicates(layout: &mut Layout, max_collisions: usize) -> Result<(), Error> {
    // Nearly every torrent has no collision at all: a table of name hashes shows that cheaply,
    // and only a repeated hash (a collision, or very rarely two names with the same hash) sends
    // the torrent through the exact work below.
    if !layout.maybe_collision() {
        return Ok(());
    }
    // libtorrent first checks for any collision while leaving the torrent's root directory out
    // of the table, and only when it finds one redoes the work with the root directory in.
    let renames = match find_renames(layout, max_collisions, false)? {
        None => return Ok(()),
        Some(_) => find_renames(layout, max_collisions, true)?.unwrap_or_default(),
    };
    for (i, p) in renames {
        layout.files.rename(i, &p)?;
    }
    Ok(())
}

/// Offset of the last `/` in `b`, eight bytes at a time from the end (paths are short, and a
/// general search costs more to set up than this takes).
fn rfind_slash(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let mut end = b.len();
    while end >= 8 {
        let w = b
            .get(end - 8..end)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_le_bytes)
            ^ (ONES * u64::from(b'/'));
        // The high bit of exactly each zero byte (no carries between bytes).
        let zero = !(((w & LOW7) + LOW7) | w | LOW7);
        if zero != 0 {
            return Some(end - 8 + 7 - (zero.leading_zeros() / 8) as usize);
        }
        end -= 8;
    }
    b.get(..end)?.iter().rposition(|&c| c == b'/')
}

/// ASCII-case-insensitive 64-bit hash of a path, eight bytes at a time.
fn caseless_hash(s: &str) -> u64 {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let b = s.as_bytes();
    let mut h = b.len() as u64;
    // Whole words, then the last eight bytes (overlapping the words before; the length is in
    // the hash, so this is still a function of the lowercased string alone).
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        h = (h.rotate_left(5) ^ lower8(path::word(w))).wrapping_mul(K);
    }
    h = (h.rotate_left(5) ^ lower8(path::tail_word(b, 0))).wrapping_mul(K);
    WordHasher(h).finish()
}

/// A name hash tagged for [`Layout::names`]: a directory's or a file's.
pub(crate) fn tagged_name(hash: u64, dir: bool) -> u64 {
    let tag = if dir { Tag::Dir } else { Tag::File };
    (hash & !3) | tag as u64
}

/// What a name in [`NameSet`] belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tag {
    File = 1,
    Dir = 2,
}

/// A set of tagged 64-bit name hashes (`hash & !3 | tag`, see [`Layout::names`]) that keeps
/// 32 bits of each: open addressing with linear probing in a power-of-two table at most half
/// full. A key's bits above the tag pick its slot; its top 30 bits and its tag fill it (never
/// 0, which marks an empty slot). Half the size of a table of whole keys, so the table for
/// 100,000 names (1 MiB) stays in a core's L2 cache. Two keys are taken for the same when they
/// probe into each other with the same top 30 bits: such a false alarm only costs the exact
/// check, about once in millions of torrents of that size.
struct NameSet {
    slots: Vec<u32>,
    len: usize,
}

impl NameSet {
    /// Room for `n` keys.
    fn with_capacity(n: usize) -> Self {
        let size = n
            .saturating_mul(2)
            .max(16)
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX);
        NameSet {
            slots: vec![0; size],
            len: 0,
        }
    }

    /// Adds `key` unless one with the same fingerprint is there already; then returns its tag.
    /// Past the capacity it answers as if every key were a file already there.
    #[inline]
    fn insert(&mut self, key: u64) -> Option<Tag> {
        if self.len.saturating_mul(2) >= self.slots.len() {
            return Some(Tag::File);
        }
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = ((key >> 2) as usize) & mask;
        let print = ((key >> 32) as u32 & !3) | (key & 3) as u32;
        loop {
            let slot = self.slots.get_mut(i)?;
            if *slot == 0 {
                *slot = print;
                self.len += 1;
                return None;
            }
            if (*slot ^ print) >> 2 == 0 {
                return Some(if *slot & 3 == Tag::Dir as u32 {
                    Tag::Dir
                } else {
                    Tag::File
                });
            }
            i = (i + 1) & mask;
        }
    }
}

/// Tagged name hashes (see [`tagged_name`]) on their way to another thread, which checks them
/// for repeats while this one reads on.
pub(crate) enum NameBatch {
    /// More names; `capacity`: about how many there will be in all.
    Names { capacity: usize, keys: Vec<u64> },
    /// That was all of them.
    Done,
}

/// Whether a name in `batches` may repeat another in a way that matters (as
/// [`Layout::maybe_collision`] decides), or `None` if the batches stop before
/// [`NameBatch::Done`]. More names than the first batch's capacity count as a repeat.
pub(crate) fn names_repeat(batches: &std::sync::mpsc::Receiver<NameBatch>) -> Option<bool> {
    let mut set: Option<NameSet> = None;
    let mut repeats = false;
    loop {
        match batches.recv().ok()? {
            NameBatch::Names { capacity, keys } => {
                let set = set.get_or_insert_with(|| NameSet::with_capacity(capacity));
                if !repeats {
                    repeats = keys.iter().any(|&key| match set.insert(key) {
                        None => false,
                        Some(Tag::Dir) => key & 3 != Tag::Dir as u64,
                        Some(Tag::File) => true,
                    });
                }
            }
            NameBatch::Done => return Some(repeats),
        }
    }
}

/// The renames needed, or `None` if no name collides at all.
fn find_renames(
    layout: &Layout,
    max_collisions: usize,
    include_root: bool,
) -> Result<Option<Vec<(usize, String)>>, Error> {
    let mut any_collision = false;
    let renames = {
        let name = layout.name.as_str();
        let files = &layout.files;
        let mut table: HashMap<Caseless<'_>, Owner, BuildWordHasher> =
            HashMap::with_capacity_and_hasher(files.len().saturating_mul(2), BuildWordHasher);
        // Directories first, so that no file may take a directory's name.
        let mut last_dir: Option<&str> = None;
        for (i, f) in files.iter().enumerate() {
            let p = f.path;
            let Some(slash) = p.rfind('/') else { continue };
            let dir = p.get(..slash).unwrap_or_default();
            if last_dir == Some(dir) {
                continue;
            }
            last_dir = Some(dir);
            if layout.no_root_dir.get(i).copied().unwrap_or(false) {
                table.insert(Caseless(Cow::Owned(format!("{name}/{dir}"))), Owner::Dir);
                continue;
            }
            // `dir` is `name` or `name/a/b`: every prefix ending before a '/' after the name,
            // and the whole of it.
            let inner_start = name.len() + 1;
            if dir.len() <= name.len() {
                if include_root {
                    table.insert(Caseless(Cow::Borrowed(dir)), Owner::Dir);
                }
                continue;
            }
            for (k, b) in dir.bytes().enumerate().skip(inner_start) {
                if b == b'/' {
                    if let Some(pre) = dir.get(..k) {
                        table.insert(Caseless(Cow::Borrowed(pre)), Owner::Dir);
                    }
                }
            }
            table.insert(Caseless(Cow::Borrowed(dir)), Owner::Dir);
        }
        let mut renames: Vec<(usize, String)> = Vec::new();
        let mut collisions = 0usize;
        for (i, f) in files.iter().enumerate() {
            let key = Caseless(Cow::Borrowed(f.path));
            match table.get(&key).copied() {
                None => {
                    table.insert(key, Owner::File(i));
                    continue;
                }
                Some(Owner::Renamed) => {
                    any_collision = true;
                    table.insert(key, Owner::File(i));
                    continue;
                }
                Some(Owner::File(j)) => {
                    any_collision = true;
                    if let Some(other) = files.get(j) {
                        if other.is_padding() && f.is_padding() && other.length == f.length {
                            continue;
                        }
                    }
                }
                Some(Owner::Dir) => any_collision = true,
            }
            let base = path::remove_extension(f.path);
            let ext = path::extension(f.path);
            let mut cnt = 0u64;
            loop {
                cnt += 1;
                let candidate = format!("{base}.{cnt}{ext}");
                let k = Caseless(Cow::Owned(candidate));
                if let std::collections::hash_map::Entry::Vacant(slot) = table.entry(k) {
                    renames.push((i, slot.key().0.to_string()));
                    slot.insert(Owner::Renamed);
                    break;
                }
                collisions += 1;
                if collisions > max_collisions {
                    return Err(Error::TooManyDuplicateFilenames {
                        limit: max_collisions,
                    });
                }
            }
        }
        renames
    };
    Ok(any_collision.then_some(renames))
}

/// libtorrent's check that a hybrid torrent's v1 file list and v2 file tree agree: same number
/// of files, same total size, and every non-empty, non-padding file at the same index with the
/// same path, size, offset (and symlink target).
pub(crate) fn compatible(v2: &Layout, v1: &Layout) -> bool {
    if v2.files.len() != v1.files.len() || v2.total != v1.total {
        return false;
    }
    v2.files.iter().zip(v1.files.iter()).all(|(a, b)| {
        let ra = !a.is_padding() && a.length > 0;
        let rb = !b.is_padding() && b.length > 0;
        if ra != rb {
            return false;
        }
        if !ra {
            return true;
        }
        a.length == b.length
            && a.path == b.path
            && a.offset == b.offset
            && (!a.attributes.symlink || a.symlink_target == b.symlink_target)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower8_matches_ascii_lowercase() {
        let s = *b"AZaz@[`{";
        let got = lower8(u64::from_le_bytes(s)).to_le_bytes();
        assert_eq!(&got, b"azaz@[`{");
        let s = [0xc1u8, b'Q', 0xdb, b'M', 0, b'0', b'Z', 0xff];
        let got = lower8(u64::from_le_bytes(s)).to_le_bytes();
        let want: Vec<u8> = s.iter().map(u8::to_ascii_lowercase).collect();
        assert_eq!(&got[..], &want[..]);
    }

    #[test]
    fn name_set_finds_repeats() {
        let key = |h: u64, tag: Tag| (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) & !3) | tag as u64;
        let mut set = NameSet::with_capacity(1003);
        for h in 0..1000u64 {
            let tag = if h % 3 == 0 { Tag::Dir } else { Tag::File };
            assert_eq!(set.insert(key(h, tag)), None);
        }
        assert_eq!(set.insert(key(5, Tag::Dir)), Some(Tag::File));
        assert_eq!(set.insert(key(0, Tag::File)), Some(Tag::Dir));
        assert_eq!(set.len, 1000);
        assert_eq!(set.slots.len(), 2048);
        // Full: everything looks like a repeat.
        let mut small = NameSet::with_capacity(0);
        for h in 0..8u64 {
            assert_eq!(small.insert(key(h, Tag::File)), None);
        }
        assert_eq!(small.insert(key(99, Tag::File)), Some(Tag::File));
        assert_eq!(caseless_hash("Dir/File.TXT"), caseless_hash("dir/file.txt"));
        assert_ne!(caseless_hash("dir/file.txt"), caseless_hash("dir/file.txu"));
    }

    #[test]
    fn last_slash() {
        for p in [
            "",
            "/",
            "a",
            "a/b",
            "abcdefgh/",
            "/abcdefgh",
            "a/bcdefgh/ijklmnop.q",
            "a/./.b/..c/",
            "no-slash-in-this-long-name",
            "x/\u{e9}\u{2f}/.",
            "////////////////",
        ] {
            assert_eq!(rfind_slash(p.as_bytes()), p.rfind('/'), "{p:?}");
        }
    }

    #[test]
    fn raw_path_round_trip() {
        let raw = RawPath::Encoded(b"3:dir0:5:a.txt");
        let parts: Vec<&[u8]> = raw.iter("x").collect();
        assert_eq!(parts, [&b"dir"[..], b"", b"a.txt"]);
        let same = RawPath::Encoded(b"03:dir0:5:a.txt");
        assert!(raw.iter("").eq(same.iter("")));
        let cut = RawPath::Encoded(b"3:dir9:a");
        assert_eq!(cut.iter("").count(), 1);

        let path = "name/dir/a.txt";
        let parts: Vec<&[u8]> = RawPath::InPath(5).iter(path).collect();
        assert_eq!(parts, [&b"dir"[..], b"a.txt"]);
        assert_eq!(RawPath::InPath(14).iter(path).count(), 0);
        assert_eq!(RawPath::InPath(99).iter(path).count(), 0);
    }

    /// A layout of `(path, length, raw components in the path after this many bytes)`.
    fn layout(files: &[(&str, u64, usize)]) -> Layout {
        let mut l = Layout::new(16_384, 100);
        for &(path, length, skip) in files {
            l.add(NewFile {
                path,
                raw_path: NewRaw::InPath(skip),
                length,
                attributes: FileAttributes::default(),
                symlink: "",
                pieces_root: None,
                mtime: 0,
            })
            .unwrap();
        }
        l
    }

    #[test]
    fn renamed_files_keep_their_raw_components() {
        let mut l = layout(&[("n/d/a.txt", 5, 2), ("n/d/A.txt", 7, 2)]);
        resolve_duplicates(&mut l, 10).unwrap();
        let files = &l.files;
        assert_eq!(files.len(), 2);
        let second = files.get(1).unwrap();
        assert_eq!(second.path, "n/d/A.1.txt");
        assert_eq!(second.offset, 5);
        assert_eq!(second.length, 7);
        assert_eq!(second.path_components(), [b"d".to_vec(), b"A.txt".to_vec()]);
        assert_eq!(files.get(0).unwrap().path, "n/d/a.txt");
        assert!(files.get(2).is_none());
        assert_eq!(
            files.iter().rev().map(|f| f.length).collect::<Vec<_>>(),
            [7, 5]
        );
        assert_eq!(files.iter().len(), 2);
    }

    #[test]
    fn entries_compare_and_print_their_components() {
        let a = layout(&[("n/d/f", 1, 2)]);
        let mut b = Layout::new(16_384, 100);
        for raw in [&b"1:d1:f"[..], b"1:D1:f"] {
            b.add(NewFile {
                path: "n/d/f",
                raw_path: NewRaw::Encoded(raw),
                length: 1,
                attributes: FileAttributes::default(),
                symlink: "",
                pieces_root: None,
                mtime: 0,
            })
            .unwrap();
        }
        let a = a.files.get(0).unwrap();
        let mut c = b.files.get(1).unwrap();
        let b = b.files.get(0).unwrap();
        c.offset = 0;
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(
            format!("{a:?}").contains(r#"raw_path: ["d", "f"]"#),
            "{a:?}"
        );
    }

    #[test]
    fn attributes_round_trip() {
        let a = FileAttributes::from_attr(b"xph?");
        assert!(a.padding && a.executable && a.hidden && !a.symlink);
        assert_eq!(FileAttributes::from_attr(a.to_attr().as_bytes()), a);
    }
}
