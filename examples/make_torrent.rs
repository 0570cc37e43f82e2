//! Makes a `.torrent` from a file or directory and prints its magnet link.
//!
//! ```text
//! cargo run --release --example make_torrent -- <PATH> --out <FILE>
//!     [--v1 | --v2 | --hybrid] [--piece-length BYTES] [--tracker URL]... [--web-seed URL]...
//!     [--private] [--comment TEXT]
//! ```
//!
//! Hybrid by default. Each `--tracker` gets a tier of its own. On any error: a one-line
//! `error: …` on stderr and exit status 1.

use std::path::PathBuf;
use std::process::ExitCode;

use tessera::metainfo::{TorrentBuilder, TorrentVersion};

const USAGE: &str = "usage: make_torrent <PATH> --out <FILE> [--v1 | --v2 | --hybrid] \
                     [--piece-length BYTES] [--tracker URL]... [--web-seed URL]... [--private] \
                     [--comment TEXT]";

struct Args {
    path: PathBuf,
    out: PathBuf,
    version: TorrentVersion,
    piece_length: Option<u64>,
    trackers: Vec<String>,
    web_seeds: Vec<String>,
    private: bool,
    comment: Option<String>,
}

fn set_version(v: TorrentVersion, version: &mut Option<TorrentVersion>) -> Result<(), String> {
    if version.is_some_and(|old| old != v) {
        return Err("--v1, --v2 and --hybrid exclude each other".to_string());
    }
    *version = Some(v);
    Ok(())
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut path = None;
    let mut out = None;
    let mut version = None;
    let mut piece_length = None;
    let mut trackers = Vec::new();
    let mut web_seeds = Vec::new();
    let mut private = false;
    let mut comment = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--v1" => set_version(TorrentVersion::V1, &mut version)?,
            "--v2" => set_version(TorrentVersion::V2, &mut version)?,
            "--hybrid" => set_version(TorrentVersion::Hybrid, &mut version)?,
            "--piece-length" => {
                let v = value("--piece-length")?;
                let n = v
                    .parse::<u64>()
                    .map_err(|_| format!("--piece-length: not a number of bytes: {v:?}"))?;
                piece_length = Some(n);
            }
            "--tracker" => trackers.push(value("--tracker")?),
            "--web-seed" => web_seeds.push(value("--web-seed")?),
            "--private" => private = true,
            "--comment" => comment = Some(value("--comment")?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            s if s.starts_with('-') && s.len() > 1 => return Err(format!("unknown option {s}")),
            _ => {
                if path.is_some() {
                    return Err(format!("more than one PATH given ({arg:?}); {USAGE}"));
                }
                path = Some(PathBuf::from(arg));
            }
        }
    }
    Ok(Args {
        path: path.ok_or(format!("missing PATH; {USAGE}"))?,
        out: out.ok_or(format!("missing --out FILE; {USAGE}"))?,
        version: version.unwrap_or(TorrentVersion::Hybrid),
        piece_length,
        trackers,
        web_seeds,
        private,
        comment,
    })
}

fn run() -> Result<String, String> {
    let args = parse_args(std::env::args().skip(1))?;
    let mut builder = TorrentBuilder::new(&args.path)
        .version(args.version)
        .private(args.private);
    if let Some(pl) = args.piece_length {
        builder = builder.piece_length(pl);
    }
    for t in args.trackers {
        builder = builder.tracker(t);
    }
    for w in args.web_seeds {
        builder = builder.web_seed(w);
    }
    if let Some(c) = args.comment {
        builder = builder.comment(c);
    }
    let torrent = builder.build().map_err(|e| e.to_string())?;
    std::fs::write(&args.out, &torrent.bytes)
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    Ok(torrent.to_magnet().to_uri())
}

fn main() -> ExitCode {
    match run() {
        Ok(magnet) => {
            println!("{magnet}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One line, whatever the message holds.
            eprintln!("error: {}", e.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
