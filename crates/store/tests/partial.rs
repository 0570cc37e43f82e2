//! Partial downloads: skipped files stay out of the download directory, their share of the
//! pieces lives in the part file, and unskipping moves it into place.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

#[allow(unreachable_pub)]
mod support;
use support::bytes;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use tessera_metainfo::{Metainfo, TorrentBuilder, TorrentVersion};
use tessera_store::{
    read_piece, recheck, write_block, Backend, FileBackend, FileBackendOptions, FilePriority,
    Layout, PartFile, PartFileError, PartStatus, PartialBackend, PieceVerdict, Priorities,
    RecheckOptions, StoreError, Verifier,
};

/// Small enough that v1 pieces straddle files.
const PL: u64 = 16_384;

const FILES: [(&str, usize); 5] = [
    ("a.bin", 40_000),
    ("b.bin", 30_001),
    ("c.bin", 9),
    ("d.bin", 25_000),
    ("e.bin", 17_000),
];

struct Torrent {
    meta: Metainfo,
    layout: Layout,
    /// The whole byte stream, padding as zeros.
    stream: Vec<u8>,
    /// The source content (not the download directory).
    _src: tempfile::TempDir,
}

fn torrent(version: TorrentVersion) -> Torrent {
    let src = tempfile::tempdir().unwrap();
    let root = src.path().join("set");
    std::fs::create_dir_all(&root).unwrap();
    for (i, (name, len)) in FILES.iter().enumerate() {
        std::fs::write(root.join(name), bytes(i as u64 + 1, *len)).unwrap();
    }
    let t = TorrentBuilder::new(&root)
        .version(version)
        .piece_length(PL)
        .build()
        .unwrap();
    let meta = Metainfo::from_bytes(t.bytes).unwrap();
    let layout = Layout::new(&meta).unwrap();
    let mut stream = vec![0u8; layout.total_length() as usize];
    for f in layout.files().iter().filter(|f| !f.padding) {
        let name = f.path.rsplit('/').next().unwrap();
        let data = std::fs::read(root.join(name)).unwrap();
        stream[f.offset as usize..f.end() as usize].copy_from_slice(&data);
    }
    Torrent {
        meta,
        layout,
        stream,
        _src: src,
    }
}

fn file_index(layout: &Layout, name: &str) -> usize {
    layout
        .files()
        .iter()
        .position(|f| f.path.ends_with(name))
        .unwrap()
}

fn piece_bytes(t: &Torrent, piece: u32) -> &[u8] {
    let start = (u64::from(piece) * t.layout.piece_length()) as usize;
    &t.stream[start..start + t.layout.piece_size(piece) as usize]
}

fn part_path(dl: &Path, t: &Torrent) -> PathBuf {
    dl.join(PartFile::default_name(&t.meta.info_hashes()))
}

fn open_partial(dl: &Path, t: &Torrent, prio: Priorities) -> PartialBackend<FileBackend> {
    let disk = FileBackend::new(dl, &t.layout, FileBackendOptions::default()).unwrap();
    let (part, _) = PartFile::open(part_path(dl, t), &t.layout, &t.meta.info_hashes());
    PartialBackend::new(disk, &t.layout, part, prio).unwrap()
}

/// Writes every wanted piece, in blocks, as a download would.
fn download_wanted(t: &Torrent, backend: &PartialBackend<FileBackend>, prio: &Priorities) {
    for piece in prio.wanted_pieces().iter_ones() {
        let data = piece_bytes(t, piece);
        for (k, block) in data.chunks(4096).enumerate() {
            write_block(backend, &t.layout, piece, (k * 4096) as u32, block).unwrap();
        }
    }
}

fn opts() -> RecheckOptions<'static> {
    RecheckOptions {
        threads: NonZeroUsize::new(2),
        progress: None,
    }
}

fn disk_path(dl: &Path, t: &Torrent, file: usize) -> PathBuf {
    dl.join(&t.layout.files()[file].path)
}

#[test]
fn priorities_follow_the_files_a_piece_touches() {
    let t = torrent(TorrentVersion::V1);
    let b = file_index(&t.layout, "b.bin");
    let prio = Priorities::new(&t.layout).with(b, FilePriority::Skip);
    let (first, end) = (
        t.layout.files()[b].first_piece,
        t.layout.files()[b].end_piece,
    );
    // b.bin starts and ends mid-piece: its first and last pieces are shared with a and c/d.
    assert!(t.layout.files()[b].offset % PL != 0);
    assert_eq!(prio.piece_priority(first), FilePriority::Normal);
    assert_eq!(prio.piece_priority(end - 1), FilePriority::Normal);
    let inner: Vec<u32> = (first + 1..end - 1).collect();
    assert!(!inner.is_empty());
    for &p in &inner {
        assert_eq!(prio.piece_priority(p), FilePriority::Skip);
    }
    let wanted = prio.wanted_pieces();
    assert_eq!(wanted.count(), t.layout.num_pieces() - inner.len() as u32);
    let high = prio.clone().with(0, FilePriority::High);
    assert_eq!(high.piece_priority(first), FilePriority::High);
    assert!(FilePriority::Skip < FilePriority::Low && FilePriority::Normal < FilePriority::High);
    assert_eq!(FilePriority::from_u8(3), Some(FilePriority::High));
    assert_eq!(FilePriority::from_u8(4), None);
    assert_eq!(
        prio.piece_priority(t.layout.num_pieces()),
        FilePriority::Skip
    );
}

fn skip_middle_then_unskip(version: TorrentVersion) {
    let t = torrent(version);
    let dl = tempfile::tempdir().unwrap();
    let b = file_index(&t.layout, "b.bin");
    let prio = Priorities::new(&t.layout).with(b, FilePriority::Skip);
    let backend = open_partial(dl.path(), &t, prio.clone());
    assert!(backend.is_parked(b));
    download_wanted(&t, &backend, &prio);

    assert!(
        !disk_path(dl.path(), &t, b).exists(),
        "skipped file created"
    );
    assert!(part_path(dl.path(), &t).exists() == (version == TorrentVersion::V1));
    let verifier = Verifier::new(&t.meta, &t.layout);
    let wanted = prio.wanted_pieces();
    assert!(wanted.count() > 0);
    for piece in wanted.iter_ones() {
        let data = read_piece(&backend, &t.layout, piece).unwrap();
        assert_eq!(
            verifier.verify_piece(piece, &data),
            PieceVerdict::Ok,
            "{piece}"
        );
    }
    let report = recheck(&t.meta, &t.layout, &backend, &opts()).unwrap();
    assert_eq!(report.verified, wanted);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    // Pieces wholly inside the skipped file were never fetched.
    assert_eq!(
        report.missing.len() as u32,
        t.layout.num_pieces() - wanted.count()
    );
    assert!(!disk_path(dl.path(), &t, b).exists());

    // Reopen from disk: the part file's index survives.
    drop(backend);
    let (_, status) = PartFile::open(part_path(dl.path(), &t), &t.layout, &t.meta.info_hashes());
    match (version, status) {
        (TorrentVersion::V1, PartStatus::Loaded { pieces }) => assert_eq!(pieces, 2),
        (TorrentVersion::V1, other) => panic!("{other:?}"),
        (_, status) => assert!(matches!(status, PartStatus::Absent), "{status:?}"),
    }
    let backend = open_partial(dl.path(), &t, prio.clone());
    let report = recheck(&t.meta, &t.layout, &backend, &opts()).unwrap();
    assert_eq!(report.verified, wanted);

    // Unskip: the file appears with the bytes the part file held; fetch the rest.
    backend
        .set_priorities(prio.clone().with(b, FilePriority::High))
        .unwrap();
    assert!(!backend.is_parked(b));
    assert!(backend.part_file().pieces().is_empty());
    // Only v1 pieces straddle b.bin (hybrid files are piece-aligned): then its bytes from the
    // part file were moved in place.
    assert_eq!(
        disk_path(dl.path(), &t, b).exists(),
        version == TorrentVersion::V1
    );
    let report = recheck(&t.meta, &t.layout, &backend, &opts()).unwrap();
    assert_eq!(report.verified, wanted, "moved bytes must still verify");
    assert!(report.failed.is_empty() || version == TorrentVersion::V1);
    for piece in (0..t.layout.num_pieces()).filter(|&p| !report.verified.get(p)) {
        write_block(&backend, &t.layout, piece, 0, piece_bytes(&t, piece)).unwrap();
    }
    let report = recheck(&t.meta, &t.layout, &backend, &opts()).unwrap();
    assert!(report.verified.is_full(), "{report:?}");
    let f = &t.layout.files()[b];
    assert_eq!(
        std::fs::read(disk_path(dl.path(), &t, b)).unwrap(),
        t.stream[f.offset as usize..f.end() as usize]
    );
}

#[test]
fn v1_skip_middle_file_then_unskip() {
    skip_middle_then_unskip(TorrentVersion::V1);
}

#[test]
fn hybrid_skip_middle_file_then_unskip() {
    skip_middle_then_unskip(TorrentVersion::Hybrid);
}

#[test]
fn parked_reads_without_data_are_missing() {
    let t = torrent(TorrentVersion::V1);
    let dl = tempfile::tempdir().unwrap();
    let b = file_index(&t.layout, "b.bin");
    let backend = open_partial(
        dl.path(),
        &t,
        Priorities::new(&t.layout).with(b, FilePriority::Skip),
    );
    let mut buf = [0u8; 10];
    assert!(matches!(
        backend.read_at(b, 0, &mut buf),
        Err(StoreError::Missing { file, .. }) if file == b
    ));
    assert!(matches!(
        backend.read_at(b, 30_000, &mut buf),
        Err(StoreError::FileRange { .. })
    ));
    assert_eq!(backend.file_state(b).unwrap(), None);
    backend.set_len(b, 5).unwrap();
    backend.sync(b).unwrap();
    // A write straddling two pieces lands in two slots and reads back whole.
    let data = bytes(9, 20_000);
    backend.write_at(b, 100, &data).unwrap();
    let mut back = vec![0u8; 20_000];
    backend.read_at(b, 100, &mut back).unwrap();
    assert_eq!(back, data);
    assert_eq!(backend.part_file().pieces().len(), 2);
    assert!(!disk_path(dl.path(), &t, b).exists());
}

#[test]
fn a_file_already_on_disk_stays_there_when_skipped() {
    let t = torrent(TorrentVersion::V1);
    let dl = tempfile::tempdir().unwrap();
    let backend = open_partial(dl.path(), &t, Priorities::new(&t.layout));
    let prio = Priorities::new(&t.layout);
    download_wanted(&t, &backend, &prio);
    let b = file_index(&t.layout, "b.bin");
    backend
        .set_priorities(prio.with(b, FilePriority::Skip))
        .unwrap();
    assert!(!backend.is_parked(b));
    let report = recheck(&t.meta, &t.layout, &backend, &opts()).unwrap();
    assert!(report.verified.is_full());
    assert!(!part_path(dl.path(), &t).exists());
}

/// Writes some parked data and returns the download dir and the part file's path.
fn with_part_file(t: &Torrent) -> (tempfile::TempDir, PathBuf, Priorities) {
    let dl = tempfile::tempdir().unwrap();
    let b = file_index(&t.layout, "b.bin");
    let prio = Priorities::new(&t.layout).with(b, FilePriority::Skip);
    let backend = open_partial(dl.path(), t, prio.clone());
    download_wanted(t, &backend, &prio);
    backend.sync(b).unwrap();
    let path = part_path(dl.path(), t);
    (dl, path, prio)
}

fn status_of(t: &Torrent, path: &Path) -> PartStatus {
    PartFile::open(path, &t.layout, &t.meta.info_hashes()).1
}

#[test]
fn damaged_part_files_are_ignored() {
    let t = torrent(TorrentVersion::V1);
    let (dl, path, prio) = with_part_file(&t);
    let good = std::fs::read(&path).unwrap();
    assert!(matches!(
        status_of(&t, &path),
        PartStatus::Loaded { pieces: 2 }
    ));

    // Truncated inside the index.
    std::fs::write(&path, &good[..20]).unwrap();
    assert!(matches!(
        status_of(&t, &path),
        PartStatus::Discarded(PartFileError::Damaged { .. })
    ));
    // A flipped byte in the slot list of each copy (the checksum catches it).
    let mut bad = good.clone();
    for copy in 0..2 {
        let start = copy * 4096;
        let len = u64::from_be_bytes(bad[start..start + 8].try_into().unwrap()) as usize;
        if len > 0 && len < 4000 {
            let pos = start
                + 8
                + bad[start + 8..start + 8 + len]
                    .windows(5)
                    .position(|w| w == b"slots")
                    .unwrap()
                + 7;
            bad[pos] ^= 0x01;
        }
    }
    std::fs::write(&path, &bad).unwrap();
    assert!(matches!(
        status_of(&t, &path),
        PartStatus::Discarded(PartFileError::Damaged { .. })
    ));
    // A huge length prefix.
    let mut bad = good.clone();
    bad[..8].copy_from_slice(&u64::MAX.to_be_bytes());
    bad[4096..4104].copy_from_slice(&u64::MAX.to_be_bytes());
    std::fs::write(&path, &bad).unwrap();
    assert!(matches!(status_of(&t, &path), PartStatus::Discarded(_)));
    // Garbage.
    std::fs::write(&path, bytes(77, 10_000)).unwrap();
    assert!(matches!(status_of(&t, &path), PartStatus::Discarded(_)));
    // Another torrent's part file.
    let other = torrent(TorrentVersion::Hybrid);
    std::fs::write(&path, &good).unwrap();
    let status = status_of(&other, &path);
    assert!(
        matches!(
            status,
            PartStatus::Discarded(PartFileError::WrongTorrent { .. })
        ),
        "{status:?}"
    );

    // A backend over a damaged part file: the straddling pieces are missing, not wrong, and
    // writing again replaces the file.
    std::fs::write(&path, &good[..20]).unwrap();
    let backend = open_partial(dl.path(), &t, prio.clone());
    let report = recheck(&t.meta, &t.layout, &backend, &opts()).unwrap();
    assert!(report.failed.is_empty());
    assert_eq!(report.verified.count(), prio.wanted_pieces().count() - 2);
    download_wanted(&t, &backend, &prio);
    let report = recheck(&t.meta, &t.layout, &backend, &opts()).unwrap();
    assert_eq!(report.verified, prio.wanted_pieces());
    drop(backend);
    assert!(matches!(
        status_of(&t, &path),
        PartStatus::Loaded { pieces: 2 }
    ));
}

#[test]
fn a_torn_index_write_falls_back_to_the_other_copy() {
    let t = torrent(TorrentVersion::V1);
    let (_dl, path, _) = with_part_file(&t);
    let mut bad = std::fs::read(&path).unwrap();
    // Two slots were allocated: generation 2 lives in copy 0. Tear it.
    for b in &mut bad[8..40] {
        *b = 0xff;
    }
    std::fs::write(&path, &bad).unwrap();
    // Copy 1 (generation 1) still holds one slot.
    assert!(matches!(
        status_of(&t, &path),
        PartStatus::Loaded { pieces: 1 }
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn random_skip_masks(mask in 0u8..32, hybrid in any::<bool>()) {
        let version = if hybrid { TorrentVersion::Hybrid } else { TorrentVersion::V1 };
        let t = torrent(version);
        let dl = tempfile::tempdir().unwrap();
        let mut prio = Priorities::new(&t.layout);
        let mut skipped = Vec::new();
        for (i, (name, _)) in FILES.iter().enumerate() {
            if mask & (1 << i) != 0 {
                let f = file_index(&t.layout, name);
                prio.set(f, FilePriority::Skip);
                skipped.push(f);
            }
        }
        let backend = open_partial(dl.path(), &t, prio.clone());
        download_wanted(&t, &backend, &prio);
        let verifier = Verifier::new(&t.meta, &t.layout);
        let wanted = prio.wanted_pieces();
        for piece in wanted.iter_ones() {
            let data = read_piece(&backend, &t.layout, piece).unwrap();
            prop_assert_eq!(verifier.verify_piece(piece, &data), PieceVerdict::Ok);
        }
        for &f in &skipped {
            prop_assert!(!disk_path(dl.path(), &t, f).exists());
        }
        let report = recheck(&t.meta, &t.layout, &backend, &opts()).unwrap();
        prop_assert_eq!(report.verified, wanted);
    }
}

#[test]
fn threads_writing_at_once_share_the_part_file() {
    let t = torrent(TorrentVersion::V1);
    let dl = tempfile::tempdir().unwrap();
    let b = file_index(&t.layout, "b.bin");
    let d = file_index(&t.layout, "d.bin");
    let prio = Priorities::new(&t.layout)
        .with(b, FilePriority::Skip)
        .with(d, FilePriority::Skip);
    let backend = open_partial(dl.path(), &t, prio.clone());
    let wanted: Vec<u32> = prio.wanted_pieces().iter_ones().collect();
    std::thread::scope(|s| {
        for block in 0..4u32 {
            let (t, backend, wanted) = (&t, &backend, &wanted);
            s.spawn(move || {
                for &piece in wanted {
                    let data = piece_bytes(t, piece);
                    let start = (block * 4096) as usize;
                    if start < data.len() {
                        let end = (start + 4096).min(data.len());
                        write_block(backend, &t.layout, piece, block * 4096, &data[start..end])
                            .unwrap();
                    }
                }
            });
        }
    });
    let report = recheck(&t.meta, &t.layout, &backend, &opts()).unwrap();
    assert_eq!(report.verified, prio.wanted_pieces());
    assert!(!disk_path(dl.path(), &t, b).exists());
    assert!(!disk_path(dl.path(), &t, d).exists());
    drop(backend);
    let (part, status) = PartFile::open(part_path(dl.path(), &t), &t.layout, &t.meta.info_hashes());
    assert!(matches!(status, PartStatus::Loaded { .. }), "{status:?}");
    assert_eq!(part.pieces().len(), status_pieces(&status) as usize);
}

fn status_pieces(s: &PartStatus) -> u32 {
    match s {
        PartStatus::Loaded { pieces } => *pieces,
        _ => 0,
    }
}
