//! Helpers shared by the integration tests: locating the libtorrent corpus and running
//! libtorrent (Debian's python3-libtorrent) with a time limit.
#![allow(dead_code, clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The interpreter that has Debian's python3-libtorrent.
pub const PYTHON: &str = "/usr/bin/python3";

/// `../shared/corpus/libtorrent-test-torrents` beside the workspace, if it is there.
pub fn corpus_dir() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let dir = root.join("shared/corpus/libtorrent-test-torrents");
    dir.is_dir().then_some(dir)
}

/// True when the corpus or libtorrent must be present (CI sets this).
pub fn required() -> bool {
    std::env::var_os("TESSERA_REQUIRE_LIBTORRENT").is_some_and(|v| v == "1")
}

/// True if libtorrent can be imported. When it cannot and [`required`] is set, panics so the
/// test fails; otherwise the caller skips.
pub fn libtorrent_available() -> bool {
    let ok = Command::new(PYTHON)
        .args(["-c", "import libtorrent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            !required(),
            "TESSERA_REQUIRE_LIBTORRENT=1 but `{PYTHON} -c 'import libtorrent'` fails"
        );
        eprintln!("skipping: python3-libtorrent is not installed");
    }
    ok
}

/// Runs a Python script with libtorrent, passing `args`, killing it after `timeout`.
/// Returns stdout; panics with stderr if the script fails or times out. Output is drained on
/// background threads so that a chatty script cannot block on a full pipe.
pub fn run_python(script: &str, args: &[&str], timeout: Duration) -> String {
    let mut child = Command::new(PYTHON)
        .arg("-")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(script.as_bytes()).expect("write script");
    drop(stdin);
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err.join().unwrap_or_default();
            panic!(
                "libtorrent script timed out after {timeout:?}\nstderr:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    assert!(
        status.success(),
        "libtorrent script failed: {status}\nstderr:\n{}",
        String::from_utf8_lossy(&stderr)
    );
    String::from_utf8(stdout).expect("utf-8 stdout")
}
