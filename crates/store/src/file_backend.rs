//! A backend on the local file system: positioned reads and writes (`pread`/`pwrite`) through a
//! bounded cache of open handles.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::backend::{check_padding_write, check_range, Backend, FileState};
use crate::error::StoreError;
use crate::layout::Layout;
use crate::path::{name_problem, safe_join, O_NOFOLLOW};

/// Settings for a [`FileBackend`].
///
/// Build it from [`Default`] and change the fields you need
/// (`FileBackendOptions { preallocate: true, ..FileBackendOptions::default() }`), so that
/// options added later keep their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileBackendOptions {
    /// Reserve the disk space of each file when it is first opened for writing, so that later
    /// writes cannot fail for lack of space. Off by default: files are created sparse, at their
    /// full length (`File::set_len`), and take space only as blocks arrive.
    ///
    /// The standard library has no `fallocate`, and this crate uses neither `unsafe` nor the C
    /// library, so the space is reserved the way the C library's `posix_fallocate` does on
    /// file systems without `fallocate`: every block of the file that reads as zeros (a hole,
    /// or not yet written) is written with zeros, and blocks holding data are left alone.
    /// That costs one pass of writes over the file's free part, the first time it is opened
    /// for writing (by this backend); a file whose blocks are all allocated is skipped. On
    /// file systems that compress or deduplicate zeros (btrfs or ZFS with compression), or
    /// copy on write, this cannot guarantee the space, as `fallocate` cannot there either.
    pub preallocate: bool,
    /// How many open file handles the cache keeps (at least one is kept). Handles in use by a
    /// read or write that is under way stay open until it ends, even once evicted.
    pub max_open_files: usize,
    /// Refuse, with [`StoreError::InvalidFileName`], file names that Windows cannot take
    /// whatever the OS this runs on (reserved device names such as `CON`, `aux.txt` or `COM1`,
    /// the characters `< > : " \ | ? *`, names ending in a space or a dot), so that a download
    /// can be moved to any system. Off by default; names the local OS refuses (a name longer
    /// than 255 bytes, a NUL byte, a path longer than the OS takes) are always refused.
    pub portable: bool,
    /// Write whole aligned stretches of data with `O_DIRECT` (Linux), from the caller's buffer
    /// to the device without passing through the page cache. Off by default.
    ///
    /// A download writes each verified piece once and rarely reads it back soon, and copying
    /// it into the page cache is then most of a downloader's CPU time: on some virtual
    /// machines new page-cache memory costs as much as 3 s per GiB, on one core, because
    /// ext4 serialises buffered writes to a file. Direct writes skip that copy.
    ///
    /// Only a write whose file offset is a multiple of 4096 goes direct, and only its whole
    /// 4096-byte blocks; the rest of it (the last, partial block of a file) is written
    /// through the page cache, and so is every other write, so that no page is written both
    /// ways. Data is staged through an aligned buffer of this backend's. Where the file
    /// system refuses `O_DIRECT` (tmpfs, some network file systems) the file falls back to
    /// ordinary writes, silently and for good. Reads always go through the page cache, and
    /// see what was written either way.
    pub direct_writes: bool,
}

impl Default for FileBackendOptions {
    fn default() -> Self {
        FileBackendOptions {
            preallocate: false,
            max_open_files: 128,
            portable: false,
            direct_writes: false,
        }
    }
}

/// A file of the layout as the backend sees it.
#[derive(Debug)]
struct DiskFile {
    /// Where it lives; `None` for padding, which never touches the disk.
    path: Option<PathBuf>,
    /// The path relative to the download directory, as the layout gives it.
    relative: String,
    /// Its length in the torrent.
    length: u64,
    /// Held while the file is opened (created, sized, preallocated), so that no other thread
    /// gets a handle on it before it is ready.
    opening: Mutex<()>,
    /// Its space was reserved (with [`FileBackendOptions::preallocate`]): not done again when
    /// it is reopened after its handle was evicted.
    reserved: AtomicBool,
    /// The file system refused `O_DIRECT` for this file: its writes go through the page cache.
    no_direct: AtomicBool,
}

/// An open handle in the cache.
#[derive(Debug)]
struct Cached {
    file: Arc<File>,
    writable: bool,
    /// A second handle opened with `O_DIRECT`, for [`FileBackendOptions::direct_writes`].
    direct: Option<Arc<File>>,
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
///
/// # Path safety
/// Every path stays inside the download directory ([`safe_join`]), and nothing inside it is
/// followed if it is a symbolic link: before a file is opened, each directory from the
/// download directory down and the file itself are checked with `symlink_metadata`, and the
/// file is opened with `O_NOFOLLOW`, so a link planted there (to `~/.bashrc`, or a directory
/// link to `/etc`) gives [`StoreError::SymlinkInPath`] instead of a write outside. (The
/// download directory itself may be a link: it is the caller's choice.) Directories are
/// created one at a time, never through a link. Only a process that can write into the
/// download directory and swaps a checked directory for a link between the check and the
/// open could still redirect a file; the standard library offers no `openat` to close that.
///
/// Names the file system cannot take are refused up front with
/// [`StoreError::InvalidFileName`], naming the file and why ([`invalid_names`] lists them
/// all at once).
///
/// [`invalid_names`]: FileBackend::invalid_names
#[derive(Debug)]
pub struct FileBackend {
    base: PathBuf,
    files: Vec<DiskFile>,
    opts: FileBackendOptions,
    cache: Mutex<HandleCache>,
    /// Bytes written with `O_DIRECT` so far.
    direct_written: AtomicU64,
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
                    relative: f.path.clone(),
                    length: f.length,
                    opening: Mutex::new(()),
                    reserved: AtomicBool::new(false),
                    no_direct: AtomicBool::new(O_DIRECT == 0),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(FileBackend {
            base: download_dir.to_path_buf(),
            files,
            opts,
            cache: Mutex::new(HandleCache::default()),
            direct_written: AtomicU64::new(0),
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

    /// How many bytes went to disk with `O_DIRECT` so far (see
    /// [`direct_writes`](FileBackendOptions::direct_writes)): 0 when it is off, or where the
    /// file system refuses it.
    pub fn direct_written(&self) -> u64 {
        self.direct_written.load(Ordering::Relaxed)
    }

    /// Closes every cached handle (handles in use close when their I/O ends).
    pub fn close_all(&self) {
        self.lock().open.clear();
    }

    /// A [`StoreError::InvalidFileName`] for every file whose name the file system cannot take
    /// (or, with [`portable`](FileBackendOptions::portable), Windows), in layout order. Those
    /// files fail every write; a caller can list them before the download starts, or skip
    /// them. Empty when every name is fine.
    pub fn invalid_names(&self) -> Vec<StoreError> {
        self.files
            .iter()
            .filter_map(|df| self.check_name(df).err())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, HandleCache> {
        // The cache is a plain map; a panic elsewhere cannot leave it inconsistent.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn disk_file(&self, file: usize) -> Result<&DiskFile, StoreError> {
        self.files.get(file).ok_or(StoreError::NoSuchFile { file })
    }

    /// [`StoreError::InvalidFileName`] if the file system cannot take `df`'s name.
    fn check_name(&self, df: &DiskFile) -> Result<(), StoreError> {
        let Some(path) = df.path.as_deref() else {
            return Ok(());
        };
        let base_len = self.base.as_os_str().len();
        match name_problem(&df.relative, base_len, self.opts.portable) {
            None => Ok(()),
            Some(reason) => Err(StoreError::InvalidFileName {
                path: path.to_path_buf(),
                reason,
            }),
        }
    }

    /// A handle from the cache: any for reading, a writable one for writing.
    fn cached(&self, file: usize, write: bool) -> Option<Arc<File>> {
        let mut cache = self.lock();
        cache.clock = cache.clock.wrapping_add(1);
        let now = cache.clock;
        let c = cache.open.get_mut(&file)?;
        if c.writable || !write {
            c.last_used = now;
            return Some(Arc::clone(&c.file));
        }
        None
    }

    /// A handle on `file` (which must not be padding), from the cache or newly opened. For
    /// reading, `None` if the file does not exist; for writing, the file is created.
    fn handle(&self, file: usize, write: bool) -> Result<Option<Arc<File>>, StoreError> {
        if let Some(h) = self.cached(file, write) {
            return Ok(Some(h));
        }
        let df = self.disk_file(file)?;
        let Some(path) = df.path.as_deref() else {
            return Err(StoreError::NoSuchFile { file });
        };
        // One thread at a time opens a given file; the others then find its handle cached.
        let _opening = df.opening.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = self.cached(file, write) {
            return Ok(Some(h));
        }
        let opened = if write {
            let f = self.open_for_write(df, path)?;
            if self.opts.preallocate && !df.reserved.load(Ordering::Acquire) {
                reserve(&f, df.length).map_err(|e| io_error(path, e))?;
                df.reserved.store(true, Ordering::Release);
            }
            f
        } else {
            match self.open_for_read(df, path)? {
                Some(f) => f,
                None => return Ok(None),
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
                direct: None,
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

    /// The `O_DIRECT` handle on `file`, opened on first use, beside `buffered` (the cached
    /// writable handle, which created the file). `None` if the file system refuses it, from
    /// then on.
    fn direct_handle(
        &self,
        file: usize,
        df: &DiskFile,
        path: &Path,
        buffered: &File,
    ) -> Option<Arc<File>> {
        let cached = || {
            self.lock()
                .open
                .get(&file)
                .and_then(|c| c.direct.as_ref().map(Arc::clone))
        };
        if df.no_direct.load(Ordering::Relaxed) {
            return None;
        }
        if let Some(h) = cached() {
            return Some(h);
        }
        let _opening = df.opening.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = cached() {
            return Some(h);
        }
        let opened = OpenOptions::new()
            .write(true)
            .custom_flags(O_NOFOLLOW | O_DIRECT)
            .open(path);
        // It must be the very file the buffered handle has open (nothing swapped in between).
        let same = |f: &File| match (f.metadata(), buffered.metadata()) {
            (Ok(a), Ok(b)) => a.is_file() && a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        match opened {
            Ok(f) if same(&f) => {
                let f = Arc::new(f);
                if let Some(c) = self.lock().open.get_mut(&file) {
                    c.direct = Some(Arc::clone(&f));
                }
                Some(f)
            }
            _ => {
                df.no_direct.store(true, Ordering::Relaxed);
                None
            }
        }
    }

    /// Writes `data` at `offset` through `file`'s `O_DIRECT` handle if the options, the offset
    /// and the length allow; returns the bytes it leaves to ordinary writes (all of `data`
    /// if none went direct, else the last partial block).
    fn try_direct<'a>(
        &self,
        file: usize,
        df: &DiskFile,
        path: &Path,
        buffered: &File,
        offset: u64,
        data: &'a [u8],
    ) -> Result<&'a [u8], StoreError> {
        if !self.opts.direct_writes || offset % DIRECT_ALIGN as u64 != 0 || data.len() < DIRECT_MIN
        {
            return Ok(data);
        }
        let Some(direct) = self.direct_handle(file, df, path, buffered) else {
            return Ok(data);
        };
        let (body, tail) = data.split_at(data.len() / DIRECT_ALIGN * DIRECT_ALIGN);
        match write_direct(&direct, body, offset) {
            Ok(()) => {
                self.direct_written
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
                Ok(tail)
            }
            // The file system or device wants another alignment: ordinary writes from now on
            // (what the direct writes did write is simply written again).
            Err(e) if e.raw_os_error() == Some(EINVAL) => {
                df.no_direct.store(true, Ordering::Relaxed);
                if let Some(c) = self.lock().open.get_mut(&file) {
                    c.direct = None;
                }
                Ok(data)
            }
            Err(e) => Err(io_error(path, e)),
        }
    }

    /// Checks the directories between the download directory and `path`, from the top down:
    /// none may be a symbolic link. With `create`, missing ones are created (the download
    /// directory itself with all its parents); without, `Ok(false)` if one is missing.
    fn check_dirs(&self, path: &Path, create: bool) -> Result<bool, StoreError> {
        if create {
            fs::create_dir_all(&self.base).map_err(|e| open_error(&self.base, e))?;
        }
        // `path` is `base` joined with plain components (see `safe_join`).
        let rel = path.strip_prefix(&self.base).unwrap_or(path);
        let mut dir = self.base.clone();
        let mut parts = rel.components().peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                break; // the file itself
            }
            if !matches!(part, Component::Normal(_)) {
                return Err(io_error(
                    path,
                    io::Error::other("unexpected path component"),
                ));
            }
            dir.push(part);
            // Twice at most: a directory another thread created between our look and our
            // `create_dir` is looked at again.
            let mut tries = 0;
            loop {
                tries += 1;
                match fs::symlink_metadata(&dir) {
                    Ok(m) if m.file_type().is_symlink() => {
                        return Err(StoreError::SymlinkInPath {
                            path: path.to_path_buf(),
                            link: dir,
                        })
                    }
                    Ok(m) if m.is_dir() => break,
                    Ok(_) => {
                        return Err(io_error(&dir, io::ErrorKind::NotADirectory.into()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        if !create {
                            return Ok(false);
                        }
                        match fs::create_dir(&dir) {
                            Ok(()) => break,
                            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 2 => {}
                            Err(e) => return Err(open_error(&dir, e)),
                        }
                    }
                    Err(e) => return Err(open_error(&dir, e)),
                }
            }
        }
        Ok(true)
    }

    /// Opens `path` for reading; `None` if it (or a directory on the way) does not exist.
    fn open_for_read(&self, df: &DiskFile, path: &Path) -> Result<Option<File>, StoreError> {
        if self.check_name(df).is_err() {
            // The file system cannot hold the file, or we refuse to create it: it is not there.
            return Ok(None);
        }
        if !self.check_dirs(path, false)? || !check_not_special(path)? {
            return Ok(None);
        }
        match OpenOptions::new()
            .read(true)
            .custom_flags(O_NOFOLLOW)
            .open(path)
        {
            Ok(f) => check_opened(f, path).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(refused(path, e)),
        }
    }

    /// Opens `path` for reading and writing, creating it and its directories if needed. A file
    /// this call creates gets its full length, sparse.
    fn open_for_write(&self, df: &DiskFile, path: &Path) -> Result<File, StoreError> {
        self.check_name(df)?;
        self.check_dirs(path, true)?;
        check_not_special(path)?;
        let rw = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(O_NOFOLLOW)
                .open(path)
        };
        match rw() {
            Ok(f) => return check_opened(f, path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(refused(path, e)),
        }
        // `create_new` (O_EXCL) never follows a link, not even a dangling one; and of two
        // backends creating the file at once, only one sizes it.
        let f = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(O_NOFOLLOW)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return match rw() {
                    Ok(f) => check_opened(f, path),
                    Err(e) => Err(refused(path, e)),
                }
            }
            Err(e) => return Err(refused(path, e)),
        };
        f.set_len(df.length).map_err(|e| io_error(path, e))?;
        Ok(f)
    }
}

/// Looks at what is at `path` before it is opened: `Ok(false)` if nothing, `Ok(true)` for a
/// regular file, [`StoreError::SymlinkInPath`] for a link, an error for anything else (a FIFO
/// someone put there would block the open until it had a writer).
fn check_not_special(path: &Path) -> Result<bool, StoreError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(StoreError::SymlinkInPath {
            path: path.to_path_buf(),
            link: path.to_path_buf(),
        }),
        Ok(m) if m.is_file() => Ok(true),
        Ok(_) => Err(io_error(path, io::Error::other("not a regular file"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(open_error(path, e)),
    }
}

/// Checks that what was opened at `path` is a regular file (not a directory, a FIFO or a
/// device someone put there).
fn check_opened(f: File, path: &Path) -> Result<File, StoreError> {
    match f.metadata() {
        Ok(m) if m.is_file() => Ok(f),
        Ok(_) => Err(io_error(path, io::Error::other("not a regular file"))),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Maps an error from opening `path`: [`StoreError::SymlinkInPath`] if `path` is a link that
/// `O_NOFOLLOW` refused (`ELOOP` on Linux, other codes elsewhere, so the link is looked at
/// rather than the code).
fn refused(path: &Path, e: io::Error) -> StoreError {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => StoreError::SymlinkInPath {
            path: path.to_path_buf(),
            link: path.to_path_buf(),
        },
        _ => open_error(path, e),
    }
}

/// Reserves the disk space of the first `length` bytes of `f` without changing what they
/// read as: every block that reads as zeros (a hole, or past the end) is written with zeros.
/// This is what the C library's `posix_fallocate` falls back to where the file system has no
/// `fallocate`. Skipped if the file already has as many blocks allocated as its length needs.
fn reserve(f: &File, length: u64) -> io::Result<()> {
    const CHUNK: usize = 1 << 20;
    let meta = f.metadata()?;
    // The allocation unit: the file system's block size, within reason.
    let block = usize::try_from(meta.blksize())
        .unwrap_or(4096)
        .clamp(512, CHUNK);
    let block64 = block as u64;
    let needed = length.div_ceil(block64).saturating_mul(block64);
    if meta.blocks().saturating_mul(512) >= needed {
        return Ok(());
    }
    let zeros = vec![0u8; CHUNK];
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0u64;
    while at < length {
        let n = usize::try_from((length - at).min(CHUNK as u64)).unwrap_or(CHUNK);
        let chunk = buf.get_mut(..n).unwrap_or_default();
        let got = read_up_to(f, chunk, at)?;
        // What was not read lies past the end of the file: zeros to be written.
        chunk.get_mut(got..).unwrap_or_default().fill(0);
        // Write each run of all-zero blocks as one write.
        let mut run: Option<usize> = None;
        let mut i = 0usize;
        while i < n {
            let end = i.saturating_add(block).min(n);
            if chunk
                .get(i..end)
                .unwrap_or_default()
                .iter()
                .all(|&b| b == 0)
            {
                run.get_or_insert(i);
            } else if let Some(s) = run.take() {
                f.write_all_at(zeros.get(..i - s).unwrap_or_default(), at + s as u64)?;
            }
            i = end;
        }
        if let Some(s) = run {
            f.write_all_at(zeros.get(..n - s).unwrap_or_default(), at + s as u64)?;
        }
        at += n as u64;
    }
    Ok(())
}

/// The alignment `O_DIRECT` gets from us, of file offsets, lengths and memory: a page, which
/// covers the logical block size of nearly every device.
const DIRECT_ALIGN: usize = 4096;
/// Writes shorter than this are not worth a direct write.
const DIRECT_MIN: usize = 64 * 1024;
/// How much is staged through the aligned buffer at a time.
const DIRECT_STAGE: usize = 1 << 20;
/// `EINVAL`, the same on every Linux architecture.
const EINVAL: i32 = 22;

/// `O_DIRECT` for `OpenOptionsExt::custom_flags` where its value is known here (Linux, whose
/// value differs between architectures); `0` elsewhere, which turns direct writes off.
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    any(
        target_arch = "x86",
        target_arch = "x86_64",
        target_arch = "riscv64",
        target_arch = "loongarch64",
        target_arch = "s390x"
    )
))]
const O_DIRECT: i32 = 0x4000;
/// See the other definitions.
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    any(target_arch = "arm", target_arch = "aarch64")
))]
const O_DIRECT: i32 = 0x10000;
/// See the other definitions.
#[cfg(not(all(
    any(target_os = "linux", target_os = "android"),
    any(
        target_arch = "x86",
        target_arch = "x86_64",
        target_arch = "riscv64",
        target_arch = "loongarch64",
        target_arch = "s390x",
        target_arch = "arm",
        target_arch = "aarch64"
    )
)))]
const O_DIRECT: i32 = 0;

thread_local! {
    /// Each thread's staging buffer for direct writes (allocated on its first one).
    static STAGE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Writes `body` (whole aligned blocks) at the aligned `offset` through an `O_DIRECT` handle:
/// straight from `body` if it sits at an aligned address, else staged through an aligned
/// buffer a megabyte at a time.
fn write_direct(f: &File, body: &[u8], offset: u64) -> io::Result<()> {
    if body.as_ptr().align_offset(DIRECT_ALIGN) == 0 {
        return f.write_all_at(body, offset);
    }
    STAGE.with(|stage| {
        let mut stage = stage.borrow_mut();
        if stage.len() < DIRECT_STAGE + DIRECT_ALIGN {
            stage.resize(DIRECT_STAGE + DIRECT_ALIGN, 0);
        }
        let skew = stage.as_ptr().align_offset(DIRECT_ALIGN);
        let aligned = stage
            .get_mut(skew..skew + DIRECT_STAGE)
            .ok_or_else(|| io::Error::other("staging buffer"))?;
        let mut at = offset;
        for chunk in body.chunks(DIRECT_STAGE) {
            let buf = aligned
                .get_mut(..chunk.len())
                .ok_or_else(|| io::Error::other("staging buffer"))?;
            buf.copy_from_slice(chunk);
            f.write_all_at(buf, at)?;
            at += chunk.len() as u64;
        }
        Ok(())
    })
}

/// Reads into `buf` from `offset` until it is full or the file ends; returns the bytes read.
fn read_up_to(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0usize;
    while let Some(rest) = buf.get_mut(got..).filter(|r| !r.is_empty()) {
        match f.read_at(rest, offset + got as u64) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
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
        let rest = self.try_direct(file, df, path, &handle, offset, data)?;
        let at = offset + (data.len() - rest.len()) as u64;
        if rest.is_empty() {
            return Ok(());
        }
        handle.write_all_at(rest, at).map_err(|e| io_error(path, e))
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
        if self.check_name(df).is_err() || !self.check_dirs(path, false)? {
            return Ok(None);
        }
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(path, e)),
        };
        if meta.file_type().is_symlink() {
            return Err(StoreError::SymlinkInPath {
                path: path.to_path_buf(),
                link: path.to_path_buf(),
            });
        }
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
