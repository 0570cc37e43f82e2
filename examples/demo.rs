//! Tessera's main demo, on embedded defaults: no arguments, nothing to set up.
//!
//! ```text
//! cargo run --release --example demo
//! ```
//!
//! It makes sample content in a temporary directory, creates a hybrid (v1 + v2) torrent from it
//! with hashing on all cores, reads the torrent back, checks that what it reads is what it wrote,
//! and prints the summary and the magnet link. Then it moves the content from a "seeder" piece
//! store to a fresh one the way a download does: 16 KiB `piece` messages through the peer wire
//! codec, each piece hashed (SHA-1 and SHA-256 merkle) as its blocks arrive, and finally a
//! parallel recheck of what landed on disk. Later capabilities (real peers, the DHT, payments)
//! extend this same demo.

use std::error::Error;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use tessera::bytes::{Bytes, BytesMut};
use tessera::metainfo::{Magnet, Metainfo, TorrentBuilder, TorrentVersion};
use tessera::store::{
    read_piece, recheck, write_block, FileBackend, FileBackendOptions, Layout, PieceHasher,
    PieceVerdict, RecheckOptions, Verifier,
};
use tessera::wire::{Limits, Message, MessageDecoder};

/// Block size on the wire.
const BLOCK: usize = 16 * 1024;

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

    transfer(&meta, tmp.path(), &tmp.path().join("download"))?;
    Ok(())
}

/// Moves every piece from the store over `seed_dir` to a fresh store over `out_dir` through the
/// peer wire codec, verifying each piece as its blocks arrive, then rechecks the result.
fn transfer(meta: &Metainfo, seed_dir: &Path, out_dir: &Path) -> Result<(), Box<dyn Error>> {
    let layout = Layout::new(meta)?;
    let seeder = FileBackend::new(seed_dir, &layout, FileBackendOptions::default())?;
    let leecher = FileBackend::new(out_dir, &layout, FileBackendOptions::default())?;
    let verifier = Verifier::new(meta, &layout);
    let piece_length = u32::try_from(meta.piece_length())?;
    let decoder =
        MessageDecoder::new(Limits::default().for_torrent(layout.total_length(), piece_length));

    let started = Instant::now();
    let mut wire = BytesMut::new();
    let (mut messages, mut bytes) = (0u64, 0u64);
    for piece in 0..layout.num_pieces() {
        // The seeder side: read the piece and frame it as `piece` messages.
        let data = Bytes::from(read_piece(&seeder, &layout, piece)?);
        for begin in (0..data.len()).step_by(BLOCK) {
            let block = data.slice(begin..(begin + BLOCK).min(data.len()));
            let begin = u32::try_from(begin)?;
            Message::Piece {
                index: piece,
                begin,
                data: block,
            }
            .encode(&mut wire);
        }
        // The downloader side: decode (zero-copy), hash as blocks arrive, write.
        let mut hasher = PieceHasher::new(&verifier, piece);
        while let Some(msg) = decoder.decode(&mut wire)? {
            if let Message::Piece { index, begin, data } = msg {
                hasher.update(u64::from(begin), &data)?;
                write_block(&leecher, &layout, index, begin, &data)?;
                messages += 1;
                bytes += data.len() as u64;
            }
        }
        match hasher.finish() {
            PieceVerdict::Ok => {}
            verdict => return Err(format!("piece {piece}: {verdict}").into()),
        }
    }
    let moved = started.elapsed();

    let started = Instant::now();
    let report = recheck(meta, &layout, &leecher, &RecheckOptions::default())?;
    let checked = started.elapsed();
    if report.verified.count() != layout.num_pieces() {
        return Err(format!(
            "recheck verified {} of {} pieces",
            report.verified.count(),
            layout.num_pieces()
        )
        .into());
    }
    println!();
    println!(
        "transfer:     {messages} piece messages, {bytes} bytes through the wire codec into {}",
        out_dir.display()
    );
    println!(
        "              every piece verified as it arrived ({:.1} ms); recheck of {} pieces on all cores: {:.1} ms",
        moved.as_secs_f64() * 1e3,
        layout.num_pieces(),
        checked.as_secs_f64() * 1e3
    );
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
