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

/// Bytes the file system has allocated for the file at `path`.
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn preallocation_reserves_the_space_and_sparse_files_do_not() {
    let tmp = tempfile::tempdir().unwrap();
    let len = 4 << 20;
    let meta = hand_made(&[b"big.bin"], len);
    let layout = Layout::new(&meta).unwrap();

    let sparse = FileBackend::new(
        &tmp.path().join("sparse"),
        &layout,
        FileBackendOptions::default(),
    )
    .unwrap();
    sparse.write_at(0, 1 << 20, &[7u8; 16_384]).unwrap();
    let path = sparse.path(0).unwrap().to_path_buf();
    assert_eq!(fs::metadata(&path).unwrap().len(), len as u64);
    assert!(
        allocated(&path) < 1 << 20,
        "sparse file took {} bytes",
        allocated(&path)
    );

    let opts = FileBackendOptions {
        preallocate: true,
        ..FileBackendOptions::default()
    };
    let full = FileBackend::new(&tmp.path().join("full"), &layout, opts).unwrap();
    full.write_at(0, 1 << 20, &[7u8; 16_384]).unwrap();
    let path = full.path(0).unwrap().to_path_buf();
    assert_eq!(fs::metadata(&path).unwrap().len(), len as u64);
    assert!(
        allocated(&path) >= len as u64,
        "only {} bytes reserved",
        allocated(&path)
    );
    let mut back = vec![0u8; 16_384];
    full.read_at(0, 1 << 20, &mut back).unwrap();
    assert_eq!(back, [7u8; 16_384]);
}

#[test]
fn preallocation_fills_the_holes_of_an_existing_file_and_keeps_its_data() {
    let tmp = tempfile::tempdir().unwrap();
    let len = 3 << 20;
    let meta = hand_made(&[b"part.bin"], len);
    let layout = Layout::new(&meta).unwrap();
    let dir = tmp.path().join("dl");
    // An earlier sparse session wrote a few blocks, then ended (or was killed).
    {
        let sparse = FileBackend::new(&dir, &layout, FileBackendOptions::default()).unwrap();
        sparse.write_at(0, 0, &content(16_384, 1)).unwrap();
        sparse.write_at(0, 2 << 20, &content(5_000, 2)).unwrap();
        sparse.sync(0).unwrap();
    }
    let path = dir.join("t/part.bin");
    assert!(allocated(&path) < 1 << 20);
    let opts = FileBackendOptions {
        preallocate: true,
        ..FileBackendOptions::default()
    };
    let b = FileBackend::new(&dir, &layout, opts).unwrap();
    b.write_at(0, 1 << 20, b"new").unwrap();
    assert!(
        allocated(&path) >= len as u64,
        "only {} bytes reserved",
        allocated(&path)
    );
    let data = fs::read(&path).unwrap();
    assert_eq!(data.len(), len as usize);
    assert_eq!(&data[..16_384], &content(16_384, 1)[..]);
    assert_eq!(&data[2 << 20..(2 << 20) + 5_000], &content(5_000, 2)[..]);
    assert_eq!(&data[1 << 20..(1 << 20) + 3], b"new");
    let zeros = data.iter().filter(|&&x| x == 0).count();
    assert!(zeros > len as usize - 30_000);
}

/// A download directory with a symbolic link planted in it, and a victim file outside.
struct Planted {
    _tmp: tempfile::TempDir,
    dl: std::path::PathBuf,
    outside: std::path::PathBuf,
    layout: Layout,
}

const VICTIM: &[u8] = b"precious data outside the download directory";

fn planted() -> Planted {
    let tmp = tempfile::tempdir().unwrap();
    let meta = torrent(tmp.path(), 2, 3000);
    let layout = Layout::new(&meta).unwrap();
    let dl = tmp.path().join("dl");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("victim"), VICTIM).unwrap();
    Planted {
        _tmp: tmp,
        dl,
        outside,
        layout,
    }
}

fn assert_victim_untouched(p: &Planted) {
    assert_eq!(fs::read(p.outside.join("victim")).unwrap(), VICTIM);
    let names: Vec<_> = fs::read_dir(&p.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["victim"], "something was created outside");
}

#[test]
fn a_symlinked_file_in_the_download_dir_is_never_written_through() {
    let p = planted();
    // dl/t/f00 -> ../../outside/victim
    fs::create_dir_all(p.dl.join("t")).unwrap();
    std::os::unix::fs::symlink(p.outside.join("victim"), p.dl.join("t/f00")).unwrap();
    let b = FileBackend::new(&p.dl, &p.layout, FileBackendOptions::default()).unwrap();
    let refused = |r: Result<(), StoreError>| match r {
        Err(StoreError::SymlinkInPath { path, link }) => {
            assert_eq!(path, p.dl.join("t/f00"));
            assert_eq!(link, p.dl.join("t/f00"));
        }
        other => panic!("expected SymlinkInPath, got {other:?}"),
    };
    refused(b.write_at(0, 0, b"evil"));
    refused(b.set_len(0, 0));
    refused(b.read_at(0, 0, &mut [0u8; 4]));
    refused(b.file_state(0).map(|_| ()));
    refused(write_block(&b, &p.layout, 0, 0, &[1u8; 100]));
    let msg = b.write_at(0, 0, b"evil").unwrap_err().to_string();
    assert!(msg.contains("symbolic link"), "{msg}");
    assert_victim_untouched(&p);
    // The other file is fine.
    let other = p.layout.files().iter().rposition(|f| !f.padding).unwrap();
    b.write_at(other, 0, b"ok").unwrap();
    assert_victim_untouched(&p);

    // Also with preallocation (which reads and writes the whole file) and a dangling link
    // (which a plain create would follow).
    fs::remove_file(p.dl.join("t/f00")).unwrap();
    std::os::unix::fs::symlink(p.outside.join("new"), p.dl.join("t/f00")).unwrap();
    let opts = FileBackendOptions {
        preallocate: true,
        ..FileBackendOptions::default()
    };
    let b = FileBackend::new(&p.dl, &p.layout, opts).unwrap();
    assert!(matches!(
        b.write_at(0, 0, b"evil"),
        Err(StoreError::SymlinkInPath { .. })
    ));
    assert_victim_untouched(&p);
}

#[test]
fn a_symlinked_directory_in_the_download_dir_is_never_written_through() {
    let p = planted();
    // dl/t -> outside: f00 would land in outside/f00.
    fs::create_dir_all(&p.dl).unwrap();
    std::os::unix::fs::symlink(&p.outside, p.dl.join("t")).unwrap();
    let b = FileBackend::new(&p.dl, &p.layout, FileBackendOptions::default()).unwrap();
    for file in [
        0,
        p.layout.files().iter().rposition(|f| !f.padding).unwrap(),
    ] {
        match b.write_at(file, 0, b"evil") {
            Err(StoreError::SymlinkInPath { link, .. }) => assert_eq!(link, p.dl.join("t")),
            other => panic!("expected SymlinkInPath, got {other:?}"),
        }
        assert!(matches!(
            b.read_at(file, 0, &mut [0u8; 4]),
            Err(StoreError::SymlinkInPath { .. })
        ));
    }
    assert_victim_untouched(&p);

    // The download directory itself may be a link: that is the user's choice.
    let real = p.outside.join("real-dl");
    fs::create_dir(&real).unwrap();
    let linked = p.dl.join("via-link");
    std::os::unix::fs::symlink(&real, &linked).unwrap();
    let b = FileBackend::new(&linked, &p.layout, FileBackendOptions::default()).unwrap();
    b.write_at(0, 0, b"fine").unwrap();
    assert_eq!(&fs::read(real.join("t/f00")).unwrap()[..4], b"fine");
}

#[test]
fn a_fifo_in_the_download_dir_is_refused_without_blocking() {
    let p = planted();
    fs::create_dir_all(p.dl.join("t")).unwrap();
    let fifo = p.dl.join("t/f00");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("mkfifo not available; skipped");
        return;
    }
    let b = Arc::new(FileBackend::new(&p.dl, &p.layout, FileBackendOptions::default()).unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let b2 = Arc::clone(&b);
    std::thread::spawn(move || {
        let read = b2.read_at(0, 0, &mut [0u8; 4]);
        let write = b2.write_at(0, 0, b"x");
        let _ = tx.send((read, write));
    });
    let (read, write) = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("opening a FIFO blocked");
    assert!(matches!(read, Err(StoreError::Io { .. })), "{read:?}");
    assert!(matches!(write, Err(StoreError::Io { .. })), "{write:?}");
}

#[test]
fn portable_names_refuse_what_windows_cannot_take() {
    let tmp = tempfile::tempdir().unwrap();
    for (path, len) in [
        (&[&b"CON"[..]][..], 10),
        (&[&b"aux.txt"[..]][..], 10),
        (&[&b"dir"[..], &b"com1.tar.gz"[..]][..], 10),
        (&[&b"LPT9"[..], &b"inner"[..]][..], 10),
        (&[&b"what?.txt"[..]][..], 10),
    ] {
        let meta = hand_made(path, len);
        let layout = Layout::new(&meta).unwrap();
        let dir = tmp.path().join("p");
        let opts = FileBackendOptions {
            portable: true,
            ..FileBackendOptions::default()
        };
        let b = FileBackend::new(&dir, &layout, opts).unwrap();
        let expected = b.path(0).unwrap().to_path_buf();
        match b.write_at(0, 0, b"x") {
            Err(StoreError::InvalidFileName { path, reason }) => {
                assert_eq!(path, expected);
                assert!(reason.contains("Windows"), "{reason}");
            }
            other => panic!("{path:?}: expected InvalidFileName, got {other:?}"),
        }
        let listed = b.invalid_names();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].to_string().contains(&*expected.to_string_lossy()));
        // Never created, so it reads as missing.
        assert!(matches!(
            b.read_at(0, 0, &mut [0u8; 1]),
            Err(StoreError::Missing { .. })
        ));
        assert!(!expected.exists());
        // Without `portable`, Linux takes these names.
        let b = FileBackend::new(&dir, &layout, FileBackendOptions::default()).unwrap();
        assert!(b.invalid_names().is_empty());
        b.write_at(0, 0, b"x").unwrap();
        assert!(expected.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
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
    // With preallocation too: a thread reserving a file's space must never zero blocks that
    // another thread has written meanwhile.
    // And with direct writes, whose handles come and go with the cached ones.
    for (round, (preallocate, direct_writes)) in [(false, false), (true, false), (false, true)]
        .into_iter()
        .enumerate()
    {
        let opts = FileBackendOptions {
            max_open_files: 2,
            preallocate,
            direct_writes,
            ..FileBackendOptions::default()
        };
        let out = tmp.path().join(format!("out{round}"));
        let b = Arc::new(FileBackend::new(&out, &layout, opts).unwrap());
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let (b, layout, pieces) =
                    (Arc::clone(&b), Arc::clone(&layout), Arc::clone(&pieces));
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
            assert_eq!(
                Sha1::digest(&data).as_slice(),
                h.0.as_slice(),
                "piece {p}, preallocate {preallocate}"
            );
        }
    }
}

#[test]
fn direct_writes_land_the_same_bytes_as_ordinary_ones() {
    let tmp = tempfile::tempdir().unwrap();
    // Long enough for megabyte stages, with a last block that is not whole.
    let len: usize = 3 * (1 << 20) + 5000;
    let meta = hand_made(&[b"one.bin"], len as i64);
    let layout = Layout::new(&meta).unwrap();
    let opts = FileBackendOptions {
        direct_writes: true,
        ..FileBackendOptions::default()
    };
    let b = FileBackend::new(&tmp.path().join("out"), &layout, opts).unwrap();
    let mut model = vec![0u8; len];
    // (offset, length, seed): aligned and whole; aligned with a partial last block; unaligned
    // (ordinary); too short to go direct; over what ordinary writes wrote before; the file's
    // end; and more than one staging buffer at once.
    let writes: [(usize, usize, u8); 8] = [
        (0, 256 * 1024, 1),
        (256 * 1024, 100_000, 2),
        (4096 * 3 + 17, 70_000, 3),
        (1 << 20, 8192, 4),
        (0, 512 * 1024, 5),
        (3 * (1 << 20) - 81_920, 86_920, 6),
        (4096, (1 << 20) * 2 + 4096 * 7, 7),
        (len - 5000, 5000, 8),
    ];
    for (at, n, seed) in writes {
        // From a buffer at an address that is rarely page aligned, and then from one that is.
        let data = content(n, seed);
        b.write_at(0, at as u64, &data).unwrap();
        model[at..at + n].copy_from_slice(&data);
        let mut back = vec![0u8; n];
        b.read_at(0, at as u64, &mut back).unwrap();
        assert_eq!(back, data, "write at {at}, {n} bytes");
    }
    let mut aligned = vec![0u8; 64 * 1024 + 4096];
    let skew = aligned.as_ptr().align_offset(4096);
    let page_aligned = &mut aligned[skew..skew + 64 * 1024];
    page_aligned.copy_from_slice(&content(64 * 1024, 9));
    b.write_at(0, 1 << 20, page_aligned).unwrap();
    model[1 << 20..(1 << 20) + 64 * 1024].copy_from_slice(page_aligned);
    b.sync(0).unwrap();
    assert_eq!(fs::read(b.path(0).unwrap()).unwrap(), model);
    // Nothing but whole aligned blocks of the writes that qualify went direct.
    let direct: u64 = [
        256 * 1024,
        98_304,
        512 * 1024,
        86_016,
        (1 << 21) + 4096 * 7,
        65_536,
    ]
    .iter()
    .sum();
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        // Every Linux file system a CI machine or a developer's /tmp is likely on (ext4, xfs,
        // btrfs, tmpfs since 6.6, overlayfs over those) takes O_DIRECT.
        assert_eq!(b.direct_written(), direct);
    }
    // Off: nothing goes direct.
    let plain = FileBackend::new(
        &tmp.path().join("plain"),
        &layout,
        FileBackendOptions::default(),
    )
    .unwrap();
    plain.write_at(0, 0, &content(256 * 1024, 1)).unwrap();
    assert_eq!(plain.direct_written(), 0);
}
