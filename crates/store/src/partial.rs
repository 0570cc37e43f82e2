//! Partial downloads: a [`Backend`] wrapper that keeps the bytes of skipped files in a
//! [`PartFile`] instead of the user's files.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::backend::{check_range, Backend, FileState};
use crate::error::StoreError;
use crate::layout::Layout;
use crate::part_file::PartFile;
use crate::priority::Priorities;

#[derive(Debug)]
struct Routing {
    priorities: Priorities,
    /// Per file: its bytes live in the part file.
    to_part: Vec<bool>,
}

/// Wraps a backend so that skipped files are never written to it.
///
/// A file is *parked* when its priority is [`FilePriority::Skip`](crate::FilePriority::Skip) and the inner backend did
/// not already have it when it was skipped (data already in a user's file stays there). Reads
/// and writes of a parked file go to the [`PartFile`], piece by piece (a read of bytes the part
/// file lacks is [`StoreError::Missing`]); [`Backend::file_state`] says a parked file does not
/// exist. Everything else goes to the inner backend. When a parked file is wanted again,
/// [`set_priorities`](Self::set_priorities) moves its bytes into the real file.
///
/// The routing table sits behind a mutex that is never held during I/O.
#[derive(Debug)]
pub struct PartialBackend<B> {
    inner: B,
    layout: Layout,
    part: PartFile,
    routing: Mutex<Routing>,
    /// Orders calls of `set_priorities`.
    changing: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are replaced whole; a panic elsewhere cannot leave them half-done.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<B: Backend> PartialBackend<B> {
    /// Wraps `inner` for the files of `layout`, parking the skipped files of `priorities` that
    /// `inner` does not have. `part` should have been opened for the same torrent and, if it
    /// holds data, under the same priorities.
    ///
    /// # Errors
    /// [`StoreError::BufferSize`] if `priorities` is not for a layout with as many files;
    /// errors of [`Backend::file_state`].
    pub fn new(
        inner: B,
        layout: &Layout,
        part: PartFile,
        priorities: Priorities,
    ) -> Result<PartialBackend<B>, StoreError> {
        let n = layout.files().len();
        if priorities.len() != n {
            return Err(StoreError::BufferSize {
                expected: u64::try_from(n).unwrap_or(u64::MAX),
                got: u64::try_from(priorities.len()).unwrap_or(u64::MAX),
            });
        }
        let mut to_part = Vec::with_capacity(n);
        for file in 0..n {
            to_part.push(priorities.is_skipped(file) && inner.file_state(file)?.is_none());
        }
        Ok(PartialBackend {
            inner,
            layout: layout.clone(),
            part,
            routing: Mutex::new(Routing {
                priorities,
                to_part,
            }),
            changing: Mutex::new(()),
        })
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The part file.
    pub fn part_file(&self) -> &PartFile {
        &self.part
    }

    /// The priorities in force.
    pub fn priorities(&self) -> Priorities {
        lock(&self.routing).priorities.clone()
    }

    /// True if the bytes of `file` go to the part file.
    pub fn is_parked(&self, file: usize) -> bool {
        lock(&self.routing)
            .to_part
            .get(file)
            .copied()
            .unwrap_or(false)
    }

    /// Takes new priorities. Each parked file that is no longer skipped has the bytes the part
    /// file holds for it copied into the real file, which is then synced; then every slot
    /// whose piece touches no parked file is dropped. A newly skipped file is parked only if
    /// the inner backend does not have it. Writes to a file racing with its unskipping may be
    /// lost; the piece then fails its hash check and is fetched again.
    ///
    /// # Errors
    /// [`StoreError::BufferSize`] for priorities of another layout; I/O errors, after which
    /// the priorities are unchanged and the part file still holds every byte it held.
    pub fn set_priorities(&self, priorities: Priorities) -> Result<(), StoreError> {
        let _one_at_a_time = lock(&self.changing);
        let n = self.layout.files().len();
        if priorities.len() != n {
            return Err(StoreError::BufferSize {
                expected: u64::try_from(n).unwrap_or(u64::MAX),
                got: u64::try_from(priorities.len()).unwrap_or(u64::MAX),
            });
        }
        let old = lock(&self.routing).to_part.clone();
        let mut new = Vec::with_capacity(n);
        for (file, &was) in old.iter().enumerate() {
            let skip = priorities.is_skipped(file);
            new.push(skip && (was || self.inner.file_state(file)?.is_none()));
        }
        for (file, (&was, &now)) in old.iter().zip(&new).enumerate() {
            if was && !now {
                self.unpark(file)?;
            }
        }
        {
            let mut r = lock(&self.routing);
            r.to_part.clone_from(&new);
            r.priorities = priorities;
        }
        let parked = |f: usize| new.get(f).copied().unwrap_or(false);
        let stale: Vec<u32> = self
            .part
            .pieces()
            .into_iter()
            .filter(|&p| !self.layout.piece_files(p).any(parked))
            .collect();
        self.part.remove(&stale)
    }

    /// Copies the part file's bytes of `file` into the inner backend and syncs it.
    fn unpark(&self, file: usize) -> Result<(), StoreError> {
        let Some(f) = self.layout.files().get(file) else {
            return Err(StoreError::NoSuchFile { file });
        };
        let pl = self.layout.piece_length();
        let mut wrote = false;
        for piece in self.layout.file_pieces(file) {
            if !self.part.contains(piece) {
                continue;
            }
            let piece_start = u64::from(piece).saturating_mul(pl);
            let start = piece_start.max(f.offset);
            let end = piece_start.saturating_add(pl).min(f.end());
            let Some(len) = end.checked_sub(start).filter(|&l| l > 0) else {
                continue;
            };
            let n = usize::try_from(len).map_err(|_| StoreError::too_large("piece", len))?;
            let mut buf = vec![0u8; n];
            if self
                .part
                .read(piece, start.saturating_sub(piece_start), &mut buf)?
            {
                self.inner
                    .write_at(file, start.saturating_sub(f.offset), &buf)?;
                wrote = true;
            }
        }
        if wrote {
            self.inner.sync(file)?;
        }
        Ok(())
    }

    /// Calls `op(piece, begin in piece, start in the range, length)` for each piece-sized run
    /// of `len` bytes at `offset` in `file`.
    fn for_each_piece_run(
        &self,
        file: usize,
        offset: u64,
        len: usize,
        mut op: impl FnMut(u32, u64, usize, usize) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let f = self
            .layout
            .files()
            .get(file)
            .ok_or(StoreError::NoSuchFile { file })?;
        let pl = self.layout.piece_length();
        let mut done = 0usize;
        while done < len {
            let at = u64::try_from(done)
                .ok()
                .and_then(|d| offset.checked_add(d))
                .and_then(|o| o.checked_add(f.offset))
                .ok_or(StoreError::too_large("file offset", u64::MAX))?;
            let piece = u32::try_from(at / pl).map_err(|_| StoreError::too_large("piece", at))?;
            let begin = at % pl;
            let room = usize::try_from(pl.saturating_sub(begin)).unwrap_or(usize::MAX);
            let n = room.min(len.saturating_sub(done)).max(1);
            op(piece, begin, done, n)?;
            done = done.saturating_add(n);
        }
        Ok(())
    }

    fn file_len(&self, file: usize) -> Result<u64, StoreError> {
        self.layout
            .files()
            .get(file)
            .map(|f| f.length)
            .ok_or(StoreError::NoSuchFile { file })
    }
}

impl<B: Backend> Backend for PartialBackend<B> {
    fn read_at(&self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        if !self.is_parked(file) {
            return self.inner.read_at(file, offset, buf);
        }
        check_range(file, offset, buf.len(), self.file_len(file)?)?;
        let missing = StoreError::Missing {
            file,
            offset,
            len: u64::try_from(buf.len()).unwrap_or(u64::MAX),
        };
        let mut all_there = true;
        self.for_each_piece_run(file, offset, buf.len(), |piece, begin, at, n| {
            let part = buf
                .get_mut(at..at.saturating_add(n))
                .ok_or(StoreError::too_large("buffer", at))?;
            all_there &= self.part.read(piece, begin, part)?;
            Ok(())
        })?;
        if all_there {
            Ok(())
        } else {
            Err(missing)
        }
    }

    fn write_at(&self, file: usize, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        if !self.is_parked(file) {
            return self.inner.write_at(file, offset, data);
        }
        check_range(file, offset, data.len(), self.file_len(file)?)?;
        self.for_each_piece_run(file, offset, data.len(), |piece, begin, at, n| {
            let part = data
                .get(at..at.saturating_add(n))
                .ok_or(StoreError::too_large("buffer", at))?;
            self.part.write(piece, begin, part)
        })
    }

    fn sync(&self, file: usize) -> Result<(), StoreError> {
        if self.is_parked(file) {
            self.part.sync()
        } else {
            self.inner.sync(file)
        }
    }

    fn file_state(&self, file: usize) -> Result<Option<FileState>, StoreError> {
        if self.is_parked(file) {
            Ok(None)
        } else {
            self.inner.file_state(file)
        }
    }

    fn set_len(&self, file: usize, len: u64) -> Result<(), StoreError> {
        if !self.is_parked(file) {
            return self.inner.set_len(file, len);
        }
        let file_len = self.file_len(file)?;
        if len > file_len {
            return Err(StoreError::FileRange {
                file,
                offset: 0,
                len,
                file_len,
            });
        }
        Ok(())
    }
}
