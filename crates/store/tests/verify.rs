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

use tessera_metainfo::merkle::{piece_layer_height, MerkleTree, BLOCK_SIZE};
use tessera_metainfo::{Metainfo, Sha256Hash, TorrentBuilder, TorrentVersion};
use tessera_store::{
    read_block, read_piece, recheck_with, Backend, BlockError, FileBackend, FileBackendOptions,
    HashError, Layout, MemoryBackend, PieceHasher, PieceLayerError, PieceLayers, PieceVerdict,
    RecheckOptions, Verifier,
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

/// The uncle hashes a peer would send for the block at `begin` of `piece`: from the leaf up to
/// the file's root, built from the file's bytes on disk. `None` for a block wholly in padding.
fn uncles(dir: &Path, layout: &Layout, piece: u32, begin: u32) -> Option<(Vec<Sha256Hash>, usize)> {
    let pl = layout.piece_length();
    let start = u64::from(piece) * pl + u64::from(begin);
    let (i, f) = layout
        .files()
        .iter()
        .enumerate()
        .find(|(_, f)| !f.padding && f.offset <= start && start < f.end())?;
    let data = std::fs::read(dir.join(&f.path)).unwrap();
    let tree = MerkleTree::from_data(&data);
    assert_eq!(Some(tree.root()), f.pieces_root);
    let leaf = ((start - f.offset) / BLOCK_SIZE) as usize;
    Some((tree.proof(0, leaf).unwrap(), i))
}

/// Every block of every piece of a v2 and a hybrid torrent (with padding after its files)
/// verifies on its own against its file's root and against its piece hash; a flipped byte,
/// a wrong uncle and a misplaced block are refused.
#[test]
fn single_blocks_verify_against_root_and_piece_layer() {
    for version in [TorrentVersion::V2, TorrentVersion::Hybrid] {
        for pl in [16_384u64, 65_536] {
            let dir = tempfile::tempdir().unwrap();
            make_content(dir.path());
            let (meta, layout) = torrent(dir.path(), version, pl);
            let src = FileBackend::new(dir.path(), &layout, FileBackendOptions::default()).unwrap();
            let verifier = Verifier::new(&meta, &layout);
            let h = piece_layer_height(pl) as usize;
            let (mut checked, mut padding, mut straddling) = (0, 0, 0);
            for piece in 0..layout.num_pieces() {
                for block in 0..layout.block_count(piece) {
                    let begin = block * 16_384;
                    let len = layout.block_len(piece, block).unwrap();
                    let mut data = vec![0u8; len as usize];
                    read_block(&src, &layout, piece, begin, len, &mut data).unwrap();
                    let Some((proof, file)) = uncles(dir.path(), &layout, piece, begin) else {
                        // Wholly padding: zeros verify with no proof, anything else does not.
                        verifier
                            .verify_block_proof(piece, begin, &data, &[])
                            .unwrap();
                        padding += 1;
                        data[0] = 1;
                        assert_eq!(
                            verifier.verify_block_proof(piece, begin, &data, &[]),
                            Err(BlockError::PaddingNotZero)
                        );
                        continue;
                    };
                    let ctx = format!("{version:?} pl {pl} piece {piece} block {block}");
                    verifier
                        .verify_block_proof(piece, begin, &data, &proof)
                        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    let small = layout.files()[file].length <= pl;
                    let to_piece = if small { &proof[..] } else { &proof[..h] };
                    verifier
                        .verify_block_in_piece(piece, begin, &data, to_piece)
                        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    checked += 1;

                    let mut bad = data.clone();
                    bad[0] ^= 0x80;
                    assert_eq!(
                        verifier.verify_block_proof(piece, begin, &bad, &proof),
                        Err(BlockError::Mismatch),
                        "{ctx}"
                    );
                    assert_eq!(
                        verifier.verify_block_in_piece(piece, begin, &bad, to_piece),
                        Err(BlockError::Mismatch),
                        "{ctx}"
                    );
                    if let Some(first) = proof.first() {
                        let mut wrong = proof.clone();
                        wrong[0] = Sha256Hash([first.0[0] ^ 1; 32]);
                        assert_eq!(
                            verifier.verify_block_proof(piece, begin, &data, &wrong),
                            Err(BlockError::Mismatch),
                            "{ctx}"
                        );
                    }
                    // In a hybrid torrent, a file's last block runs on into zero padding:
                    // non-zero bytes there are refused.
                    let f = &layout.files()[file];
                    let file_end_in_block = f.end() - (u64::from(piece) * pl + u64::from(begin));
                    if (file_end_in_block as usize) < data.len() {
                        straddling += 1;
                        let mut dirty = data.clone();
                        *dirty.last_mut().unwrap() = 9;
                        assert_eq!(
                            verifier.verify_block_proof(piece, begin, &dirty, &proof),
                            Err(BlockError::PaddingNotZero),
                            "{ctx}"
                        );
                    }
                }
            }
            assert!(checked > 10);
            if version == TorrentVersion::Hybrid {
                assert!(straddling > 0, "no block ran into padding");
                if pl > 16_384 {
                    assert!(padding > 0, "no block was all padding");
                }
            }
            // Misuse: unaligned, past the end, wrong length, a v1 torrent.
            let block = vec![0u8; 16_384];
            assert_eq!(
                verifier.verify_block_proof(0, 1, &block, &[]),
                Err(BlockError::Unaligned { begin: 1 })
            );
            assert!(matches!(
                verifier.verify_block_proof(layout.num_pieces(), 0, &block, &[]),
                Err(BlockError::OutOfRange { .. })
            ));
            assert!(matches!(
                verifier.verify_block_proof(0, 0, &block[..100], &[]),
                Err(BlockError::WrongLength { .. })
            ));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    make_content(dir.path());
    let (meta, layout) = torrent(dir.path(), TorrentVersion::V1, 16_384);
    assert_eq!(
        Verifier::new(&meta, &layout).verify_block_proof(0, 0, &[0u8; 16_384], &[]),
        Err(BlockError::NotV2)
    );
}

/// The torrent as a magnet link yields it: the info dictionary alone, no piece layers.
fn without_piece_layers(meta: &Metainfo) -> Metainfo {
    let mut bytes = b"d4:info".to_vec();
    bytes.extend_from_slice(&meta.info_bytes());
    bytes.push(b'e');
    let bare = Metainfo::from_bytes(bytes).unwrap();
    assert_eq!(bare.info_hashes(), meta.info_hashes());
    bare
}

/// A v2 torrent from a magnet link: nothing beyond single-piece files verifies until the piece
/// layers arrive; layers that do not match a file's root are refused; once they are in, pieces,
/// streamed pieces, single blocks and a recheck all verify, and corruption is still caught.
#[test]
fn piece_layers_supplied_later_are_checked_then_used() {
    for version in [TorrentVersion::V2, TorrentVersion::Hybrid] {
        let dir = tempfile::tempdir().unwrap();
        make_content(dir.path());
        let pl = 16_384;
        let (full, layout) = torrent(dir.path(), version, pl);
        let meta = without_piece_layers(&full);
        let disk = FileBackend::new(dir.path(), &layout, FileBackendOptions::default()).unwrap();
        let a = file_index(&layout, "a.bin");
        let d = file_index(&layout, "d.bin");
        let c = file_index(&layout, "sub/c.bin");

        let mut layers = PieceLayers::new(&layout);
        assert!(!layers.is_complete());
        let missing: Vec<usize> = layers.missing().collect();
        assert!(missing.contains(&a) && missing.contains(&d) && !missing.contains(&c));
        assert_eq!(
            layers.get(c),
            Some(&[layout.files()[c].pieces_root.unwrap()][..])
        );
        assert_eq!(
            PieceLayers::from_metainfo(&full, &layout).missing().count(),
            0,
            "a torrent file carries every layer"
        );

        // Before: a piece of a.bin cannot be checked by v2 (a hybrid still has SHA-1).
        let a_piece = layout.files()[a].first_piece + 1;
        let data = read_piece(&disk, &layout, a_piece).unwrap();
        let v = Verifier::with_piece_layers(&meta, &layout, &layers);
        let before = v.verify_piece(a_piece, &data);
        match version {
            TorrentVersion::V2 => assert_eq!(before, PieceVerdict::Unverifiable),
            _ => assert_eq!(before, PieceVerdict::Ok),
        }
        assert_eq!(
            v.verify_block_in_piece(a_piece, 0, &data[..16_384], &[]),
            Err(BlockError::NoPieceHash { piece: a_piece })
        );

        // Bad layers are refused and change nothing.
        let good_a = full
            .piece_layer(layout.files()[a].metainfo_index.unwrap())
            .unwrap()
            .to_vec();
        let mut forged = good_a.clone();
        forged[2].0[5] ^= 1;
        assert_eq!(
            layers.insert(a, forged),
            Err(PieceLayerError::RootMismatch { file: a })
        );
        assert!(matches!(
            layers.insert(a, good_a[1..].to_vec()),
            Err(PieceLayerError::WrongCount { .. })
        ));
        assert!(matches!(
            layers.insert(999, vec![]),
            Err(PieceLayerError::NoSuchFile { .. })
        ));
        if let Some(pad) = layout.files().iter().position(|f| f.padding) {
            assert_eq!(
                layers.insert(pad, vec![]),
                Err(PieceLayerError::NotV2File { file: pad })
            );
        }
        assert_eq!(layers.get(a), None);

        // The peer's layers, checked against the roots, found by root as `hashes` name them.
        for file in layers.missing().collect::<Vec<_>>() {
            let root = layout.files()[file].pieces_root.unwrap();
            assert_eq!(layers.file_by_root(&root), Some(file));
            let mi = layout.files()[file].metainfo_index.unwrap();
            layers
                .insert(file, full.piece_layer(mi).unwrap().to_vec())
                .unwrap();
        }
        assert!(layers.is_complete());
        assert_eq!(layers, PieceLayers::from_metainfo(&full, &layout));

        let v = Verifier::with_piece_layers(&meta, &layout, &layers);
        let full_v = Verifier::new(&full, &layout);
        for piece in 0..layout.num_pieces() {
            let data = read_piece(&disk, &layout, piece).unwrap();
            assert_eq!(
                v.verify_piece(piece, &data),
                PieceVerdict::Ok,
                "piece {piece}"
            );
            assert_eq!(full_v.verify_piece(piece, &data), PieceVerdict::Ok);
            let mut h = PieceHasher::new(&v, piece);
            h.update(0, &data).unwrap();
            assert_eq!(h.finish(), PieceVerdict::Ok);
        }
        let mut bad = data.clone();
        bad[100] ^= 1;
        assert!(matches!(
            v.verify_piece(a_piece, &bad),
            PieceVerdict::Failed { v2: true, .. }
        ));
        v.verify_block_in_piece(a_piece, 0, &data[..16_384], &[])
            .unwrap();
        assert_eq!(
            v.verify_block_in_piece(a_piece, 0, &bad[..16_384], &[]),
            Err(BlockError::Mismatch)
        );

        let report = recheck_with(&v, &disk, &RecheckOptions::default()).unwrap();
        assert!(
            report.verified.is_full(),
            "{version:?}: {:?}",
            report.failed
        );
        // Without the layers, a v2 recheck cannot vouch for the multi-piece files.
        let report = recheck_with(
            &Verifier::new(&meta, &layout),
            &disk,
            &RecheckOptions::default(),
        )
        .unwrap();
        if version == TorrentVersion::V2 {
            assert!(report
                .failed
                .iter()
                .any(|(p, v)| *p == a_piece && *v == PieceVerdict::Unverifiable));
        } else {
            assert!(report.verified.is_full());
        }
    }
}
