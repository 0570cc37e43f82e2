#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Iterative lookup tests against a simulated network of 2,000 nodes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tessera_dht::lookup::{Lookup, LookupConfig};
use tessera_dht::routing::{Heard, RoutingConfig, RoutingTable, K};
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

fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0100_0000 + i as u32)), 6881)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Behaviour {
    /// Answers after this many milliseconds.
    Answers(u64),
    /// Never answers.
    Dead,
}

/// A simulated DHT: every node knows, for each shared-prefix length with its own id, the
/// first `K` nodes (in a fixed random order) of that prefix class — a full Kademlia routing
/// table computed by brute force — and answers `find_node` with the `K` closest it knows.
/// A dead node stays in another node's view with probability `stale_percent` (real nodes
/// evict dead ones, but not at once).
struct Network {
    nodes: Vec<Contact>,
    behaviour: Vec<Behaviour>,
    stale_percent: u64,
    by_addr: HashMap<SocketAddr, usize>,
    views: RefCell<HashMap<usize, Vec<usize>>>,
}

impl Network {
    fn new(
        seed: u64,
        n: usize,
        dead_percent: u64,
        slow_percent: u64,
        stale_percent: u64,
    ) -> Network {
        let mut rng = Rng(seed);
        let nodes: Vec<Contact> = (0..n)
            .map(|i| Contact {
                id: rng.id(),
                addr: addr(i),
            })
            .collect();
        let behaviour = (0..n)
            .map(|_| {
                let r = rng.next() % 100;
                if r < dead_percent {
                    Behaviour::Dead
                } else if r < dead_percent + slow_percent {
                    Behaviour::Answers(1_500)
                } else {
                    Behaviour::Answers(20 + rng.next() % 150)
                }
            })
            .collect();
        let by_addr = nodes.iter().enumerate().map(|(i, c)| (c.addr, i)).collect();
        Network {
            nodes,
            behaviour,
            stale_percent,
            by_addr,
            views: RefCell::new(HashMap::new()),
        }
    }

    fn view(&self, me: usize) -> Vec<usize> {
        if let Some(v) = self.views.borrow().get(&me) {
            return v.clone();
        }
        let own = self.nodes[me].id;
        let mut counts = [0usize; 161];
        let mut view = Vec::new();
        for (j, c) in self.nodes.iter().enumerate() {
            if j == me {
                continue;
            }
            if self.behaviour[j] == Behaviour::Dead {
                let h = Rng((me as u64) << 32 | j as u64).next() % 100;
                if h >= self.stale_percent {
                    continue;
                }
            }
            let b = own.common_prefix_len(&c.id);
            if counts[b] < K {
                counts[b] += 1;
                view.push(j);
            }
        }
        self.views.borrow_mut().insert(me, view.clone());
        view
    }

    /// `me`'s answer to `find_node(target)`.
    fn answer(&self, me: usize, target: &Id) -> Vec<Contact> {
        let mut v: Vec<Contact> = self.view(me).iter().map(|&j| self.nodes[j]).collect();
        v.sort_by_cached_key(|c| target.distance(&c.id));
        v.truncate(K);
        v
    }

    fn true_closest(&self, target: &Id, alive_only: bool) -> Vec<Contact> {
        let mut v: Vec<Contact> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !alive_only || self.behaviour[*i] != Behaviour::Dead)
            .map(|(_, c)| *c)
            .collect();
        v.sort_by_cached_key(|c| target.distance(&c.id));
        v.truncate(K);
        v
    }
}

/// Our node: a routing table filled from the whole network.
fn our_table(net: &Network, own: Id, now: Instant) -> RoutingTable {
    let mut table = RoutingTable::new(own, RoutingConfig::default(), now);
    for c in &net.nodes {
        table.heard_from(*c, Heard::Response, false, now);
    }
    table
}

/// Runs a lookup to completion with simulated time; returns the final instant.
fn drive(lookup: &mut Lookup, net: &Network, start: Instant) -> Instant {
    let mut now = start;
    let mut pending: Vec<(Instant, usize)> = Vec::new();
    for _ in 0..100_000 {
        for c in lookup.next_queries(now) {
            let i = net.by_addr[&c.addr];
            if let Behaviour::Answers(ms) = net.behaviour[i] {
                pending.push((now + Duration::from_millis(ms), i));
            }
        }
        if lookup.is_done() {
            return now;
        }
        let next_answer = pending.iter().map(|p| p.0).min();
        let next = match (next_answer, lookup.poll_timeout()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).expect("not done, yet nothing can happen"),
        };
        now = now.max(next);
        let (due, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|p| p.0 <= now);
        pending = rest;
        for (_, i) in due {
            let answer = net.answer(i, &lookup.target());
            lookup.on_response(&net.nodes[i], &answer, now);
        }
        lookup.handle_timeout(now);
    }
    panic!("lookup did not terminate");
}

struct Summary {
    lookups: usize,
    exact: usize,
    queries: usize,
    max_queries: usize,
    hops: usize,
    failures: usize,
    millis: u128,
    common_min: usize,
    heap: usize,
}

fn run_many(
    net: &Network,
    seed: u64,
    lookups: usize,
    config: &LookupConfig,
    alive_only: bool,
    min_common: usize,
) -> Summary {
    let start = Instant::now();
    let mut rng = Rng(seed);
    let own = rng.id();
    let table = our_table(net, own, start);
    let mut s = Summary {
        lookups,
        exact: 0,
        queries: 0,
        max_queries: 0,
        hops: 0,
        failures: 0,
        millis: 0,
        common_min: K,
        heap: 0,
    };
    for _ in 0..lookups {
        let target = rng.id();
        let seeds = table.closest(&target, K);
        let mut lookup = Lookup::new(
            target,
            seeds,
            LookupConfig {
                own_id: Some(own),
                ..config.clone()
            },
            start,
        );
        let end = drive(&mut lookup, net, start);
        assert!(lookup.is_done());
        let st = lookup.stats();
        assert!(st.queries_sent <= config.max_queries);
        let got = lookup.closest_responded();
        let want = net.true_closest(&target, alive_only);
        if got == want {
            s.exact += 1;
        } else {
            // At least most of them.
            let common = got.iter().filter(|c| want.contains(c)).count();
            assert!(common >= min_common, "lookup far off: {common}/{K}");
            s.common_min = s.common_min.min(common);
        }
        s.queries += st.queries_sent;
        s.max_queries = s.max_queries.max(st.queries_sent);
        s.hops += st.hops;
        s.failures += st.failures;
        s.millis += (end - start).as_millis();
        s.heap = s.heap.max(lookup.heap_bytes());
    }
    s
}

fn report(name: &str, s: &Summary) {
    println!(
        "{name}: {} lookups, exact k-closest {}/{} (worst overlap {}/{K}), queries/lookup avg {:.1} max {}, hops avg {:.1}, failures avg {:.1}, simulated time avg {} ms, heap {} bytes",
        s.lookups,
        s.exact,
        s.lookups,
        s.common_min,
        s.queries as f64 / s.lookups as f64,
        s.max_queries,
        s.hops as f64 / s.lookups as f64,
        s.failures as f64 / s.lookups as f64,
        s.millis / s.lookups as u128,
        s.heap,
    );
}

#[test]
fn converges_to_the_true_k_closest() {
    let net = Network::new(1, 2000, 0, 0, 0);
    let s = run_many(&net, 2, 100, &LookupConfig::default(), false, K);
    report("all alive", &s);
    assert_eq!(s.exact, s.lookups);
    assert!(s.queries as f64 / (s.lookups as f64) < 40.0);
}

#[test]
fn converges_despite_dead_and_slow_nodes() {
    // 20% of the nodes never answer (a quarter of them still in others' tables, and all in
    // ours), 10% answer only after the slow timeout.
    let net = Network::new(3, 2000, 20, 10, 25);
    let s = run_many(&net, 4, 100, &LookupConfig::default(), true, K - 2);
    report("20% dead (25% stale), 10% slow", &s);
    assert!(s.exact * 100 >= s.lookups * 90, "{} exact", s.exact);
    assert!(s.failures > 0);
    assert!(s.queries as f64 / (s.lookups as f64) < 60.0);
}

#[test]
fn terminates_when_dead_nodes_fill_every_answer() {
    // Harsh: dead nodes never leave anyone's table, so answers keep pointing at them and
    // alive nodes just beyond the k closest may never be mentioned: the lookup still ends,
    // with answering nodes only, close to the best possible.
    let net = Network::new(5, 2000, 30, 0, 100);
    let s = run_many(&net, 6, 100, &LookupConfig::default(), true, 3);
    report("30% dead, never evicted", &s);
    assert!(s.max_queries <= LookupConfig::default().max_queries);
}

#[test]
fn query_budget_terminates_the_lookup() {
    let net = Network::new(7, 2000, 30, 0, 100);
    let config = LookupConfig {
        max_queries: 10,
        ..LookupConfig::default()
    };
    let s = run_many_budget(&net, &config);
    assert!(s <= 10);
}

fn run_many_budget(net: &Network, config: &LookupConfig) -> usize {
    let start = Instant::now();
    let mut rng = Rng(6);
    let own = rng.id();
    let table = our_table(net, own, start);
    let mut most = 0;
    for _ in 0..20 {
        let target = rng.id();
        let mut lookup = Lookup::new(target, table.closest(&target, K), config.clone(), start);
        drive(&mut lookup, net, start);
        assert!(lookup.is_done());
        most = most.max(lookup.stats().queries_sent);
        assert!(!lookup.closest_responded().is_empty());
    }
    most
}

fn contact(i: u8) -> Contact {
    let mut id = [0u8; 20];
    id[0] = i;
    Contact {
        id: Id(id),
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(1, 1, 1, i)), 6881),
    }
}

#[test]
fn empty_lookup_is_done() {
    let now = Instant::now();
    let mut lookup = Lookup::new(Id::default(), vec![], LookupConfig::default(), now);
    assert!(lookup.is_done());
    assert!(lookup.next_queries(now).is_empty());
    assert_eq!(lookup.poll_timeout(), None);
    assert!(lookup.closest_responded().is_empty());
}

#[test]
fn alpha_slow_and_timeouts() {
    let t0 = Instant::now();
    let config = LookupConfig {
        alpha: 1,
        k: 2,
        ..LookupConfig::default()
    };
    let seeds = vec![contact(1), contact(2), contact(3)];
    let mut lookup = Lookup::new(Id::default(), seeds, config.clone(), t0);
    assert_eq!(lookup.next_queries(t0), vec![contact(1)]);
    assert!(lookup.next_queries(t0).is_empty());
    assert_eq!(lookup.poll_timeout(), Some(t0 + config.slow_timeout));
    // Slow: another query goes out, the first is still waited for.
    let t1 = t0 + config.slow_timeout;
    lookup.handle_timeout(t1);
    assert_eq!(lookup.next_queries(t1), vec![contact(2)]);
    assert_eq!(lookup.in_flight(), 2);
    assert_eq!(lookup.poll_timeout(), Some(t0 + config.query_timeout));
    // The slow one answers late but before its deadline: accepted.
    lookup.on_response(&contact(1), &[], t1);
    assert_eq!(lookup.stats().responses, 1);
    // The second times out.
    let t2 = t1 + config.query_timeout;
    lookup.handle_timeout(t2);
    assert_eq!(lookup.stats().failures, 1);
    assert!(!lookup.is_done());
    assert_eq!(lookup.next_queries(t2), vec![contact(3)]);
    lookup.on_failure(&contact(3), t2);
    assert!(lookup.is_done());
    assert_eq!(lookup.closest_responded(), vec![contact(1)]);
    assert_eq!(lookup.stats().queries_sent, 3);
    assert_eq!(lookup.stats().failures, 2);
    assert_eq!(lookup.stats().hops, 1);
}

#[test]
fn dedupe_own_id_and_hops() {
    let t0 = Instant::now();
    let own = contact(200);
    let config = LookupConfig {
        alpha: 8,
        own_id: Some(own.id),
        ..LookupConfig::default()
    };
    let mut lookup = Lookup::new(Id::default(), vec![contact(100)], config, t0);
    assert_eq!(lookup.next_queries(t0), vec![contact(100)]);
    let spoof_addr = Contact {
        id: contact(5).id,
        addr: contact(100).addr,
    };
    let same_ip = Contact {
        id: contact(6).id,
        addr: SocketAddr::new(contact(100).addr.ip(), 9999),
    };
    let bad_port = Contact {
        id: contact(7).id,
        addr: SocketAddr::new(contact(7).addr.ip(), 0),
    };
    lookup.on_response(
        &contact(100),
        &[
            own,
            spoof_addr,
            same_ip,
            bad_port,
            contact(50),
            contact(50),
            contact(100),
        ],
        t0,
    );
    // Only contact(50) is new.
    assert_eq!(lookup.next_queries(t0), vec![contact(50)]);
    lookup.on_response(&contact(50), &[contact(10)], t0);
    assert_eq!(lookup.next_queries(t0), vec![contact(10)]);
    lookup.on_response(&contact(10), &[], t0);
    assert!(lookup.is_done());
    assert_eq!(
        lookup.closest_responded(),
        vec![contact(10), contact(50), contact(100)]
    );
    assert_eq!(lookup.stats().hops, 3);
    // Unsolicited and duplicate answers are ignored.
    lookup.on_response(&contact(99), &[contact(1)], t0);
    lookup.on_response(&contact(10), &[contact(1)], t0);
    assert_eq!(lookup.stats().responses, 3);
    assert!(lookup.is_done());
}

#[test]
fn bootstrap_router_with_unknown_id() {
    let t0 = Instant::now();
    let router = Contact {
        id: Id([0xff; 20]),
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(67, 215, 246, 10)), 6881),
    };
    let mut lookup = Lookup::new(Id::default(), vec![router], LookupConfig::default(), t0);
    assert_eq!(lookup.next_queries(t0), vec![router]);
    let real = Contact {
        id: contact(77).id,
        addr: router.addr,
    };
    lookup.on_response(&real, &[contact(3)], t0);
    assert_eq!(lookup.next_queries(t0), vec![contact(3)]);
    lookup.on_response(&contact(3), &[], t0);
    assert!(lookup.is_done());
    assert_eq!(lookup.closest_responded(), vec![contact(3), real]);
}

#[test]
fn candidate_set_is_bounded() {
    let t0 = Instant::now();
    let config = LookupConfig {
        max_candidates: 16,
        alpha: 1,
        ..LookupConfig::default()
    };
    let mut lookup = Lookup::new(Id::default(), vec![contact(255)], config, t0);
    lookup.next_queries(t0);
    let many: Vec<Contact> = (1..=200u8).map(contact).collect();
    lookup.on_response(&contact(255), &many, t0);
    // The closest are queried first; only 16 candidates were kept (the answering router and
    // the 15 closest), so after those fail there is nobody left to ask.
    let mut queried = Vec::new();
    loop {
        let q = lookup.next_queries(t0);
        if q.is_empty() {
            break;
        }
        for c in &q {
            lookup.on_failure(c, t0);
        }
        queried.extend(q);
    }
    assert_eq!(queried, (1..=15u8).map(contact).collect::<Vec<_>>());
    assert!(lookup.is_done());
    assert_eq!(lookup.closest_responded(), vec![contact(255)]);
}

#[test]
fn stops_at_k_answers() {
    let t0 = Instant::now();
    let config = LookupConfig {
        alpha: 1,
        ..LookupConfig::default()
    };
    let mut lookup = Lookup::new(Id::default(), vec![contact(255)], config, t0);
    let mut q = lookup.next_queries(t0);
    let many: Vec<Contact> = (1..=40u8).map(contact).collect();
    lookup.on_response(&q[0], &many, t0);
    let mut sent = 1;
    loop {
        q = lookup.next_queries(t0);
        if q.is_empty() {
            break;
        }
        sent += q.len();
        for c in &q {
            lookup.on_response(c, &[], t0);
        }
    }
    assert!(lookup.is_done());
    assert_eq!(sent, 1 + K);
    assert_eq!(
        lookup.closest_responded(),
        (1..=8u8).map(contact).collect::<Vec<_>>()
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Arbitrary answers, failures and timeouts: the lookup ends within its query budget,
    /// and its result is sorted, unique, and made of nodes that answered.
    #[test]
    fn terminates_on_arbitrary_behaviour(
        seed in proptest::prelude::any::<u64>(),
        max_queries in 1usize..60,
        alpha in 1usize..5,
        fail_percent in 0u64..100,
    ) {
        let t0 = Instant::now();
        let mut rng = Rng(seed);
        let pool: Vec<Contact> = (0..300).map(|i| Contact { id: rng.id(), addr: addr(i) }).collect();
        let target = rng.id();
        let config = LookupConfig { alpha, max_queries, ..LookupConfig::default() };
        let seeds = pool[..8].to_vec();
        let mut lookup = Lookup::new(target, seeds, config, t0);
        let mut now = t0;
        let mut answered = Vec::new();
        let mut steps = 0;
        while !lookup.is_done() {
            steps += 1;
            proptest::prop_assert!(steps < 10_000);
            let qs = lookup.next_queries(now);
            for q in qs {
                let r = rng.next() % 100;
                if r < fail_percent / 2 {
                    lookup.on_failure(&q, now);
                } else if r < fail_percent {
                    // silence: left to time out
                } else {
                    let n = (rng.next() % 9) as usize;
                    let nodes: Vec<Contact> = (0..n).map(|_| pool[(rng.next() % 300) as usize]).collect();
                    lookup.on_response(&q, &nodes, now);
                    answered.push(q);
                }
            }
            if let Some(t) = lookup.poll_timeout() {
                now = now.max(t);
                lookup.handle_timeout(now);
            }
        }
        let st = lookup.stats();
        proptest::prop_assert!(st.queries_sent <= max_queries);
        proptest::prop_assert_eq!(st.responses + st.failures + lookup.in_flight(), st.queries_sent);
        let got = lookup.closest_responded();
        proptest::prop_assert!(got.len() <= K);
        for w in got.windows(2) {
            proptest::prop_assert!(target.distance(&w[0].id) < target.distance(&w[1].id));
        }
        for c in &got {
            proptest::prop_assert!(answered.contains(c));
        }
    }
}
