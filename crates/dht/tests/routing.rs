#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Routing table tests: splitting, `closest` against brute force, node states, replacement,
//! anti-poisoning, refresh targets and memory.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tessera_dht::routing::{Heard, Insert, RejectReason, RoutingConfig, RoutingTable, K};
use tessera_dht::{Contact, Id};

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
        let mut b = [0u8; 20];
        for chunk in b.chunks_mut(8) {
            let w = self.next().to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
        Id(b)
    }
}

/// A unique public IPv4 address per index.
fn addr(i: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0100_0000 + i)), 6881)
}

fn contacts(rng: &mut Rng, n: usize) -> Vec<Contact> {
    (0..n)
        .map(|i| Contact {
            id: rng.id(),
            addr: addr(i as u32),
        })
        .collect()
}

/// `id` with bit `bit` flipped and everything after it random.
fn id_in_bucket(own: &Id, bit: usize, rng: &mut Rng) -> Id {
    let mut r = rng.id();
    for i in 0..160 {
        let v = if i < bit {
            own.bit(i)
        } else if i == bit {
            !own.bit(i)
        } else {
            r.bit(i)
        };
        let mask = 0x80u8 >> (i % 8);
        if v {
            r.0[i / 8] |= mask;
        } else {
            r.0[i / 8] &= !mask;
        }
    }
    r
}

fn brute_closest(target: &Id, set: &[Contact], n: usize) -> Vec<Contact> {
    let mut v = set.to_vec();
    v.sort_by_key(|c| target.distance(&c.id));
    v.truncate(n);
    v
}

fn filled(
    seed: u64,
    n: usize,
    config: RoutingConfig,
    now: Instant,
) -> (RoutingTable, Vec<Contact>) {
    let mut rng = Rng(seed);
    let own = rng.id();
    let mut table = RoutingTable::new(own, config, now);
    let nodes = contacts(&mut rng, n);
    for c in &nodes {
        let r = table.heard_from(*c, Heard::Response, false, now);
        assert!(!matches!(r, Insert::Rejected(_)), "{r:?}");
    }
    (table, nodes)
}

#[test]
fn splits_grow_with_log_n() {
    let now = Instant::now();
    for (n, seed) in [
        (8usize, 1u64),
        (100, 2),
        (1000, 3),
        (10_000, 4),
        (10_000, 5),
    ] {
        let (table, _) = filled(seed, n, RoutingConfig::default(), now);
        let expect = ((n as f64) / K as f64).log2().max(0.0);
        println!(
            "n = {n:>6}: {} buckets (log2(n/k) = {expect:.1}), {} live, {} replacements, {} heap bytes",
            table.num_buckets(),
            table.len(),
            table.num_replacements(),
            table.heap_bytes()
        );
        assert!(table.num_buckets() as f64 <= expect + 4.0);
        assert!(table.num_buckets() as f64 >= expect - 1.0);
        if n <= K {
            assert_eq!(table.len(), n);
            assert_eq!(table.num_buckets(), 1);
        }
        // Every bucket but possibly the last is full once there are many nodes, and the
        // live entries are all distinct and in the right buckets.
        let live: Vec<Contact> = table.contacts().collect();
        assert_eq!(live.len(), table.len());
        for c in &live {
            assert!(table.contains(&c.id));
        }
    }
}

#[test]
fn pointless_split_is_skipped() {
    // All nodes on the far side of bit 0: splitting would not separate them, so the single
    // bucket does not split and newcomers go to the replacement cache.
    let now = Instant::now();
    let mut rng = Rng(7);
    let own = rng.id();
    let mut table = RoutingTable::new(own, RoutingConfig::default(), now);
    for i in 0..20 {
        let c = Contact {
            id: id_in_bucket(&own, 0, &mut rng),
            addr: addr(i),
        };
        let r = table.heard_from(c, Heard::Response, false, now);
        let want = if i < 8 {
            Insert::Added
        } else {
            Insert::Replacement
        };
        assert_eq!(r, want, "node {i}");
    }
    assert_eq!(table.num_buckets(), 1);
    assert_eq!(table.len(), K);
    assert_eq!(table.num_replacements(), K);
    // One near node lets it split.
    let near = Contact {
        id: id_in_bucket(&own, 3, &mut rng),
        addr: addr(100),
    };
    assert_eq!(
        table.heard_from(near, Heard::Response, false, now),
        Insert::Added
    );
    assert_eq!(table.num_buckets(), 2);
    assert!(table.contains(&near.id));
    assert_eq!(table.bucket_of(&near.id), 1);
}

#[test]
fn closest_matches_brute_force_when_everything_fits() {
    let now = Instant::now();
    let (table, nodes) = filled(11, K, RoutingConfig::default(), now);
    let mut rng = Rng(12);
    for _ in 0..100 {
        let t = rng.id();
        assert_eq!(table.closest(&t, K), brute_closest(&t, &nodes, K));
        assert_eq!(table.closest(&t, 3), brute_closest(&t, &nodes, 3));
    }
    assert_eq!(table.closest(&rng.id(), 0), vec![]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// `closest` returns exactly the `n` closest live entries (brute force over `contacts()`),
    /// for tables of any size and any target.
    #[test]
    fn closest_is_exact(seed in any::<u64>(), n_nodes in 0usize..600, n in 0usize..20, tseed in any::<u64>()) {
        let now = Instant::now();
        let (table, nodes) = filled(seed, n_nodes, RoutingConfig::default(), now);
        let live: Vec<Contact> = table.contacts().collect();
        let mut rng = Rng(tseed);
        for target in [rng.id(), rng.id(), table.own_id(), nodes.first().map_or(Id::default(), |c| c.id)] {
            prop_assert_eq!(table.closest(&target, n), brute_closest(&target, &live, n));
        }
        // With few nodes the table holds all of them, so it is the true k closest.
        if n_nodes <= K {
            let t = rng.id();
            prop_assert_eq!(table.closest(&t, K), brute_closest(&t, &nodes, K));
        }
    }

    /// Nodes very close to our own id are never lost: every inserted node sharing more
    /// bits with us than the number of buckets minus one lives in the last bucket and is in
    /// the table.
    #[test]
    fn deepest_bucket_complete(seed in any::<u64>(), n_nodes in 1usize..800) {
        let now = Instant::now();
        let (table, nodes) = filled(seed, n_nodes, RoutingConfig::default(), now);
        let own = table.own_id();
        let last = table.num_buckets() - 1;
        let deep: Vec<_> = nodes.iter().filter(|c| own.common_prefix_len(&c.id) > last).collect();
        for c in deep {
            prop_assert!(table.contains(&c.id));
        }
    }
}

#[test]
fn good_nodes_come_first() {
    let t0 = Instant::now();
    let (mut table, nodes) = filled(21, 200, RoutingConfig::default(), t0);
    let t1 = t0 + Duration::from_secs(20 * 60);
    // Refresh half of the live nodes; the rest are questionable now.
    let live: Vec<Contact> = table.contacts().collect();
    let fresh: Vec<Contact> = live.iter().step_by(2).copied().collect();
    for c in &fresh {
        assert_eq!(
            table.heard_from(*c, Heard::Response, false, t1),
            Insert::Updated
        );
    }
    let target = Rng(22).id();
    let n = fresh.len() + 5;
    let got = table.closest(&target, n);
    assert_eq!(got.len(), n);
    let mut want = brute_closest(&target, &fresh, fresh.len());
    let stale: Vec<Contact> = live.iter().skip(1).step_by(2).copied().collect();
    want.extend(brute_closest(&target, &stale, 5));
    assert_eq!(got, want);
    let _ = nodes;
}

#[test]
fn bad_nodes_are_replaced_from_the_cache() {
    let now = Instant::now();
    let mut rng = Rng(31);
    let own = rng.id();
    let mut table = RoutingTable::new(own, RoutingConfig::default(), now);
    let far: Vec<Contact> = (0..12)
        .map(|i| Contact {
            id: id_in_bucket(&own, 0, &mut rng),
            addr: addr(i),
        })
        .collect();
    for c in &far {
        table.heard_from(*c, Heard::Response, false, now);
    }
    assert_eq!(table.len(), K);
    assert_eq!(table.num_replacements(), 4);
    let victim = far[2];
    let later = now + Duration::from_secs(5);
    // Two failures: questionable, still there and still returned (after the good ones).
    table.failed(&victim.id, victim.addr, later);
    table.failed(&victim.id, victim.addr, later);
    assert!(table.contains(&victim.id));
    let all = table.closest(&victim.id, K);
    assert_eq!(all.len(), K);
    assert_eq!(*all.last().unwrap(), victim);
    // A failure reported for the right id at another address is ignored.
    table.failed(&victim.id, addr(999), later);
    assert!(table.contains(&victim.id));
    // Third failure: bad, removed, and a replacement takes its place.
    table.failed(&victim.id, victim.addr, later);
    assert!(!table.contains(&victim.id));
    assert_eq!(table.len(), K);
    assert_eq!(table.num_replacements(), 3);
    assert!(!table.closest(&victim.id, 20).contains(&victim));
    // Exhaust the replacements, then keep failing nodes: the bucket shrinks and new nodes
    // take the free slots directly.
    for c in &far[..8] {
        for _ in 0..3 {
            table.failed(&c.id, c.addr, later);
        }
    }
    assert_eq!(table.num_replacements(), 0);
    assert_eq!(table.len(), 12 - 8);
    let newcomer = Contact {
        id: id_in_bucket(&own, 0, &mut rng),
        addr: addr(50),
    };
    assert_eq!(
        table.heard_from(newcomer, Heard::Response, false, later),
        Insert::Added
    );
}

#[test]
fn query_only_nodes_wait_in_the_cache_until_pinged() {
    let now = Instant::now();
    let mut rng = Rng(41);
    let own = rng.id();
    let mut table = RoutingTable::new(own, RoutingConfig::default(), now);
    let c = Contact {
        id: rng.id(),
        addr: addr(1),
    };
    assert_eq!(
        table.heard_from(c, Heard::Query, false, now),
        Insert::Replacement
    );
    assert!(!table.contains(&c.id));
    assert!(table.closest(&c.id, K).is_empty());
    // The bucket has room: the table wants it pinged, once.
    assert_eq!(table.needs_ping(now), Some(c));
    assert_eq!(table.needs_ping(now), None);
    // It answers: promoted.
    assert_eq!(
        table.heard_from(c, Heard::Response, false, now),
        Insert::Added
    );
    assert!(table.contains(&c.id));
    assert_eq!(table.closest(&c.id, K), vec![c]);

    // Another query-only node that never answers is dropped at its first failure.
    let d = Contact {
        id: rng.id(),
        addr: addr(2),
    };
    table.heard_from(d, Heard::Query, false, now);
    assert_eq!(table.needs_ping(now), Some(d));
    table.failed(&d.id, d.addr, now);
    assert_eq!(table.num_replacements(), 0);
}

#[test]
fn questionable_nodes_are_pinged_least_recently_seen_first() {
    let t0 = Instant::now();
    let config = RoutingConfig::default();
    let ping_interval = config.ping_interval;
    let mut rng = Rng(51);
    let own = rng.id();
    let mut table = RoutingTable::new(own, config, t0);
    let nodes = contacts(&mut rng, 40);
    for (i, c) in nodes.iter().enumerate() {
        table.heard_from(
            *c,
            Heard::Response,
            false,
            t0 + Duration::from_secs(i as u64),
        );
    }
    let live = table.len();
    // Nothing to ping while everybody is good.
    assert_eq!(table.needs_ping(t0 + Duration::from_secs(60)), None);
    // Later, all are questionable: they come out oldest first, each once.
    let t1 = t0 + Duration::from_secs(16 * 60);
    let mut order = Vec::new();
    while let Some(c) = table.needs_ping(t1) {
        order.push(c);
    }
    assert_eq!(order.len(), live);
    let mut expect: Vec<Contact> = table.contacts().collect();
    let pos = |c: &Contact| nodes.iter().position(|n| n == c).unwrap();
    expect.sort_by_key(pos);
    assert_eq!(order, expect);
    // A node that answers is good again; the others come back after the ping interval.
    let answered = order[0];
    table.heard_from(answered, Heard::Response, false, t1);
    let t2 = t1 + ping_interval;
    let again = table.needs_ping(t2).unwrap();
    assert_eq!(again, order[1]);
    // A query from a confirmed node keeps it good (BEP 5).
    let t3 = t1 + Duration::from_secs(14 * 60);
    table.heard_from(answered, Heard::Query, false, t3);
    let t4 = t3 + Duration::from_secs(14 * 60);
    let mut pinged = Vec::new();
    while let Some(c) = table.needs_ping(t4) {
        pinged.push(c);
    }
    assert!(!pinged.contains(&answered));
    assert_eq!(pinged.len(), live - 1);
}

#[test]
fn full_bucket_with_questionable_nodes_caches_newcomer() {
    let t0 = Instant::now();
    let mut rng = Rng(61);
    let own = rng.id();
    let mut table = RoutingTable::new(own, RoutingConfig::default(), t0);
    let far: Vec<Contact> = (0..8)
        .map(|i| Contact {
            id: id_in_bucket(&own, 0, &mut rng),
            addr: addr(i),
        })
        .collect();
    for c in &far {
        table.heard_from(*c, Heard::Response, false, t0);
    }
    let t1 = t0 + Duration::from_secs(20 * 60);
    let newcomer = Contact {
        id: id_in_bucket(&own, 0, &mut rng),
        addr: addr(20),
    };
    assert_eq!(
        table.heard_from(newcomer, Heard::Response, false, t1),
        Insert::Replacement
    );
    // The table asks for a questionable one to be pinged; it times out three times.
    let q = table.needs_ping(t1).unwrap();
    assert!(far.contains(&q));
    for _ in 0..3 {
        table.failed(&q.id, q.addr, t1);
    }
    assert!(!table.contains(&q.id));
    assert!(table.contains(&newcomer.id));
}

#[test]
fn prefer_secure_replaces_unverified() {
    let now = Instant::now();
    let mut rng = Rng(71);
    let own = rng.id();
    let config = RoutingConfig {
        prefer_secure: true,
        ..RoutingConfig::default()
    };
    let mut table = RoutingTable::new(own, config, now);
    let far: Vec<Contact> = (0..8)
        .map(|i| Contact {
            id: id_in_bucket(&own, 0, &mut rng),
            addr: addr(i),
        })
        .collect();
    for c in &far {
        table.heard_from(*c, Heard::Response, false, now);
    }
    let unverified = Contact {
        id: id_in_bucket(&own, 0, &mut rng),
        addr: addr(30),
    };
    assert_eq!(
        table.heard_from(unverified, Heard::Response, false, now),
        Insert::Replacement
    );
    let secure = Contact {
        id: id_in_bucket(&own, 0, &mut rng),
        addr: addr(31),
    };
    assert_eq!(
        table.heard_from(secure, Heard::Response, true, now),
        Insert::Added
    );
    assert!(table.contains(&secure.id));
    assert_eq!(table.len(), K);
    // The displaced node went to the replacement cache.
    assert_eq!(table.num_replacements(), 2);
    // A secure node that only queried us does not displace anyone.
    let secure_query = Contact {
        id: id_in_bucket(&own, 0, &mut rng),
        addr: addr(32),
    };
    assert_eq!(
        table.heard_from(secure_query, Heard::Query, true, now),
        Insert::Replacement
    );
}

#[test]
fn spoofed_addresses_and_ids_are_rejected() {
    let now = Instant::now();
    let mut rng = Rng(81);
    let own = rng.id();
    let mut table = RoutingTable::new(own, RoutingConfig::default(), now);
    let c = Contact {
        id: rng.id(),
        addr: addr(1),
    };
    assert_eq!(
        table.heard_from(c, Heard::Response, false, now),
        Insert::Added
    );
    // Same id, another address: rejected, entry unchanged.
    for how in [Heard::Query, Heard::Response] {
        let spoof = Contact {
            id: c.id,
            addr: addr(2),
        };
        assert_eq!(
            table.heard_from(spoof, how, false, now),
            Insert::Rejected(RejectReason::IdAddressMismatch)
        );
    }
    assert_eq!(table.contacts().collect::<Vec<_>>(), vec![c]);
    // Same address, another id.
    let other = Contact {
        id: rng.id(),
        addr: c.addr,
    };
    assert_eq!(
        table.heard_from(other, Heard::Response, false, now),
        Insert::Rejected(RejectReason::AddressInUse)
    );
    // Same IP, other port.
    let same_ip = Contact {
        id: rng.id(),
        addr: SocketAddr::new(c.addr.ip(), 7000),
    };
    assert_eq!(
        table.heard_from(same_ip, Heard::Response, false, now),
        Insert::Rejected(RejectReason::IpInUse)
    );
    // Ourselves and invalid addresses.
    let me = Contact {
        id: own,
        addr: addr(5),
    };
    assert_eq!(
        table.heard_from(me, Heard::Response, false, now),
        Insert::Rejected(RejectReason::OwnId)
    );
    let zero_port = Contact {
        id: rng.id(),
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)), 0),
    };
    assert_eq!(
        table.heard_from(zero_port, Heard::Response, false, now),
        Insert::Rejected(RejectReason::InvalidAddress)
    );
    // Also for an id waiting in the replacement cache.
    let q = Contact {
        id: rng.id(),
        addr: addr(9),
    };
    assert_eq!(
        table.heard_from(q, Heard::Query, false, now),
        Insert::Replacement
    );
    let spoof = Contact {
        id: q.id,
        addr: addr(10),
    };
    assert_eq!(
        table.heard_from(spoof, Heard::Response, false, now),
        Insert::Rejected(RejectReason::IdAddressMismatch)
    );
    assert_eq!(table.replacement_contacts().collect::<Vec<_>>(), vec![q]);
}

#[test]
fn ip_restriction_can_be_relaxed_for_local_addresses() {
    let now = Instant::now();
    let mut rng = Rng(91);
    let own = rng.id();
    let loopback = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);

    let mut strict = RoutingTable::new(own, RoutingConfig::default(), now);
    let a = Contact {
        id: rng.id(),
        addr: loopback(1000),
    };
    let b = Contact {
        id: rng.id(),
        addr: loopback(1001),
    };
    assert_eq!(
        strict.heard_from(a, Heard::Response, false, now),
        Insert::Added
    );
    assert_eq!(
        strict.heard_from(b, Heard::Response, false, now),
        Insert::Rejected(RejectReason::IpInUse)
    );

    let config = RoutingConfig {
        restrict_ips: false,
        ..RoutingConfig::default()
    };
    let mut relaxed = RoutingTable::new(own, config, now);
    for port in 0..50u16 {
        let c = Contact {
            id: rng.id(),
            addr: loopback(1000 + port),
        };
        assert!(!matches!(
            relaxed.heard_from(c, Heard::Response, false, now),
            Insert::Rejected(_)
        ));
    }
    let private = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 7)), 1);
    for port in [1u16, 2] {
        let c = Contact {
            id: rng.id(),
            addr: SocketAddr::new(private.ip(), port),
        };
        assert!(!matches!(
            relaxed.heard_from(c, Heard::Response, false, now),
            Insert::Rejected(_)
        ));
    }
    // Public addresses stay one per IP.
    let p1 = Contact {
        id: rng.id(),
        addr: addr(7),
    };
    let p2 = Contact {
        id: rng.id(),
        addr: SocketAddr::new(p1.addr.ip(), 1234),
    };
    assert!(!matches!(
        relaxed.heard_from(p1, Heard::Response, false, now),
        Insert::Rejected(_)
    ));
    assert_eq!(
        relaxed.heard_from(p2, Heard::Response, false, now),
        Insert::Rejected(RejectReason::IpInUse)
    );
}

#[test]
fn refresh_targets_fall_in_stale_buckets() {
    let t0 = Instant::now();
    let (mut table, _) = filled(101, 2000, RoutingConfig::default(), t0);
    let nb = table.num_buckets();
    assert!(nb > 5);
    assert!(table
        .buckets_to_refresh(t0 + Duration::from_secs(60))
        .is_empty());
    // Ten minutes later, a node of bucket 2 answers: that bucket is fresh.
    let t1 = t0 + Duration::from_secs(10 * 60);
    let own = table.own_id();
    let in_2 = table
        .contacts()
        .find(|c| table.bucket_of(&c.id) == 2)
        .unwrap();
    table.heard_from(in_2, Heard::Response, false, t1);
    let t2 = t0 + Duration::from_secs(15 * 60 + 1);
    let targets = table.buckets_to_refresh(t2);
    assert_eq!(targets.len(), nb - 1);
    let mut seen: Vec<usize> = targets.iter().map(|t| table.bucket_of(t)).collect();
    seen.sort_unstable();
    let expect: Vec<usize> = (0..nb).filter(|&b| b != 2).collect();
    assert_eq!(seen, expect);
    for t in &targets {
        let b = table.bucket_of(t);
        if b + 1 < nb {
            assert_eq!(own.common_prefix_len(t), b);
        } else {
            assert!(own.common_prefix_len(t) >= b);
        }
    }
    // Reported once per period.
    assert!(table.buckets_to_refresh(t2).is_empty());
    let t3 = t1 + Duration::from_secs(15 * 60);
    assert_eq!(
        table
            .buckets_to_refresh(t3)
            .iter()
            .map(|t| table.bucket_of(t))
            .collect::<Vec<_>>(),
        vec![2]
    );
    // Deterministic: same seed, same targets.
    let (mut again, _) = filled(101, 2000, RoutingConfig::default(), t0);
    again.heard_from(in_2, Heard::Response, false, t1);
    assert_eq!(again.buckets_to_refresh(t2), targets);
}

#[test]
fn memory_for_ten_thousand_nodes() {
    let now = Instant::now();
    for seed in [201u64, 202, 203] {
        let (table, _) = filled(seed, 10_000, RoutingConfig::default(), now);
        println!(
            "10,000 nodes (seed {seed}): {} buckets, {} live + {} replacements, heap_bytes = {}",
            table.num_buckets(),
            table.len(),
            table.num_replacements(),
            table.heap_bytes()
        );
        assert!(table.heap_bytes() < 20 * 1024);
        assert!(table.len() >= (table.num_buckets() - 1) * K / 2);
    }
    // Size of the table itself (inline part) for the record.
    println!(
        "size_of::<RoutingTable>() = {}",
        std::mem::size_of::<RoutingTable>()
    );
}

#[derive(Clone, Debug)]
enum Op {
    Heard {
        node: usize,
        response: bool,
        secure: bool,
        other_port: bool,
    },
    Failed(usize),
    Ping,
    Refresh,
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..300, any::<bool>(), any::<bool>(), proptest::bool::weighted(0.05)).prop_map(
            |(node, response, secure, other_port)| Op::Heard { node, response, secure, other_port }
        ),
        2 => (0usize..300).prop_map(Op::Failed),
        1 => Just(Op::Ping),
        1 => Just(Op::Refresh),
        1 => (0u64..1200).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random operations keep the table consistent: unique ids and IPs, bucket bounds,
    /// `closest` ordering, no bad or unconfirmed node handed out.
    #[test]
    fn invariants_under_random_operations(
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..400),
        prefer_secure in any::<bool>(),
    ) {
        let t0 = Instant::now();
        let mut rng = Rng(seed);
        let own = rng.id();
        // Ids close to ours now and then, to exercise deep splits.
        let nodes: Vec<Contact> = (0..300)
            .map(|i| {
                let id = if i % 5 == 0 { id_in_bucket(&own, 4 + i % 40, &mut rng) } else { rng.id() };
                Contact { id, addr: addr(i as u32) }
            })
            .collect();
        let config = RoutingConfig { prefer_secure, ..RoutingConfig::default() };
        let mut table = RoutingTable::new(own, config, t0);
        let mut now = t0;
        let mut answered = std::collections::HashSet::new();
        for op in ops {
            match op {
                Op::Heard { node, response, secure, other_port } => {
                    let mut c = nodes[node];
                    if other_port {
                        c.addr.set_port(7777);
                    }
                    let how = if response { Heard::Response } else { Heard::Query };
                    let r = table.heard_from(c, how, secure, now);
                    if other_port
                        && table
                            .contacts()
                            .chain(table.replacement_contacts())
                            .any(|x| x.id == c.id && x.addr != c.addr)
                    {
                        // A known id from another address: a spoof, rejected.
                        prop_assert!(matches!(r, Insert::Rejected(_)), "{:?}", r);
                    }
                    if response && !matches!(r, Insert::Rejected(_)) {
                        answered.insert(c.id);
                    }
                }
                Op::Failed(node) => table.failed(&nodes[node].id, nodes[node].addr, now),
                Op::Ping => {
                    if let Some(c) = table.needs_ping(now) {
                        prop_assert!(nodes.iter().any(|n| n.id == c.id));
                    }
                }
                Op::Refresh => {
                    let nb = table.num_buckets();
                    for t in table.buckets_to_refresh(now) {
                        prop_assert!(table.bucket_of(&t) < nb);
                    }
                }
                Op::Advance(s) => now += Duration::from_secs(s),
            }
            let live: Vec<Contact> = table.contacts().collect();
            let repl: Vec<Contact> = table.replacement_contacts().collect();
            let all: Vec<Contact> = live.iter().chain(repl.iter()).copied().collect();
            let mut ids: Vec<Id> = all.iter().map(|c| c.id).collect();
            ids.sort_unstable();
            ids.dedup();
            prop_assert_eq!(ids.len(), all.len(), "duplicate id");
            let mut ips: Vec<_> = all.iter().map(|c| c.addr.ip()).collect();
            ips.sort_unstable();
            ips.dedup();
            prop_assert_eq!(ips.len(), all.len(), "duplicate IP");
            prop_assert!(table.num_buckets() <= 160);
            prop_assert!(live.len() <= table.num_buckets() * K);
            prop_assert!(repl.len() <= table.num_buckets() * K);
            prop_assert!(!table.contains(&own));
            for c in &live {
                // Only nodes that answered at some point are live.
                prop_assert!(answered.contains(&c.id));
                prop_assert!(table.contains(&c.id));
            }
        }
        // `closest` hands out live nodes only, each once.
        let target = rng.id();
        let got = table.closest(&target, 20);
        let live: Vec<Contact> = table.contacts().collect();
        prop_assert_eq!(got.len(), live.len().min(20));
        for c in &got {
            prop_assert!(live.contains(c));
        }
        let mut ids: Vec<Id> = got.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        prop_assert_eq!(ids.len(), got.len());
    }
}
