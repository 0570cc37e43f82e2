//! Every file of libtorrent's test corpus gets the verdict libtorrent gives it: parsed with the
//! same info hashes, or rejected for the same reason.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(unreachable_pub)]
mod common;

use tessera_metainfo::{Metainfo, TorrentVersion};

struct Row {
    file: String,
    expect: String,
    v1: String,
    v2: String,
    reason: String,
}

fn rows() -> Option<(std::path::PathBuf, Vec<Row>)> {
    let Some(dir) = common::corpus_dir() else {
        assert!(
            !common::required(),
            "TESSERA_REQUIRE_LIBTORRENT=1 but the corpus is missing"
        );
        eprintln!("skipping: ../shared/corpus/libtorrent-test-torrents is not there");
        return None;
    };
    let tsv = std::fs::read_to_string(dir.join("EXPECTED.tsv")).expect("EXPECTED.tsv");
    let rows = tsv
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "bad row {l:?}");
            Row {
                file: f[0].into(),
                expect: f[1].into(),
                v1: f[2].into(),
                v2: f[3].into(),
                reason: f[4].into(),
            }
        })
        .collect();
    Some((dir, rows))
}

#[test]
fn corpus_verdicts_match_libtorrent() {
    let Some((dir, rows)) = rows() else { return };
    assert!(rows.len() > 100, "corpus has only {} rows", rows.len());
    let mut failures = Vec::new();
    for row in &rows {
        let data = std::fs::read(dir.join(&row.file)).expect("read torrent");
        let got = Metainfo::from_bytes(data);
        match (row.expect.as_str(), got) {
            ("parse", Ok(m)) => {
                let ih = m.info_hashes();
                let v1 = ih.v1.map_or("-".to_string(), |h| h.to_hex());
                let v2 = ih.v2.map_or("-".to_string(), |h| h.to_hex());
                if v1 != row.v1 || v2 != row.v2 {
                    failures.push(format!(
                        "{}: hashes {v1} {v2}, expected {} {}",
                        row.file, row.v1, row.v2
                    ));
                }
                let want = match (row.v1 != "-", row.v2 != "-") {
                    (true, true) => TorrentVersion::Hybrid,
                    (false, true) => TorrentVersion::V2,
                    _ => TorrentVersion::V1,
                };
                if m.version() != want {
                    failures.push(format!("{}: version {}", row.file, m.version()));
                }
            }
            ("parse", Err(e)) => failures.push(format!("{}: rejected: {e}", row.file)),
            ("reject", Ok(_)) => {
                failures.push(format!("{}: parsed, expected {}", row.file, row.reason))
            }
            ("reject", Err(e)) => {
                if e.reason_class() != row.reason {
                    failures.push(format!(
                        "{}: {} ({e}), expected {}",
                        row.file,
                        e.reason_class(),
                        row.reason
                    ));
                }
            }
            (other, _) => failures.push(format!("{}: unknown verdict {other}", row.file)),
        }
    }
    eprintln!(
        "{} of {} corpus files match libtorrent",
        rows.len() - failures.len(),
        rows.len()
    );
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

#[test]
fn corpus_parses_round_trip() {
    let Some((dir, rows)) = rows() else { return };
    for row in rows.iter().filter(|r| r.expect == "parse") {
        let data = std::fs::read(dir.join(&row.file)).expect("read torrent");
        let m = Metainfo::from_bytes(data).expect("parses");
        let again = Metainfo::from_bytes(m.to_bytes()).expect("round trip parses");
        assert_eq!(again.info_hashes(), m.info_hashes(), "{}", row.file);
        assert_eq!(again.files(), m.files(), "{}", row.file);
        assert_eq!(again.trackers(), m.trackers(), "{}", row.file);
        assert_eq!(again.info_bytes(), m.info_bytes(), "{}", row.file);
        tessera_metainfo::fuzzing::parse_metainfo(m.as_bytes());
    }
}

#[test]
fn piece_layers_are_trusted_only_when_they_reduce_to_the_root() {
    let Some((dir, _)) = rows() else { return };
    let load = |name: &str| Metainfo::from_bytes(std::fs::read(dir.join(name)).expect(name));
    // A good multi-piece file: its layer is kept and reduces to the file's root.
    let good = load("v2_multipiece_file.torrent").expect("parses");
    let f = &good.files().get(0).unwrap();
    let layer = good.piece_layer(0).expect("verified layer kept");
    assert!(tessera_metainfo::merkle::verify_piece_layer(
        layer,
        good.piece_length(),
        f.length,
        &f.pieces_root.expect("root")
    ));
    // 16 KiB pieces whose layer does not match the root: libtorrent's verdict is "parse", but
    // the layer must not be handed out as trustworthy.
    let bad = load("v2_invalid_root_hash.torrent").expect("parses like libtorrent");
    assert!(bad.files().get(0).unwrap().length > bad.piece_length());
    assert_eq!(bad.piece_layer(0), None);
}
