//! Store throughput: recheck against libtorrent and the all-core hashing limit, and writes.
//!
//! Input: 1 GiB of pseudo-random data in four 256 MiB files in a temporary directory, read once
//! before timing so the page cache is warm; a v1 and a hybrid torrent of it (256 KiB pieces).
//! Measured in the same run, in interleaved rounds (5, or `TESSERA_BENCH_ROUNDS`), each
//! figure the best of its rounds:
//! * `tessera_store::recheck` of each torrent through a `FileBackend`, on every core;
//! * libtorrent's full check of the same torrent file and data (added without resume data, so
//!   every piece is hashed, as in a forced recheck), through Debian's `python3-libtorrent`
//!   (`/usr/bin/python3`) in a subprocess, with as many disk and hashing threads as cores,
//!   timed inside that process until every piece is verified (polled every 5 ms). Skipped with
//!   a message if the module is missing, unless `TESSERA_REQUIRE_LIBTORRENT=1`;
//! * the hashing limit: the `sha1` crate (and `sha2` leaves for the hybrid), the same code the
//!   store hashes with, over the same bytes from memory on every core: in each round the better
//!   of a static split (one contiguous share per thread) and a dynamic one (threads take pieces
//!   from a shared counter, which loses less when another process takes a core for a while),
//!   and for the hybrid also the better of hashing each piece in two passes (SHA-1, then the
//!   leaves) and in one (each 16 KiB block through both while it is in L1 cache); and the
//!   store's own `Verifier::verify_piece` over the in-memory pieces, its hashing code exactly
//!   without its reads (the fastest of them for the hybrid);
//!   and `openssl speed -multi <cores> -bytes 16384 sha1` for reference;
//! * writes: 256 MiB in 16 KiB blocks in random order through `FileBackend` + `write_block`,
//!   into a fresh directory, with and without a final sync.
//!
//! Each round measures the limit just before the recheck of the same torrent, so both see the
//! same machine; besides best against best, the median of those per-round ratios is printed,
//! with the load average before and after, since the machine may be shared.
//!
//! Without `--bench` (so under `cargo test --benches`), or with `--test`, the input is
//! 4 × 4 MiB, the peers are skipped, and the run only checks that every piece verifies.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::num::NonZeroUsize;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use sha1::{Digest, Sha1};
use tessera::metainfo::{merkle, Metainfo, TorrentBuilder, TorrentVersion};
use tessera::store::{
    recheck, write_block, Backend, FileBackend, FileBackendOptions, Layout, RecheckOptions,
    Verifier,
};

const MIB: u64 = 1024 * 1024;
const PIECE: u64 = 256 * 1024;
const FILES: u64 = 4;

/// Fills `block` from the xorshift state `x`.
fn fill(block: &mut [u8], x: &mut u64) {
    for chunk in block.chunks_mut(8) {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        let bytes = x.to_le_bytes();
        let n = chunk.len();
        chunk.copy_from_slice(&bytes[..n]);
    }
}

fn write_input(path: &Path, len: u64, seed: u64) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::with_capacity(8 << 20, std::fs::File::create(path)?);
    let mut x = seed | 1;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..len.div_ceil(1 << 20) {
        fill(&mut block, &mut x);
        f.write_all(&block)?;
    }
    f.flush()?;
    f.get_ref().set_len(len)
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

/// `openssl speed -multi <cores> -bytes 16384 sha1`, in bytes per second.
fn openssl_sha1_multi(cores: usize) -> Option<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-multi", &cores.to_string()])
        .args(["-seconds", "2", "-bytes", "16384", "sha1"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    // The summary line: "sha1   1600307.20k" (thousands of bytes per second).
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.split_whitespace().next() == Some("sha1"))
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

/// SHA-1 of the piece `p`, and for `hybrid` also the SHA-256 leaf of every 16 KiB block: in
/// two passes over the piece (`Pass::Two`), or in one, each block fed to SHA-1 and hashed as a
/// leaf while it is in L1 cache (`Pass::One`, which is what the store does and is faster here).
fn hash_piece(p: &[u8], hybrid: bool, pass: Pass) {
    if !hybrid {
        std::hint::black_box(Sha1::digest(p));
        return;
    }
    match pass {
        Pass::Two => {
            std::hint::black_box(Sha1::digest(p));
            for b in p.chunks(merkle::BLOCK_SIZE as usize) {
                std::hint::black_box(merkle::hash_leaf(b));
            }
        }
        Pass::One => {
            let mut sha = Sha1::new();
            for b in p.chunks(merkle::BLOCK_SIZE as usize) {
                sha.update(b);
                std::hint::black_box(merkle::hash_leaf(b));
            }
            std::hint::black_box(sha.finalize());
        }
    }
}

/// How a hybrid piece is hashed by the limit (see [`hash_piece`]).
#[derive(Clone, Copy)]
enum Pass {
    One,
    Two,
}

/// Hashes every piece of `data` on `cores` threads, each a contiguous share of whole pieces.
fn hash_all_cores(data: &[u8], cores: usize, hybrid: bool, pass: Pass) {
    let pieces = data.len().div_ceil(PIECE as usize);
    let share = pieces.div_ceil(cores).max(1) * PIECE as usize;
    std::thread::scope(|s| {
        for part in data.chunks(share) {
            s.spawn(move || {
                for p in part.chunks(PIECE as usize) {
                    hash_piece(p, hybrid, pass);
                }
            });
        }
    });
}

/// Hashes every piece of `data` on `cores` threads, each taking the next piece from a shared
/// counter.
fn hash_all_cores_dynamic(data: &[u8], cores: usize, hybrid: bool, pass: Pass) {
    let next = AtomicUsize::new(0);
    let piece = PIECE as usize;
    std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = data.get(i * piece..((i + 1) * piece).min(data.len())) else {
                    break;
                };
                if p.is_empty() {
                    break;
                }
                hash_piece(p, hybrid, pass);
            });
        }
    });
}

/// Checks every piece of `data` (the torrent's whole byte stream) with the store's own
/// `Verifier::verify_piece`, on `cores` threads taking pieces from a shared counter: the
/// store's hashing code exactly, without its reads.
fn verify_all_cores(data: &[u8], cores: usize, t: &Torrent) {
    let verifier = Verifier::new(&t.meta, &t.layout);
    let next = AtomicUsize::new(0);
    let piece = PIECE as usize;
    std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = data.get(i * piece..((i + 1) * piece).min(data.len())) else {
                    break;
                };
                if p.is_empty() {
                    break;
                }
                assert!(verifier.verify_piece(i as u32, p).is_ok(), "piece {i}");
            });
        }
    });
}

/// The hashing limit in bytes per second for torrent `t` over `data`, its bytes in memory:
/// the best of the static and the dynamic split of plain `sha1`/`sha2` calls (for the
/// hybrid, with one pass and with two over each piece), and of the store's own verifier.
fn hash_limit(data: &[u8], cores: usize, t: &Torrent) -> f64 {
    let len = data.len() as u64;
    assert_eq!(
        t.layout.total_length(),
        len,
        "the torrent is the data, without padding"
    );
    let hybrid = t.meta.version().has_v2();
    let passes: &[Pass] = if hybrid {
        &[Pass::One, Pass::Two]
    } else {
        &[Pass::One]
    };
    let mut best = 0f64;
    for &pass in passes {
        let fixed = best_rate(len, 1, || hash_all_cores(data, cores, hybrid, pass));
        let dynamic = best_rate(len, 1, || hash_all_cores_dynamic(data, cores, hybrid, pass));
        best = best.max(fixed).max(dynamic);
    }
    best.max(best_rate(len, 1, || verify_all_cores(data, cores, t)))
}

/// The 1-minute load average.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// What the libtorrent subprocess runs: argv is torrent file, save path, threads. Adds the
/// torrent without resume data, so libtorrent hash-checks every piece of the existing files
/// (the same work as a forced recheck), and prints the seconds from adding it until it has
/// every piece and has left the checking states.
const LIBTORRENT_SCRIPT: &str = r#"
import sys, time
import libtorrent as lt
torrent, save, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = lt.session({
    'listen_interfaces': '127.0.0.1:0',
    'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
    'enable_incoming_utp': False, 'enable_outgoing_utp': False,
    'aio_threads': threads, 'hashing_threads': threads, 'alert_mask': 0,
})
p = lt.add_torrent_params()
p.ti = lt.torrent_info(torrent)
p.save_path = save
total = p.ti.num_pieces()
checking = (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)
deadline = time.monotonic() + 300
t0 = time.monotonic()
h = s.add_torrent(p)
while time.monotonic() < deadline:
    st = h.status()
    if st.state not in checking and st.num_pieces == total:
        break
    time.sleep(0.005)
else:
    sys.exit("libtorrent check did not finish within 300 s")
print(time.monotonic() - t0)
"#;

/// libtorrent's force-recheck time in seconds, `Ok(None)` if the module is not installed.
fn libtorrent_recheck(torrent: &Path, save: &Path, threads: usize) -> Result<Option<f64>, String> {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(LIBTORRENT_SCRIPT)
        .arg(torrent)
        .arg(save)
        .arg(threads.to_string())
        .output()
        .map_err(|e| format!("cannot run /usr/bin/python3: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("No module named 'libtorrent'") {
            return Ok(None);
        }
        return Err(format!("libtorrent script failed: {stderr}"));
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<f64>()
        .map(Some)
        .map_err(|e| format!("libtorrent script printed no time: {e}"))
}

struct Torrent {
    name: &'static str,
    file: std::path::PathBuf,
    meta: Metainfo,
    layout: Layout,
}

fn make_torrent(
    name: &'static str,
    content: &Path,
    out_dir: &Path,
    version: TorrentVersion,
) -> Torrent {
    let created = TorrentBuilder::new(content)
        .version(version)
        .piece_length(PIECE)
        .build()
        .expect("build torrent");
    let file = out_dir.join(format!("{name}.torrent"));
    std::fs::write(&file, &created.bytes).expect("write torrent");
    let meta = Metainfo::from_bytes(created.bytes).expect("parse torrent");
    let layout = Layout::new(&meta).expect("layout");
    Torrent {
        name,
        file,
        meta,
        layout,
    }
}

/// Rechecks `t` from `data_dir` on every core and checks that every piece verified.
fn run_recheck(t: &Torrent, data_dir: &Path) {
    let backend =
        FileBackend::new(data_dir, &t.layout, FileBackendOptions::default()).expect("backend");
    let report =
        recheck(&t.meta, &t.layout, &backend, &RecheckOptions::default()).expect("recheck");
    assert_eq!(
        report.verified.count(),
        t.layout.num_pieces(),
        "{}: not every piece verified: {:?} failed, {:?} missing",
        t.name,
        report.failed.first(),
        report.missing.first()
    );
}

/// Writes every 16 KiB block of `t` (a single-file torrent of `data`) in a random order into
/// a fresh directory; with `sync`, syncs every file at the end. Returns the time taken.
fn write_random(t: &Torrent, data: &[u8], sync: bool) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend =
        FileBackend::new(dir.path(), &t.layout, FileBackendOptions::default()).expect("backend");
    let block = merkle::BLOCK_SIZE;
    let mut blocks: Vec<u64> = (0..t.layout.total_length().div_ceil(block)).collect();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for i in (1..blocks.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        blocks.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let start = Instant::now();
    for b in blocks {
        let at = b * block;
        let piece = (at / t.layout.piece_length()) as u32;
        let begin = (at % t.layout.piece_length()) as u32;
        let end = (at + block).min(data.len() as u64);
        write_block(
            &backend,
            &t.layout,
            piece,
            begin,
            &data[at as usize..end as usize],
        )
        .expect("write block");
    }
    if sync {
        for f in 0..t.layout.files().len() {
            backend.sync(f).expect("sync");
        }
    }
    let took = start.elapsed();
    drop(backend);
    took
}

fn gbs(rate: f64) -> String {
    format!("{:.2} GB/s", rate / 1e9)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing (or `--test`).
    let test_mode =
        !std::env::args().any(|a| a == "--bench") || std::env::args().any(|a| a == "--test");
    let file_len = if test_mode { 4 * MIB } else { 256 * MIB };
    let len = file_len * FILES;
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let require_lt = std::env::var("TESSERA_REQUIRE_LIBTORRENT").is_ok_and(|v| v == "1");

    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let content = data_dir.join("payload");
    std::fs::create_dir_all(&content).expect("create content dir");
    for i in 0..FILES {
        write_input(
            &content.join(format!("part{i}.bin")),
            file_len,
            0x9E37_79B9 + i,
        )
        .expect("write input");
    }
    let v1 = make_torrent("v1", &content, dir.path(), TorrentVersion::V1);
    let hybrid = make_torrent("hybrid", &content, dir.path(), TorrentVersion::Hybrid);
    // The same bytes in memory (in torrent order), which also warms the page cache.
    let mut data = Vec::with_capacity(len as usize);
    for i in 0..FILES {
        data.extend(std::fs::read(content.join(format!("part{i}.bin"))).expect("read input"));
    }
    // A single-file torrent of the first file, for the write test.
    let write_t = make_torrent(
        "write",
        &content.join("part0.bin"),
        dir.path(),
        TorrentVersion::V1,
    );
    let write_data = &data[..file_len as usize];

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    {
        let mut g = c.benchmark_group(format!("recheck_{}MiB", len / MIB));
        g.throughput(Throughput::Bytes(len));
        for t in [&v1, &hybrid] {
            g.bench_function(format!("{}/{cores}-thread", t.name), |b| {
                b.iter(|| run_recheck(t, &data_dir))
            });
        }
        g.finish();
    }
    c.final_summary();
    if test_mode {
        let _ = write_random(&write_t, write_data, false);
        return;
    }

    let rounds: usize = std::env::var("TESSERA_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
        .max(1);
    let load_before = load_average();
    // libtorrent first once, to find out whether it is there at all.
    let mut lt_secs: Vec<Option<f64>> = vec![None, None];
    let mut lt_missing = false;
    let mut ours = [0f64; 2];
    let mut limits = [0f64; 2];
    let mut ratios: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut ossl = None::<f64>;
    let (mut write_nosync, mut write_sync) = (0f64, 0f64);
    for _round in 0..rounds {
        for (i, t) in [&v1, &hybrid].into_iter().enumerate() {
            // The limit right before the recheck, so that both see the same machine.
            let limit = hash_limit(&data, cores, t);
            let rate = best_rate(len, 1, || run_recheck(t, &data_dir));
            limits[i] = limits[i].max(limit);
            ours[i] = ours[i].max(rate);
            ratios[i].push(rate / limit);
            if !lt_missing {
                match libtorrent_recheck(&t.file, &data_dir, cores) {
                    Ok(Some(s)) => {
                        lt_secs[i] = Some(lt_secs[i].map_or(s, |o: f64| o.min(s)));
                    }
                    Ok(None) if require_lt => {
                        panic!(
                            "TESSERA_REQUIRE_LIBTORRENT=1 but /usr/bin/python3 has no libtorrent"
                        )
                    }
                    Ok(None) => {
                        eprintln!(
                            "store bench: libtorrent not installed for /usr/bin/python3 \
                             (apt-get install python3-libtorrent); skipping it"
                        );
                        lt_missing = true;
                    }
                    Err(e) if require_lt => panic!("{e}"),
                    Err(e) => {
                        eprintln!("store bench: skipping libtorrent: {e}");
                        lt_missing = true;
                    }
                }
            }
        }
        if let Some(r) = openssl_sha1_multi(cores) {
            ossl = Some(ossl.map_or(r, |o| o.max(r)));
        }
        let wlen = file_len;
        write_nosync =
            write_nosync.max(wlen as f64 / write_random(&write_t, write_data, false).as_secs_f64());
        write_sync =
            write_sync.max(wlen as f64 / write_random(&write_t, write_data, true).as_secs_f64());
    }

    println!();
    println!(
        "input: {} MiB in {FILES} files, page cache warm, piece length {} KiB, {cores} cores, \
         best of {rounds} rounds, load average {load_before} before, {} after",
        len / MIB,
        PIECE / 1024,
        load_average()
    );
    println!("hashing limit, same bytes from memory, {cores} threads:");
    println!(
        "  {:<48} {:>11}",
        "sha1 crate, 256 KiB pieces",
        gbs(limits[0])
    );
    println!(
        "  {:<48} {:>11}",
        "sha1 pieces + sha2 16 KiB leaves (hybrid)",
        gbs(limits[1])
    );
    match ossl {
        Some(r) => println!(
            "  {:<48} {:>11}",
            format!("openssl speed -multi {cores} -bytes 16384 sha1"),
            gbs(r)
        ),
        None => println!("  openssl speed: not available"),
    }
    println!("recheck, {cores} threads:");
    println!(
        "  {:<8} {:>11} {:>11} {:>10} {:>16} {:>14} {:>14}",
        "torrent", "tessera", "libtorrent", "ours/lt", "% hash limit", "median/round", "% openssl"
    );
    for (i, t) in [&v1, &hybrid].into_iter().enumerate() {
        let lt_rate = lt_secs[i].map(|s| len as f64 / s);
        let limit = limits[i];
        let ossl_pct = if i == 0 {
            ossl.map_or("-".to_owned(), |o| format!("{:.0}%", 100.0 * ours[i] / o))
        } else {
            "-".to_owned()
        };
        println!(
            "  {:<8} {:>11} {:>11} {:>10} {:>15.1}% {:>13.1}% {:>14}",
            t.name,
            gbs(ours[i]),
            lt_rate.map_or("skipped".to_owned(), gbs),
            lt_rate.map_or("-".to_owned(), |l| format!("{:.2}x", ours[i] / l)),
            100.0 * ours[i] / limit,
            100.0 * median(ratios[i].clone()),
            ossl_pct,
        );
    }
    println!(
        "write, {} MiB in 16 KiB blocks, random order, FileBackend + write_block:",
        file_len / MIB
    );
    println!("  {:<48} {:>11}", "no sync", gbs(write_nosync));
    println!("  {:<48} {:>11}", "with a final sync", gbs(write_sync));
}
