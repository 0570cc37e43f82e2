//! Prints what a .torrent file or a magnet link holds.
//!
//! ```text
//! cargo run --release --example torrent_info -- <FILE.torrent | MAGNET-URI> [--json]
//! ```
//!
//! With `--json`, one JSON object: `version` ("v1" | "v2" | "hybrid" | "magnet"),
//! `info_hash_v1`, `info_hash_v2`, `name`, `piece_length`, `num_pieces`, `total_length`,
//! `files` (`path`, `length`, `padding`, in metainfo order, paths as libtorrent gives them),
//! `trackers` (tiers), `web_seeds`, `private`, `magnet`. What a magnet link does not carry is
//! null. Invalid input exits with status 1 and one `error: …` line on stderr.

use std::io::Read;
use std::process::ExitCode;

use serde::Serialize;
use tessera::metainfo::{Magnet, Metainfo};

/// Largest .torrent file read (libtorrent's default limit is 10 MB; leave room above it).
const MAX_TORRENT_BYTES: u64 = 64 << 20;

#[derive(Serialize)]
struct FileJson {
    path: String,
    length: u64,
    padding: bool,
}

#[derive(Serialize)]
struct Summary {
    version: &'static str,
    info_hash_v1: Option<String>,
    info_hash_v2: Option<String>,
    name: Option<String>,
    piece_length: Option<u64>,
    num_pieces: Option<usize>,
    total_length: Option<u64>,
    files: Option<Vec<FileJson>>,
    trackers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
    private: Option<bool>,
    magnet: String,
}

fn from_metainfo(m: &Metainfo) -> Summary {
    let hashes = m.info_hashes();
    Summary {
        version: m.version().as_str(),
        info_hash_v1: hashes.v1.map(|h| h.to_hex()),
        info_hash_v2: hashes.v2.map(|h| h.to_hex()),
        name: Some(m.name().to_owned()),
        piece_length: Some(m.piece_length()),
        num_pieces: Some(m.num_pieces()),
        total_length: Some(m.total_length()),
        files: Some(
            m.files()
                .iter()
                .map(|f| FileJson {
                    path: f.path.to_owned(),
                    length: f.length,
                    padding: f.attributes.padding,
                })
                .collect(),
        ),
        trackers: m.trackers().to_vec(),
        web_seeds: m.web_seeds().to_vec(),
        private: Some(m.is_private()),
        magnet: Magnet::from_metainfo(m).to_uri(),
    }
}

fn from_magnet(m: &Magnet) -> Summary {
    Summary {
        version: "magnet",
        info_hash_v1: m.info_hashes.v1.map(|h| h.to_hex()),
        info_hash_v2: m.info_hashes.v2.map(|h| h.to_hex()),
        name: m.name.clone(),
        piece_length: None,
        num_pieces: None,
        total_length: None,
        files: None,
        trackers: m.trackers.iter().map(|t| vec![t.clone()]).collect(),
        web_seeds: m.web_seeds.clone(),
        private: None,
        magnet: m.to_uri(),
    }
}

fn print_readable(s: &Summary) {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    println!("name:         {}", or_dash(s.name.clone()));
    println!("version:      {}", s.version);
    println!("info hash v1: {}", or_dash(s.info_hash_v1.clone()));
    println!("info hash v2: {}", or_dash(s.info_hash_v2.clone()));
    if let (Some(len), Some(pl), Some(n)) = (s.total_length, s.piece_length, s.num_pieces) {
        println!("size:         {len} bytes in {n} pieces of {pl} bytes");
    }
    if let Some(p) = s.private {
        println!("private:      {p}");
    }
    for (i, tier) in s.trackers.iter().enumerate() {
        println!("tracker tier {i}: {}", tier.join(" "));
    }
    for w in &s.web_seeds {
        println!("web seed:     {w}");
    }
    if let Some(files) = &s.files {
        println!("files:        {}", files.len());
        for f in files {
            let pad = if f.padding { "  (padding)" } else { "" };
            println!("  {:>14}  {}{pad}", f.length, f.path);
        }
    }
    println!("magnet:       {}", s.magnet);
}

fn run() -> Result<(), String> {
    let mut input = None;
    let mut json = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--json" => json = true,
            "-h" | "--help" => {
                println!("usage: torrent_info <FILE.torrent | MAGNET-URI> [--json]");
                return Ok(());
            }
            a if a.starts_with("--") => return Err(format!("unknown option {a}")),
            _ if input.is_some() => return Err("more than one input given".into()),
            _ => input = Some(arg),
        }
    }
    let input = input.ok_or("usage: torrent_info <FILE.torrent | MAGNET-URI> [--json]")?;
    let summary = if input.starts_with("magnet:") {
        let m = Magnet::parse(&input).map_err(|e| format!("invalid magnet link: {e}"))?;
        from_magnet(&m)
    } else {
        let file = std::fs::File::open(&input).map_err(|e| format!("{input}: {e}"))?;
        let mut bytes = Vec::new();
        file.take(MAX_TORRENT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{input}: {e}"))?;
        if bytes.len() as u64 > MAX_TORRENT_BYTES {
            return Err(format!("{input}: larger than {MAX_TORRENT_BYTES} bytes"));
        }
        let m = Metainfo::from_bytes(bytes).map_err(|e| format!("{input}: {e}"))?;
        from_metainfo(&m)
    };
    if json {
        let text = serde_json::to_string(&summary).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print_readable(&summary);
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
