//! The piece map: random torrents made by `TorrentBuilder` map every byte of their files
//! exactly once, and blocks written in any order through either backend read back unchanged
//! (and hash to the torrent's v1 piece hashes).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use sha1::{Digest, Sha1};
use tessera_metainfo::{Metainfo, TorrentBuilder, TorrentVersion};
use tessera_store::{
    read_block, read_piece, write_block, Backend, FileBackend, FileBackendOptions, Layout,
    MemoryBackend, StoreError, BLOCK_SIZE,
};

/// Deterministic file content.
fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u64).wrapping_mul(2_654_435_761) >> 11) as u8 ^ seed)
        .collect()
}

/// Writes files `t/f<i>` of the given sizes under `root` and builds a torrent of `root/t`.
fn make_torrent(
    root: &Path,
    sizes: &[usize],
    piece_length: u64,
    version: TorrentVersion,
) -> Metainfo {
    let dir = root.join("t");
    fs::create_dir_all(&dir).unwrap();
    for (i, &len) in sizes.iter().enumerate() {
        fs::write(dir.join(format!("f{i}")), content(len, i as u8)).unwrap();
    }
    let t = TorrentBuilder::new(&dir)
        .version(version)
        .piece_length(piece_length)
        .build()
        .unwrap();
    Metainfo::from_bytes(t.bytes).unwrap()
}

/// The torrent's byte stream, read from the files the torrent was made of under `root`.
fn stream(root: &Path, layout: &Layout) -> Vec<u8> {
    // A directory of one file makes a single-file torrent, whose path is the file's name.
    let single = layout
        .files()
        .iter()
        .all(|f| f.padding || !f.path.starts_with("t/"));
    let root = if single {
        root.join("t")
    } else {
        root.to_path_buf()
    };
    let mut out = Vec::new();
    for f in layout.files() {
        assert_eq!(f.offset, out.len() as u64);
        if f.padding {
            out.resize(out.len() + f.length as usize, 0);
        } else {
            let data = fs::read(root.join(&f.path)).unwrap();
            assert_eq!(data.len() as u64, f.length, "{}", f.path);
            out.extend_from_slice(&data);
        }
    }
    out
}

fn version_strategy() -> impl Strategy<Value = TorrentVersion> {
    prop_oneof![
        Just(TorrentVersion::V1),
        Just(TorrentVersion::V2),
        Just(TorrentVersion::Hybrid),
    ]
}

fn sizes_strategy() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![
            Just(0usize),
            1usize..40_000,
            16_384usize..=16_384,
            1usize..150_000
        ],
        1..6,
    )
    .prop_filter("some content", |v| v.iter().any(|&s| s > 0))
}

/// A small Fisher-Yates shuffle driven by a seed (proptest shrinks the seed).
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = (seed >> 33) as usize % (i + 1);
        v.swap(i, j);
    }
}

/// Checks that the spans of all pieces cover each non-padding file exactly once, in order.
fn check_coverage(layout: &Layout) {
    let mut next = vec![0u64; layout.files().len()];
    let mut last_file = 0usize;
    for piece in 0..layout.num_pieces() {
        let size = layout.piece_size(piece);
        assert!(size > 0 && size <= layout.piece_length());
        let spans: Vec<_> = layout.spans(piece, 0, size as u32).unwrap().collect();
        assert_eq!(spans.iter().map(|s| s.len).sum::<u64>(), size);
        let files: Vec<usize> = layout.piece_files(piece).collect();
        assert_eq!(files, spans.iter().map(|s| s.file).collect::<Vec<_>>());
        for s in spans {
            assert!(s.len > 0);
            assert!(s.file >= last_file, "files out of order");
            last_file = s.file;
            let f = &layout.files()[s.file];
            assert_eq!(s.padding, f.padding);
            assert_eq!(s.file_offset, next[s.file], "gap or overlap in {}", f.path);
            next[s.file] += s.len;
            assert!(next[s.file] <= f.length);
            assert!(layout.file_pieces(s.file).contains(&piece));
        }
    }
    for (i, f) in layout.files().iter().enumerate() {
        if !f.padding || layout.version() != TorrentVersion::V2 {
            assert_eq!(next[i], f.length, "file {} not covered", f.path);
        }
    }
}

/// Every block of every piece, in shuffled order, written through `backend`; then every piece
/// and some odd ranges read back.
fn round_trip<B: Backend>(backend: &B, layout: &Layout, meta: &Metainfo, stream: &[u8], seed: u64) {
    let pl = layout.piece_length();
    let mut blocks = Vec::new();
    for piece in 0..layout.num_pieces() {
        for b in 0..layout.block_count(piece) {
            blocks.push((piece, b * BLOCK_SIZE, layout.block_len(piece, b).unwrap()));
        }
        assert_eq!(layout.block_len(piece, layout.block_count(piece)), None);
    }
    shuffle(&mut blocks, seed);
    for &(piece, begin, len) in &blocks {
        let at = (u64::from(piece) * pl + u64::from(begin)) as usize;
        write_block(
            backend,
            layout,
            piece,
            begin,
            &stream[at..at + len as usize],
        )
        .unwrap();
    }
    for piece in 0..layout.num_pieces() {
        let at = (u64::from(piece) * pl) as usize;
        let data = read_piece(backend, layout, piece).unwrap();
        assert_eq!(data, &stream[at..at + data.len()], "piece {piece}");
        if let Some(h) = meta.piece_hash_v1(piece as usize) {
            assert_eq!(
                Sha1::digest(&data).as_slice(),
                h.0.as_slice(),
                "piece {piece}"
            );
        }
        // A range that straddles the block grid.
        let size = layout.piece_size(piece) as u32;
        let begin = (seed as u32) % size;
        let len = (size - begin).min(20_000);
        let mut buf = vec![0xAA; len as usize + 3];
        read_block(backend, layout, piece, begin, len, &mut buf).unwrap();
        let at = at + begin as usize;
        assert_eq!(&buf[..len as usize], &stream[at..at + len as usize]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn layouts_map_every_byte_once(
        sizes in sizes_strategy(),
        shift in 0u32..3,
        version in version_strategy(),
        seed in any::<u64>(),
    ) {
        let pl = (16 * 1024u64) << shift;
        let tmp = tempfile::tempdir().unwrap();
        let meta = make_torrent(tmp.path(), &sizes, pl, version);
        let layout = Layout::new(&meta).unwrap();

        // The layout agrees with the metainfo.
        prop_assert_eq!(layout.files().len(), meta.files().len());
        prop_assert_eq!(layout.total_length(), meta.total_length());
        prop_assert_eq!(layout.num_pieces() as usize, meta.num_pieces());
        for (i, (l, m)) in layout.files().iter().zip(meta.files()).enumerate() {
            prop_assert_eq!(&l.path, &m.path);
            prop_assert_eq!(l.offset, m.offset);
            prop_assert_eq!(l.length, m.length);
            prop_assert_eq!(l.padding, m.is_padding());
            prop_assert_eq!(l.metainfo_index, Some(i));
        }
        if version.has_v1() {
            for p in 0..layout.num_pieces() {
                prop_assert_eq!(layout.piece_size(p), meta.piece_size(p as usize));
            }
        }
        // v2 pieces belong to one file each, numbered as in its piece layer.
        if version.has_v2() {
            for (i, f) in layout.files().iter().enumerate() {
                if f.padding || f.length == 0 {
                    continue;
                }
                prop_assert_eq!(f.offset % pl, 0);
                let pieces = layout.file_pieces(i);
                if let Some(hashes) = meta.piece_layer(i) {
                    prop_assert_eq!(pieces.len(), hashes.len());
                }
                for p in pieces.clone() {
                    prop_assert_eq!(layout.v2_file_of_piece(p), Some((i, p - pieces.start)));
                    let expect = (f.end() - u64::from(p) * pl).min(pl);
                    prop_assert_eq!(layout.v2_piece_size(p), Some(expect));
                }
            }
        } else {
            prop_assert_eq!(layout.v2_file_of_piece(0), None);
        }
        check_coverage(&layout);

        // Past the end.
        let n = layout.num_pieces();
        prop_assert!(matches!(layout.spans(n, 0, 1), Err(StoreError::OutOfRange { .. })), "past the last piece");
        let last = layout.piece_size(n - 1) as u32;
        prop_assert!(matches!(layout.spans(n - 1, last, 1), Err(StoreError::OutOfRange { .. })), "past the last byte");
        prop_assert_eq!(layout.spans(n - 1, last, 0).unwrap().count(), 0);

        // Blocks in random order through both backends.
        let data = stream(tmp.path(), &layout);
        let mem = MemoryBackend::new(&layout);
        round_trip(&mem, &layout, &meta, &data, seed);
        let out = tmp.path().join("out");
        let disk = FileBackend::new(&out, &layout, FileBackendOptions::default()).unwrap();
        round_trip(&disk, &layout, &meta, &data, seed.rotate_left(17));

        // The files hold exactly their content; padding never reaches the disk.
        for (i, f) in layout.files().iter().enumerate() {
            if f.padding {
                prop_assert_eq!(mem.file_bytes(i), None);
                prop_assert!(!out.join(&f.path).exists());
            } else if f.length > 0 {
                let at = f.offset as usize;
                let expect = data[at..at + f.length as usize].to_vec();
                prop_assert_eq!(mem.file_bytes(i), Some(expect.clone()));
                prop_assert_eq!(&fs::read(out.join(&f.path)).unwrap(), &expect);
            }
        }
        prop_assert!(!out.join("t/.pad").exists());
    }
}

#[test]
fn v2_only_piece_sizes_stop_at_file_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let meta = make_torrent(
        tmp.path(),
        &[20_000, 0, 5_000, 40_000],
        16_384,
        TorrentVersion::V2,
    );
    let layout = Layout::new(&meta).unwrap();
    let real: Vec<_> = layout
        .files()
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.padding && f.length > 0)
        .map(|(i, f)| (i, f.length))
        .collect();
    assert_eq!(real.len(), 3);
    let sizes: Vec<u64> = (0..layout.num_pieces())
        .map(|p| layout.piece_size(p))
        .collect();
    assert_eq!(sizes, vec![16_384, 3_616, 5_000, 16_384, 16_384, 7_232]);
    assert_eq!(layout.block_count(1), 1);
    assert_eq!(layout.v2_file_of_piece(2), Some((real[1].0, 0)));
    assert_eq!(layout.v2_file_of_piece(5), Some((real[2].0, 2)));
}
