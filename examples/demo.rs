//! Tessera's main demo, on embedded defaults: no arguments, nothing to set up.
//!
//! ```text
//! cargo run --release --example demo
//! ```
//!
//! It makes sample content in a temporary directory, creates a hybrid (v1 + v2) torrent from it
//! with hashing on all cores, reads the torrent back, checks that what it reads is what it wrote,
//! and prints the summary and the magnet link. Later capabilities (seeding and downloading, the
//! DHT, payments) extend this same demo.

use std::error::Error;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use tessera::metainfo::{Magnet, Metainfo, TorrentBuilder, TorrentVersion};

/// Sample content: (relative path, length). Odd sizes on purpose, so that the hybrid torrent
/// needs BEP 47 padding; one empty file, which v2 lists without a merkle root.
const SAMPLE: &[(&str, usize)] = &[
    ("album/01 - overture.flac", 5_242_880 + 12_345),
    ("album/02 - allegro.flac", 3_000_001),
    ("album/cover.jpg", 262_144),
    ("album/notes/credits.txt", 1_234),
    ("album/notes/empty.txt", 0),
];

/// Deterministic pseudo-random bytes (xorshift), so the demo's info hashes are reproducible.
fn sample_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write_sample(root: &Path) -> Result<u64, Box<dyn Error>> {
    let mut total = 0;
    for (i, (rel, len)) in SAMPLE.iter().enumerate() {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, sample_bytes(i as u64 + 1, *len))?;
        total += *len as u64;
    }
    Ok(total)
}

fn run() -> Result<(), Box<dyn Error>> {
    let tmp = tempfile::tempdir()?;
    let content = tmp.path().join("album");
    let total = write_sample(tmp.path())?;
    println!(
        "sample content: {} files, {total} bytes in {}",
        SAMPLE.len(),
        content.display()
    );

    let started = Instant::now();
    let created = TorrentBuilder::new(&content)
        .version(TorrentVersion::Hybrid)
        .tracker("udp://tracker.example:6969/announce")
        .web_seed("https://seed.example/files/")
        .comment("Tessera demo content")
        .build()?;
    let elapsed = started.elapsed();
    let torrent_path = tmp.path().join("album.torrent");
    std::fs::write(&torrent_path, &created.bytes)?;
    println!(
        "created {} ({} bytes) in {:.1} ms: {:.0} MB/s hashed",
        torrent_path.display(),
        created.bytes.len(),
        elapsed.as_secs_f64() * 1e3,
        total as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6
    );

    // Read it back from disk, as any other user of the file would.
    let meta = Metainfo::from_bytes(std::fs::read(&torrent_path)?)?;
    if meta.info_hashes() != created.info_hashes {
        return Err("info hashes read back differ from those created".into());
    }
    let content_bytes: u64 = meta
        .files()
        .iter()
        .filter(|f| !f.attributes.padding)
        .map(|f| f.length)
        .sum();
    if content_bytes != total {
        return Err(format!("read back {content_bytes} bytes of content, wrote {total}").into());
    }

    let hashes = meta.info_hashes();
    println!();
    println!("name:         {}", meta.name());
    println!("version:      {}", meta.version());
    if let Some(h) = hashes.v1 {
        println!("info hash v1: {h}");
    }
    if let Some(h) = hashes.v2 {
        println!("info hash v2: {h}");
    }
    println!(
        "pieces:       {} × {} KiB",
        meta.num_pieces(),
        meta.piece_length() / 1024
    );
    println!("files:");
    for f in meta.files() {
        let note = if f.attributes.padding {
            "  (BEP 47 padding)"
        } else {
            ""
        };
        println!("  {:>10}  {}{note}", f.length, f.path);
    }
    for tier in meta.trackers() {
        println!("trackers:     {}", tier.join(", "));
    }
    for w in meta.web_seeds() {
        println!("web seed:     {w}");
    }

    let magnet = Magnet::from_metainfo(&meta);
    let uri = magnet.to_uri();
    if Magnet::parse(&uri)?.info_hashes != hashes {
        return Err("magnet link does not carry the info hashes".into());
    }
    println!();
    println!("magnet:       {uri}");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
