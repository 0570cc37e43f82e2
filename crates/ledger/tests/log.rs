//! The block log and snapshot store: round trips, torn and corrupt tails at every cut point,
//! hostile lengths, truncation, and snapshot retention and verification.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::convert::Infallible;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use tessera_ledger::log::{
    latest_snapshot, snapshot_heights, write_snapshot, BlockLog, Damage, LogError, Recovery,
    LOG_HEADER_LEN, MAX_RECORD_LEN, MAX_SNAPSHOT_LEN, RECORD_HEADER_LEN, SNAPSHOT_HEADER_LEN,
};

/// Opens the log, collecting every record and checking the indices come in order.
fn open_collect(path: &Path) -> (BlockLog, Recovery, Vec<Vec<u8>>) {
    let mut seen = Vec::new();
    let (log, recovery) = BlockLog::open::<Infallible, _>(path, |index, record| {
        assert_eq!(index, seen.len() as u64, "indices are consecutive from 0");
        seen.push(record.to_vec());
        Ok(())
    })
    .unwrap();
    assert_eq!(recovery.records, seen.len() as u64);
    assert_eq!(log.len(), seen.len() as u64);
    (log, recovery, seen)
}

/// A deterministic record of varied length (including empty ones).
fn record(i: usize) -> Vec<u8> {
    let len = (i * 37) % 91;
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

/// Writes `records` to a fresh log at `path` and syncs; returns the end offset of each record.
fn write_log(path: &Path, records: &[Vec<u8>]) -> Vec<u64> {
    let (mut log, recovery, seen) = open_collect(path);
    assert!(seen.is_empty() && recovery.is_clean());
    let mut ends = Vec::new();
    let mut end = LOG_HEADER_LEN;
    for (i, r) in records.iter().enumerate() {
        assert_eq!(log.append(r).unwrap(), i as u64);
        end += RECORD_HEADER_LEN + r.len() as u64;
        ends.push(end);
    }
    log.sync().unwrap();
    assert_eq!(file_len(path), end);
    ends
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

#[test]
fn records_round_trip_and_appends_continue_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    let first: Vec<Vec<u8>> = (0..50).map(record).collect();
    write_log(&path, &first);

    let (mut log, recovery, seen) = open_collect(&path);
    assert_eq!(seen, first);
    assert_eq!(
        recovery,
        Recovery {
            records: 50,
            valid_bytes: file_len(&path),
            dropped_bytes: 0,
            damage: None,
        }
    );
    assert!(!log.is_empty());
    for i in 50..80 {
        assert_eq!(log.append(&record(i)).unwrap(), i as u64);
    }
    assert_eq!(log.len(), 80);
    log.sync().unwrap();
    drop(log);

    let (log, recovery, seen) = open_collect(&path);
    assert!(recovery.is_clean());
    assert_eq!(seen, (0..80).map(record).collect::<Vec<_>>());
    assert_eq!(log.len(), 80);
}

#[test]
fn new_log_is_empty_and_has_only_the_file_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    let (log, recovery, seen) = open_collect(&path);
    assert!(seen.is_empty() && log.is_empty() && recovery.is_clean());
    assert_eq!(recovery.valid_bytes, LOG_HEADER_LEN);
    assert_eq!(fs::read(&path).unwrap(), b"TESLOG\x01\x00");
    assert_eq!(log.path(), path);
    // No temporary file is left behind.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("blocks.log")]);
}

#[test]
fn record_framing_is_length_then_checksum_then_payload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    write_log(&path, &[b"hello".to_vec()]);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, LOG_HEADER_LEN + RECORD_HEADER_LEN + 5);
    assert_eq!(&bytes[8..12], &5u32.to_le_bytes());
    assert_eq!(&bytes[28..], b"hello");
    // The checksum is keyed (derive-key mode), covers the length, and is not all zero.
    let mut hasher = blake3::Hasher::new_derive_key("tessera-ledger block-log record v1");
    hasher.update(&5u32.to_le_bytes());
    hasher.update(b"hello");
    assert_eq!(&bytes[12..28], &hasher.finalize().as_bytes()[..16]);
}

#[test]
fn empty_and_large_records_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    // Larger than the append buffer, so it takes the direct-write path, between small ones.
    let big: Vec<u8> = (0..(1u32 << 20) + 3).map(|i| (i % 251) as u8).collect();
    let records = vec![
        Vec::new(),
        b"a".to_vec(),
        big.clone(),
        Vec::new(),
        big,
        b"z".to_vec(),
    ];
    write_log(&path, &records);
    let (_, recovery, seen) = open_collect(&path);
    assert!(recovery.is_clean());
    assert_eq!(seen, records);
}

#[test]
fn many_small_appends_cross_the_buffer_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    let records: Vec<Vec<u8>> = (0..20_000).map(record).collect();
    write_log(&path, &records);
    let (_, recovery, seen) = open_collect(&path);
    assert!(recovery.is_clean());
    assert_eq!(seen, records);
}

#[test]
fn appends_not_synced_are_discarded_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    let (mut log, _, _) = open_collect(&path);
    for i in 0..3 {
        log.append(&record(i)).unwrap();
    }
    log.sync().unwrap();
    log.append(b"never synced").unwrap();
    log.append(b"nor this").unwrap();
    assert_eq!(log.len(), 5);
    drop(log);
    let (log, recovery, seen) = open_collect(&path);
    assert!(recovery.is_clean());
    assert_eq!(seen, (0..3).map(record).collect::<Vec<_>>());
    assert_eq!(log.len(), 3);
}

#[test]
fn append_refuses_records_over_the_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    let (mut log, _, _) = open_collect(&path);
    log.append(b"first").unwrap();
    let huge = vec![0u8; MAX_RECORD_LEN as usize + 1];
    match log.append(&huge) {
        Err(LogError::RecordTooLarge { len, max }) => {
            assert_eq!(len, u64::from(MAX_RECORD_LEN) + 1);
            assert_eq!(max, u64::from(MAX_RECORD_LEN));
        }
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    // The log is unchanged and still usable.
    assert_eq!(log.len(), 1);
    assert_eq!(log.append(b"second").unwrap(), 1);
    log.sync().unwrap();
    drop(log);
    let (_, _, seen) = open_collect(&path);
    assert_eq!(seen, vec![b"first".to_vec(), b"second".to_vec()]);
}

// ---------------------------------------------------------------------------------------------
// Opening foreign, empty and half-created files
// ---------------------------------------------------------------------------------------------

#[test]
fn a_file_with_wrong_magic_is_an_error_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    let contents = b"this is not a block log at all".to_vec();
    fs::write(&path, &contents).unwrap();
    let err = BlockLog::open::<Infallible, _>(&path, |_, _| Ok(())).unwrap_err();
    assert!(matches!(err, LogError::BadMagic { ref path } if path.ends_with("blocks.log")));
    assert!(err.to_string().contains("not a block log"));
    assert_eq!(fs::read(&path).unwrap(), contents);

    // A short file that is not the start of our header is not ours either.
    fs::write(&path, b"TEX").unwrap();
    let err = BlockLog::open::<Infallible, _>(&path, |_, _| Ok(())).unwrap_err();
    assert!(matches!(err, LogError::BadMagic { .. }));
    assert_eq!(fs::read(&path).unwrap(), b"TEX");
}

#[test]
fn an_unknown_format_version_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    fs::write(&path, b"TESLOG\x02\x00garbage").unwrap();
    let err = BlockLog::open::<Infallible, _>(&path, |_, _| Ok(())).unwrap_err();
    assert!(matches!(
        err,
        LogError::UnsupportedVersion { version: 2, .. }
    ));
    assert_eq!(fs::read(&path).unwrap(), b"TESLOG\x02\x00garbage");
}

#[test]
fn an_empty_or_half_created_file_gets_a_fresh_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    for cut in 0..LOG_HEADER_LEN as usize {
        fs::write(&path, &b"TESLOG\x01\x00"[..cut]).unwrap();
        let (mut log, recovery, seen) = open_collect(&path);
        assert!(seen.is_empty());
        assert_eq!(recovery.dropped_bytes, cut as u64);
        assert_eq!(
            recovery.damage,
            (cut > 0).then_some(Damage::ShortFileHeader),
            "cut {cut}"
        );
        assert_eq!(fs::read(&path).unwrap(), b"TESLOG\x01\x00");
        log.append(b"after").unwrap();
        log.sync().unwrap();
        drop(log);
        let (_, recovery, seen) = open_collect(&path);
        assert!(recovery.is_clean());
        assert_eq!(seen, vec![b"after".to_vec()]);
    }
}

#[test]
fn a_failing_visitor_stops_replay_and_leaves_the_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    write_log(&path, &(0..5).map(record).collect::<Vec<_>>());
    let before = fs::read(&path).unwrap();
    let mut visited = 0;
    let err = BlockLog::open(&path, |index, _| {
        visited += 1;
        if index == 2 {
            Err(io::Error::other("bad block"))
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert_eq!(visited, 3);
    match &err {
        LogError::Visitor { index, source } => {
            assert_eq!(*index, 2);
            assert_eq!(source.to_string(), "bad block");
        }
        other => panic!("expected a visitor error, got {other:?}"),
    }
    assert!(std::error::Error::source(&err).is_some());
    assert_eq!(fs::read(&path).unwrap(), before);
}

// ---------------------------------------------------------------------------------------------
// Torn and corrupt tails
// ---------------------------------------------------------------------------------------------

#[test]
fn every_torn_tail_of_the_last_record_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let full_path = dir.path().join("full.log");
    let records: Vec<Vec<u8>> = vec![record(1), record(2), (0..41).collect()];
    let ends = write_log(&full_path, &records);
    let full = fs::read(&full_path).unwrap();
    let (valid, total) = (ends[1], ends[2]);

    for cut in valid..total {
        let path = dir.path().join(format!("cut-{cut}.log"));
        fs::write(&path, &full[..cut as usize]).unwrap();
        let (mut log, recovery, seen) = open_collect(&path);
        assert_eq!(seen, records[..2], "cut {cut}");
        let torn = cut - valid;
        let expected_damage = if torn == 0 {
            None
        } else if torn < RECORD_HEADER_LEN {
            Some(Damage::ShortHeader)
        } else {
            Some(Damage::ShortPayload { len: 41 })
        };
        assert_eq!(
            recovery,
            Recovery {
                records: 2,
                valid_bytes: valid,
                dropped_bytes: torn,
                damage: expected_damage,
            },
            "cut {cut}"
        );
        assert_eq!(file_len(&path), valid, "truncated to the valid prefix");

        assert_eq!(log.append(b"replacement").unwrap(), 2);
        log.sync().unwrap();
        drop(log);
        let (log, recovery, seen) = open_collect(&path);
        assert!(recovery.is_clean(), "cut {cut}");
        assert_eq!(seen[..2], records[..2]);
        assert_eq!(seen[2], b"replacement");
        assert_eq!(log.len(), 3);
    }
}

#[test]
fn every_cut_of_a_log_yields_exactly_the_complete_records() {
    let dir = tempfile::tempdir().unwrap();
    let full_path = dir.path().join("full.log");
    let records: Vec<Vec<u8>> = (0..6).map(record).collect();
    let ends = write_log(&full_path, &records);
    let full = fs::read(&full_path).unwrap();
    for cut in 0..=full.len() {
        let path = dir.path().join("cut.log");
        fs::write(&path, &full[..cut]).unwrap();
        let (_, recovery, seen) = open_collect(&path);
        let complete = ends.iter().filter(|&&end| end <= cut as u64).count();
        assert_eq!(seen, records[..complete], "cut {cut}");
        let expected_len = ends
            .iter()
            .copied()
            .rfind(|&end| end <= cut as u64)
            .unwrap_or(LOG_HEADER_LEN);
        assert_eq!(file_len(&path), expected_len, "cut {cut}");
        assert_eq!(recovery.valid_bytes, expected_len);
    }
}

#[test]
fn a_flipped_payload_byte_in_the_last_record_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    let records: Vec<Vec<u8>> = (1..5).map(record).collect();
    let ends = write_log(&path, &records);
    // A byte in the middle of the last payload.
    flip(&path, ends[3] - 3);
    let (mut log, recovery, seen) = open_collect(&path);
    assert_eq!(seen, records[..3]);
    assert_eq!(recovery.damage, Some(Damage::ChecksumMismatch));
    assert_eq!(recovery.dropped_bytes, ends[3] - ends[2]);
    assert_eq!(file_len(&path), ends[2]);
    log.append(b"again").unwrap();
    log.sync().unwrap();
    drop(log);
    let (_, recovery, seen) = open_collect(&path);
    assert!(recovery.is_clean());
    assert_eq!(seen.len(), 4);
}

#[test]
fn a_flipped_checksum_or_length_byte_drops_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<Vec<u8>> = (1..4).map(record).collect();
    for offset_in_header in 0..RECORD_HEADER_LEN {
        let path = dir.path().join(format!("h{offset_in_header}.log"));
        let ends = write_log(&path, &records);
        flip(&path, ends[1] + offset_in_header);
        let (_, recovery, seen) = open_collect(&path);
        assert_eq!(seen, records[..2], "header byte {offset_in_header}");
        assert!(recovery.damage.is_some());
        assert_eq!(file_len(&path), ends[1]);
    }
}

/// Damage in the middle of the log cannot be told apart from a torn tail: the bad record and
/// everything after it are dropped, and `Recovery` says how much went.
#[test]
fn a_flipped_byte_in_a_middle_record_drops_it_and_everything_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    let records: Vec<Vec<u8>> = (1..8).map(record).collect();
    let ends = write_log(&path, &records);
    flip(&path, ends[2] - 1); // last payload byte of record 2
    let (_, recovery, seen) = open_collect(&path);
    assert_eq!(seen, records[..2]);
    assert_eq!(recovery.damage, Some(Damage::ChecksumMismatch));
    assert_eq!(recovery.valid_bytes, ends[1]);
    assert_eq!(recovery.dropped_bytes, ends[6] - ends[1]);
    assert_eq!(file_len(&path), ends[1]);
}

#[test]
fn a_garbage_length_is_not_allocated_and_drops_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    let records: Vec<Vec<u8>> = (1..3).map(record).collect();
    let ends = write_log(&path, &records);

    for (len, damage) in [
        (u32::MAX, Damage::TooLarge { len: u32::MAX }),
        (
            MAX_RECORD_LEN + 1,
            Damage::TooLarge {
                len: MAX_RECORD_LEN + 1,
            },
        ),
        // Allowed by the maximum but longer than the file: never allocated either.
        (
            MAX_RECORD_LEN,
            Damage::ShortPayload {
                len: MAX_RECORD_LEN,
            },
        ),
    ] {
        let mut bytes = fs::read(&path).unwrap();
        bytes.truncate(ends[1] as usize);
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&[0xAB; 16]);
        bytes.extend_from_slice(&[7; 100]);
        fs::write(&path, &bytes).unwrap();

        let (_, recovery, seen) = open_collect(&path);
        assert_eq!(seen, records);
        assert_eq!(recovery.damage, Some(damage));
        assert_eq!(recovery.dropped_bytes, RECORD_HEADER_LEN + 100);
        assert_eq!(file_len(&path), ends[1]);
    }
}

#[test]
fn zeros_after_the_last_record_are_dropped() {
    // Some file systems leave a zero-filled extension after a crash.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    let records: Vec<Vec<u8>> = (1..3).map(record).collect();
    let ends = write_log(&path, &records);
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0; 4096]);
    fs::write(&path, &bytes).unwrap();
    let (_, recovery, seen) = open_collect(&path);
    assert_eq!(seen, records);
    assert_eq!(recovery.damage, Some(Damage::ChecksumMismatch));
    assert_eq!(file_len(&path), ends[1]);
}

// ---------------------------------------------------------------------------------------------
// truncate_to
// ---------------------------------------------------------------------------------------------

#[test]
fn truncate_to_drops_synced_records_durably() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    let records: Vec<Vec<u8>> = (0..10).map(record).collect();
    let ends = write_log(&path, &records);
    let (mut log, _, _) = open_collect(&path);
    log.truncate_to(4).unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(file_len(&path), ends[3]);
    drop(log); // no sync: truncate_to made it durable
    let (mut log, recovery, seen) = open_collect(&path);
    assert!(recovery.is_clean());
    assert_eq!(seen, records[..4]);

    assert_eq!(log.append(b"new").unwrap(), 4);
    log.sync().unwrap();
    log.truncate_to(0).unwrap();
    assert!(log.is_empty());
    assert_eq!(file_len(&path), LOG_HEADER_LEN);
    assert_eq!(log.append(b"first again").unwrap(), 0);
    log.sync().unwrap();
    drop(log);
    let (_, _, seen) = open_collect(&path);
    assert_eq!(seen, vec![b"first again".to_vec()]);
}

#[test]
fn truncate_to_within_unsynced_appends_keeps_and_syncs_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    let (mut log, _, _) = open_collect(&path);
    for i in 0..5 {
        log.append(&record(i)).unwrap();
    }
    log.sync().unwrap();
    for i in 5..8 {
        log.append(&record(i)).unwrap();
    }
    log.truncate_to(6).unwrap();
    assert_eq!(log.len(), 6);
    drop(log);
    let (mut log, recovery, seen) = open_collect(&path);
    assert!(recovery.is_clean());
    assert_eq!(seen, (0..6).map(record).collect::<Vec<_>>());

    // Across the synced/unsynced boundary.
    log.append(b"x").unwrap();
    log.append(b"y").unwrap();
    log.truncate_to(3).unwrap();
    drop(log);
    let (_, _, seen) = open_collect(&path);
    assert_eq!(seen, (0..3).map(record).collect::<Vec<_>>());
}

#[test]
fn truncate_to_far_back_rescans_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    let records: Vec<Vec<u8>> = (0..3000).map(record).collect();
    let ends = write_log(&path, &records);
    let (mut log, _, _) = open_collect(&path);
    // Some unsynced appends too, so the rescan has to see buffered bytes.
    for i in 3000..3100 {
        log.append(&record(i)).unwrap();
    }
    log.truncate_to(10).unwrap();
    assert_eq!(file_len(&path), ends[9]);
    // The recent-offsets window is refilled: a second, nearby truncation works too.
    log.truncate_to(7).unwrap();
    assert_eq!(file_len(&path), ends[6]);
    assert_eq!(log.append(b"tail").unwrap(), 7);
    log.sync().unwrap();
    drop(log);
    let (_, recovery, seen) = open_collect(&path);
    assert!(recovery.is_clean());
    assert_eq!(seen[..7], records[..7]);
    assert_eq!(seen[7], b"tail");
    assert_eq!(seen.len(), 8);
}

#[test]
fn truncate_to_the_current_length_syncs_and_beyond_it_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.log");
    let (mut log, _, _) = open_collect(&path);
    log.append(b"a").unwrap();
    log.append(b"b").unwrap();
    match log.truncate_to(3) {
        Err(LogError::TruncateBeyondEnd {
            requested: 3,
            len: 2,
        }) => {}
        other => panic!("expected TruncateBeyondEnd, got {other:?}"),
    }
    // Not a failure of the file: the log is still usable.
    log.truncate_to(2).unwrap();
    drop(log);
    let (_, _, seen) = open_collect(&path);
    assert_eq!(seen, vec![b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn widen_keeps_the_variant() {
    let err: LogError = LogError::RecordTooLarge { len: 5, max: 4 };
    let wide: LogError<io::Error> = err.widen();
    assert!(matches!(wide, LogError::RecordTooLarge { len: 5, max: 4 }));
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

fn arb_records() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::collection::vec(any::<u8>(), 0..64),
            1 => prop::collection::vec(any::<u8>(), 0..5000),
        ],
        0..24,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_records_round_trip(records in arb_records(), sync_every in 1usize..8) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocks.log");
        let (mut log, _, _) = open_collect(&path);
        for (i, r) in records.iter().enumerate() {
            prop_assert_eq!(log.append(r).unwrap(), i as u64);
            if i % sync_every == 0 {
                log.sync().unwrap();
            }
        }
        log.sync().unwrap();
        drop(log);
        let (_, recovery, seen) = open_collect(&path);
        prop_assert!(recovery.is_clean());
        prop_assert_eq!(seen, records);
    }

    #[test]
    fn random_truncation_yields_the_complete_prefix(
        records in arb_records(),
        cut in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocks.log");
        let ends = write_log(&path, &records);
        let full = fs::read(&path).unwrap();
        let cut = cut.index(full.len() + 1);
        fs::write(&path, &full[..cut]).unwrap();
        let (_, _, seen) = open_collect(&path);
        let complete = ends.iter().filter(|&&end| end <= cut as u64).count();
        prop_assert_eq!(&seen[..], &records[..complete]);
    }

    #[test]
    fn a_random_flipped_byte_ends_the_log_at_the_damaged_record(
        records in arb_records().prop_filter("non-empty", |r| !r.is_empty()),
        at in any::<prop::sample::Index>(),
        mask in 1u8..,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocks.log");
        let ends = write_log(&path, &records);
        let mut bytes = fs::read(&path).unwrap();
        let offset = LOG_HEADER_LEN as usize + at.index(bytes.len() - LOG_HEADER_LEN as usize);
        bytes[offset] ^= mask;
        fs::write(&path, &bytes).unwrap();
        let (_, recovery, seen) = open_collect(&path);
        let damaged = ends.iter().filter(|&&end| end <= offset as u64).count();
        prop_assert_eq!(&seen[..], &records[..damaged]);
        prop_assert!(recovery.damage.is_some());
        let valid = if damaged == 0 { LOG_HEADER_LEN } else { ends[damaged - 1] };
        prop_assert_eq!(file_len(&path), valid);
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------------

fn snapshot_path(dir: &Path, height: u64) -> PathBuf {
    dir.join(format!("snapshot-{height:020}.bin"))
}

fn state(height: u64) -> Vec<u8> {
    format!("state at height {height}")
        .repeat(height as usize + 1)
        .into_bytes()
}

#[test]
fn snapshots_keep_only_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snapshots"); // created on first write
    assert_eq!(latest_snapshot(&dir).unwrap(), None);
    assert!(snapshot_heights(&dir).unwrap().is_empty());
    for height in [10, 20, 30] {
        write_snapshot(&dir, height, &state(height), 2).unwrap();
    }
    assert_eq!(snapshot_heights(&dir).unwrap(), vec![20, 30]);
    assert_eq!(latest_snapshot(&dir).unwrap(), Some((30, state(30))));
    assert_eq!(
        file_len(&snapshot_path(&dir, 30)),
        SNAPSHOT_HEADER_LEN + state(30).len() as u64
    );

    // keep = 0 still keeps the one just written.
    write_snapshot(&dir, 40, &state(40), 0).unwrap();
    assert_eq!(snapshot_heights(&dir).unwrap(), vec![40]);

    // Rewriting a height replaces it.
    write_snapshot(&dir, 40, b"replaced", 3).unwrap();
    assert_eq!(
        latest_snapshot(&dir).unwrap(),
        Some((40, b"replaced".to_vec()))
    );

    // An empty snapshot is valid.
    write_snapshot(&dir, 41, b"", 3).unwrap();
    assert_eq!(latest_snapshot(&dir).unwrap(), Some((41, Vec::new())));
    assert_eq!(snapshot_heights(&dir).unwrap(), vec![40, 41]);
}

#[test]
fn a_corrupt_newest_snapshot_falls_back_to_the_older() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for height in [1, 2, 3] {
        write_snapshot(dir, height, &state(height), 3).unwrap();
    }
    // A flipped payload byte in the newest.
    flip(&snapshot_path(dir, 3), SNAPSHOT_HEADER_LEN + 5);
    assert_eq!(latest_snapshot(dir).unwrap(), Some((2, state(2))));
    // Heights lists every file, valid or not.
    assert_eq!(snapshot_heights(dir).unwrap(), vec![1, 2, 3]);

    // A truncated one is skipped too.
    let p2 = snapshot_path(dir, 2);
    let bytes = fs::read(&p2).unwrap();
    fs::write(&p2, &bytes[..bytes.len() - 1]).unwrap();
    assert_eq!(latest_snapshot(dir).unwrap(), Some((1, state(1))));

    // As is one with extra bytes, one shorter than its header, and one with a bad header.
    let p1 = snapshot_path(dir, 1);
    let good = fs::read(&p1).unwrap();
    let mut longer = good.clone();
    longer.push(0);
    fs::write(&p1, &longer).unwrap();
    assert_eq!(latest_snapshot(dir).unwrap(), None);
    fs::write(&p1, &good[..10]).unwrap();
    assert_eq!(latest_snapshot(dir).unwrap(), None);
    let mut bad_magic = good.clone();
    bad_magic[0] ^= 1;
    fs::write(&p1, &bad_magic).unwrap();
    assert_eq!(latest_snapshot(dir).unwrap(), None);
    fs::write(&p1, &good).unwrap();
    assert_eq!(latest_snapshot(dir).unwrap(), Some((1, state(1))));
}

#[test]
fn a_snapshot_under_another_height_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_snapshot(dir, 5, &state(5), 3).unwrap();
    write_snapshot(dir, 6, &state(6), 3).unwrap();
    // Height 5's file under height 9's name: its header (and checksum) say 5.
    fs::copy(snapshot_path(dir, 5), snapshot_path(dir, 9)).unwrap();
    assert_eq!(latest_snapshot(dir).unwrap(), Some((6, state(6))));
}

#[test]
fn a_huge_stored_length_is_not_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_snapshot(dir, 1, &state(1), 3).unwrap();
    write_snapshot(dir, 2, &state(2), 3).unwrap();
    let p2 = snapshot_path(dir, 2);
    let mut bytes = fs::read(&p2).unwrap();
    bytes[16..24].copy_from_slice(&(MAX_SNAPSHOT_LEN - 1).to_le_bytes());
    fs::write(&p2, &bytes).unwrap();
    assert_eq!(latest_snapshot(dir).unwrap(), Some((1, state(1))));
}

#[test]
fn stray_temp_and_foreign_files_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_snapshot(dir, 7, &state(7), 2).unwrap();
    // An interrupted write of a newer snapshot, and unrelated files.
    let stray = dir.join(format!("snapshot-{:020}.bin.tmp", 8));
    fs::write(&stray, b"half written").unwrap();
    fs::write(dir.join("snapshot-9.bin"), b"short name").unwrap();
    fs::write(dir.join("notes.txt"), b"hello").unwrap();
    assert_eq!(snapshot_heights(dir).unwrap(), vec![7]);
    assert_eq!(latest_snapshot(dir).unwrap(), Some((7, state(7))));

    // The next write cleans up the temporary file but leaves foreign files alone.
    write_snapshot(dir, 10, &state(10), 2).unwrap();
    assert!(!stray.exists());
    assert!(dir.join("snapshot-9.bin").exists());
    assert!(dir.join("notes.txt").exists());
    assert_eq!(snapshot_heights(dir).unwrap(), vec![7, 10]);
}

#[test]
fn snapshot_retention_goes_by_height() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_snapshot(dir, 100, &state(100), 2).unwrap();
    write_snapshot(dir, 200, &state(200), 2).unwrap();
    // An older height written later is the oldest of three, so it is the one removed.
    write_snapshot(dir, 50, &state(50), 2).unwrap();
    assert_eq!(snapshot_heights(dir).unwrap(), vec![100, 200]);
}
