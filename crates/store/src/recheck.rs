//! Parallel recheck: read every piece once and verify it, on all cores.
//!
//! Threads take runs of consecutive pieces from a shared counter (so a slow disk region does
//! not leave the other threads idle), each reading into one buffer it reuses for every piece.
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
use crate::verify::{PieceVerdict, Verifier};

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
    let total = layout.num_pieces();
    let verifier = Verifier::new(meta, layout);
    let threads = opts
        .threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get)
        .clamp(1, total.max(1) as usize);
    // Runs small enough that every thread gets several, large enough to amortise the counter.
    let run = (total / (threads as u32).saturating_mul(8)).clamp(1, MAX_RUN);

    let next = AtomicU32::new(0);
    let done = AtomicU32::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<StoreError>> = Mutex::new(None);

    let worker = || -> Vec<(u32, Outcome)> {
        let mut out = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let start = next.fetch_add(run, Ordering::Relaxed);
            if start >= total {
                break;
            }
            let end = start.saturating_add(run).min(total);
            for piece in start..end {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match check_piece(&verifier, layout, backend, piece, &mut buf) {
                    Ok(outcome) => out.push((piece, outcome)),
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                        break;
                    }
                }
                let d = done.fetch_add(1, Ordering::Relaxed).saturating_add(1);
                if let Some(progress) = opts.progress {
                    progress(d, total);
                }
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

/// Reads `piece` into `buf` (reused between pieces, so it is allocated once per thread) and
/// verifies it.
fn check_piece<B: Backend + ?Sized>(
    verifier: &Verifier<'_>,
    layout: &Layout,
    backend: &B,
    piece: u32,
    buf: &mut Vec<u8>,
) -> Result<Outcome, StoreError> {
    let size = layout.piece_size(piece);
    let size32 = u32::try_from(size).map_err(|_| StoreError::too_large("piece", size))?;
    let len = usize::try_from(size).map_err(|_| StoreError::too_large("piece", size))?;
    buf.resize(len, 0);
    match read_block(backend, layout, piece, 0, size32, buf) {
        Ok(()) => {}
        Err(e) if is_missing(&e) => return Ok(Outcome::Missing),
        Err(e) => return Err(e),
    }
    Ok(Outcome::Verdict(verifier.verify_piece(piece, buf)))
}
