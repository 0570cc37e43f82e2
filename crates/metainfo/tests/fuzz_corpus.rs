//! Replays the checked-in fuzz seed corpora (`fuzz/corpus/metainfo_parse`, `magnet_parse`)
//! through the fuzz entry points, so the ordinary test suite runs the fuzzers' checks too.

#![allow(clippy::expect_used)]
use std::path::PathBuf;

fn replay(target: &str, f: fn(&[u8])) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read seed");
        f(&data);
        n += 1;
    }
    n
}

#[test]
fn replay_metainfo_parse_corpus() {
    assert!(replay("metainfo_parse", tessera_metainfo::fuzzing::parse_metainfo) >= 6);
}

#[test]
fn seeds_are_valid_torrents() {
    // The seeds are only useful to the fuzzer if they parse: check that they still do.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/metainfo_parse");
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read seed");
        let m = tessera_metainfo::Metainfo::from_bytes(data);
        assert!(m.is_ok(), "{}: {:?}", path.display(), m.err());
    }
}

#[test]
fn replay_magnet_parse_corpus() {
    assert!(replay("magnet_parse", tessera_metainfo::fuzzing::parse_magnet) >= 3);
    for seed in ["v1hex", "v1b32", "hybrid"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/magnet_parse")
            .join(seed);
        let text = std::fs::read_to_string(&path).expect("read seed");
        let m = tessera_metainfo::Magnet::parse(&text);
        assert!(m.is_ok(), "{seed}: {:?}", m.err());
    }
}
