//! Whole downloads between our `seed` and `download` examples and libtorrent (Debian's
//! python3-libtorrent, driven by `tests/support/lt_peer.py`), over TCP on 127.0.0.1:
//!
//! * libtorrent seeds and we download, and the other way round, for v1, v2 and hybrid
//!   torrents, single-file and multi-file (padding files, empty files, sizes that end mid-piece),
//!   and from a hybrid magnet link whose metadata comes from the peer;
//! * a swarm of two of our downloaders and one libtorrent downloader around one seeder (ours,
//!   then libtorrent's);
//! * a download killed with SIGKILL half way resumes from what it had, from a .torrent file and
//!   from a v2 magnet link (whose metadata and piece layers the first run kept).
//!
//! The files that arrive are compared byte for byte with the originals. The examples are built
//! (`cargo build --example seed --example download`, same profile and target directory as
//! this test) before the first use, so that a filtered `cargo test --test swarm_libtorrent`
//! never runs stale binaries; set `TESSERA_EXAMPLES_DIR` to use binaries built elsewhere.
//!
//! Skipped when libtorrent is missing, unless `TESSERA_REQUIRE_LIBTORRENT=1`. Every child is
//! killed when its test ends, and every wait is bounded by the test's deadline.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(unreachable_pub)]
#[path = "../crates/metainfo/tests/common/mod.rs"]
mod common;
#[path = "support/examples.rs"]
mod examples;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tessera::metainfo::{Metainfo, TorrentVersion};
use tessera::store::Layout;

/// How long one test may take in all, debug builds on a busy 2-core machine included.
const TEST_BUDGET: Duration = Duration::from_secs(150);
/// Piece length of the small contents: many pieces, and files that end mid-piece.
const SMALL_PIECE: u64 = 32 * 1024;

// ---------------------------------------------------------------------------------------------
// Time limits and child processes

/// The instant by which a test must be done.
struct Deadline(Instant);

impl Deadline {
    fn start() -> Self {
        Self(Instant::now() + TEST_BUDGET)
    }

    /// Time left; panics once the deadline has passed.
    fn left(&self) -> Duration {
        let left = self.0.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the test ran past its {TEST_BUDGET:?} budget"
        );
        left
    }

    /// Time left in whole seconds, for the `--timeout` of lt_peer.py.
    fn secs(&self) -> String {
        self.left().as_secs().max(1).to_string()
    }
}

/// A child process, killed when dropped, whose stdout and stderr are collected line by line.
struct Proc {
    name: String,
    child: Child,
    /// Kept open: closing it tells lt_peer.py's seeder to stop.
    _stdin: Option<ChildStdin>,
    stdout_lines: Receiver<String>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

/// Reads `from` line by line into `into`, also sending each line to `tx` if given.
fn collect_lines(
    from: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
    tx: Option<mpsc::Sender<String>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                    into.lock().unwrap().push(line.clone());
                    if let Some(tx) = &tx {
                        let _ = tx.send(line);
                    }
                }
            }
        }
    })
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {cmd:?}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, stdout_lines) = mpsc::channel();
        let readers = vec![
            collect_lines(child.stdout.take().unwrap(), stdout.clone(), Some(tx)),
            collect_lines(child.stderr.take().unwrap(), stderr.clone(), None),
        ];
        Proc {
            name: name.to_owned(),
            _stdin: child.stdin.take(),
            child,
            stdout_lines,
            stdout,
            stderr,
            readers,
        }
    }

    /// The last lines of output, for failure messages.
    fn describe(&self) -> String {
        let tail = |lines: &Arc<Mutex<Vec<String>>>| {
            let lines = lines.lock().unwrap();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        format!(
            "--- {} stdout:\n{}\n--- {} stderr:\n{}",
            self.name,
            tail(&self.stdout),
            self.name,
            tail(&self.stderr)
        )
    }

    /// Waits for a stdout line that `matches`, and returns it.
    fn wait_line(&self, deadline: &Deadline, what: &str, matches: impl Fn(&str) -> bool) -> String {
        loop {
            match self.stdout_lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) if matches(&line) => return line,
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // Let stderr catch up before showing it.
                    std::thread::sleep(Duration::from_millis(200));
                    panic!(
                        "{} ended before printing {what}\n{}",
                        self.name,
                        self.describe()
                    );
                }
            }
            if Instant::now() >= deadline.0 {
                panic!(
                    "{} did not print {what} in time\n{}",
                    self.name,
                    self.describe()
                );
            }
        }
    }

    /// Waits for `listening on IP:PORT`; returns `IP:PORT`.
    fn wait_listening(&self, deadline: &Deadline) -> String {
        let line = self.wait_line(deadline, "`listening on IP:PORT`", |l| {
            l.starts_with("listening on ")
        });
        let addr = line["listening on ".len()..].trim().to_owned();
        assert!(
            addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
            "{}: {line:?}",
            self.name
        );
        addr
    }

    /// Waits for the process to exit; returns its status and whole stdout.
    fn wait_exit(&mut self, deadline: &Deadline) -> (ExitStatus, String) {
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline.0 {
                self.kill();
                panic!("{} did not finish in time\n{}", self.name, self.describe());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        (status, self.stdout.lock().unwrap().join("\n"))
    }

    /// Waits for a successful exit; returns stdout.
    fn wait_success(&mut self, deadline: &Deadline) -> String {
        let (status, stdout) = self.wait_exit(deadline);
        assert!(
            status.success(),
            "{} failed: {status}\n{}",
            self.name,
            self.describe()
        );
        stdout
    }

    /// SIGKILL on Unix.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// Our examples and lt_peer.py

/// Our `seed` and `download` examples, built once per test process.
fn examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| examples::build(&["seed", "download"]))
}

fn our_seed(torrent: &Path, data: &Path) -> Proc {
    Proc::spawn(
        "our seed",
        Command::new(examples_dir().join("seed"))
            .arg(torrent)
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"]),
    )
}

/// Our download of `source` (a .torrent path or a magnet link) into `out` from `peers`.
fn our_download(name: &str, source: &str, out: &Path, peers: &[&str], listen: Option<u16>) -> Proc {
    let mut cmd = Command::new(examples_dir().join("download"));
    cmd.arg(source).arg("--out").arg(out).arg("--quiet");
    for peer in peers {
        cmd.args(["--peer", peer]);
    }
    if let Some(port) = listen {
        cmd.args(["--listen", &format!("127.0.0.1:{port}")]);
    }
    Proc::spawn(name, &mut cmd)
}

fn lt_peer() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt_peer.py")
}

/// libtorrent seeding `torrent` from `save_path`; extra arguments go to lt_peer.py.
fn lt_seed(torrent: &Path, save_path: &Path, extra: &[&str], deadline: &Deadline) -> Proc {
    Proc::spawn(
        "libtorrent seed",
        Command::new(common::PYTHON)
            .arg(lt_peer())
            .arg("seed")
            .arg(torrent)
            .arg(save_path)
            .args(["--timeout", &deadline.secs()])
            .args(extra),
    )
}

fn lt_download(
    source: &str,
    out: &Path,
    peers: &[&str],
    port: Option<u16>,
    deadline: &Deadline,
) -> Proc {
    let mut cmd = Command::new(common::PYTHON);
    cmd.arg(lt_peer())
        .arg("download")
        .arg(source)
        .arg(out)
        .args(["--timeout", &deadline.secs()]);
    for peer in peers {
        cmd.args(["--peer", peer]);
    }
    if let Some(port) = port {
        cmd.args(["--port", &port.to_string()]);
    }
    Proc::spawn("libtorrent download", &mut cmd)
}

/// What `lt_peer.py make` reports about a torrent it made.
struct Made {
    torrent: PathBuf,
    magnet: String,
    pieces: u64,
}

/// Makes a torrent of `content` with libtorrent and checks it with our parser.
fn lt_make(content: &Path, version: &str, piece_length: u64, deadline: &Deadline) -> Made {
    let name = content.file_name().unwrap().to_str().unwrap();
    let torrent = content
        .parent()
        .unwrap()
        .with_file_name(format!("{name}-{version}.torrent"));
    let mut make = Proc::spawn(
        "lt_peer.py make",
        Command::new(common::PYTHON)
            .arg(lt_peer())
            .arg("make")
            .arg(content)
            .arg(&torrent)
            .args(["--version", version, "--piece-length"])
            .arg(piece_length.to_string())
            .args(["--timeout", &deadline.secs()]),
    );
    let stdout = make.wait_success(deadline);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();

    let meta = Metainfo::from_bytes(fs::read(&torrent).unwrap()).unwrap();
    let expected = match version {
        "v1" => TorrentVersion::V1,
        "v2" => TorrentVersion::V2,
        _ => TorrentVersion::Hybrid,
    };
    assert_eq!(meta.version(), expected, "{}", torrent.display());
    assert_eq!(meta.num_pieces() as u64, report["pieces"].as_u64().unwrap());
    if version == "hybrid" && content.is_dir() {
        let layout = Layout::new(&meta).unwrap();
        assert!(
            layout.files().iter().any(|f| f.padding),
            "{}: libtorrent made no padding files",
            torrent.display()
        );
    }
    Made {
        torrent,
        magnet: report["magnet"].as_str().unwrap().to_owned(),
        pieces: meta.num_pieces() as u64,
    }
}

// ---------------------------------------------------------------------------------------------
// Content and checks

/// Deterministic pseudo-random bytes (xorshift64, eight bytes a step).
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `files` (relative path, length) under `root`, each with its own seed.
fn write_tree(root: &Path, files: &[(&str, usize)]) {
    for (i, (rel, len)) in files.iter().enumerate() {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, pseudo_random(1000 + i as u64, *len)).unwrap();
    }
}

/// One file of 3 MiB and a bit: the last piece is short.
fn single_file(src: &Path) -> PathBuf {
    write_tree(src, &[("single.bin", 3 * 1024 * 1024 + 12_345)]);
    src.join("single.bin")
}

/// A tree whose files end mid-piece (so a hybrid torrent pads them), with empty files, a
/// file of exactly one and a half pieces, nested directories and a 7-byte file.
fn multi_file(src: &Path) -> PathBuf {
    write_tree(
        &src.join("multi"),
        &[
            ("a.bin", 100_000),
            ("empty.txt", 0),
            ("sub/b.bin", 250_001),
            ("sub/c.bin", 49_152),
            ("sub/deeper/d.bin", 1_000_003),
            ("sub/deeper/nothing", 0),
            ("z.bin", 7),
        ],
    );
    src.join("multi")
}

/// Every file under `root` (relative path → contents).
fn read_tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if root.is_dir() {
        walk(root, root, &mut out);
    } else {
        let name = PathBuf::from(root.file_name().unwrap());
        out.insert(name, fs::read(root).unwrap());
    }
    out
}

/// The content downloaded into `out` is byte for byte the original `content` (a file or a
/// directory), with the same files: empty ones created, no padding files written.
fn assert_same_content(content: &Path, out: &Path, who: &str) {
    let got = out.join(content.file_name().unwrap());
    assert!(got.exists(), "{who}: {} is missing", got.display());
    let want = read_tree(content);
    let have = read_tree(&got);
    let want_names: Vec<_> = want.keys().collect();
    let have_names: Vec<_> = have.keys().collect();
    assert_eq!(have_names, want_names, "{who}: different files");
    for (rel, data) in &want {
        assert!(
            have[rel] == *data,
            "{who}: {} differs ({} bytes, want {})",
            rel.display(),
            have[rel].len(),
            data.len()
        );
    }
}

fn content_len(content: &Path) -> u64 {
    read_tree(content).values().map(|d| d.len() as u64).sum()
}

/// `have N/M pieces` from our download's stdout.
fn have_line(stdout: &str) -> (u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("have "))
        .unwrap_or_else(|| panic!("no `have N/M pieces` line in:\n{stdout}"));
    let counts = line
        .strip_prefix("have ")
        .and_then(|l| l.strip_suffix(" pieces"))
        .unwrap_or_else(|| panic!("bad line {line:?}"));
    let (n, m) = counts.split_once('/').unwrap();
    (n.parse().unwrap(), m.parse().unwrap())
}

/// `downloaded BYTES in SECONDS s` from our download's stdout: (bytes, seconds).
fn downloaded_line(stdout: &str) -> (u64, f64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("downloaded "))
        .unwrap_or_else(|| panic!("no `downloaded BYTES in SECONDS s` line in:\n{stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(
        words.len() == 5 && words[2] == "in" && words[4] == "s",
        "bad line {line:?}"
    );
    (words[1].parse().unwrap(), words[3].parse().unwrap())
}

/// Checks the report of one complete download from nothing.
fn assert_fresh_download(stdout: &str, made: &Made, content: &Path) {
    assert_eq!(have_line(stdout), (0, made.pieces), "{stdout}");
    let (bytes, seconds) = downloaded_line(stdout);
    assert!(
        bytes >= content_len(content),
        "downloaded {bytes} bytes of {}",
        content_len(content)
    );
    assert!(seconds >= 0.0);
}

/// Free TCP ports on 127.0.0.1 (released again, so another process may yet take one).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

// ---------------------------------------------------------------------------------------------
// libtorrent seeds, we download

fn libtorrent_seeds_we_download(version: &str) {
    if !common::libtorrent_available() {
        return;
    }
    let deadline = Deadline::start();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    for content in [single_file(&src), multi_file(&src)] {
        let made = lt_make(&content, version, SMALL_PIECE, &deadline);
        let seeder = lt_seed(&made.torrent, &src, &[], &deadline);
        let addr = seeder.wait_listening(&deadline);
        let out = tempfile::tempdir_in(dir.path()).unwrap();
        let mut ours = our_download(
            "our download",
            made.torrent.to_str().unwrap(),
            out.path(),
            &[&addr],
            None,
        );
        let stdout = ours.wait_success(&deadline);
        assert_fresh_download(&stdout, &made, &content);
        assert_same_content(&content, out.path(), "our download");
    }
}

#[test]
fn libtorrent_seeds_v1_we_download() {
    libtorrent_seeds_we_download("v1");
}

#[test]
fn libtorrent_seeds_v2_we_download() {
    libtorrent_seeds_we_download("v2");
}

#[test]
fn libtorrent_seeds_hybrid_we_download() {
    libtorrent_seeds_we_download("hybrid");
}

#[test]
fn libtorrent_seeds_we_download_from_a_hybrid_magnet() {
    libtorrent_seeds_we_download_from_a_magnet("hybrid");
}

/// A v2 magnet carries no piece hashes: the piece layers come from libtorrent through BEP 52
/// hash requests before any piece can be verified.
#[test]
fn libtorrent_seeds_we_download_from_a_v2_magnet() {
    libtorrent_seeds_we_download_from_a_magnet("v2");
}

fn libtorrent_seeds_we_download_from_a_magnet(version: &str) {
    if !common::libtorrent_available() {
        return;
    }
    let deadline = Deadline::start();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let content = multi_file(&src);
    let made = lt_make(&content, version, SMALL_PIECE, &deadline);
    assert!(made.magnet.contains("urn:btmh:"), "{}", made.magnet);
    assert_eq!(
        made.magnet.contains("urn:btih:"),
        version == "hybrid",
        "{}",
        made.magnet
    );
    let seeder = lt_seed(&made.torrent, &src, &[], &deadline);
    let addr = seeder.wait_listening(&deadline);
    let out = dir.path().join("out");
    let mut ours = our_download("our download", &made.magnet, &out, &[&addr], None);
    let stdout = ours.wait_success(&deadline);
    assert_fresh_download(&stdout, &made, &content);
    assert_same_content(&content, &out, "our download");
}

/// A bare magnet link (no peer address at all): our download joins the DHT through
/// libtorrent's DHT node, learns the seeder's address there (libtorrent announces it to the
/// nodes it knows, ours among them), and downloads.
#[test]
fn libtorrent_seeds_we_download_from_a_bare_magnet_through_the_dht() {
    if !common::libtorrent_available() {
        return;
    }
    let deadline = Deadline::start();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let content = multi_file(&src);
    let made = lt_make(&content, "v1", SMALL_PIECE, &deadline);
    let seeder = lt_seed(&made.torrent, &src, &["--dht"], &deadline);
    let addr = seeder.wait_listening(&deadline);
    // The magnet link without any x.pe: only the info hash.
    let bare = made.magnet.split('&').next().unwrap().to_owned();
    assert!(
        bare.starts_with("magnet:?xt=urn:btih:") && !bare.contains("x.pe"),
        "{bare}"
    );
    let out = dir.path().join("out");
    let mut cmd = Command::new(examples_dir().join("download"));
    // libtorrent's DHT listens on the same port as its TCP listener, over UDP.
    cmd.arg(&bare)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .args(["--dht-bootstrap", &addr]);
    let mut ours = Proc::spawn("our download (DHT)", &mut cmd);
    let stdout = ours.wait_success(&deadline);
    assert_fresh_download(&stdout, &made, &content);
    assert_same_content(&content, &out, "our download (DHT)");
}

// ---------------------------------------------------------------------------------------------
// We seed, libtorrent downloads

/// Runs libtorrent's download of `source` from `addr` into `out` and checks its report.
fn lt_downloads(source: &str, out: &Path, addr: &str, made: &Made, deadline: &Deadline) {
    let mut lt = lt_download(source, out, &[addr], None, deadline);
    let stdout = lt.wait_success(deadline);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["pieces"].as_u64(), Some(made.pieces), "{stdout}");
}

fn we_seed_libtorrent_downloads(version: &str) {
    if !common::libtorrent_available() {
        return;
    }
    let deadline = Deadline::start();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    for content in [single_file(&src), multi_file(&src)] {
        let made = lt_make(&content, version, SMALL_PIECE, &deadline);
        let seeder = our_seed(&made.torrent, &src);
        let addr = seeder.wait_listening(&deadline);
        let out = tempfile::tempdir_in(dir.path()).unwrap();
        lt_downloads(
            made.torrent.to_str().unwrap(),
            out.path(),
            &addr,
            &made,
            &deadline,
        );
        assert_same_content(&content, out.path(), "libtorrent download");
    }
}

#[test]
fn we_seed_v1_libtorrent_downloads() {
    we_seed_libtorrent_downloads("v1");
}

#[test]
fn we_seed_v2_libtorrent_downloads() {
    we_seed_libtorrent_downloads("v2");
}

#[test]
fn we_seed_hybrid_libtorrent_downloads() {
    we_seed_libtorrent_downloads("hybrid");
}

#[test]
fn we_seed_libtorrent_downloads_from_a_hybrid_magnet() {
    we_seed_libtorrent_downloads_from_a_magnet("hybrid");
}

/// libtorrent asks us for the piece layers of a v2 torrent it has only from a magnet link.
#[test]
fn we_seed_libtorrent_downloads_from_a_v2_magnet() {
    we_seed_libtorrent_downloads_from_a_magnet("v2");
}

fn we_seed_libtorrent_downloads_from_a_magnet(version: &str) {
    if !common::libtorrent_available() {
        return;
    }
    let deadline = Deadline::start();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let content = multi_file(&src);
    let made = lt_make(&content, version, SMALL_PIECE, &deadline);
    let seeder = our_seed(&made.torrent, &src);
    let addr = seeder.wait_listening(&deadline);
    let out = dir.path().join("out");
    lt_downloads(&made.magnet, &out, &addr, &made, &deadline);
    assert_same_content(&content, &out, "libtorrent download");
}

// ---------------------------------------------------------------------------------------------
// A swarm: one seeder, two of our downloaders and a libtorrent downloader

/// Starts the three downloaders at once, each told about the seeder and the downloaders
/// started before it, and checks that all of them complete.
fn swarm(seeder: &Proc, made: &Made, content: &Path, dir: &Path, deadline: &Deadline) {
    let seed_addr = seeder.wait_listening(deadline);
    let [port_a, port_b, port_c] = free_ports::<3>();
    let addr_a = format!("127.0.0.1:{port_a}");
    let addr_b = format!("127.0.0.1:{port_b}");
    let torrent = made.torrent.to_str().unwrap();
    let outs: Vec<PathBuf> = ["a", "b", "c"].iter().map(|n| dir.join(n)).collect();
    let mut a = our_download(
        "our download A",
        torrent,
        &outs[0],
        &[&seed_addr],
        Some(port_a),
    );
    let mut b = our_download(
        "our download B",
        torrent,
        &outs[1],
        &[&seed_addr, &addr_a],
        Some(port_b),
    );
    let mut c = lt_download(
        torrent,
        &outs[2],
        &[&seed_addr, &addr_a, &addr_b],
        Some(port_c),
        deadline,
    );
    for ours in [&mut a, &mut b] {
        let stdout = ours.wait_success(deadline);
        assert_eq!(have_line(&stdout), (0, made.pieces), "{}", ours.name);
        downloaded_line(&stdout);
    }
    c.wait_success(deadline);
    for (out, who) in outs
        .iter()
        .zip(["our download A", "our download B", "libtorrent"])
    {
        assert_same_content(content, out, who);
    }
}

/// A tree large enough for the downloaders to overlap: 6 MiB in 32 KiB pieces, padded.
fn swarm_content(src: &Path) -> PathBuf {
    write_tree(
        &src.join("swarm"),
        &[
            ("big.bin", 6 * 1024 * 1024 + 1234),
            ("small.bin", 33_333),
            ("empty", 0),
        ],
    );
    src.join("swarm")
}

#[test]
fn swarm_around_our_seeder() {
    if !common::libtorrent_available() {
        return;
    }
    let deadline = Deadline::start();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let content = swarm_content(&src);
    let made = lt_make(&content, "hybrid", SMALL_PIECE, &deadline);
    let seeder = our_seed(&made.torrent, &src);
    swarm(&seeder, &made, &content, dir.path(), &deadline);
}

#[test]
fn swarm_around_a_libtorrent_seeder() {
    if !common::libtorrent_available() {
        return;
    }
    let deadline = Deadline::start();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let content = swarm_content(&src);
    let made = lt_make(&content, "hybrid", SMALL_PIECE, &deadline);
    // At 4 MiB/s for the torrent as a whole the seeder alone needs seconds to serve three
    // downloaders, so they have time to trade pieces among themselves.
    let seeder = lt_seed(
        &made.torrent,
        &src,
        &["--upload-limit", &(4 << 20).to_string()],
        &deadline,
    );
    swarm(&seeder, &made, &content, dir.path(), &deadline);
}

// ---------------------------------------------------------------------------------------------
// Resume after SIGKILL

#[test]
fn download_killed_midway_resumes() {
    killed_midway_resumes(false);
}

/// The same from a (v2) magnet link: the metadata and piece layers the first run received are
/// kept, so the second starts as from a .torrent file, with what the first verified.
#[test]
fn download_from_a_magnet_killed_midway_resumes() {
    killed_midway_resumes(true);
}

fn killed_midway_resumes(from_magnet: bool) {
    if !common::libtorrent_available() {
        return;
    }
    const TOTAL: usize = 64 * 1024 * 1024;
    let deadline = Deadline::start();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_tree(&src, &[("resume.bin", TOTAL)]);
    let content = src.join("resume.bin");
    // From a v2 magnet, what is kept must hold the piece layers fetched from the seeder too.
    let version = if from_magnet { "v2" } else { "v1" };
    let made = lt_make(&content, version, 256 * 1024, &deadline);
    // A torrent upload limit holds for local peers too (libtorrent exempts them from session
    // limits only): 64 MiB at 16 MiB/s leaves seconds to kill the download half way.
    let seeder = lt_seed(
        &made.torrent,
        &src,
        &["--upload-limit", &(16 << 20).to_string(), "--progress"],
        &deadline,
    );
    let addr = seeder.wait_listening(&deadline);
    let out = dir.path().join("out");
    let torrent = if from_magnet {
        made.magnet.as_str()
    } else {
        made.torrent.to_str().unwrap()
    };

    let mut first = our_download("our download (to be killed)", torrent, &out, &[&addr], None);
    seeder.wait_line(&deadline, "`uploaded` past half the content", |l| {
        l.strip_prefix("uploaded ")
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n >= TOTAL / 2)
    });
    assert!(
        first.child.try_wait().unwrap().is_none(),
        "the download finished before it could be killed\n{}",
        first.describe()
    );
    first.kill();
    let stdout = first.wait_exit(&deadline).1;
    assert_eq!(have_line(&stdout), (0, made.pieces), "{stdout}");
    assert!(out.exists(), "nothing was written before the kill");
    if from_magnet {
        let kept = fs::read_dir(out.join(".tessera"))
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().ends_with(".torrent"));
        assert!(kept, "the magnet's metadata was not kept");
    }

    let mut second = our_download("our download (resumed)", torrent, &out, &[&addr], None);
    let stdout = second.wait_success(&deadline);
    let (have, pieces) = have_line(&stdout);
    assert_eq!(pieces, made.pieces, "{stdout}");
    assert!(
        have > 0 && have < pieces,
        "resumed with {have}/{pieces} pieces"
    );
    let (bytes, _) = downloaded_line(&stdout);
    assert!(
        bytes < TOTAL as u64,
        "the resumed download fetched {bytes} bytes of {TOTAL}"
    );
    assert_same_content(&content, &out, "resumed download");
}
