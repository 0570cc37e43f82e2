//! Hand-built v1, v2 and hybrid torrents, error cases, round trips, and mutation fuzzing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use sha1::{Digest, Sha1};
use tessera_bencode::Value;
use tessera_metainfo::merkle::MerkleTree;
use tessera_metainfo::{Error, Metainfo, ParseOptions, Sha256Hash, TorrentVersion};

fn dict(entries: Vec<(&str, Value)>) -> Value {
    Value::Dict(
        entries
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn s(x: &str) -> Value {
    Value::from(x)
}

fn v1_pieces(data: &[u8], pl: usize) -> Value {
    let mut out = Vec::new();
    for c in data.chunks(pl) {
        out.extend_from_slice(&Sha1::digest(c));
    }
    Value::Bytes(out)
}

fn v1_multi() -> (Value, Vec<u8>) {
    let a = vec![1u8; 20_000];
    let b = vec![2u8; 13_000];
    let all = [a.clone(), b.clone()].concat();
    let info = dict(vec![
        ("name", s("multi")),
        ("piece length", Value::Int(16384)),
        ("pieces", v1_pieces(&all, 16384)),
        (
            "files",
            Value::List(vec![
                dict(vec![
                    ("length", Value::Int(a.len() as i64)),
                    ("path", Value::List(vec![s("dir"), s("a.bin")])),
                ]),
                dict(vec![
                    ("length", Value::Int(b.len() as i64)),
                    ("path", Value::List(vec![s("..."), s("b.bin")])),
                ]),
            ]),
        ),
        ("x-custom", Value::Int(7)),
    ]);
    let t = dict(vec![
        ("info", info),
        ("announce", s("http://ignored.example/announce")),
        (
            "announce-list",
            Value::List(vec![
                Value::List(vec![s("  http://a.example/announce"), s("")]),
                Value::List(vec![]),
                Value::List(vec![
                    s("udp://b.example:80"),
                    s("http://a.example/announce"),
                ]),
            ]),
        ),
        ("url-list", s("http://seed.example/files")),
        ("comment", s("hello")),
        ("creation date", Value::Int(1_600_000_000)),
        (
            "nodes",
            Value::List(vec![Value::List(vec![
                s("router.example"),
                Value::Int(6881),
            ])]),
        ),
        ("zz-unknown", s("kept")),
    ]);
    (t, all)
}

#[test]
fn v1_multi_file() {
    let (t, _) = v1_multi();
    let bytes = t.to_bytes();
    let m = Metainfo::from_bytes(bytes.clone()).unwrap();
    assert_eq!(m.version(), TorrentVersion::V1);
    assert_eq!(m.name(), "multi");
    assert_eq!(m.name_bytes(), b"multi");
    assert_eq!(m.piece_length(), 16384);
    assert_eq!(m.num_pieces(), 3);
    assert_eq!(m.total_length(), 33_000);
    assert_eq!(m.piece_size(2), 33_000 - 2 * 16384);
    assert_eq!(m.piece_size(3), 0);
    let paths: Vec<&str> = m.files().iter().map(|f| f.path).collect();
    assert_eq!(paths, ["multi/dir/a.bin", "multi/.../b.bin"]);
    assert_eq!(m.files().get(1).unwrap().offset, 20_000);
    assert_eq!(
        m.files().get(1).unwrap().path_components(),
        vec![b"...".to_vec(), b"b.bin".to_vec()]
    );
    assert_eq!(
        m.trackers(),
        [
            vec!["http://a.example/announce".to_string()],
            vec!["udp://b.example:80".to_string()]
        ]
    );
    assert_eq!(m.web_seeds(), ["http://seed.example/files/"]);
    assert_eq!(m.comment(), Some("hello"));
    assert_eq!(m.creation_date(), Some(1_600_000_000));
    assert_eq!(m.dht_nodes(), [("router.example".to_string(), 6881)]);
    assert_eq!(m.extra_fields().len(), 1);
    assert_eq!(m.extra_fields()[0].0, b"zz-unknown");
    assert_eq!(
        m.info_extra_fields()[0],
        (b"x-custom".to_vec(), Value::Int(7))
    );
    let info = m.info_bytes();
    assert_eq!(
        m.info_hashes().v1.unwrap().0[..],
        Sha1::digest(&info)[..],
        "v1 hash is SHA-1 of the info bytes"
    );
    assert!(m.info_hashes().v2.is_none());
    assert!(m.piece_hash_v1(2).is_some() && m.piece_hash_v1(3).is_none());
    assert_eq!(
        m.to_bytes(),
        bytes,
        "canonical input is written back unchanged"
    );
}

#[test]
fn v1_single_file_and_unsorted_keys_warn() {
    let data = vec![9u8; 5000];
    let mut info = b"d4:name5:a.txt12:piece lengthi16384e6:lengthi5000e6:pieces20:".to_vec();
    info.extend_from_slice(&Sha1::digest(&data));
    info.push(b'e');
    let mut file = b"d4:info".to_vec();
    file.extend_from_slice(&info);
    file.push(b'e');
    let m = Metainfo::from_bytes(file).unwrap();
    assert_eq!(m.files().len(), 1);
    assert_eq!(m.files().get(0).unwrap().path, "a.txt");
    assert_eq!(m.name(), "a.txt");
    assert!(!m.warnings().is_empty(), "unsorted keys reported");
    assert_eq!(&m.info_bytes()[..], &info[..]);
    // Written back: info byte-exact, so the same hash.
    let again = Metainfo::from_bytes(m.to_bytes()).unwrap();
    assert_eq!(again.info_hashes(), m.info_hashes());
}

fn v2_file_entry(data: &[u8]) -> Value {
    let tree = MerkleTree::from_data(data);
    dict(vec![(
        "",
        dict(vec![
            ("length", Value::Int(data.len() as i64)),
            ("pieces root", Value::Bytes(tree.root().0.to_vec())),
        ]),
    )])
}

fn v2_torrent(hybrid: bool, tamper_layer: bool) -> Value {
    let pl: u64 = 32 * 1024;
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let small = vec![7u8; 1000];
    let tree = MerkleTree::from_data(&big);
    let mut layer: Vec<u8> = tree
        .piece_layer(pl)
        .iter()
        .flat_map(|h| h.0.to_vec())
        .collect();
    if tamper_layer {
        layer[5] ^= 1;
    }
    let file_tree = dict(vec![
        ("big.bin", v2_file_entry(&big)),
        ("small.txt", v2_file_entry(&small)),
    ]);
    let mut info = vec![
        ("name", s("v2dir")),
        ("piece length", Value::Int(pl as i64)),
        ("meta version", Value::Int(2)),
        ("file tree", file_tree),
    ];
    if hybrid {
        let pad = pl - big.len() as u64 % pl;
        let mut all = big.clone();
        all.extend(std::iter::repeat_n(0u8, pad as usize));
        all.extend_from_slice(&small);
        info.push(("pieces", v1_pieces(&all, pl as usize)));
        info.push((
            "files",
            Value::List(vec![
                dict(vec![
                    ("length", Value::Int(big.len() as i64)),
                    ("path", Value::List(vec![s("big.bin")])),
                ]),
                dict(vec![
                    ("length", Value::Int(pad as i64)),
                    ("attr", s("p")),
                    ("path", Value::List(vec![s(".pad"), s(&pad.to_string())])),
                ]),
                dict(vec![
                    ("length", Value::Int(small.len() as i64)),
                    ("path", Value::List(vec![s("small.txt")])),
                ]),
            ]),
        ));
    }
    let mut layers = BTreeMap::new();
    layers.insert(tree.root().0.to_vec(), Value::Bytes(layer));
    dict(vec![
        ("info", dict(info)),
        ("piece layers", Value::Dict(layers)),
    ])
}

/// Files of 64 KiB and more have their info dictionary hashed on a second thread, starting
/// before the decoder has found where the dictionary ends: the hashes must be those of exactly
/// `info_bytes`, wherever the dictionary sits in the file.
#[test]
fn large_files_hash_the_info_dictionary_exactly() {
    use sha2::Sha256;
    let info_hashes_match = |bytes: Vec<u8>| {
        let m = Metainfo::from_bytes(bytes).unwrap();
        let info = m.info_bytes();
        if let Some(v1) = m.info_hashes().v1 {
            assert_eq!(v1.0[..], Sha1::digest(&info)[..]);
        }
        if let Some(v2) = m.info_hashes().v2 {
            assert_eq!(v2.0[..], Sha256::digest(&info)[..]);
        }
        m
    };

    // Many files: the info dictionary is most of the file and comes last.
    let n = 4000;
    let data = vec![5u8; n];
    let files: Vec<Value> = (0..n)
        .map(|i| {
            dict(vec![
                ("length", Value::Int(1)),
                (
                    "path",
                    Value::List(vec![
                        s(&format!("dir-{}", i / 100)),
                        s(&format!("f{i}.bin")),
                    ]),
                ),
            ])
        })
        .collect();
    let info = dict(vec![
        ("name", s("many")),
        ("piece length", Value::Int(16384)),
        ("pieces", v1_pieces(&data, 16384)),
        ("files", Value::List(files)),
    ]);
    let t = dict(vec![
        ("announce", s("http://a.example/")),
        ("info", info.clone()),
    ]);
    let bytes = t.to_bytes();
    assert!(bytes.len() > 100_000);
    let m = info_hashes_match(bytes);
    assert_eq!(m.files().len(), n);
    assert_eq!(
        m.files().get(n - 1).unwrap().path,
        format!("many/dir-{}/f{}.bin", (n - 1) / 100, n - 1)
    );

    // A small info dictionary followed by a lot of other data.
    let (mut small, _) = v1_multi();
    if let Value::Dict(d) = &mut small {
        d.insert(b"zz-large".to_vec(), Value::Bytes(vec![9u8; 300_000]));
    }
    info_hashes_match(small.to_bytes());

    // Hybrid and v2, with `piece layers` after the info dictionary.
    for hybrid in [true, false] {
        let mut t = v2_torrent(hybrid, false);
        if let Value::Dict(d) = &mut t {
            if let Some(Value::Dict(info)) = d.get_mut(&b"info"[..]) {
                info.insert(b"x-filler".to_vec(), Value::Bytes(vec![3u8; 200_000]));
            }
        }
        let m = info_hashes_match(t.to_bytes());
        assert!(m.info_hashes().v2.is_some());
        assert_eq!(m.info_hashes().v1.is_some(), hybrid);
    }

    // A large file that fails to parse after the hashing has started.
    let mut broken = t.clone();
    if let Value::Dict(d) = &mut broken {
        if let Some(Value::Dict(info)) = d.get_mut(&b"info"[..]) {
            info.insert(b"piece length".to_vec(), Value::Int(0));
        }
    }
    let e = Metainfo::from_bytes(broken.to_bytes()).unwrap_err();
    assert!(matches!(e, Error::MissingPieceLength { .. }), "{e}");
}

#[test]
fn v2_and_hybrid() {
    let m = Metainfo::from_bytes(v2_torrent(false, false).to_bytes()).unwrap();
    assert_eq!(m.version(), TorrentVersion::V2);
    assert!(m.info_hashes().v1.is_none());
    let paths: Vec<&str> = m.files().iter().map(|f| f.path).collect();
    // libtorrent pads every file to a piece boundary, the last one included.
    assert_eq!(
        paths,
        [
            "v2dir/big.bin",
            "v2dir/.pad/31072",
            "v2dir/small.txt",
            "v2dir/.pad/31768"
        ]
    );
    assert_eq!(m.num_pieces(), 5);
    assert_eq!(m.piece_layer(0).unwrap().len(), 4);
    assert!(m.piece_layer(1).is_none());
    assert_eq!(m.piece_layer(2).unwrap().len(), 1, "small file: its root");

    let h = Metainfo::from_bytes(v2_torrent(true, false).to_bytes()).unwrap();
    assert_eq!(h.version(), TorrentVersion::Hybrid);
    assert!(h.info_hashes().is_hybrid());
    assert_eq!(
        h.files().len(),
        3,
        "tail padding of an old-style hybrid removed"
    );
    assert_eq!(h.files().get(2).unwrap().offset, 131_072);

    let e = Metainfo::from_bytes(v2_torrent(false, true).to_bytes()).unwrap_err();
    assert_eq!(e.reason_class(), "torrent_invalid_piece_layer");
}

#[test]
fn rejections_name_their_reason() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"i3e".to_vec(), "torrent_is_no_dict"),
        (b"d4:spami1ee".to_vec(), "torrent_missing_info"),
        (b"d4:infod4:name1:a12:piece lengthi16384e6:lengthi1e6:pieces20:aaaaaaaaaaaaaaaaaaaaee".to_vec(), "-"),
        (b"d4:infod4:name1:a12:piece lengthi0e6:lengthi1e6:pieces0:ee".to_vec(), "torrent_missing_piece_length"),
        (b"d4:infod4:name1:a12:piece lengthi16384e6:lengthi-1e6:pieces0:ee".to_vec(), "torrent_invalid_length"),
        (b"d4:infod4:name1:a12:piece lengthi16384e6:lengthi1eee".to_vec(), "torrent_missing_pieces"),
        (b"d4:infod4:name1:a12:piece lengthi16384e6:lengthi1e6:pieces1:xee".to_vec(), "torrent_invalid_hashes"),
        (b"d4:infod12:piece lengthi16384e6:lengthi1e6:pieces0:ee".to_vec(), "torrent_missing_name"),
        (b"d4:infod5:filesle4:name1:a12:piece lengthi16384e6:pieces0:ee".to_vec(), "no_files_in_torrent"),
        (b"d4:infod5:filesld6:lengthi1e4:pathli1eeee4:name1:a12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee".to_vec(), "torrent_invalid_name"),
        (b"d4:info".to_vec(), "invalid_bencoding"),
    ];
    for (bytes, reason) in cases {
        let got = Metainfo::from_bytes(bytes.clone());
        match reason {
            "-" => assert!(
                got.is_ok(),
                "{:?}: {:?}",
                bytes.escape_ascii().to_string(),
                got.err()
            ),
            r => assert_eq!(
                got.unwrap_err().reason_class(),
                r,
                "{}",
                bytes.escape_ascii()
            ),
        }
    }
}

#[test]
fn limits_are_enforced() {
    let (t, _) = v1_multi();
    let bytes = t.to_bytes();
    let opts = ParseOptions {
        max_files: 1,
        ..ParseOptions::default()
    };
    assert!(matches!(
        Metainfo::from_bytes_with(bytes.clone(), &opts),
        Err(Error::TooManyFiles { limit: 1 })
    ));
    let opts = ParseOptions {
        max_pieces: 2,
        ..ParseOptions::default()
    };
    assert!(matches!(
        Metainfo::from_bytes_with(bytes.clone(), &opts),
        Err(Error::TooManyPieces {
            pieces: 3,
            limit: 2
        })
    ));
    let opts = ParseOptions {
        max_depth: 3,
        ..ParseOptions::default()
    };
    assert_eq!(
        Metainfo::from_bytes_with(bytes, &opts)
            .unwrap_err()
            .reason_class(),
        "depth_exceeded"
    );
}

#[test]
fn hostile_paths_stay_inside() {
    let info = dict(vec![
        ("name", s("..")),
        ("piece length", Value::Int(16384)),
        ("pieces", Value::Bytes(vec![0; 20])),
        (
            "files",
            Value::List(
                [
                    vec!["..", "..", "etc", "passwd"],
                    vec!["/abs", "x"],
                    vec!["a\\..\\b"],
                    vec!["ok", ".", "y"],
                    vec!["OK", "Y"],
                ]
                .iter()
                .map(|p| {
                    dict(vec![
                        ("length", Value::Int(1)),
                        ("path", Value::List(p.iter().map(|c| s(c)).collect())),
                    ])
                })
                .collect(),
            ),
        ),
    ]);
    let m = Metainfo::from_bytes(dict(vec![("info", info)]).to_bytes()).unwrap();
    let hex = m.info_hashes().v1.unwrap().to_hex();
    let paths: Vec<String> = m.files().iter().map(|f| f.path.to_owned()).collect();
    assert_eq!(
        paths,
        [
            format!("{hex}/etc/passwd"),
            format!("{hex}/abs/x"),
            format!("{hex}/a..b"),
            format!("{hex}/ok/y"),
            format!("{hex}/OK/Y.1"),
        ]
    );
}

/// A v1 torrent named `name` whose files have these path lists (each one byte long).
fn v1_with_paths(name: &str, paths: Vec<Value>) -> Vec<u8> {
    let n = paths.len();
    let files = paths
        .into_iter()
        .map(|p| dict(vec![("length", Value::Int(1)), ("path", p)]))
        .collect();
    let info = dict(vec![
        ("name", s(name)),
        ("piece length", Value::Int(16384)),
        ("pieces", Value::Bytes(vec![0; 20 * n.div_ceil(16384)])),
        ("files", Value::List(files)),
    ]);
    dict(vec![("info", info)]).to_bytes()
}

fn strs(parts: &[&str]) -> Value {
    Value::List(parts.iter().map(|c| s(c)).collect())
}

#[test]
fn raw_components_survive_sanitising_and_renaming() {
    let bytes = v1_with_paths(
        "root",
        vec![
            strs(&["dir", "a_b.txt"]),
            strs(&["dir", "x_____padding_file_1"]),
            strs(&["..", "evil", ""]),
            strs(&["Dir", "A_B.txt"]),
            strs(&["caf\u{e9}"]),
        ],
    );
    let m = Metainfo::from_bytes(bytes).unwrap();
    let got: Vec<(String, bool, Vec<Vec<u8>>)> = m
        .files()
        .iter()
        .map(|f| (f.path.to_owned(), f.is_padding(), f.path_components()))
        .collect();
    let raw = |parts: &[&str]| parts.iter().map(|p| p.as_bytes().to_vec()).collect();
    assert_eq!(
        got,
        [
            ("root/dir/a_b.txt".into(), false, raw(&["dir", "a_b.txt"])),
            (
                "root/dir/x_____padding_file_1".into(),
                true,
                raw(&["dir", "x_____padding_file_1"])
            ),
            ("root/evil/_".into(), false, raw(&["..", "evil", ""])),
            // Renamed as a duplicate: the raw components stay those of the torrent.
            ("root/Dir/A_B.1.txt".into(), false, raw(&["Dir", "A_B.txt"])),
            ("root/caf\u{e9}".into(), false, raw(&["caf\u{e9}"])),
        ]
    );
    assert_eq!(m.files().get(0).unwrap(), m.files().get(0).unwrap().clone());
    assert_ne!(m.files().get(0).unwrap(), m.files().get(3).unwrap());
}

#[test]
fn too_deep_wins_over_a_bad_component() {
    let deep = |bad: usize, depth: usize| {
        let parts = (0..depth)
            .map(|i| if i == bad { Value::Int(1) } else { s("d") })
            .collect();
        Metainfo::from_bytes(v1_with_paths("t", vec![Value::List(parts)]))
            .unwrap_err()
            .reason_class()
    };
    assert_eq!(deep(0, 101), "torrent_directory_too_deep");
    assert_eq!(deep(100, 101), "torrent_directory_too_deep");
    assert_eq!(deep(0, 100), "torrent_invalid_name");
    assert_eq!(deep(99, 100), "torrent_invalid_name");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mutations_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut bytes = match which {
            0 => v1_multi().0.to_bytes(),
            1 => v2_torrent(false, false).to_bytes(),
            _ => v2_torrent(true, false).to_bytes(),
        };
        for (idx, byte, op) in edits {
            if bytes.is_empty() { break; }
            let i = idx.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => { bytes.insert(i, byte); }
                _ => { bytes.remove(i); }
            }
        }
        tessera_metainfo::fuzzing::parse_metainfo(&bytes);
    }

    #[test]
    fn round_trip_keeps_everything(name in "[a-zA-Z0-9][a-zA-Z0-9 ._-]{0,19}", len in 1i64..100_000, private in any::<bool>()) {
        let pieces = (len as u64).div_ceil(16384) as usize;
        let t = dict(vec![
            ("info", dict(vec![
                ("name", s(&name)),
                ("piece length", Value::Int(16384)),
                ("length", Value::Int(len)),
                ("pieces", Value::Bytes(vec![3; pieces * 20])),
                ("private", Value::Int(i64::from(private))),
            ])),
            ("announce", s("http://t.example/a")),
        ]);
        let m = Metainfo::from_bytes(t.to_bytes()).unwrap();
        let again = Metainfo::from_bytes(m.to_bytes()).unwrap();
        prop_assert_eq!(again.info_hashes(), m.info_hashes());
        prop_assert_eq!(again.files(), m.files());
        prop_assert_eq!(again.trackers(), m.trackers());
        prop_assert_eq!(again.is_private(), private);
        prop_assert_eq!(again.num_pieces(), pieces);
        let _ = Sha256Hash::default();
    }
}
