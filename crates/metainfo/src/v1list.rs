//! A v1 file list read in one pass: checked, and its files laid out, while the bencode decoder
//! skips it (see [`DecodeOptions::decode_claiming`](tessera_bencode::DecodeOptions)).
//!
//! In a torrent with many files the list is nearly all of the file, and reading it twice
//! (once to check the bencode, once to read the files) costs more than hashing the info
//! dictionary. [`FileList::claim`] takes lists in the form nearly every torrent has them:
//! canonical bencode, file dictionaries holding `length`, `path` or `path.utf-8`, and
//! optionally `attr`, `mtime` and other keys with integer or string values. It declines
//! anything else (other value types, symlinks, a missing or empty path, a bad length, any
//! limit reached), and then the decoder and the general reader in `torrent.rs` do the work as
//! if it had never looked. So whatever it accepts must give exactly what the general reader
//! gives: tests parse with both and compare.
//!
//! The torrent name (the directory every path starts with) comes after `files` in the info
//! dictionary, and the paths are not copied at all: [`FileList::take_layout`] leaves them to
//! be written out, name first, on first use (see [`Files`]). The names of the files and their
//! directories are hashed as they are read, and when the info dictionary is hashed on a second
//! thread, that thread checks them for repeats once it is done hashing.

use std::sync::mpsc::Sender;

use tessera_bencode::{ClaimLimits, Claimed};

use crate::error::Error;

use crate::file::{
    encoded_components, span, tagged_name, FileAttributes, Files, Layout, NameBatch, RawAt, Slot,
    Span, MAX_FILE_OFFSET,
};
use crate::path;
use crate::torrent::{has_padding_marker, libtorrent_file_size, ParseOptions};

/// The files of a claimed v1 file list.
pub(crate) struct FileList<'o> {
    opts: &'o ParseOptions,
    /// The files. Until [`take_layout`](Self::take_layout), the path of a file whose
    /// components sanitising leaves alone (its raw path is [`Raw::InPath`](crate::file::Raw)) is the span of
    /// its encoded components in the input, between the list's `l` and `e`; any other file's is
    /// a span of `rel`.
    files: Files,
    /// The sanitised paths of files that sanitising changed, without the root directory, each
    /// as `/component/component…`, end to end after a one-byte stand-in for the root (so that
    /// sanitising sees a path that does not start empty, as it does in the general reader).
    rel: Vec<u8>,
    /// Tagged name hashes of the directories and paths, without the root directory (those not
    /// sent yet).
    names: Vec<u64>,
    /// Where to send them in batches as they come, so that another thread checks them for
    /// repeats (see [`names_repeat`](crate::file::names_repeat)).
    out: Option<Sender<NameBatch>>,
    /// Names sent so far.
    sent: usize,
    /// About how many names there will be, once known.
    expected: usize,
    /// The encoded directory components (a span of the input) of the last file whose
    /// directory names were noted, and the hash of that directory.
    last_dir: Option<(usize, usize)>,
    dir_hash: u64,
    /// That directory's number of components, its length as `/component/component…`, and
    /// whether one of its components holds a `_`.
    dir_count: usize,
    dir_bytes: usize,
    dir_underscore: bool,
    /// The bytes of all paths without the root directory.
    text_len: usize,
    total: u64,
    claimed: bool,
}

impl<'o> FileList<'o> {
    pub(crate) fn new(opts: &'o ParseOptions) -> Self {
        FileList {
            opts,
            files: Files::default(),
            rel: Vec::new(),
            names: Vec::new(),
            out: None,
            sent: 0,
            expected: 0,
            last_dir: None,
            dir_hash: ROOT_HASH,
            dir_count: 0,
            dir_bytes: 0,
            dir_underscore: false,
            text_len: 0,
            total: 0,
            claimed: false,
        }
    }

    /// Sends the names to `out` as they are taken (see [`NameBatch`]).
    pub(crate) fn send_names(&mut self, out: Sender<NameBatch>) {
        self.out = Some(out);
    }

    /// Sends the names not sent yet (all of them if `done`, and then says so).
    fn flush_names(&mut self, done: bool) {
        let Some(out) = &self.out else {
            return;
        };
        let next = if done { 0 } else { NAME_BATCH + 64 };
        let keys = std::mem::replace(&mut self.names, Vec::with_capacity(next));
        self.sent += keys.len();
        let capacity = self.expected.max(self.sent);
        let mut ok = out.send(NameBatch::Names { capacity, keys }).is_ok();
        if done {
            ok &= out.send(NameBatch::Done).is_ok();
        }
        if !ok {
            self.out = None;
        }
    }

    /// Whether [`claim`](Self::claim) took the list.
    pub(crate) fn claimed(&self) -> bool {
        self.claimed
    }

    /// Reads the list at `start` in `input`, if it has the usual form (see the module docs).
    pub(crate) fn claim(
        &mut self,
        input: &[u8],
        start: usize,
        limits: ClaimLimits,
    ) -> Option<Claimed> {
        // The list, a file dictionary, a path list.
        if limits.depth < 3 {
            return None;
        }
        let mut cur = Cursor { input, pos: start };
        if cur.byte()? != b'l' {
            return None;
        }
        cur.pos += 1;
        self.rel.clear();
        self.rel.push(b'/');
        let mut values = 1usize;
        let mut elements = 0usize;
        loop {
            match cur.byte()? {
                b'e' => {
                    cur.pos += 1;
                    break;
                }
                b'd' => {
                    if elements == 1024 {
                        self.reserve(&cur, start);
                    }
                    values += self.file(&mut cur)?;
                    elements += 1;
                    if elements % 1024 == 0 && self.expected > 0 && self.names.len() >= NAME_BATCH {
                        self.flush_names(false);
                    }
                    if values > limits.values {
                        return None;
                    }
                }
                _ => return None,
            }
        }
        self.flush_names(true);
        self.claimed = true;
        Some(Claimed {
            end: cur.pos,
            elements,
            values,
        })
    }

    /// Makes room for the files still to come, guessed from the size of those read so far
    /// and the input left (an overestimate by what follows the list, bounded by the input).
    fn reserve(&mut self, cur: &Cursor<'_>, start: usize) {
        let read = cur.pos - start;
        let left = cur.input.len() - cur.pos;
        let n = self.files.len().max(1);
        let more = (left / (read / n).max(1)).min(self.opts.max_files.saturating_sub(n));
        self.files.reserve(more, 0);
        // Each name after these takes at least two bytes of the input (`0:`).
        let per_file = self.names.len() / n + 1;
        self.expected = per_file
            .saturating_mul(n.saturating_add(more))
            .min(self.names.len().saturating_add(left / 2));
        if self.out.is_none() {
            self.names
                .reserve(self.expected.saturating_sub(self.names.len()));
        }
    }

    /// One file dictionary at `cur`: returns the number of values in it.
    #[inline]
    fn file(&mut self, cur: &mut Cursor<'_>) -> Option<usize> {
        if let Some(values) = self.plain_file(cur) {
            return Some(values);
        }
        let entry = self.any_entry(cur)?;
        self.place(cur.input, entry)
    }

    /// The commonest file of all, read and added with the least work: an entry of the shape
    /// nearly every one has, `d6:lengthi<N>e4:pathl…ee`, whose path components are all of 1 to 99
    /// printable ASCII bytes, other than `.` and `..`, with nothing for sanitising to change.
    /// When its path starts with the directory of the file noted before (which has nearly
    /// always been checked already), those components are taken as checked and only the rest
    /// is read. Returns the entry's number of values; `None` (with nothing changed) for any
    /// other entry, which [`any_entry`](Self::any_entry) then reads.
    #[inline(always)]
    fn plain_file(&mut self, cur: &mut Cursor<'_>) -> Option<usize> {
        let input = cur.input;
        let start = cur.pos;
        // Read from a window of fixed size, so that bounds are checked against a constant
        // (the last few entries of a list, closer than that to the end of the input, and
        // entries longer than the window, are left to the other readers).
        let win: &[u8; WINDOW] = input.get(start..start + WINDOW)?.try_into().ok()?;
        let byte = |i: usize| win.get(i).copied();
        let word = |i: usize| win.get(i..i + 8).map(path::word);
        if word(1)? != LENGTH_KEY || byte(9)? != b'i' {
            return None;
        }
        let (size, digits) = uint_digits(word(10)?).or_else(|| long_uint(win.get(10..)?))?;
        let mut pos = 10 + digits + 1;
        // `4:pathl`.
        if word(pos)? & 0x00ff_ffff_ffff_ffff != PATH_LIST_KEY {
            return None;
        }
        pos += 7;
        let inner_start = pos;
        // The components shared with the directory noted last, taken as checked.
        let (mut count, mut bytes, mut underscore) = (0usize, 0usize, false);
        let mut same_dir = false;
        if let Some((a, b)) = self.last_dir {
            let n = b - a;
            if n > 0
                && byte(pos + n).is_some_and(|d| d.wrapping_sub(b'1') < 9)
                && short_eq(win.get(pos..pos + n)?, input.get(a..b)?)
            {
                pos += n;
                count = self.dir_count;
                bytes = self.dir_bytes;
                underscore = self.dir_underscore;
                same_dir = true;
            }
        }
        let rest = pos;
        let mut read = 0usize;
        let mut last = (rest, rest);
        let max_name = self.opts.max_name_length;
        loop {
            // A component of 1 to 99 bytes (one or two digits, no leading zero), or the end.
            let d0 = byte(pos)?.wrapping_sub(b'1');
            let b1 = byte(pos + 1)?;
            let (len, payload) = if d0 < 9 && b1 == b':' {
                (usize::from(d0) + 1, pos + 2)
            } else if d0 < 9 && b1.wrapping_sub(b'0') < 10 && byte(pos + 2)? == b':' {
                ((usize::from(d0) + 1) * 10 + usize::from(b1 - b'0'), pos + 3)
            } else if d0 == b'e'.wrapping_sub(b'1') {
                break;
            } else {
                return None;
            };
            let part = win.get(payload..payload + len)?;
            if len > max_name || (len <= 2 && (part == b"." || part == b"..")) {
                return None;
            }
            last = (start + pos, start + payload);
            read += 1;
            bytes += 1 + len;
            pos = payload + len;
        }
        let inner_end = pos;
        count += read;
        if read == 0 || count > self.opts.max_path_depth || byte(inner_end + 1)? != b'e' {
            return None;
        }
        // The length prefixes are digits and ':', so with one component only its bytes need
        // a look.
        let unchecked = if read == 1 { last.1 - start } else { rest };
        underscore |= path::printable_ascii(win.get(unchecked..inner_end)?)?;
        let (inner_start, inner_end) = (start + inner_start, start + inner_end);
        let path = span(inner_start, inner_end).ok()?;
        if !self.size_fits(size) {
            return None;
        }
        // Nothing can fail from here on.
        cur.pos = inner_end + 2;
        let mut attributes = FileAttributes::default();
        let inner = input.get(inner_start..inner_end).unwrap_or_default();
        // The marker holds no digit or ':', so it can only be found inside a component.
        if underscore && has_padding_marker(inner) {
            attributes.padding = true;
        }
        if same_dir && read == 1 {
            self.note_name(input.get(last.1..inner_end).unwrap_or_default());
        } else {
            self.note_plain(
                input,
                &PathList {
                    count,
                    plain: true,
                    underscore,
                    inner: (inner_start, inner_end),
                    last,
                    bytes,
                },
            );
        }
        self.add_plain(path, bytes, size, attributes, 0);
        Some(5 + count)
    }

    /// Whether a file of `size` bytes may be added after those read so far.
    #[inline(always)]
    fn size_fits(&self, size: u64) -> bool {
        let opts = self.opts;
        libtorrent_file_size(size)
            && size <= opts.max_file_size
            && self.files.len() < opts.max_files
            && MAX_FILE_OFFSET - self.total >= size
    }

    /// Adds a file at `path` (the span of its path list, which sanitising leaves alone and
    /// which is `bytes` long as `/component/component…`), its size checked.
    #[inline(always)]
    fn add_plain(
        &mut self,
        path: Span,
        bytes: usize,
        size: u64,
        attributes: FileAttributes,
        mtime: i64,
    ) {
        self.text_len = self.text_len.saturating_add(bytes);
        self.files.push_v1(
            Slot {
                path,
                length: size,
                offset: self.total,
                // Read back from the path, after the root (see `Files::defer_paths`).
                raw: RawAt::in_path(0),
                attributes,
            },
            mtime,
        );
        self.total += size;
    }

    /// Any file dictionary at `cur` (whose keys are all sorted, with values of the types
    /// expected).
    fn any_entry(&self, cur: &mut Cursor<'_>) -> Option<Entry> {
        cur.pos += 1;
        let mut values = 1usize;
        // No key sorts before the empty one, which a first key cannot be (as the general
        // reader would take it, it is left to that reader).
        let mut prev: &[u8] = b"";
        let mut length: Option<i64> = None;
        let mut attributes = FileAttributes::default();
        let mut mtime = 0i64;
        // The path list read last (`path.utf-8` comes after `path` and takes its place).
        let mut list: Option<PathList> = None;
        loop {
            if cur.byte()? == b'e' {
                cur.pos += 1;
                break;
            }
            // The two keys nearly every entry has are recognised by their encodings.
            let head = path::word(cur.input.get(cur.pos..cur.pos + 8).unwrap_or_default());
            let key: &[u8] = if head == LENGTH_KEY {
                cur.pos += 8;
                b"length"
            } else if head & 0xffff_ffff_ffff == PATH_KEY {
                cur.pos += 6;
                b"path"
            } else {
                cur.string()?
            };
            if !sorts_after(key, prev) {
                return None;
            }
            prev = key;
            values += 2;
            match key {
                b"length" => length = Some(cur.int()?),
                b"path" | b"path.utf-8" => {
                    let l = self.path_list(cur)?;
                    values += l.count;
                    list = Some(l);
                }
                b"attr" => attributes = FileAttributes::from_attr(cur.string()?),
                b"mtime" => mtime = cur.int()?,
                _ => match cur.byte()? {
                    b'i' => {
                        cur.int()?;
                    }
                    b'0'..=b'9' => {
                        cur.string()?;
                    }
                    _ => return None,
                },
            }
        }
        Some(Entry {
            values,
            length,
            attributes,
            mtime,
            list,
        })
    }

    /// Checks a file read by [`any_entry`](Self::any_entry) and adds it; returns its number of
    /// values.
    #[inline(always)]
    fn place(&mut self, input: &[u8], entry: Entry) -> Option<usize> {
        let Entry {
            values,
            length,
            mut attributes,
            mtime,
            list,
        } = entry;
        let list = list?;
        if attributes.symlink {
            return None;
        }
        let size = u64::try_from(length?).ok()?;
        if !self.size_fits(size) {
            return None;
        }
        let inner = input.get(list.inner.0..list.inner.1)?;
        if list.plain {
            let path = span(list.inner.0, list.inner.1).ok()?;
            // The marker holds no digit or ':', so it can only be found inside a component.
            if list.underscore && has_padding_marker(inner) {
                attributes.padding = true;
            }
            self.note_plain(input, &list);
            self.add_plain(path, list.bytes, size, attributes, mtime);
            return Some(values);
        }
        let (path, raw) = {
            let rel_start = self.rel.len();
            for c in encoded_components(inner) {
                path::append_bytes(&mut self.rel, c);
            }
            if self.rel.len() == rel_start {
                // Every component sanitised away.
                self.rel.extend_from_slice(b"/_");
            }
            if has_padding_marker(self.rel.get(rel_start..)?) {
                attributes.padding = true;
            }
            self.note_sanitised(rel_start);
            self.text_len = self.text_len.saturating_add(self.rel.len() - rel_start);
            let path = span(rel_start, self.rel.len()).ok()?;
            (path, self.files.push_raw(inner).ok()?)
        };
        self.files.push_v1(
            Slot {
                path,
                length: size,
                offset: self.total,
                raw,
                attributes,
            },
            mtime,
        );
        self.total += size;
        Some(values)
    }

    /// A path list at `cur`, its components checked against the limits and for whether
    /// sanitising would change them.
    #[inline]
    fn path_list(&self, cur: &mut Cursor<'_>) -> Option<PathList> {
        if cur.byte()? != b'l' {
            return None;
        }
        cur.pos += 1;
        let inner_start = cur.pos;
        let mut out = PathList {
            count: 0,
            plain: true,
            underscore: false,
            inner: (inner_start, inner_start),
            last: (inner_start, inner_start),
            bytes: 0,
        };
        loop {
            if cur.byte()? == b'e' {
                out.inner.1 = cur.pos;
                cur.pos += 1;
                break;
            }
            let at = cur.pos;
            let c = cur.string()?;
            out.last = (at, cur.pos - c.len());
            out.count += 1;
            out.bytes += 1 + c.len();
            if out.count > self.opts.max_path_depth || c.len() > self.opts.max_name_length {
                return None;
            }
            out.plain &= path::plain_shape(c);
        }
        if out.plain {
            // Nearly always printable ASCII, checked for all components at once; otherwise
            // one by one.
            let inner = cur.input.get(out.inner.0..out.inner.1)?;
            match path::printable_ascii(inner) {
                Some(underscore) => out.underscore = underscore,
                None => {
                    for c in encoded_components(inner) {
                        match path::unchanged_by_sanitising(c) {
                            Some(underscore) => out.underscore |= underscore,
                            None => out.plain = false,
                        }
                    }
                }
            }
        }
        // An empty list counts as no path at all, which the general reader handles.
        (out.count > 0).then_some(out)
    }

    /// Notes the name hashes of a file whose components sanitising leaves alone, and of its
    /// directories when they are not those of the file noted before, as [`Layout`] does for
    /// whole paths. The hashes are of the paths below the root, taken component by component
    /// (see [`chain`]), so that a file in the directory of the file before it costs the hash
    /// of its own name alone.
    #[inline]
    fn note_plain(&mut self, input: &[u8], list: &PathList) {
        let dir = input.get(list.inner.0..list.last.0).unwrap_or_default();
        let same = self
            .last_dir
            .and_then(|(a, b)| input.get(a..b))
            .is_some_and(|last| short_eq(last, dir));
        if !same {
            let mut h = ROOT_HASH;
            for part in encoded_components(dir) {
                h = chain(h, part);
                self.names.push(tagged_name(h, true));
            }
            let name_len = list.inner.1 - list.last.1;
            self.dir_hash = h;
            self.last_dir = Some((list.inner.0, list.last.0));
            self.dir_count = list.count - 1;
            self.dir_bytes = list.bytes - (1 + name_len);
            self.dir_underscore = list.underscore && dir.contains(&b'_');
        }
        self.note_name(input.get(list.last.1..list.inner.1).unwrap_or_default());
    }

    /// The file half of [`note_plain`](Self::note_plain), for a file in the directory noted
    /// last.
    #[inline(always)]
    fn note_name(&mut self, name: &[u8]) {
        let h = chain(self.dir_hash, name);
        self.names.push(tagged_name(h, false));
    }

    /// [`note_plain`](Self::note_plain) for a sanitised path in `rel` from `rel_start` (after
    /// its leading `/`).
    fn note_sanitised(&mut self, rel_start: usize) {
        let path = self.rel.get(rel_start + 1..).unwrap_or_default();
        let mut h = ROOT_HASH;
        let mut parts = path.split(|&b| b == b'/').peekable();
        while let Some(part) = parts.next() {
            h = chain(h, part);
            self.names.push(tagged_name(h, parts.peek().is_some()));
        }
        // The next file notes its directories afresh.
        self.last_dir = None;
    }

    /// The files, under the root directory `name`; `input` is what [`claim`](Self::claim)
    /// read. Their paths are written out on first use (see [`Files`]).
    pub(crate) fn take_layout(
        &mut self,
        input: &bytes::Bytes,
        name: &str,
        piece_length: u64,
    ) -> Result<Layout, Error> {
        let mut files = std::mem::take(&mut self.files);
        // The padding marker holds no '/': it is in a component (checked per file) or in
        // the root, and then every file is padding.
        let padding = name.contains('_') && has_padding_marker(name.as_bytes());
        let paths = files
            .len()
            .saturating_mul(name.len())
            .saturating_add(self.text_len);
        if u32::try_from(paths).is_err() {
            return Err(Error::FileListTooLarge);
        }
        if padding {
            for slot in files.slots_mut() {
                slot.attributes.padding = true;
            }
        }
        // UTF-8 by construction (see `append_bytes`).
        let rel =
            String::from_utf8(std::mem::take(&mut self.rel)).map_err(|_| Error::InvalidName)?;
        files.defer_paths(input.clone(), name.to_owned(), rel);
        Ok(Layout::from_parts(
            files,
            self.total,
            name,
            std::mem::take(&mut self.names),
            piece_length,
            self.opts.max_files,
        ))
    }
}

/// Byte equality of two short slices, a word at a time and without a call.
#[inline(always)]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return path::tail_word(a, 0) == path::tail_word(b, 0);
    }
    let at = |s: &[u8], i: usize| path::word(s.get(i..i + 8).unwrap_or_default());
    let mut i = 0;
    while i + 8 < n {
        if at(a, i) != at(b, i) {
            return false;
        }
        i += 8;
    }
    // The last eight bytes, overlapping those compared already.
    at(a, n - 8) == at(b, n - 8)
}

/// Bytes [`FileList::plain_file`] reads an entry from.
const WINDOW: usize = 128;

/// The non-negative integer of 1 to 7 digits at the start of `w` (eight input bytes), ended by
/// an `e` in the same word, without leading zeros: its value and its number of digits.
#[inline(always)]
fn uint_digits(w: u64) -> Option<(u64, usize)> {
    const LOW: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    // High nibble set in each byte that is not an ASCII digit.
    let other = ((w & HIGH) ^ 0x3030_3030_3030_3030) | (((w & LOW) + 0x0606_0606_0606_0606) & HIGH);
    let n = (other.trailing_zeros() / 8) as usize;
    if !(1..8).contains(&n) || (w >> (8 * n)) & 0xff != u64::from(b'e') {
        return None;
    }
    if n > 1 && w & 0xff == u64::from(b'0') {
        return None;
    }
    // The digits' values, moved up so that zeros stand in front of them.
    let mut v = (w & LOW) << (8 * (8 - n));
    v = (v.wrapping_mul(10) + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_ffff_0000_ffff;
    v = (v.wrapping_mul(10_000) + (v >> 32)) & 0xffff_ffff;
    Some((v, n))
}

/// [`uint_digits`] for 8 to 18 digits, one at a time.
#[inline(never)]
fn long_uint(b: &[u8]) -> Option<(u64, usize)> {
    let n = b.iter().take_while(|d| d.is_ascii_digit()).count();
    if !(8..=18).contains(&n) || b.get(n) != Some(&b'e') || b.first() == Some(&b'0') {
        return None;
    }
    let v = b
        .get(..n)?
        .iter()
        .fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
    Some((v, n))
}

/// Names sent to the checking thread at a time.
const NAME_BATCH: usize = 1 << 14;

/// `6:length` as a little-endian word.
const LENGTH_KEY: u64 = u64::from_le_bytes(*b"6:length");
/// `4:path` as the low six bytes of a little-endian word.
const PATH_KEY: u64 = u64::from_le_bytes(*b"4:path\0\0");
/// `4:pathl` (the key and the start of its list) as the low seven bytes of a little-endian
/// word.
const PATH_LIST_KEY: u64 = u64::from_le_bytes(*b"4:pathl\0");

/// Whether `key` sorts strictly after `prev`, deciding on the first byte when it can.
#[inline(always)]
fn sorts_after(key: &[u8], prev: &[u8]) -> bool {
    match (key.first(), prev.first()) {
        (Some(a), Some(b)) if a != b => a > b,
        _ => key > prev,
    }
}

/// The hash a path below the root starts from.
const ROOT_HASH: u64 = 0x243f_6a88_85a3_08d3;

/// A path hash `h` extended by one more component, ASCII case folded: a name hash for the
/// layout's collision check. Components hold no `/`, so a path splits into them one way only,
/// and equal paths (ignoring ASCII case) hash alike. Two words at a time through a folded
/// 64x64-bit multiplication, which mixes every input bit into both halves of the result.
///
/// The folding is coarser than ASCII case: it sets the `0x20` bit of every ASCII byte, so
/// that `[` and `{`, say, also hash alike. Names that hash alike are only suspects, which the
/// exact comparison then clears; names equal but for case always hash alike.
#[inline(always)]
fn chain(h: u64, component: &[u8]) -> u64 {
    const P0: u64 = 0xa076_1d64_78bd_642f;
    const P1: u64 = 0xe703_7ed1_a0b4_28db;
    const P2: u64 = 0x8ebc_6af0_9c88_c6e3;
    let len = component.len();
    let mut h = h ^ (len as u64).wrapping_mul(P2);
    let word = |at: usize| fold_case(path::word(component.get(at..at + 8).unwrap_or_default()));
    let mut at = 0;
    while len - at > 24 {
        h = fold(word(at) ^ h, word(at + 8) ^ P1);
        at += 16;
    }
    // The last 9 to 24 bytes (or all of fewer): the last word overlapping what came before,
    // the length being in the hash already; of three words, the third multiplied into the
    // second (a multiplication by an odd number spreads each byte over those above it, so
    // that a difference in the bytes the two share does not cancel out); padded with zeros
    // when there are fewer than eight.
    let left = len - at;
    let (a, b) = if left > 16 {
        (word(at), word(at + 8) ^ word(len - 8).wrapping_mul(P2))
    } else if left > 8 {
        (word(at), word(len - 8))
    } else if len == 8 {
        (word(0), 0)
    } else {
        (fold_case(path::tail_word(component, 0)), 0)
    };
    fold(a ^ h ^ P0, b ^ P1)
}

/// `w` with the `0x20` bit set in each ASCII byte (see [`chain`]).
#[inline(always)]
fn fold_case(w: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    w | ((!w & HIGH) >> 2)
}

/// The two halves of the 128-bit product of `a` and `b`, xored.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// What a file dictionary holds.
struct Entry {
    values: usize,
    length: Option<i64>,
    attributes: FileAttributes,
    mtime: i64,
    list: Option<PathList>,
}

/// What [`FileList::path_list`] read.
struct PathList {
    count: usize,
    /// Sanitising leaves every component as it is.
    plain: bool,
    /// One of them holds a `_`.
    underscore: bool,
    /// The encoded components, between the list's `l` and `e`.
    inner: (usize, usize),
    /// The last component: where its encoding starts, and where its bytes start.
    last: (usize, usize),
    /// The length of the path as `/component/component…` (when sanitising leaves it alone).
    bytes: usize,
}

/// A position in the input, read forward; every read is of canonical bencode or `None`.
struct Cursor<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn byte(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    /// A byte string (`<len>:<bytes>`, no leading zeros): its payload. Lengths of one or
    /// two digits (nearly all keys and names) are read without a loop.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a [u8]> {
        let input = self.input;
        let pos = self.pos;
        let d0 = input.get(pos).copied().unwrap_or(0).wrapping_sub(b'0');
        let b1 = input.get(pos + 1).copied().unwrap_or(0);
        let b2 = input.get(pos + 2).copied().unwrap_or(0);
        let d1 = b1.wrapping_sub(b'0');
        let (len, payload) = if d0 < 10 && b1 == b':' {
            (usize::from(d0), pos + 2)
        } else if (1..10).contains(&d0) && d1 < 10 && b2 == b':' {
            (usize::from(d0) * 10 + usize::from(d1), pos + 3)
        } else {
            self.long_length()?
        };
        let end = payload.checked_add(len)?;
        let s = input.get(payload..end)?;
        self.pos = end;
        Some(s)
    }

    /// The length of a byte string of three or more digits, and where its payload starts.
    #[inline(never)]
    fn long_length(&self) -> Option<(usize, usize)> {
        let input = self.input;
        let first = self.pos;
        let mut i = first;
        let mut len = 0usize;
        while let Some(&d) = input.get(i) {
            let v = d.wrapping_sub(b'0');
            if v >= 10 {
                break;
            }
            len = len.checked_mul(10)?.checked_add(usize::from(v))?;
            i += 1;
        }
        let n = i - first;
        // No digits, a leading zero, or more digits than any input needs.
        if n == 0 || n > 12 || (n > 1 && input.get(first) == Some(&b'0')) {
            return None;
        }
        (input.get(i) == Some(&b':')).then_some((len, i + 1))
    }

    /// An integer (`i<digits>e`, no leading zeros, no `-0`, within `i64`). Non-negative
    /// integers of up to seven digits (nearly all file lengths) are read eight bytes at once.
    #[inline(always)]
    fn int(&mut self) -> Option<i64> {
        let input = self.input;
        if input.get(self.pos) != Some(&b'i') {
            return None;
        }
        let at = self.pos + 1;
        if let Some((v, n)) = input.get(at..at + 8).map(path::word).and_then(uint_digits) {
            self.pos = at + n + 1;
            return i64::try_from(v).ok();
        }
        self.long_int()
    }

    /// [`int`](Self::int) one byte at a time: negative numbers and long ones.
    #[inline(never)]
    fn long_int(&mut self) -> Option<i64> {
        let input = self.input;
        let mut i = self.pos + 1;
        let neg = input.get(i) == Some(&b'-');
        if neg {
            i += 1;
        }
        let digits = i;
        while input.get(i).is_some_and(|d| d.wrapping_sub(b'0') < 10) {
            i += 1;
        }
        let n = i - digits;
        // Nineteen digits always fit in a u64.
        if input.get(i) != Some(&b'e')
            || n == 0
            || n > 19
            || (n > 1 && input.get(digits) == Some(&b'0'))
        {
            return None;
        }
        let magnitude = input
            .get(digits..i)?
            .iter()
            .fold(0u64, |m, &d| m * 10 + u64::from(d - b'0'));
        if neg && magnitude == 0 {
            return None;
        }
        let value = if neg {
            0i64.checked_sub_unsigned(magnitude)?
        } else {
            i64::try_from(magnitude).ok()?
        };
        self.pos = i + 1;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use tessera_bencode::{put_bytes, put_int};

    use crate::fuzzing::readers_agree;
    use crate::torrent::Metainfo;

    /// A value in a file dictionary, encoded as given.
    #[derive(Debug, Clone)]
    enum Val {
        Int(i64),
        /// An integer with a leading zero.
        Padded(i64),
        Str(Vec<u8>),
        List(Vec<Vec<u8>>),
        IntList,
    }

    fn encode_val(v: &Val, out: &mut Vec<u8>) {
        match v {
            Val::Int(n) => put_int(out, *n),
            Val::Padded(n) => out.extend_from_slice(format!("i0{n}e").as_bytes()),
            Val::Str(s) => put_bytes(out, s),
            Val::List(parts) => {
                out.push(b'l');
                for p in parts {
                    put_bytes(out, p);
                }
                out.push(b'e');
            }
            Val::IntList => out.extend_from_slice(b"li1ee"),
        }
    }

    /// A file dictionary: its entries, written sorted unless `scramble`.
    fn encode_file(entries: &[(Vec<u8>, Val)], scramble: bool, out: &mut Vec<u8>) {
        let mut entries = entries.to_vec();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        if scramble {
            entries.reverse();
        }
        out.push(b'd');
        for (k, v) in &entries {
            put_bytes(out, k);
            encode_val(v, out);
        }
        out.push(b'e');
    }

    /// A v1 torrent with the encoded file list `files`, `total` bytes long in 16 KiB pieces,
    /// padded with a comment of `pad` bytes.
    fn torrent(files: &[u8], name: &[u8], total: u64, pad: usize) -> Vec<u8> {
        let mut out = b"d7:comment".to_vec();
        put_bytes(&mut out, &vec![b'c'; pad]);
        out.extend_from_slice(b"4:infod5:files");
        out.extend_from_slice(files);
        out.extend_from_slice(b"4:name");
        put_bytes(&mut out, name);
        out.extend_from_slice(b"12:piece lengthi16384e6:pieces");
        let pieces = total.div_ceil(16_384) as usize;
        put_bytes(&mut out, &vec![7u8; pieces * 20]);
        out.extend_from_slice(b"ee");
        out
    }

    /// A torrent of plain files at `paths`, each 1,000 bytes.
    fn plain(paths: &[&[&str]], pad: usize) -> Vec<u8> {
        let mut list = vec![b'l'];
        for p in paths {
            let parts = p.iter().map(|c| c.as_bytes().to_vec()).collect();
            let entries = [
                (b"length".to_vec(), Val::Int(1000)),
                (b"path".to_vec(), Val::List(parts)),
            ];
            encode_file(&entries, false, &mut list);
        }
        list.push(b'e');
        torrent(&list, b"root", 1000 * paths.len() as u64, pad)
    }

    /// Parses `data`, checks that the general reader agrees, and says whether the list was read
    /// in one pass.
    fn parse(data: &[u8]) -> (Result<Metainfo, crate::Error>, bool) {
        let m = Metainfo::from_bytes(data.to_vec());
        let deferred = m.as_ref().is_ok_and(|m| m.files().is_deferred());
        readers_agree(data, &m);
        (m, deferred)
    }

    #[test]
    fn usual_lists_are_read_in_one_pass() {
        for pad in [0, 70_000] {
            let data = plain(&[&["a.txt"], &["dir", "b.txt"], &["dir", "sub", "c"]], pad);
            let (m, deferred) = parse(&data);
            let m = m.unwrap();
            assert!(deferred);
            let files: Vec<_> = m.files().iter().map(|f| (f.path, f.offset)).collect();
            assert_eq!(
                files,
                [
                    ("root/a.txt", 0),
                    ("root/dir/b.txt", 1000),
                    ("root/dir/sub/c", 2000)
                ]
            );
            let last = m.files().last().unwrap();
            assert_eq!(
                last.path_components(),
                [b"dir".to_vec(), b"sub".to_vec(), b"c".to_vec()]
            );
            assert_eq!(m.total_length(), 3000);
        }
    }

    #[test]
    fn repeated_names_are_renamed_as_by_the_general_reader() {
        // With and without the second thread (files of 64 KiB and more are hashed on one).
        for pad in [0, 70_000] {
            let data = plain(&[&["d", "x"], &["D", "X"], &["d"], &["e", "f"]], pad);
            let (m, deferred) = parse(&data);
            let m = m.unwrap();
            assert!(deferred || m.files().iter().any(|f| f.path.contains(".1")));
            let paths: Vec<_> = m.files().iter().map(|f| f.path).collect();
            assert_eq!(paths, ["root/d/x", "root/D/X.1", "root/d.1", "root/e/f"]);
            // Renamed files keep their raw components.
            assert_eq!(
                m.files().get(1).unwrap().path_components(),
                [b"D".to_vec(), b"X".to_vec()]
            );
        }
    }

    #[test]
    fn unusual_lists_are_left_to_the_general_reader() {
        let file = |entries: Vec<(&[u8], Val)>, scramble: bool| {
            let entries: Vec<_> = entries.into_iter().map(|(k, v)| (k.to_vec(), v)).collect();
            let mut list = vec![b'l'];
            encode_file(&entries, scramble, &mut list);
            list.push(b'e');
            torrent(&list, b"root", 10, 0)
        };
        let path = || Val::List(vec![b"a".to_vec()]);
        let cases = [
            file(vec![(b"length", Val::Int(10)), (b"path", path())], true),
            file(vec![(b"length", Val::Padded(10)), (b"path", path())], false),
            file(
                vec![
                    (b"attr", Val::Str(b"l".to_vec())),
                    (b"length", Val::Int(10)),
                    (b"path", path()),
                    (b"symlink path", path()),
                ],
                false,
            ),
            file(
                vec![
                    (b"length", Val::Int(10)),
                    (b"path", path()),
                    (b"x", Val::IntList),
                ],
                false,
            ),
            file(
                vec![(b"length", Val::Int(10)), (b"path", Val::List(vec![]))],
                false,
            ),
            file(vec![(b"length", Val::Int(-10)), (b"path", path())], false),
        ];
        for data in cases {
            let (_, deferred) = parse(&data);
            assert!(!deferred, "{}", data.escape_ascii());
        }
        // Sanitised components are fine.
        let (m, deferred) = parse(&plain(&[&["..", "a\\b", ""]], 0));
        assert!(deferred);
        assert_eq!(m.unwrap().files().first().unwrap().path, "root/ab/_");
    }

    fn component() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => prop::sample::select(vec![
                &b"a"[..], b"A", b"dir", b"Dir", b"x.txt", b"X.TXT", b"..", b".", b"", b"a/b",
                b"a\\b", "caf\u{e9}".as_bytes(), b"\xff\xfe", b"_____padding_file_1", b"CON",
                b"e4:name", b"\xe2\x80\x8e", b"con.txt",
            ])
            .prop_map(<[u8]>::to_vec),
            1 => prop::collection::vec(prop::sample::select(&b"aB_.-/ \xc3\xa9"[..]), 0..12),
            1 => (230usize..260).prop_map(|n| vec![b'n'; n]),
        ]
    }

    fn value() -> impl Strategy<Value = Val> {
        prop_oneof![
            6 => (0i64..40_000).prop_map(Val::Int),
            1 => prop::sample::select(vec![-1i64, 0, 1 << 50]).prop_map(Val::Int),
            1 => (0i64..99).prop_map(Val::Padded),
            1 => component().prop_map(Val::Str),
            4 => prop::collection::vec(component(), 0..4).prop_map(Val::List),
            1 => Just(Val::IntList),
        ]
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        prop::sample::select(vec![
            &b"length"[..],
            b"path",
            b"path.utf-8",
            b"attr",
            b"mtime",
            b"symlink path",
            b"md5sum",
            b"ed2k",
            b"",
        ])
        .prop_map(<[u8]>::to_vec)
    }

    /// File dictionaries, mostly of the usual shape.
    fn file() -> impl Strategy<Value = (Vec<(Vec<u8>, Val)>, bool)> {
        let usual = (0i64..40_000, prop::collection::vec(component(), 1..4)).prop_map(|(n, p)| {
            vec![
                (b"length".to_vec(), Val::Int(n)),
                (b"path".to_vec(), Val::List(p)),
            ]
        });
        let attrs = prop::sample::select(vec![&b"p"[..], b"x", b"l", b"ph", b""]);
        let with_extras = (
            0i64..40_000,
            prop::collection::vec(component(), 1..4),
            prop::option::of(attrs),
            prop::option::of(0i64..2_000_000_000),
            prop::option::of(prop::collection::vec(component(), 1..3)),
        )
            .prop_map(|(n, p, attr, mtime, utf8)| {
                let mut e = vec![
                    (b"length".to_vec(), Val::Int(n)),
                    (b"path".to_vec(), Val::List(p)),
                ];
                if let Some(a) = attr {
                    e.push((b"attr".to_vec(), Val::Str(a.to_vec())));
                }
                if let Some(t) = mtime {
                    e.push((b"mtime".to_vec(), Val::Int(t)));
                }
                if let Some(u) = utf8 {
                    e.push((b"path.utf-8".to_vec(), Val::List(u)));
                }
                e
            });
        let anything = prop::collection::btree_map(key(), value(), 0..5)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>());
        (
            prop_oneof![6 => usual, 3 => with_extras, 1 => anything],
            prop::bool::weighted(0.05),
        )
    }

    /// The length a file dictionary gives, for the piece count (0 if none).
    fn length_of(entries: &[(Vec<u8>, Val)]) -> u64 {
        entries
            .iter()
            .find(|(k, _)| k == b"length")
            .and_then(|(_, v)| match v {
                Val::Int(n) | Val::Padded(n) => u64::try_from(*n).ok(),
                _ => None,
            })
            .filter(|&n| n < 1 << 40)
            .unwrap_or(0)
    }

    #[test]
    fn one_pass_reader_agrees_with_the_general_reader() {
        let strategy = (
            prop::collection::vec(file(), 1..12),
            prop::sample::select(vec![&b"root"[..], b"my_root", b"_____padding_file_", b""]),
            prop::bool::weighted(0.2),
        );
        let mut runner = TestRunner::new(Config::with_cases(1500));
        let taken = std::cell::Cell::new(0usize);
        let cases = std::cell::Cell::new(0usize);
        runner
            .run(&strategy, |(files, name, big)| {
                let mut list = vec![b'l'];
                let mut total = 0u64;
                for (entries, scramble) in &files {
                    encode_file(entries, *scramble, &mut list);
                    total += length_of(entries);
                }
                list.push(b'e');
                let data = torrent(&list, name, total, if big { 70_000 } else { 0 });
                // `parse` checks the agreement.
                let (_, deferred) = parse(&data);
                cases.set(cases.get() + 1);
                taken.set(taken.get() + usize::from(deferred));
                Ok(())
            })
            .unwrap();
        // The comparison means something only if the one-pass reader took many of them.
        let (taken, cases) = (taken.get(), cases.get());
        // About 27% are taken; a fifth leaves room for chance (some 6 standard deviations).
        assert!(taken * 5 > cases, "{taken} of {cases}");
    }

    /// Name hashes that collided would only cost the exact comparison, but they must not
    /// collide for the names torrents are made of: runs of numbered names of every length
    /// (across the 8, 16 and 24 byte steps of the hash), differing in one place.
    #[test]
    fn name_hashes_tell_numbered_names_apart() {
        let mut names: Vec<String> = Vec::new();
        for i in 0..20_000 {
            names.push(format!("{i}"));
            names.push(format!("IMG_{i:05}.JPG"));
            names.push(format!("file-number-{i:06}.dat"));
            names.push(format!("f-{i:06}.d"));
            names.push(format!("{i:020}"));
            names.push(format!("{i:024}"));
            names.push(format!("a{i:016}b"));
            names.push(format!("part-{:04}-of-{:04}.rar", i % 150, i / 150));
            names.push(format!("track {i:05} - a long title of the song.flac"));
            names.push(format!("{i:05}{}", "x".repeat(i % 40)));
            names.push(format!("{}{i:05}", "y".repeat(i % 33)));
        }
        names.sort();
        names.dedup();
        let hashes: std::collections::HashSet<u64> = names
            .iter()
            .map(|n| super::chain(super::ROOT_HASH, n.as_bytes()))
            .collect();
        assert_eq!(hashes.len(), names.len());
        // Names equal but for ASCII case hash alike, in a directory or not.
        let dir = super::chain(super::ROOT_HASH, b"Dir");
        assert_eq!(
            super::chain(dir, b"File-Number-000001.DAT"),
            super::chain(
                super::chain(super::ROOT_HASH, b"dIR"),
                b"file-number-000001.dat"
            )
        );
    }

    /// File lengths of every number of digits the one-pass reader reads (one to seven in a
    /// word, eight to eighteen one by one), and ones it leaves to the general reader.
    #[test]
    fn lengths_of_every_size() {
        let lengths = [
            0u64,
            7,
            9_999_999,
            10_000_000,
            123_456_789_012,
            1_000_000_000_000,
        ];
        let mut list = vec![b'l'];
        for (i, n) in lengths.iter().enumerate() {
            list.extend_from_slice(b"d6:length");
            put_int(&mut list, *n as i64);
            list.extend_from_slice(b"4:pathl3:dir");
            put_bytes(&mut list, format!("file-{i}").as_bytes());
            list.extend_from_slice(b"ee");
        }
        list.push(b'e');
        let total: u64 = lengths.iter().sum();
        let piece_length = 1u64 << 28;
        let build = |list: &[u8]| {
            let mut out = b"d4:infod5:files".to_vec();
            out.extend_from_slice(list);
            out.extend_from_slice(b"4:name4:root12:piece length");
            put_int(&mut out, piece_length as i64);
            out.extend_from_slice(b"6:pieces");
            put_bytes(
                &mut out,
                &vec![7u8; total.div_ceil(piece_length) as usize * 20],
            );
            // Room after the list for the reader's window.
            out.extend_from_slice(b"7:padding");
            put_bytes(&mut out, &[b'p'; 200]);
            out.extend_from_slice(b"ee");
            out
        };
        let (m, deferred) = parse(&build(&list));
        let m = m.unwrap();
        assert!(deferred);
        let got: Vec<u64> = m.files().iter().map(|f| f.length).collect();
        assert_eq!(got, lengths);
        // A leading zero, a negative length and a nineteen-digit one: each its own verdict,
        // the same from both readers.
        for bad in [&b"i012345678e"[..], b"i-5e", b"i1000000000000000000e"] {
            let text =
                String::from_utf8_lossy(&list).replace("i10000000e", &String::from_utf8_lossy(bad));
            // `parse` checks that both readers give the same.
            let (m, deferred) = parse(&build(text.as_bytes()));
            assert!(m.is_err() || !deferred, "{}", String::from_utf8_lossy(bad));
        }
    }

    /// Lists where files share directories as in real torrents, so that most paths start
    /// with the directory of the file before, in whole or in part: the reader takes those
    /// components as checked, and must still give what the general reader gives (limits,
    /// the padding marker, repeated names and a name that is also a directory's).
    #[test]
    fn shared_directories_agree_with_the_general_reader() {
        let owned = |parts: &[&[u8]]| parts.iter().map(|c| c.to_vec()).collect::<Vec<_>>();
        let long = vec![b'x'; 99];
        let dirs = prop::sample::select(vec![
            owned(&[]),
            owned(&[b"a"]),
            owned(&[b"a", b"b"]),
            owned(&[b"a", b"b", b"c"]),
            owned(&[b"A", b"b"]),
            owned(&[b"a", b"b_c"]),
            owned(&[b"d"]),
            owned(&[b"_____padding_file_7"]),
            owned(&[&long]),
        ]);
        let names = prop_oneof![
            12 => (0u32..400).prop_map(|i| format!("f{i}.dat").into_bytes()),
            1 => prop::sample::select(vec![
                &b"b"[..], b"B", b"c", b"_____padding_file_1", b"..", b".", b"a\\b", b"\xc3\xa9",
            ])
            .prop_map(<[u8]>::to_vec),
            1 => (95usize..105).prop_map(|n| vec![b'n'; n]),
        ];
        let strategy = (
            prop::collection::vec((dirs, names, 0i64..40_000), 1..40),
            prop::sample::select(vec![2usize, 3, 100, 100, 100]),
            prop::bool::weighted(0.2),
        );
        let mut runner = TestRunner::new(Config::with_cases(500));
        let taken = std::cell::Cell::new(0usize);
        runner
            .run(&strategy, |(files, depth, big)| {
                let mut list = vec![b'l'];
                let mut total = 0u64;
                for (dir, name, length) in &files {
                    let mut parts = dir.clone();
                    parts.push(name.clone());
                    let entries = [
                        (b"length".to_vec(), Val::Int(*length)),
                        (b"path".to_vec(), Val::List(parts)),
                    ];
                    encode_file(&entries, false, &mut list);
                    total += *length as u64;
                }
                list.push(b'e');
                let data = torrent(&list, b"root", total, if big { 70_000 } else { 0 });
                let opts = crate::ParseOptions {
                    max_path_depth: depth,
                    ..crate::ParseOptions::default()
                };
                let m = Metainfo::from_bytes_with(data.clone(), &opts);
                let general = crate::torrent::parse_general(&data, &opts);
                prop_assert_eq!(format!("{m:?}"), format!("{general:?}"));
                taken.set(taken.get() + usize::from(m.is_ok_and(|m| m.files().is_deferred())));
                Ok(())
            })
            .unwrap();
        // Repeated names, sanitising and limits leave a good part to the general reader.
        assert!(
            taken.get() > 150,
            "the one-pass reader took {} of 500",
            taken.get()
        );
    }
}
