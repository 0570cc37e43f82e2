//! Torrent creation read back by the crate's own parser.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::path::Path;

use tessera_metainfo::{Magnet, Metainfo, TorrentBuilder, TorrentVersion};

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u64).wrapping_mul(2654435761) >> 9) as u8 ^ seed)
        .collect()
}

/// Relative paths and sizes, in the order the torrent must list them.
const TREE: &[(&str, usize)] = &[
    ("B", 3),
    ("a/b", 70_001),
    ("a/c/d", 16_384),
    ("a-c", 1),
    ("empty", 0),
    ("z/last", 33_333),
];

fn make_tree(root: &Path) {
    // Written in another order than the expected one.
    for (i, (p, len)) in TREE.iter().enumerate().rev() {
        let path = root.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data(*len, i as u8)).unwrap();
    }
}

#[test]
fn created_torrents_parse_back() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("content");
    make_tree(&root);
    let total: u64 = TREE.iter().map(|t| t.1 as u64).sum();
    for version in [
        TorrentVersion::V1,
        TorrentVersion::V2,
        TorrentVersion::Hybrid,
    ] {
        let t = TorrentBuilder::new(&root)
            .version(version)
            .piece_length(32 * 1024)
            .tracker("http://tracker.example/announce")
            .tracker_tier(["udp://a.example:1", "udp://b.example:2"])
            .web_seed("http://seed.example/files/")
            .private(true)
            .comment("test")
            .build()
            .unwrap();
        let meta = Metainfo::from_bytes(t.bytes.clone())
            .unwrap_or_else(|e| panic!("{version}: our own torrent does not parse: {e}"));
        assert_eq!(meta.info_hashes(), t.info_hashes, "{version}");
        assert_eq!(meta.version(), version);
        assert_eq!(meta.name(), "content");
        assert_eq!(meta.piece_length(), 32 * 1024);
        assert!(meta.is_private());
        assert_eq!(
            meta.trackers(),
            &[
                vec!["http://tracker.example/announce".to_string()],
                vec![
                    "udp://a.example:1".to_string(),
                    "udp://b.example:2".to_string()
                ]
            ]
        );
        assert_eq!(
            meta.web_seeds(),
            &["http://seed.example/files/".to_string()]
        );

        let real: Vec<(String, u64)> = meta
            .files()
            .iter()
            .filter(|f| !f.attributes.padding)
            .map(|f| (f.path.to_owned(), f.length))
            .collect();
        let expected: Vec<(String, u64)> = TREE
            .iter()
            .map(|(p, l)| (format!("content/{p}"), *l as u64))
            .collect();
        assert_eq!(real, expected, "{version}");
        let content: u64 = real.iter().map(|f| f.1).sum();
        assert_eq!(content, total);
        assert_eq!(t.total_length, total);
        let pads = meta.files().iter().filter(|f| f.attributes.padding).count();
        match version {
            TorrentVersion::V1 => assert_eq!(pads, 0),
            // Every non-empty file ends off a 32 KiB boundary (a/c/d is half a piece), and
            // the last one is padded too.
            _ => assert_eq!(pads, 5, "{version}"),
        }
        if version.has_v1() {
            assert_eq!(
                meta.total_length() % 32768 == 0,
                version == TorrentVersion::Hybrid
            );
        }

        let from_meta = Magnet::from_metainfo(&meta);
        assert_eq!(from_meta, t.to_magnet(), "{version}");
        assert_eq!(Magnet::parse(&from_meta.to_uri()).unwrap(), from_meta);
    }
}

#[test]
fn single_file_hybrid_is_not_padded() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("one.bin");
    fs::write(&f, data(100_000, 3)).unwrap();
    let t = TorrentBuilder::new(&f)
        .piece_length(16 * 1024)
        .build()
        .unwrap();
    let meta = Metainfo::from_bytes(t.bytes.clone()).unwrap();
    assert_eq!(meta.version(), TorrentVersion::Hybrid);
    assert_eq!(meta.files().len(), 1);
    assert_eq!(meta.files().get(0).unwrap().path, "one.bin");
    assert_eq!(meta.total_length(), 100_000);
    assert_eq!(meta.num_pieces(), 7);
}

#[test]
fn creation_date_and_creator_are_optional() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x");
    fs::write(&f, b"hello").unwrap();
    let plain = TorrentBuilder::new(&f).created_by(None).build().unwrap();
    let dated = TorrentBuilder::new(&f)
        .created_by(None)
        .creation_date(Some(1_600_000_000))
        .build()
        .unwrap();
    assert_ne!(plain.bytes, dated.bytes);
    // Fields outside the info dictionary leave the info hashes alone.
    assert_eq!(plain.info_hashes, dated.info_hashes);
    assert!(!plain.bytes.windows(10).any(|w| w == b"created by"));
}
