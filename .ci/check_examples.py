#!/usr/bin/env python3
"""Contract checks for the command-line examples.

torrent_info: every torrent in libtorrent's test corpus gives the verdict and the info hashes
listed in EXPECTED.tsv; rejected files exit 1 with a single `error: ...` line; the JSON for
parsed files has the documented keys. make_torrent: a created torrent reads back with
torrent_info and the printed magnet link carries its info hashes.
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "examples")
CORPUS = os.path.join(ROOT, "..", "shared", "corpus", "libtorrent-test-torrents")
KEYS = {"version", "info_hash_v1", "info_hash_v2", "name", "piece_length", "num_pieces",
        "total_length", "files", "trackers", "web_seeds", "private", "magnet"}


def run(name, *args):
    return subprocess.run([os.path.join(EXAMPLES, name), *args], capture_output=True,
                          text=True, timeout=60)


def main():
    failures = []
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(CORPUS, "EXPECTED.tsv"))
            if l.strip() and not l.startswith("#")]
    for fname, expect, v1, v2, _reason in rows:
        p = run("torrent_info", os.path.join(CORPUS, fname), "--json")
        if expect == "parse":
            if p.returncode != 0:
                failures.append(f"{fname}: exit {p.returncode}: {p.stderr.strip()}")
                continue
            obj = json.loads(p.stdout)
            if set(obj) != KEYS:
                failures.append(f"{fname}: keys {sorted(obj)}")
            if (obj["info_hash_v1"] or "-") != v1 or (obj["info_hash_v2"] or "-") != v2:
                failures.append(f"{fname}: hashes {obj['info_hash_v1']} {obj['info_hash_v2']}")
            if any(f["path"].startswith("/") or ".." in f["path"].split("/")
                   for f in obj["files"]):
                failures.append(f"{fname}: a path escapes the download directory")
        else:
            lines = p.stderr.strip().splitlines()
            if p.returncode != 1 or len(lines) != 1 or not lines[0].startswith("error: "):
                failures.append(f"{fname}: expected one error line and exit 1, got "
                                f"{p.returncode} {p.stderr!r}")
    for bad in ["magnet:?xt=urn:btih:zz", "/nonexistent/file.torrent"]:
        p = run("torrent_info", bad, "--json")
        if p.returncode != 1 or not p.stderr.startswith("error: "):
            failures.append(f"{bad}: exit {p.returncode} {p.stderr!r}")

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "content")
        os.makedirs(os.path.join(data, "sub"))
        with open(os.path.join(data, "a.bin"), "wb") as f:
            f.write(os.urandom(100_000))
        with open(os.path.join(data, "sub", "b.bin"), "wb") as f:
            f.write(os.urandom(40_000))
        for flag, version in [("--v1", "v1"), ("--v2", "v2"), ("--hybrid", "hybrid")]:
            out = os.path.join(tmp, f"{version}.torrent")
            p = run("make_torrent", data, "--out", out, flag, "--piece-length", "16384",
                    "--tracker", "http://127.0.0.1:1/announce", "--comment", "ci")
            if p.returncode != 0:
                failures.append(f"make_torrent {flag}: {p.stderr.strip()}")
                continue
            magnet = p.stdout.strip().splitlines()[-1]
            info = json.loads(run("torrent_info", out, "--json").stdout)
            if info["version"] != version or info["piece_length"] != 16384:
                failures.append(f"make_torrent {flag}: read back {info['version']}")
            for h in (info["info_hash_v1"], info["info_hash_v2"]):
                if h and h not in magnet:
                    failures.append(f"make_torrent {flag}: {h} not in {magnet}")
            m = json.loads(run("torrent_info", magnet, "--json").stdout)
            if (m["info_hash_v1"], m["info_hash_v2"]) != (info["info_hash_v1"], info["info_hash_v2"]):
                failures.append(f"make_torrent {flag}: magnet hashes differ")
        p = run("make_torrent", data, "--out", os.path.join(tmp, "x.torrent"), "--piece-length", "1000")
        if p.returncode != 1 or not p.stderr.startswith("error: "):
            failures.append(f"make_torrent bad piece length: exit {p.returncode} {p.stderr!r}")

    for f in failures:
        print("FAIL", f)
    print(f"{len(rows)} corpus files checked, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
