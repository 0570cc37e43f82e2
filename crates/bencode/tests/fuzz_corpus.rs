//! Replays the checked-in fuzz seed corpus (`fuzz/corpus/bencode_decode`) through the fuzz
//! entry point, so the ordinary test suite exercises the same checks as the fuzzer.

#![allow(clippy::expect_used)]
use std::path::PathBuf;

#[test]
fn replay_bencode_decode_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/bencode_decode");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read seed");
        tessera_bencode::fuzzing::decode_roundtrip(&data);
        n += 1;
    }
    assert!(n >= 5, "expected seeds in {}", dir.display());
}
