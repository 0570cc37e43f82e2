//! Torrent creation throughput against the SHA-1 speed limit.
//!
//! Input: one 512 MiB file in a temporary directory, written just before, so the page cache is
//! warm. `TorrentBuilder` hashes it as v1 and as hybrid, on one thread and on every core. With a
//! core to spare per hashing thread (the one-thread runs on two or more cores), each hashing
//! thread also has a reading thread that copies its next chunks out of the page cache, so the
//! "1 thread" figures are one core hashing plus part of another reading. The peers, run on the
//! same machine in the same run:
//! * `openssl speed -seconds 2 -bytes 16384 sha1` (one core) and `openssl speed -multi <cores>`,
//!   plus `sha256` for the hybrid limit (a hybrid hashes every byte with both);
//! * the `sha1` crate hashing the same bytes from memory, one 256 KiB piece at a time;
//! * reading the file alone, to show what the copy out of the page cache costs.
//!
//! Prints the ratios at the end. Without `--bench` (so under `cargo test --benches`), or with
//! `--test`, the file is 16 MiB and the peers are skipped.

use std::num::NonZeroUsize;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use sha1::{Digest, Sha1};
use tessera::metainfo::{merkle, TorrentBuilder, TorrentVersion};

const MIB: u64 = 1024 * 1024;

fn write_input(path: &Path, len: u64) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::with_capacity(8 << 20, std::fs::File::create(path)?);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..len.div_ceil(1 << 20) {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            let n = chunk.len();
            chunk.copy_from_slice(bytes.get(..n).unwrap_or(&bytes));
        }
        f.write_all(&block)?;
    }
    f.flush()?;
    f.get_ref().set_len(len)
}

/// Reads the whole file in 64 KiB pieces (the size `TorrentBuilder` reads) and discards it.
fn read_through(path: &Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
}

fn builder(path: &Path, version: TorrentVersion, threads: usize) -> TorrentBuilder {
    TorrentBuilder::new(path)
        .version(version)
        .threads(NonZeroUsize::new(threads).unwrap_or(NonZeroUsize::MIN))
}

/// Best of `runs` timings of `f`, in bytes per second over `len` bytes.
fn best_rate(len: u64, runs: usize, mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
    }
    len as f64 / best.as_secs_f64().max(1e-9)
}

/// Runs `openssl speed` for one algorithm and returns bytes per second at 16 KiB blocks.
fn openssl_speed(alg: &str, multi: Option<usize>) -> Option<f64> {
    let mut cmd = Command::new("openssl");
    cmd.arg("speed");
    if let Some(n) = multi {
        cmd.args(["-multi", &n.to_string()]);
    }
    cmd.args(["-seconds", "2", "-bytes", "16384", alg]);
    let out = cmd.output().ok()?;
    if !out.status.success() {
        return None;
    }
    // The summary line: "sha1   1600307.20k" (thousands of bytes per second).
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.split_whitespace().next() == Some(alg))
        .filter_map(|l| {
            l.split_whitespace()
                .last()?
                .strip_suffix('k')?
                .parse::<f64>()
                .ok()
        })
        .next_back()
        .map(|k| k * 1000.0)
}

fn mbs(rate: f64) -> String {
    format!("{:.0} MB/s", rate / 1e6)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing (or `--test`).
    let test_mode =
        !std::env::args().any(|a| a == "--bench") || std::env::args().any(|a| a == "--test");
    let len = if test_mode { 16 * MIB } else { 512 * MIB };
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("create bench: no temporary directory: {e}");
            return;
        }
    };
    let path = dir.path().join("input.bin");
    if let Err(e) = write_input(&path, len) {
        eprintln!("create bench: cannot write the input: {e}");
        return;
    }
    let piece = TorrentBuilder::auto_piece_length(len);

    let configs = [
        ("v1", TorrentVersion::V1, 1),
        ("v1", TorrentVersion::V1, cores),
        ("hybrid", TorrentVersion::Hybrid, 1),
        ("hybrid", TorrentVersion::Hybrid, cores),
    ];

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    {
        let mut g = c.benchmark_group("create_512MiB");
        g.throughput(Throughput::Bytes(len));
        for (name, version, threads) in configs {
            let b = builder(&path, version, threads);
            g.bench_function(format!("{name}/{threads}-thread"), |bench| {
                bench.iter(|| b.build().map(|t| t.info_hashes))
            });
        }
        g.finish();
    }
    c.final_summary();
    if test_mode {
        return;
    }

    // Ratios. The machine may be shared, so every figure is the best of three rounds, and the
    // rounds interleave the peers with our runs so that they see the same load.
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("create bench: cannot read the input back: {e}");
            return;
        }
    };
    let builders: Vec<_> = configs
        .iter()
        .map(|&(name, version, threads)| (name, version, threads, builder(&path, version, threads)))
        .collect();
    let best = |old: Option<f64>, new: Option<f64>| match (old, new) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let (mut ossl_sha1, mut ossl_sha1_multi, mut ossl_sha256) = (None, None, None);
    let (mut crate_sha1, mut crate_sha256, mut read_only) = (0f64, 0f64, 0f64);
    let mut ours = vec![0f64; builders.len()];
    for _round in 0..3 {
        ossl_sha1 = best(ossl_sha1, openssl_speed("sha1", None));
        crate_sha1 = crate_sha1.max(best_rate(len, 1, || {
            for p in data.chunks(piece as usize) {
                std::hint::black_box(Sha1::digest(p));
            }
        }));
        ossl_sha256 = best(ossl_sha256, openssl_speed("sha256", None));
        crate_sha256 = crate_sha256.max(best_rate(len, 1, || {
            for b in data.chunks(merkle::BLOCK_SIZE as usize) {
                std::hint::black_box(merkle::hash_leaf(b));
            }
        }));
        ossl_sha1_multi = best(ossl_sha1_multi, openssl_speed("sha1", Some(cores)));
        read_only = read_only.max(best_rate(len, 1, || {
            let _ = std::hint::black_box(read_through(&path));
        }));
        for (slot, (_, _, _, b)) in ours.iter_mut().zip(&builders) {
            *slot = slot.max(best_rate(len, 1, || {
                let _ = std::hint::black_box(b.build());
            }));
        }
    }
    drop(data);

    println!();
    println!(
        "input: {} MiB file, page cache warm, piece length {} KiB, {cores} cores, load average {}",
        len / MIB,
        piece / 1024,
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_owned))
            .unwrap_or_else(|| "?".into())
    );
    let show = |label: &str, r: Option<f64>| match r {
        Some(r) => println!("  {label:<44} {:>10}", mbs(r)),
        None => println!("  {label:<44} (openssl not available)"),
    };
    show("openssl speed sha1, 16 KiB blocks, 1 core", ossl_sha1);
    show(
        &format!("openssl speed -multi {cores} sha1"),
        ossl_sha1_multi,
    );
    show("openssl speed sha256, 16 KiB blocks, 1 core", ossl_sha256);
    show("sha1 crate, 256 KiB pieces from memory", Some(crate_sha1));
    show(
        "sha256 (merkle::hash_leaf), 16 KiB blocks",
        Some(crate_sha256),
    );
    show("reading the file alone, 64 KiB reads", Some(read_only));

    // The per-byte limit of one core: SHA-1 alone for v1, SHA-1 then SHA-256 for hybrids.
    let sha1_limit = ossl_sha1.unwrap_or(crate_sha1);
    let sha256_limit = ossl_sha256.unwrap_or(crate_sha256);
    let hybrid_limit = 1.0 / (1.0 / sha1_limit + 1.0 / sha256_limit);
    let crate_hybrid_limit = 1.0 / (1.0 / crate_sha1 + 1.0 / crate_sha256);
    for ((name, version, threads, _), rate) in builders.iter().zip(ours) {
        let v1 = *version == TorrentVersion::V1;
        let (limit, crate_limit) = if v1 {
            (sha1_limit, crate_sha1)
        } else {
            (hybrid_limit, crate_hybrid_limit)
        };
        let per_core = rate / *threads as f64;
        let mut line = format!(
            "  TorrentBuilder {name:<6} {threads} thread(s): {:>10}, per core {:>10} = {:.0}% of openssl's \
             one-core {} limit, {:.0}% of the same hash crates from memory",
            mbs(rate),
            mbs(per_core),
            100.0 * per_core / limit,
            if v1 { "SHA-1" } else { "SHA-1+SHA-256" },
            100.0 * per_core / crate_limit,
        );
        if *threads * 2 <= cores {
            line.push_str(" (+ a reading thread)");
        }
        if *threads == 1 {
            // What one core can do when it must also copy the bytes out of the page cache.
            let with_read = 1.0 / (1.0 / limit + 1.0 / read_only);
            line.push_str(&format!(
                "; {:.0}% of read-then-hash ({})",
                100.0 * rate / with_read,
                mbs(with_read)
            ));
        }
        if v1 && *threads > 1 {
            if let Some(m) = ossl_sha1_multi {
                line.push_str(&format!("; {:.0}% of openssl -multi", 100.0 * rate / m));
            }
        }
        println!("{line}");
    }
}
