#!/usr/bin/python3
"""libtorrent as a peer for Tessera's swarm interop tests and benchmark.

Run with Debian's interpreter, `/usr/bin/python3` (python3-libtorrent 2.0). Everything is on
127.0.0.1 over TCP: uTP, DHT, LSD, UPnP and NAT-PMP are off, there are no trackers, and an IP
filter refuses every address outside 127.0.0.0/8. Every wait is bounded, and a watchdog thread
ends the process if anything (libtorrent included) hangs.

    make <CONTENT_PATH> <OUT.torrent> --version v1|v2|hybrid [--piece-length N]
        libtorrent's create_torrent over a file or a directory (empty files included; hybrid
        and v2 torrents get libtorrent's padding files). The save path to seed it from is the
        parent of CONTENT_PATH. Prints one JSON line: torrent, magnet, pieces, piece_length,
        total_size, files, pad_files.

    seed <FILE.torrent> <SAVE_PATH> [--port P] [--timeout S] [--upload-limit BYTES_PER_S]
         [--progress]
        Checks the data in SAVE_PATH (a full hash check: no resume data is given), fails unless
        it is a complete seed, prints `listening on 127.0.0.1:PORT` (port 0 gives the real
        port) and serves until stdin is closed, SIGINT/SIGTERM, or --timeout (default 120 s).
        Give it a pipe on stdin: /dev/null reads as closed at once. --upload-limit caps this
        torrent's upload (a torrent limit applies to local peers too; session limits do not).
        --progress prints `uploaded BYTES` lines about every 0.1 s.

    download <FILE.torrent | MAGNET> <SAVE_PATH> --peer IP:PORT [--peer ...] [--port P]
             [--timeout S]
        Downloads from the given peers (for a magnet link the metadata comes from them too),
        waits until every piece is verified, flushes, and prints one JSON line
        {"seconds": ..., "bytes": ..., "pieces": ...} (seconds from adding the torrent to
        seeding, payload bytes downloaded, pieces in the torrent; also connect_seconds, from
        adding the torrent to the first connected peer, and have_at_start, the pieces found
        on disk by the initial check). Exits 1 with `error: ...` on stderr on
        timeout (default 120 s) or a torrent or file error.

Settings that matter for fast, local exchanges (see `session_settings`):
  * out_enc_policy=disabled: by default libtorrent's first outgoing attempt is an MSE
    (encrypted) handshake and it only retries in plaintext about a second after a peer that does
    not speak MSE drops it. Incoming connections still accept both.
  * allow_multiple_connections_per_ip: every peer here has the address 127.0.0.1.
  * rate limits: peers on 127.0.0.1 belong to libtorrent's local peer class, which has no
    limits; rate_limit_ip_overhead is turned off anyway.
"""

import argparse
import json
import os
import select
import signal
import sys
import threading
import time

import libtorrent as lt

WATCHDOG_GRACE_S = 20.0


def fail(message, code=1):
    """Prints `error: message` on stderr and ends the process at once."""
    sys.stdout.flush()
    sys.stderr.write("error: %s\n" % message)
    sys.stderr.flush()
    os._exit(code)


def start_watchdog(seconds):
    """Ends the process if it is still running after `seconds`, whatever it is doing."""

    def expire():
        fail("watchdog: still running after %.0f s" % seconds, code=3)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def finish(code=0):
    """Exits without tearing the session down: the files are flushed and closed by then, and a
    libtorrent shutdown is one more thing that could hang."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def session_settings(port):
    return {
        "listen_interfaces": "127.0.0.1:%d" % port,
        # A busy port would otherwise silently become one of the next ten (wait_listening
        # also refuses libtorrent's last resort, any free port).
        "max_retry_port_bind": 0,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_tcp": True,
        "enable_outgoing_tcp": True,
        "allow_multiple_connections_per_ip": True,
        "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.enabled),
        "rate_limit_ip_overhead": False,
        # Torrents start, and queued connections are made, on libtorrent's tick: at the default
        # 500 ms a small local transfer waits up to half a second for it. libtorrent's manual
        # suggests about 100 ms for finer bandwidth distribution.
        "tick_interval": 100,
        "upload_rate_limit": 0,
        "download_rate_limit": 0,
        "alert_mask": int(
            lt.alert_category.error
            | lt.alert_category.status
            | lt.alert_category.storage
        ),
    }


def make_session(port, dht=False):
    settings = session_settings(port)
    if dht:
        settings.update(
            {
                "enable_dht": True,
                "dht_bootstrap_nodes": "",
                "dht_restrict_routing_ips": False,
                "dht_restrict_search_ips": False,
                "dht_block_ratelimit": 100000,
                "dht_upload_rate_limit": 1000000,
            }
        )
    s = lt.session(settings)
    # Loopback only, whatever peers are learnt through PEX.
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", 1)
    f.add_rule("127.0.0.0", "127.255.255.255", 0)
    f.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)
    s.set_ip_filter(f)
    return s


def wait_listening(s, port, deadline):
    """Waits for the TCP listen socket; returns its port, which must be `port` unless that is
    0. (libtorrent opens a UDP socket on the same port too, for uTP and DHT; only the TCP one
    matters here.)"""
    while time.monotonic() < deadline:
        s.wait_for_alert(100)
        for a in s.pop_alerts():
            tcp = a.socket_type == lt.socket_type_t.tcp if hasattr(a, "socket_type") else False
            if isinstance(a, lt.listen_failed_alert) and tcp:
                fail("listen failed: %s" % a.message())
            if isinstance(a, lt.listen_succeeded_alert) and tcp:
                if port not in (0, a.port):
                    fail("cannot listen on 127.0.0.1:%d (libtorrent took %d instead)"
                         % (port, a.port))
                return a.port
    fail("not listening after the timeout")


def check_alerts(s):
    """Fails on torrent or file errors; returns the alerts for the caller to inspect."""
    alerts = s.pop_alerts()
    for a in alerts:
        if isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
            fail(a.message())
    return alerts


def torrent_params(source, save_path):
    if source.startswith("magnet:"):
        p = lt.parse_magnet_uri(source)
    else:
        p = lt.add_torrent_params()
        p.ti = lt.torrent_info(source)
    p.save_path = save_path
    # Not queued by the session's auto-manager, not paused.
    p.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    return p


def parse_peer(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("expected IP:PORT, got %r" % text)
    return (host.strip("[]"), int(port))


def cmd_make(args):
    start_watchdog(args.timeout)
    content = os.path.abspath(args.content)
    if not os.path.exists(content):
        fail("no such file or directory: %s" % content)
    flags = {
        "v1": lt.create_torrent.v1_only,
        "v2": lt.create_torrent.v2_only,
        "hybrid": 0,
    }[args.version]
    fs = lt.file_storage()
    # add_files keeps empty files; hidden files are kept too (no filter).
    lt.add_files(fs, content)
    if fs.num_files() == 0:
        fail("no files under %s" % content)
    ct = lt.create_torrent(fs, args.piece_length, flags=flags)
    ct.set_creator("tessera lt_peer.py (libtorrent %s)" % lt.__version__)
    lt.set_piece_hashes(ct, os.path.dirname(content))
    data = lt.bencode(ct.generate())
    with open(args.out, "wb") as f:
        f.write(data)
    ti = lt.torrent_info(args.out)
    files = ti.files()
    pad_flag = lt.file_storage.flag_pad_file
    pads = sum(1 for i in range(files.num_files()) if files.file_flags(i) & pad_flag)
    print(
        json.dumps(
            {
                "torrent": os.path.abspath(args.out),
                "magnet": lt.make_magnet_uri(ti),
                "pieces": ti.num_pieces(),
                "piece_length": ti.piece_length(),
                "total_size": ti.total_size(),
                "files": files.num_files() - pads,
                "pad_files": pads,
            }
        ),
        flush=True,
    )
    finish(0)


def cmd_seed(args):
    start_watchdog(args.timeout + WATCHDOG_GRACE_S)
    start = time.monotonic()
    deadline = start + args.timeout
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    s = make_session(args.port, dht=args.dht)
    port = wait_listening(s, args.port, deadline)
    h = s.add_torrent(torrent_params(args.torrent, args.save_path))
    if args.upload_limit:
        h.set_upload_limit(args.upload_limit)
    # No resume data: libtorrent hash-checks every piece of the files found in SAVE_PATH and
    # posts torrent_checked_alert when done.
    checked_at = None
    while True:
        alerts = check_alerts(s)
        if checked_at is None and any(isinstance(a, lt.torrent_checked_alert) for a in alerts):
            checked_at = time.monotonic()
        st = h.status()
        if st.is_seeding:
            break
        if checked_at is not None and time.monotonic() - checked_at > 1.0:
            fail(
                "not a seed after checking %s: %d/%d pieces (%s)"
                % (args.save_path, st.num_pieces, h.torrent_file().num_pieces(), st.state)
            )
        if time.monotonic() > deadline or stop.is_set():
            fail("still checking when stopped (%s, %.1f%%)" % (st.state, st.progress * 100))
        s.wait_for_alert(50)

    print("listening on 127.0.0.1:%d" % port, flush=True)
    last_report = 0.0
    last_announce = 0.0
    while not stop.is_set() and time.monotonic() < deadline:
        if args.dht and time.monotonic() - last_announce >= 1.0:
            # Announce to whatever nodes libtorrent's DHT knows by now (ours, once it joins).
            last_announce = time.monotonic()
            h.force_dht_announce()
        try:
            ready, _, _ = select.select([sys.stdin], [], [], 0.1)
        except InterruptedError:
            continue
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break  # stdin closed
        check_alerts(s)
        if args.progress and time.monotonic() - last_report >= 0.1:
            last_report = time.monotonic()
            print("uploaded %d" % h.status().total_payload_upload, flush=True)
    if args.progress:
        print("uploaded %d" % h.status().total_payload_upload, flush=True)
    finish(0)


def cmd_download(args):
    start_watchdog(args.timeout + WATCHDOG_GRACE_S)
    start = time.monotonic()
    deadline = start + args.timeout
    s = make_session(args.port)
    wait_listening(s, args.port, deadline)
    t0 = time.monotonic()
    params = torrent_params(args.source, args.save_path)
    # Peers in the torrent's list when it starts are tried at once (torrent_connect_boost);
    # peers given to connect_peer later wait for a periodic connection round, up to a second.
    params.peers = args.peer
    h = s.add_torrent(params)
    # Should the first attempts fail, connect again every half second while nobody is
    # connected (a refused or dropped peer is otherwise retried only after a long back-off).
    wants_peers = (lt.torrent_status.downloading_metadata, lt.torrent_status.downloading)
    last_connect = None
    connected_at = None
    have_at_start = None
    while True:
        check_alerts(s)
        st = h.status()
        now = time.monotonic()
        if connected_at is None and st.num_peers > 0:
            connected_at = now
        if have_at_start is None and st.state in wants_peers + (lt.torrent_status.seeding,):
            if st.has_metadata:
                have_at_start = st.num_pieces
        if st.is_seeding:
            break
        if now > deadline:
            fail(
                "timed out after %.0f s: %s, %.1f%%, %d peers, metadata %s"
                % (args.timeout, st.state, st.progress * 100, st.num_peers, st.has_metadata)
            )
        if st.state in wants_peers and st.num_peers == 0:
            if last_connect is None or now - last_connect > 0.5:
                for peer in args.peer:
                    h.connect_peer(peer)
                last_connect = now
        s.wait_for_alert(20)
    done = time.monotonic()
    seconds = done - t0
    connect_seconds = (connected_at if connected_at is not None else done) - t0

    # Flush and close the files before reporting.
    h.flush_cache()
    flush_deadline = min(deadline, time.monotonic() + 30)
    flushed = False
    while not flushed and time.monotonic() < flush_deadline:
        s.wait_for_alert(100)
        flushed = any(isinstance(a, lt.cache_flushed_alert) for a in check_alerts(s))
    if not flushed:
        fail("no cache_flushed_alert within 30 s")
    st = h.status()
    print(
        json.dumps(
            {
                "seconds": round(seconds, 4),
                "connect_seconds": round(connect_seconds, 4),
                "bytes": st.total_payload_download,
                "pieces": h.torrent_file().num_pieces(),
                "have_at_start": have_at_start or 0,
            }
        ),
        flush=True,
    )
    finish(0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    make = sub.add_parser("make", help="create a torrent with libtorrent")
    make.add_argument("content")
    make.add_argument("out")
    make.add_argument("--version", choices=["v1", "v2", "hybrid"], required=True)
    make.add_argument("--piece-length", type=int, default=0, help="0: libtorrent's choice")
    make.add_argument("--timeout", type=float, default=600.0)
    make.set_defaults(func=cmd_make)

    seed = sub.add_parser("seed", help="check data and seed it")
    seed.add_argument("torrent")
    seed.add_argument("save_path")
    seed.add_argument("--port", type=int, default=0)
    seed.add_argument("--timeout", type=float, default=120.0)
    seed.add_argument("--upload-limit", type=int, default=0, help="bytes per second, 0: none")
    seed.add_argument("--progress", action="store_true")
    seed.add_argument(
        "--dht",
        action="store_true",
        help="run libtorrent's DHT on the listen port (loopback allowed, no bootstrap nodes) "
        "and announce the torrent there every second",
    )
    seed.set_defaults(func=cmd_seed)

    dl = sub.add_parser("download", help="download from given peers")
    dl.add_argument("source", help="a .torrent file or a magnet link")
    dl.add_argument("save_path")
    dl.add_argument("--peer", type=parse_peer, action="append", required=True)
    dl.add_argument("--port", type=int, default=0)
    dl.add_argument("--timeout", type=float, default=120.0)
    dl.set_defaults(func=cmd_download)

    args = parser.parse_args()
    try:
        args.func(args)
    except Exception as e:  # a libtorrent or OS error: report it the same way as others
        fail("%s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    main()
