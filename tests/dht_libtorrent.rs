//! Our DHT node (`tessera::dht::driver::Dht`, on tokio and a real UDP socket) in a small DHT
//! with two libtorrent nodes (Debian's python3-libtorrent, driven by
//! `tests/support/lt_dht.py`), all on 127.0.0.1:
//!
//! * the nodes learn each other (pings and find_node, both ways), and a find_node lookup of
//!   ours reaches both libtorrent nodes;
//! * libtorrent announces an info hash and our get_peers finds it (also as a stream), also
//!   from a read-only node of ours (BEP 43), which libtorrent answers but keeps out of its
//!   table;
//! * we announce (with a port and with `implied_port`) and libtorrent's get_peers finds us;
//! * BEP 44 immutable items, put by us and read by libtorrent, and the other way round;
//! * BEP 44 mutable items with BEP 44's test key, both ways, with the signatures compared.
//!
//! Two libtorrent nodes, not one: neither libtorrent nor our node consults its own store in a
//! lookup, so what one node announces or puts must be read back from a third. Every test
//! first waits until our node has both libtorrent nodes in its table and each of them has ours
//! among its live nodes.
//!
//! Skipped when libtorrent is missing, unless `TESSERA_REQUIRE_LIBTORRENT=1`. The Python
//! process is killed when its test ends, and every wait is bounded by the test's deadline.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(unreachable_pub)]
#[path = "../crates/metainfo/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera::dht::bep44::immutable_target;
use tessera::dht::driver::Dht;
use tessera::dht::{Id, MutableItem, Node, NodeConfig};
use tokio::runtime::Runtime;

/// How long one test may take in all.
const TEST_BUDGET: Duration = Duration::from_secs(60);
/// How long libtorrent waits for one of its lookups (it reports no end to some of them).
const LT_WAIT: &str = "5";

/// BEP 44's test key: the 64-byte expanded secret key (libtorrent's format) and public key.
const BEP44_SECRET: &str = "e06d3183d14159228433ed599221b80bd0a5ce8352e4bdf0262f76786ef1c74d\
                            b7e7a9fea2c0eb269d61e3b38e450a22e754941ac78479d6c54e1faf6037881d";
const BEP44_PUBLIC: &str = "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548";
/// BEP 44's signature of `12:Hello World!` at seq 1 with salt `foobar`.
const BEP44_SALTED_SIG: &str = "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d\
                                df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The instant by which a test must be done.
struct Deadline(Instant);

impl Deadline {
    fn start() -> Self {
        Self(Instant::now() + TEST_BUDGET)
    }

    fn passed(&self) -> bool {
        Instant::now() >= self.0
    }
}

/// `lt_dht.py` with two libtorrent DHT nodes; killed when dropped.
struct Lt {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Each node's address and id.
    nodes: Vec<(SocketAddr, Id)>,
}

impl Lt {
    fn start(deadline: &Deadline) -> Lt {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt_dht.py");
        let mut child = Command::new(common::PYTHON)
            .arg(script)
            .args(["--sessions", "2", "--timeout"])
            .arg((TEST_BUDGET.as_secs() + 30).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lt_dht.py");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let stdin = child.stdin.take().unwrap();
        let mut lt = Lt {
            child,
            stdin,
            lines,
            stderr,
            nodes: Vec::new(),
        };
        loop {
            let line = lt.line(deadline, "node lines");
            if line == "ready" {
                break;
            }
            // node I 127.0.0.1:PORT ID
            let words: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(words.len(), 4, "lt_dht.py: {line:?}");
            lt.nodes
                .push((words[2].parse().unwrap(), Id::from_hex(words[3]).unwrap()));
        }
        assert_eq!(lt.nodes.len(), 2);
        lt
    }

    fn line(&self, deadline: &Deadline, what: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => return line,
                Err(RecvTimeoutError::Timeout) if !deadline.passed() => {}
                Err(e) => {
                    std::thread::sleep(Duration::from_millis(200));
                    panic!(
                        "lt_dht.py: no {what} ({e:?})\nstderr:\n{}",
                        self.stderr.lock().unwrap().join("\n")
                    );
                }
            }
        }
    }

    /// Sends one command; returns its answer (fails the test on `error ...`).
    fn cmd(&mut self, deadline: &Deadline, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        let line = self.line(deadline, &format!("answer to {command:?}"));
        assert!(!line.starts_with("error"), "lt_dht.py: {command:?}: {line}");
        line
    }

    fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].0
    }

    /// Node `i`'s live nodes: (id, address).
    fn live(&mut self, deadline: &Deadline, i: usize) -> Vec<(Id, SocketAddr)> {
        let line = self.cmd(deadline, &format!("live {i}"));
        line.split_whitespace()
            .skip(2)
            .map(|w| {
                let (id, addr) = w.split_once('@').unwrap();
                (Id::from_hex(id).unwrap(), addr.parse().unwrap())
            })
            .collect()
    }

    /// Node `i`'s get_peers lookup of `info_hash`.
    fn get_peers(&mut self, deadline: &Deadline, i: usize, info_hash: &Id) -> Vec<SocketAddr> {
        let line = self.cmd(
            deadline,
            &format!("get_peers {i} {} {LT_WAIT}", info_hash.to_hex()),
        );
        line.split_whitespace()
            .skip(3)
            .map(|w| w.parse().unwrap())
            .collect()
    }
}

impl Drop for Lt {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        std::thread::sleep(Duration::from_millis(50));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Our node, the libtorrent nodes, and the runtime ours runs on.
struct Net {
    rt: Runtime,
    dht: Dht,
    lt: Lt,
    deadline: Deadline,
}

/// Polls `check` every 200 ms until it gives `Some`, or panics with `what` at the deadline.
fn wait_for<T>(deadline: &Deadline, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(!deadline.passed(), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Our node's configuration: every node here shares 127.0.0.1.
fn config(seed: u64) -> NodeConfig {
    let mut config = NodeConfig {
        seed,
        rate_per_ip: 10_000,
        burst_per_ip: 10_000,
        ..NodeConfig::default()
    };
    config.routing.restrict_ips = false;
    config.lookup.restrict_ips = false;
    config
}

/// Starts both sides and waits until each knows the others. A `read_only` node of ours
/// (BEP 43) is in no one's table: the libtorrent nodes are then introduced to each other.
fn network(seed: u64, read_only: bool) -> Option<Net> {
    if !common::libtorrent_available() {
        return None;
    }
    let deadline = Deadline::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut lt = Lt::start(&deadline);
    let config = NodeConfig {
        read_only,
        ..config(seed)
    };
    let dht = rt
        .block_on(Dht::bind("127.0.0.1:0".parse().unwrap(), config))
        .unwrap();
    let ours = dht.local_addr();
    for i in 0..2 {
        let to = if read_only { lt.addr(1 - i) } else { ours };
        lt.cmd(&deadline, &format!("add_node {i} {to}"));
    }
    rt.block_on(dht.bootstrap(vec![lt.addr(0), lt.addr(1)]))
        .unwrap();

    // Our table: both libtorrent nodes, under the ids they report.
    let expected = lt.nodes.clone();
    wait_for(&deadline, "both libtorrent nodes in our table", || {
        let contacts = rt.block_on(dht.contacts()).unwrap();
        expected
            .iter()
            .all(|(addr, id)| contacts.iter().any(|c| c.addr == *addr && c.id == *id))
            .then_some(())
    });
    // Theirs: our node among the live ones (or the other libtorrent node).
    for i in 0..2 {
        let expected = if read_only {
            (lt.nodes[1 - i].1, lt.nodes[1 - i].0)
        } else {
            (dht.id(), ours)
        };
        wait_for(&deadline, "libtorrent's table", || {
            lt.live(&deadline, i).contains(&expected).then_some(())
        });
    }
    Some(Net {
        rt,
        dht,
        lt,
        deadline,
    })
}

// ---------------------------------------------------------------------------------------------

#[test]
fn nodes_learn_each_other_and_find_node_reaches_libtorrent() {
    let Some(mut net) = network(1, false) else {
        return;
    };
    let started = Instant::now();
    // A lookup of each libtorrent node's own id: it answers, and is the closest.
    for i in 0..2 {
        let (addr, id) = net.lt.nodes[i];
        let closest = net.rt.block_on(net.dht.find_node(id)).unwrap();
        assert_eq!(
            closest.first().map(|c| (c.id, c.addr)),
            Some((id, addr)),
            "find_node({id:?}): {closest:?}"
        );
        assert!(
            closest.iter().any(|c| c.id == net.lt.nodes[1 - i].1),
            "the other libtorrent node answered too: {closest:?}"
        );
    }
    // libtorrent's nodes learnt each other through our answers once they looked something up;
    // make them look: a get_peers of anything walks through our node.
    let anything = Id([0x42; 20]);
    net.lt.cmd(
        &net.deadline,
        &format!("get_peers 0 {} 1", anything.to_hex()),
    );
    let other = net.lt.nodes[1];
    wait_for(
        &net.deadline,
        "libtorrent 0 learning libtorrent 1 from us",
        || {
            let live = net.lt.live(&net.deadline, 0);
            live.contains(&(other.1, other.0)).then_some(())
        },
    );
    // What we save restarts with both libtorrent nodes.
    let saved = net.rt.block_on(net.dht.save()).unwrap();
    let (id, contacts) = Node::load(&saved).unwrap();
    assert_eq!(id, net.dht.id());
    for (addr, id) in &net.lt.nodes {
        assert!(contacts.iter().any(|c| c.addr == *addr && c.id == *id));
    }
    let stats = net.rt.block_on(net.dht.stats()).unwrap();
    assert!(stats.queries_answered > 0, "{stats:?}");
    assert_eq!(
        stats.malformed, 0,
        "libtorrent sent nothing we could not decode"
    );
    eprintln!("lookups and checks took {:?}", started.elapsed());
    net.rt.block_on(net.dht.shutdown());
    assert!(net.rt.block_on(net.dht.table_size()).is_err());
}

#[test]
fn libtorrent_announces_we_find_it() {
    let Some(mut net) = network(2, false) else {
        return;
    };
    let info_hash = Id([0xa1; 20]);
    let line = net.lt.cmd(
        &net.deadline,
        &format!("announce 0 {} {LT_WAIT}", info_hash.to_hex()),
    );
    // announced 0 HASH PORT
    let port: u16 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    let peer: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let peers = wait_for(&net.deadline, "our get_peers to find libtorrent", || {
        let peers = net.rt.block_on(net.dht.get_peers(info_hash)).unwrap();
        peers.contains(&peer).then_some(peers)
    });
    assert_eq!(peers, vec![peer], "one peer announced");
    // The same through the stream, which ends with the lookup.
    let streamed = net.rt.block_on(async {
        let mut rx = net.dht.get_peers_stream(info_hash).await.unwrap();
        let mut all = Vec::new();
        while let Some(batch) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("the stream ends when the lookup is done")
        {
            all.extend(batch);
        }
        all
    });
    assert_eq!(streamed, vec![peer]);
    // An info hash nobody announced: the lookup ends, empty.
    let none = net.rt.block_on(net.dht.get_peers(Id([0xa2; 20]))).unwrap();
    assert!(none.is_empty(), "{none:?}");
}

/// A read-only node stores nothing, so the peer it finds came in libtorrent's `values`.
#[test]
fn libtorrent_announces_our_read_only_node_finds_it() {
    let Some(mut net) = network(6, true) else {
        return;
    };
    let info_hash = Id([0xa3; 20]);
    let line = net.lt.cmd(
        &net.deadline,
        &format!("announce 0 {} {LT_WAIT}", info_hash.to_hex()),
    );
    let port: u16 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    let peer: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let peers = wait_for(&net.deadline, "our get_peers to find libtorrent", || {
        let peers = net.rt.block_on(net.dht.get_peers(info_hash)).unwrap();
        peers.contains(&peer).then_some(peers)
    });
    assert_eq!(peers, vec![peer]);
    // libtorrent answered our read-only node's queries but keeps it out of its table.
    for i in 0..2 {
        let live = net.lt.live(&net.deadline, i);
        assert!(
            live.iter().all(|(id, _)| *id != net.dht.id()),
            "libtorrent {i}: {live:?}"
        );
    }
    let stats = net.rt.block_on(net.dht.stats()).unwrap();
    assert_eq!(
        stats.queries_answered, 0,
        "a read-only node answers nothing"
    );
}

#[test]
fn we_announce_libtorrent_finds_us() {
    let Some(mut net) = network(3, false) else {
        return;
    };
    // With an explicit port.
    let info_hash = Id([0xb1; 20]);
    let stored = net
        .rt
        .block_on(net.dht.announce(info_hash, Some(51413), false))
        .unwrap();
    assert_eq!(stored, 2, "both libtorrent nodes took the announce");
    let expected: SocketAddr = "127.0.0.1:51413".parse().unwrap();
    for i in 0..2 {
        let peers = net.lt.get_peers(&net.deadline, i, &info_hash);
        assert_eq!(peers, vec![expected], "libtorrent {i}");
    }
    // With implied_port: the source port of our datagrams.
    let info_hash = Id([0xb2; 20]);
    let stored = net
        .rt
        .block_on(net.dht.announce(info_hash, None, true))
        .unwrap();
    assert_eq!(stored, 2);
    let peers = net.lt.get_peers(&net.deadline, 1, &info_hash);
    assert_eq!(peers, vec![net.dht.local_addr()]);
}

#[test]
fn immutable_items_both_ways() {
    let Some(mut net) = network(4, false) else {
        return;
    };
    // Ours to libtorrent (the bindings only read back byte-string values).
    let text = b"tessera to libtorrent, hi!";
    let value = [format!("{}:", text.len()).as_bytes(), text].concat();
    let (target, stored) = net
        .rt
        .block_on(net.dht.put_immutable(value.clone()))
        .unwrap();
    assert_eq!(target, immutable_target(&value));
    assert_eq!(stored, 2, "both libtorrent nodes stored it");
    for i in 0..2 {
        let line = net.lt.cmd(
            &net.deadline,
            &format!("get_immutable {i} {} {LT_WAIT}", target.to_hex()),
        );
        assert_eq!(
            line,
            format!("item {i} {} {}", target.to_hex(), hex(&value)),
            "libtorrent {i}"
        );
    }
    // libtorrent's to us: a dictionary this time.
    let value = b"d4:fromi1e4:listl10:libtorrenti-7eee".to_vec();
    let line = net.lt.cmd(
        &net.deadline,
        &format!("put_immutable 0 {} {LT_WAIT}", hex(&value)),
    );
    let words: Vec<&str> = line.split_whitespace().collect();
    let target = immutable_target(&value);
    assert_eq!(words[..3], ["put", "0", &target.to_hex()], "{line}");
    assert!(words[3].parse::<u32>().unwrap() >= 1, "{line}");
    let got = net.rt.block_on(net.dht.get_immutable(target)).unwrap();
    assert_eq!(got, Some(value));
    // Nothing stored there: none.
    let missing = net
        .rt
        .block_on(net.dht.get_immutable(immutable_target(b"3:abc")))
        .unwrap();
    assert_eq!(missing, None);
}

#[test]
fn mutable_items_both_ways() {
    let Some(mut net) = network(5, false) else {
        return;
    };
    let secret: [u8; 64] = unhex(BEP44_SECRET).try_into().unwrap();
    let public: [u8; 32] = unhex(BEP44_PUBLIC).try_into().unwrap();

    // Ours to libtorrent: BEP 44's salted test vector.
    let item = MutableItem::sign_expanded(&secret, b"foobar", 1, b"12:Hello World!");
    assert_eq!(hex(&item.signature), BEP44_SALTED_SIG);
    let (target, stored) = net.rt.block_on(net.dht.put_mutable(item.clone())).unwrap();
    assert_eq!(target, item.target());
    assert_eq!(stored, 2, "both libtorrent nodes stored it");
    for i in 0..2 {
        let line = net.lt.cmd(
            &net.deadline,
            &format!(
                "get_mutable {i} {BEP44_PUBLIC} {} {LT_WAIT}",
                hex(b"foobar")
            ),
        );
        assert_eq!(
            line,
            format!("mitem {i} 1 {} {BEP44_SALTED_SIG}", hex(b"12:Hello World!")),
            "libtorrent {i}"
        );
    }

    // libtorrent's to us, under another salt; it signs seq 1 (nothing found), then seq 2.
    let salt = b"from libtorrent";
    for (seq, data) in [(1, &b"first"[..]), (2, &b"second value"[..])] {
        let line = net.lt.cmd(
            &net.deadline,
            &format!(
                "put_mutable 0 {BEP44_SECRET} {BEP44_PUBLIC} {} {} {LT_WAIT}",
                hex(data),
                hex(salt)
            ),
        );
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[4], seq.to_string(), "libtorrent's seq: {line}");
        let value = [format!("{}:", data.len()).as_bytes(), data].concat();
        let got = net
            .rt
            .block_on(net.dht.get_mutable(public, salt))
            .unwrap()
            .expect("the item libtorrent put");
        // ed25519 signatures are deterministic: libtorrent's is the one we make.
        let ours = MutableItem::sign_expanded(&secret, salt, seq, &value);
        assert_eq!(got, ours);
    }

    // No such item: none.
    let missing = net
        .rt
        .block_on(net.dht.get_mutable(public, b"nothing here"))
        .unwrap();
    assert_eq!(missing, None);
}
