#!/usr/bin/python3
"""Swarm benchmark: one seeder, one downloader, TCP on 127.0.0.1, libtorrent and Tessera in
all four pairings, measured in the same run on the same content.

    /usr/bin/python3 benches/swarm_bench.py [--size-mib 1024] [--only lt-lt,ours-ours] [--runs N]

Pairs (seeder-downloader): lt-lt, lt-ours, ours-lt, ours-ours. libtorrent is Debian's
python3-libtorrent driven by tests/support/lt_peer.py; ours are the `seed` and `download`
examples, built with `cargo build --release --examples` (CARGO_TARGET_DIR is respected).

The content is one file of random bytes and a v1 torrent with 1 MiB pieces (libtorrent's
create_torrent), kept under --workdir and reused across runs and invocations. Every download
writes to a fresh directory under /tmp, so disk writes are included; nothing is dropped from the
page cache (the seeded file is read from it), and `sync` runs between downloads, untimed.

Each side is its own process. Measured per download:
  * wall: from starting the downloader process to its exit (startup, connecting, transfer,
    verification and flush included);
  * downloader CPU: user+sys of the whole process (os.wait4);
  * seeder CPU: user+sys from /proc/<pid>/stat, taken just before the downloader starts and
    just after it exits, so the seeder's initial check of its data is not counted.
libtorrent's downloader also reports when it first connected: up to a second after start
(see lt_peer.py), which the "lt-lt without connect wait" line removes, a comparison that
favours libtorrent.

Targets printed at the end: our download from a libtorrent seeder no slower than libtorrent's
own (wall ratio <= 1.0), and ours->ours at least 1.5x faster than lt->lt.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LT_PEER = os.path.join(ROOT, "tests", "support", "lt_peer.py")
PYTHON = "/usr/bin/python3"
PAIRS = ["lt-lt", "lt-ours", "ours-lt", "ours-ours"]
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1 << 20


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def die(msg):
    log("error: " + msg)
    sys.exit(1)


def cargo_target_dir():
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)["target_directory"]


def build_ours(no_build):
    if not no_build:
        log("building: cargo build --release --examples")
        subprocess.run(["cargo", "build", "--release", "--examples"], cwd=ROOT, check=True)
    examples = os.path.join(cargo_target_dir(), "release", "examples")
    bins = {name: os.path.join(examples, name) for name in ("seed", "download")}
    for name, path in bins.items():
        if not os.access(path, os.X_OK):
            die("no %s binary at %s" % (name, path))
    return bins


def make_content(workdir, size_mib, piece_length):
    """Returns (torrent path, save path, content file), making them if they are missing."""
    os.makedirs(workdir, exist_ok=True)
    save = os.path.join(workdir, "content")
    os.makedirs(save, exist_ok=True)
    name = "bench-%dMiB.bin" % size_mib
    content = os.path.join(save, name)
    size = size_mib * MIB
    if not os.path.exists(content) or os.path.getsize(content) != size:
        log("writing %d MiB of random bytes to %s" % (size_mib, content))
        tmp = content + ".part"
        with open(tmp, "wb") as f:
            for _ in range(size_mib):
                f.write(os.urandom(MIB))
        os.replace(tmp, content)
        # Torrents of the old bytes are stale.
        for old in os.listdir(workdir):
            if old.startswith(name) and old.endswith(".torrent"):
                os.remove(os.path.join(workdir, old))
    torrent = os.path.join(workdir, "%s-v1-%d.torrent" % (name, piece_length))
    if not os.path.exists(torrent):
        log("making %s" % torrent)
        subprocess.run(
            [PYTHON, LT_PEER, "make", content, torrent, "--version", "v1",
             "--piece-length", str(piece_length)],
            check=True, stdout=subprocess.DEVNULL,
        )
    return torrent, save, content


def proc_cpu_seconds(pid):
    """user+sys of a live process (all its threads), from /proc/<pid>/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Seeder:
    def __init__(self, kind, torrent, save, bins, timeout):
        self.kind = kind
        if kind == "lt":
            cmd = [PYTHON, LT_PEER, "seed", torrent, save, "--timeout", str(timeout)]
        else:
            cmd = [bins["seed"], torrent, "--data", save, "--listen", "127.0.0.1:0"]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self.addr = self._wait_listening(timeout)
        # Keep reading stdout so that the seeder never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def _wait_listening(self, timeout):
        found = []

        def read():
            for line in self.proc.stdout:
                if line.startswith("listening on "):
                    found.append(line.split()[-1])
                    return

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        if not found:
            self.stop()
            die("%s seeder did not report `listening on` within %s s:\n%s"
                % (self.kind, timeout, "".join(self.stderr[-20:])))
        return found[0]

    def cpu(self):
        return proc_cpu_seconds(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            if self.kind == "lt":
                self.proc.stdin.close()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_download(kind, torrent, peer, out, bins, timeout):
    """Runs one download to completion; returns (wall s, cpu s, stdout)."""
    if kind == "lt":
        cmd = [PYTHON, LT_PEER, "download", torrent, out, "--peer", peer,
               "--timeout", str(timeout)]
    else:
        cmd = [bins["download"], torrent, "--out", out, "--peer", peer, "--quiet"]
    out_file = tempfile.TemporaryFile(mode="w+")
    err_file = tempfile.TemporaryFile(mode="w+")
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out_file, stderr=err_file)
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    out_file.seek(0)
    err_file.seek(0)
    stdout, stderr = out_file.read(), err_file.read()
    if proc.returncode != 0:
        die("%s download failed (exit %s):\n%s%s" % (kind, proc.returncode, stdout, stderr[-4000:]))
    return wall, usage.ru_utime + usage.ru_stime, stdout


def self_reported(kind, stdout):
    """(seconds the downloader reports, libtorrent's connect wait or None)."""
    if kind == "lt":
        rep = json.loads(stdout.strip().splitlines()[-1])
        return rep["seconds"], rep["connect_seconds"]
    for line in stdout.splitlines():
        words = line.split()
        if len(words) == 5 and words[0] == "downloaded" and words[2] == "in":
            return float(words[3]), None
    return None, None


def same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(8 * MIB), fb.read(8 * MIB)
            if x != y:
                return False
            if not x:
                return True


def run_pair(pair, torrent, save, content, bins, args):
    seed_kind, dl_kind = pair.split("-")
    os.sync()
    seeder = Seeder(seed_kind, torrent, save, bins, args.timeout)
    out = tempfile.mkdtemp(prefix="tessera-swarm-bench-dl-", dir="/tmp")
    try:
        peer = seeder.addr
        seed_cpu0 = seeder.cpu()
        wall, dl_cpu, stdout = run_download(dl_kind, torrent, peer, out, bins, args.timeout)
        seed_cpu = seeder.cpu() - seed_cpu0
        seeder.stop()
        got = os.path.join(out, os.path.basename(content))
        if not args.no_verify and not same_file(content, got):
            die("%s: the downloaded file differs from the original" % pair)
        reported, connect = self_reported(dl_kind, stdout)
        return {
            "pair": pair, "wall": wall, "dl_cpu": dl_cpu, "seed_cpu": seed_cpu,
            "reported": reported, "connect": connect,
        }
    finally:
        seeder.stop()
        shutil.rmtree(out, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--piece-length", type=int, default=MIB)
    parser.add_argument("--only", default=",".join(PAIRS),
                        help="comma-separated pairs among %s" % ", ".join(PAIRS))
    parser.add_argument("--runs", type=int, default=1, help="runs per pair; the median is shown")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(),
                                                          "tessera-swarm-bench"))
    parser.add_argument("--timeout", type=float, default=600.0, help="per download, seconds")
    parser.add_argument("--no-build", action="store_true", help="use the examples as built")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip comparing the downloaded file with the original")
    parser.add_argument("--json", action="store_true", help="also print every run as JSON")
    args = parser.parse_args()

    pairs = [p.strip() for p in args.only.split(",") if p.strip()]
    for p in pairs:
        if p not in PAIRS:
            die("unknown pair %r (expected %s)" % (p, ", ".join(PAIRS)))
    if subprocess.run([PYTHON, "-c", "import libtorrent"], capture_output=True).returncode:
        die("%s cannot import libtorrent (apt-get install python3-libtorrent)" % PYTHON)
    bins = build_ours(args.no_build) if any("ours" in p for p in pairs) else {}

    with open("/proc/loadavg") as f:
        log("load average: %s; %d CPUs" % (" ".join(f.read().split()[:3]), os.cpu_count()))
    torrent, save, content = make_content(args.workdir, args.size_mib, args.piece_length)
    size = args.size_mib * MIB
    gib = size / (1 << 30)

    results = {p: [] for p in pairs}
    for run in range(args.runs):
        for pair in pairs:
            r = run_pair(pair, torrent, save, content, bins, args)
            log("run %d %-9s wall %.2f s, downloader CPU %.2f s, seeder CPU %.2f s"
                % (run + 1, pair, r["wall"], r["dl_cpu"], r["seed_cpu"]))
            results[pair].append(r)
            if args.json:
                print(json.dumps(r), flush=True)

    def median_run(pair):
        runs = sorted(results[pair], key=lambda r: r["wall"])
        return runs[(len(runs) - 1) // 2]

    med = {p: median_run(p) for p in pairs}
    print()
    print("%d MiB, v1, %d KiB pieces, TCP on 127.0.0.1, %d run(s) per pair (median wall)"
          % (args.size_mib, args.piece_length // 1024, args.runs))
    print("%-10s %8s %8s %10s %14s %14s" % (
        "seed-dl", "wall s", "MB/s", "reported s", "dl CPU s/GiB", "seed CPU s/GiB"))
    for p in pairs:
        r = med[p]
        reported = "%.2f" % r["reported"] if r["reported"] is not None else "-"
        print("%-10s %8.2f %8.1f %10s %14.2f %14.2f" % (
            p, r["wall"], size / r["wall"] / 1e6, reported, r["dl_cpu"] / gib,
            r["seed_cpu"] / gib))
    print("(MB = 10^6 bytes; wall = downloader process start to exit; reported = the "
          "downloader's own figure)")

    if "lt-lt" in med:
        base = med["lt-lt"]
        # libtorrent's downloader may wait up to a second before its first connection.
        base_tight = base["wall"] - (base["connect"] or 0.0)
        print()
        print("lt-lt without libtorrent's connect wait: %.2f s" % base_tight)
        if "lt-ours" in med:
            w = med["lt-ours"]["wall"]
            print("ours from libtorrent vs lt->lt, wall:  %.3f (target <= 1.0); "
                  "%.3f against lt-lt without its connect wait"
                  % (w / base["wall"], w / base_tight))
        if "ours-ours" in med:
            w = med["ours-ours"]["wall"]
            print("ours->ours speedup over lt->lt:        %.2fx (target >= 1.5x); "
                  "%.2fx against lt-lt without its connect wait"
                  % (base["wall"] / w, base_tight / w))


if __name__ == "__main__":
    main()
