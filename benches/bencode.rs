//! Bencode decoding: tessera against the Rust bencode crates, on the same inputs in one run.
//!
//! Inputs are generated deterministically:
//! * `large`: a multi-file torrent with 100,000 files (paths of 2–3 components) and 100,000
//!   pieces (a 2 MB `pieces` string);
//! * `small`: a single-file torrent of about 700 MB with 256 KiB pieces (≈2,800 pieces), an
//!   announce list, a comment and the usual metadata.
//!
//! After criterion has run, a table of medians from a plain timing loop in this process gives
//! throughput and ratios (peer time / tessera time), so the comparison is printed even for
//! `cargo bench --bench bencode -- --quick`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use tessera::bencode::{self, DecodeOptions, DictBuilder, Encode, Kind, ValueRef};

/// A small deterministic generator (xorshift64*), so inputs are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn fill(&mut self, out: &mut Vec<u8>, len: usize) {
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
    }
}

const WORDS: &[&str] = &[
    "music", "album", "disc", "video", "season", "extras", "docs", "images", "src", "data",
    "backup", "photos", "raw", "mix", "live", "demo",
];
const EXTS: &[&str] = &["flac", "mkv", "txt", "jpg", "bin", "iso", "mp3", "nfo"];

fn word(rng: &mut Rng) -> &'static str {
    let i = usize::try_from(rng.below(WORDS.len() as u64)).unwrap_or(0);
    WORDS.get(i).copied().unwrap_or("x")
}

fn announce_list(out: &mut Vec<u8>, tiers: usize) {
    out.push(b'l');
    for t in 0..tiers {
        out.push(b'l');
        for s in 0..2 {
            let url = format!("udp://tracker{t}-{s}.example.org:{}/announce", 6969 + s);
            url.as_str().encode(out);
        }
        out.push(b'e');
    }
    out.push(b'e');
}

/// A multi-file torrent: `files` entries, `pieces` piece hashes.
fn large_torrent(files: usize, pieces: usize) -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut info = DictBuilder::new();
    info.entry_with(b"files", |out| {
        out.push(b'l');
        for i in 0..files {
            let mut file = DictBuilder::new();
            let length = i64::try_from(rng.below(1 << 24)).unwrap_or(0) + 1;
            file.entry(b"length", &length);
            file.entry_with(b"path", |out| {
                out.push(b'l');
                let depth = 2 + rng.below(2);
                for _ in 1..depth {
                    word(&mut rng).encode(out);
                }
                let ext = EXTS
                    .get(usize::try_from(rng.below(EXTS.len() as u64)).unwrap_or(0))
                    .copied()
                    .unwrap_or("bin");
                format!("file-{i:06}.{ext}").as_str().encode(out);
                out.push(b'e');
            });
            file.finish(out);
        }
        out.push(b'e');
    });
    info.entry(b"name", "synthetic collection");
    info.entry(b"piece length", &(1i64 << 21));
    let mut hashes = Vec::new();
    rng.fill(&mut hashes, pieces * 20);
    info.entry(b"pieces", &hashes[..]);

    let mut root = DictBuilder::new();
    root.entry(b"announce", "udp://tracker.example.org:6969/announce");
    root.entry_with(b"announce-list", |out| announce_list(out, 4));
    root.entry(b"comment", "synthetic benchmark input");
    root.entry(b"created by", "tessera bench");
    root.entry(b"creation date", &1_700_000_000i64);
    root.entry_with(b"info", |out| info.finish(out));
    let mut out = Vec::new();
    root.finish(&mut out);
    out
}

/// A single-file torrent of `size` bytes with 256 KiB pieces.
fn small_torrent(size: i64) -> Vec<u8> {
    let piece_length: i64 = 256 * 1024;
    let pieces = usize::try_from((size + piece_length - 1) / piece_length).unwrap_or(0);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut hashes = Vec::new();
    rng.fill(&mut hashes, pieces * 20);
    let mut info = DictBuilder::new();
    info.entry(b"length", &size);
    info.entry(b"name", "ubuntu-like-distribution-24.04-desktop-amd64.iso");
    info.entry(b"piece length", &piece_length);
    info.entry(b"pieces", &hashes[..]);

    let mut root = DictBuilder::new();
    root.entry(b"announce", "https://torrent.example.org/announce");
    root.entry_with(b"announce-list", |out| announce_list(out, 8));
    root.entry(
        b"comment",
        "Example distribution image, see https://example.org for checksums and release notes",
    );
    root.entry(b"created by", "mktorrent 1.1");
    root.entry(b"creation date", &1_713_456_789i64);
    root.entry_with(b"url-list", |out| {
        out.push(b'l');
        "https://mirror-a.example.org/iso/".encode(out);
        "https://mirror-b.example.net/pub/iso/".encode(out);
        out.push(b'e');
    });
    root.entry_with(b"info", |out| info.finish(out));
    let mut out = Vec::new();
    root.finish(&mut out);
    out
}

/// Visits every value: integers summed, byte string lengths added, containers entered.
fn walk(v: ValueRef<'_, '_>) -> u64 {
    match v.kind() {
        Kind::Int => v.as_int().unwrap_or(0).unsigned_abs(),
        Kind::Bytes => v.as_bytes().map_or(0, |b| b.len() as u64),
        Kind::List => v
            .as_list()
            .into_iter()
            .flatten()
            .map(walk)
            .fold(1, u64::wrapping_add),
        Kind::Dict => v
            .as_dict()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.len() as u64).wrapping_add(walk(v)))
            .fold(1, u64::wrapping_add),
    }
}

/// Stops the benchmark with a message: inputs are generated here, so failure is a bug.
fn must<T, E: std::fmt::Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{what} failed to decode the benchmark input: {e:?}");
            std::process::exit(1)
        }
    }
}

type Decoder = (&'static str, fn(&[u8]) -> usize);

/// Every contender returns something derived from its result, so nothing is optimised away.
fn decoders() -> Vec<Decoder> {
    vec![
        ("tessera strict", |b| {
            must(bencode::decode(b), "tessera strict").token_count()
        }),
        ("tessera lenient", |b| {
            must(bencode::decode_lenient(b), "tessera lenient").token_count()
        }),
        ("tessera strict + walk", |b| {
            let doc = must(bencode::decode(b), "tessera strict");
            walk(doc.root()) as usize
        }),
        ("serde_bencode Value", |b| {
            let v: serde_bencode::value::Value =
                must(serde_bencode::from_bytes(b), "serde_bencode");
            usize::from(matches!(v, serde_bencode::value::Value::Dict(_)))
        }),
        ("bendy Value", |b| {
            use bendy::decoding::FromBencode;
            let mut decoder = bendy::decoding::Decoder::new(b).with_max_depth(128);
            let object = must(decoder.next_object(), "bendy");
            let v = match object {
                Some(o) => must(bendy::value::Value::decode_bencode_object(o), "bendy"),
                None => must(Err("empty"), "bendy"),
            };
            usize::from(matches!(v, bendy::value::Value::Dict(_)))
        }),
        ("lava_torrent BencodeElem", |b| {
            let v = must(
                lava_torrent::bencode::BencodeElem::from_bytes(b),
                "lava_torrent",
            );
            v.len()
        }),
        ("librqbit-bencode dyn", |b| {
            let v: librqbit_bencode::BencodeValue<librqbit_bencode::ByteBuf<'_>> =
                must(librqbit_bencode::dyn_from_bytes(b), "librqbit-bencode");
            usize::from(matches!(v, librqbit_bencode::BencodeValue::Dict(_)))
        }),
    ]
}

fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("large (100k files)", large_torrent(100_000, 100_000)),
        (
            "small (700 MB single file)",
            small_torrent(700 * 1024 * 1024),
        ),
    ]
}

fn criterion_benches(c: &mut Criterion, inputs: &[(&'static str, Vec<u8>)]) {
    for (name, input) in inputs {
        let mut group = c.benchmark_group(format!("bencode/{name}"));
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        for (dname, f) in decoders() {
            group.bench_function(dname, |b| b.iter(|| f(black_box(input))));
        }
        group.finish();
    }
}

/// Median time of one `f(input)` call: at least 11 samples over about half a second, each sample
/// timing enough back-to-back calls to last a millisecond or more.
fn median(f: fn(&[u8]) -> usize, input: &[u8]) -> Duration {
    let t = Instant::now();
    black_box(f(black_box(input)));
    let once = t.elapsed().max(Duration::from_nanos(100));
    let batch = u32::try_from(Duration::from_millis(1).as_nanos() / once.as_nanos())
        .unwrap_or(u32::MAX)
        .max(1);
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 11 || (start.elapsed() < Duration::from_millis(500) && times.len() < 101) {
        let t = Instant::now();
        for _ in 0..batch {
            black_box(f(black_box(input)));
        }
        times.push(t.elapsed() / batch);
    }
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn print_table(inputs: &[(&'static str, Vec<u8>)]) {
    println!();
    println!(
        "bencode decode, median of a timing loop (ratio = contender time / tessera strict time)"
    );
    for (name, input) in inputs {
        let doc = must(bencode::decode(input), "tessera strict");
        println!();
        println!(
            "{name}: {} bytes, {} values",
            input.len(),
            doc.token_count()
        );
        println!(
            "  {:<26} {:>10} {:>10} {:>8}",
            "decoder", "median µs", "MB/s", "ratio"
        );
        let mut base = None;
        for (dname, f) in decoders() {
            let t = median(f, input);
            let base_t = *base.get_or_insert(t);
            let mbs = input.len() as f64 / t.as_secs_f64() / 1e6;
            let ratio = t.as_secs_f64() / base_t.as_secs_f64();
            println!(
                "  {dname:<26} {:>10.1} {mbs:>10.1} {ratio:>7.2}x",
                t.as_secs_f64() * 1e6
            );
        }
    }
    println!();
}

fn main() {
    let inputs = inputs();
    // Decoding must agree before speed means anything.
    for (name, input) in &inputs {
        let strict = must(bencode::decode(input), "tessera strict")
            .root()
            .to_owned();
        let via_serde: bencode::Value = must(bencode::from_bytes(input), "tessera serde");
        let lenient = must(DecodeOptions::lenient().decode(input), "tessera lenient");
        if strict != via_serde || strict != lenient.root().to_owned() {
            eprintln!("{name}: tessera decoders disagree");
            std::process::exit(1);
        }
    }

    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &inputs);
    c.final_summary();

    // `cargo bench` passes `--bench`; `cargo test --benches` does not and only smoke-tests.
    if std::env::args().any(|a| a == "--bench") {
        print_table(&inputs);
    }
}
