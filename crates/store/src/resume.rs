//! Resume data: which pieces were verified, and the size and mtime of each file at that time,
//! so a restart trusts those pieces without reading them again; and the download priority the
//! user gave each file.
//!
//! The ordering contract, kept by [`ResumeWriter`]: the data of a piece is synced to disk
//! (`Backend::sync` of each of its files) before a resume record that marks it complete is
//! written, and that record replaces the previous one atomically (write `<name>.tmp`, sync it,
//! rename it over `<name>`, sync the directory). A crash at any point leaves either the old
//! record or the new one, and every piece either marks complete is on disk.
//!
//! The file is canonical bencode:
//!
//! ```text
//! d 8:checksum 32:<SHA-256 of the same dictionary without "checksum">
//!   5:files l (d 3:len i..e [5:mtime i<ns>e] e | le) ... e     (le: the file was absent)
//!   7:info-v1 20:<v1 info hash>   7:info-v2 32:<v2 info hash>   (those the torrent has)
//!   6:pieces i<number of pieces>e
//!   [10:priorities <one byte per file: 0 skip, 1 low, 2 normal, 3 high>]
//!   8:verified <bitfield>   7:version i1e e
//! ```
//!
//! `priorities` is optional: records written before it existed (or by a caller that does not
//! set priorities) leave it out, decode with [`ResumeData::priorities`] `None`, and re-encode
//! to the same bytes, so they keep their checksum and stay canonical.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tessera_bencode::{put_bytes, put_int, DecodeOptions, DictBuilder, DictRef};
use tessera_metainfo::{InfoHashes, Metainfo, Sha1Hash, Sha256Hash};
use thiserror::Error;

use crate::backend::{Backend, FileState};
use crate::bitfield::{Bitfield, BitfieldError};
use crate::error::StoreError;
use crate::layout::Layout;
use crate::priority::{FilePriority, Priorities};

/// The format version written, and the only one read.
pub const RESUME_VERSION: i64 = 1;

/// Why a resume file was not used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ResumeError {
    // --- The disk ---
    /// Reading or writing the resume file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Syncing the torrent's data or reading its files' state failed.
    #[error(transparent)]
    Store(#[from] StoreError),

    // --- A malformed or hostile file ---
    /// The file is larger than a record for this torrent can be.
    #[error("resume file is {len} bytes, more than the {max} a record for this torrent can take")]
    TooLarge {
        /// Bytes in the file (at least `max + 1`).
        len: u64,
        /// Largest record for this torrent.
        max: u64,
    },
    /// The file is not valid bencode.
    #[error("resume file is not valid bencode: {0}")]
    Bencode(#[from] tessera_bencode::Error),
    /// A field is absent or has the wrong type or value.
    #[error("resume file field {field:?} is missing or invalid")]
    Field {
        /// The field's key.
        field: &'static str,
    },
    /// The version field names a format this crate does not read.
    #[error("resume file version {version} is not supported (expected {RESUME_VERSION})")]
    UnsupportedVersion {
        /// The version in the file.
        version: i64,
    },
    /// The checksum does not match the contents (a torn or altered file).
    #[error("resume file checksum mismatch")]
    Checksum,
    /// The file decodes but is not in the canonical form this crate writes.
    #[error("resume file is not canonical")]
    NotCanonical,
    /// The verified-pieces bitfield is malformed.
    #[error("resume file bitfield: {0}")]
    Bitfield(#[from] BitfieldError),

    // --- A record for another torrent ---
    /// The record is for a torrent with other info hashes.
    #[error("resume file is for another torrent")]
    WrongTorrent,
    /// The record's number of pieces or files differs from the torrent's.
    #[error("resume file has {got} {what}, the torrent {expected}")]
    WrongShape {
        /// `"pieces"` or `"files"`.
        what: &'static str,
        /// The torrent's count.
        expected: u64,
        /// The record's count.
        got: u64,
    },
}

/// A resume record: the torrent it is for, its verified pieces, and the state of each file
/// (in layout order) when they were verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeData {
    /// The torrent's info hashes.
    pub info_hash: InfoHashes,
    /// Pieces verified and synced to disk.
    pub verified: Bitfield,
    /// Per file in layout order: its size and mtime, `None` if it was absent (padding files
    /// are always `None`).
    pub files: Vec<Option<FileState>>,
    /// Per file in layout order: the download priority the user chose (padding files have
    /// one too, ignored). `None` when the record carries none (records written before
    /// priorities were saved, or never given any): every file keeps its default then. When
    /// present it has exactly one entry per file.
    pub priorities: Option<Vec<FilePriority>>,
}

impl ResumeData {
    /// An empty record for `meta`: nothing verified, every file absent.
    pub fn new(meta: &Metainfo, layout: &Layout) -> Self {
        ResumeData {
            info_hash: meta.info_hashes(),
            verified: Bitfield::new(layout.num_pieces()),
            files: vec![None; layout.files().len()],
            priorities: None,
        }
    }

    /// The recorded priorities as a [`Priorities`] for `layout`, or `None` if the record
    /// carries none or has a different number of files.
    pub fn priorities_for(&self, layout: &Layout) -> Option<Priorities> {
        let recorded = self.priorities.as_ref()?;
        let mut p = Priorities::new(layout);
        if recorded.len() != p.len() {
            return None;
        }
        for (i, &prio) in recorded.iter().enumerate() {
            p.set(i, prio);
        }
        Some(p)
    }

    /// Records `priorities` (one per file of the layout the record is for).
    pub fn set_priorities(&mut self, priorities: &Priorities) {
        self.priorities = Some(priorities.as_slice().to_vec());
    }

    /// The canonical encoding, checksum included.
    pub fn encode(&self) -> Vec<u8> {
        let body = self.dict(None);
        let sum: [u8; 32] = Sha256::digest(&body).into();
        self.dict(Some(&sum))
    }

    fn dict(&self, checksum: Option<&[u8; 32]>) -> Vec<u8> {
        let mut d = DictBuilder::new();
        if let Some(sum) = checksum {
            d.entry_with(b"checksum", |o| put_bytes(o, sum));
        }
        d.entry_with(b"files", |o| {
            o.push(b'l');
            for f in &self.files {
                match f {
                    Some(s) => {
                        let mut fd = DictBuilder::new();
                        fd.entry_with(b"len", |o| put_int(o, clamp_i64(s.len)));
                        // An mtime outside i64 nanoseconds is left out: the file then never
                        // matches and its pieces are rechecked, which is safe.
                        if let Some(m) = s.mtime_ns.and_then(|m| i64::try_from(m).ok()) {
                            fd.entry_with(b"mtime", |o| put_int(o, m));
                        }
                        fd.finish(o);
                    }
                    None => o.extend_from_slice(b"le"),
                }
            }
            o.push(b'e');
        });
        if let Some(h) = &self.info_hash.v1 {
            d.entry_with(b"info-v1", |o| put_bytes(o, &h.0));
        }
        if let Some(h) = &self.info_hash.v2 {
            d.entry_with(b"info-v2", |o| put_bytes(o, &h.0));
        }
        d.entry_with(b"pieces", |o| put_int(o, i64::from(self.verified.len())));
        if let Some(p) = &self.priorities {
            let bytes: Vec<u8> = p.iter().map(|p| p.as_u8()).collect();
            d.entry_with(b"priorities", |o| put_bytes(o, &bytes));
        }
        d.entry_with(b"verified", |o| put_bytes(o, &self.verified.to_bytes()));
        d.entry_with(b"version", |o| put_int(o, RESUME_VERSION));
        let mut out = Vec::new();
        d.finish(&mut out);
        out
    }

    /// Reads a record written by [`encode`](Self::encode) for a torrent of `num_pieces` pieces
    /// and `num_files` files.
    ///
    /// # Errors
    /// [`ResumeError`] for anything but a canonical record of this shape with a good checksum.
    pub fn decode(data: &[u8], num_pieces: u32, num_files: usize) -> Result<Self, ResumeError> {
        let max_tokens = num_files.saturating_mul(6).saturating_add(64);
        let opts = DecodeOptions::strict()
            .with_max_depth(4)
            .with_max_tokens(max_tokens);
        let doc = opts.decode(data)?;
        let root = doc
            .root()
            .as_dict()
            .ok_or(ResumeError::Field { field: "root" })?;
        let version = root
            .get_int(b"version")
            .ok_or(ResumeError::Field { field: "version" })?;
        if version != RESUME_VERSION {
            return Err(ResumeError::UnsupportedVersion { version });
        }
        let pieces = root
            .get_int(b"pieces")
            .ok_or(ResumeError::Field { field: "pieces" })?;
        if pieces != i64::from(num_pieces) {
            return Err(ResumeError::WrongShape {
                what: "pieces",
                expected: u64::from(num_pieces),
                got: u64::try_from(pieces).unwrap_or(0),
            });
        }
        let verified = Bitfield::from_bytes(
            root.get_bytes(b"verified")
                .ok_or(ResumeError::Field { field: "verified" })?,
            num_pieces,
        )?;
        let v1 = match root.get(b"info-v1") {
            Some(v) => Some(
                v.as_bytes()
                    .and_then(Sha1Hash::from_slice)
                    .ok_or(ResumeError::Field { field: "info-v1" })?,
            ),
            None => None,
        };
        let v2 = match root.get(b"info-v2") {
            Some(v) => Some(
                v.as_bytes()
                    .and_then(Sha256Hash::from_slice)
                    .ok_or(ResumeError::Field { field: "info-v2" })?,
            ),
            None => None,
        };
        let list = root
            .get_list(b"files")
            .ok_or(ResumeError::Field { field: "files" })?;
        if list.len() != num_files {
            return Err(ResumeError::WrongShape {
                what: "files",
                expected: num_files as u64,
                got: list.len() as u64,
            });
        }
        let mut files = Vec::with_capacity(num_files);
        for item in list.iter() {
            if let Some(l) = item.as_list() {
                if !l.is_empty() {
                    return Err(ResumeError::Field { field: "files" });
                }
                files.push(None);
            } else {
                let fd = item
                    .as_dict()
                    .ok_or(ResumeError::Field { field: "files" })?;
                files.push(Some(file_state(&fd)?));
            }
        }
        let priorities = match root.get(b"priorities") {
            Some(v) => {
                let bytes =
                    v.as_bytes()
                        .filter(|b| b.len() == num_files)
                        .ok_or(ResumeError::Field {
                            field: "priorities",
                        })?;
                let parsed: Option<Vec<FilePriority>> =
                    bytes.iter().map(|&b| FilePriority::from_u8(b)).collect();
                Some(parsed.ok_or(ResumeError::Field {
                    field: "priorities",
                })?)
            }
            None => None,
        };
        let data_out = ResumeData {
            info_hash: InfoHashes { v1, v2 },
            verified,
            files,
            priorities,
        };
        let sum = root
            .get_bytes(b"checksum")
            .ok_or(ResumeError::Field { field: "checksum" })?;
        let body = data_out.dict(None);
        if Sha256::digest(&body).as_slice() != sum {
            return Err(ResumeError::Checksum);
        }
        if data_out.encode() != data {
            return Err(ResumeError::NotCanonical);
        }
        Ok(data_out)
    }

    /// Largest encoding of a record for `num_pieces` pieces and `num_files` files.
    pub fn max_encoded_len(num_pieces: u32, num_files: usize) -> u64 {
        // Fixed keys and hashes, the bitfield, per file `d3:leni<20>e5:mtimei<20>ee` and a
        // priority byte.
        512u64
            .saturating_add(u64::from(num_pieces).div_ceil(8))
            .saturating_add((num_files as u64).saturating_mul(65))
    }
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn file_state(fd: &DictRef<'_, '_>) -> Result<FileState, ResumeError> {
    let len = fd
        .get_int(b"len")
        .and_then(|l| u64::try_from(l).ok())
        .ok_or(ResumeError::Field { field: "len" })?;
    let mtime_ns = match fd.get(b"mtime") {
        Some(v) => Some(i128::from(
            v.as_int().ok_or(ResumeError::Field { field: "mtime" })?,
        )),
        None => None,
    };
    Ok(FileState { len, mtime_ns })
}

/// Writes `data` to `path` atomically: to `<path>.tmp` first, synced, renamed over `path`,
/// then the directory synced so the rename itself survives a crash.
///
/// One writer per path at a time: two would share `<path>.tmp`.
///
/// # Errors
/// [`ResumeError::Io`] if any step fails; `path` then still holds the previous record.
pub fn save_resume(path: &Path, data: &ResumeData) -> Result<(), ResumeError> {
    write_atomically(path, &data.encode()).map_err(|e| match e {
        StoreError::Io { path, source } => ResumeError::Io { path, source },
        other => ResumeError::Store(other),
    })
}

/// Replaces the file at `path` with `bytes` so that a crash leaves either the old file or the
/// whole new one: written to `<path>.tmp` (never through a link left under that name),
/// synced, renamed over `path`, then the directory synced so the rename itself survives.
///
/// One writer per path at a time: two would share `<path>.tmp`.
///
/// # Errors
/// [`StoreError::Io`] naming the file or directory whose step failed; `path` then still holds
/// what it held before.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| StoreError::Io { path: p, source }
    };
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(crate::path::O_NOFOLLOW)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))?;
    sync_parent(path)
}

#[cfg(unix)]
fn sync_parent(path: &Path) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(not(unix))]
fn sync_parent(_path: &Path) -> Result<(), StoreError> {
    // Directories cannot be opened for syncing here; the rename is as durable as the
    // platform makes it.
    Ok(())
}

/// Reads the resume record at `path` for `meta`, bounded in size.
///
/// # Errors
/// [`ResumeError`] if the file cannot be read, is too large, corrupt, or for another torrent.
pub fn read_resume(
    path: &Path,
    meta: &Metainfo,
    layout: &Layout,
) -> Result<ResumeData, ResumeError> {
    let num_files = layout.files().len();
    let max = ResumeData::max_encoded_len(layout.num_pieces(), num_files);
    let io = |source| ResumeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    f.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(ResumeError::TooLarge {
            len: bytes.len() as u64,
            max,
        });
    }
    let data = ResumeData::decode(&bytes, layout.num_pieces(), num_files)?;
    if data.info_hash != meta.info_hashes() {
        return Err(ResumeError::WrongTorrent);
    }
    Ok(data)
}

/// Where loading a resume record left things.
#[derive(Debug)]
pub enum ResumeStatus {
    /// The record was read; [`ResumeState::verified`] holds the pieces it lets us trust.
    Loaded,
    /// There is no resume file.
    Absent,
    /// The resume file was unusable and is ignored, for this reason.
    Rejected(ResumeError),
}

/// The outcome of [`load_resume`].
#[derive(Debug)]
pub struct ResumeState {
    /// Pieces recorded verified whose files are unchanged since: trusted without reading.
    pub verified: Bitfield,
    /// Pieces recorded verified in a file whose size or mtime changed since: they must be
    /// read and verified again before they are trusted.
    pub to_recheck: Vec<u32>,
    /// The record as read, if it was usable.
    pub data: Option<ResumeData>,
    /// The per-file priorities the record carries, for the layout; `None` if it carries none
    /// (an older record) or was not usable: the caller keeps its defaults then.
    pub priorities: Option<Priorities>,
    /// Whether a record was found and used. When it was not, nothing is trusted and the
    /// caller decides between a full recheck and a fresh download.
    pub status: ResumeStatus,
}

/// Loads the resume record at `path` and decides which recorded pieces can be trusted: those
/// whose every (non-padding) file still has the size and mtime recorded. Never fails: an
/// absent, corrupt or foreign record is reported in [`ResumeState::status`] and treated as
/// no resume data, and a file whose state cannot be read counts as changed.
pub fn load_resume<B: Backend + ?Sized>(
    path: &Path,
    meta: &Metainfo,
    layout: &Layout,
    backend: &B,
) -> ResumeState {
    let empty = |status| ResumeState {
        verified: Bitfield::new(layout.num_pieces()),
        to_recheck: Vec::new(),
        data: None,
        priorities: None,
        status,
    };
    let data = match read_resume(path, meta, layout) {
        Ok(d) => d,
        Err(ResumeError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return empty(ResumeStatus::Absent)
        }
        Err(e) => return empty(ResumeStatus::Rejected(e)),
    };
    let unchanged: Vec<bool> = layout
        .files()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if f.padding {
                return true;
            }
            match (backend.file_state(i), data.files.get(i)) {
                (Ok(now), Some(then)) => now == *then,
                _ => false,
            }
        })
        .collect();
    let mut verified = Bitfield::new(layout.num_pieces());
    let mut to_recheck = Vec::new();
    for piece in data.verified.iter_ones() {
        let mut files = layout.piece_files(piece).peekable();
        let trusted =
            files.peek().is_some() && files.all(|f| unchanged.get(f).copied().unwrap_or(false));
        if trusted {
            verified.set(piece, true);
        } else {
            to_recheck.push(piece);
        }
    }
    let priorities = data.priorities_for(layout);
    ResumeState {
        verified,
        to_recheck,
        priorities,
        data: Some(data),
        status: ResumeStatus::Loaded,
    }
}

/// Records newly verified pieces, keeping the ordering contract: [`commit`](Self::commit)
/// syncs every file those pieces touch before it writes a record that marks them complete.
#[derive(Debug)]
pub struct ResumeWriter {
    path: PathBuf,
    data: ResumeData,
    pending: BTreeSet<u32>,
    /// Priorities set since the last commit.
    pending_priorities: Option<Vec<FilePriority>>,
}

impl ResumeWriter {
    /// A writer of the record at `path`, starting from `data` (for instance
    /// [`ResumeData::new`], or a loaded record with its untrusted pieces cleared).
    pub fn new(path: impl Into<PathBuf>, data: ResumeData) -> Self {
        ResumeWriter {
            path: path.into(),
            data,
            pending: BTreeSet::new(),
            pending_priorities: None,
        }
    }

    /// The record as last committed.
    pub fn data(&self) -> &ResumeData {
        &self.data
    }

    /// True if `piece` is recorded (committed) as verified.
    pub fn is_verified(&self, piece: u32) -> bool {
        self.data.verified.get(piece)
    }

    /// Notes that `piece` was written and verified; it is recorded at the next
    /// [`commit`](Self::commit). Pieces past the end are ignored.
    pub fn mark_verified(&mut self, piece: u32) {
        if piece < self.data.verified.len() {
            self.pending.insert(piece);
        }
    }

    /// Notes the per-file priorities to record at the next [`commit`](Self::commit) (which
    /// then writes a record even if no piece is pending). Returns false, and notes nothing,
    /// if `priorities` is for a layout with another number of files than the record.
    pub fn set_priorities(&mut self, priorities: &Priorities) -> bool {
        if priorities.len() != self.data.files.len() {
            return false;
        }
        let p = priorities.as_slice();
        self.pending_priorities = (self.data.priorities.as_deref() != Some(p)).then(|| p.to_vec());
        true
    }

    /// Number of pieces noted but not yet committed.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Syncs the files of every pending piece, reads the state of every file, and then writes
    /// the record atomically, with the priorities last set. Nothing is written if no piece is
    /// pending and the priorities did not change.
    ///
    /// # Errors
    /// A sync, stat or write error. The pending pieces stay pending and the previous record
    /// stays on disk.
    pub fn commit<B: Backend + ?Sized>(
        &mut self,
        layout: &Layout,
        backend: &B,
    ) -> Result<(), ResumeError> {
        if self.pending.is_empty() && self.pending_priorities.is_none() {
            return Ok(());
        }
        let mut touched = BTreeSet::new();
        for &piece in &self.pending {
            for file in layout.piece_files(piece) {
                if layout.files().get(file).is_some_and(|f| !f.padding) {
                    touched.insert(file);
                }
            }
        }
        for &file in &touched {
            backend.sync(file)?;
        }
        let mut next = self.data.clone();
        for (i, f) in layout.files().iter().enumerate() {
            if let Some(slot) = next.files.get_mut(i) {
                *slot = if f.padding {
                    None
                } else {
                    backend.file_state(i)?
                };
            }
        }
        for &piece in &self.pending {
            next.verified.set(piece, true);
        }
        if let Some(p) = &self.pending_priorities {
            next.priorities = Some(p.clone());
        }
        save_resume(&self.path, &next)?;
        self.data = next;
        self.pending.clear();
        self.pending_priorities = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::memory::MemoryBackend;
    use tessera_metainfo::{TorrentBuilder, TorrentVersion};

    fn fixture(version: TorrentVersion) -> (tempfile::TempDir, Metainfo, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("a"), vec![7u8; 70_000]).unwrap();
        std::fs::write(root.join("b"), vec![9u8; 1_000]).unwrap();
        let t = TorrentBuilder::new(&root)
            .version(version)
            .piece_length(16_384)
            .build()
            .unwrap();
        let meta = Metainfo::from_bytes(t.bytes).unwrap();
        let layout = Layout::new(&meta).unwrap();
        (dir, meta, layout)
    }

    fn sample(meta: &Metainfo, layout: &Layout) -> ResumeData {
        let mut d = ResumeData::new(meta, layout);
        d.verified.set(1, true);
        d.verified.set(3, true);
        d.files[0] = Some(FileState {
            len: 70_000,
            mtime_ns: Some(1_700_000_000_123_456_789),
        });
        d.files[1] = Some(FileState {
            len: 1_000,
            mtime_ns: None,
        });
        d
    }

    #[test]
    fn roundtrip_and_checksum() {
        for version in [
            TorrentVersion::V1,
            TorrentVersion::V2,
            TorrentVersion::Hybrid,
        ] {
            let (_dir, meta, layout) = fixture(version);
            let d = sample(&meta, &layout);
            let bytes = d.encode();
            let n = layout.files().len();
            let back = ResumeData::decode(&bytes, layout.num_pieces(), n).unwrap();
            assert_eq!(back, d);
            assert!(bytes.len() as u64 <= ResumeData::max_encoded_len(layout.num_pieces(), n));
            // Every single-bit flip is rejected, never accepted as different data.
            for i in 0..bytes.len() {
                for bit in [0x01u8, 0x80] {
                    let mut bad = bytes.clone();
                    bad[i] ^= bit;
                    assert!(ResumeData::decode(&bad, layout.num_pieces(), n).is_err());
                }
            }
            // Every truncation is rejected.
            for len in 0..bytes.len() {
                assert!(ResumeData::decode(&bytes[..len], layout.num_pieces(), n).is_err());
            }
            assert!(matches!(
                ResumeData::decode(&bytes, layout.num_pieces() + 1, n),
                Err(ResumeError::WrongShape { what: "pieces", .. })
            ));
        }
    }

    #[test]
    fn load_trusts_only_unchanged_files() {
        let (dir, meta, layout) = fixture(TorrentVersion::V1);
        let mem = MemoryBackend::new(&layout);
        let path = dir.path().join("resume");
        assert!(matches!(
            load_resume(&path, &meta, &layout, &mem).status,
            ResumeStatus::Absent
        ));
        // Write all pieces, record them, then change file b.
        let mut w = ResumeWriter::new(&path, ResumeData::new(&meta, &layout));
        for (i, f) in layout.files().iter().enumerate() {
            if !f.padding {
                mem.write_at(i, 0, &vec![1u8; f.length as usize]).unwrap();
            }
        }
        for p in 0..layout.num_pieces() {
            w.mark_verified(p);
        }
        w.commit(&layout, &mem).unwrap();
        let state = load_resume(&path, &meta, &layout, &mem);
        assert!(state.verified.is_full());
        assert!(state.to_recheck.is_empty());
        mem.write_at(1, 0, &[2u8]).unwrap();
        let state = load_resume(&path, &meta, &layout, &mem);
        let b_pieces: Vec<u32> = layout.file_pieces(1).collect();
        assert_eq!(state.to_recheck, b_pieces);
        assert_eq!(
            state.verified.count() as usize,
            layout.num_pieces() as usize - b_pieces.len()
        );

        // A record for another torrent, garbage and an oversized file are all rejected.
        let (_d2, other, other_layout) = fixture(TorrentVersion::V2);
        save_resume(&path, &ResumeData::new(&other, &other_layout)).unwrap();
        let state = load_resume(&path, &meta, &layout, &mem);
        assert!(state.verified.count() == 0 && state.data.is_none());
        assert!(matches!(state.status, ResumeStatus::Rejected(_)));
        std::fs::write(&path, b"d7:versioni1ee").unwrap();
        assert!(matches!(
            load_resume(&path, &meta, &layout, &mem).status,
            ResumeStatus::Rejected(ResumeError::Field { .. })
        ));
        std::fs::write(&path, vec![b'l'; 1 << 20]).unwrap();
        assert!(matches!(
            load_resume(&path, &meta, &layout, &mem).status,
            ResumeStatus::Rejected(ResumeError::TooLarge { .. })
        ));
    }

    #[test]
    fn priorities_round_trip_and_records_without_them_still_load() {
        for version in [TorrentVersion::V1, TorrentVersion::Hybrid] {
            let (_dir, meta, layout) = fixture(version);
            let n = layout.files().len();
            let pieces = layout.num_pieces();

            // A record as written before priorities existed: no key, same bytes as before.
            let old = sample(&meta, &layout);
            let old_bytes = old.encode();
            assert!(!old_bytes.windows(10).any(|w| w == b"priorities"));
            let back = ResumeData::decode(&old_bytes, pieces, n).unwrap();
            assert_eq!(back.priorities, None);
            assert_eq!(back.priorities_for(&layout), None);

            let mut with = old.clone();
            let mut prios = Priorities::new(&layout);
            prios.set(0, FilePriority::Skip);
            prios.set(n - 1, FilePriority::High);
            with.set_priorities(&prios);
            let bytes = with.encode();
            let back = ResumeData::decode(&bytes, pieces, n).unwrap();
            assert_eq!(back, with);
            assert_eq!(back.priorities_for(&layout), Some(prios.clone()));
            assert!(bytes.len() as u64 <= ResumeData::max_encoded_len(pieces, n));
            for i in 0..bytes.len() {
                let mut bad = bytes.clone();
                bad[i] ^= 0x04;
                assert!(ResumeData::decode(&bad, pieces, n).is_err(), "flip at {i}");
            }

            // Out-of-range priority values and the wrong count are refused by name.
            let key = format!("10:priorities{n}:").into_bytes();
            let at = bytes.windows(key.len()).position(|w| w == key).unwrap();
            for bad in [vec![4u8; n], vec![2u8; n + 1], vec![2u8; n - 1]] {
                let mut forged = bytes[..at].to_vec();
                forged.extend_from_slice(format!("10:priorities{}:", bad.len()).as_bytes());
                forged.extend_from_slice(&bad);
                forged.extend_from_slice(&bytes[at + key.len() + n..]);
                assert!(matches!(
                    ResumeData::decode(&forged, pieces, n),
                    Err(ResumeError::Field {
                        field: "priorities"
                    })
                ));
            }
        }
    }

    #[test]
    fn writer_records_priorities_and_load_returns_them() {
        let (dir, meta, layout) = fixture(TorrentVersion::V1);
        let mem = MemoryBackend::new(&layout);
        let path = dir.path().join("resume");
        let mut w = ResumeWriter::new(&path, ResumeData::new(&meta, &layout));
        let prios = Priorities::new(&layout).with(1, FilePriority::Skip);
        assert!(w.set_priorities(&prios));
        assert_eq!(w.pending(), 0);
        // Priorities alone are worth a record.
        w.commit(&layout, &mem).unwrap();
        let state = load_resume(&path, &meta, &layout, &mem);
        assert!(matches!(state.status, ResumeStatus::Loaded));
        assert_eq!(state.priorities, Some(prios.clone()));
        assert_eq!(state.verified.count(), 0);

        // Unchanged priorities write nothing; pieces keep the priorities recorded.
        assert!(w.set_priorities(&prios));
        std::fs::remove_file(&path).unwrap();
        w.commit(&layout, &mem).unwrap();
        assert!(!path.exists());
        mem.write_at(0, 0, &vec![7u8; 70_000]).unwrap();
        w.mark_verified(0);
        w.commit(&layout, &mem).unwrap();
        let state = load_resume(&path, &meta, &layout, &mem);
        assert_eq!(state.priorities, Some(prios));
        assert!(state.verified.get(0));

        // Priorities for another layout are not taken.
        let (_d2, _other, other_layout) = fixture(TorrentVersion::Hybrid);
        assert_ne!(other_layout.files().len(), layout.files().len());
        assert!(!w.set_priorities(&Priorities::new(&other_layout)));

        // A record without priorities loads with none.
        save_resume(&path, &ResumeData::new(&meta, &layout)).unwrap();
        let state = load_resume(&path, &meta, &layout, &mem);
        assert!(matches!(state.status, ResumeStatus::Loaded));
        assert_eq!(state.priorities, None);
    }

    proptest::proptest! {
        #[test]
        fn hostile_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = ResumeData::decode(&data, 5, 2);
        }
    }
}
