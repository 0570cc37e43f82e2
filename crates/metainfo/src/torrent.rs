//! Parsing `.torrent` files: [`Metainfo`], with the same verdicts as libtorrent.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use tessera_bencode::{
    DecodeOptions, DictBuilder, DictRef, Encode, ErrorKind, Irregularity, Mode, RawValue, Value,
    ValueRef, Warning,
};

use crate::error::Error;
use crate::file::{self, FileAttributes, Files, Layout, NameBatch, NewFile, NewRaw};
use crate::hash::{InfoHashes, Sha1Hash, Sha256Hash};
use crate::merkle;
use crate::path;
use crate::url;
use crate::v1list::FileList;
use crate::version::TorrentVersion;
use crate::worker;

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

/// Whether libtorrent takes a file of `size` bytes at all (fewer than `INT_MAX / 2` blocks).
#[inline(always)]
pub(crate) fn libtorrent_file_size(size: u64) -> bool {
    size / merkle::BLOCK_SIZE < i32::MAX as u64 / 2 && size <= LT_MAX_FILE_SIZE
}
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
    files: Files,
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
    pub fn files(&self) -> &Files {
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
        let root = self.files.root_ref(file_index)?;
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

/// The entries of a file dictionary that the parser reads, found in one walk over it. Each
/// holds the first value under its key, as [`DictRef::get`] would find it. The values are read
/// from their encoding: the file list is left off the decoder's tape (see [`parse_with`]).
#[derive(Default)]
struct FileKeys<'a> {
    attr: Option<RawValue<'a>>,
    length: Option<RawValue<'a>>,
    mtime: Option<RawValue<'a>>,
    path: Option<RawValue<'a>>,
    path_utf8: Option<RawValue<'a>>,
    symlink_path: Option<RawValue<'a>>,
}

impl<'a> FileKeys<'a> {
    #[inline]
    fn read(entries: impl Iterator<Item = (&'a [u8], RawValue<'a>)>) -> Self {
        let mut keys = FileKeys::default();
        for (k, v) in entries {
            let slot = match k {
                b"length" => &mut keys.length,
                b"path" => &mut keys.path,
                b"attr" => &mut keys.attr,
                b"mtime" => &mut keys.mtime,
                b"path.utf-8" => &mut keys.path_utf8,
                b"symlink path" => &mut keys.symlink_path,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(v);
            }
        }
        keys
    }

    /// The keys of a dictionary on the tape.
    fn read_tape(d: &DictRef<'_, 'a>) -> Self {
        Self::read(d.iter().map(|(k, v)| (k, RawValue::from(v))))
    }

    fn attributes(&self) -> FileAttributes {
        FileAttributes::from_attr(self.attr.and_then(|v| v.as_bytes()).unwrap_or_default())
    }

    /// libtorrent's `dict_find_int_value(.., "mtime", 0)`.
    fn mtime(&self) -> i64 {
        self.mtime.and_then(|v| v.as_int()).unwrap_or(0)
    }

    /// The path list: `path.utf-8` if it is a list, else `path` if that is one.
    fn path_list(&self) -> Option<RawValue<'a>> {
        let is_list = |v: &RawValue<'_>| v.kind() == tessera_bencode::Kind::List;
        self.path_utf8
            .filter(is_list)
            .or_else(|| self.path.filter(is_list))
    }
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

    /// Checks a list of path components (all strings, within the limits) and appends their
    /// sanitised forms to `path`. Returns whether every component went in as it was, and if
    /// so whether one holds a `_`.
    ///
    /// Too many components is the error whatever else is wrong, as when the count is checked
    /// first; the count is only taken in full when there is an error.
    fn append_components(
        &self,
        path: &mut Vec<u8>,
        list: RawValue<'_>,
    ) -> Result<(bool, bool), Error> {
        let limit = self.opts.max_path_depth;
        let Some(mut components) = list.as_list() else {
            return Ok((true, false));
        };
        let mut seen = 0usize;
        let mut plain = true;
        let mut underscore = false;
        let mut fail = None;
        for e in components.by_ref() {
            seen += 1;
            if seen > limit {
                break;
            }
            let Some(b) = e.as_bytes() else {
                fail = Some(Error::InvalidName);
                break;
            };
            if let Err(err) = self.check_name(b) {
                fail = Some(err);
                break;
            }
            match path::append_bytes(path, b) {
                path::Appended::AsItWas { underscore: u } => underscore |= u,
                path::Appended::Sanitised => plain = false,
            }
        }
        if seen > limit || fail.is_some() {
            let depth = seen + components.count();
            if depth > limit {
                return Err(Error::DirectoryTooDeep { depth, limit });
            }
        }
        match fail {
            Some(err) => Err(err),
            None => Ok((plain, underscore)),
        }
    }

    /// libtorrent's file size rules; symlinks take no space.
    fn file_size(&self, length: Option<RawValue<'_>>, symlink: bool) -> Result<u64, Error> {
        let len = if symlink {
            0
        } else {
            length.and_then(|v| v.as_int()).unwrap_or(-1)
        };
        let Ok(size) = u64::try_from(len) else {
            return Err(Error::InvalidLength { length: len });
        };
        if !libtorrent_file_size(size) {
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

    fn symlink_path(&self, value: Option<RawValue<'_>>) -> Result<Option<String>, Error> {
        let Some(list) = value.filter(|v| v.kind() == tessera_bencode::Kind::List) else {
            return Ok(None);
        };
        let mut s = Vec::new();
        self.append_components(&mut s, list)?;
        Ok(Some(path::into_string(s)))
    }

    /// The info dictionary of a single-file v1 (or hybrid) torrent, as its one file.
    fn v1_single_file(&self, info: &DictRef<'_, '_>, out: &mut Layout) -> Result<(), Error> {
        let keys = FileKeys::read_tape(info);
        let mut attrs = keys.attributes();
        let size = self.file_size(keys.length, attrs.symlink)?;
        let mtime = keys.mtime();
        let name_val = string_pref(info, b"name.utf-8", b"name");
        let name = name_val
            .and_then(|n| n.as_bytes())
            .filter(|n| !n.is_empty())
            .ok_or(Error::MissingName)?;
        self.check_name(name)?;
        let mut path = String::new();
        path::append_element(&mut path, name);
        if path.is_empty() {
            return Err(Error::MissingName);
        }
        // The value's encoding is the one byte string `<len>:<name>`.
        let raw_path = NewRaw::Encoded(name_val.map_or(&[][..], |n| n.raw()));
        if has_padding_marker(path.as_bytes()) {
            attrs.padding = true;
        }
        let symlink = keys.symlink_path;
        self.add_v1(out, symlink, attrs, size, mtime, &path, raw_path)
    }

    /// One entry of a v1 file list: a dictionary, read from its encoding. `root_underscore`:
    /// whether `root_dir` holds a `_`.
    #[inline]
    fn v1_file(
        &self,
        v: RawValue<'_>,
        out: &mut Layout,
        root_dir: &str,
        root_underscore: bool,
    ) -> Result<(), Error> {
        let entries = v.as_dict().ok_or(Error::FileParseFailed)?;
        let keys = FileKeys::read(entries);
        let mut attrs = keys.attributes();
        let size = self.file_size(keys.length, attrs.symlink)?;
        let mtime = keys.mtime();
        let path;
        let raw_path;
        match keys.path_list().filter(|l| l.raw().len() > 2) {
            Some(list) => {
                // Room for every component and its '/': each takes at least that much room
                // in the list's encoding too. Sanitising never lengthens a component.
                let mut bytes = Vec::with_capacity(root_dir.len() + list.raw().len());
                bytes.extend_from_slice(root_dir.as_bytes());
                let orig = bytes.len();
                let (plain, underscore) = self.append_components(&mut bytes, list)?;
                if bytes.len() == orig {
                    bytes.extend_from_slice(b"/_");
                }
                // The marker holds no '/': it is inside one component or inside the root.
                if (!plain || underscore || root_underscore) && has_padding_marker(&bytes) {
                    attrs.padding = true;
                }
                path = path::into_string(bytes);
                // Components that went in as they were are read back from the path; others
                // are kept as the inside of `l…e`, their encodings end to end.
                let skip = orig + usize::from(orig > 0);
                raw_path = if plain {
                    NewRaw::InPath(skip)
                } else {
                    let inner = list.raw().get(1..list.raw().len() - 1);
                    NewRaw::Encoded(inner.unwrap_or_default())
                };
            }
            None if attrs.padding => {
                path = format!(".pad/{size}");
                raw_path = NewRaw::Encoded(&[]);
            }
            None => return Err(Error::MissingName),
        }
        let symlink = keys.symlink_path;
        self.add_v1(out, symlink, attrs, size, mtime, &path, raw_path)
    }

    /// Resolves a v1 file's symlink and adds it.
    #[allow(clippy::too_many_arguments)]
    fn add_v1(
        &self,
        out: &mut Layout,
        symlink_path: Option<RawValue<'_>>,
        mut attrs: FileAttributes,
        size: u64,
        mtime: i64,
        path: &str,
        raw_path: NewRaw<'_>,
    ) -> Result<(), Error> {
        let mut symlink = String::new();
        if attrs.symlink {
            match self.symlink_path(symlink_path)? {
                Some(s) => symlink = s,
                None => attrs.symlink = false,
            }
        }
        out.add(NewFile {
            path,
            raw_path,
            length: size,
            attributes: attrs,
            symlink: &symlink,
            pieces_root: None,
            mtime,
        })
    }

    /// A v2 file (the dictionary under a file tree leaf's empty key).
    fn v2_file(
        &self,
        v: ValueRef<'_, '_>,
        out: &mut Layout,
        path: &str,
        raw_path: NewRaw<'_>,
    ) -> Result<(), Error> {
        let d = v.as_dict().ok_or(Error::FileParseFailed)?;
        let keys = FileKeys::read_tape(&d);
        let attrs = keys.attributes();
        if attrs.padding {
            return Err(Error::InvalidPadFile);
        }
        let size = self.file_size(keys.length, attrs.symlink)?;
        let mtime = keys.mtime();
        let symlink = if attrs.symlink {
            self.symlink_path(keys.symlink_path)?.unwrap_or_default()
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
            raw_path,
            length: size,
            attributes: attrs,
            symlink: &symlink,
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
            /// The keys so far, encoded as bencoded byte strings end to end (see `RawPath`).
            raw: Vec<u8>,
            single_candidate: bool,
        }
        let mut stack = vec![Frame {
            iter: tree.iter(),
            path: name.to_owned(),
            raw: Vec::new(),
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
            let mut raw = frame.raw.clone();
            tessera_bencode::put_bytes(&mut raw, key);
            if leaf {
                if let Some((_, f)) = sub.iter().next() {
                    self.v2_file(f, out, &path, NewRaw::Encoded(&raw))?;
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
                raw,
                single_candidate: false,
            });
        }
        Ok(())
    }
}

/// The marker that makes a file a padding file whatever its attributes (libtorrent's rule).
const PADDING_MARKER: &[u8] = b"_____padding_file_";

/// Whether `path` contains [`PADDING_MARKER`]. Paths rarely hold a `_` at all, so eight bytes
/// at a time are checked for one first.
pub(crate) fn has_padding_marker(path: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let under = |w: u64| {
        let w = w ^ (ONES * 0x5f);
        w.wrapping_sub(ONES) & !w & HIGH
    };
    // The whole words, then the last eight bytes (or fewer, padded with zeros).
    let mut underscore = under(path::tail_word(path, 0));
    for w in path.chunks_exact(8) {
        underscore |= under(path::word(w));
    }
    if underscore == 0 {
        return false;
    }
    path.windows(PADDING_MARKER.len())
        .any(|w| w == PADDING_MARKER)
}

fn sha1_of(b: &[u8]) -> Sha1Hash {
    Sha1Hash(Sha1::digest(b).into())
}

/// Files at least this large have their info dictionary hashed on a second thread while this one
/// parses; below it, starting a thread costs more than it saves.
const PARALLEL_HASH_MIN: usize = 64 * 1024;

/// Bytes the hashing thread hashes between two looks at its messages.
const HASH_CHUNK: usize = 64 * 1024;

/// Bytes the parsing thread hashes at a time while it waits for the hashing thread to start
/// (it looks whether it has after each).
const EARLY_CHUNK: usize = 16 * 1024;

/// What the parsing thread tells the hashing thread once it has decoded the file.
struct HashPlan {
    /// The span of the info dictionary.
    info: Range<usize>,
    /// A v1 info hash is needed.
    v1: bool,
    /// A v2 info hash is needed.
    v2: bool,
}

/// The info hashes from the hashing thread, with the span they were taken of.
struct InfoDigests {
    info: Range<usize>,
    v1: Option<Sha1Hash>,
    v2: Option<Sha256Hash>,
}

/// The SHA-1 of a file from where the info dictionary is guessed to start, taken before the
/// decoder has found where it ends, with the state saved along the way so that it can be
/// finished at the real end.
struct Ahead {
    /// The guessed start (from a quick scan of the top-level keys before `info`).
    start: usize,
    /// States saved at positions on the way, in order: the first at `start`, the last where
    /// it has got to.
    saved: Vec<(usize, Sha1)>,
}

impl Ahead {
    fn new(start: usize) -> Self {
        Ahead {
            start,
            saved: vec![(start, Sha1::new())],
        }
    }

    /// Where it has got to, and the state there.
    fn last(&self) -> Option<(usize, Sha1)> {
        self.saved.last().cloned()
    }

    /// Hashes up to `chunk` more bytes of `data` and saves the state; false once at the end.
    fn step(&mut self, data: &[u8], chunk: usize) -> bool {
        let Some((pos, mut sha1)) = self.last() else {
            return false;
        };
        let end = pos.saturating_add(chunk).min(data.len());
        let Some(bytes) = data.get(pos..end).filter(|b| !b.is_empty()) else {
            return false;
        };
        sha1.update(bytes);
        self.saved.push((end, sha1));
        true
    }
}

/// Who checks the names of a v1 file list for repeats (see [`names_repeat`](file::names_repeat)).
const NAMES_UNCLAIMED: u8 = 0;
const NAMES_HASHING_THREAD: u8 = 1;
const NAMES_PARSING_THREAD: u8 = 2;

/// What the parsing and hashing threads share. The hashing is split so that neither waits for
/// the other more than it must: the hashing thread may start late (on a busy machine, a new
/// thread can take milliseconds to be scheduled), so the parsing thread hashes until it has
/// started, which then takes over where it got to; and the names are checked by whichever
/// thread is free first, the hashing thread once it has hashed, or the parsing thread once
/// it has parsed.
struct Shared {
    /// Set by the hashing thread when it runs.
    started: AtomicBool,
    /// Set when parsing ends early: the hashing thread gives up.
    stop: AtomicBool,
    /// How far the hashing ahead has got, recorded by the parsing thread until the hashing
    /// thread takes it out (`None` then, and without a guess of the start).
    ahead: Mutex<Option<Ahead>>,
    /// [`NAMES_UNCLAIMED`] or which thread checks the names.
    names_owner: AtomicU8,
    /// The names, for the thread that checks them.
    names: Mutex<Option<Receiver<NameBatch>>>,
}

impl Shared {
    /// Takes the names for this thread (`owner`) if no other has: then whether one repeats,
    /// or `None` if they stop coming before the end.
    fn check_names(&self, owner: u8) -> Option<bool> {
        self.names_owner
            .compare_exchange(NAMES_UNCLAIMED, owner, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        let inbox = self.names.lock().ok()?.take()?;
        file::names_repeat(&inbox)
    }

    /// On the parsing thread: hashes ahead until the hashing thread has started (or all is
    /// hashed). The hashing is done outside the lock, which is held only to record each
    /// chunk's state: were this thread stopped while holding it (a busy machine may stop a
    /// virtual processor for milliseconds), the hashing thread would have to wait.
    fn hash_until_started(&self, data: &[u8]) {
        let Some((mut pos, mut sha1)) = self
            .ahead
            .try_lock()
            .ok()
            .and_then(|guard| guard.as_ref().and_then(Ahead::last))
        else {
            return;
        };
        while !self.started.load(Ordering::Acquire) {
            let end = pos.saturating_add(EARLY_CHUNK).min(data.len());
            let Some(bytes) = data.get(pos..end).filter(|b| !b.is_empty()) else {
                return;
            };
            sha1.update(bytes);
            pos = end;
            // Once the hashing thread has taken over, the state is gone (and this chunk is
            // hashed again there).
            let Ok(mut guard) = self.ahead.try_lock() else {
                return;
            };
            match guard.as_mut() {
                Some(ahead) => ahead.saved.push((pos, sha1.clone())),
                None => return,
            }
        }
    }
}

/// The parsing thread's end of the hashing thread.
struct HashThread<'a> {
    shared: &'a Shared,
    plans: SyncSender<HashPlan>,
    names: Sender<NameBatch>,
    /// The hashes, and the verdict on the names if that thread checked them.
    result: Receiver<(Option<InfoDigests>, Option<bool>)>,
}

impl HashThread<'_> {
    /// Hands the info dictionary's span over. If the thread is gone, the hashes are simply
    /// taken on this one later.
    fn plan(&self, plan: HashPlan) {
        let _ = self.plans.send(plan);
    }

    /// Waits for the hashes; with `names`, checks the names here if the hashing thread has
    /// not begun to, and returns the verdict of whichever thread did (see
    /// [`names_repeat`](file::names_repeat)).
    fn finish(self, names: bool) -> (Option<InfoDigests>, Option<bool>) {
        drop(self.plans);
        drop(self.names);
        let here = if names {
            self.shared.check_names(NAMES_PARSING_THREAD)
        } else {
            // The names are not needed: the other thread is spared checking them.
            let _ = self.shared.names_owner.compare_exchange(
                NAMES_UNCLAIMED,
                NAMES_PARSING_THREAD,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            None
        };
        let (digests, there) = self.result.recv().unwrap_or((None, None));
        (digests, here.or(there))
    }
}

/// Sets a flag when dropped: tells the hashing thread to give up when parsing ends early.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Feeds `bytes` to `hasher` a chunk at a time; `None` as soon as `stop` is set.
fn update_unless_stopped(hasher: &mut impl Digest, bytes: &[u8], stop: &AtomicBool) -> Option<()> {
    for chunk in bytes.chunks(HASH_CHUNK) {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        hasher.update(chunk);
    }
    Some(())
}

/// The hashes `plan` asks for, from scratch.
fn digest_plan(data: &[u8], plan: HashPlan, stop: &AtomicBool) -> Option<InfoDigests> {
    let info = data.get(plan.info.clone())?;
    let v1 = if plan.v1 {
        let mut h = Sha1::new();
        update_unless_stopped(&mut h, info, stop)?;
        Some(Sha1Hash(h.finalize().into()))
    } else {
        None
    };
    let v2 = if plan.v2 {
        let mut h = Sha256::new();
        update_unless_stopped(&mut h, info, stop)?;
        Some(Sha256Hash(h.finalize().into()))
    } else {
        None
    };
    Some(InfoDigests {
        info: plan.info,
        v1,
        v2,
    })
}

/// The hashing thread. It takes over the SHA-1 from the guessed start of the info dictionary
/// where the parsing thread got to, and goes on without waiting for the decoder, saving its
/// state every [`HASH_CHUNK`] bytes. When the plan (the real span, from the decoder) arrives,
/// it finishes from the last saved state inside the dictionary. Without a guess, or with a
/// wrong one, it hashes the span from scratch once it knows it.
fn hash_ahead(
    data: &[u8],
    plans: Receiver<HashPlan>,
    shared: &Shared,
    names: &mut Option<bool>,
) -> Option<InfoDigests> {
    let stop = &shared.stop;
    // Taken out, so that the parsing thread stops hashing ahead and no lock is held here.
    let taken = shared.ahead.lock().ok()?.take();
    let Some(mut ahead) = taken else {
        let plan = plans.recv().ok()?;
        return digest_plan(data, plan, stop);
    };
    let plan = loop {
        match plans.try_recv() {
            Ok(plan) => break plan,
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {}
        }
        if stop.load(Ordering::Relaxed) {
            break plans.recv().ok()?;
        }
        if !ahead.step(data, HASH_CHUNK) {
            // All hashed before the parsing thread has decoded the file: check the names
            // while it goes on.
            *names = shared.check_names(NAMES_HASHING_THREAD);
            break plans.recv().ok()?;
        }
    };
    if plan.info.start != ahead.start || !plan.v1 {
        return digest_plan(data, plan, stop);
    }
    // The last saved state that does not go past the end of the dictionary.
    let (at, state) = ahead
        .saved
        .into_iter()
        .rev()
        .find(|(at, _)| *at <= plan.info.end)?;
    let mut sha1 = state;
    update_unless_stopped(&mut sha1, data.get(at..plan.info.end)?, stop)?;
    let v1 = Some(Sha1Hash(sha1.finalize().into()));
    let v2 = if plan.v2 {
        let mut h = Sha256::new();
        update_unless_stopped(&mut h, data.get(plan.info.clone())?, stop)?;
        Some(Sha256Hash(h.finalize().into()))
    } else {
        None
    };
    Some(InfoDigests {
        info: plan.info,
        v1,
        v2,
    })
}

/// Parses `data` on this thread with the general reader for v1 file lists alone (no
/// [`FileList`]), for tests that compare the two.
pub(crate) fn parse_general(data: &[u8], opts: &ParseOptions) -> Result<Metainfo, Error> {
    parse_with(&Bytes::copy_from_slice(data), opts, None, false)
}

/// Parses `data`, hashing the info dictionary on a second thread when the file is large.
fn parse(data: Bytes, opts: &ParseOptions) -> Result<Metainfo, Error> {
    if data.len() < PARALLEL_HASH_MIN {
        return parse_with(&data, opts, None, true);
    }
    let (names, name_inbox) = mpsc::channel();
    let shared = Arc::new(Shared {
        started: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        ahead: Mutex::new(tessera_bencode::find_root_value(&data, b"info").map(Ahead::new)),
        names_owner: AtomicU8::new(NAMES_UNCLAIMED),
        names: Mutex::new(Some(name_inbox)),
    });
    let (plans, inbox) = mpsc::sync_channel(1);
    let (done, result) = mpsc::sync_channel(1);
    let job = {
        let shared = Arc::clone(&shared);
        let data = data.clone();
        Box::new(move || {
            shared.started.store(true, Ordering::Release);
            let mut v = None;
            let digests = hash_ahead(&data, inbox, &shared, &mut v);
            if v.is_none() {
                v = shared.check_names(NAMES_HASHING_THREAD);
            }
            let _ = done.send((digests, v));
        })
    };
    // If no thread can be had, everything happens on this one.
    let hasher = worker::run(job).then(|| HashThread {
        shared: &shared,
        plans,
        names,
        result,
    });
    let _stop = StopOnDrop(&shared.stop);
    if hasher.is_some() {
        shared.hash_until_started(&data);
    }
    parse_with(&data, opts, hasher, true)
}

fn parse_with(
    data: &Bytes,
    opts: &ParseOptions,
    hasher: Option<HashThread<'_>>,
    fast_lists: bool,
) -> Result<Metainfo, Error> {
    let decode = opts.decode_options();
    // The v1 file list is most of a torrent with many files. In its usual form it is read in
    // one pass by `FileList`, which the decoder lets check it; otherwise it is checked like
    // the rest but left off the tape, and each entry is read once from its encoding.
    let mut list_reader = FileList::new(opts);
    if let Some(h) = &hasher {
        list_reader.send_names(h.names.clone());
    }
    let doc = if fast_lists {
        decode.decode_claiming(data, &[b"info", b"files"], &mut |start, limits| {
            list_reader.claim(data, start, limits)
        })?
    } else {
        decode.decode_folded(data, &[b"info", b"files"])?
    };
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
    let files_node = info.get_list(b"files");
    // Whether the torrent has a v1 part, decided as below when the files are read.
    let has_v1 = !is_v2 || files_node.is_some() || info.get(b"length").is_some();
    if let Some(h) = &hasher {
        h.plan(HashPlan {
            info: info_span.clone(),
            v1: has_v1,
            v2: is_v2,
        });
    }

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

    let file_tree = info.get_dict(b"file tree");
    let mut files = Layout::new(piece_length, opts.max_files);
    let mut v1_files = Layout::new(piece_length, opts.max_files);
    let mut multifile = false;
    // Whether the other thread checks the names of `files` for repeats.
    let mut names_checked = false;
    if is_v2 {
        let tree = file_tree.ok_or(Error::MissingFileTree)?;
        ctx.file_tree(tree, &mut files, &name, files_node.is_some())?;
        files.sanitize_symlinks()?;
        multifile = files.len() > 1;
    } else if file_tree.is_some() {
        return Err(Error::MissingMetaVersion);
    }
    {
        let target = if is_v2 { &mut v1_files } else { &mut files };
        match files_node {
            None => {
                if has_v1 {
                    ctx.v1_single_file(&info, target)?;
                    multifile = false;
                }
            }
            Some(list) if list.as_value().is_folded() && list_reader.claimed() => {
                *target = list_reader.take_layout(data, &name, piece_length)?;
                multifile = true;
                names_checked = !is_v2;
            }
            Some(list) => {
                target.reserve(list.len(), list.as_value().raw().len());
                let root_underscore = name.contains('_');
                for f in list.iter() {
                    ctx.v1_file(RawValue::from(f), target, &name, root_underscore)?;
                }
                target.sanitize_symlinks()?;
                multifile = true;
            }
        }
    }
    // Done with the list: the other thread stops waiting for its names.
    drop(list_reader);
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

    // Info hashes (and the check for repeated names) from the other thread. The names went
    // to that thread; if it gave no verdict, the names are compared in full.
    let had_thread = hasher.is_some();
    let (digests, repeats) = hasher.map_or((None, None), |h| h.finish(names_checked));
    if names_checked && had_thread {
        files.repeats = Some(repeats.unwrap_or(true));
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

    // Info hashes: from the hashing thread if it hashed the right bytes, else taken here.
    let digests = digests.filter(|d| d.info == info_span);
    let (t_v1, t_v2) = digests.map_or((None, None), |d| (d.v1, d.v2));
    let v1 = if has_v1 {
        Some(v1_hash.or(t_v1).unwrap_or_else(|| sha1_of(info_raw)))
    } else {
        None
    };
    let v2 = is_v2.then(|| t_v2.unwrap_or_else(|| Sha256Hash(Sha256::digest(info_raw).into())));
    let info_hashes = InfoHashes { v1, v2 };
    let version = match (v1.is_some(), v2.is_some()) {
        (true, true) => TorrentVersion::Hybrid,
        (false, true) => TorrentVersion::V2,
        _ => TorrentVersion::V1,
    };

    files.shrink();

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
        data: data.clone(),
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
    files: &Files,
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
        if !merkle::verify_piece_layer(&hashes, piece_length, f.length, &root) {
            // With one 16 KiB block per piece the piece layer is the leaf layer itself, and
            // libtorrent accepts such a file, failing only when the torrent is added. The
            // verdict is kept, but a layer that does not reduce to its root is never trusted:
            // it is dropped as if absent, so its hashes must come from peers, checked against
            // the root. Larger pieces must reduce to the root or the file is rejected.
            if piece_length > merkle::BLOCK_SIZE {
                return Err(Error::InvalidPieceLayer);
            }
            continue;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn new_shared(data: &[u8], names: Receiver<NameBatch>) -> Shared {
        Shared {
            started: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            ahead: Mutex::new(tessera_bencode::find_root_value(data, b"info").map(Ahead::new)),
            names_owner: AtomicU8::new(NAMES_UNCLAIMED),
            names: Mutex::new(Some(names)),
        }
    }

    /// A file whose info dictionary spans many hashing chunks, and that span.
    fn big_file() -> (Vec<u8>, Range<usize>) {
        let mut data = b"d8:announce3:url4:infod6:pieces300000:".to_vec();
        data.extend((0..300_000u32).map(|i| (i * 7 % 251) as u8));
        data.extend_from_slice(b"ee");
        let start = tessera_bencode::find_root_value(&data, b"info").unwrap();
        (data.clone(), start..data.len() - 1)
    }

    /// However far the parsing thread hashed before the hashing thread took over (nothing,
    /// some chunks, past the dictionary's end), the digest is that of the dictionary.
    #[test]
    fn hashing_taken_over_at_any_point_gives_the_digest() {
        let (data, info) = big_file();
        let want = sha1_of(&data[info.clone()]);
        for early_chunks in [0usize, 1, 5, 18, 19, 100] {
            let (_names, inbox) = mpsc::channel();
            let shared = new_shared(&data, inbox);
            for _ in 0..early_chunks {
                shared
                    .ahead
                    .lock()
                    .unwrap()
                    .as_mut()
                    .unwrap()
                    .step(&data, EARLY_CHUNK);
            }
            let (plans, plan_inbox) = mpsc::sync_channel(1);
            plans
                .send(HashPlan {
                    info: info.clone(),
                    v1: true,
                    v2: true,
                })
                .unwrap();
            let got = hash_ahead(&data, plan_inbox, &shared, &mut None).unwrap();
            assert_eq!(got.v1, Some(want), "after {early_chunks} early chunks");
            assert_eq!(
                got.v2,
                Some(Sha256Hash(Sha256::digest(&data[info.clone()]).into()))
            );
        }
        // Hashing until the other thread starts, when it never does, hashes it all.
        let (_names, inbox) = mpsc::channel();
        let shared = new_shared(&data, inbox);
        shared.hash_until_started(&data);
        assert_eq!(
            shared
                .ahead
                .lock()
                .unwrap()
                .as_ref()
                .unwrap()
                .last()
                .unwrap()
                .0,
            data.len()
        );
        // And stops at once when it has.
        let (_names, inbox) = mpsc::channel();
        let fresh = Shared {
            started: AtomicBool::new(true),
            ..new_shared(&data, inbox)
        };
        fresh.hash_until_started(&data);
        assert_eq!(fresh.ahead.lock().unwrap().as_ref().unwrap().saved.len(), 1);
    }

    /// The names are checked once, by the thread that claims them first; the other gets no
    /// verdict and does not wait for them.
    #[test]
    fn names_are_checked_by_the_first_thread_to_claim_them() {
        for first in [NAMES_PARSING_THREAD, NAMES_HASHING_THREAD] {
            let (names, inbox) = mpsc::channel();
            let shared = new_shared(b"d4:infod1:xi1eee", inbox);
            names
                .send(NameBatch::Names {
                    capacity: 2,
                    keys: vec![file::tagged_name(8, false), file::tagged_name(8, false)],
                })
                .unwrap();
            names.send(NameBatch::Done).unwrap();
            let second = NAMES_PARSING_THREAD + NAMES_HASHING_THREAD - first;
            assert_eq!(shared.check_names(first), Some(true));
            assert_eq!(shared.check_names(second), None);
        }
    }

    #[test]
    fn padding_marker_anywhere() {
        assert!(has_padding_marker(b"_____padding_file_"));
        assert!(has_padding_marker(b"name/x_____padding_file_0"));
        assert!(has_padding_marker(b"abcdefgh12345678_____padding_file_"));
        assert!(!has_padding_marker(b"name/____padding_file_"));
        assert!(!has_padding_marker(b"name/plain-file-name.dat"));
        assert!(!has_padding_marker(b"_"));
        assert!(!has_padding_marker(b""));
    }
}
