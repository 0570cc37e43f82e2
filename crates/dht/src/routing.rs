//! The Kademlia routing table (BEP 5) for one address family.
//!
//! # Layout
//!
//! Buckets are indexed by the length of the prefix a node id shares with our own id: bucket
//! `i` holds the nodes whose id agrees with ours on exactly the first `i` bits, and the last
//! bucket holds everything that agrees on at least `num_buckets() - 1` bits (it is the one
//! covering our own id). When the last bucket is full and a confirmed node arrives for it, it
//! splits (up to 160 buckets; see `can_split` in the source for the exact rule), so the nodes
//! closest to us are all kept; every other bucket keeps at most `k` live entries plus a
//! small replacement cache. With `n` random nodes a table ends up with about
//! `log2(n / k) + 2` buckets.
//!
//! # Node states
//!
//! * **good**: answered one of our queries (it is *confirmed*), has not failed since, and was
//!   heard from (a response, or a query once confirmed) within
//!   [`RoutingConfig::questionable_after`];
//! * **questionable**: confirmed but silent for `questionable_after`, or failed to answer at
//!   least once (fewer than [`RoutingConfig::max_failures`] times in a row);
//! * **bad**: failed `max_failures` times in a row. Bad entries are removed at once and their
//!   slot filled from the replacement cache.
//!
//! Following libtorrent, only *confirmed* nodes enter the live buckets: a node that has only
//! queried us ([`Heard::Query`]) might be a spoofed source address, so it goes to the
//! replacement cache, and [`RoutingTable::needs_ping`] asks the node to ping it when its bucket
//! has room for it; once it answers it is promoted.
//!
//! # Memory
//!
//! An entry is 48 bytes (the id, the address packed into 16 + 2 bytes, two second-resolution
//! timestamps, a failure count and flags); a bucket is 56 bytes plus its two vectors, which
//! are allocated with exactly `k` / `replacements` slots the first time they are used. A table
//! filled from 10,000 random nodes takes about 10 KB (see [`RoutingTable::heap_bytes`]).
//!
//! Timestamps are whole seconds since the table was created, so all durations are handled at
//! one-second resolution.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::id::{Contact, Id};
use crate::rng::splitmix64;

/// The Kademlia bucket size of the Mainline DHT.
pub const K: usize = 8;

/// Most buckets a table can have (one per possible shared-prefix length).
const MAX_BUCKETS: usize = 160;

/// Tuning of a [`RoutingTable`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutingConfig {
    /// Live entries per bucket (BEP 5: 8). Values below 1 are treated as 1.
    pub k: usize,
    /// Size of each bucket's replacement cache (0 disables it).
    pub replacements: usize,
    /// A bucket not changed for this long is reported by
    /// [`RoutingTable::buckets_to_refresh`] (BEP 5: 15 minutes).
    pub bucket_refresh: Duration,
    /// A node not heard from for this long becomes questionable (BEP 5: 15 minutes).
    pub questionable_after: Duration,
    /// Consecutive failures after which a node is bad and removed. Values below 1 are
    /// treated as 1.
    pub max_failures: u8,
    /// When set, a BEP 42-verified node may take the place of an unverified one in a full
    /// bucket (the unverified one moves to the replacement cache), and an unverified node
    /// may not split a bucket that is mostly verified.
    pub prefer_secure: bool,
    /// At most one entry (live or replacement) per IP address, libtorrent's
    /// `restrict_routing_ips`. When `false`, loopback, private (RFC 1918 / unique-local) and
    /// link-local addresses may appear several times (with different ports); public addresses
    /// are still limited to one entry.
    pub restrict_ips: bool,
    /// [`RoutingTable::needs_ping`] does not return the same node again until this long after
    /// it last did (unless the node was heard from in between).
    pub ping_interval: Duration,
    /// Seed for the random refresh targets (mixed with the own id).
    pub seed: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            k: K,
            replacements: K,
            bucket_refresh: Duration::from_secs(15 * 60),
            questionable_after: Duration::from_secs(15 * 60),
            max_failures: 3,
            prefer_secure: false,
            restrict_ips: true,
            ping_interval: Duration::from_secs(30),
            seed: 0,
        }
    }
}

/// How a node was heard from, for [`RoutingTable::heard_from`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Heard {
    /// It answered one of our queries (the transaction id matched): the node is confirmed.
    Response,
    /// It sent us a query. That alone does not confirm it (the source address may be spoofed).
    Query,
}

/// Why [`RoutingTable::heard_from`] refused a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The id is our own.
    OwnId,
    /// Port 0, or an unspecified or multicast IP address.
    InvalidAddress,
    /// The id is already in the table with another address (the new claim may be spoofed).
    IdAddressMismatch,
    /// The address (IP and port) is already in the table with another id.
    AddressInUse,
    /// Another entry already uses this IP address ([`RoutingConfig::restrict_ips`]).
    IpInUse,
}

/// What [`RoutingTable::heard_from`] did with a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Insert {
    /// The node is now a live entry (new, promoted from the replacement cache, or replacing
    /// a bad or, with [`RoutingConfig::prefer_secure`], an unverified entry).
    Added,
    /// The node was already in the table (live, or in the replacement cache where it stays);
    /// its state was refreshed.
    Updated,
    /// The node went into its bucket's replacement cache.
    Replacement,
    /// The bucket and its replacement cache are full of better nodes: the node was dropped.
    Full,
    /// The node was refused.
    Rejected(RejectReason),
}

const F_V6: u8 = 1;
const F_CONFIRMED: u8 = 2;
const F_SECURE: u8 = 4;

/// One node, packed: 48 bytes, no heap.
#[derive(Clone, Copy, Debug)]
struct Entry {
    id: Id,
    /// IPv4 in the first four bytes, or IPv6.
    ip: [u8; 16],
    /// Seconds since the table's epoch.
    last_seen: u32,
    /// Seconds since the epoch plus one when `needs_ping` last returned it; 0 = never.
    pinged: u32,
    port: u16,
    failures: u8,
    flags: u8,
}

impl Entry {
    fn new(contact: &Contact, confirmed: bool, secure: bool, now: u32) -> Entry {
        let (ip, v6) = pack_ip(contact.addr.ip());
        let mut flags = 0;
        if v6 {
            flags |= F_V6;
        }
        if confirmed {
            flags |= F_CONFIRMED;
        }
        if secure {
            flags |= F_SECURE;
        }
        Entry {
            id: contact.id,
            ip,
            last_seen: now,
            pinged: 0,
            port: contact.addr.port(),
            failures: 0,
            flags,
        }
    }

    fn confirmed(&self) -> bool {
        self.flags & F_CONFIRMED != 0
    }

    fn secure(&self) -> bool {
        self.flags & F_SECURE != 0
    }

    fn same_ip(&self, other: &Entry) -> bool {
        self.ip == other.ip && (self.flags & F_V6) == (other.flags & F_V6)
    }

    fn same_addr(&self, other: &Entry) -> bool {
        self.port == other.port && self.same_ip(other)
    }

    fn ip_addr(&self) -> IpAddr {
        if self.flags & F_V6 != 0 {
            IpAddr::V6(Ipv6Addr::from(self.ip))
        } else {
            let [a, b, c, d, ..] = self.ip;
            IpAddr::V4(Ipv4Addr::new(a, b, c, d))
        }
    }

    fn contact(&self) -> Contact {
        Contact {
            id: self.id,
            addr: SocketAddr::new(self.ip_addr(), self.port),
        }
    }

    /// Absorbs a new sighting of the same node.
    fn refresh(&mut self, how: Heard, secure: bool, now: u32) {
        self.last_seen = now;
        if secure {
            self.flags |= F_SECURE;
        }
        if how == Heard::Response {
            self.flags |= F_CONFIRMED;
            self.failures = 0;
            self.pinged = 0;
        }
    }
}

fn pack_ip(ip: IpAddr) -> ([u8; 16], bool) {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            ([a, b, c, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], false)
        }
        IpAddr::V6(v6) => (v6.octets(), true),
    }
}

/// Loopback, private / unique-local and link-local addresses (exempt from the one-entry-per-IP
/// rule when [`RoutingConfig::restrict_ips`] is off).
pub(crate) fn is_local_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_local_ip(IpAddr::V4(v4));
            }
            let [first, ..] = v6.segments();
            v6.is_loopback() || first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80
        }
    }
}

/// Whether an address can be used at all.
pub(crate) fn is_valid_addr(addr: &SocketAddr) -> bool {
    addr.port() != 0 && !addr.ip().is_unspecified() && !addr.ip().is_multicast()
}

/// One bucket: live entries, replacement cache, and when it last changed.
#[derive(Debug)]
struct Bucket {
    live: Vec<Entry>,
    repl: Vec<Entry>,
    last_changed: u32,
}

impl Bucket {
    fn new(last_changed: u32) -> Bucket {
        Bucket {
            live: Vec::new(),
            repl: Vec::new(),
            last_changed,
        }
    }
}

/// The routing table of one address family (the node keeps one for IPv4 and one for IPv6,
/// BEP 32). Pure logic: the caller supplies the time to every call that needs it.
#[derive(Debug)]
pub struct RoutingTable {
    own: Id,
    config: RoutingConfig,
    epoch: Instant,
    /// Latest time seen by any `&mut self` call, in seconds since `epoch` (used by `closest`,
    /// which takes no time argument, to tell good from questionable nodes).
    clock: u32,
    rng: u64,
    buckets: Vec<Bucket>,
}

impl RoutingTable {
    /// An empty table (one bucket) for a node with id `own`.
    pub fn new(own: Id, mut config: RoutingConfig, now: Instant) -> Self {
        config.k = config.k.max(1);
        config.max_failures = config.max_failures.max(1);
        let mut rng = config.seed ^ 0x6a09_e667_f3bc_c908;
        for chunk in own.0.chunks(8) {
            let mut word = [0u8; 8];
            for (w, b) in word.iter_mut().zip(chunk) {
                *w = *b;
            }
            let mut state = rng ^ u64::from_le_bytes(word);
            rng = splitmix64(&mut state);
        }
        let mut buckets = Vec::new();
        buckets.reserve_exact(1);
        buckets.push(Bucket::new(0));
        RoutingTable {
            own,
            config,
            epoch: now,
            clock: 0,
            rng,
            buckets,
        }
    }

    /// Our own id.
    pub fn own_id(&self) -> Id {
        self.own
    }

    /// The configuration in use.
    pub fn config(&self) -> &RoutingConfig {
        &self.config
    }

    fn stamp(&mut self, now: Instant) -> u32 {
        let secs = now.saturating_duration_since(self.epoch).as_secs();
        let secs = u32::try_from(secs).unwrap_or(u32::MAX);
        self.clock = self.clock.max(secs);
        secs
    }

    /// Index of the bucket that covers `id`.
    pub fn bucket_of(&self, id: &Id) -> usize {
        self.own
            .common_prefix_len(id)
            .min(self.buckets.len().saturating_sub(1))
    }

    fn is_bad(&self, e: &Entry) -> bool {
        e.failures >= self.config.max_failures
    }

    fn is_good(&self, e: &Entry, now: u32) -> bool {
        e.confirmed()
            && e.failures == 0
            && u64::from(now.saturating_sub(e.last_seen)) < self.config.questionable_after.as_secs()
    }

    /// A node was heard from.
    ///
    /// * [`Heard::Response`] (it answered our query) confirms the node: it resets its failure
    ///   count and makes it good. A new confirmed node takes a free slot in its bucket, splits
    ///   the last bucket, replaces a bad entry (or, with `prefer_secure` and `secure`, an
    ///   unverified one), or else goes to the replacement cache.
    /// * [`Heard::Query`] (it queried us) only refreshes a known node's last-seen time (a
    ///   confirmed node that keeps querying us stays good, BEP 5) and does not reset its
    ///   failures; an unknown node goes to the replacement cache, as in libtorrent, and is
    ///   offered for pinging by [`needs_ping`](Self::needs_ping).
    ///
    /// `secure` says the id was verified against the address (BEP 42).
    ///
    /// Anti-poisoning: a known id seen from another address, or a known address claiming
    /// another id, is rejected (the existing entry is kept as it is); so is a second entry for
    /// one IP address when [`RoutingConfig::restrict_ips`] applies to it.
    pub fn heard_from(
        &mut self,
        contact: Contact,
        how: Heard,
        secure: bool,
        now: Instant,
    ) -> Insert {
        let now_s = self.stamp(now);
        if contact.id == self.own {
            return Insert::Rejected(RejectReason::OwnId);
        }
        if !is_valid_addr(&contact.addr) {
            return Insert::Rejected(RejectReason::InvalidAddress);
        }
        let new = Entry::new(&contact, how == Heard::Response, secure, now_s);
        let bi = self.bucket_of(&contact.id);
        let Some(bucket) = self.buckets.get_mut(bi) else {
            return Insert::Full;
        };
        // Already known: only ever in its own bucket.
        if let Some(e) = bucket.live.iter_mut().find(|e| e.id == contact.id) {
            if !e.same_addr(&new) {
                return Insert::Rejected(RejectReason::IdAddressMismatch);
            }
            e.refresh(how, secure, now_s);
            if how == Heard::Response {
                bucket.last_changed = now_s;
            }
            return Insert::Updated;
        }
        if let Some(pos) = bucket.repl.iter().position(|e| e.id == contact.id) {
            let mut e = bucket.repl.swap_remove(pos);
            if !e.same_addr(&new) {
                bucket.repl.push(e);
                return Insert::Rejected(RejectReason::IdAddressMismatch);
            }
            e.refresh(how, secure, now_s);
            return match self.place(e, now_s) {
                Insert::Added => Insert::Added,
                _ => Insert::Updated,
            };
        }
        let restricted = self.config.restrict_ips || !is_local_ip(contact.addr.ip());
        for e in self
            .buckets
            .iter()
            .flat_map(|b| b.live.iter().chain(b.repl.iter()))
        {
            if e.same_addr(&new) {
                return Insert::Rejected(RejectReason::AddressInUse);
            }
            if restricted && e.same_ip(&new) {
                return Insert::Rejected(RejectReason::IpInUse);
            }
        }
        self.place(new, now_s)
    }

    /// Puts a node that is in no bucket into the table: a free live slot, a split, an
    /// eviction, or the replacement cache.
    fn place(&mut self, e: Entry, now: u32) -> Insert {
        loop {
            let bi = self.bucket_of(&e.id);
            let can_split = e.confirmed() && self.can_split(bi, &e);
            let victim = if e.confirmed() {
                self.victim(bi, &e, now)
            } else {
                None
            };
            let k = self.config.k;
            let Some(bucket) = self.buckets.get_mut(bi) else {
                return Insert::Full;
            };
            if e.confirmed() {
                if bucket.live.len() < k {
                    if bucket.live.capacity() == 0 {
                        bucket.live.reserve_exact(k);
                    }
                    bucket.live.push(e);
                    bucket.last_changed = now;
                    return Insert::Added;
                }
                if can_split {
                    self.split(now);
                    continue;
                }
                if let Some(slot) = victim.and_then(|v| bucket.live.get_mut(v)) {
                    let old = std::mem::replace(slot, e);
                    bucket.last_changed = now;
                    if old.failures < self.config.max_failures {
                        add_to_repl(bucket, old, &self.config);
                    }
                    return Insert::Added;
                }
            }
            return add_to_repl(bucket, e, &self.config);
        }
    }

    /// Whether the (full) bucket `bi` may split to make room for `e`: it must be the last
    /// bucket (the one covering our id) and the split must not be pointless (at least one of
    /// the bucket's nodes or `e` must share the next bit with us). Hardening against a
    /// cluster of made-up ids right next to ours: a bucket whose two predecessors are both
    /// empty does not split (libtorrent refuses when the one predecessor holds fewer than two
    /// nodes, which also loses honest close nodes now and then; this rule only triggers with
    /// probability about 4^-k for random ids). With `prefer_secure`, an unverified node may
    /// not split a mostly verified bucket.
    fn can_split(&self, bi: usize, e: &Entry) -> bool {
        if bi + 1 != self.buckets.len() || self.buckets.len() >= MAX_BUCKETS {
            return false;
        }
        let Some(bucket) = self.buckets.get(bi) else {
            return false;
        };
        if bucket.live.len() < self.config.k {
            return false;
        }
        let empty = |i: Option<usize>| {
            i.and_then(|i| self.buckets.get(i))
                .is_some_and(|b| b.live.is_empty())
        };
        if empty(bi.checked_sub(1)) && empty(bi.checked_sub(2)) {
            return false;
        }
        let own_side = self.own.bit(bi);
        let near = bucket
            .live
            .iter()
            .chain(std::iter::once(e))
            .filter(|x| x.id.bit(bi) == own_side)
            .count();
        if near == 0 {
            return false;
        }
        if self.config.prefer_secure && !e.secure() {
            let verified = bucket.live.iter().filter(|x| x.secure()).count();
            if verified > 0 && verified * 3 >= bucket.live.len() * 2 {
                return false;
            }
        }
        true
    }

    /// The live entry of full bucket `bi` that confirmed newcomer `e` may replace: a bad one,
    /// or with `prefer_secure` and a verified newcomer, the worst unverified one.
    fn victim(&self, bi: usize, e: &Entry, now: u32) -> Option<usize> {
        let bucket = self.buckets.get(bi)?;
        let bad = bucket
            .live
            .iter()
            .enumerate()
            .filter(|(_, x)| self.is_bad(x))
            .max_by_key(|(i, x)| (x.failures, std::cmp::Reverse(*i)))
            .map(|(i, _)| i);
        if bad.is_some() {
            return bad;
        }
        if self.config.prefer_secure && e.secure() {
            return bucket
                .live
                .iter()
                .enumerate()
                .filter(|(_, x)| !x.secure())
                .min_by_key(|(i, x)| (self.is_good(x, now), u8::MAX - x.failures, x.last_seen, *i))
                .map(|(i, _)| i);
        }
        None
    }

    /// Splits the last bucket: entries sharing one more bit with our id move to a new last
    /// bucket; both buckets then refill from their replacement caches.
    fn split(&mut self, now: u32) {
        let bi = self.buckets.len().saturating_sub(1);
        let own_side = self.own.bit(bi);
        let k = self.config.k;
        let replacements = self.config.replacements;
        let Some(old) = self.buckets.get_mut(bi) else {
            return;
        };
        let mut new = Bucket::new(old.last_changed);
        old.live.retain(|x| {
            if x.id.bit(bi) == own_side {
                if new.live.capacity() == 0 {
                    new.live.reserve_exact(k);
                }
                new.live.push(*x);
                false
            } else {
                true
            }
        });
        old.repl.retain(|x| {
            if x.id.bit(bi) == own_side {
                if new.repl.capacity() == 0 {
                    new.repl.reserve_exact(replacements);
                }
                new.repl.push(*x);
                false
            } else {
                true
            }
        });
        promote(old, &self.config, now);
        promote(&mut new, &self.config, now);
        self.buckets.reserve_exact(1);
        self.buckets.push(new);
    }

    /// A query to the node timed out (or it answered with an error): its failure count goes
    /// up; once it reaches [`RoutingConfig::max_failures`] the node is removed and the best
    /// confirmed replacement takes its place. A node in the replacement cache that was never
    /// confirmed is dropped at its first failure. Nothing happens if `id` is not in the table
    /// at `addr`.
    pub fn failed(&mut self, id: &Id, addr: SocketAddr, now: Instant) {
        let now_s = self.stamp(now);
        let probe = Entry::new(&Contact { id: *id, addr }, false, false, now_s);
        let max = self.config.max_failures;
        let bi = self.bucket_of(id);
        let Some(bucket) = self.buckets.get_mut(bi) else {
            return;
        };
        if let Some(pos) = bucket
            .live
            .iter()
            .position(|e| e.id == *id && e.same_addr(&probe))
        {
            let remove = bucket.live.get_mut(pos).is_some_and(|e| {
                e.failures = e.failures.saturating_add(1);
                e.failures >= max
            });
            if remove {
                bucket.live.remove(pos);
                promote(bucket, &self.config, now_s);
            }
            return;
        }
        if let Some(pos) = bucket
            .repl
            .iter()
            .position(|e| e.id == *id && e.same_addr(&probe))
        {
            let remove = bucket.repl.get_mut(pos).is_some_and(|e| {
                e.failures = e.failures.saturating_add(1);
                e.failures >= max || !e.confirmed()
            });
            if remove {
                bucket.repl.remove(pos);
            }
        }
    }

    /// Up to `n` live nodes closest to `target`: the good ones (closest first), then, if
    /// there are fewer than `n` good ones, the closest questionable ones. Bad nodes and nodes
    /// never confirmed are never returned.
    ///
    /// "Good" is judged at the latest time given to any `&mut self` method. Cost: buckets are
    /// visited from the one covering `target` outwards (their distance ranges to the target
    /// do not overlap, except for the buckets deeper than the target's, which are visited as
    /// one group) and only each visited group is sorted, so it is about
    /// `O(buckets + n log n)` when the table holds enough good nodes.
    pub fn closest(&self, target: &Id, n: usize) -> Vec<Contact> {
        let mut good: Vec<Contact> = Vec::with_capacity(n);
        if n == 0 {
            return good;
        }
        let mut questionable: Vec<Contact> = Vec::new();
        let last = self.buckets.len().saturating_sub(1);
        let t = self.own.common_prefix_len(target).min(last);
        let by_distance =
            |a: &Contact, b: &Contact| target.distance(&a.id).cmp(&target.distance(&b.id));
        // Groups in increasing distance: [t], [t+1..=last], [t-1], [t-2], ..., [0].
        let mut visit = |from: usize, to: usize, good: &mut Vec<Contact>| {
            let start = good.len();
            for bucket in self.buckets.get(from..=to).unwrap_or(&[]) {
                for e in &bucket.live {
                    if self.is_bad(e) || !e.confirmed() {
                        continue;
                    }
                    if self.is_good(e, self.clock) {
                        good.push(e.contact());
                    } else {
                        questionable.push(e.contact());
                    }
                }
            }
            if let Some(group) = good.get_mut(start..) {
                group.sort_unstable_by(by_distance);
            }
            good.len() >= n
        };
        let mut done = visit(t, t, &mut good);
        if !done && t < last {
            done = visit(t + 1, last, &mut good);
        }
        let mut i = t;
        while !done && i > 0 {
            i -= 1;
            done = visit(i, i, &mut good);
        }
        good.truncate(n);
        if good.len() < n {
            questionable.sort_unstable_by(by_distance);
            let missing = n - good.len();
            good.extend(questionable.into_iter().take(missing));
        }
        good
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.live.len()).sum()
    }

    /// Whether there is no live entry.
    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(|b| b.live.is_empty())
    }

    /// Number of entries in the replacement caches.
    pub fn num_replacements(&self) -> usize {
        self.buckets.iter().map(|b| b.repl.len()).sum()
    }

    /// Number of buckets (1 to 160).
    pub fn num_buckets(&self) -> usize {
        self.buckets.len()
    }

    /// A node the caller should ping now, at most one per call, or `None`. In order of
    /// preference:
    ///
    /// 1. a never-pinged, unconfirmed node of a replacement cache whose bucket could take it
    ///    if it answered (room, the splittable last bucket, or a non-good live entry) — the
    ///    most recently heard first;
    /// 2. a questionable live node — the least recently seen first;
    /// 3. an unconfirmed replacement as in 1 that was pinged before.
    ///
    /// A node returned is not returned again for [`RoutingConfig::ping_interval`] unless it
    /// is heard from. Its answer should be reported with [`heard_from`](Self::heard_from)
    /// ([`Heard::Response`]), its silence with [`failed`](Self::failed).
    pub fn needs_ping(&mut self, now: Instant) -> Option<Contact> {
        let now_s = self.stamp(now);
        let interval = self.config.ping_interval.as_secs();
        let due =
            |e: &Entry| e.pinged == 0 || u64::from(now_s.saturating_sub(e.pinged - 1)) >= interval;
        let last = self.buckets.len().saturating_sub(1);
        // (class, key, bucket, is_live, position): the smallest wins.
        let mut best: Option<(u8, u32, usize, bool, usize)> = None;
        let mut consider = |cand: (u8, u32, usize, bool, usize)| {
            if best.is_none_or(|b| (cand.0, cand.1) < (b.0, b.1)) {
                best = Some(cand);
            }
        };
        for (bi, b) in self.buckets.iter().enumerate() {
            let mut has_room = b.live.len() < self.config.k || bi == last;
            for (pos, e) in b.live.iter().enumerate() {
                if !self.is_good(e, now_s) {
                    has_room = true;
                    if due(e) {
                        consider((1, e.last_seen, bi, true, pos));
                    }
                }
            }
            if has_room {
                for (pos, e) in b.repl.iter().enumerate() {
                    if !e.confirmed() && due(e) {
                        let class = if e.pinged == 0 { 0 } else { 2 };
                        consider((class, u32::MAX - e.last_seen, bi, false, pos));
                    }
                }
            }
        }
        let (_, _, bi, live, pos) = best?;
        let bucket = self.buckets.get_mut(bi)?;
        let e = if live {
            bucket.live.get_mut(pos)?
        } else {
            bucket.repl.get_mut(pos)?
        };
        e.pinged = now_s.saturating_add(1);
        Some(e.contact())
    }

    /// Random target ids, one in the range of each bucket that has not changed (a node
    /// added, replaced, or answering a query) for [`RoutingConfig::bucket_refresh`]; the
    /// caller runs a `find_node` lookup for each. A reported bucket counts as changed now, so
    /// it is reported at most once per refresh period. The randomness is deterministic (from
    /// [`RoutingConfig::seed`] and the own id).
    pub fn buckets_to_refresh(&mut self, now: Instant) -> Vec<Id> {
        let now_s = self.stamp(now);
        let period = self.config.bucket_refresh.as_secs();
        let mut out = Vec::new();
        for bi in 0..self.buckets.len() {
            let stale = self
                .buckets
                .get(bi)
                .is_some_and(|b| u64::from(now_s.saturating_sub(b.last_changed)) >= period);
            if stale {
                out.push(self.random_id_in(bi));
                if let Some(b) = self.buckets.get_mut(bi) {
                    b.last_changed = now_s;
                }
            }
        }
        out
    }

    /// One random target in the range of every bucket, whether stale or not: what a node
    /// looks up once after joining, so its table learns the whole id space.
    pub fn refresh_targets(&mut self) -> Vec<Id> {
        (0..self.buckets.len())
            .map(|bi| self.random_id_in(bi))
            .collect()
    }

    /// A random id that falls into bucket `bi`.
    fn random_id_in(&mut self, bi: usize) -> Id {
        let mut bytes = [0u8; 20];
        for chunk in bytes.chunks_mut(8) {
            let word = splitmix64(&mut self.rng).to_le_bytes();
            for (b, w) in chunk.iter_mut().zip(word) {
                *b = w;
            }
        }
        let last = bi + 1 == self.buckets.len();
        // Copy our first `bi` bits; outside the last bucket, bit `bi` is the opposite of ours.
        for bit in 0..bi.min(160) {
            set_bit(&mut bytes, bit, self.own.bit(bit));
        }
        if !last {
            set_bit(&mut bytes, bi, !self.own.bit(bi));
        }
        Id(bytes)
    }

    /// The live entries (for persistence: the node can feed them back through
    /// [`heard_from`](Self::heard_from) after a restart).
    pub fn contacts(&self) -> impl Iterator<Item = Contact> + '_ {
        self.buckets
            .iter()
            .flat_map(|b| b.live.iter().map(Entry::contact))
    }

    /// The entries of the replacement caches.
    pub fn replacement_contacts(&self) -> impl Iterator<Item = Contact> + '_ {
        self.buckets
            .iter()
            .flat_map(|b| b.repl.iter().map(Entry::contact))
    }

    /// Whether `id` is a live entry.
    pub fn contains(&self, id: &Id) -> bool {
        self.buckets
            .get(self.bucket_of(id))
            .is_some_and(|b| b.live.iter().any(|e| e.id == *id))
    }

    /// Approximate heap memory of the table in bytes (bucket array and entry vectors, by
    /// capacity).
    pub fn heap_bytes(&self) -> usize {
        let entries: usize = self
            .buckets
            .iter()
            .map(|b| b.live.capacity() + b.repl.capacity())
            .sum();
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
            + entries * std::mem::size_of::<Entry>()
    }
}

/// Adds `e` to the bucket's replacement cache. When full, evicts (in order of preference)
/// the entry with the most failures, the oldest unconfirmed one, or — for a confirmed
/// newcomer — the least recently seen one; otherwise the newcomer is dropped.
fn add_to_repl(bucket: &mut Bucket, e: Entry, config: &RoutingConfig) -> Insert {
    if config.replacements == 0 {
        return Insert::Full;
    }
    if bucket.repl.len() < config.replacements {
        if bucket.repl.capacity() == 0 {
            bucket.repl.reserve_exact(config.replacements);
        }
        bucket.repl.push(e);
        return Insert::Replacement;
    }
    let failing = bucket
        .repl
        .iter()
        .enumerate()
        .filter(|(_, x)| x.failures > 0)
        .max_by_key(|(i, x)| (x.failures, std::cmp::Reverse(*i)))
        .map(|(i, _)| i);
    let unconfirmed = || {
        bucket
            .repl
            .iter()
            .enumerate()
            .filter(|(_, x)| !x.confirmed())
            .min_by_key(|(i, x)| (x.last_seen, *i))
            .map(|(i, _)| i)
    };
    let oldest = || {
        bucket
            .repl
            .iter()
            .enumerate()
            .min_by_key(|(i, x)| (x.last_seen, *i))
            .map(|(i, _)| i)
    };
    let slot = failing
        .or_else(unconfirmed)
        .or_else(|| if e.confirmed() { oldest() } else { None });
    match slot.and_then(|i| bucket.repl.get_mut(i)) {
        Some(slot) => {
            *slot = e;
            Insert::Replacement
        }
        None => Insert::Full,
    }
}

/// Fills free live slots from the replacement cache with its best confirmed entries
/// (verified first if `prefer_secure`, then fewest failures, then most recently seen).
fn promote(bucket: &mut Bucket, config: &RoutingConfig, now: u32) {
    while bucket.live.len() < config.k {
        let best = bucket
            .repl
            .iter()
            .enumerate()
            .filter(|(_, x)| x.confirmed() && x.failures < config.max_failures)
            .max_by_key(|(i, x)| {
                (
                    config.prefer_secure && x.secure(),
                    u8::MAX - x.failures,
                    x.last_seen,
                    std::cmp::Reverse(*i),
                )
            })
            .map(|(i, _)| i);
        let Some(i) = best else {
            return;
        };
        let e = bucket.repl.swap_remove(i);
        if bucket.live.capacity() == 0 {
            bucket.live.reserve_exact(config.k);
        }
        bucket.live.push(e);
        bucket.last_changed = now;
    }
}

fn set_bit(bytes: &mut [u8; 20], index: usize, value: bool) {
    if let Some(b) = bytes.get_mut(index / 8) {
        let mask = 0x80u8 >> (index % 8);
        if value {
            *b |= mask;
        } else {
            *b &= !mask;
        }
    }
}
