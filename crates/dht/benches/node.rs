//! Incoming query throughput of one node on one core. The target (from the issue): a node
//! handles at least 100,000 incoming queries per second on one core.
//!
//! The node knows ~2,000 fake nodes (each pinged and answered, so its routing table is as
//! full as it gets) and stores 20 peers for each of 100 info hashes (the workload's announces
//! add its sources to those swarms, up to the limit of 200 peers per info hash). The workload is 100,000
//! pre-encoded queries from 2,000 source addresses, a mix of
//!
//! * 20% `ping`,
//! * 25% `find_node` of a random target,
//! * 20% `get_peers` of a stored info hash (answered with peers),
//! * 20% `get_peers` of an unknown info hash (answered with nodes),
//! * 15% `announce_peer` with a valid token,
//!
//! fed to [`Node::handle_datagram`] with the answers drained from [`Node::poll_transmit`]. The
//! fake clock advances 1 µs per query, so each source sends 500 queries a (fake) second; the
//! rate limit is raised to 1,000 a second per address so that it drops none (it still runs),
//! and the write tokens stay valid for the whole run (a few fake minutes at most). Printed: queries per second and
//! the ratio to the target, from the best of five timed passes over the mix, then criterion's
//! figures for the mix, for each kind alone, and, for reference, for decoding and encoding a
//! typical answer (a `find_node` answer with 8 contacts).
//!
//! `cargo bench -p tessera-dht --bench node` (about 40 seconds).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use tessera_dht::krpc::{decode, Body, Message, Query, Response};
use tessera_dht::{Id, Node, NodeConfig};

/// Incoming queries per second the node should handle on one core.
const TARGET: f64 = 100_000.0;
/// Fake nodes the routing table is filled from.
const FAKE_NODES: u32 = 2_000;
/// Source addresses of the workload (within the default 4,096 rate-limit entries).
const SOURCES: u32 = 2_000;
/// Queries in the workload.
const QUERIES: usize = 100_000;
/// Fake time between two queries.
const STEP: Duration = Duration::from_micros(1);

/// splitmix64: a deterministic stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn id(&mut self) -> Id {
        let mut id = [0; 20];
        for chunk in id.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_be_bytes()[..chunk.len()]);
        }
        Id(id)
    }
}

fn addr(net: u8, i: u32) -> SocketAddr {
    let [_, b, c, d] = i.to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(net, b, c, d)), 6881)
}

fn query(tid: u32, q: Query) -> Vec<u8> {
    let mut m = Message::query(tid.to_be_bytes()[2..].to_vec(), q);
    m.version = Some(b"LT\x02\x00".to_vec());
    m.encode()
}

/// Pre-encoded queries and where they come from.
type Workload = Vec<(SocketAddr, Vec<u8>)>;

/// The node under test, its clock, and the workload.
struct Setup {
    node: Node,
    now: Instant,
    mix: Workload,
    /// The mix split by kind: ping, find_node, get_peers (stored), get_peers (unknown),
    /// announce_peer.
    kinds: Vec<(&'static str, Workload)>,
}

impl Setup {
    fn new() -> Setup {
        let t0 = Instant::now();
        let mut rng = Rng(7);
        let mut node = Node::new(
            NodeConfig {
                seed: 1,
                rate_per_ip: 1_000,
                burst_per_ip: 2_000,
                ..NodeConfig::default()
            },
            t0,
        );
        let own = node.id();
        // Routing table: every fake node is pinged and answers.
        let fake: Vec<(SocketAddr, Id)> =
            (0..FAKE_NODES).map(|i| (addr(20, i), rng.id())).collect();
        for chunk in fake.chunks(500) {
            for (a, _) in chunk {
                node.add_node(t0, *a);
            }
            while let Some(t) = node.poll_transmit() {
                let m = decode(&t.payload).unwrap();
                let id = chunk.iter().find(|(a, _)| *a == t.to).unwrap().1;
                let r = Message::response(m.tid, Response::new(id)).encode();
                node.handle_datagram(t0, t.to, &r);
            }
        }
        // Stored peers: 100 info hashes, 20 peers each, announced with real tokens.
        let stored: Vec<Id> = (0..100).map(|_| rng.id()).collect();
        let mut tid = 0u32;
        let token_of = |node: &mut Node, from: SocketAddr, tid: &mut u32| -> Vec<u8> {
            *tid += 1;
            let q = Query::GetPeers {
                id: own,
                info_hash: own,
                want: None,
                noseed: false,
                scrape: false,
            };
            node.handle_datagram(t0, from, &query(*tid, q));
            let mut token = None;
            while let Some(t) = node.poll_transmit() {
                if let Ok(Message {
                    body: Body::Response(r),
                    ..
                }) = decode(&t.payload)
                {
                    token = token.or(r.token);
                }
            }
            token.unwrap()
        };
        for (h, info_hash) in stored.iter().enumerate() {
            for p in 0..20u32 {
                let from = addr(30, h as u32 * 20 + p);
                let token = token_of(&mut node, from, &mut tid);
                tid += 1;
                let q = Query::AnnouncePeer {
                    id: rng.id(),
                    info_hash: *info_hash,
                    port: 6881,
                    implied_port: false,
                    token,
                    seed: p % 3 == 0,
                };
                node.handle_datagram(t0, from, &query(tid, q));
                while node.poll_transmit().is_some() {}
            }
            assert_eq!(node.peer_store().num_peers(info_hash), 20);
        }
        // The workload.
        let sources: Vec<(SocketAddr, Id, Vec<u8>)> = (0..SOURCES)
            .map(|i| {
                let from = addr(40, i);
                let token = token_of(&mut node, from, &mut tid);
                (from, rng.id(), token)
            })
            .collect();
        let names = [
            "ping",
            "find_node",
            "get_peers stored",
            "get_peers unknown",
            "announce_peer",
        ];
        let mut kinds: Vec<(&'static str, Workload)> =
            names.iter().map(|n| (*n, Vec::new())).collect();
        let mut mix = Vec::with_capacity(QUERIES);
        for i in 0..QUERIES {
            let (from, id, token) = &sources[i % sources.len()];
            let roll = rng.next() % 100;
            let (kind, q) = match roll {
                0..=19 => (0, Query::Ping { id: *id }),
                20..=44 => (
                    1,
                    Query::FindNode {
                        id: *id,
                        target: rng.id(),
                        want: None,
                    },
                ),
                45..=64 => (
                    2,
                    Query::GetPeers {
                        id: *id,
                        info_hash: stored[(rng.next() % 100) as usize],
                        want: None,
                        noseed: false,
                        scrape: false,
                    },
                ),
                65..=84 => (
                    3,
                    Query::GetPeers {
                        id: *id,
                        info_hash: rng.id(),
                        want: None,
                        noseed: false,
                        scrape: false,
                    },
                ),
                _ => (
                    4,
                    Query::AnnouncePeer {
                        id: *id,
                        info_hash: stored[(rng.next() % 100) as usize],
                        port: 6881,
                        implied_port: false,
                        token: token.clone(),
                        seed: false,
                    },
                ),
            };
            let bytes = query(i as u32, q);
            kinds[kind].1.push((*from, bytes.clone()));
            mix.push((*from, bytes));
        }
        Setup {
            node,
            now: t0,
            mix,
            kinds,
        }
    }

    /// Handles `queries` (from the start of `list`, cycling) and returns the bytes sent.
    fn run(&mut self, list: usize, queries: u64) -> usize {
        let Setup {
            node,
            now,
            mix,
            kinds,
        } = self;
        let list = if list == 0 { &*mix } else { &kinds[list - 1].1 };
        let mut sent = 0;
        for (from, bytes) in list.iter().cycle().take(queries as usize) {
            *now += STEP;
            node.handle_datagram(*now, *from, bytes);
            while let Some(t) = node.poll_transmit() {
                sent += black_box(t).payload.len();
            }
        }
        sent
    }
}

fn main() {
    let started = Instant::now();
    let mut setup = Setup::new();
    println!(
        "node: {} IPv4 contacts, {} info hashes stored, {} queries from {SOURCES} sources \
         (setup {:.1?})",
        setup.node.table().len(),
        setup.node.peer_store().num_infohashes(),
        setup.mix.len(),
        started.elapsed()
    );

    // The headline figure: best of five passes over the whole mix.
    let before = setup.node.stats();
    let mut best = Duration::MAX;
    let mut sent = 0;
    for _ in 0..5 {
        let t = Instant::now();
        sent = setup.run(0, QUERIES as u64);
        best = best.min(t.elapsed());
    }
    let after = setup.node.stats();
    let answered = after.queries_answered - before.queries_answered;
    assert_eq!(answered, 5 * QUERIES as u64, "{after:?}");
    assert_eq!(after.rate_limited, 0, "{after:?}");
    let qps = QUERIES as f64 / best.as_secs_f64();
    println!(
        "node: {:.0} incoming queries/s on one core ({:.2}x the {:.0}/s target); \
         {:.0} ns per query; {:.0} bytes answered per query",
        qps,
        qps / TARGET,
        TARGET,
        best.as_nanos() as f64 / QUERIES as f64,
        sent as f64 / QUERIES as f64,
    );

    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut g = c.benchmark_group("node");
    g.throughput(Throughput::Elements(1));
    g.bench_function("incoming query (mix)", |b| {
        b.iter_custom(|n| {
            let t = Instant::now();
            black_box(setup.run(0, n));
            t.elapsed()
        })
    });
    for k in 1..=setup.kinds.len() {
        let name = format!("incoming {}", setup.kinds[k - 1].0);
        g.bench_function(name, |b| {
            b.iter_custom(|n| {
                let t = Instant::now();
                black_box(setup.run(k, n));
                t.elapsed()
            })
        });
    }
    // For reference: the codec alone, on a typical answer.
    let q = query(
        1,
        Query::FindNode {
            id: Id([1; 20]),
            target: Id([2; 20]),
            want: None,
        },
    );
    setup.node.handle_datagram(setup.now, addr(40, 1), &q);
    let answer = setup.node.poll_transmit().unwrap().payload;
    let message = decode(&answer).unwrap();
    assert!(matches!(&message.body, Body::Response(r) if r.nodes.len() == 8));
    g.bench_function(format!("decode answer ({} bytes)", answer.len()), |b| {
        b.iter(|| decode(black_box(&answer)))
    });
    let mut buf = Vec::with_capacity(1500);
    g.bench_function(format!("encode answer ({} bytes)", answer.len()), |b| {
        b.iter(|| {
            buf.clear();
            black_box(&message).encode_into(&mut buf);
            black_box(buf.len())
        })
    });
    g.finish();
    c.final_summary();
    assert_eq!(setup.node.stats().rate_limited, 0);
    println!("node: bench took {:.1?}", started.elapsed());
}
