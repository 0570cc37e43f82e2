//! A backend on the local file system: positioned reads and writes (`pread`/`pwrite`) through a
//! bounded cache of open handles.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::backend::{check_padding_write, check_range, Backend, FileState};
use crate::error::StoreError;
use crate::layout::Layout;
use crate::path::safe_join;

/// Settings for a [`FileBackend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileBackendOptions {
    /// Write zeros over the whole of each file when it is created, so that later writes cannot
    /// fail for lack of space. Off by default: files are created sparse, at their full length.
    pub preallocate: bool,
    /// How many open file handles the cache keeps (at least one is kept). Handles in use by a
    /// read or write that is under way stay open until it ends, even once evicted.
    pub max_open_files: usize,
}

impl Default for FileBackendOptions {
    fn default() -> Self {
        FileBackendOptions {
            preallocate: false,
            max_open_files: 128,
        }
    }
}

/// A file of the layout as the backend sees it.
#[derive(Debug)]
struct DiskFile {
    /// Where it lives; `None` for padding, which never touches the disk.
    path: Option<PathBuf>,
    /// Its length in the torrent.
    length: u64,
}

/// An open handle in the cache.
#[derive(Debug)]
struct Cached {
    file: Arc<File>,
    writable: bool,
    last_used: u64,
}

#[derive(Debug, Default)]
struct HandleCache {
    open: HashMap<usize, Cached>,
    clock: u64,
}

/// Files under a download directory, laid out as [`LayoutFile::path`](crate::LayoutFile::path)
/// says.
///
/// Reads and writes are positioned (no seek), so any number of threads can use one backend;
/// the handle cache's lock is held only to look up or insert a handle, never during I/O. Files
/// and their directories are created on the first write (or [`Backend::set_len`]); padding
/// files are never created.
#[derive(Debug)]
pub struct FileBackend {
    files: Vec<DiskFile>,
    opts: FileBackendOptions,
    cache: Mutex<HandleCache>,
}

impl FileBackend {
    /// A backend for the files of `layout` under `download_dir`. Nothing is created yet.
    ///
    /// # Errors
    /// [`StoreError::UnsafePath`] if a file's path would leave `download_dir` (see
    /// [`safe_join`]).
    pub fn new(
        download_dir: &Path,
        layout: &Layout,
        opts: FileBackendOptions,
    ) -> Result<FileBackend, StoreError> {
        let files = layout
            .files()
            .iter()
            .map(|f| {
                let path = if f.padding {
                    None
                } else {
                    Some(safe_join(download_dir, &f.path)?)
                };
                Ok(DiskFile {
                    path,
                    length: f.length,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(FileBackend {
            files,
            opts,
            cache: Mutex::new(HandleCache::default()),
        })
    }

    /// The path of `file` on disk (`None` for padding and unknown indices).
    pub fn path(&self, file: usize) -> Option<&Path> {
        self.files.get(file)?.path.as_deref()
    }

    /// How many handles the cache holds now (never more than
    /// [`max_open_files`](FileBackendOptions::max_open_files)).
    pub fn open_handles(&self) -> usize {
        self.lock().open.len()
    }

    /// Closes every cached handle (handles in use close when their I/O ends).
    pub fn close_all(&self) {
        self.lock().open.clear();
    }

    fn lock(&self) -> MutexGuard<'_, HandleCache> {
        // The cache is a plain map; a panic elsewhere cannot leave it inconsistent.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn disk_file(&self, file: usize) -> Result<&DiskFile, StoreError> {
        self.files.get(file).ok_or(StoreError::NoSuchFile { file })
    }

    /// A handle on `file` (which must not be padding), from the cache or newly opened. For
    /// reading, `None` if the file does not exist; for writing, the file is created.
    fn handle(&self, file: usize, write: bool) -> Result<Option<Arc<File>>, StoreError> {
        {
            let mut cache = self.lock();
            cache.clock = cache.clock.wrapping_add(1);
            let now = cache.clock;
            if let Some(c) = cache.open.get_mut(&file) {
                if c.writable || !write {
                    c.last_used = now;
                    return Ok(Some(Arc::clone(&c.file)));
                }
            }
        }
        let df = self.disk_file(file)?;
        let Some(path) = df.path.as_deref() else {
            return Err(StoreError::NoSuchFile { file });
        };
        let opened = if write {
            open_for_write(path, df.length, self.opts.preallocate)?
        } else {
            match OpenOptions::new().read(true).open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(open_error(path, e)),
            }
        };
        let handle = Arc::new(opened);
        let mut cache = self.lock();
        cache.clock = cache.clock.wrapping_add(1);
        let now = cache.clock;
        cache.open.insert(
            file,
            Cached {
                file: Arc::clone(&handle),
                writable: write,
                last_used: now,
            },
        );
        let max = self.opts.max_open_files.max(1);
        while cache.open.len() > max {
            let oldest = cache
                .open
                .iter()
                .filter(|(&k, _)| k != file)
                .min_by_key(|(_, c)| c.last_used)
                .map(|(&k, _)| k);
            match oldest {
                Some(k) => {
                    cache.open.remove(&k);
                }
                None => break,
            }
        }
        Ok(Some(handle))
    }
}

/// Opens `path` for reading and writing, creating it and its directories if needed. A file
/// this call creates gets its full `length`: sparse, or written with zeros if `preallocate`.
fn open_for_write(path: &Path, length: u64, preallocate: bool) -> Result<File, StoreError> {
    let rw = || OpenOptions::new().read(true).write(true).open(path);
    match rw() {
        Ok(f) => return Ok(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(open_error(path, e)),
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| open_error(parent, e))?;
    }
    // `create_new`: of two threads creating the file at once, only one sizes it.
    let f = match OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return rw().map_err(|e| open_error(path, e))
        }
        Err(e) => return Err(open_error(path, e)),
    };
    if preallocate {
        fill_zeros(&f, length).map_err(|e| io_error(path, e))?;
    } else {
        f.set_len(length).map_err(|e| io_error(path, e))?;
    }
    Ok(f)
}

/// Writes `length` zero bytes from the start of `f`.
fn fill_zeros(f: &File, length: u64) -> io::Result<()> {
    const CHUNK: u64 = 1 << 20;
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < length {
        let n = (length - at).min(CHUNK);
        let n_usize = usize::try_from(n).unwrap_or(0);
        f.write_all_at(zeros.get(..n_usize).unwrap_or_default(), at)?;
        at += n;
    }
    Ok(())
}

/// True for the errors with which the operating system refuses a name.
fn is_name_error(e: &io::Error) -> bool {
    // `io::ErrorKind::InvalidFilename` is newer than the workspace's minimum Rust, so the
    // codes are matched. Linux: EINVAL (22) and EILSEQ (84) from file systems that refuse
    // characters or encodings, ENAMETOOLONG (36).
    cfg!(target_os = "linux") && matches!(e.raw_os_error(), Some(22 | 36 | 84))
}

/// Maps an error from opening or creating `path`.
fn open_error(path: &Path, e: io::Error) -> StoreError {
    if is_name_error(&e) {
        StoreError::InvalidFileName {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    } else {
        io_error(path, e)
    }
}

fn io_error(path: &Path, e: io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

impl Backend for FileBackend {
    fn read_at(&self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        let df = self.disk_file(file)?;
        check_range(file, offset, buf.len(), df.length)?;
        let Some(path) = df.path.as_deref() else {
            buf.fill(0);
            return Ok(());
        };
        if buf.is_empty() {
            return Ok(());
        }
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        let missing = || StoreError::Missing { file, offset, len };
        let Some(handle) = self.handle(file, false)? else {
            return Err(missing());
        };
        match handle.read_exact_at(buf, offset) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(missing()),
            Err(e) => Err(io_error(path, e)),
        }
    }

    fn write_at(&self, file: usize, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        let df = self.disk_file(file)?;
        check_range(file, offset, data.len(), df.length)?;
        let Some(path) = df.path.as_deref() else {
            return check_padding_write(file, data);
        };
        if data.is_empty() {
            return Ok(());
        }
        let handle = self
            .handle(file, true)?
            .ok_or(StoreError::NoSuchFile { file })?;
        handle
            .write_all_at(data, offset)
            .map_err(|e| io_error(path, e))
    }

    fn sync(&self, file: usize) -> Result<(), StoreError> {
        let df = self.disk_file(file)?;
        let Some(path) = df.path.as_deref() else {
            return Ok(());
        };
        match self.handle(file, false)? {
            Some(h) => h.sync_all().map_err(|e| io_error(path, e)),
            None => Ok(()),
        }
    }

    fn file_state(&self, file: usize) -> Result<Option<FileState>, StoreError> {
        let df = self.disk_file(file)?;
        let Some(path) = df.path.as_deref() else {
            return Ok(Some(FileState {
                len: df.length,
                mtime_ns: None,
            }));
        };
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(path, e)),
        };
        if !meta.is_file() {
            return Err(io_error(path, io::Error::other("not a regular file")));
        }
        let mtime_ns = i128::from(meta.mtime())
            .saturating_mul(1_000_000_000)
            .saturating_add(i128::from(meta.mtime_nsec()));
        Ok(Some(FileState {
            len: meta.len(),
            mtime_ns: Some(mtime_ns),
        }))
    }

    fn set_len(&self, file: usize, len: u64) -> Result<(), StoreError> {
        let df = self.disk_file(file)?;
        if len > df.length {
            return Err(StoreError::FileRange {
                file,
                offset: 0,
                len,
                file_len: df.length,
            });
        }
        let Some(path) = df.path.as_deref() else {
            return Ok(());
        };
        let handle = self
            .handle(file, true)?
            .ok_or(StoreError::NoSuchFile { file })?;
        handle.set_len(len).map_err(|e| io_error(path, e))
    }
}
