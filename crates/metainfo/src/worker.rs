//! Background threads for the work a load hands off (hashing the info dictionary of a large
//! torrent while it is parsed), kept for a while between loads.
//!
//! A thread started for each load has to be scheduled for the first time before it can help,
//! and on a busy or virtual machine that can take milliseconds, as long as the whole load. A
//! thread that is already there, waiting on its inbox, is woken far sooner. So a worker that
//! has finished a job waits [`IDLE`] for another before it exits; a load takes a waiting
//! worker if there is one, and starts a new one if not (so concurrent loads never wait for
//! each other's).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Mutex;
use std::time::Duration;

/// A job for a worker.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// How long a worker waits for another job before it exits.
const IDLE: Duration = Duration::from_secs(5);

/// The workers waiting for a job: each one's id and its inbox.
static WAITING: Mutex<Vec<(u64, SyncSender<Job>)>> = Mutex::new(Vec::new());

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Runs `job` on a waiting worker, or on a new one; false if no thread could be started (the
/// job is then dropped unrun).
pub(crate) fn run(mut job: Job) -> bool {
    loop {
        let Some((_, inbox)) = WAITING.lock().ok().and_then(|mut w| w.pop()) else {
            break;
        };
        // A waiting worker's inbox is empty; one that has just exited gives the job back.
        match inbox.try_send(job) {
            Ok(()) => return true,
            Err(TrySendError::Full(j) | TrySendError::Disconnected(j)) => job = j,
        }
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let (me, inbox) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("tessera-metainfo".to_owned())
        .spawn(move || work(id, job, &me, &inbox))
        .is_ok()
}

/// A worker: runs `first`, then each job it is handed, until none comes for [`IDLE`].
fn work(id: u64, first: Job, me: &SyncSender<Job>, inbox: &Receiver<Job>) {
    let mut job = first;
    loop {
        job();
        match WAITING.lock() {
            Ok(mut waiting) => waiting.push((id, me.clone())),
            Err(_) => return,
        }
        job = match inbox.recv_timeout(IDLE) {
            Ok(next) => next,
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                let Ok(mut waiting) = WAITING.lock() else {
                    return;
                };
                if let Some(i) = waiting.iter().position(|(w, _)| *w == id) {
                    waiting.swap_remove(i);
                    return;
                }
                drop(waiting);
                // Taken off the list by a load that is handing a job over.
                match inbox.recv() {
                    Ok(next) => next,
                    Err(_) => return,
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Jobs run, each once, whether handed to a new worker or a waiting one, also when many
    /// are handed over at once from several threads.
    #[test]
    fn every_job_runs_once() {
        let (done, results) = mpsc::channel();
        std::thread::scope(|s| {
            for t in 0..4u32 {
                let done = done.clone();
                s.spawn(move || {
                    for i in 0..50u32 {
                        let done = done.clone();
                        assert!(run(Box::new(move || done.send(t * 1000 + i).unwrap())));
                    }
                });
            }
        });
        drop(done);
        let mut got: Vec<u32> = results.iter().collect();
        got.sort_unstable();
        let want: Vec<u32> = (0..4u32)
            .flat_map(|t| (0..50).map(move |i| t * 1000 + i))
            .collect();
        assert_eq!(got, want);
        // One after another, a waiting worker is used again rather than a new one started
        // each time (other tests may take a waiting worker now and then).
        let mut threads = std::collections::HashSet::new();
        for _ in 0..20 {
            let (tx, rx) = mpsc::channel();
            assert!(run(Box::new(move || {
                tx.send(std::thread::current().id()).unwrap();
            })));
            threads.insert(rx.recv().unwrap());
            // Time for the worker to put itself back on the list.
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(threads.len() < 10, "{} threads for 20 jobs", threads.len());
    }
}
