//! The backends' own rules: missing data, padding, ranges, path safety, the bounded handle
//! cache, and writes from many threads.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use sha1::{Digest, Sha1};
use tessera_bencode::Value;
use tessera_metainfo::{Metainfo, TorrentBuilder, TorrentVersion};
use tessera_store::{
    read_piece, safe_join, write_block, Backend, FileBackend, FileBackendOptions, Layout,
    MemoryBackend, StoreError,
};

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// A hybrid torrent of `n` files of `len` bytes each (so there is padding between them), and
/// the root directory holding its content.
fn torrent(root: &Path, n: usize, len: usize) -> Metainfo {
    let dir = root.join("src/t");
    fs::create_dir_all(&dir).unwrap();
    for i in 0..n {
        fs::write(dir.join(format!("f{i:02}")), content(len, i as u8)).unwrap();
    }
    let t = TorrentBuilder::new(&dir)
        .version(TorrentVersion::Hybrid)
        .piece_length(16 * 1024)
        .build()
        .unwrap();
    Metainfo::from_bytes(t.bytes).unwrap()
}

/// Writes every piece of `meta` from the content under `root/src`.
fn fill<B: Backend + ?Sized>(backend: &B, layout: &Layout, root: &Path) {
    let src = FileBackend::new(&root.join("src"), layout, FileBackendOptions::default()).unwrap();
    for p in 0..layout.num_pieces() {
        let data = read_piece(&src, layout, p).unwrap();
        write_block(backend, layout, p, 0, &data).unwrap();
    }
}

fn backends(layout: &Layout, dir: &Path) -> Vec<Box<dyn Backend>> {
    vec![
        Box::new(MemoryBackend::new(layout)),
        Box::new(FileBackend::new(dir, layout, FileBackendOptions::default()).unwrap()),
    ]
}

#[test]
fn missing_data_is_an_error_not_zeros() {
    let tmp = tempfile::tempdir().unwrap();
    let meta = torrent(tmp.path(), 2, 1000);
    let layout = Layout::new(&meta).unwrap();
    for b in backends(&layout, &tmp.path().join("out")) {
        let mut buf = [0u8; 10];
        assert!(matches!(
            b.read_at(0, 0, &mut buf),
            Err(StoreError::Missing { file: 0, .. })
        ));
        assert_eq!(b.file_state(0).unwrap(), None);
        assert!(matches!(
            read_piece(&*b, &layout, 0),
            Err(StoreError::Missing { .. })
        ));
        b.sync(0).unwrap();

        b.write_at(0, 10, b"hello").unwrap();
        let state = b.file_state(0).unwrap().unwrap();
        assert_eq!(state.len, 1000, "created at full length");
        assert!(state.mtime_ns.is_some());
        b.read_at(0, 10, &mut buf[..5]).unwrap();
        assert_eq!(&buf[..5], b"hello");
        b.sync(0).unwrap();

        // Shortened, the tail is missing again.
        b.set_len(0, 12).unwrap();
        assert_eq!(b.file_state(0).unwrap().unwrap().len, 12);
        assert!(matches!(
            b.read_at(0, 10, &mut buf[..5]),
            Err(StoreError::Missing { .. })
        ));
        b.read_at(0, 10, &mut buf[..2]).unwrap();
        assert_eq!(&buf[..2], b"he");

        // Ranges past the file's length in the torrent, unknown files.
        assert!(matches!(
            b.write_at(0, 999, b"xy"),
            Err(StoreError::FileRange { .. })
        ));
        assert!(matches!(
            b.read_at(0, u64::MAX, &mut buf),
            Err(StoreError::FileRange { .. })
        ));
        assert!(matches!(
            b.set_len(0, 1001),
            Err(StoreError::FileRange { .. })
        ));
        let n = layout.files().len();
        assert!(matches!(
            b.write_at(n, 0, b"x"),
            Err(StoreError::NoSuchFile { .. })
        ));
        assert!(matches!(
            b.file_state(n),
            Err(StoreError::NoSuchFile { .. })
        ));

        // Vectored writes land one after another.
        let second = layout.files().iter().rposition(|f| !f.padding).unwrap();
        assert_ne!(second, 0);
        b.write_vectored_at(second, 100, &[b"ab", b"", b"cde"])
            .unwrap();
        let mut five = [0u8; 5];
        b.read_at(second, 100, &mut five).unwrap();
        assert_eq!(&five, b"abcde");
    }
}

#[test]
fn padding_is_virtual() {
    let tmp = tempfile::tempdir().unwrap();
    let meta = torrent(tmp.path(), 3, 5000);
    let layout = Layout::new(&meta).unwrap();
    let pad = layout
        .files()
        .iter()
        .position(|f| f.padding)
        .expect("padding");
    let pad_len = layout.files()[pad].length;
    let out = tmp.path().join("out");
    for b in backends(&layout, &out) {
        let mut buf = vec![7u8; pad_len as usize];
        b.read_at(pad, 0, &mut buf).unwrap();
        assert!(buf.iter().all(|&x| x == 0));
        b.write_at(pad, 0, &buf).unwrap();
        assert!(matches!(
            b.write_at(pad, 1, b"\x01"),
            Err(StoreError::PaddingNotZero { .. })
        ));
        assert_eq!(b.file_state(pad).unwrap().unwrap().len, pad_len);
        b.set_len(pad, 0).unwrap();
        b.sync(pad).unwrap();

        fill(&*b, &layout, tmp.path());
        for p in 0..layout.num_pieces() {
            let data = read_piece(&*b, &layout, p).unwrap();
            let h = meta.piece_hash_v1(p as usize).unwrap();
            assert_eq!(Sha1::digest(&data).as_slice(), h.0.as_slice());
        }
    }
    // Only the three real files exist on disk.
    let mut found = Vec::new();
    let mut stack = vec![out];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                found.push(e.path());
            }
        }
    }
    found.sort();
    let names: Vec<_> = found
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["f00", "f01", "f02"]);
}

#[test]
fn hostile_paths_are_refused() {
    let base = Path::new("/downloads");
    for bad in [
        "",
        "/etc/passwd",
        "../x",
        "t/../../x",
        "t/..",
        "t//x",
        "./x",
        "t/",
        "t/a\0b",
    ] {
        assert!(
            matches!(safe_join(base, bad), Err(StoreError::UnsafePath { .. })),
            "{bad:?} accepted"
        );
    }
    assert_eq!(
        safe_join(base, "t/..x/y..").unwrap(),
        base.join("t/..x/y..")
    );
}

/// A v1 torrent built by hand, one file at `path`, `len` bytes.
fn hand_made(path: &[&[u8]], len: i64) -> Metainfo {
    let mut file = BTreeMap::new();
    file.insert(b"length".to_vec(), Value::Int(len));
    file.insert(
        b"path".to_vec(),
        Value::List(path.iter().map(|c| Value::Bytes(c.to_vec())).collect()),
    );
    let mut info = BTreeMap::new();
    info.insert(b"files".to_vec(), Value::List(vec![Value::Dict(file)]));
    info.insert(b"name".to_vec(), Value::Bytes(b"t".to_vec()));
    info.insert(b"piece length".to_vec(), Value::Int(16_384));
    let pieces = (len as u64).div_ceil(16_384) as usize;
    info.insert(b"pieces".to_vec(), Value::Bytes(vec![0; 20 * pieces]));
    let mut top = BTreeMap::new();
    top.insert(b"info".to_vec(), Value::Dict(info));
    Metainfo::from_bytes(Value::Dict(top).to_bytes()).unwrap()
}

#[test]
fn names_the_os_refuses_are_reported_with_the_path() {
    // Directories nested past PATH_MAX: every component is fine, the whole is too long.
    let long = vec![b'd'; 200];
    let mut path: Vec<&[u8]> = vec![&long; 30];
    path.push(b"file");
    let meta = hand_made(&path, 100);
    let layout = Layout::new(&meta).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let b = FileBackend::new(tmp.path(), &layout, FileBackendOptions::default()).unwrap();
    match b.write_at(0, 0, b"x") {
        Err(StoreError::InvalidFileName { path, .. }) => {
            assert!(path.starts_with(tmp.path()), "{}", path.display())
        }
        other => panic!("expected InvalidFileName, got {other:?}"),
    }
}

#[test]
fn handle_cache_stays_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let meta = torrent(tmp.path(), 12, 3000);
    let layout = Layout::new(&meta).unwrap();
    let opts = FileBackendOptions {
        max_open_files: 3,
        ..FileBackendOptions::default()
    };
    let out = tmp.path().join("out");
    let b = FileBackend::new(&out, &layout, opts).unwrap();
    let real: Vec<usize> = (0..layout.files().len())
        .filter(|&i| !layout.files()[i].padding)
        .collect();
    assert_eq!(real.len(), 12);
    // Twice round, so that evicted files are opened again for writing and reading.
    for round in 0..2u8 {
        for &i in &real {
            b.write_at(i, u64::from(round), &[i as u8 + round]).unwrap();
            assert!(b.open_handles() <= 3);
            let mut one = [0u8];
            b.read_at(real[0], u64::from(round), &mut one).unwrap();
            assert_eq!(one[0], real[0] as u8 + round);
            assert!(b.open_handles() <= 3);
        }
    }
    assert!(b.open_handles() > 0);
    for &i in &real {
        let on_disk = fs::read(b.path(i).unwrap()).unwrap();
        assert_eq!(&on_disk[..2], &[i as u8, i as u8 + 1]);
    }
    b.close_all();
    assert_eq!(b.open_handles(), 0);
}

#[test]
fn preallocated_files_are_full_length() {
    let tmp = tempfile::tempdir().unwrap();
    let meta = torrent(tmp.path(), 2, 70_000);
    let layout = Layout::new(&meta).unwrap();
    let opts = FileBackendOptions {
        preallocate: true,
        ..FileBackendOptions::default()
    };
    let b = FileBackend::new(&tmp.path().join("out"), &layout, opts).unwrap();
    b.write_at(0, 69_999, b"z").unwrap();
    let data = fs::read(b.path(0).unwrap()).unwrap();
    assert_eq!(data.len(), 70_000);
    assert!(data[..69_999].iter().all(|&x| x == 0));
    assert_eq!(data[69_999], b'z');
}

#[test]
fn many_threads_write_one_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let meta = torrent(tmp.path(), 6, 50_000);
    let layout = Arc::new(Layout::new(&meta).unwrap());
    let src = FileBackend::new(
        &tmp.path().join("src"),
        &layout,
        FileBackendOptions::default(),
    )
    .unwrap();
    let pieces: Vec<Vec<u8>> = (0..layout.num_pieces())
        .map(|p| read_piece(&src, &layout, p).unwrap())
        .collect();
    let pieces = Arc::new(pieces);
    let opts = FileBackendOptions {
        max_open_files: 2,
        ..FileBackendOptions::default()
    };
    let b = Arc::new(FileBackend::new(&tmp.path().join("out"), &layout, opts).unwrap());
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let (b, layout, pieces) = (Arc::clone(&b), Arc::clone(&layout), Arc::clone(&pieces));
            std::thread::spawn(move || {
                for p in (t..layout.num_pieces()).step_by(4) {
                    write_block(&*b, &layout, p, 0, &pieces[p as usize]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for p in 0..layout.num_pieces() {
        let data = read_piece(&*b, &layout, p).unwrap();
        let h = meta.piece_hash_v1(p as usize).unwrap();
        assert_eq!(Sha1::digest(&data).as_slice(), h.0.as_slice(), "piece {p}");
    }
}
