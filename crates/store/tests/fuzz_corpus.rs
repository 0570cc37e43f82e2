//! Replays the checked-in fuzz seed corpus (`fuzz/corpus/store_resume`) through the fuzz entry
//! point, so the ordinary test suite runs the fuzzer's checks too.

#![allow(clippy::expect_used)]

use std::path::PathBuf;

#[test]
fn replay_store_resume_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/store_resume");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read seed");
        tessera_store::fuzzing::resume_decode(&data);
        n += 1;
    }
    assert!(n >= 2, "expected seeds in {}", dir.display());
}

#[test]
fn valid_seed_decodes() {
    // The seed is only useful to the fuzzer if it is a valid record: check that it still is.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus/store_resume/hybrid_two_files");
    let data = std::fs::read(&path).expect("read seed");
    let (shape, record) = data.split_at(4);
    let pieces = u32::from(u16::from_le_bytes([shape[0], shape[1]]));
    let files = usize::from(u16::from_le_bytes([shape[2], shape[3]]));
    let decoded = tessera_store::ResumeData::decode(record, pieces, files).expect("valid record");
    assert_eq!(decoded.verified.count(), 2);
}

#[test]
fn replay_store_part_index_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/store_part_index");
    let read = |name: &str| std::fs::read(dir.join(name)).expect("read seed");
    // A real index written by `PartFile` for the fuzzer's sample torrent decodes; junk does not.
    assert!(tessera_store::fuzzing::part_file_index(&read("two_slots")));
    assert!(!tessera_store::fuzzing::part_file_index(&read("tiny")));
    let mut flipped = read("two_slots");
    flipped[60] ^= 1;
    assert!(!tessera_store::fuzzing::part_file_index(&flipped));
}
