//! The storage interface: positioned reads and writes on the files of a [`Layout`].
//!
//! [`Layout`]: crate::Layout

use crate::error::StoreError;

/// What a backend knows of a file on its medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileState {
    /// Its current length in bytes.
    pub len: u64,
    /// Its modification time in nanoseconds since the Unix epoch, if the backend has one (the
    /// [`MemoryBackend`](crate::MemoryBackend) gives a counter that grows with each change).
    pub mtime_ns: Option<i128>,
}

/// Storage for the files of a torrent, addressed by their index in
/// [`Layout::files`](crate::Layout::files) and a byte offset within the file.
///
/// Implementations are shared between threads: every method takes `&self`, and I/O on different
/// files (or different ranges of one file) may run at once.
///
/// Common rules:
/// - A range past the file's length in the torrent is [`StoreError::FileRange`]; an unknown
///   index is [`StoreError::NoSuchFile`].
/// - Padding files are virtual: reads give zeros, writes of zeros succeed and touch nothing,
///   writes of anything else are [`StoreError::PaddingNotZero`].
/// - Reading data that is not there (the file is absent, or shorter on disk than the range) is
///   [`StoreError::Missing`], never zeros made up by the backend. Ranges never written within a
///   file that exists read as whatever the medium holds (zeros for a sparse file).
/// - Writing creates the file (and its directories) on first use.
pub trait Backend: Send + Sync {
    /// Fills `buf` with the bytes of `file` at `offset`.
    ///
    /// # Errors
    /// [`StoreError::Missing`] if the bytes are not there, [`StoreError::Io`] on an I/O error,
    /// and the range errors above.
    fn read_at(&self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), StoreError>;

    /// Writes `data` to `file` at `offset`, creating the file if needed.
    ///
    /// # Errors
    /// [`StoreError::Io`] (or [`StoreError::InvalidFileName`] when creating the file), and the
    /// range and padding errors above.
    fn write_at(&self, file: usize, offset: u64, data: &[u8]) -> Result<(), StoreError>;

    /// Writes the buffers one after another, starting at `offset`. The default calls
    /// [`write_at`](Self::write_at) for each.
    ///
    /// # Errors
    /// As [`write_at`](Self::write_at); the buffers before the failing one are written.
    fn write_vectored_at(
        &self,
        file: usize,
        offset: u64,
        bufs: &[&[u8]],
    ) -> Result<(), StoreError> {
        let mut at = offset;
        for buf in bufs {
            self.write_at(file, at, buf)?;
            let len =
                u64::try_from(buf.len()).map_err(|_| StoreError::too_large("buffer", buf.len()))?;
            at = at
                .checked_add(len)
                .ok_or(StoreError::too_large("file offset", u64::MAX))?;
        }
        Ok(())
    }

    /// Flushes what was written to `file` to stable storage. A file that does not exist is
    /// nothing to flush.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    fn sync(&self, file: usize) -> Result<(), StoreError>;

    /// The file's length and modification time, or `None` if it does not exist. Padding files
    /// always exist with their full length and no time.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the file cannot be inspected, [`StoreError::NoSuchFile`].
    fn file_state(&self, file: usize) -> Result<Option<FileState>, StoreError>;

    /// Sets the length of `file` (no more than its length in the torrent), creating it if
    /// needed; on padding files it does nothing.
    ///
    /// # Errors
    /// [`StoreError::Io`], [`StoreError::InvalidFileName`], the range errors above.
    fn set_len(&self, file: usize, len: u64) -> Result<(), StoreError>;
}

/// Checks that `len` bytes at `offset` lie within a file of `file_len` bytes.
pub(crate) fn check_range(
    file: usize,
    offset: u64,
    len: usize,
    file_len: u64,
) -> Result<(), StoreError> {
    let len64 = u64::try_from(len).unwrap_or(u64::MAX);
    match offset.checked_add(len64) {
        Some(end) if end <= file_len => Ok(()),
        _ => Err(StoreError::FileRange {
            file,
            offset,
            len: len64,
            file_len,
        }),
    }
}

/// Checks a write to padding file `file`: only zeros may go there.
pub(crate) fn check_padding_write(file: usize, data: &[u8]) -> Result<(), StoreError> {
    if data.iter().all(|&b| b == 0) {
        Ok(())
    } else {
        Err(StoreError::PaddingNotZero { file })
    }
}
