//! A deterministic in-process network of DHT nodes: a fake clock, datagrams delivered after a
//! random latency or lost, every node the real [`Node`]. Used by the tests and by the
//! `dht_sim` example to measure lookups in a network of thousands of nodes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::id::Id;
use crate::node::{Event, LookupId, Node, NodeConfig};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of nodes; node 0 is the bootstrap node every other joins through.
    pub nodes: usize,
    /// Info hashes announced, each by one random node.
    pub announces: usize,
    /// `get_peers` lookups, each by a random node for a random announced hash.
    pub lookups: usize,
    /// One-way latency range in milliseconds.
    pub latency_ms: (u64, u64),
    /// Datagrams lost, per thousand.
    pub loss_per_mille: u64,
    /// Time between two nodes joining.
    pub join_interval: Duration,
    /// Everything random in the run derives from this.
    pub seed: u64,
    /// The configuration of every node (its `seed` is replaced per node).
    pub node: NodeConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 10_000,
            announces: 1_000,
            lookups: 1_000,
            latency_ms: (10, 80),
            loss_per_mille: 10,
            join_interval: Duration::from_millis(20),
            seed: 1,
            node: NodeConfig::default(),
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    /// Nodes simulated.
    pub nodes: usize,
    /// Lookups run.
    pub lookups: usize,
    /// Lookups that found the announced peer.
    pub found: usize,
    /// Hops per lookup (depth of the query tree): median and 99th percentile.
    pub hops: (usize, usize),
    /// Queries sent per lookup: median and 99th percentile.
    pub messages: (usize, usize),
    /// Mean heap bytes per node after the run, plus the node structure itself.
    pub bytes_per_node: usize,
    /// Mean routing table size (IPv4).
    pub table_size: f64,
    /// Datagrams delivered in the whole run.
    pub datagrams: u64,
    /// Simulated time the run took.
    pub simulated: Duration,
}

impl SimReport {
    /// Share of lookups that found the announced peer.
    pub fn success_rate(&self) -> f64 {
        if self.lookups == 0 {
            return 0.0;
        }
        self.found as f64 / self.lookups as f64
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        crate::rng::splitmix64(&mut self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    fn id(&mut self) -> Id {
        crate::rng::random_id(&mut self.0)
    }
}

fn addr_of(index: usize) -> SocketAddr {
    let i = u32::try_from(index).unwrap_or(u32::MAX);
    let ip = Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8);
    SocketAddr::new(IpAddr::V4(ip), 6881)
}

fn index_of(addr: &SocketAddr) -> Option<usize> {
    match addr.ip() {
        IpAddr::V4(ip) => {
            let [a, b, c, d] = ip.octets();
            (a == 10 && addr.port() == 6881)
                .then(|| (usize::from(b) << 16) | (usize::from(c) << 8) | usize::from(d))
        }
        IpAddr::V6(_) => None,
    }
}

/// A datagram on the simulated wire: (deliver at, sequence, to, from, payload).
type InFlight = (Duration, u64, usize, usize, Vec<u8>);

/// The simulated network.
pub struct Sim {
    config: SimConfig,
    base: Instant,
    now: Duration,
    nodes: Vec<Node>,
    wire: BinaryHeap<Reverse<InFlight>>,
    /// (deadline, node)
    timers: BinaryHeap<Reverse<(Duration, usize)>>,
    seq: u64,
    rng: Rng,
    datagrams: u64,
    events: Vec<(usize, Event)>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("nodes", &self.nodes.len())
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// A network of `config.nodes` nodes that have not joined yet.
    pub fn new(config: SimConfig) -> Sim {
        let base = Instant::now();
        let mut rng = Rng(config.seed);
        let nodes = (0..config.nodes)
            .map(|i| {
                let mut c = config.node.clone();
                c.seed = rng.next() ^ (i as u64);
                // Simulated addresses are private (10/8): no per-IP restriction needed.
                c.routing.restrict_ips = false;
                Node::new(c, base)
            })
            .collect();
        Sim {
            config,
            base,
            now: Duration::ZERO,
            nodes,
            wire: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            rng,
            datagrams: 0,
            events: Vec::new(),
        }
    }

    /// The nodes.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The simulated address of node `index`.
    pub fn addr(index: usize) -> SocketAddr {
        addr_of(index)
    }

    fn instant(&self) -> Instant {
        self.base + self.now
    }

    /// Collects what node `i` wants to send and when it wants to be woken.
    fn flush(&mut self, i: usize) {
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        while let Some(t) = node.poll_transmit() {
            let Some(to) = index_of(&t.to) else { continue };
            if self.rng.below(1000) < self.config.loss_per_mille {
                continue;
            }
            let (lo, hi) = self.config.latency_ms;
            let latency = Duration::from_millis(lo + self.rng.below(hi.saturating_sub(lo) + 1));
            self.seq += 1;
            self.wire
                .push(Reverse((self.now + latency, self.seq, to, i, t.payload)));
        }
        while let Some(e) = node.poll_event() {
            self.events.push((i, e));
        }
        if let Some(t) = node.poll_timeout() {
            let at = t.saturating_duration_since(self.base).max(self.now);
            self.timers.push(Reverse((at, i)));
        }
    }

    /// Runs the network until simulated time `until`.
    pub fn run_until(&mut self, until: Duration) {
        loop {
            let next_wire = self.wire.peek().map(|Reverse(w)| w.0);
            let next_timer = self.timers.peek().map(|Reverse(t)| t.0);
            let next = match (next_wire, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = next;
            let now = self.instant();
            if next_wire == Some(next) {
                if let Some(Reverse((_, _, to, from, payload))) = self.wire.pop() {
                    self.datagrams += 1;
                    if let Some(node) = self.nodes.get_mut(to) {
                        node.handle_datagram(now, addr_of(from), &payload);
                    }
                    self.flush(to);
                }
            } else if let Some(Reverse((_, i))) = self.timers.pop() {
                let due = self
                    .nodes
                    .get(i)
                    .and_then(Node::poll_timeout)
                    .is_some_and(|t| t <= now);
                if due {
                    if let Some(node) = self.nodes.get_mut(i) {
                        node.handle_timeout(now);
                    }
                    self.flush(i);
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// Lets every node join through node 0, one every `join_interval`, then settles.
    pub fn bootstrap(&mut self) {
        let boot = addr_of(0);
        for i in 1..self.nodes.len() {
            let at = self.now + self.config.join_interval;
            self.run_until(at);
            let now = self.instant();
            if let Some(node) = self.nodes.get_mut(i) {
                node.bootstrap(now, &[boot]);
            }
            self.flush(i);
        }
        // Node 0 only learns of others from their queries; let it look itself up too.
        let now = self.instant();
        if let Some(node) = self.nodes.get_mut(0) {
            let own = node.id();
            node.find_node(now, own);
        }
        self.flush(0);
        let settle = self.now + Duration::from_secs(30);
        self.run_until(settle);
        self.events.clear();
    }

    /// Starts a lookup on node `i` with `start` and runs until it reports done (or a
    /// simulated minute passes). Returns its `LookupDone` event.
    pub fn run_lookup(
        &mut self,
        i: usize,
        start: impl FnOnce(&mut Node, Instant) -> Option<LookupId>,
    ) -> Option<Event> {
        let now = self.instant();
        let id = start(self.nodes.get_mut(i)?, now)?;
        self.flush(i);
        let deadline = self.now + Duration::from_secs(60);
        loop {
            let step = self.now + Duration::from_millis(50);
            self.run_until(step);
            let pos = self.events.iter().position(|(n, e)| {
                *n == i && matches!(e, Event::LookupDone { lookup, .. } if *lookup == id)
            });
            if let Some(pos) = pos {
                let (_, event) = self.events.swap_remove(pos);
                self.events.retain(|(n, _)| *n != i);
                return Some(event);
            }
            if self.now >= deadline {
                return None;
            }
        }
    }

    /// The whole experiment: bootstrap, announces, lookups; the figures.
    pub fn run(config: SimConfig) -> SimReport {
        let mut sim = Sim::new(config.clone());
        sim.bootstrap();
        let n = sim.nodes.len() as u64;
        let mut announced = Vec::new();
        for _ in 0..config.announces {
            let who = sim.rng.below(n) as usize;
            let hash = sim.rng.id();
            sim.run_lookup(who, |node, now| node.announce(now, hash, Some(7000), false));
            announced.push((hash, who));
        }
        let mut hops = Vec::new();
        let mut messages = Vec::new();
        let mut found = 0;
        for l in 0..config.lookups {
            let Some(&(hash, owner)) = announced.get(l % announced.len().max(1)) else {
                break;
            };
            let mut who = sim.rng.below(n) as usize;
            if who == owner {
                who = (who + 1) % n as usize;
            }
            let expected = SocketAddr::new(addr_of(owner).ip(), 7000);
            if let Some(Event::LookupDone { stats, peers, .. }) =
                sim.run_lookup(who, |node, now| node.get_peers(now, hash))
            {
                if peers.contains(&expected) {
                    found += 1;
                }
                hops.push(stats.hops);
                messages.push(stats.queries_sent);
            }
        }
        let percentile = |v: &mut Vec<usize>, p: usize| -> usize {
            v.sort_unstable();
            v.get((v.len().saturating_sub(1)) * p / 100)
                .copied()
                .unwrap_or(0)
        };
        let bytes: usize = sim.nodes.iter().map(Node::heap_bytes).sum::<usize>()
            / sim.nodes.len().max(1)
            + std::mem::size_of::<Node>();
        let table: usize = sim.nodes.iter().map(|n| n.table().len()).sum();
        SimReport {
            nodes: sim.nodes.len(),
            lookups: config.lookups,
            found,
            hops: (percentile(&mut hops, 50), percentile(&mut hops, 99)),
            messages: (percentile(&mut messages, 50), percentile(&mut messages, 99)),
            bytes_per_node: bytes,
            table_size: table as f64 / sim.nodes.len().max(1) as f64,
            datagrams: sim.datagrams,
            simulated: sim.now,
        }
    }
}
