#!/usr/bin/python3
"""libtorrent DHT nodes for Tessera's DHT interop tests (tests/dht_libtorrent.rs).

Run with Debian's interpreter, `/usr/bin/python3` (python3-libtorrent 2.0).

    lt_dht.py [--sessions N] [--timeout S]

Starts N libtorrent sessions (default 2), each a DHT node on its own UDP port of 127.0.0.1
(libtorrent's DHT runs on the UDP socket of each listen interface) with no bootstrap nodes,
and prints one line per session, then `ready`:

    node I 127.0.0.1:PORT NODE_ID_HEX

Then reads commands from stdin, one a line, and answers each with one line (`error ...` if it
failed). I is a session index; hashes, keys and values are hex; VALUE is a raw bencoded value.

    add_node I IP:PORT                  -> ok            (libtorrent asks that node for nodes)
    live I                              -> live I [ID_HEX@IP:PORT ...]   (its live nodes)
    announce I HASH WAIT_S              -> announced I HASH PORT  (session I's port)
    get_peers I HASH WAIT_S             -> peers I HASH [IP:PORT ...]
    put_immutable I VALUE WAIT_S        -> put I TARGET NUM_SUCCESS
    get_immutable I TARGET WAIT_S       -> item I TARGET VALUE | item I TARGET none
                                           (byte-string values only: see `string_value`)
    put_mutable I SK64 PK32 DATA SALT WAIT_S
                                        -> put I TARGET NUM_SUCCESS SEQ
    get_mutable I PK32 SALT WAIT_S      -> mitem I SEQ VALUE SIG | mitem I none
                                           (byte-string values only)
    quit

put_mutable stores the byte string DATA (the value is its bencoding, `<len>:DATA`) signed with
the 64-byte expanded ed25519 secret key SK64, at libtorrent's choice of sequence number (one
more than the highest it finds). An empty SALT is written `-`.

libtorrent keeps nodes out of its routing table and searches when they share an IP address
(and rate-limits queries per IP): every node here is on 127.0.0.1, so those limits are off
(see `SETTINGS`). A watchdog ends the process after --timeout seconds (default 120), and it
also ends when stdin closes.
"""

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings

import libtorrent as lt

# dht_state() is deprecated in 2.0 but is the bindings' only way to read the node id.
warnings.filterwarnings("ignore", category=DeprecationWarning)

SETTINGS = {
    "listen_interfaces": "127.0.0.1:0",
    "enable_dht": True,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "dht_bootstrap_nodes": "",
    # All nodes share 127.0.0.1: by default libtorrent keeps one node per IP (or /24) in its
    # routing table and in each search.
    "dht_restrict_routing_ips": False,
    "dht_restrict_search_ips": False,
    # By default an IP sending more than 5 queries a second is blocked for 5 minutes.
    "dht_block_ratelimit": 10000,
    # The DHT's upload budget (bytes/s) for answers.
    "dht_upload_rate_limit": 10000000,
    # Verified (BEP 42) ids are not checked for local addresses; be explicit anyway.
    "dht_prefer_verified_node_ids": False,
    "dht_enforce_node_id": False,
    "dht_ignore_dark_internet": False,
    "alert_mask": lt.alert.category_t.dht_notification
    | lt.alert.category_t.dht_operation_notification
    | lt.alert.category_t.error_notification
    | lt.alert.category_t.status_notification,
}


def fail(message, code=1):
    sys.stdout.flush()
    sys.stderr.write("error: %s\n" % message)
    sys.stderr.flush()
    os._exit(code)


def start_watchdog(seconds):
    timer = threading.Timer(seconds, lambda: fail("watchdog: still running after %.0f s" % seconds, 3))
    timer.daemon = True
    timer.start()


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def sha1(hex_str):
    return lt.sha1_hash(bytes.fromhex(hex_str))


def hex_of(h):
    return h.to_bytes().hex() if hasattr(h, "to_bytes") else bytes(h).hex()


def string_value(alert):
    """The bencoded value of an item alert, or None if the lookup found nothing.

    The 2.0 bindings expose an item as a dict whose "value" is the item's *string* (reading an
    item of any other type, or a missing one, raises): only byte-string values can be read back.
    """
    try:
        item = alert.item
    except RuntimeError:
        return None
    value = item.get("value", item.get(b"value")) if isinstance(item, dict) else item
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode("latin-1")
    return b"%d:" % len(value) + value


def endpoint(ep):
    ip, port = ep
    return "%s:%d" % (ip, port)


class Node:
    def __init__(self, index):
        self.index = index
        self.ses = lt.session(SETTINGS)
        self.port = None
        deadline = time.monotonic() + 10
        while self.port is None and time.monotonic() < deadline:
            for alert in self.wait(0.2):
                if isinstance(alert, lt.listen_succeeded_alert) and "127.0.0.1" in str(alert.address):
                    self.port = alert.port
        if self.port is None or not self.ses.is_dht_running():
            fail("session %d: no DHT on 127.0.0.1" % index)
        state = self.ses.dht_state()
        ids = state.get(b"node-id") if isinstance(state, dict) else None
        if not ids:
            fail("session %d: no node id in dht_state: %r" % (index, state))
        self.nid = ids[0][:20]
        self.scratch = tempfile.mkdtemp(prefix="lt_dht_")

    def wait(self, seconds):
        self.ses.wait_for_alert(int(seconds * 1000))
        return self.ses.pop_alerts()

    def until(self, seconds, pick):
        """Pops alerts for up to `seconds`; returns the first one `pick` accepts, or None."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            for alert in self.wait(min(left, 0.1)):
                if pick(alert):
                    return alert


def command(nodes, words):
    name = words[0]
    node = nodes[int(words[1])]
    i = node.index
    ses = node.ses
    if name == "add_node":
        ip, port = words[2].rsplit(":", 1)
        ses.add_dht_node((ip, int(port)))
        say("ok")
    elif name == "live":
        ses.dht_live_nodes(lt.sha1_hash(node.nid))
        alert = node.until(5, lambda a: isinstance(a, lt.dht_live_nodes_alert))
        if alert is None:
            say("error live: no dht_live_nodes_alert")
            return
        nodes = ["%s@%s" % (hex_of(n["nid"]), endpoint(n["endpoint"])) for n in alert.nodes]
        say(" ".join(["live %d" % i] + nodes))
    elif name == "announce":
        # The bindings cannot build dht_announce's flags argument, so announce the way
        # libtorrent does for a torrent: add one (a magnet link, never completed) and let the
        # session announce it, on the session's port, at once. Nothing reports the end of an
        # announce: wait (up to WAIT_S) for its get_peers lookup to start, then a second for a
        # dht_reply_alert (peers found: the session may look the torrent up again soon after
        # the first announce). On 127.0.0.1 a lookup takes milliseconds; the announce_peer
        # messages go out as it ends.
        params = lt.parse_magnet_uri("magnet:?xt=urn:btih:" + words[2])
        params.save_path = node.scratch
        ses.add_torrent(params)
        info_hash = sha1(words[2])
        started = node.until(
            float(words[3]),
            lambda a: isinstance(a, lt.dht_outgoing_get_peers_alert) and a.info_hash == info_hash,
        )
        if started is None:
            say("error announce: the torrent was not announced")
            return
        node.until(1.0, lambda a: isinstance(a, lt.dht_reply_alert))
        say("announced %d %s %d" % (i, words[2], node.port))
    elif name == "get_peers":
        # One reply alert per node that had peers; none at all if no node had any.
        info_hash = sha1(words[2])
        ses.dht_get_peers(info_hash)
        peers = set()
        deadline = time.monotonic() + float(words[3])
        while time.monotonic() < deadline:
            for alert in node.wait(0.1):
                if isinstance(alert, lt.dht_get_peers_reply_alert) and alert.info_hash == info_hash:
                    peers.update(endpoint(ep) for ep in alert.peers())
            if peers:
                # Give the other nodes' answers a moment to arrive too.
                deadline = min(deadline, time.monotonic() + 0.5)
        say(" ".join(["peers %d %s" % (i, words[2])] + sorted(peers)))
    elif name == "put_immutable":
        target = ses.dht_put_immutable_item(lt.bdecode(bytes.fromhex(words[2])))
        alert = node.until(
            float(words[3]), lambda a: isinstance(a, lt.dht_put_alert) and a.target == target
        )
        if alert is None:
            say("error put_immutable: no dht_put_alert")
            return
        say("put %d %s %d" % (i, hex_of(target), alert.num_success))
    elif name == "get_immutable":
        target = sha1(words[2])
        ses.dht_get_immutable_item(target)
        alert = node.until(
            float(words[3]),
            lambda a: isinstance(a, lt.dht_immutable_item_alert) and a.target == target,
        )
        if alert is None:
            say("error get_immutable: no dht_immutable_item_alert")
            return
        value = string_value(alert)
        say("item %d %s %s" % (i, words[2], value.hex() if value is not None else "none"))
    elif name == "put_mutable":
        sk, pk, data = (bytes.fromhex(w) for w in words[2:5])
        salt = b"" if words[5] == "-" else bytes.fromhex(words[5])
        ses.dht_put_mutable_item(sk, pk, data, salt)
        alert = node.until(
            float(words[6]),
            lambda a: isinstance(a, lt.dht_put_alert) and bytes(a.public_key) == pk,
        )
        if alert is None:
            say("error put_mutable: no dht_put_alert")
            return
        say("put %d %s %d %d" % (i, hex_of(alert.target), alert.num_success, alert.seq))
    elif name == "get_mutable":
        pk = bytes.fromhex(words[2])
        salt = b"" if words[3] == "-" else bytes.fromhex(words[3])
        ses.dht_get_mutable_item(pk, salt)
        # Alerts come as newer versions arrive; the last one is `authoritative`.
        best = None
        deadline = time.monotonic() + float(words[4])
        while time.monotonic() < deadline:
            alert = node.until(
                deadline - time.monotonic(),
                lambda a: isinstance(a, lt.dht_mutable_item_alert) and bytes(a.key) == pk,
            )
            if alert is None:
                break
            value = string_value(alert)
            if value is not None and (best is None or alert.seq > best[0]):
                best = (alert.seq, value, bytes(alert.signature))
            if alert.authoritative:
                break
        if best is None:
            say("mitem %d none" % i)
        else:
            say("mitem %d %d %s %s" % (i, best[0], best[1].hex(), best[2].hex()))
    else:
        say("error unknown command %s" % name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    start_watchdog(args.timeout)
    nodes = [Node(i) for i in range(args.sessions)]
    for node in nodes:
        say("node %d 127.0.0.1:%d %s" % (node.index, node.port, node.nid.hex()))
    say("ready")
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        try:
            command(nodes, words)
        except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
            say("error %s: %r" % (words[0], e))
    sys.stdout.flush()
    for node in nodes:
        shutil.rmtree(node.scratch, ignore_errors=True)
    # A libtorrent shutdown is one more thing that could hang: leave at once.
    os._exit(0)


if __name__ == "__main__":
    main()
