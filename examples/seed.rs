//! Checks a torrent's data in a directory and serves it to peers until SIGINT or SIGTERM.
//!
//! ```text
//! cargo run --release --example seed -- <FILE.torrent> --data <DIR> --listen <IP:PORT> \
//!     [--dht-bootstrap HOST:PORT]...
//! ```
//!
//! DIR has the layout libtorrent's `save_path` has: the file itself for a single-file torrent,
//! `DIR/<name>/…` for a multi-file one. Once the data is checked it prints
//! `listening on IP:PORT` (the real port when 0 was asked for). With `--dht-bootstrap` it joins
//! the Mainline DHT through those nodes (its UDP socket on the listen address) and announces
//! the torrent there every minute, printing `dht: announced to N nodes` after the first.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera::dht::driver::Dht;
use tessera::dht::{Id, NodeConfig};
use tessera::metainfo::Metainfo;
use tessera::store::Layout;
use tessera::swarm::driver::{open_dir, Driver, DriverConfig};
use tessera::swarm::{Session, SessionConfig};

struct Args {
    torrent: PathBuf,
    data: PathBuf,
    listen: SocketAddr,
    dht_bootstrap: Vec<String>,
}

fn usage() -> String {
    "usage: seed <FILE.torrent> --data <DIR> --listen <IP:PORT> [--dht-bootstrap HOST:PORT]..."
        .into()
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut torrent, mut data, mut listen) = (None, None, None);
    let mut dht_bootstrap = Vec::new();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--data" => data = Some(PathBuf::from(it.next().ok_or_else(usage)?)),
            "--listen" => {
                let v = it.next().ok_or_else(usage)?;
                listen = Some(v.parse().map_err(|_| format!("bad listen address {v:?}"))?);
            }
            "--dht-bootstrap" => dht_bootstrap.push(it.next().ok_or_else(usage)?),
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
        dht_bootstrap,
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
    let hashes: Vec<Id> = meta.info_hashes().swarm_hashes().map(|h| Id(h.0)).collect();
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
    if !args.dht_bootstrap.is_empty() {
        let mut boot = Vec::new();
        for name in &args.dht_bootstrap {
            if let Ok(addrs) = tokio::net::lookup_host(name.as_str()).await {
                boot.extend(addrs);
            }
        }
        let mut config = NodeConfig::default();
        config.routing.restrict_ips = false;
        config.lookup.restrict_ips = false;
        config.seed = std::process::id().into();
        // The DHT shares the listen port over UDP when it can, as libtorrent's does.
        let dht = match Dht::bind(local, config.clone()).await {
            Ok(dht) => dht,
            Err(_) => Dht::bind(SocketAddr::new(local.ip(), 0), config)
                .await
                .map_err(|e| format!("DHT socket: {e}"))?,
        };
        dht.bootstrap(boot).await.map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            dht.wait_for_contacts(1, Duration::from_secs(5)).await;
            let mut first = true;
            loop {
                let mut n = 0;
                for h in &hashes {
                    n += dht
                        .announce(*h, Some(local.port()), true)
                        .await
                        .unwrap_or(0);
                }
                if first || n == 0 {
                    println!("dht: announced to {n} nodes");
                    first = false;
                }
                tokio::time::sleep(Duration::from_secs(if n == 0 { 5 } else { 60 })).await;
            }
        });
    }

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
