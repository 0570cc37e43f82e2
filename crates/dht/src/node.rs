//! The sans-IO DHT node: datagrams and time in; datagrams, events and the next deadline out.
//!
//! ```text
//!  handle_datagram(now, from, bytes) ─▶ ┌───────────────┐ ─▶ poll_transmit() → (to, bytes)
//!  handle_timeout(now)               ─▶ │     Node      │ ─▶ poll_event()    → Event
//!  get_peers / announce / get / put  ─▶ └───────────────┘ ─▶ poll_timeout()  → Instant
//! ```
//!
//! The node answers BEP 5 queries (ping, find_node, get_peers, announce_peer), BEP 44 get and
//! put, BEP 51 sample_infohashes and BEP 33 scrapes, from two routing tables (IPv4 and IPv6,
//! BEP 32), with per-IP rate limits and answers bounded in size. It runs iterative lookups
//! (find_node, get_peers with an optional announce, BEP 44 get and put) with α concurrent
//! queries and reports what they find as events. It never reads a clock, never touches a
//! socket and draws randomness only from its configured seed, so thousands of nodes can run
//! deterministically in one process.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::bep44::{immutable_target, mutable_target, ItemError, MutableItem};
use crate::id::{Contact, Id};
use crate::krpc::{self, Body, Message, Query, Response, Want};
use crate::lookup::{Lookup, LookupConfig, LookupStats};
use crate::rng::{random_id, splitmix64};
use crate::routing::{Heard, Insert, RoutingConfig, RoutingTable};
use crate::secure_id::{is_secure, secure_id};
use crate::store::{ItemStore, ItemStoreConfig, PeerStore, PeerStoreConfig, StoredItem};
use crate::token::TokenSecrets;

/// How a node behaves. Every bound here limits what peers can make it hold or send.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Our id; `None` derives one from `external_ip` (BEP 42) or, failing that, from `seed`.
    pub id: Option<Id>,
    /// Our external address, if known, for a BEP 42 secure id.
    pub external_ip: Option<IpAddr>,
    /// All the node's randomness (ids, tokens, tie-breaks) derives from this.
    pub seed: u64,
    /// BEP 43: we ask but never answer, and say so in every query.
    pub read_only: bool,
    /// The `v` field of our messages.
    pub version: Vec<u8>,
    /// Routing table behaviour.
    pub routing: RoutingConfig,
    /// Lookup behaviour (α, k, timeouts).
    pub lookup: LookupConfig,
    /// Peers stored for others.
    pub peers: PeerStoreConfig,
    /// BEP 44 items stored for others.
    pub items: ItemStoreConfig,
    /// A query we send is given up after this long.
    pub query_timeout: Duration,
    /// Most queries of ours awaiting an answer.
    pub max_in_flight: usize,
    /// Most lookups running at once.
    pub max_lookups: usize,
    /// Queries per second one IP address may make of us (sustained).
    pub rate_per_ip: u32,
    /// Queries one IP address may make in a burst.
    pub burst_per_ip: u32,
    /// Most IP addresses tracked for rate limiting.
    pub max_rate_entries: usize,
    /// Most datagrams waiting in [`Node::poll_transmit`]'s queue.
    pub max_transmit_queue: usize,
    /// Most peers a `get_peers` answer carries.
    pub max_values: usize,
    /// Pings per second sent to unknown nodes that queried us (to confirm them).
    pub pings_per_sec: u32,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: None,
            external_ip: None,
            seed: 0,
            read_only: false,
            version: b"TS\x00\x01".to_vec(),
            // BEP 42: a node whose id matches its address may take the place of one whose id
            // does not.
            routing: RoutingConfig {
                prefer_secure: true,
                ..RoutingConfig::default()
            },
            lookup: LookupConfig::default(),
            peers: PeerStoreConfig::default(),
            items: ItemStoreConfig::default(),
            query_timeout: Duration::from_secs(2),
            max_in_flight: 1024,
            max_lookups: 64,
            rate_per_ip: 100,
            burst_per_ip: 200,
            max_rate_entries: 4096,
            max_transmit_queue: 4096,
            max_values: 50,
            pings_per_sec: 20,
        }
    }
}

/// Names a lookup started on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

/// A BEP 44 item found by a `get` lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundItem {
    /// The raw bencoded value.
    pub value: Vec<u8>,
    /// For a mutable item: the public key, salt, sequence number and signature.
    pub mutable: Option<MutableItem>,
}

/// What a node reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A `get_peers` lookup learnt peers (new ones only, as they arrive).
    PeersFound {
        /// The lookup.
        lookup: LookupId,
        /// Its info hash.
        info_hash: Id,
        /// The new peers.
        peers: Vec<SocketAddr>,
    },
    /// A lookup finished (including its announces or puts, if any).
    LookupDone {
        /// The lookup.
        lookup: LookupId,
        /// Its target.
        target: Id,
        /// How it went.
        stats: LookupStats,
        /// The closest nodes that answered.
        closest: Vec<Contact>,
        /// Every peer found (`get_peers`).
        peers: Vec<SocketAddr>,
        /// The item found (`get`), the newest for a mutable one.
        item: Option<Box<FoundItem>>,
        /// Nodes that acknowledged our announce or put.
        stored: usize,
    },
    /// Responses agree on our external address (BEP 42 `ip` field).
    ExternalAddress(IpAddr),
}

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub to: SocketAddr,
    /// The encoded KRPC message.
    pub payload: Vec<u8>,
}

/// Counters, for tests, simulations and monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Queries answered.
    pub queries_answered: u64,
    /// Queries dropped by the rate limit.
    pub rate_limited: u64,
    /// Datagrams that did not decode.
    pub malformed: u64,
    /// Responses that matched no query of ours, or came from the wrong address.
    pub unexpected: u64,
    /// Queries we sent.
    pub queries_sent: u64,
    /// Queries of ours that timed out.
    pub timeouts: u64,
}

#[derive(Clone, Debug)]
enum Kind {
    FindNode,
    GetPeers {
        info_hash: Id,
        announce: Option<(Option<u16>, bool)>,
    },
    Get {
        mutable: Option<([u8; 32], Vec<u8>)>,
    },
    Put {
        immutable: Option<Vec<u8>>,
        mutable: Option<MutableItem>,
    },
}

#[derive(Debug)]
struct Active {
    kind: Kind,
    lookup: Lookup,
    tokens: HashMap<Id, Vec<u8>>,
    peers: Vec<SocketAddr>,
    seen_peers: HashSet<SocketAddr>,
    item: Option<FoundItem>,
    storing: Option<usize>,
    stored: usize,
}

#[derive(Clone, Copy, Debug)]
enum Purpose {
    Ping,
    Bootstrap,
    Lookup(LookupId),
    Store(LookupId),
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    to: SocketAddr,
    id: Option<Id>,
    deadline: Instant,
    purpose: Purpose,
}

/// Most peers remembered per `get_peers` lookup.
const MAX_LOOKUP_PEERS: usize = 1000;
/// Nodes per family in an answer.
const ANSWER_NODES: usize = 8;
/// Samples in a `sample_infohashes` answer (20 bytes each: ~400 bytes).
const MAX_SAMPLES: usize = 20;
/// How often tables are maintained and stores expired.
const MAINTENANCE: Duration = Duration::from_secs(5);
/// Largest answer we send: a 1,500-byte Ethernet frame less the IPv4 and UDP headers. A longer
/// answer loses contacts (of the other family first), then peers, until it fits.
pub const MAX_ANSWER: usize = 1472;

/// A map keyed by values we choose ourselves (transaction and lookup ids): a fixed hasher, so
/// that its iteration order and capacity, like everything else, follow from the seed alone.
type OwnMap<K, V> = HashMap<K, V, BuildHasherDefault<DefaultHasher>>;

/// A Mainline DHT node.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    own: Id,
    table4: RoutingTable,
    table6: RoutingTable,
    pending: OwnMap<u16, Pending>,
    /// The pending queries by deadline, so that the next one is found without a walk.
    deadlines: BTreeSet<(Instant, u16)>,
    next_tid: u16,
    lookups: OwnMap<LookupId, Active>,
    next_lookup: u64,
    self_lookup: Option<LookupId>,
    tokens: TokenSecrets,
    peers: PeerStore,
    items: ItemStore,
    rate: HashMap<IpAddr, (u64, Instant)>,
    /// When the full rate table was last swept for refilled entries.
    rate_swept: Option<Instant>,
    transmit: VecDeque<Transmit>,
    events: VecDeque<Event>,
    rng: u64,
    next_maintenance: Instant,
    ip_votes: HashMap<IpAddr, u32>,
    /// Who has voted in [`Node::ip_votes`]'s round: one vote per responding IP.
    ip_voters: HashSet<IpAddr>,
    external: Option<IpAddr>,
    stats: NodeStats,
    scratch: Vec<u8>,
    /// Ping budget (thousandths of a ping, last refill).
    pings: (u64, Instant),
    /// Set when our own lookup (after joining) finished: every bucket is then refreshed once,
    /// as libtorrent does, so the table learns the whole id space and not only our corner.
    refresh_after_bootstrap: bool,
    /// Where we joined from, asked again while our table stays nearly empty.
    bootstrap_addrs: Vec<SocketAddr>,
}

impl Node {
    /// A node with `config`, its clock starting at `now`.
    pub fn new(config: NodeConfig, now: Instant) -> Node {
        let mut rng = config.seed ^ 0x7465_7373_6572_6164;
        let own = match (config.id, config.external_ip) {
            (Some(id), _) => id,
            (None, Some(ip)) => {
                let r = random_id(&mut rng);
                let mut tail = [0; 16];
                tail.copy_from_slice(r.0.get(..16).unwrap_or(&[0; 16]));
                secure_id(ip, r.0[19], &tail)
            }
            (None, None) => random_id(&mut rng),
        };
        let mut routing = config.routing.clone();
        routing.seed = splitmix64(&mut rng);
        let mut seed = [0; 32];
        for chunk in seed.chunks_mut(8) {
            chunk.copy_from_slice(&splitmix64(&mut rng).to_be_bytes());
        }
        let mut lookup = config.lookup.clone();
        lookup.own_id = Some(own);
        lookup.restrict_ips = routing.restrict_ips;
        let mut config = config;
        let config_pings = config.pings_per_sec;
        config.lookup = lookup;
        Node {
            table4: RoutingTable::new(own, routing.clone(), now),
            table6: RoutingTable::new(own, routing, now),
            peers: PeerStore::with_config(config.peers),
            items: ItemStore::with_config(config.items),
            tokens: TokenSecrets::new(seed, now),
            config,
            own,
            pending: OwnMap::default(),
            deadlines: BTreeSet::new(),
            next_tid: (rng & 0xffff) as u16,
            lookups: OwnMap::default(),
            next_lookup: 1,
            self_lookup: None,
            rate: HashMap::new(),
            rate_swept: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            rng,
            next_maintenance: now + MAINTENANCE,
            ip_votes: HashMap::new(),
            ip_voters: HashSet::new(),
            external: None,
            stats: NodeStats::default(),
            scratch: Vec::with_capacity(512),
            pings: (u64::from(config_pings) * 2000, now),
            refresh_after_bootstrap: false,
            bootstrap_addrs: Vec::new(),
        }
    }

    /// Our node id.
    pub fn id(&self) -> Id {
        self.own
    }

    /// Counters.
    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    /// The IPv4 routing table.
    pub fn table(&self) -> &RoutingTable {
        &self.table4
    }

    /// The IPv6 routing table.
    pub fn table6(&self) -> &RoutingTable {
        &self.table6
    }

    /// Peers stored for others.
    pub fn peer_store(&self) -> &PeerStore {
        &self.peers
    }

    /// Queries of ours awaiting an answer (at most [`NodeConfig::max_in_flight`]).
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Approximate heap memory held by the node's tables and stores.
    pub fn heap_bytes(&self) -> usize {
        self.table4.heap_bytes()
            + self.table6.heap_bytes()
            + self.pending.capacity() * (std::mem::size_of::<(u16, Pending)>() + 1)
            + self.deadlines.len() * std::mem::size_of::<(Instant, u16)>() * 2
            + self.rate.capacity() * (std::mem::size_of::<(IpAddr, (u64, Instant))>() + 1)
            + self.transmit.capacity() * std::mem::size_of::<Transmit>()
            + self
                .transmit
                .iter()
                .map(|t| t.payload.capacity())
                .sum::<usize>()
            + self
                .lookups
                .values()
                .map(|a| a.lookup.heap_bytes())
                .sum::<usize>()
            + self.scratch.capacity()
    }

    fn table_for(&mut self, addr: &SocketAddr) -> &mut RoutingTable {
        if addr.is_ipv4() {
            &mut self.table4
        } else {
            &mut self.table6
        }
    }

    // ------------------------------------------------------------------------------------
    // Starting work

    /// Joins the network through `addrs` (known nodes, ids unknown): asks each for the
    /// nodes closest to our own id, then looks ourselves up.
    pub fn bootstrap(&mut self, now: Instant, addrs: &[SocketAddr]) {
        for addr in addrs {
            if self.bootstrap_addrs.len() < 32 && !self.bootstrap_addrs.contains(addr) {
                self.bootstrap_addrs.push(*addr);
            }
        }
        self.send_bootstrap(now, addrs);
    }

    fn send_bootstrap(&mut self, now: Instant, addrs: &[SocketAddr]) {
        for addr in addrs {
            let target = self.own;
            self.send_query(now, *addr, None, Purpose::Bootstrap, |id| Query::FindNode {
                id,
                target,
                want: None,
            });
        }
    }

    /// Adds a known node (for instance one saved before a restart): it is pinged and joins
    /// the table if it answers.
    pub fn add_node(&mut self, now: Instant, addr: SocketAddr) {
        self.send_query(now, addr, None, Purpose::Ping, |id| Query::Ping { id });
    }

    /// Starts an iterative `find_node` lookup of `target`.
    pub fn find_node(&mut self, now: Instant, target: Id) -> Option<LookupId> {
        self.start(now, target, Kind::FindNode)
    }

    /// Starts a `get_peers` lookup of `info_hash`; peers are reported as they arrive.
    pub fn get_peers(&mut self, now: Instant, info_hash: Id) -> Option<LookupId> {
        self.start(
            now,
            info_hash,
            Kind::GetPeers {
                info_hash,
                announce: None,
            },
        )
    }

    /// Looks up `info_hash` and announces us to the closest nodes: on `port`, or with
    /// `implied_port` (the source port of our datagrams) when `port` is `None`.
    pub fn announce(
        &mut self,
        now: Instant,
        info_hash: Id,
        port: Option<u16>,
        seed: bool,
    ) -> Option<LookupId> {
        self.start(
            now,
            info_hash,
            Kind::GetPeers {
                info_hash,
                announce: Some((port, seed)),
            },
        )
    }

    /// BEP 44: looks up the immutable item with this target.
    pub fn get_immutable(&mut self, now: Instant, target: Id) -> Option<LookupId> {
        self.start(now, target, Kind::Get { mutable: None })
    }

    /// BEP 44: looks up the mutable item of `key` and `salt`.
    pub fn get_mutable(&mut self, now: Instant, key: [u8; 32], salt: &[u8]) -> Option<LookupId> {
        let target = mutable_target(&key, salt);
        self.start(
            now,
            target,
            Kind::Get {
                mutable: Some((key, salt.to_vec())),
            },
        )
    }

    /// BEP 44: stores an immutable item (raw bencoded `value`) on the closest nodes.
    ///
    /// # Errors
    /// [`ItemError`] if the value is not valid bencode or too large.
    pub fn put_immutable(
        &mut self,
        now: Instant,
        value: Vec<u8>,
    ) -> Result<(Option<LookupId>, Id), ItemError> {
        crate::bep44::check_value(&value)?;
        let target = immutable_target(&value);
        let id = self.start(
            now,
            target,
            Kind::Put {
                immutable: Some(value),
                mutable: None,
            },
        );
        Ok((id, target))
    }

    /// BEP 44: stores a signed mutable item on the closest nodes.
    ///
    /// # Errors
    /// [`ItemError`] if the item does not verify.
    pub fn put_mutable(
        &mut self,
        now: Instant,
        item: MutableItem,
    ) -> Result<(Option<LookupId>, Id), ItemError> {
        item.verify()?;
        let target = item.target();
        let id = self.start(
            now,
            target,
            Kind::Put {
                immutable: None,
                mutable: Some(item),
            },
        );
        Ok((id, target))
    }

    fn start(&mut self, now: Instant, target: Id, kind: Kind) -> Option<LookupId> {
        self.start_seeded(now, target, kind, Vec::new())
    }

    fn start_seeded(
        &mut self,
        now: Instant,
        target: Id,
        kind: Kind,
        extra: Vec<Contact>,
    ) -> Option<LookupId> {
        if self.lookups.len() >= self.config.max_lookups {
            return None;
        }
        let mut seeds = extra;
        seeds.extend(self.table4.closest(&target, self.config.lookup.k * 2));
        seeds.extend(self.table6.closest(&target, self.config.lookup.k));
        let id = LookupId(self.next_lookup);
        self.next_lookup += 1;
        // Peers announced to us count too: in a small network we may be the closest node.
        let local = match &kind {
            Kind::GetPeers { info_hash, .. } => {
                let sample = splitmix64(&mut self.rng);
                let mut found =
                    self.peers
                        .get(info_hash, false, self.config.max_values, false, sample);
                found.extend(self.peers.get(
                    info_hash,
                    true,
                    self.config.max_values,
                    false,
                    sample,
                ));
                found
            }
            _ => Vec::new(),
        };
        self.lookups.insert(
            id,
            Active {
                kind,
                lookup: Lookup::new(target, seeds, self.config.lookup.clone(), now),
                tokens: HashMap::new(),
                peers: local.clone(),
                seen_peers: local.iter().copied().collect(),
                item: None,
                storing: None,
                stored: 0,
            },
        );
        if !local.is_empty() {
            self.events.push_back(Event::PeersFound {
                lookup: id,
                info_hash: target,
                peers: local,
            });
        }
        self.drive(now, id);
        Some(id)
    }

    // ------------------------------------------------------------------------------------
    // Output

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Node::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.next_maintenance.min(self.tokens.next_rotation());
        if let Some(&(deadline, _)) = self.deadlines.first() {
            next = next.min(deadline);
        }
        for a in self.lookups.values() {
            if let Some(t) = a.lookup.poll_timeout() {
                next = next.min(t);
            }
        }
        Some(next)
    }

    // ------------------------------------------------------------------------------------
    // Sending

    fn queue(&mut self, to: SocketAddr, message: &Message) {
        if self.transmit.len() >= self.config.max_transmit_queue {
            return;
        }
        self.scratch.clear();
        message.encode_into(&mut self.scratch);
        self.queue_scratch(to);
    }

    /// Queues the message encoded in `scratch`.
    fn queue_scratch(&mut self, to: SocketAddr) {
        if self.transmit.len() >= self.config.max_transmit_queue {
            return;
        }
        self.transmit.push_back(Transmit {
            to,
            payload: self.scratch.clone(),
        });
    }

    fn send_query(
        &mut self,
        now: Instant,
        to: SocketAddr,
        id: Option<Id>,
        purpose: Purpose,
        query: impl FnOnce(Id) -> Query,
    ) -> bool {
        // Transaction ids are 16 bits: never more in flight than there are ids to find.
        if self.pending.len() >= self.config.max_in_flight.min(usize::from(u16::MAX)) {
            return false;
        }
        let mut tid = self.next_tid;
        while self.pending.contains_key(&tid) {
            tid = tid.wrapping_add(1);
        }
        self.next_tid = tid.wrapping_add(1);
        let deadline = now + self.config.query_timeout;
        self.pending.insert(
            tid,
            Pending {
                to,
                id,
                deadline,
                purpose,
            },
        );
        self.deadlines.insert((deadline, tid));
        let message = Message {
            tid: tid.to_be_bytes().to_vec(),
            version: Some(self.config.version.clone()),
            ip: None,
            read_only: self.config.read_only,
            body: Body::Query(query(self.own)),
        };
        self.stats.queries_sent += 1;
        self.queue(to, &message);
        true
    }

    // ------------------------------------------------------------------------------------
    // Input

    /// Handles one datagram from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let message = match krpc::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                if e.is_query() && !self.config.read_only && self.allow(from.ip(), now) {
                    if let Some(reply) = e.reply() {
                        self.queue(from, &reply);
                    }
                }
                return;
            }
        };
        match message.body {
            Body::Query(query) => {
                if self.config.read_only || !self.allow(from.ip(), now) {
                    if !self.config.read_only {
                        self.stats.rate_limited += 1;
                    }
                    return;
                }
                let id = query.id();
                if !message.read_only {
                    let secure = is_secure(&id, from.ip());
                    let insert = self.table_for(&from).heard_from(
                        Contact { id, addr: from },
                        Heard::Query,
                        secure,
                        now,
                    );
                    // An unknown node that queries us may be worth a place in the table, but
                    // its source address may be spoofed: ping it, and let the answer (which
                    // only the real owner of the address receives) confirm it. Pings of this
                    // kind are budgeted so spoofed queries cannot turn us into a flooder.
                    if insert == Insert::Replacement && self.ping_budget(now) {
                        self.send_query(now, from, Some(id), Purpose::Ping, |own| Query::Ping {
                            id: own,
                        });
                    }
                }
                self.answer(now, from, message.tid, query);
            }
            Body::Response(response) => {
                let Some(pending) = self.take_pending(&message.tid, from) else {
                    self.stats.unexpected += 1;
                    return;
                };
                if pending.id.is_some_and(|id| id != response.id) {
                    // Someone else answers from that address now: drop it from our table.
                    if let Some(id) = pending.id {
                        self.table_for(&from).failed(&id, from, now);
                    }
                    self.fail(now, pending);
                    return;
                }
                if let Some(ip) = message.ip {
                    self.vote_ip(from.ip(), ip.ip());
                }
                let contact = Contact {
                    id: response.id,
                    addr: from,
                };
                if !message.read_only {
                    let secure = is_secure(&response.id, from.ip());
                    self.table_for(&from)
                        .heard_from(contact, Heard::Response, secure, now);
                }
                self.on_response(now, pending, contact, response);
            }
            Body::Error { .. } => {
                if let Some(pending) = self.take_pending(&message.tid, from) {
                    self.fail(now, pending);
                }
            }
        }
    }

    fn take_pending(&mut self, tid: &[u8], from: SocketAddr) -> Option<Pending> {
        let tid = u16::from_be_bytes(tid.try_into().ok()?);
        let pending = self.pending.get(&tid)?;
        // A response must come from the address we asked: a spoofed answer cannot complete
        // someone else's transaction or plant nodes through it.
        if pending.to != from {
            return None;
        }
        self.remove_pending(tid)
    }

    /// Forgets pending query `tid`.
    fn remove_pending(&mut self, tid: u16) -> Option<Pending> {
        let p = self.pending.remove(&tid)?;
        self.deadlines.remove(&(p.deadline, tid));
        Some(p)
    }

    fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let per_sec = u64::from(self.config.rate_per_ip);
        let cap = u64::from(self.config.burst_per_ip) * 1000;
        if !self.rate.contains_key(&ip) && self.rate.len() >= self.config.max_rate_entries {
            // Forget addresses that have refilled completely; if none has, refuse newcomers
            // rather than grow. A sweep is a pass over the whole table, so it runs at most 16
            // times per refill period: a flood of new (spoofed) addresses costs O(1) each.
            let horizon = Duration::from_millis(cap / per_sec.max(1));
            if self.rate_swept.is_some_and(|t| now < t + horizon / 16) {
                return false;
            }
            self.rate_swept = Some(now);
            self.rate
                .retain(|_, (_, last)| now.saturating_duration_since(*last) < horizon);
            if self.rate.len() >= self.config.max_rate_entries {
                return false;
            }
        }
        let entry = self.rate.entry(ip).or_insert((cap, now));
        let elapsed =
            u64::try_from(now.saturating_duration_since(entry.1).as_millis()).unwrap_or(u64::MAX);
        entry.0 = entry
            .0
            .saturating_add(elapsed.saturating_mul(per_sec))
            .min(cap);
        entry.1 = now;
        if entry.0 >= 1000 {
            entry.0 -= 1000;
            true
        } else {
            false
        }
    }

    fn ping_budget(&mut self, now: Instant) -> bool {
        let per_sec = u64::from(self.config.pings_per_sec);
        let cap = per_sec * 2000;
        let elapsed = u64::try_from(now.saturating_duration_since(self.pings.1).as_millis())
            .unwrap_or(u64::MAX);
        self.pings.0 = self
            .pings
            .0
            .saturating_add(elapsed.saturating_mul(per_sec))
            .min(cap);
        self.pings.1 = now;
        if self.pings.0 >= 1000 {
            self.pings.0 -= 1000;
            true
        } else {
            false
        }
    }

    /// Counts `voter`'s report that our address is `ip`. Each responding IP votes once per
    /// round, so one node repeating itself cannot decide; a round ends (the counts start
    /// over, the address found so far stays) when it has seen too many voters or too many
    /// candidate addresses, so made-up addresses cannot lock the count.
    fn vote_ip(&mut self, voter: IpAddr, ip: IpAddr) {
        const MAX_CANDIDATES: usize = 16;
        const MAX_VOTERS: usize = 1024;
        if self.ip_voters.len() >= MAX_VOTERS
            || (self.ip_votes.len() >= MAX_CANDIDATES && !self.ip_votes.contains_key(&ip))
        {
            self.ip_votes.clear();
            self.ip_voters.clear();
        }
        if !self.ip_voters.insert(voter) {
            return;
        }
        let votes = self.ip_votes.entry(ip).or_insert(0);
        *votes += 1;
        if *votes >= 5 && self.external != Some(ip) {
            let best = self
                .ip_votes
                .iter()
                .max_by_key(|(ip, v)| (**v, **ip))
                .map(|(ip, _)| *ip);
            if best == Some(ip) {
                self.external = Some(ip);
                self.events.push_back(Event::ExternalAddress(ip));
            }
        }
    }

    // ------------------------------------------------------------------------------------
    // Answering

    fn nodes_for(&self, target: &Id, from: &SocketAddr, want: Option<Want>, r: &mut Response) {
        let (v4, v6) = match want {
            Some(w) => (w.v4(), w.v6()),
            None => (from.is_ipv4(), from.is_ipv6()),
        };
        if v4 {
            r.nodes = self.table4.closest(target, ANSWER_NODES);
        }
        if v6 {
            r.nodes6 = self.table6.closest(target, ANSWER_NODES);
        }
    }

    fn answer(&mut self, now: Instant, from: SocketAddr, tid: Vec<u8>, query: Query) {
        let mut r = Response::new(self.own);
        let ip = from.ip();
        match query {
            Query::Ping { .. } => {}
            Query::FindNode { target, want, .. } => self.nodes_for(&target, &from, want, &mut r),
            Query::GetPeers {
                info_hash,
                want,
                noseed,
                scrape,
                ..
            } => {
                r.token = Some(self.tokens.token_for(ip, now).to_vec());
                let sample = splitmix64(&mut self.rng);
                r.values = self.peers.get(
                    &info_hash,
                    from.is_ipv6(),
                    self.config.max_values,
                    noseed,
                    sample,
                );
                if scrape {
                    if let Some((seeds, peers)) = self.peers.scrape(&info_hash) {
                        r.bloom_seeds = Some(Box::new(*seeds.as_bytes()));
                        r.bloom_peers = Some(Box::new(*peers.as_bytes()));
                    }
                }
                self.nodes_for(&info_hash, &from, want, &mut r);
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                seed,
                ..
            } => {
                if !self.tokens.check(&token, ip, now) {
                    self.reply_error(from, tid, krpc::ERROR_PROTOCOL, "bad token");
                    return;
                }
                let port = if implied_port { from.port() } else { port };
                if port == 0 {
                    self.reply_error(from, tid, krpc::ERROR_PROTOCOL, "bad port");
                    return;
                }
                self.peers
                    .announce(info_hash, SocketAddr::new(ip, port), seed, now);
            }
            Query::Get {
                target, seq, want, ..
            } => {
                r.token = Some(self.tokens.token_for(ip, now).to_vec());
                if let Some(item) = self.items.get(&target) {
                    match item {
                        StoredItem::Immutable(value) => r.value = Some(value.value.clone()),
                        StoredItem::Mutable(m) => {
                            r.seq = Some(m.seq);
                            if seq.is_none_or(|s| m.seq > s) {
                                r.value = Some(m.value.clone());
                                r.key = Some(m.key);
                                r.signature = Some(m.signature);
                            }
                        }
                    }
                }
                self.nodes_for(&target, &from, want, &mut r);
            }
            Query::Put {
                token,
                value,
                key,
                signature,
                salt,
                seq,
                cas,
                ..
            } => {
                if !self.tokens.check(&token, ip, now) {
                    self.reply_error(from, tid, krpc::ERROR_PROTOCOL, "bad token");
                    return;
                }
                let result = match (key, signature, seq) {
                    (None, None, None) => self.items.put_immutable(&value, None, now),
                    (Some(key), Some(signature), Some(seq)) => self.items.put_mutable(
                        MutableItem {
                            key,
                            salt: salt.unwrap_or_default(),
                            seq,
                            value,
                            signature,
                        },
                        cas,
                        now,
                    ),
                    _ => Err(ItemError::InvalidSignature),
                };
                if let Err(e) = result {
                    let (code, message) = e.krpc_error();
                    self.reply_error(from, tid, code, message);
                    return;
                }
            }
            Query::SampleInfohashes { target, want, .. } => {
                let sample = splitmix64(&mut self.rng);
                r.samples = self.peers.sample_infohashes(MAX_SAMPLES, sample);
                r.interval = Some(300);
                r.num = i64::try_from(self.peers.num_infohashes()).ok();
                self.nodes_for(&target, &from, want, &mut r);
            }
            Query::Other {
                target, info_hash, ..
            } => match target.or(info_hash) {
                Some(t) => self.nodes_for(&t, &from, None, &mut r),
                None => {
                    self.reply_error(from, tid, krpc::ERROR_METHOD_UNKNOWN, "method unknown");
                    return;
                }
            },
        }
        self.stats.queries_answered += 1;
        let mut message = Message {
            tid,
            version: Some(self.config.version.clone()),
            ip: Some(from),
            read_only: false,
            body: Body::Response(r),
        };
        // `fit` leaves the answer encoded in `scratch`.
        self.fit(&mut message, from.is_ipv6());
        self.queue_scratch(from);
    }

    /// Trims an answer to [`MAX_ANSWER`] bytes: contacts of the querier's other address family
    /// first, then of its own, then peers. (Nothing else in an answer can grow that large.)
    /// Leaves the message, as it ends up, encoded in `scratch`.
    fn fit(&mut self, message: &mut Message, v6: bool) {
        fn trim<T>(list: &mut Vec<T>, excess: usize, each: usize) -> bool {
            let n = excess.div_ceil(each).min(list.len());
            list.truncate(list.len().saturating_sub(n));
            n > 0
        }
        loop {
            self.scratch.clear();
            message.encode_into(&mut self.scratch);
            let excess = self.scratch.len().saturating_sub(MAX_ANSWER);
            let Body::Response(r) = &mut message.body else {
                return;
            };
            if excess == 0 {
                return;
            }
            let (peer, first, first_len, second, second_len) = if v6 {
                (21, &mut r.nodes, 26, &mut r.nodes6, 38)
            } else {
                (8, &mut r.nodes6, 38, &mut r.nodes, 26)
            };
            if !(trim(first, excess, first_len)
                || trim(second, excess, second_len)
                || trim(&mut r.values, excess, peer))
            {
                return;
            }
        }
    }

    fn reply_error(&mut self, to: SocketAddr, tid: Vec<u8>, code: i64, message: &str) {
        let m = Message::error(tid, code, message);
        self.queue(to, &m);
    }

    // ------------------------------------------------------------------------------------
    // Our queries' outcomes

    fn on_response(&mut self, now: Instant, pending: Pending, from: Contact, r: Response) {
        match pending.purpose {
            Purpose::Ping => {}
            Purpose::Bootstrap => {
                // Start (or feed) the lookup of our own id with what the bootstrap node knew.
                let nodes: Vec<Contact> = r.nodes.iter().chain(&r.nodes6).copied().collect();
                match self.self_lookup.filter(|id| self.lookups.contains_key(id)) {
                    Some(id) => {
                        if let Some(a) = self.lookups.get_mut(&id) {
                            a.lookup.on_response(&from, &nodes, now);
                        }
                        self.drive(now, id);
                    }
                    None => {
                        let own = self.own;
                        let mut seeds = nodes;
                        seeds.push(from);
                        self.self_lookup = self.start_seeded(now, own, Kind::FindNode, seeds);
                    }
                }
            }
            Purpose::Lookup(id) => {
                let Some(active) = self.lookups.get_mut(&id) else {
                    return;
                };
                let nodes: Vec<Contact> = if from.addr.is_ipv4() {
                    r.nodes.clone()
                } else {
                    r.nodes6.clone()
                };
                active.lookup.on_response(&from, &nodes, now);
                if let Some(token) = r.token.clone() {
                    if active.tokens.len() < 256 {
                        active.tokens.insert(from.id, token);
                    }
                }
                let target = active.lookup.target();
                match &active.kind {
                    Kind::GetPeers { info_hash, .. } => {
                        let info_hash = *info_hash;
                        let mut new = Vec::new();
                        for peer in r.values {
                            if active.peers.len() < MAX_LOOKUP_PEERS
                                && active.seen_peers.insert(peer)
                            {
                                active.peers.push(peer);
                                new.push(peer);
                            }
                        }
                        if !new.is_empty() {
                            self.events.push_back(Event::PeersFound {
                                lookup: id,
                                info_hash,
                                peers: new,
                            });
                        }
                    }
                    Kind::Get { mutable } => {
                        if let Some(value) = r.value {
                            let found = match mutable {
                                None => (immutable_target(&value) == target).then_some(FoundItem {
                                    value,
                                    mutable: None,
                                }),
                                Some((key, salt)) => match (r.key, r.signature, r.seq) {
                                    (Some(k), Some(signature), Some(seq)) if k == *key => {
                                        let item = MutableItem {
                                            key: k,
                                            salt: salt.clone(),
                                            seq,
                                            value: value.clone(),
                                            signature,
                                        };
                                        item.verify().is_ok().then_some(FoundItem {
                                            value,
                                            mutable: Some(item),
                                        })
                                    }
                                    _ => None,
                                },
                            };
                            if let Some(found) = found {
                                let newer = match (&active.item, &found.mutable) {
                                    (None, _) => true,
                                    (Some(old), Some(m)) => {
                                        old.mutable.as_ref().is_some_and(|o| m.seq > o.seq)
                                    }
                                    (Some(_), None) => false,
                                };
                                if newer {
                                    active.item = Some(found);
                                }
                            }
                        }
                    }
                    Kind::FindNode | Kind::Put { .. } => {}
                }
                self.drive(now, id);
            }
            Purpose::Store(id) => {
                if let Some(active) = self.lookups.get_mut(&id) {
                    active.stored += 1;
                }
                self.store_answered(id);
            }
        }
    }

    fn fail(&mut self, now: Instant, pending: Pending) {
        match pending.purpose {
            Purpose::Ping | Purpose::Bootstrap => {}
            Purpose::Lookup(id) => {
                if let Some(active) = self.lookups.get_mut(&id) {
                    if let Some(node) = pending.id {
                        active.lookup.on_failure(
                            &Contact {
                                id: node,
                                addr: pending.to,
                            },
                            now,
                        );
                    }
                }
                self.drive(now, id);
            }
            Purpose::Store(id) => self.store_answered(id),
        }
    }

    fn store_answered(&mut self, id: LookupId) {
        let Some(active) = self.lookups.get_mut(&id) else {
            return;
        };
        if let Some(left) = active.storing.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.finish(id);
            }
        }
    }

    /// Sends what a lookup wants sent now; moves it to its store phase or finishes it.
    fn drive(&mut self, now: Instant, id: LookupId) {
        let Some(active) = self.lookups.get_mut(&id) else {
            return;
        };
        if active.storing.is_some() {
            return;
        }
        if !active.lookup.is_done() {
            let to_query = active.lookup.next_queries(now);
            let kind = active.kind.clone();
            let target = active.lookup.target();
            let mut unsent = Vec::new();
            for contact in to_query {
                let sent = self.send_query(
                    now,
                    contact.addr,
                    Some(contact.id),
                    Purpose::Lookup(id),
                    |own| match &kind {
                        Kind::FindNode => Query::FindNode {
                            id: own,
                            target,
                            want: None,
                        },
                        Kind::GetPeers { info_hash, .. } => Query::GetPeers {
                            id: own,
                            info_hash: *info_hash,
                            want: None,
                            noseed: false,
                            scrape: false,
                        },
                        Kind::Get { .. } | Kind::Put { .. } => Query::Get {
                            id: own,
                            target,
                            seq: None,
                            want: None,
                        },
                    },
                );
                if !sent {
                    unsent.push(contact);
                }
            }
            if let Some(active) = self.lookups.get_mut(&id) {
                for contact in unsent {
                    active.lookup.on_failure(&contact, now);
                }
            }
            let done = self.lookups.get(&id).is_some_and(|a| a.lookup.is_done());
            if !done {
                return;
            }
        }
        self.store_phase(now, id);
    }

    fn store_phase(&mut self, now: Instant, id: LookupId) {
        let Some(active) = self.lookups.get_mut(&id) else {
            return;
        };
        let closest = active.lookup.closest_responded();
        let kind = active.kind.clone();
        let targets: Vec<(Contact, Vec<u8>)> = closest
            .into_iter()
            .filter_map(|c| active.tokens.get(&c.id).map(|t| (c, t.clone())))
            .collect();
        let mut sent = 0;
        for (contact, token) in targets {
            let Some(query) = store_query(&kind, self.own, token) else {
                break;
            };
            if self.send_query(
                now,
                contact.addr,
                Some(contact.id),
                Purpose::Store(id),
                |_| query,
            ) {
                sent += 1;
            }
        }
        if sent == 0 {
            self.finish(id);
        } else if let Some(active) = self.lookups.get_mut(&id) {
            active.storing = Some(sent);
        }
    }

    fn finish(&mut self, id: LookupId) {
        let Some(active) = self.lookups.remove(&id) else {
            return;
        };
        if self.self_lookup == Some(id) {
            self.self_lookup = None;
            self.refresh_after_bootstrap = true;
        }
        self.events.push_back(Event::LookupDone {
            lookup: id,
            target: active.lookup.target(),
            stats: active.lookup.stats(),
            closest: active.lookup.closest_responded(),
            peers: active.peers,
            item: active.item.map(Box::new),
            stored: active.stored,
        });
    }

    // ------------------------------------------------------------------------------------
    // Time

    /// Advances the node's clock: expires queries, drives lookups, keeps the tables fresh.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut expired: Vec<u16> = Vec::new();
        while let Some(&(deadline, tid)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            expired.push(tid);
        }
        expired.sort_unstable();
        for tid in expired {
            if let Some(p) = self.remove_pending(tid) {
                self.stats.timeouts += 1;
                if let Some(id) = p.id {
                    self.table_for(&p.to).failed(&id, p.to, now);
                }
                self.fail(now, p);
            }
        }
        if std::mem::take(&mut self.refresh_after_bootstrap) {
            self.refresh_buckets(now);
        }
        let mut ids: Vec<LookupId> = self.lookups.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(a) = self.lookups.get_mut(&id) {
                a.lookup.handle_timeout(now);
            }
            self.drive(now, id);
        }
        self.tokens.rotate(now);
        if now >= self.next_maintenance {
            self.next_maintenance = now + MAINTENANCE;
            self.peers.expire(now);
            self.items.expire(now);
            let known = self.table4.len() + self.table6.len();
            if known < self.config.lookup.k && self.self_lookup.is_none() {
                let addrs = self.bootstrap_addrs.clone();
                self.send_bootstrap(now, &addrs);
            }
            for v6 in [false, true] {
                let table = if v6 {
                    &mut self.table6
                } else {
                    &mut self.table4
                };
                let ping = table.needs_ping(now);
                let refresh = table.buckets_to_refresh(now);
                if let Some(c) = ping {
                    self.send_query(now, c.addr, Some(c.id), Purpose::Ping, |id| Query::Ping {
                        id,
                    });
                }
                for target in refresh.into_iter().take(2) {
                    self.find_node(now, target);
                }
            }
        }
    }

    /// Looks up a random id in the range of every bucket of the IPv4 table.
    fn refresh_buckets(&mut self, now: Instant) {
        for target in self.table4.refresh_targets() {
            if self.find_node(now, target).is_none() {
                break;
            }
        }
    }

    // ------------------------------------------------------------------------------------
    // Persistence

    /// Our id and the nodes of both tables, to bootstrap from after a restart.
    pub fn save(&self) -> Vec<u8> {
        let mut nodes = Vec::new();
        let mut nodes6 = Vec::new();
        for c in self.table4.contacts() {
            crate::compact::put_node(&mut nodes, &c);
        }
        for c in self.table6.contacts() {
            crate::compact::put_node(&mut nodes6, &c);
        }
        let mut out = Vec::new();
        out.extend_from_slice(b"d2:id20:");
        out.extend_from_slice(&self.own.0);
        tessera_bencode::put_bytes(&mut out, b"nodes");
        tessera_bencode::put_bytes(&mut out, &nodes);
        tessera_bencode::put_bytes(&mut out, b"nodes6");
        tessera_bencode::put_bytes(&mut out, &nodes6);
        out.push(b'e');
        out
    }

    /// Reads [`Node::save`]'s output: our id and the saved nodes.
    ///
    /// # Errors
    /// `None` if the bytes are not a saved state.
    pub fn load(bytes: &[u8]) -> Option<(Id, Vec<Contact>)> {
        // What `save` writes: one flat dictionary of three strings, and no more nodes than
        // two full routing tables hold (the file may have been tampered with).
        const MAX_SAVED: usize = 2 * 160 * 8;
        let doc = tessera_bencode::DecodeOptions::strict()
            .with_max_depth(4)
            .with_max_tokens(64)
            .decode(bytes)
            .ok()?;
        let dict = doc.root().as_dict()?;
        let id = Id::from_slice(dict.get(b"id")?.as_bytes()?)?;
        let mut contacts = crate::compact::nodes_v4(dict.get(b"nodes")?.as_bytes()?)?;
        contacts.extend(crate::compact::nodes_v6(dict.get(b"nodes6")?.as_bytes()?)?);
        contacts.truncate(MAX_SAVED);
        Some((id, contacts))
    }
}

/// What a lookup of `kind` stores on each of the closest nodes once it has their `token`:
/// an announce or a put; `None` for lookups that only read.
fn store_query(kind: &Kind, own: Id, token: Vec<u8>) -> Option<Query> {
    match kind {
        Kind::GetPeers {
            info_hash,
            announce: Some((port, seed)),
        } => Some(Query::AnnouncePeer {
            id: own,
            info_hash: *info_hash,
            port: port.unwrap_or(0),
            implied_port: port.is_none(),
            token,
            seed: *seed,
        }),
        Kind::Put {
            immutable: Some(value),
            ..
        } => Some(Query::Put {
            id: own,
            token,
            value: value.clone(),
            key: None,
            signature: None,
            salt: None,
            seq: None,
            cas: None,
        }),
        Kind::Put {
            mutable: Some(item),
            ..
        } => Some(Query::Put {
            id: own,
            token,
            value: item.value.clone(),
            key: Some(item.key),
            signature: Some(item.signature),
            salt: (!item.salt.is_empty()).then(|| item.salt.clone()),
            seq: Some(item.seq),
            cas: None,
        }),
        _ => None,
    }
}
