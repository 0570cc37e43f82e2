//! Checks a torrent's data in a directory and serves it to peers until SIGINT or SIGTERM.
//!
//! ```text
//! cargo run --release --example seed -- <FILE.torrent> --data <DIR> --listen <IP:PORT>
//! ```
//!
//! DIR has the layout libtorrent's `save_path` has: the file itself for a single-file torrent,
//! `DIR/<name>/…` for a multi-file one. Once the data is checked it prints
//! `listening on IP:PORT` (the real port when 0 was asked for).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use tessera::metainfo::Metainfo;
use tessera::store::Layout;
use tessera::swarm::driver::{open_dir, Driver, DriverConfig};
use tessera::swarm::{Session, SessionConfig};

struct Args {
    torrent: PathBuf,
    data: PathBuf,
    listen: SocketAddr,
}

fn usage() -> String {
    "usage: seed <FILE.torrent> --data <DIR> --listen <IP:PORT>".into()
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut torrent, mut data, mut listen) = (None, None, None);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--data" => data = Some(PathBuf::from(it.next().ok_or_else(usage)?)),
            "--listen" => {
                let v = it.next().ok_or_else(usage)?;
                listen = Some(v.parse().map_err(|_| format!("bad listen address {v:?}"))?);
            }
            "-h" | "--help" => return Err(usage()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{}", usage())),
            _ if torrent.is_none() => torrent = Some(PathBuf::from(a)),
            _ => return Err(usage()),
        }
    }
    Ok(Args {
        torrent: torrent.ok_or_else(usage)?,
        data: data.ok_or_else(usage)?,
        listen: listen.ok_or_else(usage)?,
    })
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(run(args))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let bytes =
        std::fs::read(&args.torrent).map_err(|e| format!("{}: {e}", args.torrent.display()))?;
    let meta = Arc::new(Metainfo::from_bytes(bytes).map_err(|e| e.to_string())?);
    let layout = Layout::new(&meta).map_err(|e| e.to_string())?;
    let started = Instant::now();
    // A seed checks everything: the data may have been put there by anyone.
    let (have, storage) =
        open_dir(&meta, &layout, &args.data, None, true).map_err(|e| e.to_string())?;
    println!(
        "checked {}/{} pieces in {:.3} s",
        have.count(),
        have.len(),
        started.elapsed().as_secs_f64()
    );
    if have.count() < have.len() {
        eprintln!("warning: the data is incomplete; serving the verified pieces only");
    }
    let mut config = SessionConfig::default();
    config.listen_port = Some(args.listen.port());
    let session = Session::new(meta, &have, config, Instant::now()).map_err(|e| e.to_string())?;
    let driver = Driver::start(session, storage.into_opener(), DriverConfig::default())
        .map_err(|e| e.to_string())?;
    let local = driver
        .listen(args.listen)
        .await
        .map_err(|e| format!("listen on {}: {e}", args.listen))?;
    println!("listening on {local}");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let p = driver.progress();
    driver.shutdown();
    println!("uploaded {} bytes to {} peers", p.uploaded, p.peers_seen);
    Ok(())
}
