//! Parsing `.torrent` files: [`Metainfo`], with the same verdicts as libtorrent.

use std::collections::HashSet;
use std::ops::Range;

use bytes::Bytes;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use tessera_bencode::{
    DecodeOptions, DictBuilder, DictRef, Encode, ErrorKind, Irregularity, ListRef, Mode, Value,
    ValueRef, Warning,
};

use crate::error::Error;
use crate::file::{self, FileAttributes, FileEntry, Layout, NewFile};
use crate::hash::{InfoHashes, Sha1Hash, Sha256Hash};
use crate::merkle;
use crate::path;
use crate::url;
use crate::version::TorrentVersion;

/// How strictly the bencode of a torrent file is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strictness {
    /// Accept what libtorrent accepts: unsorted keys, leading zeros and the like are reported as
    /// [`Metainfo::warnings`], except inside the info dictionary of a torrent with
    /// `meta version` (v2 and hybrid), where they are errors.
    #[default]
    Libtorrent,
    /// Reject any non-canonical bencode anywhere in the file.
    Canonical,
}

/// Limits and strictness for [`Metainfo::from_bytes_with`]. The defaults match libtorrent's
/// and make hostile files harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Most pieces accepted (libtorrent: 2^21).
    pub max_pieces: u64,
    /// Most files accepted, padding files included.
    pub max_files: usize,
    /// Longest raw name or path component accepted, in bytes (components are cut to about
    /// 250 bytes when sanitised anyway).
    pub max_name_length: usize,
    /// Most components in one file path or symlink target (libtorrent 2.1: 100).
    pub max_path_depth: usize,
    /// Largest total size of the `piece layers` accepted, in bytes.
    pub max_piece_layer_bytes: u64,
    /// Largest single file accepted (libtorrent: 2^30 - 1 blocks of 16 KiB).
    pub max_file_size: u64,
    /// Deepest bencode nesting accepted (libtorrent's default limit of 100 means 99 levels).
    pub max_depth: usize,
    /// Most bencode values in the file (libtorrent: 3,000,000).
    pub max_tokens: usize,
    /// Most failed attempts at renaming duplicate file names (libtorrent: 500).
    pub max_duplicate_filenames: usize,
    /// How strictly bencode is checked.
    pub strictness: Strictness,
}

/// libtorrent's largest file: `INT_MAX / 2` blocks of 16 KiB.
const LT_MAX_FILE_SIZE: u64 = (i32::MAX as u64 / 2) * merkle::BLOCK_SIZE;
/// libtorrent's largest piece: 32767 blocks of 16 KiB.
const MAX_PIECE_LENGTH: i64 = 32767 * 16384;

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            max_pieces: 0x20_0000,
            max_files: 1 << 20,
            max_name_length: 1 << 16,
            max_path_depth: 100,
            max_piece_layer_bytes: 1 << 28,
            max_file_size: LT_MAX_FILE_SIZE,
            max_depth: 99,
            max_tokens: 3_000_000,
            max_duplicate_filenames: 500,
            strictness: Strictness::Libtorrent,
        }
    }
}

impl ParseOptions {
    fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            mode: match self.strictness {
                Strictness::Libtorrent => Mode::Lenient,
                Strictness::Canonical => Mode::Strict,
            },
            max_depth: self.max_depth,
            max_tokens: self.max_tokens,
        }
    }
}

/// A parsed `.torrent` file (v1, v2 or hybrid).
///
/// Everything is read once in [`from_bytes`](Self::from_bytes); the getters are cheap. The
/// original bytes are kept (shared, not copied), so [`info_bytes`](Self::info_bytes) and
/// [`piece_hash_v1`](Self::piece_hash_v1) are views into them.
#[derive(Debug, Clone)]
pub struct Metainfo {
    data: Bytes,
    decode: DecodeOptions,
    info: Range<usize>,
    info_hashes: InfoHashes,
    version: TorrentVersion,
    name: String,
    name_raw: Range<usize>,
    piece_length: u64,
    num_pieces: usize,
    total_length: u64,
    files: Vec<FileEntry>,
    pieces: Option<Range<usize>>,
    /// Per file (v2 only): the piece layer read from `piece layers`.
    layers: Vec<Option<Vec<Sha256Hash>>>,
    trackers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
    http_seeds: Vec<String>,
    private: bool,
    creation_date: Option<i64>,
    comment: Option<String>,
    created_by: Option<String>,
    dht_nodes: Vec<(String, u16)>,
    similar: Vec<Sha1Hash>,
    collections: Vec<String>,
    extra: Vec<(Vec<u8>, Value)>,
    info_extra: Vec<(Vec<u8>, Value)>,
    warnings: Vec<Warning>,
}

/// Top-level keys that [`Metainfo`] interprets.
const KNOWN_TOP: &[&[u8]] = &[
    b"info",
    b"announce",
    b"announce-list",
    b"nodes",
    b"creation date",
    b"url-list",
    b"httpseeds",
    b"comment",
    b"comment.utf-8",
    b"created by",
    b"created by.utf-8",
    b"piece layers",
    b"similar",
    b"collections",
];

/// Info-dictionary keys that [`Metainfo`] interprets.
const KNOWN_INFO: &[&[u8]] = &[
    b"name",
    b"name.utf-8",
    b"piece length",
    b"pieces",
    b"length",
    b"files",
    b"file tree",
    b"meta version",
    b"private",
    b"similar",
    b"collections",
];

impl Metainfo {
    /// Parses a torrent file with the default [`ParseOptions`].
    ///
    /// # Errors
    /// Anything libtorrent would reject, with the matching [`Error`] variant, and anything past
    /// the default limits.
    pub fn from_bytes(data: impl Into<Bytes>) -> Result<Metainfo, Error> {
        Self::from_bytes_with(data, &ParseOptions::default())
    }

    /// Parses a torrent file with the given limits and strictness.
    ///
    /// # Errors
    /// Anything libtorrent would reject, with the matching [`Error`] variant, and anything past
    /// the limits in `opts`.
    pub fn from_bytes_with(data: impl Into<Bytes>, opts: &ParseOptions) -> Result<Metainfo, Error> {
        let data: Bytes = data.into();
        parse(data, opts)
    }

    /// The v1 and/or v2 info hashes.
    pub fn info_hashes(&self) -> InfoHashes {
        self.info_hashes
    }

    /// v1, v2 or hybrid.
    pub fn version(&self) -> TorrentVersion {
        self.version
    }

    /// The torrent's name as libtorrent reports it: the sanitised `name.utf-8` (or `name`),
    /// which is the root directory of a multi-file torrent or the file name of a single-file
    /// one. (For a single-file v2 torrent that is the file tree's one key.) A name that
    /// sanitises to nothing is replaced by the hex info hash.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw bytes of `name.utf-8` (or `name`) as they appear in the file.
    pub fn name_bytes(&self) -> &[u8] {
        self.data.get(self.name_raw.clone()).unwrap_or_default()
    }

    /// Bytes per piece.
    pub fn piece_length(&self) -> u64 {
        self.piece_length
    }

    /// Number of pieces.
    pub fn num_pieces(&self) -> usize {
        self.num_pieces
    }

    /// Total bytes of all files, padding included.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// The size of piece `index` (the last one may be short; 0 past the end).
    pub fn piece_size(&self, index: usize) -> u64 {
        if index >= self.num_pieces {
            return 0;
        }
        let start = (index as u64).saturating_mul(self.piece_length);
        self.total_length
            .saturating_sub(start)
            .min(self.piece_length)
    }

    /// The files in torrent order, padding files included (for v2 and hybrid torrents, the
    /// padding libtorrent adds after each file to align the next one to a piece).
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// Tracker tiers (BEP 12): `announce-list`, or `announce` alone when that list has no
    /// usable URL. Leading whitespace is trimmed; empty URLs, repeated URLs and empty tiers are
    /// dropped.
    pub fn trackers(&self) -> &[Vec<String>] {
        &self.trackers
    }

    /// BEP 19 web seeds (`url-list`), percent-encoded where needed; for multi-file torrents
    /// each ends with `/`.
    pub fn web_seeds(&self) -> &[String] {
        &self.web_seeds
    }

    /// BEP 17 HTTP seeds (`httpseeds`).
    pub fn http_seeds(&self) -> &[String] {
        &self.http_seeds
    }

    /// True if `private` is set to a non-zero integer (BEP 27).
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// `creation date`, seconds since the epoch, if present and not negative.
    pub fn creation_date(&self) -> Option<i64> {
        self.creation_date
    }

    /// `comment.utf-8` or `comment`, invalid UTF-8 replaced by `_`.
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// `created by.utf-8` or `created by`, invalid UTF-8 replaced by `_`.
    pub fn created_by(&self) -> Option<&str> {
        self.created_by.as_deref()
    }

    /// BEP 5 DHT bootstrap nodes (`nodes`): host and port.
    pub fn dht_nodes(&self) -> &[(String, u16)] {
        &self.dht_nodes
    }

    /// BEP 38 similar torrents: the info dictionary's `similar`, then the top level's.
    pub fn similar(&self) -> &[Sha1Hash] {
        &self.similar
    }

    /// BEP 38 collections: the info dictionary's, then the top level's.
    pub fn collections(&self) -> &[String] {
        &self.collections
    }

    /// The SHA-1 hash of piece `index` (v1 and hybrid torrents).
    pub fn piece_hash_v1(&self, index: usize) -> Option<Sha1Hash> {
        let r = self.pieces.as_ref()?;
        let pieces = self.data.get(r.clone())?;
        let start = index.checked_mul(20)?;
        Sha1Hash::from_slice(pieces.get(start..start.checked_add(20)?)?)
    }

    /// The v2 piece layer of file `file_index`: the hashes from `piece layers` for a file larger
    /// than a piece, the `pieces root` alone for a smaller one. `None` for padding, empty files,
    /// v1 torrents, and files whose layer the torrent does not carry.
    pub fn piece_layer(&self, file_index: usize) -> Option<&[Sha256Hash]> {
        let f = self.files.get(file_index)?;
        if f.is_padding() {
            return None;
        }
        let root = f.pieces_root.as_ref()?;
        if f.length <= self.piece_length {
            return Some(std::slice::from_ref(root));
        }
        self.layers.get(file_index)?.as_deref()
    }

    /// The info dictionary exactly as it appears in the file (what the info hashes are taken
    /// of).
    pub fn info_bytes(&self) -> Bytes {
        self.data.slice(self.info.clone())
    }

    /// The whole file as it was given.
    pub fn as_bytes(&self) -> &Bytes {
        &self.data
    }

    /// Top-level keys this crate does not interpret, in file order, with their values.
    pub fn extra_fields(&self) -> &[(Vec<u8>, Value)] {
        &self.extra
    }

    /// Info-dictionary keys this crate does not interpret, in file order, with their values.
    /// They are part of the info hash, and [`to_bytes`](Self::to_bytes) keeps them.
    pub fn info_extra_fields(&self) -> &[(Vec<u8>, Value)] {
        &self.info_extra
    }

    /// Non-canonical bencode that was accepted (unsorted keys, leading zeros, trailing data...).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Writes the torrent out: the top-level dictionary in canonical form (sorted keys, the
    /// first of any duplicate key), with the info dictionary copied byte for byte so that the
    /// info hashes do not change.
    pub fn to_bytes(&self) -> Vec<u8> {
        let Ok(doc) = self.decode.decode(&self.data) else {
            return self.data.to_vec();
        };
        let Some(root) = doc.root().as_dict() else {
            return self.data.to_vec();
        };
        let info_raw = self.data.get(self.info.clone()).unwrap_or_default();
        let mut seen: HashSet<&[u8]> = HashSet::new();
        let mut b = DictBuilder::new();
        for (k, v) in root.iter() {
            if !seen.insert(k) {
                continue;
            }
            if k == b"info" {
                b.entry_with(k, |out| out.extend_from_slice(info_raw));
            } else {
                b.entry_with(k, |out| v.encode(out));
            }
        }
        let mut out = Vec::with_capacity(self.data.len());
        b.finish(&mut out);
        out
    }
}

/// libtorrent's `dict_find_int_value`: the integer under `key`, or `default`.
fn int_or(d: &DictRef<'_, '_>, key: &[u8], default: i64) -> i64 {
    d.get_int(key).unwrap_or(default)
}

/// The first string under either key (`x.utf-8` preferred).
fn string_pref<'d, 'a>(d: &DictRef<'d, 'a>, a: &[u8], b: &[u8]) -> Option<ValueRef<'d, 'a>> {
    d.get(a)
        .filter(|v| v.as_bytes().is_some())
        .or_else(|| d.get(b).filter(|v| v.as_bytes().is_some()))
}

/// The first list under either key (`x.utf-8` preferred).
fn list_pref<'d, 'a>(d: &DictRef<'d, 'a>, a: &[u8], b: &[u8]) -> Option<ListRef<'d, 'a>> {
    d.get_list(a).or_else(|| d.get_list(b))
}

struct Ctx<'o> {
    opts: &'o ParseOptions,
}

impl Ctx<'_> {
    fn check_name(&self, raw: &[u8]) -> Result<(), Error> {
        if raw.len() > self.opts.max_name_length {
            return Err(Error::NameTooLong {
                len: raw.len(),
                limit: self.opts.max_name_length,
            });
        }
        Ok(())
    }

    /// Checks a list of path components (all strings, within the limits) and returns them.
    fn components<'a>(&self, list: &ListRef<'_, 'a>) -> Result<Vec<&'a [u8]>, Error> {
        if list.len() > self.opts.max_path_depth {
            return Err(Error::DirectoryTooDeep {
                depth: list.len(),
                limit: self.opts.max_path_depth,
            });
        }
        let mut out = Vec::with_capacity(list.len());
        for e in list.iter() {
            let b = e.as_bytes().ok_or(Error::InvalidName)?;
            self.check_name(b)?;
            out.push(b);
        }
        Ok(out)
    }

    /// libtorrent's file size rules; symlinks take no space.
    fn file_size(&self, d: &DictRef<'_, '_>, attrs: FileAttributes) -> Result<u64, Error> {
        let len = if attrs.symlink {
            0
        } else {
            int_or(d, b"length", -1)
        };
        let Ok(size) = u64::try_from(len) else {
            return Err(Error::InvalidLength { length: len });
        };
        if size / merkle::BLOCK_SIZE >= i32::MAX as u64 / 2 || size > LT_MAX_FILE_SIZE {
            return Err(Error::InvalidLength { length: len });
        }
        if size > self.opts.max_file_size {
            return Err(Error::FileTooLarge {
                len: size,
                limit: self.opts.max_file_size,
            });
        }
        Ok(size)
    }

    fn symlink_path(&self, d: &DictRef<'_, '_>) -> Result<Option<String>, Error> {
        let Some(list) = d.get_list(b"symlink path") else {
            return Ok(None);
        };
        let mut s = String::new();
        for e in self.components(&list)? {
            path::append_element(&mut s, e);
        }
        Ok(Some(s))
    }

    /// One file of a v1 file list, or (`top_level`) the info dictionary of a single-file
    /// torrent.
    fn v1_file(
        &self,
        v: ValueRef<'_, '_>,
        out: &mut Layout,
        root_dir: &str,
        top_level: bool,
    ) -> Result<(), Error> {
        let d = v.as_dict().ok_or(Error::FileParseFailed)?;
        let mut attrs = FileAttributes::from_attr(d.get_bytes(b"attr").unwrap_or_default());
        let size = self.file_size(&d, attrs)?;
        let mtime = int_or(&d, b"mtime", 0);
        let mut path = root_dir.to_owned();
        let mut components: Vec<Vec<u8>> = Vec::new();
        if top_level {
            let name = string_pref(&d, b"name.utf-8", b"name")
                .and_then(|n| n.as_bytes())
                .filter(|n| !n.is_empty())
                .ok_or(Error::MissingName)?;
            self.check_name(name)?;
            path::append_element(&mut path, name);
            if path.is_empty() {
                return Err(Error::MissingName);
            }
            components.push(name.to_vec());
        } else {
            match list_pref(&d, b"path.utf-8", b"path").filter(|l| !l.is_empty()) {
                Some(list) => {
                    let parts = self.components(&list)?;
                    let orig = path.len();
                    for p in &parts {
                        path::append_element(&mut path, p);
                    }
                    if path.len() == orig {
                        path.push_str("/_");
                    }
                    components = parts.into_iter().map(<[u8]>::to_vec).collect();
                }
                None if attrs.padding => path = format!(".pad/{size}"),
                None => return Err(Error::MissingName),
            }
        }
        if path.contains("_____padding_file_") {
            attrs.padding = true;
        }
        let mut symlink = String::new();
        if attrs.symlink {
            match self.symlink_path(&d)? {
                Some(s) => symlink = s,
                None => attrs.symlink = false,
            }
        }
        out.add(NewFile {
            path,
            components,
            length: size,
            attributes: attrs,
            symlink,
            pieces_root: None,
            mtime,
        })
    }

    /// A v2 file (the dictionary under a file tree leaf's empty key).
    fn v2_file(
        &self,
        v: ValueRef<'_, '_>,
        out: &mut Layout,
        path: String,
        components: Vec<Vec<u8>>,
    ) -> Result<(), Error> {
        let d = v.as_dict().ok_or(Error::FileParseFailed)?;
        let attrs = FileAttributes::from_attr(d.get_bytes(b"attr").unwrap_or_default());
        if attrs.padding {
            return Err(Error::InvalidPadFile);
        }
        let size = self.file_size(&d, attrs)?;
        let mtime = int_or(&d, b"mtime", 0);
        let symlink = if attrs.symlink {
            self.symlink_path(&d)?.unwrap_or_default()
        } else {
            String::new()
        };
        let mut pieces_root = None;
        if symlink.is_empty() && size > 0 {
            let root = d
                .get_bytes(b"pieces root")
                .and_then(Sha256Hash::from_slice)
                .ok_or(Error::MissingPiecesRoot)?;
            if root.is_zero() {
                return Err(Error::MissingPiecesRoot);
            }
            pieces_root = Some(root);
        }
        out.add(NewFile {
            path,
            components,
            length: size,
            attributes: attrs,
            symlink,
            pieces_root,
            mtime,
        })
    }

    /// Walks a v2 file tree without recursion.
    fn file_tree(
        &self,
        tree: DictRef<'_, '_>,
        out: &mut Layout,
        name: &str,
        has_files: bool,
    ) -> Result<(), Error> {
        struct Frame<'d, 'a> {
            iter: tessera_bencode::DictIter<'d, 'a>,
            path: String,
            components: Vec<Vec<u8>>,
            single_candidate: bool,
        }
        let mut stack = vec![Frame {
            iter: tree.iter(),
            path: name.to_owned(),
            components: Vec::new(),
            single_candidate: !has_files && tree.len() == 1,
        }];
        while let Some(frame) = stack.last_mut() {
            let Some((key, value)) = frame.iter.next() else {
                stack.pop();
                continue;
            };
            let sub = value.as_dict().ok_or(Error::FileParseFailed)?;
            if key.is_empty() {
                return Err(Error::FileParseFailed);
            }
            self.check_name(key)?;
            let leaf = sub.len() == 1 && sub.iter().next().is_some_and(|(k, _)| k.is_empty());
            let single = leaf && frame.single_candidate;
            let mut path = if single {
                String::new()
            } else {
                frame.path.clone()
            };
            // Leading '/' are stripped before sanitising (so "//" becomes an empty name, "_").
            let stripped = key.get(key.iter().take_while(|&&b| b == b'/').count()..);
            path::append_element(&mut path, stripped.unwrap_or_default());
            let mut components = frame.components.clone();
            components.push(key.to_vec());
            if leaf {
                if let Some((_, f)) = sub.iter().next() {
                    self.v2_file(f, out, path, components)?;
                }
                continue;
            }
            if stack.len() > self.opts.max_path_depth {
                return Err(Error::DirectoryTooDeep {
                    depth: stack.len(),
                    limit: self.opts.max_path_depth,
                });
            }
            stack.push(Frame {
                iter: sub.iter(),
                path,
                components,
                single_candidate: false,
            });
        }
        Ok(())
    }
}

fn sha1_of(b: &[u8]) -> Sha1Hash {
    Sha1Hash(Sha1::digest(b).into())
}

fn parse(data: Bytes, opts: &ParseOptions) -> Result<Metainfo, Error> {
    let decode = opts.decode_options();
    let doc = decode.decode(&data)?;
    let root = doc.root().as_dict().ok_or(Error::NotADictionary)?;
    let info = root.get_dict(b"info").ok_or(Error::MissingInfo)?;
    let info_span = info.as_value().span();
    let info_raw = info.as_value().raw();

    // libtorrent reads `meta version` as a C int.
    let version = int_or(&info, b"meta version", -1) as i32;
    if version > 0 {
        let soft = doc.warnings().iter().find(|w| {
            w.offset > info_span.start
                && w.offset < info_span.end
                && matches!(
                    w.kind,
                    Irregularity::LeadingZeros
                        | Irregularity::UnsortedKeys
                        | Irregularity::DuplicateKey
                )
        });
        if let Some(w) = soft {
            return Err(Error::InvalidBencoding(tessera_bencode::Error {
                kind: ErrorKind::NonCanonical(w.kind),
                offset: w.offset,
                path: w.path.clone(),
            }));
        }
        if version > 2 {
            return Err(Error::UnknownVersion {
                version: i64::from(version),
            });
        }
    }
    let is_v2 = version >= 2;

    let pl = int_or(&info, b"piece length", -1);
    if pl <= 0 || pl > MAX_PIECE_LENGTH {
        return Err(Error::MissingPieceLength { piece_length: pl });
    }
    if is_v2 && (pl < merkle::BLOCK_SIZE as i64 || pl & (pl - 1) != 0) {
        return Err(Error::MissingPieceLength { piece_length: pl });
    }
    let piece_length = pl as u64;
    let ctx = Ctx { opts };

    let name_val = string_pref(&info, b"name.utf-8", b"name").ok_or(Error::MissingName)?;
    let name_raw = name_val.as_bytes().unwrap_or_default();
    ctx.check_name(name_raw)?;
    let mut name = String::new();
    path::append_element(&mut name, name_raw);
    let mut v1_hash: Option<Sha1Hash> = None;
    if name.is_empty() {
        let h = sha1_of(info_raw);
        v1_hash = Some(h);
        name = h.to_hex();
    }

    let files_node = info.get_list(b"files");
    let file_tree = info.get_dict(b"file tree");
    let mut files = Layout::new(piece_length, opts.max_files);
    let mut v1_files = Layout::new(piece_length, opts.max_files);
    let mut multifile = false;
    if is_v2 {
        let tree = file_tree.ok_or(Error::MissingFileTree)?;
        ctx.file_tree(tree, &mut files, &name, files_node.is_some())?;
        files.sanitize_symlinks();
        multifile = files.len() > 1;
    } else if file_tree.is_some() {
        return Err(Error::MissingMetaVersion);
    }
    let mut has_v1 = true;
    {
        let target = if is_v2 { &mut v1_files } else { &mut files };
        match files_node {
            None => {
                if !is_v2 || info.get(b"length").is_some() {
                    ctx.v1_file(info.as_value(), target, "", true)?;
                    multifile = false;
                } else {
                    has_v1 = false;
                }
            }
            Some(list) => {
                for f in list.iter() {
                    ctx.v1_file(f, target, &name, false)?;
                }
                target.sanitize_symlinks();
                multifile = true;
            }
        }
    }
    if files.len() == 0 {
        return Err(Error::NoFiles);
    }
    if files.name.is_empty() {
        return Err(Error::MissingName);
    }
    if is_v2 && v1_files.len() > 0 {
        if files.len() == v1_files.len() + 1 {
            files.remove_tail_padding();
        }
        if !file::compatible(&files, &v1_files) {
            return Err(Error::InconsistentFiles);
        }
    }
    let total = files.total;
    let too_many = |pieces: u64| Error::TooManyPieces {
        pieces,
        limit: opts.max_pieces,
    };
    if total / piece_length >= i32::MAX as u64 {
        return Err(too_many(total / piece_length));
    }
    let num_pieces = total.div_ceil(piece_length);
    if num_pieces >= i32::MAX as u64 / 20 || num_pieces > opts.max_pieces {
        return Err(too_many(num_pieces));
    }
    let mut pieces = None;
    match info.get(b"pieces").filter(|p| p.as_bytes().is_some()) {
        None if !is_v2 => return Err(Error::MissingPieces),
        None => {}
        Some(p) => {
            let got = p.as_bytes().unwrap_or_default().len() as u64;
            if got != num_pieces * 20 {
                return Err(Error::InvalidHashes {
                    expected: num_pieces * 20,
                    got,
                });
            }
            let span = p.span();
            let payload = span.end - got as usize;
            pieces = Some(payload..span.end);
        }
    }
    let private = int_or(&info, b"private", 0) != 0;
    let mut similar = Vec::new();
    let mut collections = Vec::new();
    read_similar(&info, &mut similar, &mut collections);
    if total == 0 {
        return Err(Error::InvalidLength { length: 0 });
    }

    file::resolve_duplicates(&mut files, opts.max_duplicate_filenames)?;
    let multifile_seeds = multifile && files.len() > 1;
    let name = files.name.clone();
    let mut files = files.files;

    let mut layers: Vec<Option<Vec<Sha256Hash>>> = Vec::new();
    if is_v2 {
        if let Some(pl_dict) = root.get_dict(b"piece layers") {
            layers = piece_layers(pl_dict, &files, piece_length, opts)?;
        }
    }

    read_similar(&root, &mut similar, &mut collections);

    // Info hashes.
    let v1 = if has_v1 {
        Some(v1_hash.unwrap_or_else(|| sha1_of(info_raw)))
    } else {
        None
    };
    let v2 = is_v2.then(|| Sha256Hash(Sha256::digest(info_raw).into()));
    let info_hashes = InfoHashes { v1, v2 };
    let version = match (v1.is_some(), v2.is_some()) {
        (true, true) => TorrentVersion::Hybrid,
        (false, true) => TorrentVersion::V2,
        _ => TorrentVersion::V1,
    };

    // Files: keep the layout's fields; drop anything not needed.
    files.shrink_to_fit();

    let trackers = read_trackers(&root);
    let mut web_seeds = Vec::new();
    let mut http_seeds = Vec::new();
    read_seeds(&root, b"url-list", multifile_seeds, &mut web_seeds);
    read_seeds(&root, b"httpseeds", false, &mut http_seeds);

    let dht_nodes = root
        .get_list(b"nodes")
        .map(|l| {
            l.iter()
                .filter_map(|n| {
                    let n = n.as_list()?;
                    let mut it = n.iter();
                    let host = it.next()?.as_bytes()?;
                    let port = it.next()?.as_int()?;
                    Some((
                        String::from_utf8_lossy(host).into_owned(),
                        u16::try_from(port).ok()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let creation_date = root.get_int(b"creation date").filter(|&d| d >= 0);
    let text = |a: &[u8], b: &[u8]| {
        let v = root
            .get_bytes(a)
            .filter(|s| !s.is_empty())
            .or_else(|| root.get_bytes(b))
            .unwrap_or_default();
        (!v.is_empty()).then(|| path::lossy_utf8(v))
    };
    let comment = text(b"comment.utf-8", b"comment");
    let created_by = text(b"created by.utf-8", b"created by");

    let extra = unknown_keys(&root, KNOWN_TOP);
    let info_extra = unknown_keys(&info, KNOWN_INFO);
    let name_raw = name_val.span();
    let name_raw = (name_raw.end - name_raw_len(name_val))..name_raw.end;
    let warnings = doc.warnings().to_vec();
    drop(doc);

    Ok(Metainfo {
        data,
        decode,
        info: info_span,
        info_hashes,
        version,
        name,
        name_raw,
        piece_length,
        num_pieces: num_pieces as usize,
        total_length: total,
        files,
        pieces,
        layers,
        trackers,
        web_seeds,
        http_seeds,
        private,
        creation_date,
        comment,
        created_by,
        dht_nodes,
        similar,
        collections,
        extra,
        info_extra,
        warnings,
    })
}

fn name_raw_len(v: ValueRef<'_, '_>) -> usize {
    v.as_bytes().map_or(0, <[u8]>::len)
}

fn unknown_keys(d: &DictRef<'_, '_>, known: &[&[u8]]) -> Vec<(Vec<u8>, Value)> {
    d.iter()
        .filter(|(k, _)| !known.contains(k))
        .map(|(k, v)| (k.to_vec(), v.to_owned()))
        .collect()
}

fn read_similar(d: &DictRef<'_, '_>, similar: &mut Vec<Sha1Hash>, collections: &mut Vec<String>) {
    if let Some(l) = d.get_list(b"similar") {
        similar.extend(
            l.iter()
                .filter_map(|v| v.as_bytes().and_then(Sha1Hash::from_slice)),
        );
    }
    if let Some(l) = d.get_list(b"collections") {
        collections.extend(l.iter().filter_map(|v| {
            v.as_bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        }));
    }
}

/// libtorrent's whitespace.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b)
}

fn ltrim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&c| !is_space(c)).unwrap_or(b.len());
    b.get(start..).unwrap_or_default()
}

fn read_trackers(root: &DictRef<'_, '_>) -> Vec<Vec<String>> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut tiers: Vec<Vec<String>> = Vec::new();
    if let Some(list) = root.get_list(b"announce-list") {
        for tier in list.iter() {
            let Some(tier) = tier.as_list() else { continue };
            let mut urls = Vec::new();
            for u in tier.iter() {
                let u = ltrim(u.as_bytes().unwrap_or_default());
                if u.is_empty() {
                    continue;
                }
                let u = String::from_utf8_lossy(u).into_owned();
                if seen.insert(u.clone()) {
                    urls.push(u);
                }
            }
            if !urls.is_empty() {
                tiers.push(urls);
            }
        }
    }
    if tiers.is_empty() {
        let u = ltrim(root.get_bytes(b"announce").unwrap_or_default());
        if !u.is_empty() {
            tiers.push(vec![String::from_utf8_lossy(u).into_owned()]);
        }
    }
    tiers
}

fn read_seeds(root: &DictRef<'_, '_>, key: &[u8], slash: bool, out: &mut Vec<String>) {
    let fix = |b: &[u8]| {
        let mut u = url::maybe_url_encode(b);
        if slash {
            url::ensure_trailing_slash(&mut u);
        }
        u
    };
    let Some(v) = root.get(key) else { return };
    if let Some(b) = v.as_bytes() {
        if !b.is_empty() {
            out.push(fix(b));
        }
    } else if let Some(l) = v.as_list() {
        let mut seen = HashSet::new();
        for u in l.iter() {
            let Some(b) = u.as_bytes().filter(|b| !b.is_empty()) else {
                continue;
            };
            let u = fix(b);
            if seen.insert(u.clone()) {
                out.push(u);
            }
        }
    }
}

/// Reads and verifies `piece layers` against the files' roots.
fn piece_layers(
    d: DictRef<'_, '_>,
    files: &[FileEntry],
    piece_length: u64,
    opts: &ParseOptions,
) -> Result<Vec<Option<Vec<Sha256Hash>>>, Error> {
    let mut roots: std::collections::HashMap<Sha256Hash, usize> = Default::default();
    for (i, f) in files.iter().enumerate() {
        if f.length <= piece_length {
            continue;
        }
        roots.entry(f.pieces_root.unwrap_or_default()).or_insert(i);
    }
    let mut total: u64 = 0;
    let mut out: Vec<Option<Vec<Sha256Hash>>> = Vec::new();
    for (k, v) in d.iter() {
        let layer = v.as_bytes().ok_or(Error::InvalidPieceLayer)?;
        let root = Sha256Hash::from_slice(k).ok_or(Error::InvalidPieceLayer)?;
        if layer.len() % 32 != 0 {
            return Err(Error::InvalidPieceLayer);
        }
        let idx = roots.remove(&root).ok_or(Error::InvalidPieceLayer)?;
        let f = files.get(idx).ok_or(Error::InvalidPieceLayer)?;
        let n = f.length.div_ceil(piece_length);
        if layer.len() as u64 != n.saturating_mul(32) {
            return Err(Error::InvalidPieceLayer);
        }
        total = total.saturating_add(layer.len() as u64);
        if total > opts.max_piece_layer_bytes {
            return Err(Error::PieceLayersTooLarge {
                len: total,
                limit: opts.max_piece_layer_bytes,
            });
        }
        let hashes: Vec<Sha256Hash> = layer
            .chunks_exact(32)
            .filter_map(Sha256Hash::from_slice)
            .collect();
        // With one 16 KiB block per piece the piece layer is the leaf layer itself, which the
        // reference verdicts (libtorrent's corpus) accept unverified: it is checked block by
        // block as data arrives. Larger pieces must reduce to the file's root.
        if piece_length > merkle::BLOCK_SIZE
            && !merkle::verify_piece_layer(&hashes, piece_length, f.length, &root)
        {
            return Err(Error::InvalidPieceLayer);
        }
        if out.is_empty() {
            out.resize(files.len(), None);
        }
        if let Some(slot) = out.get_mut(idx) {
            *slot = Some(hashes);
        }
    }
    Ok(out)
}
