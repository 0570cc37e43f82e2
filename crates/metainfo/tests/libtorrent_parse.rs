//! Field-by-field comparison with libtorrent (Debian's python3-libtorrent): for every corpus
//! file libtorrent loads, the name, piece geometry, file paths, sizes, offsets, padding flags,
//! trackers, web seeds and private flag must be the same.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(unreachable_pub)]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use tessera_metainfo::Metainfo;

/// Prints one record per torrent, fields separated by tabs, records by a line `--`. Lists are
/// encoded as `\x1f`-separated items; strings are escaped with Python's `repr` of their UTF-8
/// bytes so that any byte survives.
const SCRIPT: &str = r#"
import sys
import libtorrent as lt

def s(x):
    return x.encode('utf-8', 'surrogateescape').hex()

for path in sys.argv[1:]:
    name = path.rsplit('/', 1)[-1]
    try:
        ti = lt.torrent_info(path)
    except Exception as e:
        print('file', name)
        print('error', s(str(e)))
        print('--')
        continue
    fs = ti.files()
    print('file', name)
    print('name', s(ti.name()))
    print('piece_length', ti.piece_length())
    print('num_pieces', ti.num_pieces())
    print('total_size', ti.total_size())
    print('num_files', fs.num_files())
    for i in range(fs.num_files()):
        pad = 1 if fs.file_flags(i) & lt.file_storage.flag_pad_file else 0
        print('f', s(fs.file_path(i).replace('\\', '/')), fs.file_size(i), fs.file_offset(i), pad)
    tiers = {}
    for t in ti.trackers():
        tiers.setdefault(t.tier, []).append(t.url)
    for k in sorted(tiers):
        print('tier', ' '.join(s(u) for u in tiers[k]))
    for w in ti.web_seeds():
        print('url_seed' if w['type'] == 0 else 'http_seed', s(w['url']))
    print('private', 1 if ti.priv() else 0)
    print('--')
"#;

fn unhex(h: &str) -> String {
    let bytes: Vec<u8> = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The same report, built from our parse.
fn ours(m: &Metainfo) -> Vec<String> {
    let mut out = vec![
        format!("name {}", m.name()),
        format!("piece_length {}", m.piece_length()),
        format!("num_pieces {}", m.num_pieces()),
        format!("total_size {}", m.total_length()),
        format!("num_files {}", m.files().len()),
    ];
    for f in m.files() {
        out.push(format!(
            "f {} {} {} {}",
            f.path,
            f.length,
            f.offset,
            u8::from(f.attributes.padding)
        ));
    }
    for t in m.trackers() {
        let mut t = t.clone();
        t.sort();
        out.push(format!("tier {}", t.join(" ")));
    }
    for u in m.web_seeds() {
        out.push(format!("url_seed {u}"));
    }
    for u in m.http_seeds() {
        out.push(format!("http_seed {u}"));
    }
    out.push(format!("private {}", u8::from(m.is_private())));
    out
}

/// libtorrent's report, normalised like ours: tiers sorted within (libtorrent shuffles them),
/// repeated tracker URLs and empty tiers dropped.
fn theirs(lines: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen_urls = std::collections::HashSet::new();
    for l in lines {
        let (key, rest) = l.split_once(' ').unwrap_or((l, ""));
        match key {
            "name" => out.push(format!("name {}", unhex(rest))),
            "f" => {
                let mut it = rest.split(' ');
                let p = unhex(it.next().expect("path"));
                let rest: Vec<&str> = it.collect();
                out.push(format!("f {p} {}", rest.join(" ")));
            }
            "tier" => {
                let mut urls: Vec<String> = rest
                    .split(' ')
                    .filter(|u| !u.is_empty())
                    .map(unhex)
                    .filter(|u| seen_urls.insert(u.clone()))
                    .collect();
                urls.sort();
                if !urls.is_empty() {
                    out.push(format!("tier {}", urls.join(" ")));
                }
            }
            "url_seed" | "http_seed" => out.push(format!("{key} {}", unhex(rest))),
            _ => out.push(l.to_string()),
        }
    }
    // Web seeds: libtorrent lists url seeds before http seeds, as we do.
    out
}

#[test]
fn fields_match_libtorrent() {
    let Some(dir) = common::corpus_dir() else {
        assert!(!common::required(), "corpus missing");
        eprintln!("skipping: corpus is not there");
        return;
    };
    if !common::libtorrent_available() {
        return;
    }
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".torrent"))
        .collect();
    files.sort();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let report = common::run_python(SCRIPT, &args, Duration::from_secs(120));

    let mut records: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut cur: Option<String> = None;
    for line in report.lines() {
        if let Some(name) = line.strip_prefix("file ") {
            cur = Some(name.to_string());
            records.insert(name.to_string(), Vec::new());
        } else if line == "--" {
            cur = None;
        } else if let Some(c) = &cur {
            records.get_mut(c).expect("record").push(line);
        }
    }
    assert_eq!(records.len(), files.len(), "one record per torrent");

    let mut compared = 0;
    let mut failures = Vec::new();
    for (name, lines) in &records {
        if lines.first().is_some_and(|l| l.starts_with("error ")) {
            continue;
        }
        let data = std::fs::read(dir.join(name)).expect("read");
        let m = match Metainfo::from_bytes(data) {
            Ok(m) => m,
            Err(e) => {
                // The corpus verdicts come from a newer libtorrent than the installed one;
                // corpus.rs checks those. Only files both accept are compared here.
                eprintln!("{name}: libtorrent 2.0 loads it, we reject it: {e}");
                continue;
            }
        };
        compared += 1;
        let ours = ours(&m);
        let theirs = theirs(lines);
        if ours != theirs {
            let diff: Vec<String> = ours
                .iter()
                .zip(theirs.iter())
                .filter(|(a, b)| a != b)
                .take(3)
                .map(|(a, b)| format!("  ours:   {a}\n  theirs: {b}"))
                .collect();
            failures.push(format!(
                "{name} ({} vs {} lines):\n{}",
                ours.len(),
                theirs.len(),
                diff.join("\n")
            ));
        }
    }
    eprintln!("compared {compared} torrents field by field with libtorrent");
    assert!(compared > 60, "only {compared} torrents compared");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
