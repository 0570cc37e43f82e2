//! Crash safety of the ledger node: `ledger load` is killed with SIGKILL at random moments;
//! `ledger verify` must then succeed, at a height at least the last `committed` line printed
//! (a block is printed only once it is synced to disk), and the next `load` must resume.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "support/examples.rs"]
mod examples;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The `ledger` example, built once per test process in this test's profile and target dir.
fn ledger_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| examples::build(&["ledger"]).join("ledger"))
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(ledger_bin()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Parses `ok HEIGHT STATE_ROOT supply TOTAL`.
fn verify(dir: &str) -> (u64, String) {
    let (ok, stdout, stderr) = run(&["verify", "--dir", dir]);
    assert!(ok, "verify failed:\n{stdout}\n{stderr}");
    let fields: Vec<&str> = stdout.trim().split(' ').collect();
    assert_eq!(fields[0], "ok", "{stdout}");
    assert_eq!(fields[3], "supply", "{stdout}");
    assert_eq!(fields[4], "2000000000000", "supply changed: {stdout}");
    (fields[1].parse().unwrap(), fields[2].to_owned())
}

#[test]
fn sigkill_during_load_never_loses_a_committed_block() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("chain");
    let dir = dir.to_str().unwrap();
    let (ok, stdout, stderr) = run(&[
        "init",
        "--dir",
        dir,
        "--accounts",
        "200",
        "--balance",
        "10000000000",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("genesis "), "{stdout}");

    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("kill schedule seed {seed}");
    let mut last_height = 0;
    let mut kills = 0;
    for round in 0..5 {
        // xorshift: the moment to kill, 50-800 ms into the run.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(50 + seed % 750);
        let kind = ["transfer", "cheque", "mixed"][round % 3];
        let mut child = Command::new(ledger_bin())
            .args([
                "load",
                "--dir",
                dir,
                "--txs",
                "20000",
                "--block-txs",
                "100",
                "--kind",
                kind,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let committed = Arc::new(Mutex::new(None::<u64>));
        let reader = {
            let committed = Arc::clone(&committed);
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.strip_prefix("committed ") {
                        let height = rest.split(' ').next().unwrap().parse().unwrap();
                        *committed.lock().unwrap() = Some(height);
                    }
                }
            })
        };
        let started = Instant::now();
        while started.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // SIGKILL: no destructor, no flush, no chance to finish a write.
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            child.kill().unwrap();
            kills += 1;
        }
        let status = child.wait().unwrap();
        reader.join().unwrap();
        if finished {
            assert!(status.success(), "load failed on its own");
        }
        let printed = *committed.lock().unwrap();
        let (height, _root) = verify(dir);
        if let Some(printed) = printed {
            assert!(
                height >= printed,
                "round {round}: committed {printed} was printed, verify reached only {height}"
            );
        }
        assert!(
            height >= last_height,
            "height went back from {last_height} to {height}"
        );
        last_height = height;
    }
    assert!(
        kills > 0,
        "no run was killed; the loads finish too fast for this test"
    );

    // After all that, a load runs to the end and its blocks verify.
    let (ok, stdout, stderr) = run(&["load", "--dir", dir, "--txs", "300", "--kind", "mixed"]);
    assert!(ok, "{stdout}\n{stderr}");
    let last: u64 = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("committed "))
        .next_back()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(stdout.contains("tx/s: "));
    let (height, root) = verify(dir);
    assert_eq!(height, last);
    let (ok, shown, _) = run(&["show", "--dir", dir, "--account", "test:1"]);
    assert!(ok);
    assert!(shown.contains(&root), "show prints the head's state root");
    assert!(shown.contains("valid against the state root"), "{shown}");
}
