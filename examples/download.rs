//! Downloads a torrent from peers into a directory, verifying every piece, and exits.
//!
//! ```text
//! cargo run --release --example download -- <FILE.torrent | MAGNET-URI> --out <DIR> \
//!     [--peer IP:PORT]... [--listen IP:PORT] [--dht-bootstrap HOST:PORT]... [--quiet]
//! ```
//!
//! Peers come from `--peer`, from the magnet link's `x.pe`, and from the Mainline DHT: the DHT
//! is used when `--dht-bootstrap` names a node to join through, or when neither a peer nor
//! `--listen` is given (a bare magnet link), joining through the well-known public routers.
//!
//! It first prints `have N/M pieces` — what is already verified in DIR (from its resume record,
//! or by checking the files) — then a progress bar unless `--quiet`. Once every piece is
//! verified and written it syncs the files and records them in its resume record
//! (`flushed to disk in SECONDS s`), and prints last `downloaded BYTES in SECONDS s`: the
//! payload bytes received and the time from the start until every piece was verified and
//! written (the flush is timed apart). Killed and run again, it resumes. On failure it prints
//! `error: …` and exits 1.
//!
//! For a magnet link, the metadata is kept in `DIR/.tessera/<hash>.torrent` as soon as it
//! has arrived (for v2, with the piece layers), so that a run killed after that resumes like
//! one started from a .torrent file: `have N/M pieces` at once, without asking peers for the
//! metadata again.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tessera::dht::driver::Dht;
use tessera::dht::{Node, NodeConfig};
use tessera::metainfo::{Magnet, Metainfo};
use tessera::store::{FileBackend, Layout, ResumeData, ResumeWriter};
use tessera::swarm::driver::{
    create_empty_files, default_resume_path, load_metadata, metadata_path, open_dir, save_metadata,
    Driver, DriverConfig, Storage,
};
use tessera::swarm::{Session, SessionConfig};

/// The download stops with an error when nothing arrives for this long.
const STALL_TIMEOUT: Duration = Duration::from_secs(120);

struct Args {
    source: String,
    out: PathBuf,
    peers: Vec<SocketAddr>,
    listen: Option<SocketAddr>,
    dht_bootstrap: Vec<String>,
    quiet: bool,
}

/// Public DHT routers, used when a download has no other way to find peers.
const DHT_ROUTERS: &[&str] = &[
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
];

fn usage() -> String {
    "usage: download <FILE.torrent | MAGNET-URI> --out <DIR> [--peer IP:PORT]... [--listen IP:PORT] [--dht-bootstrap HOST:PORT]... [--quiet]".into()
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut source = None;
    let mut out = None;
    let mut peers = Vec::new();
    let mut listen = None;
    let mut dht_bootstrap = Vec::new();
    let mut quiet = false;
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = Some(PathBuf::from(it.next().ok_or_else(usage)?)),
            "--peer" => {
                let v = it.next().ok_or_else(usage)?;
                peers.push(v.parse().map_err(|_| format!("bad peer address {v:?}"))?);
            }
            "--dht-bootstrap" => dht_bootstrap.push(it.next().ok_or_else(usage)?),
            "--listen" => {
                let v = it.next().ok_or_else(usage)?;
                listen = Some(v.parse().map_err(|_| format!("bad listen address {v:?}"))?);
            }
            "--quiet" => quiet = true,
            "-h" | "--help" => return Err(usage()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{}", usage())),
            _ if source.is_none() => source = Some(a),
            _ => return Err(usage()),
        }
    }
    Ok(Args {
        source: source.ok_or_else(usage)?,
        out: out.ok_or_else(usage)?,
        peers,
        listen,
        dht_bootstrap,
        quiet,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where the DHT's known nodes are kept between runs, so that a restart bootstraps from the
/// nodes it knew.
fn dht_state_path(out: &std::path::Path) -> PathBuf {
    out.join(".tessera").join("dht-nodes")
}

/// Joins the DHT (through the nodes known from the last run, `--dht-bootstrap`, or the public
/// routers) and lets the swarm find peers there, announcing our listen port if we have one.
async fn start_dht(driver: &Driver, args: &Args) -> Result<Dht, String> {
    let names: Vec<String> = if args.dht_bootstrap.is_empty() {
        DHT_ROUTERS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        args.dht_bootstrap.clone()
    };
    let saved = std::fs::read(dht_state_path(&args.out))
        .ok()
        .and_then(|bytes| Node::load(&bytes));
    let mut boot: Vec<SocketAddr> = saved
        .iter()
        .flat_map(|(_, contacts)| contacts.iter().map(|c| c.addr))
        .take(64)
        .collect();
    for name in &names {
        if let Ok(addrs) = tokio::net::lookup_host(name.as_str()).await {
            boot.extend(addrs.filter(SocketAddr::is_ipv4));
        }
    }
    if boot.is_empty() {
        return Err(format!(
            "no peers to download from: give --peer IP:PORT, or a DHT node with --dht-bootstrap \
             ({} did not resolve)",
            names.join(", ")
        ));
    }
    let bind = SocketAddr::new(args.listen.map_or([0, 0, 0, 0].into(), |a| a.ip()), 0);
    let mut config = NodeConfig::default();
    // Loopback and private addresses may share an IP (tests, LANs); public ones may not.
    config.routing.restrict_ips = false;
    config.lookup.restrict_ips = false;
    config.seed = std::process::id().into();
    // A fresh id each run: our UDP port is new each time, and nodes that knew the old
    // (id, address) pair would refuse the id at a new address until the old entry fails out.
    let dht = Dht::bind(bind, config)
        .await
        .map_err(|e| format!("DHT socket on {bind}: {e}"))?;
    dht.bootstrap(boot).await.map_err(|e| e.to_string())?;
    driver.discover_with_dht(
        dht.clone(),
        args.listen.map(|a| a.port()),
        Duration::from_secs(10),
    );
    Ok(dht)
}

/// Keeps the DHT's id and nodes for the next run (best effort).
async fn save_dht(dht: &Dht, out: &std::path::Path) {
    if let Ok(bytes) = dht.save().await {
        let path = dht_state_path(out);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(path, bytes);
    }
}

/// A torrent known in full (a .torrent file, or a magnet link's metadata kept by an earlier
/// run): what DIR already holds is found (`have N/M pieces`) and the download starts from it.
fn known_torrent(
    meta: Arc<Metainfo>,
    out: &std::path::Path,
    config: SessionConfig,
    now: Instant,
) -> Result<(Session, tessera::swarm::driver::OpenStorage), String> {
    let layout = Layout::new(&meta).map_err(|e| e.to_string())?;
    let resume = default_resume_path(out, &meta);
    let (have, storage) =
        open_dir(&meta, &layout, out, Some(&resume), false).map_err(|e| e.to_string())?;
    println!("have {}/{} pieces", have.count(), have.len());
    let session = Session::new(meta, &have, config, now).map_err(|e| e.to_string())?;
    Ok((session, storage.into_opener()))
}

async fn run(args: Args) -> Result<(), String> {
    let mut config = SessionConfig::default();
    config.listen_port = args.listen.map(|a| a.port());
    let mut peers = args.peers.clone();
    let now = Instant::now();
    let out = args.out.clone();
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;

    // A magnet link whose metadata an earlier run received and kept is a known torrent.
    let magnet = if args.source.starts_with("magnet:") {
        let magnet = Magnet::parse(&args.source).map_err(|e| e.to_string())?;
        peers.extend(
            magnet
                .peers
                .iter()
                .filter_map(|p| p.parse::<SocketAddr>().ok()),
        );
        let cached = metadata_path(&out, &magnet.info_hashes);
        let known = load_metadata(&cached, &magnet.info_hashes);
        Some((magnet, cached, known))
    } else {
        None
    };
    let (session, open): (Session, tessera::swarm::driver::OpenStorage) = match magnet {
        Some((magnet, cached, None)) => {
            let session =
                Session::from_magnet(magnet.info_hashes, config, now).map_err(|e| e.to_string())?;
            let out = out.clone();
            let open: tessera::swarm::driver::OpenStorage =
                Box::new(move |meta: &Arc<Metainfo>, layout: &Arc<Layout>| {
                    // Kept first, so that a run killed from here on resumes as from a .torrent.
                    save_metadata(&cached, meta)?;
                    let backend =
                        FileBackend::new(&out, layout, tessera::swarm::driver::backend_options())?;
                    create_empty_files(&backend, layout)?;
                    let path = default_resume_path(&out, meta);
                    if let Some(parent) = path.parent() {
                        let _ = std::fs::create_dir_all(parent);
                    }
                    Ok(Storage {
                        backend: Arc::new(backend),
                        resume: Some(ResumeWriter::new(path, ResumeData::new(meta, layout))),
                    })
                });
            (session, open)
        }
        Some((_, _, Some(meta))) => known_torrent(Arc::new(meta), &out, config, now)?,
        None => {
            let bytes = std::fs::read(&args.source).map_err(|e| format!("{}: {e}", args.source))?;
            let meta = Arc::new(Metainfo::from_bytes(bytes).map_err(|e| e.to_string())?);
            known_torrent(meta, &out, config, now)?
        }
    };
    let mut announced = session.metainfo().is_some();

    let driver =
        Driver::start(session, open, DriverConfig::default()).map_err(|e| e.to_string())?;
    if let Some(addr) = args.listen {
        driver
            .listen(addr)
            .await
            .map_err(|e| format!("listen on {addr}: {e}"))?;
    }
    let mut dht = None;
    if !args.dht_bootstrap.is_empty() || (peers.is_empty() && args.listen.is_none()) {
        dht = Some(start_dht(&driver, &args).await?);
    }
    for p in &peers {
        driver.connect(*p);
    }

    let started = Instant::now();
    let bar = (!args.quiet).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let mut last_bytes = 0;
    let mut last_change = Instant::now();
    let result = loop {
        tokio::select! {
            r = driver.finished() => break r.map_err(|e| e.to_string()),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                let p = driver.progress();
                if !announced && p.total_pieces > 0 {
                    // A magnet link: the size is known once the metadata has arrived.
                    announced = true;
                    println!("have 0/{} pieces", p.total_pieces);
                }
                if let (Some(bar), Some(meta)) = (&bar, driver.metainfo()) {
                    bar.set_length(meta.total_length());
                    let piece = meta.piece_length();
                    bar.set_position((u64::from(p.pieces) * piece).min(meta.total_length()));
                    bar.set_message(format!("{}/{} pieces, {} peers", p.pieces, p.total_pieces, p.peers));
                }
                if p.downloaded != last_bytes {
                    last_bytes = p.downloaded;
                    last_change = Instant::now();
                } else if last_change.elapsed() > STALL_TIMEOUT {
                    break Err(format!("no data from any peer for {} s", STALL_TIMEOUT.as_secs()));
                }
            }
            _ = tokio::signal::ctrl_c() => {
                let _ = driver.flush().await;
                break Err("interrupted".to_owned());
            }
        }
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Some(dht) = &dht {
        save_dht(dht, &out).await;
    }
    result?;
    let secs = started.elapsed().as_secs_f64();
    if !announced {
        println!("have 0/{} pieces", driver.progress().total_pieces);
    }
    // Everything is verified and written; make it durable and record it for a restart.
    let flush = Instant::now();
    driver.flush().await.map_err(|e| e.to_string())?;
    let flush = flush.elapsed().as_secs_f64();
    let p = driver.progress();
    driver.shutdown();
    println!("flushed to disk in {flush:.3} s");
    println!("downloaded {} in {secs:.3} s", p.downloaded);
    Ok(())
}
