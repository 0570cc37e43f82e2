//! The part file: bytes of pieces that overlap skipped files, kept out of the user's files.
//!
//! The format is described on [`PartFile`].

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};
use tessera_bencode::{put_bytes, put_int, DecodeOptions, DictBuilder};
use tessera_metainfo::{to_hex, InfoHashes};
use thiserror::Error;

use crate::error::StoreError;
use crate::layout::Layout;
use crate::path::O_NOFOLLOW;

/// The index format version written, and the only one read.
pub const PART_FILE_VERSION: i64 = 1;

/// Bytes reserved for each index copy per piece of the torrent: the longest slot entry,
/// `i4294967295e`, plus one.
const BYTES_PER_PIECE: u64 = 13;
/// Bytes reserved for each index copy besides the slot list.
const FIXED_HEADER: u64 = 512;
/// Index copies are rounded up to this many bytes.
const ALIGN: u64 = 4096;

/// Why a part file was ignored.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PartFileError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The part file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Neither index copy is whole: the file is shorter than its index, or both copies fail
    /// their checks. Carries the reason the newer-looking copy was refused.
    #[error("part file index is damaged: {reason}")]
    Damaged {
        /// Which check failed.
        reason: &'static str,
    },
    /// A valid index, but for another torrent (info hash, piece length or piece count differ).
    #[error("part file belongs to another torrent ({what} differs)")]
    WrongTorrent {
        /// The field that differs.
        what: &'static str,
    },
    /// A valid index of a format version this code does not read.
    #[error("part file version {version} is not supported")]
    UnsupportedVersion {
        /// The version found.
        version: i64,
    },
    /// The torrent is too large for a part file's index (its slot area would pass `u64`).
    #[error("torrent too large for a part file")]
    TooLarge,
}

/// What [`PartFile::open`] found on disk.
#[derive(Debug)]
#[non_exhaustive]
pub enum PartStatus {
    /// There was no part file.
    Absent,
    /// A valid part file, holding slots for this many pieces.
    Loaded {
        /// Pieces with a slot.
        pieces: u32,
    },
    /// The file exists but was ignored (it will be overwritten on the next write).
    Discarded(PartFileError),
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Slot number → piece it holds.
    slots: Vec<Option<u32>>,
    /// Piece → slot number.
    by_piece: HashMap<u32, u32>,
    /// Generation of the last index built (0: none yet).
    generation: u64,
}

#[derive(Debug)]
struct Handle {
    file: Option<Arc<File>>,
    /// The file on disk is not ours to trust: truncate it when first opened for writing.
    truncate: bool,
}

/// A part file for one torrent.
///
/// One file (by convention `.<info-hash-hex>.parts` in the download directory, see
/// [`PartFile::default_name`]) holds one slot per piece it stores. A slot is a whole piece
/// long and the piece's bytes sit at their offset within the piece, but only the bytes that
/// belong to skipped files are ever written there; the rest of the slot stays a hole (the file
/// is sparse). The slot index is a small canonical bencoded dictionary kept twice at the start
/// of the file, each copy behind an 8-byte big-endian length:
///
/// ```text
/// [copy 0][copy 1][slot 0][slot 1]...        each copy: len (u64 BE) + bencode, zero-padded
/// d 8:checksum 32:<SHA-256 of the same dictionary without "checksum">
///   3:gen i<generation>e   2:id <wire info hash>   12:piece-length i..e   6:pieces i..e
///   5:slots l i<piece, or -1 for a free slot>... e   7:version i1e e
/// ```
///
/// Each index update writes the copy the new generation picks (`gen % 2`), so a write torn by a
/// crash spoils at most one copy and the other still holds the previous index. Loading takes
/// the valid copy with the highest generation. Sizes are bounded by the torrent (at most one
/// slot per piece), every field is checked, and anything else is [`PartFileError`]: the file is
/// then ignored (and replaced on the next write). The data in the slots is not trusted either:
/// it is checked against the piece hashes like any other data.
///
/// Data I/O is positioned and runs without any lock held; a mutex guards the slot index only,
/// and a second one orders writes of the index itself.
#[derive(Debug)]
pub struct PartFile {
    path: PathBuf,
    id: Vec<u8>,
    piece_length: u64,
    num_pieces: u32,
    /// Bytes of each index copy.
    copy_len: u64,
    index: Mutex<Index>,
    handle: Mutex<Handle>,
    /// Highest generation written to disk.
    written: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are plain data updated in single steps.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io_error(path: &Path, e: io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

impl PartFile {
    /// The conventional file name: `.<hex of the wire info hash>.parts` (see
    /// [`InfoHashes::wire_hash`]); `.unknown.parts` if the torrent has no hash.
    pub fn default_name(info_hashes: &InfoHashes) -> String {
        match info_hashes.wire_hash() {
            Some(h) => format!(".{}.parts", to_hex(&h.0)),
            None => ".unknown.parts".to_owned(),
        }
    }

    /// Opens the part file at `path` for the torrent of `layout` and `info_hashes`, reading its
    /// index if it has one. Nothing is created until the first write. A file that cannot be
    /// used is reported in the [`PartStatus`] and replaced on the next write; this never fails.
    pub fn open(
        path: impl Into<PathBuf>,
        layout: &Layout,
        info_hashes: &InfoHashes,
    ) -> (PartFile, PartStatus) {
        let path = path.into();
        let id = info_hashes
            .wire_hash()
            .map_or_else(Vec::new, |h| h.0.to_vec());
        let num_pieces = layout.num_pieces();
        let copy_len = u64::from(num_pieces)
            .checked_mul(BYTES_PER_PIECE)
            .and_then(|n| n.checked_add(FIXED_HEADER + 8))
            .and_then(|n| n.checked_next_multiple_of(ALIGN));
        let too_large = copy_len
            .and_then(|c| c.checked_mul(2))
            .and_then(|c| {
                u64::from(num_pieces)
                    .checked_mul(layout.piece_length())
                    .and_then(|s| s.checked_add(c))
            })
            .is_none();
        let mut pf = PartFile {
            path,
            id,
            piece_length: layout.piece_length(),
            num_pieces,
            copy_len: copy_len.unwrap_or(ALIGN),
            index: Mutex::new(Index::default()),
            handle: Mutex::new(Handle {
                file: None,
                truncate: false,
            }),
            written: Mutex::new(0),
        };
        if too_large {
            pf.handle.get_mut().map(|h| h.truncate = true).ok();
            return (pf, PartStatus::Discarded(PartFileError::TooLarge));
        }
        let status = match pf.load() {
            Ok(None) => PartStatus::Absent,
            Ok(Some(index)) => {
                let pieces = u32::try_from(index.by_piece.len()).unwrap_or(u32::MAX);
                if let Ok(w) = pf.written.get_mut() {
                    *w = index.generation;
                }
                if let Ok(i) = pf.index.get_mut() {
                    *i = index;
                }
                PartStatus::Loaded { pieces }
            }
            Err(e) => {
                if let Ok(h) = pf.handle.get_mut() {
                    h.truncate = true;
                }
                PartStatus::Discarded(e)
            }
        };
        (pf, status)
    }

    /// Where the part file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True if the part file has a slot for `piece`.
    pub fn contains(&self, piece: u32) -> bool {
        lock(&self.index).by_piece.contains_key(&piece)
    }

    /// The pieces with a slot, in increasing order.
    pub fn pieces(&self) -> Vec<u32> {
        let mut v: Vec<u32> = lock(&self.index).by_piece.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Reads the index from disk: `Ok(None)` if there is no file.
    fn load(&self) -> Result<Option<Index>, PartFileError> {
        let f = match OpenOptions::new()
            .read(true)
            .custom_flags(O_NOFOLLOW)
            .open(&self.path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(PartFileError::Io {
                    path: self.path.clone(),
                    source: e,
                })
            }
        };
        let mut best: Option<Index> = None;
        let mut first_err = None;
        for copy in 0..2u64 {
            match self.load_copy(&f, copy) {
                Ok(ix) => {
                    if best.as_ref().is_none_or(|b| ix.generation > b.generation) {
                        best = Some(ix);
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match (best, first_err) {
            (Some(ix), _) => Ok(Some(ix)),
            (None, Some(e)) => Err(e),
            (None, None) => Err(PartFileError::Damaged { reason: "no index" }),
        }
    }

    fn load_copy(&self, f: &File, copy: u64) -> Result<Index, PartFileError> {
        let damaged = |reason| PartFileError::Damaged { reason };
        let start = copy
            .checked_mul(self.copy_len)
            .ok_or(PartFileError::TooLarge)?;
        let mut len_bytes = [0u8; 8];
        read_exact(f, &mut len_bytes, start, &self.path)?
            .then_some(())
            .ok_or(damaged("file shorter than its index"))?;
        let len = u64::from_be_bytes(len_bytes);
        if len == 0 || len > self.copy_len.saturating_sub(8) {
            return Err(damaged("index length out of bounds"));
        }
        let n = usize::try_from(len).map_err(|_| PartFileError::TooLarge)?;
        let mut body = vec![0u8; n];
        read_exact(f, &mut body, start.saturating_add(8), &self.path)?
            .then_some(())
            .ok_or(damaged("file shorter than its index"))?;
        self.decode(&body)
    }

    /// Checks and reads one index copy.
    pub(crate) fn decode(&self, data: &[u8]) -> Result<Index, PartFileError> {
        let damaged = |reason| PartFileError::Damaged { reason };
        let max_tokens = usize::try_from(self.num_pieces)
            .unwrap_or(usize::MAX)
            .saturating_add(32);
        let doc = DecodeOptions::strict()
            .with_max_depth(3)
            .with_max_tokens(max_tokens)
            .decode(data)
            .map_err(|_| damaged("not canonical bencode"))?;
        let root = doc.root().as_dict().ok_or(damaged("root is not a dict"))?;
        let version = root.get_int(b"version").ok_or(damaged("no version"))?;
        let generation = root
            .get_int(b"gen")
            .and_then(|g| u64::try_from(g).ok())
            .filter(|&g| g > 0)
            .ok_or(damaged("bad generation"))?;
        let list = root.get_list(b"slots").ok_or(damaged("no slots"))?;
        let mut slots = Vec::with_capacity(list.len().min(max_tokens));
        let mut by_piece = HashMap::new();
        for (k, item) in list.iter().enumerate() {
            let v = item.as_int().ok_or(damaged("slot is not an integer"))?;
            let slot = u32::try_from(k).map_err(|_| damaged("too many slots"))?;
            if v == -1 {
                slots.push(None);
                continue;
            }
            let piece = u32::try_from(v)
                .ok()
                .filter(|&p| p < self.num_pieces)
                .ok_or(damaged("slot piece out of range"))?;
            if by_piece.insert(piece, slot).is_some() {
                return Err(damaged("piece in two slots"));
            }
            slots.push(Some(piece));
        }
        if slots.len() > usize::try_from(self.num_pieces).unwrap_or(usize::MAX) {
            return Err(damaged("more slots than pieces"));
        }
        let index = Index {
            slots,
            by_piece,
            generation,
        };
        // The checksum and canonical form are checked against the file's own fields, so that a
        // whole index of another torrent is told apart from a damaged one.
        let fields = Fields {
            id: root.get_bytes(b"id").ok_or(damaged("no id"))?,
            piece_length: root
                .get_int(b"piece-length")
                .ok_or(damaged("no piece length"))?,
            pieces: root.get_int(b"pieces").ok_or(damaged("no piece count"))?,
            version,
        };
        let sum = root.get_bytes(b"checksum").ok_or(damaged("no checksum"))?;
        if Sha256::digest(encode(&fields, &index, None)).as_slice() != sum {
            return Err(damaged("checksum mismatch"));
        }
        let sum: [u8; 32] = Sha256::digest(encode(&fields, &index, None)).into();
        if encode(&fields, &index, Some(&sum)) != data {
            return Err(damaged("not in canonical form"));
        }
        if version != PART_FILE_VERSION {
            return Err(PartFileError::UnsupportedVersion { version });
        }
        let ours = self.fields();
        if fields.id != ours.id {
            return Err(PartFileError::WrongTorrent { what: "info hash" });
        }
        if fields.piece_length != ours.piece_length {
            return Err(PartFileError::WrongTorrent {
                what: "piece length",
            });
        }
        if fields.pieces != ours.pieces {
            return Err(PartFileError::WrongTorrent {
                what: "piece count",
            });
        }
        Ok(index)
    }

    fn fields(&self) -> Fields<'_> {
        Fields {
            id: &self.id,
            piece_length: i64::try_from(self.piece_length).unwrap_or(i64::MAX),
            pieces: i64::from(self.num_pieces),
            version: PART_FILE_VERSION,
        }
    }

    fn encode_checked(&self, index: &Index) -> Vec<u8> {
        let fields = self.fields();
        let sum: [u8; 32] = Sha256::digest(encode(&fields, index, None)).into();
        encode(&fields, index, Some(&sum))
    }

    /// The open handle, opening (and creating, for writing) the file if needed. `None` when
    /// reading and the file does not exist or was discarded.
    fn handle(&self, write: bool) -> Result<Option<Arc<File>>, StoreError> {
        let mut h = lock(&self.handle);
        if let Some(f) = &h.file {
            return Ok(Some(Arc::clone(f)));
        }
        if !write && h.truncate {
            // What is on disk is not ours: read nothing from it.
            return Ok(None);
        }
        // Read-write even for a read: the handle is cached for the writes that follow. Opening
        // happens once, so holding the lock for it does not serialise data I/O.
        // The part file sits in the download directory: never write through a link planted
        // there under its name.
        let mut o = OpenOptions::new();
        o.read(true).write(true).custom_flags(O_NOFOLLOW);
        if write {
            o.create(true).truncate(h.truncate);
        }
        let f = match o.open(&self.path) {
            Ok(f) => f,
            Err(e) if !write && e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&self.path, e)),
        };
        h.truncate = false;
        let f = Arc::new(f);
        h.file = Some(Arc::clone(&f));
        Ok(Some(f))
    }

    /// Writes the index built under generation `generation` (if no newer one was written).
    fn write_index(&self, encoded: &[u8], generation: u64) -> Result<(), StoreError> {
        let mut written = lock(&self.written);
        if generation <= *written {
            return Ok(());
        }
        let len = u64::try_from(encoded.len()).unwrap_or(u64::MAX);
        if len > self.copy_len.saturating_sub(8) {
            return Err(StoreError::too_large("part file index", len));
        }
        let f = self
            .handle(true)?
            .ok_or_else(|| io_error(&self.path, io::Error::other("part file not open")))?;
        let start = (generation % 2).saturating_mul(self.copy_len);
        let mut buf = Vec::with_capacity(encoded.len().saturating_add(8));
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(encoded);
        f.write_all_at(&buf, start)
            .map_err(|e| io_error(&self.path, e))?;
        *written = generation;
        Ok(())
    }

    /// Where `begin` within the slot `slot` lies in the file.
    fn slot_pos(&self, slot: u32, begin: u64) -> Result<u64, StoreError> {
        self.copy_len
            .checked_mul(2)
            .and_then(|h| {
                u64::from(slot)
                    .checked_mul(self.piece_length)
                    .and_then(|s| s.checked_add(h))
            })
            .and_then(|p| p.checked_add(begin))
            .ok_or(StoreError::too_large("part file offset", u64::MAX))
    }

    fn check(&self, piece: u32, begin: u64, len: usize) -> Result<(), StoreError> {
        let len64 = u64::try_from(len).unwrap_or(u64::MAX);
        let ok = piece < self.num_pieces
            && begin
                .checked_add(len64)
                .is_some_and(|e| e <= self.piece_length);
        if ok {
            Ok(())
        } else {
            Err(StoreError::OutOfRange {
                piece,
                offset: begin,
                len: len64,
            })
        }
    }

    /// Writes `data` at `begin` within `piece`'s slot, giving the piece a slot first if it
    /// has none.
    ///
    /// # Errors
    /// [`StoreError::OutOfRange`] if the range passes the piece length or the piece count,
    /// [`StoreError::Io`].
    pub fn write(&self, piece: u32, begin: u64, data: &[u8]) -> Result<(), StoreError> {
        self.check(piece, begin, data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        let (slot, new_index) = {
            let mut ix = lock(&self.index);
            match ix.by_piece.get(&piece) {
                Some(&s) => (s, None),
                None => {
                    let free = ix.slots.iter().position(Option::is_none);
                    let slot = match free {
                        Some(k) => k,
                        None => {
                            ix.slots.push(None);
                            ix.slots.len().saturating_sub(1)
                        }
                    };
                    let slot32 = u32::try_from(slot)
                        .map_err(|_| StoreError::too_large("part file slots", slot))?;
                    if let Some(s) = ix.slots.get_mut(slot) {
                        *s = Some(piece);
                    }
                    ix.by_piece.insert(piece, slot32);
                    ix.generation = ix.generation.saturating_add(1);
                    (slot32, Some((self.encode_checked(&ix), ix.generation)))
                }
            }
        };
        if let Some((enc, generation)) = new_index {
            self.write_index(&enc, generation)?;
        }
        let pos = self.slot_pos(slot, begin)?;
        let f = self
            .handle(true)?
            .ok_or_else(|| io_error(&self.path, io::Error::other("part file not open")))?;
        f.write_all_at(data, pos)
            .map_err(|e| io_error(&self.path, e))
    }

    /// Reads `buf.len()` bytes at `begin` within `piece`'s slot. `Ok(false)` if the piece has
    /// no slot or the file ends before the range.
    ///
    /// # Errors
    /// [`StoreError::OutOfRange`] as for [`write`](Self::write), [`StoreError::Io`].
    pub fn read(&self, piece: u32, begin: u64, buf: &mut [u8]) -> Result<bool, StoreError> {
        self.check(piece, begin, buf.len())?;
        let Some(slot) = lock(&self.index).by_piece.get(&piece).copied() else {
            return Ok(false);
        };
        if buf.is_empty() {
            return Ok(true);
        }
        let pos = self.slot_pos(slot, begin)?;
        let Some(f) = self.handle(false)? else {
            return Ok(false);
        };
        read_exact(&f, buf, pos, &self.path).map_err(|e| match e {
            PartFileError::Io { path, source } => StoreError::Io { path, source },
            other => io_error(&self.path, io::Error::other(other.to_string())),
        })
    }

    /// Frees the slots of `pieces` (those without one are ignored) and writes the index.
    ///
    /// # Errors
    /// [`StoreError::Io`] writing the index.
    pub fn remove(&self, pieces: &[u32]) -> Result<(), StoreError> {
        let update = {
            let mut ix = lock(&self.index);
            let mut changed = false;
            for p in pieces {
                if let Some(slot) = ix.by_piece.remove(p) {
                    if let Some(s) = usize::try_from(slot).ok().and_then(|k| ix.slots.get_mut(k)) {
                        *s = None;
                    }
                    changed = true;
                }
            }
            while ix.slots.last().is_some_and(Option::is_none) {
                ix.slots.pop();
            }
            if changed {
                ix.generation = ix.generation.saturating_add(1);
                Some((self.encode_checked(&ix), ix.generation))
            } else {
                None
            }
        };
        match update {
            Some((enc, generation)) => self.write_index(&enc, generation),
            None => Ok(()),
        }
    }

    /// Flushes the part file to stable storage (nothing to do if it was never written).
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn sync(&self) -> Result<(), StoreError> {
        let f = lock(&self.handle).file.clone();
        match f {
            Some(f) => f.sync_all().map_err(|e| io_error(&self.path, e)),
            None => Ok(()),
        }
    }
}

/// The fields of an index besides its slots and generation.
struct Fields<'a> {
    id: &'a [u8],
    piece_length: i64,
    pieces: i64,
    version: i64,
}

/// The canonical encoding of an index, with `checksum` if given.
fn encode(fields: &Fields<'_>, index: &Index, checksum: Option<&[u8; 32]>) -> Vec<u8> {
    let mut d = DictBuilder::new();
    if let Some(sum) = checksum {
        d.entry_with(b"checksum", |o| put_bytes(o, sum));
    }
    d.entry_with(b"gen", |o| {
        put_int(o, i64::try_from(index.generation).unwrap_or(i64::MAX))
    });
    d.entry_with(b"id", |o| put_bytes(o, fields.id));
    d.entry_with(b"piece-length", |o| put_int(o, fields.piece_length));
    d.entry_with(b"pieces", |o| put_int(o, fields.pieces));
    d.entry_with(b"slots", |o| {
        o.push(b'l');
        for s in &index.slots {
            put_int(o, s.map_or(-1, i64::from));
        }
        o.push(b'e');
    });
    d.entry_with(b"version", |o| put_int(o, fields.version));
    let mut out = Vec::new();
    d.finish(&mut out);
    out
}

/// Fills `buf` from `f` at `pos`; `Ok(false)` if the file ends first.
fn read_exact(f: &File, buf: &mut [u8], pos: u64, path: &Path) -> Result<bool, PartFileError> {
    match f.read_exact_at(buf, pos) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(PartFileError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}
