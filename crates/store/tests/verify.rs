//! Piece verification on v1, v2 and hybrid torrents made from real files.
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

use std::path::Path;

use tessera_metainfo::{Metainfo, TorrentBuilder, TorrentVersion};
use tessera_store::{
    read_piece, Backend, FileBackend, FileBackendOptions, HashError, Layout, MemoryBackend,
    PieceHasher, PieceVerdict, Verifier,
};

const VERSIONS: [TorrentVersion; 3] = [
    TorrentVersion::V1,
    TorrentVersion::V2,
    TorrentVersion::Hybrid,
];

/// A shuffled copy of `0..n`.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let r = bytes(seed, n * 4);
    for i in (1..n).rev() {
        let k = u32::from_le_bytes([r[i * 4], r[i * 4 + 1], r[i * 4 + 2], r[i * 4 + 3]]) as usize;
        v.swap(i, k % (i + 1));
    }
    v
}

/// Multi-file content with odd sizes and an empty file under `dir/album`.
fn make_content(dir: &Path) {
    let root = dir.join("album");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.bin"), bytes(1, 100_000)).unwrap();
    std::fs::write(root.join("empty.txt"), b"").unwrap();
    std::fs::write(root.join("sub/b.bin"), bytes(2, 3 * 16_384 + 7)).unwrap();
    std::fs::write(root.join("sub/c.bin"), bytes(3, 5)).unwrap();
    std::fs::write(root.join("d.bin"), bytes(4, 70_001)).unwrap();
}

fn torrent(dir: &Path, version: TorrentVersion, piece_length: u64) -> (Metainfo, Layout) {
    let t = TorrentBuilder::new(dir.join("album"))
        .version(version)
        .piece_length(piece_length)
        .build()
        .unwrap();
    let meta = Metainfo::from_bytes(t.bytes).unwrap();
    assert_eq!(meta.version(), version);
    let layout = Layout::new(&meta).unwrap();
    (meta, layout)
}

/// Copies the files on disk into a memory backend.
fn to_memory(dir: &Path, layout: &Layout) -> MemoryBackend {
    let mem = MemoryBackend::new(layout);
    for (i, f) in layout.files().iter().enumerate() {
        if !f.padding {
            let data = std::fs::read(dir.join(&f.path)).unwrap();
            mem.write_at(i, 0, &data).unwrap();
        }
    }
    mem
}

fn file_index(layout: &Layout, name: &str) -> usize {
    layout
        .files()
        .iter()
        .position(|f| f.path.ends_with(name))
        .unwrap()
}

#[test]
fn every_piece_verifies_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    make_content(dir.path());
    for version in VERSIONS {
        for piece_length in [16_384, 32_768, 65_536] {
            let (meta, layout) = torrent(dir.path(), version, piece_length);
            let disk =
                FileBackend::new(dir.path(), &layout, FileBackendOptions::default()).unwrap();
            let verifier = Verifier::new(&meta, &layout);
            assert!(layout.num_pieces() > 3);
            for piece in 0..layout.num_pieces() {
                let data = read_piece(&disk, &layout, piece).unwrap();
                assert_eq!(
                    verifier.verify_piece(piece, &data),
                    PieceVerdict::Ok,
                    "{version} piece length {piece_length} piece {piece}"
                );
            }
            assert_eq!(
                verifier.verify_piece(layout.num_pieces(), &[]),
                PieceVerdict::Unverifiable
            );
        }
    }
}

#[test]
fn a_flipped_byte_fails_exactly_its_piece() {
    let dir = tempfile::tempdir().unwrap();
    make_content(dir.path());
    for version in VERSIONS {
        for piece_length in [16_384, 32_768] {
            let (meta, layout) = torrent(dir.path(), version, piece_length);
            let mem = to_memory(dir.path(), &layout);
            let verifier = Verifier::new(&meta, &layout);
            // Flip a byte in the middle of a multi-piece file and in its short last piece.
            for (name, at) in [("d.bin", 40_000u64), ("sub/b.bin", 3 * 16_384 + 3)] {
                let file = file_index(&layout, name);
                let f = &layout.files()[file];
                let mut b = [0u8];
                mem.read_at(file, at, &mut b).unwrap();
                mem.write_at(file, at, &[b[0] ^ 0x20]).unwrap();
                let bad = u32::try_from((f.offset + at) / piece_length).unwrap();
                for piece in 0..layout.num_pieces() {
                    let data = read_piece(&mem, &layout, piece).unwrap();
                    let verdict = verifier.verify_piece(piece, &data);
                    if piece == bad {
                        let expect = PieceVerdict::Failed {
                            v1: version.has_v1(),
                            v2: version.has_v2(),
                        };
                        assert_eq!(verdict, expect, "{version} {name} piece {piece}");
                        assert!(!verifier.is_version_conflict(&verdict));
                        assert!(verdict.to_string().contains("mismatch"), "{verdict}");
                    } else {
                        assert_eq!(verdict, PieceVerdict::Ok, "{version} {name} piece {piece}");
                    }
                }
                mem.write_at(file, at, &b).unwrap();
            }
        }
    }
}

#[test]
fn wrong_length_fails() {
    let dir = tempfile::tempdir().unwrap();
    make_content(dir.path());
    for version in VERSIONS {
        let (meta, layout) = torrent(dir.path(), version, 32_768);
        let mem = to_memory(dir.path(), &layout);
        let verifier = Verifier::new(&meta, &layout);
        let mut data = read_piece(&mem, &layout, 0).unwrap();
        data.push(0);
        assert!(!verifier.verify_piece(0, &data).is_ok());
        data.truncate(data.len() - 2);
        assert!(!verifier.verify_piece(0, &data).is_ok());
    }
}

#[test]
fn piece_hasher_in_any_order_matches_verify_piece() {
    let dir = tempfile::tempdir().unwrap();
    make_content(dir.path());
    for version in VERSIONS {
        for piece_length in [16_384, 65_536] {
            let (meta, layout) = torrent(dir.path(), version, piece_length);
            let mem = to_memory(dir.path(), &layout);
            let verifier = Verifier::new(&meta, &layout);
            let d = file_index(&layout, "d.bin");
            let d_piece = layout.files()[d].first_piece + 1;
            for corrupt in [false, true] {
                for piece in 0..layout.num_pieces() {
                    let mut data = read_piece(&mem, &layout, piece).unwrap();
                    if corrupt && piece == d_piece {
                        data[100] ^= 1;
                    }
                    let expect = verifier.verify_piece(piece, &data);
                    let blocks: Vec<(usize, &[u8])> = data
                        .chunks(16_384)
                        .enumerate()
                        .map(|(i, c)| (i * 16_384, c))
                        .collect();
                    let mut h = PieceHasher::new(&verifier, piece);
                    for k in shuffled(blocks.len(), u64::from(piece) + 7) {
                        let (begin, block) = blocks[k];
                        h.update(begin as u64, block).unwrap();
                    }
                    assert!(h.is_complete());
                    let got = h.finish();
                    assert_eq!(got, expect, "{version} piece {piece} corrupt {corrupt}");
                    assert_eq!(got.is_ok(), !(corrupt && piece == d_piece));
                }
            }
        }
    }
}

#[test]
fn piece_hasher_rejects_bad_ranges_and_fails_incomplete_pieces() {
    let dir = tempfile::tempdir().unwrap();
    make_content(dir.path());
    let (meta, layout) = torrent(dir.path(), TorrentVersion::Hybrid, 65_536);
    let mem = to_memory(dir.path(), &layout);
    let verifier = Verifier::new(&meta, &layout);
    let data = read_piece(&mem, &layout, 0).unwrap();
    assert_eq!(data.len(), 65_536);

    let mut h = PieceHasher::new(&verifier, 0);
    assert_eq!(
        h.update(1, &data[1..16_385]),
        Err(HashError::Unaligned {
            begin: 1,
            len: 16_384
        })
    );
    assert!(matches!(
        h.update(49_152, &data[..32_768]),
        Err(HashError::OutOfRange { .. })
    ));
    // Two blocks at once is fine; the same block again is not.
    h.update(16_384, &data[16_384..49_152]).unwrap();
    assert_eq!(
        h.update(32_768, &data[32_768..49_152]),
        Err(HashError::Duplicate { begin: 32_768 })
    );
    h.update(0, &data[..16_384]).unwrap();
    assert!(!h.is_complete());
    // The last block never came.
    assert_eq!(h.finish(), PieceVerdict::Failed { v1: true, v2: true });
}

#[test]
fn verdict_reports_version_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    make_content(dir.path());
    let conflict = PieceVerdict::Failed {
        v1: false,
        v2: true,
    };
    assert!(conflict.to_string().contains("v2 (merkle) hash mismatch"));
    let v1_fail = PieceVerdict::Failed {
        v1: true,
        v2: false,
    };
    let (meta, layout) = torrent(dir.path(), TorrentVersion::Hybrid, 32_768);
    let hybrid = Verifier::new(&meta, &layout);
    assert!(hybrid.is_version_conflict(&conflict));
    assert!(hybrid.is_version_conflict(&v1_fail));
    assert!(!hybrid.is_version_conflict(&PieceVerdict::Ok));
    let (meta1, layout1) = torrent(dir.path(), TorrentVersion::V1, 32_768);
    assert!(!Verifier::new(&meta1, &layout1).is_version_conflict(&v1_fail));
}
