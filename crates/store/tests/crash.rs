//! Crash safety of resume data: a writer process is killed with SIGKILL mid-download; every
//! piece the resume record marks complete must then verify on disk, and a restarted writer
//! must not write those pieces again.
//!
//! The writer is this test binary run again (`crash_child`, selected with `--exact`) with the
//! `TESSERA_CRASH_WORK` environment variable pointing at the working directory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

#[allow(unreachable_pub)]
mod support;
use support::bytes;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tessera_metainfo::{Metainfo, TorrentBuilder, TorrentVersion};
use tessera_store::{
    load_resume, read_piece, read_resume, recheck, write_block, FileBackend, FileBackendOptions,
    Layout, PieceHasher, PieceVerdict, RecheckOptions, ResumeData, ResumeStatus, ResumeWriter,
    Verifier,
};

const WORK_ENV: &str = "TESSERA_CRASH_WORK";
const PHASE_ENV: &str = "TESSERA_CRASH_PHASE";
const PIECE: u64 = 16_384;

/// A random permutation of `0..n` from `seed`.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut x = seed | 1;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

struct Work {
    meta: Metainfo,
    layout: Layout,
    src: PathBuf,
    dl: PathBuf,
    resume: PathBuf,
    log: PathBuf,
}

fn open_work(work: &Path) -> Work {
    let meta = Metainfo::from_bytes(std::fs::read(work.join("t.torrent")).unwrap()).unwrap();
    let layout = Layout::new(&meta).unwrap();
    Work {
        meta,
        layout,
        src: work.join("src"),
        dl: work.join("dl"),
        resume: work.join("dl").join("resume.dat"),
        log: work.join("written.log"),
    }
}

/// The writer: phase 1 writes forever (until killed), phase 2 finishes the download and logs
/// every piece it wrote.
fn writer(work: &Path, phase: &str) {
    let w = open_work(work);
    let src = FileBackend::new(&w.src, &w.layout, FileBackendOptions::default()).unwrap();
    let dl = FileBackend::new(&w.dl, &w.layout, FileBackendOptions::default()).unwrap();
    let verifier = Verifier::new(&w.meta, &w.layout);
    let state = load_resume(&w.resume, &w.meta, &w.layout, &dl);
    let mut data = ResumeData::new(&w.meta, &w.layout);
    data.verified = state.verified.clone();
    let mut writer = ResumeWriter::new(&w.resume, data);

    // Pieces recorded in files that changed since: check them before writing anything.
    for piece in state.to_recheck {
        if let Ok(d) = read_piece(&dl, &w.layout, piece) {
            if verifier.verify_piece(piece, &d).is_ok() {
                writer.mark_verified(piece);
            }
        }
    }
    writer.commit(&w.layout, &dl).unwrap();

    let seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
    let mut written = Vec::new();
    for (n, k) in shuffled(w.layout.num_pieces() as usize, seed)
        .into_iter()
        .enumerate()
    {
        let piece = u32::try_from(k).unwrap();
        if writer.is_verified(piece) {
            continue;
        }
        let data = read_piece(&src, &w.layout, piece).unwrap();
        written.push(piece);
        // Blocks in random order, hashed as they are written.
        let mut hasher = PieceHasher::new(&verifier, piece);
        let blocks = data.len().div_ceil(PIECE as usize / 4);
        for b in shuffled(blocks, seed ^ u64::from(piece)) {
            let begin = b * (PIECE as usize / 4);
            let end = (begin + PIECE as usize / 4).min(data.len());
            write_block(&dl, &w.layout, piece, begin as u32, &data[begin..end]).unwrap();
        }
        for (i, chunk) in data.chunks(PIECE as usize).enumerate() {
            hasher.update((i as u64) * PIECE, chunk).unwrap();
        }
        assert_eq!(hasher.finish(), PieceVerdict::Ok);
        writer.mark_verified(piece);
        if n % 3 == 0 {
            writer.commit(&w.layout, &dl).unwrap();
        }
        if phase == "1" {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    writer.commit(&w.layout, &dl).unwrap();
    if phase == "1" {
        // Wait to be killed.
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let log: String = written.iter().map(|p| format!("{p}\n")).collect();
    std::fs::write(&w.log, log).unwrap();
}

/// Entry point of the writer process; does nothing in a normal test run.
#[test]
fn crash_child() {
    if let (Ok(work), Ok(phase)) = (std::env::var(WORK_ENV), std::env::var(PHASE_ENV)) {
        writer(Path::new(&work), &phase);
    }
}

fn spawn(work: &Path, phase: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(WORK_ENV, work)
        .env(PHASE_ENV, phase)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("writer did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn killed_writer_leaves_only_verified_pieces_marked_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let album = work.join("src").join("album");
    std::fs::create_dir_all(&album).unwrap();
    std::fs::create_dir_all(work.join("dl")).unwrap();
    std::fs::write(album.join("a.bin"), bytes(1, 1_500_000)).unwrap();
    std::fs::write(album.join("b.bin"), bytes(2, 700_001)).unwrap();
    std::fs::write(album.join("c.bin"), bytes(3, 1_000)).unwrap();
    let t = TorrentBuilder::new(&album)
        .version(TorrentVersion::Hybrid)
        .piece_length(PIECE)
        .build()
        .unwrap();
    std::fs::write(work.join("t.torrent"), &t.bytes).unwrap();
    let w = open_work(work);
    let total = w.layout.num_pieces();

    // Phase 1: let the writer record some pieces, then kill it.
    let mut child = spawn(work, "1");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("writer exited early: {status}");
        }
        if read_resume(&w.resume, &w.meta, &w.layout).is_ok_and(|d| d.verified.count() >= 10) {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("writer recorded nothing within 60 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(30));
    child.kill().unwrap();
    child.wait().unwrap();

    // Every piece the record marks complete is on disk and verifies, whether or not its file
    // changed since.
    let dl = FileBackend::new(&w.dl, &w.layout, FileBackendOptions::default()).unwrap();
    let verifier = Verifier::new(&w.meta, &w.layout);
    let state = load_resume(&w.resume, &w.meta, &w.layout, &dl);
    assert!(
        matches!(state.status, ResumeStatus::Loaded),
        "{:?}",
        state.status
    );
    let recorded = state.data.as_ref().unwrap().verified.clone();
    assert!(recorded.count() > 0);
    for piece in recorded.iter_ones() {
        let data = read_piece(&dl, &w.layout, piece).unwrap();
        assert_eq!(
            verifier.verify_piece(piece, &data),
            PieceVerdict::Ok,
            "{piece}"
        );
    }
    let trusted: BTreeSet<u32> = state.verified.iter_ones().collect();
    let rechecked: BTreeSet<u32> = state.to_recheck.iter().copied().collect();
    eprintln!(
        "after kill: {} of {total} recorded, {} trusted, {} to recheck",
        recorded.count(),
        trusted.len(),
        rechecked.len()
    );
    assert!(trusted.is_disjoint(&rechecked));
    assert_eq!(
        trusted.union(&rechecked).copied().collect::<Vec<_>>(),
        recorded.iter_ones().collect::<Vec<_>>()
    );

    // Phase 2: restart; the writer must not write a recorded piece again.
    let mut child = spawn(work, "2");
    let status = wait_bounded(&mut child, Duration::from_secs(120));
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(&w.log).unwrap();
    let written: BTreeSet<u32> = log.lines().map(|l| l.parse().unwrap()).collect();
    for piece in recorded.iter_ones() {
        assert!(!written.contains(&piece), "piece {piece} written again");
    }
    assert_eq!(
        written.len() + recorded.count() as usize,
        total as usize,
        "every other piece written once"
    );

    // The download is complete and the final record trusts all of it.
    let report = recheck(&w.meta, &w.layout, &dl, &RecheckOptions::default()).unwrap();
    assert!(
        report.verified.is_full(),
        "failed {:?} missing {:?} recorded {:?} written {:?}",
        report.failed,
        report.missing,
        recorded.iter_ones().collect::<Vec<_>>(),
        written
    );
    let state = load_resume(&w.resume, &w.meta, &w.layout, &dl);
    assert!(
        state.verified.is_full(),
        "{:?} {} of {total} trusted, to recheck {:?}",
        state.status,
        state.verified.count(),
        state.to_recheck
    );
    assert!(state.to_recheck.is_empty());
}
