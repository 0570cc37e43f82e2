//! The layout against libtorrent (Debian's python3-libtorrent): libtorrent writes a tree of
//! files and makes v1, v2 and hybrid torrents of it (the hybrid one with padding files); we
//! parse them, read every piece through a `FileBackend` over libtorrent's files, check it with
//! our `Verifier` (v1 SHA-1 and/or v2 merkle) and, for v1 hashes, against a plain SHA-1 too,
//! then write every piece into a fresh directory and compare the files.
//!
//! Skipped when libtorrent is missing, unless `TESSERA_REQUIRE_LIBTORRENT=1`. No networking.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(unreachable_pub)]
#[path = "../../metainfo/tests/common/mod.rs"]
mod common;

use std::fs;
use std::time::Duration;

use sha1::{Digest, Sha1};
use tessera_metainfo::{Metainfo, TorrentVersion};
use tessera_store::{
    read_piece, write_block, FileBackend, FileBackendOptions, Layout, PieceVerdict, Verifier,
};

/// Writes the content tree (random bytes) under `<dir>/content`, then one torrent per kind.
const SCRIPT: &str = r#"
import sys, os
import libtorrent as lt

dir, piece = sys.argv[1], int(sys.argv[2])
content = os.path.join(dir, "content")
tree = [("a.bin", 40000), ("b/c.bin", 16384), ("b/empty", 0), ("b/d/e.bin", 100003),
        ("f.txt", 5), ("g.bin", 77777)]
for rel, size in tree:
    path = os.path.join(content, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(os.urandom(size))
kinds = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}
for kind, flags in kinds.items():
    fs = lt.file_storage()
    lt.add_files(fs, content)
    ct = lt.create_torrent(fs, piece, flags=flags)
    lt.set_piece_hashes(ct, dir)
    with open(os.path.join(dir, kind + ".torrent"), "wb") as f:
        f.write(lt.bencode(ct.generate()))
print("done")
"#;

#[test]
fn libtorrent_torrents_map_onto_their_files() {
    if !common::libtorrent_available() {
        return;
    }
    for piece in [16 * 1024u64, 64 * 1024] {
        let dir = tempfile::tempdir().unwrap();
        let out = common::run_python(
            SCRIPT,
            &[dir.path().to_str().unwrap(), &piece.to_string()],
            Duration::from_secs(60),
        );
        assert_eq!(out.trim(), "done");
        for (kind, version) in [
            ("v1", TorrentVersion::V1),
            ("v2", TorrentVersion::V2),
            ("hybrid", TorrentVersion::Hybrid),
        ] {
            let bytes = fs::read(dir.path().join(format!("{kind}.torrent"))).unwrap();
            let meta = Metainfo::from_bytes(bytes).unwrap();
            assert_eq!(meta.version(), version);
            let layout = Layout::new(&meta).unwrap();
            if version == TorrentVersion::Hybrid {
                assert!(
                    layout.files().iter().any(|f| f.padding),
                    "{kind}: no padding"
                );
            }

            // Read libtorrent's files piece by piece: every piece verifies, and every v1 hash
            // matches a plain SHA-1 of what was read.
            let verifier = Verifier::new(&meta, &layout);
            let src = FileBackend::new(dir.path(), &layout, FileBackendOptions::default()).unwrap();
            let fresh = dir.path().join(format!("copy-{kind}"));
            let dst = FileBackend::new(&fresh, &layout, FileBackendOptions::default()).unwrap();
            for p in 0..layout.num_pieces() {
                let data = read_piece(&src, &layout, p).unwrap();
                assert_eq!(
                    verifier.verify_piece(p, &data),
                    PieceVerdict::Ok,
                    "{kind}, piece length {piece}: piece {p}"
                );
                if version.has_v1() {
                    let want = meta.piece_hash_v1(p as usize).unwrap();
                    assert_eq!(
                        Sha1::digest(&data).as_slice(),
                        want.0.as_slice(),
                        "{kind}, piece length {piece}: piece {p}"
                    );
                }
                write_block(&dst, &layout, p, 0, &data).unwrap();
            }

            // Written back, the files are libtorrent's, and no padding file was made.
            for f in layout.files() {
                let copy = fresh.join(&f.path);
                if f.padding {
                    assert!(!copy.exists(), "{}", f.path);
                } else if f.length > 0 {
                    let original = fs::read(dir.path().join(&f.path)).unwrap();
                    assert_eq!(fs::read(&copy).unwrap(), original, "{}", f.path);
                }
            }
        }
    }
}
