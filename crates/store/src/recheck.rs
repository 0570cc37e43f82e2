//! Parallel recheck: read every piece once and verify it, on all cores.
//!
//! One thread per core, each reading and hashing (with a page cache that holds the data, both
//! are CPU work, so more threads than cores would only take turns). Threads take runs of
//! consecutive pieces from a shared counter, so a slow disk region does not leave the others
//! idle; the runs shrink towards the end so that the threads finish together. Each thread
//! reads its run in chunks of [`READ_CHUNK`] bytes into one buffer it reuses (allocated and
//! zeroed once): several small pieces in one read (one system call per file rather than per
//! piece), a large piece in several reads hashed as they come, so that the bytes are hashed
//! while they are still in the core's cache and no buffer is ever the size of a huge piece.
//!
//! # Calling the store from an async runtime
//!
//! Everything in this crate blocks: [`recheck`] (and [`read_block`], `write_block`,
//! [`Verifier::verify_piece`], `Backend::sync`) does file I/O and hashing on the calling thread
//! and, for [`recheck`], on threads of its own that it joins before returning. A driver built
//! on an async runtime must never call it from an async task on a worker thread, where it
//! would stall every other task scheduled there for as long as the disk or the hash takes.
//! Instead:
//! - run it on a thread pool kept for blocking work, such as `tokio::task::spawn_blocking`
//!   (or a dedicated `std::thread` / rayon pool), and await the result;
//! - keep the `Metainfo`, `Layout` and backend in an `Arc` so the blocking closure owns them;
//! - for a long [`recheck`], report progress through [`RecheckOptions::progress`] over a
//!   channel rather than by touching async state from the callback;
//! - limit how many blocking store calls run at once (a semaphore), since `recheck` already
//!   uses every core by itself.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;

use tessera_metainfo::Metainfo;

use crate::backend::Backend;
use crate::bitfield::Bitfield;
use crate::error::StoreError;
use crate::layout::Layout;
use crate::store::read_block;
use crate::verify::{PieceStream, PieceVerdict, Verifier};

/// Bytes read at once: large enough that the cost of a read call is small next to copying
/// the bytes, small enough that the buffer stays in a core's L2 cache until it is hashed.
pub(crate) const READ_CHUNK: u64 = 256 * 1024;

/// Settings of a [`recheck`].
#[derive(Clone, Copy, Default)]
pub struct RecheckOptions<'a> {
    /// Worker threads; `None` uses every core the system reports.
    pub threads: Option<NonZeroUsize>,
    /// Called from the worker threads after each piece with (pieces done, total pieces).
    /// Calls may come from several threads at once; exactly one of them has done == total.
    pub progress: Option<&'a (dyn Fn(u32, u32) + Sync)>,
}

impl std::fmt::Debug for RecheckOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecheckOptions")
            .field("threads", &self.threads)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// What a [`recheck`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecheckReport {
    /// Pieces whose data matches the torrent's hashes.
    pub verified: Bitfield,
    /// Pieces whose data is all on disk but does not match (or cannot be checked), in
    /// increasing order, with the reason.
    pub failed: Vec<(u32, PieceVerdict)>,
    /// Pieces some of whose bytes are not on disk (a file absent or too short), in increasing
    /// order.
    pub missing: Vec<u32>,
}

/// Most pieces a thread takes at once.
const MAX_RUN: u32 = 64;

/// Takes the next run of pieces from the shared counter `next`: a quarter of each thread's
/// share of what is left, between 1 and [`MAX_RUN`] pieces. Runs of consecutive pieces keep
/// each thread's reads sequential; shrinking them towards the end means the threads finish
/// within about a piece of each other, instead of one thread still hashing a long run while
/// the others idle.
fn take_run(next: &AtomicU32, total: u32, threads: u32) -> Option<std::ops::Range<u32>> {
    let mut start = next.load(Ordering::Relaxed);
    loop {
        let left = total.checked_sub(start).filter(|&l| l > 0)?;
        let run = (left / threads.saturating_mul(4)).clamp(1, MAX_RUN);
        let end = start.saturating_add(run);
        match next.compare_exchange_weak(start, end, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Some(start..end),
            Err(now) => start = now,
        }
    }
}

/// Reads and verifies every piece of `meta` from `backend`.
///
/// # Errors
/// The first I/O error other than missing data ([`StoreError::Missing`], or a file not found
/// or ended early), which stops every thread; or an error mapping a piece to its files.
pub fn recheck<B: Backend + ?Sized>(
    meta: &Metainfo,
    layout: &Layout,
    backend: &B,
    opts: &RecheckOptions<'_>,
) -> Result<RecheckReport, StoreError> {
    recheck_with(&Verifier::new(meta, layout), backend, opts)
}

/// [`recheck`] with a verifier of the caller's: for a v2 torrent from a magnet link, one
/// built with [`Verifier::with_piece_layers`] so that the piece layers received since are
/// used (pieces whose layer is still unknown come out [`PieceVerdict::Unverifiable`] in
/// [`RecheckReport::failed`]).
///
/// # Errors
/// As [`recheck`].
pub fn recheck_with<B: Backend + ?Sized>(
    verifier: &Verifier<'_>,
    backend: &B,
    opts: &RecheckOptions<'_>,
) -> Result<RecheckReport, StoreError> {
    let layout = verifier.layout();
    let total = layout.num_pieces();
    let threads = opts
        .threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get)
        .clamp(1, total.max(1) as usize);
    let threads32 = u32::try_from(threads).unwrap_or(u32::MAX);

    let next = AtomicU32::new(0);
    let done = AtomicU32::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<StoreError>> = Mutex::new(None);

    let worker = || -> Vec<(u32, Outcome)> {
        let mut out = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        'runs: while !stop.load(Ordering::Relaxed) {
            let Some(run) = take_run(&next, total, threads32) else {
                break;
            };
            let mut piece = run.start;
            while piece < run.end {
                if stop.load(Ordering::Relaxed) {
                    break 'runs;
                }
                let group = piece..group_end(layout, piece, run.end);
                let before = out.len();
                if let Err(e) = check_group(verifier, backend, group.clone(), &mut buf, &mut out) {
                    stop.store(true, Ordering::Relaxed);
                    if let Ok(mut slot) = first_error.lock() {
                        slot.get_or_insert(e);
                    }
                    break 'runs;
                }
                for _ in before..out.len() {
                    let d = done.fetch_add(1, Ordering::Relaxed).saturating_add(1);
                    if let Some(progress) = opts.progress {
                        progress(d, total);
                    }
                }
                piece = group.end;
            }
        }
        out
    };

    // Grown as results come rather than sized up front from the (torrent-controlled) count.
    let mut results: Vec<(u32, Outcome)> = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads).map(|_| s.spawn(worker)).collect();
        results.extend(worker());
        for h in handles {
            // A worker only panics on a bug; its pieces then count as not verified.
            if let Ok(r) = h.join() {
                results.extend(r);
            }
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }

    results.sort_unstable_by_key(|(p, _)| *p);
    let mut report = RecheckReport {
        verified: Bitfield::new(total),
        failed: Vec::new(),
        missing: Vec::new(),
    };
    for (piece, outcome) in results {
        match outcome {
            Outcome::Verdict(PieceVerdict::Ok) => {
                report.verified.set(piece, true);
            }
            Outcome::Verdict(v) => report.failed.push((piece, v)),
            Outcome::Missing => report.missing.push(piece),
        }
    }
    Ok(report)
}

/// What checking one piece gave.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Verdict(PieceVerdict),
    Missing,
}

/// True for the errors that mean "these bytes are not on disk".
pub(crate) fn is_missing(e: &StoreError) -> bool {
    match e {
        StoreError::Missing { .. } => true,
        StoreError::Io { source, .. } => matches!(
            source.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}

/// One past the last piece, from `first` and before `end`, that can be read together with
/// `first` in one chunk of at most [`READ_CHUNK`] bytes (always at least `first` itself).
fn group_end(layout: &Layout, first: u32, end: u32) -> u32 {
    let start = layout.piece_start(first);
    let mut last = first.saturating_add(1);
    while last < end {
        let stop = layout
            .piece_start(last)
            .saturating_add(layout.piece_size(last));
        if stop.saturating_sub(start) > READ_CHUNK {
            break;
        }
        last += 1;
    }
    last
}

/// Checks the pieces of `group` (consecutive, from [`group_end`]), pushing one outcome per
/// piece to `out`. A group of small pieces is read in one go, from the first piece's start to
/// the last one's end (with the padding between v2 pieces, as zeros); a single piece larger
/// than a chunk is read and hashed a chunk at a time.
fn check_group<B: Backend + ?Sized>(
    verifier: &Verifier<'_>,
    backend: &B,
    group: std::ops::Range<u32>,
    buf: &mut Vec<u8>,
    out: &mut Vec<(u32, Outcome)>,
) -> Result<(), StoreError> {
    let layout = verifier.layout();
    let first = group.start;
    let Some(last) = group.end.checked_sub(1).filter(|&l| l >= first) else {
        return Ok(());
    };
    let start = layout.piece_start(first);
    let end = layout
        .piece_start(last)
        .saturating_add(layout.piece_size(last));
    let len = end.saturating_sub(start);
    if first == last && len > READ_CHUNK {
        out.push((first, check_piece(verifier, backend, first, buf)?));
        return Ok(());
    }
    let data = chunk_buffer(buf, len)?;
    match read_stream(layout, backend, start, data) {
        Ok(()) => {
            for piece in group {
                let at = layout.piece_start(piece).saturating_sub(start);
                let size = layout.piece_size(piece);
                let bytes = usize::try_from(at)
                    .ok()
                    .zip(usize::try_from(at.saturating_add(size)).ok())
                    .and_then(|(a, b)| data.get(a..b))
                    .ok_or(StoreError::too_large("piece", size))?;
                out.push((piece, Outcome::Verdict(verifier.verify_piece(piece, bytes))));
            }
            Ok(())
        }
        // Some of the group is missing: find out which pieces, one at a time.
        Err(e) if is_missing(&e) => {
            for piece in group {
                out.push((piece, check_piece(verifier, backend, piece, buf)?));
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The first `len` bytes of `buf`, grown (and zeroed) only the first time it is too short.
fn chunk_buffer(buf: &mut Vec<u8>, len: u64) -> Result<&mut [u8], StoreError> {
    let n = usize::try_from(len).map_err(|_| StoreError::too_large("read", len))?;
    if buf.len() < n {
        buf.resize(n, 0);
    }
    buf.get_mut(..n).ok_or(StoreError::too_large("read", len))
}

/// Reads `buf.len()` bytes of the torrent's stream at `pos` (padding as zeros).
fn read_stream<B: Backend + ?Sized>(
    layout: &Layout,
    backend: &B,
    pos: u64,
    buf: &mut [u8],
) -> Result<(), StoreError> {
    let len = buf.len() as u64;
    let out_of_range = || StoreError::OutOfRange {
        piece: u32::try_from(pos / layout.piece_length()).unwrap_or(u32::MAX),
        offset: pos % layout.piece_length(),
        len,
    };
    let spans = layout.stream_spans(pos, len).ok_or_else(out_of_range)?;
    let mut at = 0usize;
    for span in spans {
        let n = usize::try_from(span.len).map_err(|_| StoreError::too_large("span", span.len))?;
        let stop = at.checked_add(n).ok_or_else(out_of_range)?;
        let part = buf.get_mut(at..stop).ok_or_else(out_of_range)?;
        if span.padding {
            part.fill(0);
        } else {
            backend.read_at(span.file, span.file_offset, part)?;
        }
        at = stop;
    }
    if at == buf.len() {
        Ok(())
    } else {
        Err(out_of_range())
    }
}

/// Reads `piece` a chunk at a time into `buf` (reused between pieces, so it is allocated
/// once per thread) and verifies it.
fn check_piece<B: Backend + ?Sized>(
    verifier: &Verifier<'_>,
    backend: &B,
    piece: u32,
    buf: &mut Vec<u8>,
) -> Result<Outcome, StoreError> {
    let layout = verifier.layout();
    let size = layout.piece_size(piece);
    let mut stream = PieceStream::new(verifier, piece);
    let mut begin = 0u64;
    while begin < size {
        let n = (size - begin).min(READ_CHUNK);
        let part = chunk_buffer(buf, n)?;
        let begin32 = u32::try_from(begin).map_err(|_| StoreError::too_large("piece", size))?;
        let n32 = u32::try_from(n).map_err(|_| StoreError::too_large("piece", size))?;
        match read_block(backend, layout, piece, begin32, n32, part) {
            Ok(()) => {}
            Err(e) if is_missing(&e) => return Ok(Outcome::Missing),
            Err(e) => return Err(e),
        }
        stream.update(part);
        begin += n;
    }
    Ok(Outcome::Verdict(stream.finish()))
}
