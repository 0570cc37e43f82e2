//! Loading a `.torrent` (parse + info hash) with tessera-metainfo, against lava_torrent's
//! `Torrent::read_from_bytes` + `info_hash_bytes`, and against the bare SHA-1 of the info
//! dictionary (the floor: every loader must hash those bytes).
//!
//! Inputs, built in memory:
//! * `many_files`: a v1 multi-file torrent with 100,000 files in 1,000 directories and 100,000
//!   pieces (16 KiB pieces);
//! * `single_file`: a v1 single-file torrent of about 1.4 GiB with 2,800 pieces of 512 KiB.
//!
//! After criterion, a plain timing loop prints the ratios to the SHA-1 floor and to lava_torrent:
//! 31 rounds (one without `--bench`, as under `cargo test --benches`), each running every
//! contender once in turn, minimum and median. A control, the bencode decoder alone on one
//! thread, shows how much the machine's quiet and busy spells move branchy code such as a
//! parser (SHA-1, on the processor's SHA instructions, barely moves).
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
use tessera_bencode::{put_bytes, put_int, DecodeOptions};
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

/// Times of `fs` over `runs` rounds, each round running every one once in turn (so that slow
/// and quiet spells of the machine fall on all of them alike): the minimum and the median of
/// each.
fn interleaved(runs: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<(Duration, Duration)> {
    let mut times = vec![Vec::with_capacity(runs); fs.len()];
    for _ in 0..runs {
        for (f, t) in fs.iter_mut().zip(&mut times) {
            let start = Instant::now();
            f();
            t.push(start.elapsed());
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort();
            (t[0], t[t.len() / 2])
        })
        .collect()
}

fn ratios(runs: usize) {
    println!(
        "\nmetainfo load over {runs} interleaved rounds, minimum and median (ratio = time / time of \
         SHA-1 of the info dict), load average {}:",
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_owned))
            .unwrap_or_else(|| "?".into())
    );
    for (label, data) in inputs() {
        let range = info_range(&data);
        let info = data[range].to_vec();
        let shared: &'static [u8] = Box::leak(data.clone().into_boxed_slice());
        let t = interleaved(
            runs,
            &mut [
                &mut || {
                    black_box(sha1_floor(black_box(&info)));
                },
                &mut || {
                    black_box(tessera_load(black_box(shared)));
                },
                &mut || {
                    black_box(tessera_load_and_walk(black_box(shared)));
                },
                &mut || {
                    black_box(lava_load(black_box(&data)));
                },
                // A control: the bencode decoder alone, no SHA-1, on one thread.
                &mut || {
                    let doc = DecodeOptions::lenient().decode(black_box(shared));
                    black_box(doc.map(|d| d.token_count()).unwrap_or(0));
                },
            ],
        );
        let (sha, ours, walk, lava, decode) = (t[0], t[1], t[2], t[3], t[4]);
        let r = |x: Duration, base: Duration| x.as_secs_f64() / base.as_secs_f64();
        println!("  {label} ({} bytes):", data.len());
        for (name, (min, med)) in [
            ("sha1 of info", sha),
            ("tessera", ours),
            ("tessera+walk", walk),
            ("lava_torrent", lava),
            ("decode alone", decode),
        ] {
            println!(
                "    {name:<13} min {min:>9.2?} ({:>5.2}x)  median {med:>9.2?} ({:>5.2}x)",
                r(min, sha.0),
                r(med, sha.1)
            );
        }
        println!(
            "    tessera is {:.1}x faster than lava_torrent (medians)",
            r(lava.1, ours.1)
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
    ratios(if test_mode { 1 } else { 31 });
}
