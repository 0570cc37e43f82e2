//! Durable storage primitives: an append-only, checksummed block log and atomically written
//! state snapshots.
//!
//! # Block log format
//!
//! A [`BlockLog`] file starts with an 8-byte file header: the magic bytes `TESLOG` followed by
//! the format version ([`LOG_VERSION`]) as a little-endian `u16`. Records follow back to back,
//! each framed by a [`RECORD_HEADER_LEN`]-byte header:
//!
//! | bytes | field                                                            |
//! |-------|------------------------------------------------------------------|
//! | 4     | payload length, `u32` little-endian, at most [`MAX_RECORD_LEN`]  |
//! | 16    | checksum of the length bytes and the payload (see below)         |
//!
//! then the payload. The checksum is the first 16 bytes of blake3 in derive-key mode with the
//! context `"tessera-ledger block-log record v1"`. It covers the length, so a damaged length is
//! caught even when it happens to point at plausible data, and an all-zero region (which some
//! file systems leave after a crash while extending a file) never verifies.
//!
//! # Crash safety
//!
//! [`BlockLog::append`] only buffers; [`BlockLog::sync`] writes and `fdatasync`s. A caller may
//! report a record as committed only after `sync` returned. A crash can therefore only damage
//! records that were never acknowledged, and only at the end of the file. On
//! [`BlockLog::open`] the log is read front to back and the first record that does not verify
//! (short header, short payload, length over [`MAX_RECORD_LEN`], checksum mismatch) is taken as
//! the end of the log: the file is truncated there, the truncation is made durable, and
//! [`Recovery`] reports what was dropped.
//!
//! Damage in the *middle* of the file (a bad record followed by more records) cannot be told
//! apart from a torn tail in general, so it is treated the same way: the bad record and
//! everything after it are dropped. Such damage is not caused by crashes; the ledger rebuilds its
//! state from what remains and [`Recovery::dropped_bytes`] shows how much went.
//!
//! A log must be owned by one [`BlockLog`] at a time, and a snapshot directory written by one
//! process at a time (no file locking is done).
//!
//! # Snapshots
//!
//! [`write_snapshot`] writes `snapshot-{height:020}.bin` through a temporary file, `fsync`,
//! rename and directory `fsync`, so a snapshot file is either absent or complete. Its contents:
//!
//! | bytes | field                                                             |
//! |-------|-------------------------------------------------------------------|
//! | 6     | magic `TESSNP`                                                    |
//! | 2     | format version ([`SNAPSHOT_VERSION`]), `u16` little-endian        |
//! | 8     | height, `u64` little-endian (must match the file name)            |
//! | 8     | payload length, `u64` little-endian, at most [`MAX_SNAPSHOT_LEN`] |
//! | 16    | checksum of height, length and payload (see below)                |
//!
//! then the payload, which must end exactly at the end of the file. The checksum is the first 16
//! bytes of blake3 in derive-key mode with the context `"tessera-ledger snapshot v1"` over the
//! height and length (little-endian) and the payload. [`latest_snapshot`] skips snapshots that
//! fail any of these checks.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The largest record payload [`BlockLog::append`] accepts and [`BlockLog::open`] believes
/// (64 MiB). A larger stored length is treated as damage, so a corrupt length never makes the
/// reader allocate without bound.
pub const MAX_RECORD_LEN: u32 = 64 << 20;

/// The largest snapshot payload [`write_snapshot`] writes and [`latest_snapshot`] reads (4 GiB).
pub const MAX_SNAPSHOT_LEN: u64 = 4 << 30;

/// Length of the block log's file header: 6 magic bytes and a `u16` version.
pub const LOG_HEADER_LEN: u64 = 8;

/// Length of the header framing each record: `u32` length and 16-byte checksum.
pub const RECORD_HEADER_LEN: u64 = 20;

/// Length of a snapshot file's header, before the payload.
pub const SNAPSHOT_HEADER_LEN: u64 = 40;

/// The block log format version this module reads and writes.
pub const LOG_VERSION: u16 = 1;

/// The snapshot format version this module reads and writes.
pub const SNAPSHOT_VERSION: u16 = 1;

const LOG_MAGIC: [u8; 6] = *b"TESLOG";
const SNAPSHOT_MAGIC: [u8; 6] = *b"TESSNP";
const RECORD_CONTEXT: &str = "tessera-ledger block-log record v1";
const SNAPSHOT_CONTEXT: &str = "tessera-ledger snapshot v1";

/// Appended bytes are handed to the file once this many are buffered (still without `fsync`).
const FLUSH_AT: usize = 256 << 10;

/// How many recent record offsets are remembered, so that [`BlockLog::truncate_to`] near the
/// end does not need to rescan the file.
const RECENT_STARTS: usize = 1024;

/// Chunk size of the buffered reader used while replaying the log.
const READ_BUFFER: usize = 64 << 10;

/// Everything that can go wrong in the block log and the snapshot store.
///
/// `E` is the error type of the visitor passed to [`BlockLog::open`]; every other operation
/// uses the default, [`Infallible`], and [`LogError::widen`] converts such an error into any
/// `LogError<E>`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError<E = Infallible> {
    /// An operating system call on a file or directory failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done, such as `"open"`, `"write"` or `"sync"`.
        op: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file does not start with the block log's magic bytes: it is not a block log, and it
    /// is left untouched.
    #[error("{} is not a block log (bad magic bytes)", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// The file is a block log of a format version this code does not know.
    #[error("{} has block log format version {version}, expected {LOG_VERSION}", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found in its header.
        version: u16,
    },
    /// A record or snapshot is larger than the format allows.
    #[error("{len} bytes is over the maximum of {max}")]
    RecordTooLarge {
        /// Its length.
        len: u64,
        /// The maximum ([`MAX_RECORD_LEN`] or [`MAX_SNAPSHOT_LEN`]).
        max: u64,
    },
    /// The visitor passed to [`BlockLog::open`] returned an error. The file was not modified.
    #[error("the visitor rejected record {index}")]
    Visitor {
        /// Index of the record being visited.
        index: u64,
        /// The visitor's error.
        #[source]
        source: E,
    },
    /// [`BlockLog::truncate_to`] was asked to keep more records than the log holds.
    #[error("cannot truncate to {requested} records: the log holds {len}")]
    TruncateBeyondEnd {
        /// The number of records asked for.
        requested: u64,
        /// The number of records in the log.
        len: u64,
    },
    /// An earlier write, sync or truncation of this log failed, so what is on disk is unknown
    /// (after a failed `fsync` the kernel may have dropped the data while a retry reports
    /// success). The log refuses further work; reopen it to recover.
    #[error("an earlier write to {} failed; reopen the log", path.display())]
    Poisoned {
        /// The log file.
        path: PathBuf,
    },
    /// The log file no longer matches what was read when it was opened: something else changed
    /// it.
    #[error("{} changed under the log at offset {offset}", path.display())]
    Inconsistent {
        /// The log file.
        path: PathBuf,
        /// Where the mismatch was found.
        offset: u64,
    },
}

impl LogError<Infallible> {
    /// Converts an error from an operation without a visitor into a `LogError` for any visitor
    /// error type, so one error type can carry both.
    pub fn widen<E>(self) -> LogError<E> {
        match self {
            LogError::Io { path, op, source } => LogError::Io { path, op, source },
            LogError::BadMagic { path } => LogError::BadMagic { path },
            LogError::UnsupportedVersion { path, version } => {
                LogError::UnsupportedVersion { path, version }
            }
            LogError::RecordTooLarge { len, max } => LogError::RecordTooLarge { len, max },
            LogError::Visitor { source, .. } => match source {},
            LogError::TruncateBeyondEnd { requested, len } => {
                LogError::TruncateBeyondEnd { requested, len }
            }
            LogError::Poisoned { path } => LogError::Poisoned { path },
            LogError::Inconsistent { path, offset } => LogError::Inconsistent { path, offset },
        }
    }
}

/// Why [`BlockLog::open`] dropped the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Damage {
    /// The file was shorter than the file header but held a prefix of it (a creation that
    /// did not finish); the header was written anew.
    ShortFileHeader,
    /// Fewer than [`RECORD_HEADER_LEN`] bytes followed the last valid record.
    ShortHeader,
    /// The record's payload runs past the end of the file.
    ShortPayload {
        /// The payload length the header claims.
        len: u32,
    },
    /// The record's length is over [`MAX_RECORD_LEN`].
    TooLarge {
        /// The payload length the header claims.
        len: u32,
    },
    /// The record's checksum does not match its length and payload.
    ChecksumMismatch,
}

/// What [`BlockLog::open`] found and repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Number of valid records in the log.
    pub records: u64,
    /// Length of the file after recovery: the end of the last valid record.
    pub valid_bytes: u64,
    /// Bytes cut from the end of the file (0 when the log was intact).
    pub dropped_bytes: u64,
    /// Why bytes were dropped, or `None` when the log ended cleanly.
    pub damage: Option<Damage>,
}

impl Recovery {
    /// Whether the log ended cleanly, with nothing dropped.
    pub fn is_clean(&self) -> bool {
        self.damage.is_none()
    }
}

/// An append-only file of checksummed records; see the [module documentation](self) for the
/// format and the crash-safety contract.
///
/// Records appended but not yet [synced](BlockLog::sync) are discarded when the log is dropped.
pub struct BlockLog {
    path: PathBuf,
    file: File,
    /// Appended bytes not yet handed to the file.
    buf: Vec<u8>,
    /// Bytes handed to the file; the file's cursor is here.
    written: u64,
    /// Whether bytes were handed to the file (or it was changed) since the last `fsync`.
    dirty: bool,
    /// Number of records, including buffered ones.
    records: u64,
    /// Start offsets of the last few records (up to [`RECENT_STARTS`]), oldest first.
    starts: VecDeque<u64>,
    /// Set when a write, sync or truncation failed; see [`LogError::Poisoned`].
    poisoned: bool,
}

impl fmt::Debug for BlockLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockLog")
            .field("path", &self.path)
            .field("records", &self.records)
            .field("written", &self.written)
            .field("buffered", &self.buf.len())
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

fn io_err<'a, E>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> LogError<E> + 'a {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

fn log_header() -> [u8; 8] {
    let mut header = [0; 8];
    let (magic, version) = header.split_at_mut(LOG_MAGIC.len());
    magic.copy_from_slice(&LOG_MAGIC);
    version.copy_from_slice(&LOG_VERSION.to_le_bytes());
    header
}

fn record_checksum(len: u32, payload: &[u8]) -> [u8; 16] {
    let mut hasher = blake3::Hasher::new_derive_key(RECORD_CONTEXT);
    hasher.update(&len.to_le_bytes());
    hasher.update(payload);
    let mut sum = [0; 16];
    hasher.finalize_xof().fill(&mut sum);
    sum
}

fn record_header(len: u32, payload: &[u8]) -> [u8; 20] {
    let mut header = [0; 20];
    let (len_bytes, sum) = header.split_at_mut(4);
    len_bytes.copy_from_slice(&len.to_le_bytes());
    sum.copy_from_slice(&record_checksum(len, payload));
    header
}

fn parse_record_header(header: &[u8; 20]) -> (u32, [u8; 16]) {
    let mut len = [0; 4];
    let mut sum = [0; 16];
    let (len_bytes, sum_bytes) = header.split_at(4);
    len.copy_from_slice(len_bytes);
    sum.copy_from_slice(sum_bytes);
    (u32::from_le_bytes(len), sum)
}

/// The directory holding `path`, for `fsync` after creating or renaming an entry.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Makes the creation, renaming or removal of entries in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), LogError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir, "sync directory"))
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened as files here; renames are durable once the call
        // returns on the platforms that matter to this crate.
        let _ = dir;
        Ok(())
    }
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Creates a log holding only the file header, atomically: a temporary file is written and
/// synced, then renamed into place and the directory synced.
fn create_log(path: &Path) -> Result<(), LogError> {
    if path.file_name().is_none() {
        return Err(LogError::Io {
            path: path.to_path_buf(),
            op: "create",
            source: io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
        });
    }
    let tmp = with_suffix(path, ".new");
    let mut file = File::create(&tmp).map_err(io_err(&tmp, "create"))?;
    file.write_all(&log_header())
        .map_err(io_err(&tmp, "write"))?;
    file.sync_all().map_err(io_err(&tmp, "sync"))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path, "rename"))?;
    sync_dir(parent_dir(path))
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..) {
        if rest.is_empty() {
            break;
        }
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Remembers the start offset of a record, keeping only the most recent [`RECENT_STARTS`].
fn remember(starts: &mut VecDeque<u64>, start: u64) {
    if starts.len() == RECENT_STARTS {
        starts.pop_front();
    }
    starts.push_back(start);
}

impl BlockLog {
    /// Opens the log at `path`, creating it if absent, and replays it.
    ///
    /// Every valid record is passed in order to `visit(index, payload)`, one at a time (the file
    /// is streamed, not loaded whole). The first record that does not verify ends the log: the
    /// file is truncated to the end of the last valid record and the truncation is synced.
    /// Damage anywhere, not only in the last record, is handled this way; see the
    /// [module documentation](self). The file is then synced (including a truncation), so every
    /// record replayed is durable, even one an earlier process wrote but never synced. The
    /// returned log appends after the last valid record.
    ///
    /// A new log is created atomically (temporary file, `fsync`, rename, directory `fsync`).
    /// An existing empty file, or one holding only the start of the file header, is given a
    /// fresh header.
    ///
    /// The visitor cannot drop records: to reject a tail record, note its index, return `Ok`,
    /// and call [`BlockLog::truncate_to`] on the opened log.
    ///
    /// # Errors
    ///
    /// [`LogError::Visitor`] if `visit` fails; replay stops there and the file is left as it
    /// was. [`LogError::BadMagic`] or [`LogError::UnsupportedVersion`] if the file is not a
    /// block log this code can read; it is left untouched. [`LogError::Io`] if the file cannot
    /// be created, read, truncated or synced.
    pub fn open<E, F>(path: &Path, mut visit: F) -> Result<(BlockLog, Recovery), LogError<E>>
    where
        F: FnMut(u64, &[u8]) -> Result<(), E>,
    {
        let open = || OpenOptions::new().read(true).write(true).open(path);
        let mut file = match open() {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_log(path).map_err(LogError::widen)?;
                open().map_err(io_err(path, "open"))?
            }
            Err(e) => return Err(io_err(path, "open")(e)),
        };
        let file_len = file.metadata().map_err(io_err(path, "stat"))?.len();

        if file_len < LOG_HEADER_LEN {
            return Self::reinitialise(path, file, file_len).map_err(LogError::widen);
        }

        let mut reader = BufReader::with_capacity(READ_BUFFER, &file);
        let mut header = [0; 8];
        reader
            .read_exact(&mut header)
            .map_err(io_err(path, "read"))?;
        let (magic, version) = header.split_at(LOG_MAGIC.len());
        if magic != LOG_MAGIC {
            return Err(LogError::BadMagic {
                path: path.to_path_buf(),
            });
        }
        let mut version_bytes = [0; 2];
        version_bytes.copy_from_slice(version);
        let version = u16::from_le_bytes(version_bytes);
        if version != LOG_VERSION {
            return Err(LogError::UnsupportedVersion {
                path: path.to_path_buf(),
                version,
            });
        }

        let mut pos = LOG_HEADER_LEN;
        let mut records = 0u64;
        let mut starts = VecDeque::new();
        let mut payload = Vec::new();
        let damage = loop {
            let remaining = file_len - pos;
            if remaining == 0 {
                break None;
            }
            if remaining < RECORD_HEADER_LEN {
                break Some(Damage::ShortHeader);
            }
            let mut header = [0; 20];
            reader
                .read_exact(&mut header)
                .map_err(io_err(path, "read"))?;
            let (len, sum) = parse_record_header(&header);
            if len > MAX_RECORD_LEN {
                break Some(Damage::TooLarge { len });
            }
            if u64::from(len) > remaining - RECORD_HEADER_LEN {
                break Some(Damage::ShortPayload { len });
            }
            // Bounded by MAX_RECORD_LEN and by the bytes actually in the file.
            payload.resize(len as usize, 0);
            reader
                .read_exact(&mut payload)
                .map_err(io_err(path, "read"))?;
            if record_checksum(len, &payload) != sum {
                break Some(Damage::ChecksumMismatch);
            }
            visit(records, &payload).map_err(|source| LogError::Visitor {
                index: records,
                source,
            })?;
            remember(&mut starts, pos);
            records += 1;
            pos += RECORD_HEADER_LEN + u64::from(len);
        };
        drop(reader);
        drop(payload);

        if damage.is_some() {
            file.set_len(pos).map_err(io_err(path, "truncate"))?;
        }
        // Always sync: records an earlier process wrote but never synced are still readable
        // after a process crash, and once replayed here they must be as durable as the rest.
        file.sync_all().map_err(io_err(path, "sync"))?;
        file.seek(SeekFrom::Start(pos))
            .map_err(io_err(path, "seek"))?;
        let log = BlockLog {
            path: path.to_path_buf(),
            file,
            buf: Vec::new(),
            written: pos,
            dirty: false,
            records,
            starts,
            poisoned: false,
        };
        let recovery = Recovery {
            records,
            valid_bytes: pos,
            dropped_bytes: file_len - pos,
            damage,
        };
        Ok((log, recovery))
    }

    /// Handles a file shorter than the file header: empty, or an unfinished creation.
    fn reinitialise(
        path: &Path,
        mut file: File,
        file_len: u64,
    ) -> Result<(Self, Recovery), LogError> {
        let mut start = Vec::new();
        // Bounded: the file may not be a regular one, and its length may have grown since.
        (&file)
            .take(LOG_HEADER_LEN + 1)
            .read_to_end(&mut start)
            .map_err(io_err(path, "read"))?;
        if !log_header().starts_with(&start) {
            return Err(LogError::BadMagic {
                path: path.to_path_buf(),
            });
        }
        file.set_len(0).map_err(io_err(path, "truncate"))?;
        file.seek(SeekFrom::Start(0))
            .map_err(io_err(path, "seek"))?;
        file.write_all(&log_header())
            .map_err(io_err(path, "write"))?;
        file.sync_all().map_err(io_err(path, "sync"))?;
        let log = BlockLog {
            path: path.to_path_buf(),
            file,
            buf: Vec::new(),
            written: LOG_HEADER_LEN,
            dirty: false,
            records: 0,
            starts: VecDeque::new(),
            poisoned: false,
        };
        let recovery = Recovery {
            records: 0,
            valid_bytes: LOG_HEADER_LEN,
            dropped_bytes: file_len,
            damage: (file_len > 0).then_some(Damage::ShortFileHeader),
        };
        Ok((log, recovery))
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of records in the log, including appended ones not yet synced.
    pub fn len(&self) -> u64 {
        self.records
    }

    /// Whether the log holds no records.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Appends a record and returns its index. The record is buffered, not yet durable: it may
    /// be reported as committed only after a following [`BlockLog::sync`] returns.
    ///
    /// # Errors
    ///
    /// [`LogError::RecordTooLarge`] if `record` is longer than [`MAX_RECORD_LEN`] (the log is
    /// unchanged). [`LogError::Io`] if handing buffered bytes to the file fails, after which the
    /// log is poisoned ([`LogError::Poisoned`] from then on).
    pub fn append(&mut self, record: &[u8]) -> Result<u64, LogError> {
        self.check()?;
        let len = match u32::try_from(record.len()) {
            Ok(len) if len <= MAX_RECORD_LEN => len,
            _ => {
                return Err(LogError::RecordTooLarge {
                    len: u64::try_from(record.len()).unwrap_or(u64::MAX),
                    max: u64::from(MAX_RECORD_LEN),
                })
            }
        };
        let start = self.end();
        let result = self.buffer_record(len, record);
        self.poison_on_error(result)?;
        let index = self.records;
        self.records += 1;
        remember(&mut self.starts, start);
        Ok(index)
    }

    fn buffer_record(&mut self, len: u32, record: &[u8]) -> Result<(), LogError> {
        self.buf.extend_from_slice(&record_header(len, record));
        if record.len() >= FLUSH_AT {
            // A large record goes straight to the file rather than through the buffer.
            self.flush_buf()?;
            self.file
                .write_all(record)
                .map_err(io_err(&self.path, "write"))?;
            self.written += u64::from(len);
            self.dirty = true;
        } else {
            self.buf.extend_from_slice(record);
            if self.buf.len() >= FLUSH_AT {
                self.flush_buf()?;
            }
        }
        Ok(())
    }

    /// Makes every record appended so far durable: writes the buffer and `fdatasync`s the file.
    /// Only after this returns may the caller report those records as committed.
    ///
    /// # Errors
    ///
    /// [`LogError::Io`] if the write or the sync fails. The log is then poisoned
    /// ([`LogError::Poisoned`] from then on): whether the records reached the disk is unknown,
    /// and retrying an `fsync` is not reliable. Reopen the log to find out what survived.
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.check()?;
        let result = self.sync_inner();
        self.poison_on_error(result)
    }

    fn sync_inner(&mut self) -> Result<(), LogError> {
        self.flush_buf()?;
        if self.dirty {
            self.file.sync_data().map_err(io_err(&self.path, "sync"))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Drops the records from index `records` on, keeping the first `records`, and makes the
    /// result durable (everything kept, including records appended but not yet synced, is
    /// synced too). `truncate_to(len())` is the same as [`BlockLog::sync`].
    ///
    /// Truncating within the last 1024 records is cheap; going further back rereads the record
    /// headers from the start of the file.
    ///
    /// # Errors
    ///
    /// [`LogError::TruncateBeyondEnd`] if `records` is more than [`BlockLog::len`].
    /// [`LogError::Io`] if a write, the truncation or the sync fails, and
    /// [`LogError::Inconsistent`] if the file no longer holds the records read earlier; the log
    /// is then poisoned.
    pub fn truncate_to(&mut self, records: u64) -> Result<(), LogError> {
        self.check()?;
        if records > self.records {
            return Err(LogError::TruncateBeyondEnd {
                requested: records,
                len: self.records,
            });
        }
        let result = self.truncate_inner(records);
        self.poison_on_error(result)
    }

    fn truncate_inner(&mut self, records: u64) -> Result<(), LogError> {
        if records < self.records {
            let oldest_known = self.records - self.starts.len() as u64;
            let target = if records >= oldest_known {
                let keep = usize::try_from(records - oldest_known).unwrap_or(usize::MAX);
                let target = self.starts.get(keep).copied();
                self.starts.truncate(keep);
                target
            } else {
                None
            };
            let target = match target {
                Some(target) => target,
                None => self.scan_to(records)?,
            };
            if target >= self.written {
                let keep = usize::try_from(target - self.written).unwrap_or(usize::MAX);
                self.buf.truncate(keep);
            } else {
                self.buf.clear();
                self.file
                    .set_len(target)
                    .map_err(io_err(&self.path, "truncate"))?;
                self.file
                    .seek(SeekFrom::Start(target))
                    .map_err(io_err(&self.path, "seek"))?;
                self.written = target;
                // A shrinking file needs its size made durable: sync all metadata.
                self.file.sync_all().map_err(io_err(&self.path, "sync"))?;
            }
            self.records = records;
        }
        self.sync_inner()
    }

    /// Finds the start offset of record `records` by walking the record headers from the start
    /// of the file, and refills the recent-offsets window to end there.
    fn scan_to(&mut self, records: u64) -> Result<u64, LogError> {
        self.flush_buf()?;
        let inconsistent = |offset| LogError::Inconsistent {
            path: self.path.clone(),
            offset,
        };
        self.file
            .seek(SeekFrom::Start(LOG_HEADER_LEN))
            .map_err(io_err(&self.path, "seek"))?;
        let mut starts = VecDeque::new();
        let mut pos = LOG_HEADER_LEN;
        {
            let mut reader = BufReader::with_capacity(READ_BUFFER, &self.file);
            for _ in 0..records {
                let mut header = [0; 20];
                let got =
                    read_full(&mut reader, &mut header).map_err(io_err(&self.path, "read"))?;
                if got != header.len() {
                    return Err(inconsistent(pos));
                }
                let (len, _) = parse_record_header(&header);
                let next = pos + RECORD_HEADER_LEN + u64::from(len);
                if len > MAX_RECORD_LEN || next > self.written {
                    return Err(inconsistent(pos));
                }
                reader
                    .seek_relative(i64::from(len))
                    .map_err(io_err(&self.path, "seek"))?;
                remember(&mut starts, pos);
                pos = next;
            }
        }
        self.file
            .seek(SeekFrom::Start(self.written))
            .map_err(io_err(&self.path, "seek"))?;
        self.starts = starts;
        Ok(pos)
    }

    /// The logical end of the log: bytes written plus bytes buffered.
    fn end(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    /// Hands the buffered bytes to the file (no `fsync`).
    fn flush_buf(&mut self) -> Result<(), LogError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.buf)
            .map_err(io_err(&self.path, "write"))?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        self.dirty = true;
        Ok(())
    }

    fn check(&self) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    fn poison_on_error<T>(&mut self, result: Result<T, LogError>) -> Result<T, LogError> {
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------------

const SNAPSHOT_PREFIX: &str = "snapshot-";
const SNAPSHOT_SUFFIX: &str = ".bin";
const TEMP_SUFFIX: &str = ".tmp";

fn snapshot_name(height: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{height:020}{SNAPSHOT_SUFFIX}")
}

/// The height in a snapshot file name `snapshot-{height:020}.bin`, if `name` is one.
fn parse_snapshot_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(SNAPSHOT_PREFIX)?
        .strip_suffix(SNAPSHOT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn snapshot_checksum(height: u64, len: u64, payload: &[u8]) -> [u8; 16] {
    let mut hasher = blake3::Hasher::new_derive_key(SNAPSHOT_CONTEXT);
    hasher.update(&height.to_le_bytes());
    hasher.update(&len.to_le_bytes());
    hasher.update(payload);
    let mut sum = [0; 16];
    hasher.finalize_xof().fill(&mut sum);
    sum
}

fn snapshot_header(height: u64, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u64;
    let mut header = Vec::with_capacity(SNAPSHOT_HEADER_LEN as usize);
    header.extend_from_slice(&SNAPSHOT_MAGIC);
    header.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    header.extend_from_slice(&height.to_le_bytes());
    header.extend_from_slice(&len.to_le_bytes());
    header.extend_from_slice(&snapshot_checksum(height, len, payload));
    header
}

/// Takes the next `N` bytes off the front of `bytes`.
fn take<const N: usize>(bytes: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = bytes.split_first_chunk::<N>()?;
    *bytes = rest;
    Some(*head)
}

/// The snapshot files in `dir` as (height, path), in no particular order; an absent directory
/// has none.
fn list_snapshots(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir, "read directory")(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir, "read directory"))?;
        let name = entry.file_name();
        if let Some(height) = name.to_str().and_then(parse_snapshot_name) {
            found.push((height, entry.path()));
        }
    }
    Ok(found)
}

/// Writes `bytes` as the state snapshot for `height` in `dir`, atomically: into a temporary
/// file, `fsync`, renamed to `snapshot-{height:020}.bin`, directory `fsync`. A snapshot already
/// there for `height` is replaced. `dir` is created if absent.
///
/// Afterwards only the `keep` snapshots with the greatest heights are kept (at least one, even
/// if `keep` is 0); older ones are deleted, as are temporary files left by interrupted writes.
/// Retention goes by height, so snapshots above `height` count as newer than this one.
///
/// # Errors
///
/// [`LogError::RecordTooLarge`] if `bytes` is longer than [`MAX_SNAPSHOT_LEN`].
/// [`LogError::Io`] if creating, writing, syncing or renaming the file, syncing the directory or
/// deleting old snapshots fails. If the error comes before the rename, the previous snapshots
/// are untouched.
pub fn write_snapshot(dir: &Path, height: u64, bytes: &[u8], keep: usize) -> Result<(), LogError> {
    let len = bytes.len() as u64;
    if len > MAX_SNAPSHOT_LEN {
        return Err(LogError::RecordTooLarge {
            len,
            max: MAX_SNAPSHOT_LEN,
        });
    }
    if !dir.is_dir() {
        fs::create_dir_all(dir).map_err(io_err(dir, "create directory"))?;
        sync_dir(parent_dir(dir))?;
    }

    let path = dir.join(snapshot_name(height));
    let tmp = with_suffix(&path, TEMP_SUFFIX);
    let mut file = File::create(&tmp).map_err(io_err(&tmp, "create"))?;
    file.write_all(&snapshot_header(height, bytes))
        .and_then(|()| file.write_all(bytes))
        .map_err(io_err(&tmp, "write"))?;
    file.sync_all().map_err(io_err(&tmp, "sync"))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(io_err(&path, "rename"))?;
    sync_dir(dir)?;

    // Retention and clean-up. Removals need not be durable: a snapshot that reappears after a
    // crash is still a valid one.
    let mut heights = list_snapshots(dir)?;
    heights.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
    for (_, old) in heights.iter().skip(keep.max(1)) {
        remove_if_present(old)?;
    }
    let entries = fs::read_dir(dir).map_err(io_err(dir, "read directory"))?;
    for entry in entries {
        let entry = entry.map_err(io_err(dir, "read directory"))?;
        let name = entry.file_name();
        let stray = name
            .to_str()
            .and_then(|n| n.strip_suffix(TEMP_SUFFIX))
            .and_then(parse_snapshot_name)
            .is_some();
        if stray {
            remove_if_present(&entry.path())?;
        }
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, "remove")(e)),
    }
}

/// Reads and verifies the snapshot at `path`: `Ok(None)` if it is gone or does not verify.
fn read_snapshot(path: &Path, height: u64) -> Result<Option<Vec<u8>>, LogError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, "open")(e)),
    };
    let file_len = file.metadata().map_err(io_err(path, "stat"))?.len();
    let mut header = [0; SNAPSHOT_HEADER_LEN as usize];
    if file_len < SNAPSHOT_HEADER_LEN {
        return Ok(None);
    }
    file.read_exact(&mut header).map_err(io_err(path, "read"))?;
    let mut rest = header.as_slice();
    let (Some(magic), Some(version), Some(stored_height), Some(len), Some(sum)) = (
        take::<6>(&mut rest),
        take::<2>(&mut rest),
        take::<8>(&mut rest),
        take::<8>(&mut rest),
        take::<16>(&mut rest),
    ) else {
        return Ok(None);
    };
    let len = u64::from_le_bytes(len);
    if magic != SNAPSHOT_MAGIC
        || u16::from_le_bytes(version) != SNAPSHOT_VERSION
        || u64::from_le_bytes(stored_height) != height
        || len > MAX_SNAPSHOT_LEN
        || len != file_len - SNAPSHOT_HEADER_LEN
    {
        return Ok(None);
    }
    // `len` matches the file's real length, so this allocation is backed by data on disk.
    let Ok(capacity) = usize::try_from(len) else {
        return Ok(None);
    };
    let mut payload = Vec::with_capacity(capacity);
    (&mut file)
        .take(len)
        .read_to_end(&mut payload)
        .map_err(io_err(path, "read"))?;
    if payload.len() as u64 != len || snapshot_checksum(height, len, &payload) != sum {
        return Ok(None);
    }
    Ok(Some(payload))
}

/// The newest snapshot in `dir` that verifies, as `(height, bytes)`: snapshots that are
/// truncated, corrupt, of another format or whose header height differs from the file name are
/// skipped, as are temporary files. `None` if there is none (or `dir` does not exist).
///
/// # Errors
///
/// [`LogError::Io`] if the directory cannot be listed or a snapshot cannot be read for a reason
/// other than its contents (a snapshot with bad contents is skipped, not an error).
pub fn latest_snapshot(dir: &Path) -> Result<Option<(u64, Vec<u8>)>, LogError> {
    let mut snapshots = list_snapshots(dir)?;
    snapshots.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
    for (height, path) in snapshots {
        if let Some(bytes) = read_snapshot(&path, height)? {
            return Ok(Some((height, bytes)));
        }
    }
    Ok(None)
}

/// The heights of all snapshot files in `dir`, valid or not, in ascending order (empty if `dir`
/// does not exist). Temporary files are not included.
///
/// # Errors
///
/// [`LogError::Io`] if the directory cannot be listed.
pub fn snapshot_heights(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut heights: Vec<u64> = list_snapshots(dir)?.into_iter().map(|(h, _)| h).collect();
    heights.sort_unstable();
    Ok(heights)
}
