//! Tessera's main demo, on embedded defaults: no arguments, nothing to set up.
//!
//! ```text
//! cargo run --release --example demo
//! ```
//!
//! It makes sample content in a temporary directory, creates a hybrid (v1 + v2) torrent from it
//! with hashing on all cores, reads the torrent back, checks that what it reads is what it wrote,
//! and prints the summary and the magnet link. Then it runs a swarm on 127.0.0.1: a seeder
//! serving the content and two downloaders of our own that fetch it from the seeder and from
//! each other over TCP, verifying every piece (SHA-1 and SHA-256 merkle) before writing it,
//! with a progress line and a summary, and finally a parallel recheck of what landed on disk.
//! Later capabilities (the DHT, payments) extend this same demo.

use std::error::Error;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera::metainfo::{Magnet, Metainfo, TorrentBuilder, TorrentVersion};
use tessera::store::{recheck, Bitfield, FileBackend, FileBackendOptions, Layout, RecheckOptions};
use tessera::swarm::driver::{default_resume_path, open_dir, Driver, DriverConfig, Storage};
use tessera::swarm::{Session, SessionConfig};

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

    swarm(meta, tmp.path(), tmp.path())?;
    Ok(())
}

/// Seeds the content from `seed_dir` on 127.0.0.1 and downloads it with two peers of our own
/// into fresh directories: each asks the seeder, the second the first one as well, and PEX
/// tells them about any peer they missed. Then rechecks what landed on disk.
fn swarm(meta: Metainfo, seed_dir: &Path, work: &Path) -> Result<(), Box<dyn Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let meta = Arc::new(meta);
        let layout = Layout::new(&meta)?;
        let localhost = SocketAddr::from(([127, 0, 0, 1], 0));

        // The seeder checks its data first, as the `seed` example does.
        let (have, storage) = open_dir(&meta, &layout, seed_dir, None, true)?;
        if !have.is_full() {
            return Err(format!("seeder verified {}/{} pieces", have.count(), have.len()).into());
        }
        let seeder = start(&meta, &have, storage)?;
        let seed_addr = seeder.listen(localhost).await?;
        println!();
        println!("seeder:       listening on {seed_addr}, {} pieces verified", have.count());

        let started = Instant::now();
        let mut downloaders = Vec::new();
        let mut addrs = Vec::new();
        for name in ["peer-a", "peer-b"] {
            let dir = work.join(name);
            let resume = default_resume_path(&dir, &meta);
            let (have, storage) = open_dir(&meta, &layout, &dir, Some(&resume), false)?;
            let driver = start(&meta, &have, storage)?;
            let addr = driver.listen(localhost).await?;
            driver.connect(seed_addr);
            for other in &addrs {
                driver.connect(*other);
            }
            println!("{name}:       listening on {addr}, have {}/{} pieces", have.count(), have.len());
            addrs.push(addr);
            downloaders.push((name, dir, driver));
        }

        let total = u64::from(layout.num_pieces());
        loop {
            let line: Vec<String> = downloaders
                .iter()
                .map(|(name, _, d)| {
                    let p = d.progress();
                    format!("{name} {:>3}/{total} pieces {:>2} peers", p.pieces, p.peers)
                })
                .collect();
            print!("\r              {}", line.join("   "));
            let _ = std::io::Write::flush(&mut std::io::stdout());
            if downloaders.iter().all(|(_, _, d)| d.progress().pieces == layout.num_pieces()) {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err("the download did not finish within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!();
        for (_, _, d) in &downloaders {
            d.finished().await?;
        }
        let elapsed = started.elapsed();

        println!();
        for (name, dir, d) in &downloaders {
            let p = d.progress();
            let report = recheck(&meta, &layout, &FileBackend::new(dir, &layout, FileBackendOptions::default())?, &RecheckOptions::default())?;
            if !report.verified.is_full() {
                return Err(format!("{name}: recheck verified {}/{} pieces", report.verified.count(), total).into());
            }
            println!(
                "{name}:       downloaded {} bytes, uploaded {} bytes, {} peers met, {} pieces verified ({} on recheck), {} hash failures",
                p.downloaded, p.uploaded, p.peers_seen, p.pieces, report.verified.count(), p.hash_failures
            );
        }
        let sp = seeder.progress();
        println!("seeder:       uploaded {} bytes to {} peers", sp.uploaded, sp.peers_seen);
        let bytes: u64 = downloaders.iter().map(|(_, _, d)| d.progress().downloaded).sum();
        println!(
            "swarm:        {bytes} bytes in {:.1} ms over TCP on 127.0.0.1 ({:.0} MB/s)",
            elapsed.as_secs_f64() * 1e3,
            bytes as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6
        );
        for (_, _, d) in &downloaders {
            d.shutdown();
        }
        seeder.shutdown();
        Ok(())
    })
}

/// A driver for `meta` over `storage`, with `have` already verified.
fn start(
    meta: &Arc<Metainfo>,
    have: &Bitfield,
    storage: Storage,
) -> Result<Driver, Box<dyn Error>> {
    let session = Session::new(
        Arc::clone(meta),
        have,
        SessionConfig::default(),
        Instant::now(),
    )?;
    Ok(Driver::start(
        session,
        storage.into_opener(),
        DriverConfig::default(),
    )?)
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
