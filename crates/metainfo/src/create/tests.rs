//! Unit tests for torrent creation, checked against straightforward reference computations
//! (SHA-1 over the padded stream, [`MerkleTree::from_data`] per file).

use super::*;
use crate::merkle::MerkleTree;
use std::path::Path;

const KIB: usize = 1024;

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u64).wrapping_mul(2654435761) >> 7) as u8 ^ seed)
        .collect()
}

/// A tree with odd sizes, an empty file, a nested directory and names whose component order
/// differs from their full-path byte order (`a/b` before `a-c`).
fn sample_tree(root: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let files = vec![
        ("B", data(40_000, 1)),
        ("a/b", data(20_000, 2)),
        ("a-c", data(5, 3)),
        ("empty", Vec::new()),
        ("sub/deeper/x", data(100_000, 4)),
        ("sub/y", data(16 * KIB, 5)),
    ];
    for (p, d) in &files {
        let path = root.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, d).unwrap();
    }
    files
}

fn root_dict(bytes: &[u8]) -> BTreeMap<Vec<u8>, Value> {
    let doc = tessera_bencode::decode(bytes).expect("canonical bencode");
    doc.root().to_owned().as_dict().unwrap().clone()
}

fn info_of(bytes: &[u8]) -> BTreeMap<Vec<u8>, Value> {
    root_dict(bytes)[&b"info"[..]].as_dict().unwrap().clone()
}

fn sha1(d: &[u8]) -> Sha1Hash {
    Sha1Hash(Sha1::digest(d).into())
}

fn pieces_of(info: &BTreeMap<Vec<u8>, Value>) -> Vec<Sha1Hash> {
    info[&b"pieces"[..]]
        .as_bytes()
        .unwrap()
        .chunks(20)
        .map(|c| Sha1Hash::from_slice(c).unwrap())
        .collect()
}

fn file_tree_leaf<'a>(
    info: &'a BTreeMap<Vec<u8>, Value>,
    path: &str,
) -> &'a BTreeMap<Vec<u8>, Value> {
    let mut node = info[&b"file tree"[..]].as_dict().unwrap();
    for c in path.split('/') {
        node = node[c.as_bytes()].as_dict().unwrap();
    }
    node[&b""[..]].as_dict().unwrap()
}

#[test]
fn auto_piece_length_matches_size_table() {
    let auto = TorrentBuilder::auto_piece_length;
    assert_eq!(auto(0), 16 * 1024);
    assert_eq!(auto(2_684_355), 16 * 1024);
    assert_eq!(auto(2_684_356), 32 * 1024);
    assert_eq!(auto(10_737_418), 32 * 1024);
    assert_eq!(auto(10_737_419), 64 * 1024);
    assert_eq!(auto(512 << 20), 256 * 1024);
    assert_eq!(auto(703_687_441_777), 8 << 20);
    assert_eq!(auto(703_687_441_778), 16 << 20);
    assert_eq!(auto(u64::MAX), 16 << 20);
}

#[test]
fn piece_length_validation() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, data(1000, 0)).unwrap();
    for (version, pl, ok) in [
        (TorrentVersion::V2, 48 * 1024, false),
        (TorrentVersion::Hybrid, 48 * 1024, false),
        (TorrentVersion::V1, 48 * 1024, true),
        (TorrentVersion::V1, 1000, false),
        (TorrentVersion::V2, 8 * 1024, false),
        (TorrentVersion::V2, 16 * 1024, true),
        (TorrentVersion::Hybrid, 512 << 20, false),
        (TorrentVersion::V1, 0, false),
    ] {
        let r = TorrentBuilder::new(&f)
            .version(version)
            .piece_length(pl)
            .build();
        match (ok, r) {
            (true, Ok(_)) => {}
            (false, Err(CreateError::InvalidPieceLength { piece_length, .. })) => {
                assert_eq!(piece_length, pl)
            }
            (ok, r) => panic!("{version} {pl}: expected ok={ok}, got {r:?}"),
        }
    }
}

#[test]
fn v1_single_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("movie.bin");
    let d = data(100_000, 9);
    fs::write(&f, &d).unwrap();
    let t = TorrentBuilder::new(&f)
        .version(TorrentVersion::V1)
        .piece_length(32 * 1024)
        .tracker("http://t/announce")
        .build()
        .unwrap();
    let root = root_dict(&t.bytes);
    assert_eq!(root[&b"announce"[..]].as_str(), Some("http://t/announce"));
    assert!(!root.contains_key(&b"announce-list"[..]));
    assert!(!root.contains_key(&b"creation date"[..]));
    assert!(!root.contains_key(&b"piece layers"[..]));
    assert_eq!(
        root[&b"created by"[..]].as_str().unwrap(),
        format!("Tessera/{}", env!("CARGO_PKG_VERSION"))
    );
    let info = info_of(&t.bytes);
    assert_eq!(info[&b"name"[..]].as_str(), Some("movie.bin"));
    assert_eq!(info[&b"length"[..]].as_int(), Some(100_000));
    assert!(!info.contains_key(&b"file tree"[..]));
    assert!(!info.contains_key(&b"meta version"[..]));
    let expected: Vec<_> = d.chunks(32 * 1024).map(sha1).collect();
    assert_eq!(pieces_of(&info), expected);
    assert_eq!(t.info_hashes.v2, None);
    let raw_info = Value::Dict(info).to_bytes();
    assert_eq!(t.info_hashes.v1, Some(sha1(&raw_info)));
}

#[test]
fn v2_single_file_tree_and_layers() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x");
    let d = data(5 * 16 * KIB + 100, 7);
    fs::write(&f, &d).unwrap();
    let t = TorrentBuilder::new(&f)
        .version(TorrentVersion::V2)
        .piece_length(32 * 1024)
        .name("renamed")
        .build()
        .unwrap();
    let root = root_dict(&t.bytes);
    let info = info_of(&t.bytes);
    assert!(!info.contains_key(&b"pieces"[..]));
    assert!(!info.contains_key(&b"length"[..]));
    assert_eq!(info[&b"meta version"[..]].as_int(), Some(2));
    let leaf = file_tree_leaf(&info, "renamed");
    let tree = MerkleTree::from_data(&d);
    assert_eq!(
        leaf[&b"pieces root"[..]].as_bytes(),
        Some(&tree.root().0[..])
    );
    assert_eq!(leaf[&b"length"[..]].as_int(), Some(d.len() as i64));
    let layers = root[&b"piece layers"[..]].as_dict().unwrap();
    let layer: Vec<u8> = tree
        .piece_layer(32 * 1024)
        .iter()
        .flat_map(|h| h.0)
        .collect();
    assert_eq!(layers[&tree.root().0[..]].as_bytes(), Some(&layer[..]));
    assert_eq!(t.info_hashes.v1, None);
    let raw_info = Value::Dict(info).to_bytes();
    assert_eq!(
        t.info_hashes.v2,
        Some(Sha256Hash(Sha256::digest(&raw_info).into()))
    );
}

/// Builds the expected v1 stream of a hybrid: files in order, each non-empty one followed by
/// zeros up to the next piece boundary.
fn padded_stream(files: &[(&str, Vec<u8>)], pl: usize) -> (Vec<u8>, Vec<(String, u64, bool)>) {
    let mut sorted: Vec<_> = files.iter().collect();
    sorted.sort_by(|a, b| {
        let ka: Vec<&str> = a.0.split('/').collect();
        let kb: Vec<&str> = b.0.split('/').collect();
        ka.cmp(&kb)
    });
    let mut stream = Vec::new();
    let mut list = Vec::new();
    for (p, d) in sorted {
        stream.extend_from_slice(d);
        list.push((p.to_string(), d.len() as u64, false));
        let tail = stream.len() % pl;
        if !d.is_empty() && tail != 0 {
            let pad = pl - tail;
            stream.resize(stream.len() + pad, 0);
            list.push((format!(".pad/{pad}"), pad as u64, true));
        }
    }
    (stream, list)
}

fn v1_file_list(info: &BTreeMap<Vec<u8>, Value>) -> Vec<(String, u64, bool)> {
    info[&b"files"[..]]
        .as_list()
        .unwrap()
        .iter()
        .map(|f| {
            let f = f.as_dict().unwrap();
            let path: Vec<&str> = f[&b"path"[..]]
                .as_list()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            let pad = match f.get(&b"attr"[..]) {
                Some(a) => a.as_str() == Some("p"),
                None => false,
            };
            (
                path.join("/"),
                f[&b"length"[..]].as_int().unwrap() as u64,
                pad,
            )
        })
        .collect()
}

#[test]
fn hybrid_multi_file_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root_path = dir.path().join("tree");
    let files = sample_tree(&root_path);
    let pl = 32 * KIB;
    let t = TorrentBuilder::new(&root_path)
        .piece_length(pl as u64)
        .tracker_tier(["http://a/ann", "http://b/ann"])
        .tracker("udp://c:80/ann")
        .web_seed("http://seed/")
        .private(true)
        .comment("hello")
        .creation_date(Some(1_700_000_000))
        .build()
        .unwrap();
    assert!(t.info_hashes.is_hybrid());
    assert_eq!(
        t.total_length,
        files.iter().map(|f| f.1.len() as u64).sum::<u64>()
    );
    let root = root_dict(&t.bytes);
    let info = info_of(&t.bytes);
    assert_eq!(info[&b"name"[..]].as_str(), Some("tree"));
    assert_eq!(info[&b"private"[..]].as_int(), Some(1));
    assert_eq!(root[&b"comment"[..]].as_str(), Some("hello"));
    assert_eq!(root[&b"creation date"[..]].as_int(), Some(1_700_000_000));
    assert_eq!(root[&b"url-list"[..]].as_str(), Some("http://seed/"));
    let tiers = root[&b"announce-list"[..]].as_list().unwrap();
    assert_eq!(tiers.len(), 2);
    assert_eq!(tiers[0].as_list().unwrap().len(), 2);

    let (stream, expected_list) = padded_stream(&files, pl);
    assert_eq!(v1_file_list(&info), expected_list);
    // a/b sorts before a-c; the last file is padded too.
    assert_eq!(expected_list[2].0, "a/b");
    assert!(expected_list.last().unwrap().2);
    let expected: Vec<_> = stream.chunks(pl).map(sha1).collect();
    assert_eq!(pieces_of(&info), expected);

    let layers = root[&b"piece layers"[..]].as_dict().unwrap();
    for (p, d) in &files {
        let leaf = file_tree_leaf(&info, p);
        assert_eq!(leaf[&b"length"[..]].as_int(), Some(d.len() as i64), "{p}");
        if d.is_empty() {
            assert!(!leaf.contains_key(&b"pieces root"[..]), "{p}");
            continue;
        }
        let tree = MerkleTree::from_data(d);
        assert_eq!(
            leaf[&b"pieces root"[..]].as_bytes(),
            Some(&tree.root().0[..]),
            "{p}"
        );
        assert_eq!(layers.contains_key(&tree.root().0[..]), d.len() > pl, "{p}");
    }
    let m = t.to_magnet();
    assert_eq!(
        m.trackers,
        vec!["http://a/ann", "http://b/ann", "udp://c:80/ann"]
    );
    assert_eq!(m.web_seeds, vec!["http://seed/"]);
    assert_eq!(m.name.as_deref(), Some("tree"));
    assert_eq!(Magnet::parse(&m.to_uri()).unwrap(), m);
}

#[test]
fn v1_multi_file_pieces_span_files() {
    let dir = tempfile::tempdir().unwrap();
    let root_path = dir.path().join("tree");
    let files = sample_tree(&root_path);
    let pl = 48 * KIB; // Not a power of two: allowed for v1.
    let t = TorrentBuilder::new(&root_path)
        .version(TorrentVersion::V1)
        .piece_length(pl as u64)
        .build()
        .unwrap();
    let info = info_of(&t.bytes);
    let (_, list) = padded_stream(&files, pl);
    let unpadded: Vec<_> = list.into_iter().filter(|f| !f.2).collect();
    assert_eq!(v1_file_list(&info), unpadded);
    let mut stream = Vec::new();
    for (p, _, _) in &unpadded {
        stream.extend_from_slice(&files.iter().find(|f| f.0 == p).unwrap().1);
    }
    let expected: Vec<_> = stream.chunks(pl).map(sha1).collect();
    assert_eq!(pieces_of(&info), expected);
}

#[test]
fn directory_with_one_file_is_multi_file_without_padding() {
    let dir = tempfile::tempdir().unwrap();
    let root_path = dir.path().join("d");
    fs::create_dir(&root_path).unwrap();
    fs::write(root_path.join("only"), data(1000, 1)).unwrap();
    let t = TorrentBuilder::new(&root_path).build().unwrap();
    let info = info_of(&t.bytes);
    assert_eq!(v1_file_list(&info), vec![("only".to_string(), 1000, false)]);
    assert!(file_tree_leaf(&info, "only").contains_key(&b"pieces root"[..]));
    // One short piece: SHA-1 of the data itself.
    assert_eq!(pieces_of(&info), vec![sha1(&data(1000, 1))]);
}

#[test]
fn deterministic_and_thread_count_independent() {
    let dir = tempfile::tempdir().unwrap();
    let root_path = dir.path().join("tree");
    sample_tree(&root_path);
    // Large enough to be split into several jobs at 16 KiB pieces.
    fs::write(root_path.join("big"), data(9 * 1024 * KIB + 12_345, 11)).unwrap();
    for version in [
        TorrentVersion::V1,
        TorrentVersion::V2,
        TorrentVersion::Hybrid,
    ] {
        let b = TorrentBuilder::new(&root_path)
            .version(version)
            .piece_length(16 * 1024);
        let one = b.clone().threads(NonZeroUsize::MIN).build().unwrap();
        let again = b.clone().threads(NonZeroUsize::MIN).build().unwrap();
        let many = b
            .clone()
            .threads(NonZeroUsize::new(5).unwrap())
            .build()
            .unwrap();
        assert_eq!(one, again, "{version}");
        assert_eq!(one.bytes, many.bytes, "{version}");
    }
}

#[test]
fn multi_job_v1_matches_reference() {
    let dir = tempfile::tempdir().unwrap();
    let root_path = dir.path().join("t");
    fs::create_dir(&root_path).unwrap();
    let a = data(5 * 1024 * KIB + 7, 1);
    let b = data(3 * 1024 * KIB + 1, 2);
    fs::write(root_path.join("a"), &a).unwrap();
    fs::write(root_path.join("b"), &b).unwrap();
    let t = TorrentBuilder::new(&root_path)
        .version(TorrentVersion::V1)
        .piece_length(16 * 1024)
        .threads(NonZeroUsize::new(3).unwrap())
        .build()
        .unwrap();
    let stream = [a, b].concat();
    let expected: Vec<_> = stream.chunks(16 * KIB).map(sha1).collect();
    assert_eq!(pieces_of(&info_of(&t.bytes)), expected);
}

#[test]
fn progress_reaches_total() {
    let dir = tempfile::tempdir().unwrap();
    let root_path = dir.path().join("tree");
    let files = sample_tree(&root_path);
    let total: u64 = files.iter().map(|f| f.1.len() as u64).sum();
    let last = Arc::new(AtomicU64::new(0));
    let seen = last.clone();
    TorrentBuilder::new(&root_path)
        .on_progress(move |done, all| {
            assert_eq!(all, total);
            seen.fetch_max(done, Ordering::Relaxed);
        })
        .build()
        .unwrap();
    assert_eq!(last.load(Ordering::Relaxed), total);
}

#[test]
fn errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    assert!(matches!(
        TorrentBuilder::new(&empty).build(),
        Err(CreateError::EmptyContent { .. })
    ));
    fs::write(empty.join("zero"), b"").unwrap();
    assert!(matches!(
        TorrentBuilder::new(&empty).build(),
        Err(CreateError::EmptyContent { .. })
    ));
    assert!(matches!(
        TorrentBuilder::new(dir.path().join("missing")).build(),
        Err(CreateError::Io { .. })
    ));
    fs::write(empty.join("one"), b"1").unwrap();
    for bad in ["", "a/b", "nul\0"] {
        assert!(matches!(
            TorrentBuilder::new(&empty).name(bad).build(),
            Err(CreateError::InvalidName { .. })
        ));
    }
    let pad = dir.path().join("padded");
    fs::create_dir_all(pad.join(".pad")).unwrap();
    fs::write(pad.join(".pad/1"), b"x").unwrap();
    fs::write(pad.join("f"), b"x").unwrap();
    assert!(matches!(
        TorrentBuilder::new(&pad).build(),
        Err(CreateError::ReservedPath { .. })
    ));
    // Only hybrids have pad files.
    assert!(TorrentBuilder::new(&pad)
        .version(TorrentVersion::V2)
        .build()
        .is_ok());
}

#[cfg(unix)]
#[test]
fn symlinks_are_followed_and_loops_rejected() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root_path = dir.path().join("t");
    fs::create_dir_all(root_path.join("real")).unwrap();
    fs::write(root_path.join("real/f"), data(3000, 1)).unwrap();
    symlink(root_path.join("real/f"), root_path.join("link")).unwrap();
    let t = TorrentBuilder::new(&root_path).build().unwrap();
    let info = info_of(&t.bytes);
    let names: Vec<_> = v1_file_list(&info).into_iter().filter(|f| !f.2).collect();
    assert_eq!(
        names,
        vec![
            ("link".to_string(), 3000, false),
            ("real/f".to_string(), 3000, false)
        ]
    );
    symlink(&root_path, root_path.join("real/loop")).unwrap();
    assert!(matches!(
        TorrentBuilder::new(&root_path).build(),
        Err(CreateError::SymlinkLoop { .. })
    ));
    fs::remove_file(root_path.join("real/loop")).unwrap();
    symlink(root_path.join("nowhere"), root_path.join("dangling")).unwrap();
    assert!(matches!(
        TorrentBuilder::new(&root_path).build(),
        Err(CreateError::Io { .. })
    ));
}

#[cfg(unix)]
#[test]
fn non_utf8_names_are_rejected() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root_path = dir.path().join("t");
    fs::create_dir(&root_path).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"bad\xff");
    if fs::write(root_path.join(name), b"x").is_err() {
        return; // The file system refuses such names itself.
    }
    assert!(matches!(
        TorrentBuilder::new(&root_path).build(),
        Err(CreateError::NonUtf8Path { .. })
    ));
}

#[test]
fn reading_ahead_on_another_thread_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root_path = dir.path().join("tree");
    sample_tree(&root_path);
    // Several chunks per job, and files that end inside a chunk.
    fs::write(root_path.join("big"), data(3 * 1024 * KIB + 4_321, 9)).unwrap();
    fs::write(root_path.join("mid"), data(PREFETCH_CHUNK + 17, 8)).unwrap();
    let content = scan(&root_path).unwrap();
    let total: u64 = content.files.iter().map(|f| f.len).sum();
    for version in [TorrentVersion::V1, TorrentVersion::Hybrid] {
        let layout = Layout::new(&content, 16 * 1024, version).unwrap();
        for threads in [1, 3] {
            let done = Arc::new(AtomicU64::new(0));
            let seen = done.clone();
            let count = move |d: u64, _: u64| {
                seen.fetch_max(d, Ordering::Relaxed);
            };
            let plain = hash_all(&content, &layout, threads, false, total, None).unwrap();
            let ahead = hash_all(&content, &layout, threads, true, total, Some(&count)).unwrap();
            assert_eq!(plain.v1, ahead.v1, "{version} {threads}");
            assert_eq!(plain.v2, ahead.v2, "{version} {threads}");
            assert_eq!(done.load(Ordering::Relaxed), total);
        }
    }
    // A file that shrank after the scan is an error either way.
    fs::write(root_path.join("big"), data(1024 * KIB, 9)).unwrap();
    let layout = Layout::new(&content, 16 * 1024, TorrentVersion::V1).unwrap();
    for prefetch in [false, true] {
        let err = hash_all(&content, &layout, 1, prefetch, total, None).unwrap_err();
        assert!(matches!(err, CreateError::FileChanged { .. }), "{err}");
    }
}
