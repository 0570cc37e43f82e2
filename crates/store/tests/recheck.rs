//! Parallel recheck over files on disk: good data, corrupted data, missing and short files.
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

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use tessera_metainfo::{Metainfo, TorrentBuilder, TorrentVersion};
use tessera_store::{
    recheck, FileBackend, FileBackendOptions, Layout, MemoryBackend, PieceVerdict, RecheckOptions,
};

const PL: u64 = 32_768;

const VERSIONS: [TorrentVersion; 3] = [
    TorrentVersion::V1,
    TorrentVersion::V2,
    TorrentVersion::Hybrid,
];

/// Makes `dir/album` and a torrent of it; returns the torrent and its layout.
fn setup(dir: &Path, version: TorrentVersion) -> (Metainfo, Layout) {
    let root = dir.join("album");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.bin"), bytes(1, 200_000)).unwrap();
    std::fs::write(root.join("empty.txt"), b"").unwrap();
    std::fs::write(root.join("sub/b.bin"), bytes(2, 50_001)).unwrap();
    std::fs::write(root.join("sub/c.bin"), bytes(3, 9)).unwrap();
    std::fs::write(root.join("d.bin"), bytes(4, 130_003)).unwrap();
    let t = TorrentBuilder::new(&root)
        .version(version)
        .piece_length(PL)
        .build()
        .unwrap();
    let meta = Metainfo::from_bytes(t.bytes).unwrap();
    let layout = Layout::new(&meta).unwrap();
    (meta, layout)
}

fn file_index(layout: &Layout, name: &str) -> usize {
    layout
        .files()
        .iter()
        .position(|f| f.path.ends_with(name))
        .unwrap()
}

fn opts(threads: usize) -> RecheckOptions<'static> {
    RecheckOptions {
        threads: NonZeroUsize::new(threads),
        progress: None,
    }
}

#[test]
fn good_data_verifies_everything_and_progress_reaches_total() {
    for version in VERSIONS {
        let dir = tempfile::tempdir().unwrap();
        let (meta, layout) = setup(dir.path(), version);
        let disk = FileBackend::new(dir.path(), &layout, FileBackendOptions::default()).unwrap();
        let calls = AtomicU32::new(0);
        let max_done = AtomicU32::new(0);
        let progress = |done: u32, total: u32| {
            assert_eq!(total, layout.num_pieces());
            calls.fetch_add(1, Ordering::Relaxed);
            max_done.fetch_max(done, Ordering::Relaxed);
        };
        let report = recheck(
            &meta,
            &layout,
            &disk,
            &RecheckOptions {
                threads: NonZeroUsize::new(4),
                progress: Some(&progress),
            },
        )
        .unwrap();
        assert!(report.verified.is_full(), "{version}");
        assert_eq!(report.verified.count(), layout.num_pieces());
        assert!(report.failed.is_empty(), "{version}: {:?}", report.failed);
        assert!(report.missing.is_empty(), "{version}: {:?}", report.missing);
        assert_eq!(calls.load(Ordering::Relaxed), layout.num_pieces());
        assert_eq!(max_done.load(Ordering::Relaxed), layout.num_pieces());
    }
}

#[test]
fn corrupted_pieces_are_exactly_the_failed_ones() {
    for version in VERSIONS {
        let dir = tempfile::tempdir().unwrap();
        let (meta, layout) = setup(dir.path(), version);
        let mut expect = BTreeSet::new();
        for (name, at) in [("a.bin", 70_000u64), ("d.bin", 130_000), ("a.bin", 3)] {
            let file = file_index(&layout, name);
            let path = dir.path().join(&layout.files()[file].path);
            let mut data = std::fs::read(&path).unwrap();
            data[at as usize] ^= 0x80;
            std::fs::write(&path, data).unwrap();
            expect.insert(u32::try_from((layout.files()[file].offset + at) / PL).unwrap());
        }
        let disk = FileBackend::new(dir.path(), &layout, FileBackendOptions::default()).unwrap();
        for threads in [1, 3] {
            let report = recheck(&meta, &layout, &disk, &opts(threads)).unwrap();
            let failed: BTreeSet<u32> = report.failed.iter().map(|(p, _)| *p).collect();
            assert_eq!(failed, expect, "{version}");
            for (_, verdict) in &report.failed {
                assert_eq!(
                    *verdict,
                    PieceVerdict::Failed {
                        v1: version.has_v1(),
                        v2: version.has_v2()
                    }
                );
            }
            assert!(report.missing.is_empty());
            assert_eq!(
                report.verified.count() as usize,
                layout.num_pieces() as usize - expect.len()
            );
            assert!(expect.iter().all(|p| !report.verified.get(*p)));
        }
    }
}

#[test]
fn absent_and_short_files_count_as_missing() {
    for version in VERSIONS {
        let dir = tempfile::tempdir().unwrap();
        let (meta, layout) = setup(dir.path(), version);
        let b = file_index(&layout, "sub/b.bin");
        let d = file_index(&layout, "d.bin");
        std::fs::remove_file(dir.path().join(&layout.files()[b].path)).unwrap();
        // Cut d.bin inside its third piece: that piece and every later one of d is missing.
        let d_path = dir.path().join(&layout.files()[d].path);
        let d_data = std::fs::read(&d_path).unwrap();
        let d_offset = layout.files()[d].offset;
        let cut = (PL * 2 + 100 - d_offset % PL) as usize;
        std::fs::write(&d_path, &d_data[..cut]).unwrap();

        let mut expect: BTreeSet<u32> = layout.file_pieces(b).collect();
        let first_short = u32::try_from((d_offset + cut as u64) / PL).unwrap();
        expect.extend(first_short..layout.file_pieces(d).end);

        let disk = FileBackend::new(dir.path(), &layout, FileBackendOptions::default()).unwrap();
        let report = recheck(&meta, &layout, &disk, &opts(0)).unwrap();
        let missing: BTreeSet<u32> = report.missing.iter().copied().collect();
        assert_eq!(missing, expect, "{version}");
        assert!(report.failed.is_empty(), "{version}: {:?}", report.failed);
        assert_eq!(
            report.verified.count() as usize,
            layout.num_pieces() as usize - expect.len()
        );
    }
}

#[test]
fn empty_store_is_all_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, layout) = setup(dir.path(), TorrentVersion::Hybrid);
    let mem = MemoryBackend::new(&layout);
    let report = recheck(&meta, &layout, &mem, &RecheckOptions::default()).unwrap();
    assert_eq!(report.verified.count(), 0);
    assert_eq!(report.missing.len(), layout.num_pieces() as usize);
    assert!(report.missing.windows(2).all(|w| w[0] < w[1]));
}

/// Pieces of 1 MiB, four times a read chunk: each is read and hashed a chunk at a time, and
/// a flipped byte, a short file and a file absent still land on exactly the right pieces.
#[test]
fn large_pieces_are_hashed_in_parts() {
    const BIG: u64 = 1 << 20;
    for version in VERSIONS {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("big");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("a.bin"), bytes(11, 3 * BIG as usize + 12_345)).unwrap();
        std::fs::write(root.join("b.bin"), bytes(12, 40_000)).unwrap();
        std::fs::write(root.join("c.bin"), bytes(13, 2 * BIG as usize + 1)).unwrap();
        let t = TorrentBuilder::new(&root)
            .version(version)
            .piece_length(BIG)
            .build()
            .unwrap();
        let meta = Metainfo::from_bytes(t.bytes).unwrap();
        let layout = Layout::new(&meta).unwrap();
        let disk = FileBackend::new(dir.path(), &layout, FileBackendOptions::default()).unwrap();
        let report = recheck(&meta, &layout, &disk, &opts(2)).unwrap();
        assert!(report.verified.is_full(), "{version}: {:?}", report.failed);

        // A byte flipped in the third chunk of a's second piece.
        let a = file_index(&layout, "a.bin");
        let a_path = dir.path().join(&layout.files()[a].path);
        let mut data = std::fs::read(&a_path).unwrap();
        let at = BIG + 600_000;
        data[at as usize] ^= 1;
        std::fs::write(&a_path, &data).unwrap();
        // c cut short in its second piece.
        let c = file_index(&layout, "c.bin");
        let c_path = dir.path().join(&layout.files()[c].path);
        let c_data = std::fs::read(&c_path).unwrap();
        std::fs::write(&c_path, &c_data[..BIG as usize + 300_000]).unwrap();

        for threads in [1, 2, 5] {
            let report = recheck(&meta, &layout, &disk, &opts(threads)).unwrap();
            let failed: Vec<u32> = report.failed.iter().map(|(p, _)| *p).collect();
            let a_piece = u32::try_from((layout.files()[a].offset + at) / BIG).unwrap();
            assert_eq!(failed, [a_piece], "{version}");
            let first_short =
                u32::try_from((layout.files()[c].offset + BIG + 300_000) / BIG).unwrap();
            let missing: Vec<u32> = (first_short..layout.file_pieces(c).end).collect();
            assert_eq!(report.missing, missing, "{version}");
            assert_eq!(
                report.verified.count() as usize,
                layout.num_pieces() as usize - 1 - missing.len()
            );
        }
    }
}
