//! Loading a `.torrent` (parse + info hash) with tessera-metainfo, against lava_torrent's
//! `Torrent::read_from_bytes` + `info_hash_bytes`, and against the bare SHA-1 of the info
//! dictionary (the floor: every loader must hash those bytes).
//!
//! Inputs, built in memory:
//! * `many_files`: a v1 multi-file torrent with 100,000 files in 1,000 directories and 100,000
//!   pieces (16 KiB pieces);
//! * `single_file`: a v1 single-file torrent of about 1.4 GiB with 2,800 pieces of 512 KiB.
//!
//! After criterion, a plain timing loop prints the ratios to the SHA-1 floor and to lava_torrent
//! (medians of 15 runs; of one run without `--bench`, as under `cargo test --benches`).
//!
//! Everything `Metainfo::from_bytes` checks is checked before it returns: every file's length,
//! path components, sanitising, limits and duplicate names. One thing is left for first use:
//! a v1 file list in its usual form is not copied, and its paths (`name/dir/file`) are written
//! out the first time one is looked at (libtorrent likewise keeps file names as pointers into
//! the torrent). `tessera+walk` therefore also reads every file's path and raw path components
//! afterwards, which includes writing the paths out, to show the whole cost of using the
//! result.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use sha1::{Digest, Sha1};
use tessera_bencode::{put_bytes, put_int};
use tessera_metainfo::Metainfo;

fn many_files() -> Vec<u8> {
    let files = 100_000u64;
    let piece_length = 16_384u64;
    let pieces = 100_000u64;
    let total = pieces * piece_length;
    let per_file = total / files;
    let mut list = Vec::new();
    list.push(b'l');
    for i in 0..files {
        list.extend_from_slice(b"d6:length");
        put_int(&mut list, per_file as i64);
        list.extend_from_slice(b"4:pathl");
        put_bytes(&mut list, format!("directory-{:04}", i / 100).as_bytes());
        put_bytes(&mut list, format!("file-number-{i:06}.dat").as_bytes());
        list.extend_from_slice(b"ee");
    }
    list.push(b'e');
    build(&list, None, piece_length, pieces, "many-files")
}

fn single_file() -> Vec<u8> {
    let piece_length = 512 * 1024u64;
    let pieces = 2_800u64;
    let length = piece_length * pieces - 12_345;
    build(
        &[],
        Some(length),
        piece_length,
        pieces,
        "a-single-big-file.iso",
    )
}

fn build(files: &[u8], length: Option<u64>, piece_length: u64, pieces: u64, name: &str) -> Vec<u8> {
    let mut info = vec![b'd'];
    if files.is_empty() {
        info.extend_from_slice(b"6:length");
        put_int(&mut info, length.unwrap_or(0) as i64);
    } else {
        info.extend_from_slice(b"5:files");
        info.extend_from_slice(files);
    }
    info.extend_from_slice(b"4:name");
    put_bytes(&mut info, name.as_bytes());
    info.extend_from_slice(b"12:piece length");
    put_int(&mut info, piece_length as i64);
    info.extend_from_slice(b"6:pieces");
    let hashes: Vec<u8> = (0..pieces * 20).map(|i| (i * 31 % 251) as u8).collect();
    put_bytes(&mut info, &hashes);
    info.push(b'e');
    let mut out = b"d8:announce".to_vec();
    put_bytes(&mut out, b"http://tracker.example:6969/announce");
    out.extend_from_slice(b"13:creation datei1700000000e4:info");
    out.extend_from_slice(&info);
    out.push(b'e');
    out
}

fn info_range(data: &[u8]) -> std::ops::Range<usize> {
    let m = Metainfo::from_bytes(data.to_vec()).expect("bench input parses");
    let info = m.info_bytes();
    let start = data
        .windows(info.len())
        .position(|w| w == &info[..])
        .expect("info inside");
    start..start + info.len()
}

/// Takes `'static` bytes so that the load is zero-copy (`Bytes::from_static`).
fn tessera_load(data: &'static [u8]) -> [u8; 20] {
    let m = Metainfo::from_bytes(data).expect("parses");
    m.info_hashes().v1.expect("v1").0
}

/// [`tessera_load`], then every file's length, path and raw path components.
fn tessera_load_and_walk(data: &'static [u8]) -> usize {
    let m = Metainfo::from_bytes(data).expect("parses");
    let mut n = m.info_hashes().v1.map_or(0, |h| usize::from(h.0[0]));
    for f in m.files() {
        n += f.path.len() + f.length as usize;
        n += f.path_component_iter().map(<[u8]>::len).sum::<usize>();
    }
    n
}

fn lava_load(data: &[u8]) -> Vec<u8> {
    let t = lava_torrent::torrent::v1::Torrent::read_from_bytes(data).expect("lava parses");
    t.info_hash_bytes()
}

fn sha1_floor(info: &[u8]) -> [u8; 20] {
    Sha1::digest(info).into()
}

fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    vec![("many_files", many_files()), ("single_file", single_file())]
}

fn bench(c: &mut Criterion) {
    for (label, data) in inputs() {
        let range = info_range(&data);
        let info = data[range].to_vec();
        let shared: &'static [u8] = Box::leak(data.clone().into_boxed_slice());
        let mut g = c.benchmark_group(format!("metainfo/{label}"));
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.sample_size(20);
        g.bench_function("tessera", |b| b.iter(|| tessera_load(black_box(shared))));
        g.bench_function("tessera+walk", |b| {
            b.iter(|| tessera_load_and_walk(black_box(shared)))
        });
        g.bench_function("lava_torrent", |b| b.iter(|| lava_load(black_box(&data))));
        g.bench_function("sha1_of_info", |b| b.iter(|| sha1_floor(black_box(&info))));
        g.finish();
    }
}

/// Median time of `f` over `runs` runs.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn ratios(runs: usize) {
    println!(
        "\nmetainfo load, median of {runs} runs (ratio = time / time of SHA-1 of the info dict), \
         load average {}:",
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_owned))
            .unwrap_or_else(|| "?".into())
    );
    for (label, data) in inputs() {
        let range = info_range(&data);
        let info = data[range].to_vec();
        let shared: &'static [u8] = Box::leak(data.clone().into_boxed_slice());
        let t_sha = median(runs, || {
            black_box(sha1_floor(black_box(&info)));
        });
        let t_ours = median(runs, || {
            black_box(tessera_load(black_box(shared)));
        });
        let t_walk = median(runs, || {
            black_box(tessera_load_and_walk(black_box(shared)));
        });
        let t_lava = median(runs, || {
            black_box(lava_load(black_box(&data)));
        });
        let r = |t: Duration| t.as_secs_f64() / t_sha.as_secs_f64();
        println!(
            "  {label:<12} {:>9} bytes: sha1 {t_sha:>10.2?}  tessera {t_ours:>10.2?} ({:.2}x)  \
             tessera+walk {t_walk:>10.2?} ({:.2}x)  lava_torrent {t_lava:>10.2?} ({:.2}x)  \
             tessera is {:.1}x faster than lava_torrent",
            data.len(),
            r(t_ours),
            r(t_walk),
            r(t_lava),
            t_lava.as_secs_f64() / t_ours.as_secs_f64()
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing (or `--test`): then
    // one run of each is enough to show that the ratios still come out.
    let test_mode =
        !std::env::args().any(|a| a == "--bench") || std::env::args().any(|a| a == "--test");
    ratios(if test_mode { 1 } else { 15 });
}
