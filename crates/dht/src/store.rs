//! Bounded storage a DHT node keeps for others: announced peers ([`PeerStore`], BEP 5 / 33 /
//! 51) and BEP 44 items ([`ItemStore`]).
//!
//! Both are sans-IO: time comes in as `now` arguments and randomness as caller-provided seeds,
//! so the same calls always give the same results.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::bep44::{check_value, immutable_target, ImmutableItem, ItemError, MutableItem};
use crate::bloom::ScrapeBloom;
use crate::id::Id;
use crate::rng::{mix64, splitmix64};

/// Limits of a [`PeerStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStoreConfig {
    /// Most info hashes tracked (default 10,000). A new one past this evicts the info hash
    /// with the fewest peers.
    pub max_infohashes: usize,
    /// Most peers kept per info hash (default 200). A new peer past this replaces the one that
    /// announced longest ago.
    pub max_peers_per_infohash: usize,
    /// Most peers kept over all info hashes (default 100,000). A new peer past this evicts
    /// the stalest peer of the largest swarm.
    pub max_peers_total: usize,
    /// How long an announce lasts without being renewed (default 30 minutes).
    pub peer_ttl: Duration,
}

impl Default for PeerStoreConfig {
    fn default() -> Self {
        PeerStoreConfig {
            max_infohashes: 10_000,
            max_peers_per_infohash: 200,
            max_peers_total: 100_000,
            peer_ttl: Duration::from_secs(30 * 60),
        }
    }
}

/// One announced peer. Peers are unique per IP address within an info hash (BEP 33); a new
/// announce from the same IP updates its port, seed flag and time.
#[derive(Debug, Clone, Copy)]
struct PeerEntry {
    ip: IpAddr,
    port: u16,
    seed: bool,
    last_announce: Instant,
}

impl PeerEntry {
    fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

/// The peers of one info hash, in the order they first announced.
#[derive(Debug, Clone, Default)]
struct Swarm {
    peers: Vec<PeerEntry>,
}

impl Swarm {
    /// Index of the peer that announced longest ago (lowest index on ties).
    fn stalest(&self) -> Option<usize> {
        self.peers
            .iter()
            .enumerate()
            .min_by_key(|(i, p)| (p.last_announce, *i))
            .map(|(i, _)| i)
    }

    /// Gives back memory once the list uses less than half its capacity.
    fn trim(&mut self) {
        if self.peers.len().saturating_mul(2) < self.peers.capacity() {
            self.peers.shrink_to_fit();
        }
    }

    fn newest_announce(&self) -> Option<Instant> {
        self.peers.iter().map(|p| p.last_announce).max()
    }
}

/// Peers announced to us (`announce_peer`), by info hash.
///
/// # Memory
///
/// A peer takes 40 bytes; a swarm's peer list may have up to twice the capacity it uses (plus a
/// minimum of 4 slots), and each info hash costs about 100 bytes of map overhead. The worst case
/// is therefore about `max_infohashes × 260 B + max_peers_total × 80 B`: roughly 2.6 MB +
/// 8 MB ≈ 11 MB with the defaults. Without `max_peers_total` it would be 10,000 × 200 peers,
/// about 80–160 MB, which is why that third limit exists.
#[derive(Debug, Clone, Default)]
pub struct PeerStore {
    config: PeerStoreConfig,
    swarms: BTreeMap<Id, Swarm>,
    total_peers: usize,
}

/// A uniformly random-looking subset of at most `max` items, in random-looking order,
/// determined by `seed`: a partial Fisher-Yates shuffle driven by SplitMix64. O(n + max),
/// with one allocation.
fn sample<T>(items: impl Iterator<Item = T>, max: usize, seed: u64) -> Vec<T> {
    if max == 0 {
        return Vec::new();
    }
    let mut all: Vec<T> = items.collect();
    let n = all.len();
    let mut state = mix64(seed);
    for i in 0..max.min(n.saturating_sub(1)) {
        // n - i <= n fits in u64, and the remainder is below n - i: j stays in i..n. The
        // modulo bias is below (n - i) / 2^64.
        let j = i + (splitmix64(&mut state) % (n - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(max);
    all
}

impl PeerStore {
    /// An empty store with the default limits.
    pub fn new() -> PeerStore {
        PeerStore::default()
    }

    /// An empty store with the given limits.
    pub fn with_config(config: PeerStoreConfig) -> PeerStore {
        PeerStore {
            config,
            ..PeerStore::default()
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &PeerStoreConfig {
        &self.config
    }

    /// Records that `addr` announced `info_hash` (as a seed if `seed`) at `now`.
    ///
    /// An announce from an IP already listed for the info hash updates that entry. Otherwise,
    /// when the store is at a limit, room is made as [`PeerStoreConfig`] describes; with a
    /// limit of zero nothing is stored.
    pub fn announce(&mut self, info_hash: Id, addr: SocketAddr, seed: bool, now: Instant) {
        // IPv4-mapped IPv6 addresses (from a dual-stack socket) are stored as IPv4.
        let ip = addr.ip().to_canonical();
        let entry = PeerEntry {
            ip,
            port: addr.port(),
            seed,
            last_announce: now,
        };
        if let Some(swarm) = self.swarms.get_mut(&info_hash) {
            if let Some(existing) = swarm.peers.iter_mut().find(|p| p.ip == ip) {
                *existing = entry;
                return;
            }
        }
        if self.config.max_peers_per_infohash == 0 || self.config.max_peers_total == 0 {
            return;
        }
        if !self.swarms.contains_key(&info_hash) {
            if self.config.max_infohashes == 0 {
                return;
            }
            while self.swarms.len() >= self.config.max_infohashes {
                if !self.evict_smallest_swarm() {
                    break;
                }
            }
        }
        // Replace within the swarm when it is full.
        if let Some(swarm) = self.swarms.get_mut(&info_hash) {
            if swarm.peers.len() >= self.config.max_peers_per_infohash {
                if let Some(slot) = swarm.stalest().and_then(|i| swarm.peers.get_mut(i)) {
                    *slot = entry;
                }
                return;
            }
        }
        while self.total_peers >= self.config.max_peers_total {
            if !self.evict_from_largest_swarm() {
                break;
            }
        }
        self.swarms.entry(info_hash).or_default().peers.push(entry);
        self.total_peers = self.total_peers.saturating_add(1);
    }

    /// Drops the swarm with the fewest peers (ties: the one announced to longest ago, then the
    /// lowest info hash). Returns whether one was dropped.
    fn evict_smallest_swarm(&mut self) -> bool {
        let victim = self
            .swarms
            .iter()
            .min_by_key(|(id, s)| (s.peers.len(), s.newest_announce(), **id))
            .map(|(id, _)| *id);
        match victim.and_then(|id| self.swarms.remove(&id)) {
            Some(swarm) => {
                self.total_peers = self.total_peers.saturating_sub(swarm.peers.len());
                true
            }
            None => false,
        }
    }

    /// Drops the stalest peer of the largest swarm (ties: the lowest info hash). Returns
    /// whether one was dropped.
    fn evict_from_largest_swarm(&mut self) -> bool {
        let victim = self
            .swarms
            .iter()
            .max_by_key(|(id, s)| (s.peers.len(), Reverse(**id)))
            .map(|(id, _)| *id);
        let Some(id) = victim else { return false };
        let Some(swarm) = self.swarms.get_mut(&id) else {
            return false;
        };
        let Some(index) = swarm.stalest() else {
            return false;
        };
        swarm.peers.remove(index);
        swarm.trim();
        self.total_peers = self.total_peers.saturating_sub(1);
        if swarm.peers.is_empty() {
            self.swarms.remove(&id);
        }
        true
    }

    /// Forgets announces older than [`PeerStoreConfig::peer_ttl`] at `now`, and info hashes left
    /// without peers.
    pub fn expire(&mut self, now: Instant) {
        let ttl = self.config.peer_ttl;
        let mut total = 0usize;
        self.swarms.retain(|_, swarm| {
            swarm
                .peers
                .retain(|p| now.saturating_duration_since(p.last_announce) < ttl);
            swarm.trim();
            total = total.saturating_add(swarm.peers.len());
            !swarm.peers.is_empty()
        });
        self.total_peers = total;
    }

    /// Up to `max` peers of `info_hash` for a `get_peers` reply: only IPv6 peers if `want_v6`,
    /// only IPv4 peers otherwise, and no seeds if `noseed` (BEP 33). When there are more than
    /// `max`, a pseudo-random subset chosen by `seed_for_sampling` is returned (pass a fresh
    /// seed per reply so that different askers see different peers).
    pub fn get(
        &self,
        info_hash: &Id,
        want_v6: bool,
        max: usize,
        noseed: bool,
        seed_for_sampling: u64,
    ) -> Vec<SocketAddr> {
        let Some(swarm) = self.swarms.get(info_hash) else {
            return Vec::new();
        };
        let candidates = swarm
            .peers
            .iter()
            .filter(|p| p.ip.is_ipv6() == want_v6 && !(noseed && p.seed))
            .map(PeerEntry::addr);
        sample(candidates, max, seed_for_sampling)
    }

    /// BEP 33 scrape filters of `info_hash`: `(BFsd, BFpe)`, the addresses of its seeds and of
    /// its other peers. `None` if no peers are stored for it (then a reply carries neither).
    pub fn scrape(&self, info_hash: &Id) -> Option<(ScrapeBloom, ScrapeBloom)> {
        let swarm = self.swarms.get(info_hash)?;
        let mut seeds = ScrapeBloom::new();
        let mut peers = ScrapeBloom::new();
        for p in &swarm.peers {
            if p.seed {
                seeds.insert(p.ip);
            } else {
                peers.insert(p.ip);
            }
        }
        Some((seeds, peers))
    }

    /// Up to `max` stored info hashes for a BEP 51 `sample_infohashes` reply, a pseudo-random
    /// subset chosen by `seed`.
    pub fn sample_infohashes(&self, max: usize, seed: u64) -> Vec<Id> {
        sample(self.swarms.keys().copied(), max, seed)
    }

    /// Number of info hashes with stored peers (BEP 51's `num`).
    pub fn num_infohashes(&self) -> usize {
        self.swarms.len()
    }

    /// Number of peers stored for `info_hash`.
    pub fn num_peers(&self, info_hash: &Id) -> usize {
        self.swarms.get(info_hash).map_or(0, |s| s.peers.len())
    }

    /// Number of peers stored over all info hashes.
    pub fn total_peers(&self) -> usize {
        self.total_peers
    }
}

/// Limits of an [`ItemStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemStoreConfig {
    /// Most items kept (default 1,000). A new item past this evicts the one stored or
    /// refreshed longest ago.
    pub max_items: usize,
    /// How long an item lasts without being put again (default 2 hours).
    pub item_ttl: Duration,
}

impl Default for ItemStoreConfig {
    fn default() -> Self {
        ItemStoreConfig {
            max_items: 1_000,
            item_ttl: Duration::from_secs(2 * 60 * 60),
        }
    }
}

/// A stored BEP 44 item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredItem {
    /// An immutable item.
    Immutable(ImmutableItem),
    /// A mutable item (with its signature, to hand back in `get` replies).
    Mutable(MutableItem),
}

impl StoredItem {
    /// The raw bencoded value.
    pub fn value(&self) -> &[u8] {
        match self {
            StoredItem::Immutable(item) => &item.value,
            StoredItem::Mutable(item) => &item.value,
        }
    }

    /// The sequence number of a mutable item.
    pub fn seq(&self) -> Option<i64> {
        match self {
            StoredItem::Immutable(_) => None,
            StoredItem::Mutable(item) => Some(item.seq),
        }
    }

    /// The target the item is stored under.
    pub fn target(&self) -> Id {
        match self {
            StoredItem::Immutable(item) => item.target(),
            StoredItem::Mutable(item) => item.target(),
        }
    }
}

#[derive(Debug, Clone)]
struct ItemEntry {
    item: StoredItem,
    stored_at: Instant,
}

/// BEP 44 items put to us, by target.
///
/// # Memory
///
/// An item holds at most 1,000 value bytes, 64 salt bytes, a 32-byte key and a 64-byte
/// signature; with allocation headers and map overhead each entry stays under about 1.4 KB,
/// so the worst case is about `max_items × 1.4 KB` (1.4 MB with the defaults).
#[derive(Debug, Clone, Default)]
pub struct ItemStore {
    config: ItemStoreConfig,
    items: HashMap<Id, ItemEntry>,
}

impl ItemStore {
    /// An empty store with the default limits.
    pub fn new() -> ItemStore {
        ItemStore::default()
    }

    /// An empty store with the given limits.
    pub fn with_config(config: ItemStoreConfig) -> ItemStore {
        ItemStore {
            config,
            items: HashMap::new(),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &ItemStoreConfig {
        &self.config
    }

    /// The item stored under `target`, if any.
    pub fn get(&self, target: &Id) -> Option<&StoredItem> {
        self.items.get(target).map(|e| &e.item)
    }

    /// Number of items stored.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no items are stored.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Stores an immutable item (a `put` without `k`) under SHA-1 of `value`, which it returns.
    /// Putting a stored item again refreshes its expiry.
    ///
    /// # Errors
    /// [`ItemError::ValueTooLarge`] or [`ItemError::InvalidValue`] for a bad value;
    /// [`ItemError::TargetMismatch`] if `expected_target` is given and differs from SHA-1 of
    /// `value`, or if a mutable item occupies that target.
    pub fn put_immutable(
        &mut self,
        value: &[u8],
        expected_target: Option<&Id>,
        now: Instant,
    ) -> Result<Id, ItemError> {
        check_value(value)?;
        let target = immutable_target(value);
        if expected_target.is_some_and(|t| *t != target) {
            return Err(ItemError::TargetMismatch);
        }
        match self.items.get_mut(&target) {
            Some(entry) => match entry.item {
                StoredItem::Immutable(_) => {
                    entry.stored_at = now;
                    Ok(target)
                }
                StoredItem::Mutable(_) => Err(ItemError::TargetMismatch),
            },
            None => {
                let item = StoredItem::Immutable(ImmutableItem {
                    value: value.to_vec(),
                });
                self.insert_new(target, item, now);
                Ok(target)
            }
        }
    }

    /// Stores a mutable item (a `put` with `k`) under SHA-1(key ‖ salt), which it returns.
    ///
    /// The rules, in order: the item must verify ([`MutableItem::verify`]); a different key or
    /// salt must not already occupy the target; if an item is stored, `cas` (when given) must
    /// equal its sequence number, and the new sequence number must not be lower; an equal
    /// sequence number is accepted only with the same value, and then just refreshes the
    /// expiry. Without a stored item `cas` is ignored.
    ///
    /// # Errors
    /// Whatever [`MutableItem::verify`] reports; [`ItemError::TargetMismatch`],
    /// [`ItemError::CasMismatch`], [`ItemError::SeqTooLow`] or [`ItemError::SeqConflict`] as
    /// above.
    pub fn put_mutable(
        &mut self,
        item: MutableItem,
        cas: Option<i64>,
        now: Instant,
    ) -> Result<Id, ItemError> {
        item.verify()?;
        let target = item.target();
        let Some(entry) = self.items.get_mut(&target) else {
            self.insert_new(target, StoredItem::Mutable(item), now);
            return Ok(target);
        };
        let StoredItem::Mutable(stored) = &entry.item else {
            return Err(ItemError::TargetMismatch);
        };
        if stored.key != item.key || stored.salt != item.salt {
            return Err(ItemError::TargetMismatch);
        }
        if let Some(cas) = cas {
            if cas != stored.seq {
                return Err(ItemError::CasMismatch {
                    cas,
                    current: stored.seq,
                });
            }
        }
        if item.seq < stored.seq {
            return Err(ItemError::SeqTooLow {
                seq: item.seq,
                current: stored.seq,
            });
        }
        if item.seq == stored.seq {
            if item.value != stored.value {
                return Err(ItemError::SeqConflict(item.seq));
            }
            entry.stored_at = now;
            return Ok(target);
        }
        *entry = ItemEntry {
            item: StoredItem::Mutable(item),
            stored_at: now,
        };
        Ok(target)
    }

    /// Inserts an item under a target not yet stored, evicting the stalest item when full.
    fn insert_new(&mut self, target: Id, item: StoredItem, now: Instant) {
        if self.config.max_items == 0 {
            return;
        }
        while self.items.len() >= self.config.max_items {
            let victim = self
                .items
                .iter()
                .min_by_key(|(id, e)| (e.stored_at, **id))
                .map(|(id, _)| *id);
            match victim {
                Some(id) => {
                    self.items.remove(&id);
                }
                None => break,
            }
        }
        self.items.insert(
            target,
            ItemEntry {
                item,
                stored_at: now,
            },
        );
    }

    /// Forgets items not put for [`ItemStoreConfig::item_ttl`] at `now`.
    pub fn expire(&mut self, now: Instant) {
        let ttl = self.config.item_ttl;
        self.items
            .retain(|_, e| now.saturating_duration_since(e.stored_at) < ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_entry_size_matches_docs() {
        assert!(std::mem::size_of::<PeerEntry>() <= 40);
    }

    #[test]
    fn sample_is_bounded_deterministic_and_distinct() {
        let a = sample(0..100u32, 10, 7);
        assert_eq!(a.len(), 10);
        assert_eq!(a, sample(0..100u32, 10, 7));
        assert_ne!(a, sample(0..100u32, 10, 8));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 10);
        assert_eq!(sample(0..5u32, 10, 7).len(), 5);
        assert!(sample(0..5u32, 0, 7).is_empty());
    }

    #[test]
    fn sample_picks_every_item_about_equally_often() {
        // 2,000 samples of 10 out of 100: each item is expected 200 times (sd ~13.4).
        let mut counts = [0u32; 100];
        for seed in 0..2_000u64 {
            for i in sample(0..100usize, 10, seed) {
                counts[i] += 1;
            }
        }
        let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*lo > 140 && *hi < 260, "counts from {lo} to {hi}");
        // And the first place is not stuck on the first items.
        let firsts: std::collections::HashSet<usize> = (0..200u64)
            .map(|seed| sample(0..100usize, 10, seed)[0])
            .collect();
        assert!(firsts.len() > 60, "{} distinct first picks", firsts.len());
    }
}
