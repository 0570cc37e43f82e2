//! A backend that keeps the files in memory, for tests and examples.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::backend::{check_padding_write, check_range, Backend, FileState};
use crate::error::StoreError;
use crate::layout::Layout;

/// One file held in memory.
#[derive(Debug)]
struct MemFile {
    length: u64,
    padding: bool,
    state: Mutex<MemState>,
}

#[derive(Debug, Default)]
struct MemState {
    /// `None` until the file is first written (or sized).
    bytes: Option<Vec<u8>>,
    /// Grows with each change; reported as the modification time.
    generation: i128,
}

/// Files in memory, with the same rules as [`FileBackend`](crate::FileBackend): a file comes
/// into being, zero-filled to its full length, on its first write; padding is virtual.
#[derive(Debug)]
pub struct MemoryBackend {
    files: Vec<MemFile>,
}

impl MemoryBackend {
    /// An empty store for the files of `layout`: nothing exists yet.
    pub fn new(layout: &Layout) -> Self {
        MemoryBackend {
            files: layout
                .files()
                .iter()
                .map(|f| MemFile {
                    length: f.length,
                    padding: f.padding,
                    state: Mutex::new(MemState::default()),
                })
                .collect(),
        }
    }

    fn file(&self, file: usize) -> Result<&MemFile, StoreError> {
        self.files.get(file).ok_or(StoreError::NoSuchFile { file })
    }

    /// A copy of the bytes of `file`, or `None` if it does not exist (or is padding, which is
    /// never stored).
    pub fn file_bytes(&self, file: usize) -> Option<Vec<u8>> {
        let f = self.files.get(file)?;
        lock(&f.state).bytes.clone()
    }

    /// Deletes `file`, as if it were removed from disk. Returns whether it existed.
    pub fn remove_file(&self, file: usize) -> bool {
        self.files
            .get(file)
            .is_some_and(|f| lock(&f.state).bytes.take().is_some())
    }
}

/// Locks a file's state. A panic while it was held cannot leave it half-changed (every change
/// is one call on a `Vec`), so a poisoned lock is taken over.
fn lock(m: &Mutex<MemState>) -> MutexGuard<'_, MemState> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A zero-filled buffer of `len` bytes, or `TooLarge` if it cannot be allocated.
fn zeros(len: u64) -> Result<Vec<u8>, StoreError> {
    let n = usize::try_from(len).map_err(|_| StoreError::too_large("file", len))?;
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| StoreError::too_large("file", len))?;
    v.resize(n, 0);
    Ok(v)
}

impl Backend for MemoryBackend {
    fn read_at(&self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        let f = self.file(file)?;
        check_range(file, offset, buf.len(), f.length)?;
        if f.padding {
            buf.fill(0);
            return Ok(());
        }
        let missing = StoreError::Missing {
            file,
            offset,
            len: u64::try_from(buf.len()).unwrap_or(u64::MAX),
        };
        let state = lock(&f.state);
        let Some(bytes) = state.bytes.as_ref() else {
            return Err(missing);
        };
        let start = usize::try_from(offset).map_err(|_| StoreError::too_large("offset", offset))?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| bytes.get(start..end))
            .ok_or(missing)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_at(&self, file: usize, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        let f = self.file(file)?;
        check_range(file, offset, data.len(), f.length)?;
        if f.padding {
            return check_padding_write(file, data);
        }
        let mut state = lock(&f.state);
        let bytes = match &mut state.bytes {
            Some(b) => b,
            slot @ None => slot.insert(zeros(f.length)?),
        };
        let start = usize::try_from(offset).map_err(|_| StoreError::too_large("offset", offset))?;
        let end = start
            .checked_add(data.len())
            .ok_or(StoreError::too_large("offset", offset))?;
        if bytes.len() < end {
            // A file shortened by `set_len` grows again, as on disk.
            bytes.resize(end, 0);
        }
        if let Some(dst) = bytes.get_mut(start..end) {
            dst.copy_from_slice(data);
        }
        state.generation = state.generation.saturating_add(1);
        Ok(())
    }

    fn sync(&self, file: usize) -> Result<(), StoreError> {
        self.file(file).map(|_| ())
    }

    fn file_state(&self, file: usize) -> Result<Option<FileState>, StoreError> {
        let f = self.file(file)?;
        if f.padding {
            return Ok(Some(FileState {
                len: f.length,
                mtime_ns: None,
            }));
        }
        let state = lock(&f.state);
        Ok(state.bytes.as_ref().map(|b| FileState {
            len: u64::try_from(b.len()).unwrap_or(u64::MAX),
            mtime_ns: Some(state.generation),
        }))
    }

    fn set_len(&self, file: usize, len: u64) -> Result<(), StoreError> {
        let f = self.file(file)?;
        if len > f.length {
            return Err(StoreError::FileRange {
                file,
                offset: 0,
                len,
                file_len: f.length,
            });
        }
        if f.padding {
            return Ok(());
        }
        let n = usize::try_from(len).map_err(|_| StoreError::too_large("file", len))?;
        let mut state = lock(&f.state);
        let bytes = state.bytes.get_or_insert_with(Vec::new);
        if n > bytes.len() {
            bytes
                .try_reserve_exact(n - bytes.len())
                .map_err(|_| StoreError::too_large("file", len))?;
        }
        bytes.resize(n, 0);
        state.generation = state.generation.saturating_add(1);
        Ok(())
    }
}
