//! The peer and item stores: limits, expiry, sampling, scrape filters and BEP 44 put rules,
//! driven by a fake clock (`Instant` + `Duration`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tessera_dht::bep44::{immutable_target, ItemError, MutableItem};
use tessera_dht::store::{ItemStore, ItemStoreConfig, PeerStore, PeerStoreConfig, StoredItem};
use tessera_dht::Id;

fn ih(n: u8) -> Id {
    Id([n; 20])
}

fn v4(a: u8, b: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, a, b)), port)
}

fn v6(n: u16, port: u16) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)),
        port,
    )
}

fn mins(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

// ---------------------------------------------------------------------------------------------
// PeerStore

#[test]
fn announce_get_and_family_filter() {
    let t0 = Instant::now();
    let mut store = PeerStore::new();
    store.announce(ih(1), v4(0, 1, 6881), false, t0);
    store.announce(ih(1), v4(0, 2, 6882), true, t0);
    store.announce(ih(1), v6(1, 6883), false, t0);
    assert_eq!(store.num_infohashes(), 1);
    assert_eq!(store.num_peers(&ih(1)), 3);
    assert_eq!(store.total_peers(), 3);

    let got: HashSet<_> = store.get(&ih(1), false, 50, false, 0).into_iter().collect();
    assert_eq!(got, HashSet::from([v4(0, 1, 6881), v4(0, 2, 6882)]));
    assert_eq!(store.get(&ih(1), true, 50, false, 0), vec![v6(1, 6883)]);
    // noseed drops the seed.
    assert_eq!(store.get(&ih(1), false, 50, true, 0), vec![v4(0, 1, 6881)]);
    assert!(store.get(&ih(2), false, 50, false, 0).is_empty());
    assert!(store.get(&ih(1), false, 0, false, 0).is_empty());
}

#[test]
fn peers_are_unique_per_ip() {
    let t0 = Instant::now();
    let mut store = PeerStore::new();
    store.announce(ih(1), v4(0, 1, 1000), false, t0);
    store.announce(ih(1), v4(0, 1, 2000), true, t0 + mins(1));
    assert_eq!(store.num_peers(&ih(1)), 1);
    assert_eq!(store.total_peers(), 1);
    assert_eq!(store.get(&ih(1), false, 10, false, 0), vec![v4(0, 1, 2000)]);
    assert!(
        store.get(&ih(1), false, 10, true, 0).is_empty(),
        "now a seed"
    );
    // An IPv4-mapped address is the same IPv4 peer.
    let mapped = SocketAddr::new(
        IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
        3000,
    );
    store.announce(ih(1), mapped, false, t0 + mins(2));
    assert_eq!(store.get(&ih(1), false, 10, false, 0), vec![v4(0, 1, 3000)]);
}

#[test]
fn get_samples_a_bounded_deterministic_subset() {
    let t0 = Instant::now();
    let mut store = PeerStore::new();
    for i in 0..150u8 {
        store.announce(ih(1), v4(1, i, 7000), false, t0);
    }
    let a = store.get(&ih(1), false, 30, false, 99);
    assert_eq!(a.len(), 30);
    assert_eq!(a.iter().collect::<HashSet<_>>().len(), 30, "distinct");
    assert_eq!(a, store.get(&ih(1), false, 30, false, 99), "deterministic");
    let b = store.get(&ih(1), false, 30, false, 100);
    assert_ne!(a, b, "the seed matters");
    // Over many seeds every peer shows up.
    let mut seen = HashSet::new();
    for seed in 0..100 {
        seen.extend(store.get(&ih(1), false, 30, false, seed));
    }
    assert_eq!(seen.len(), 150);
}

#[test]
fn per_infohash_cap_replaces_the_oldest() {
    let t0 = Instant::now();
    let mut store = PeerStore::with_config(PeerStoreConfig {
        max_peers_per_infohash: 3,
        ..PeerStoreConfig::default()
    });
    store.announce(ih(1), v4(0, 1, 1), false, t0);
    store.announce(ih(1), v4(0, 2, 1), false, t0 + mins(1));
    store.announce(ih(1), v4(0, 3, 1), false, t0 + mins(2));
    // Refresh the first: now the second is the oldest.
    store.announce(ih(1), v4(0, 1, 1), false, t0 + mins(3));
    store.announce(ih(1), v4(0, 4, 1), false, t0 + mins(4));
    assert_eq!(store.num_peers(&ih(1)), 3);
    let got: HashSet<_> = store.get(&ih(1), false, 10, false, 0).into_iter().collect();
    assert_eq!(got, HashSet::from([v4(0, 1, 1), v4(0, 3, 1), v4(0, 4, 1)]));
    assert_eq!(store.total_peers(), 3);
}

#[test]
fn infohash_cap_evicts_the_smallest_swarm() {
    let t0 = Instant::now();
    let mut store = PeerStore::with_config(PeerStoreConfig {
        max_infohashes: 3,
        ..PeerStoreConfig::default()
    });
    store.announce(ih(1), v4(0, 1, 1), false, t0);
    store.announce(ih(1), v4(0, 2, 1), false, t0);
    store.announce(ih(2), v4(0, 1, 1), false, t0);
    store.announce(ih(3), v4(0, 1, 1), false, t0 + mins(1));
    store.announce(ih(3), v4(0, 2, 1), false, t0 + mins(1));
    store.announce(ih(4), v4(0, 9, 1), false, t0 + mins(2));
    assert_eq!(store.num_infohashes(), 3);
    assert_eq!(store.num_peers(&ih(2)), 0, "the one-peer swarm went");
    assert_eq!(store.num_peers(&ih(1)), 2);
    assert_eq!(store.num_peers(&ih(4)), 1);
    assert_eq!(store.total_peers(), 5);
}

#[test]
fn total_cap_bounds_memory() {
    let t0 = Instant::now();
    let mut store = PeerStore::with_config(PeerStoreConfig {
        max_peers_total: 10,
        ..PeerStoreConfig::default()
    });
    for i in 0..8u8 {
        store.announce(
            ih(1),
            v4(0, i, 1),
            false,
            t0 + Duration::from_secs(u64::from(i)),
        );
    }
    for i in 0..8u8 {
        store.announce(ih(2), v4(0, i, 1), false, t0 + mins(1));
    }
    assert_eq!(store.total_peers(), 10);
    // The large swarm lost its stalest peers: 8 + 2 then evictions from whichever was largest.
    assert_eq!(store.num_peers(&ih(1)) + store.num_peers(&ih(2)), 10);
    assert!(store.num_peers(&ih(1)) >= 4 && store.num_peers(&ih(2)) >= 4);
    let first: HashSet<_> = store.get(&ih(1), false, 10, false, 0).into_iter().collect();
    assert!(
        !first.contains(&v4(0, 0, 1)),
        "the stalest of swarm 1 went first"
    );
}

#[test]
fn zero_limits_store_nothing() {
    let t0 = Instant::now();
    for config in [
        PeerStoreConfig {
            max_infohashes: 0,
            ..PeerStoreConfig::default()
        },
        PeerStoreConfig {
            max_peers_per_infohash: 0,
            ..PeerStoreConfig::default()
        },
        PeerStoreConfig {
            max_peers_total: 0,
            ..PeerStoreConfig::default()
        },
    ] {
        let mut store = PeerStore::with_config(config);
        store.announce(ih(1), v4(0, 1, 1), false, t0);
        assert_eq!(store.num_infohashes(), 0);
        assert_eq!(store.total_peers(), 0);
    }
}

#[test]
fn peers_expire_after_30_minutes() {
    let t0 = Instant::now();
    let mut store = PeerStore::new();
    store.announce(ih(1), v4(0, 1, 1), false, t0);
    store.announce(ih(1), v4(0, 2, 1), false, t0 + mins(10));
    store.announce(ih(2), v4(0, 1, 1), true, t0);
    store.expire(t0 + mins(29));
    assert_eq!(store.total_peers(), 3);
    store.expire(t0 + mins(30));
    assert_eq!(store.num_peers(&ih(1)), 1);
    assert_eq!(store.num_infohashes(), 1, "an emptied info hash is dropped");
    assert!(store.scrape(&ih(2)).is_none());
    // Re-announcing renews.
    store.announce(ih(1), v4(0, 2, 1), false, t0 + mins(35));
    store.expire(t0 + mins(60));
    assert_eq!(store.num_peers(&ih(1)), 1);
    store.expire(t0 + mins(65));
    assert_eq!(store.num_infohashes(), 0);
    assert_eq!(store.total_peers(), 0);
}

#[test]
fn scrape_separates_seeds_and_peers() {
    let t0 = Instant::now();
    let mut store = PeerStore::new();
    for i in 0..20u8 {
        store.announce(ih(1), v4(2, i, 1), i < 5, t0);
    }
    let (seeds, peers) = store.scrape(&ih(1)).unwrap();
    assert!((seeds.estimate() - 5.0).abs() < 1.0, "{}", seeds.estimate());
    assert!(
        (peers.estimate() - 15.0).abs() < 2.0,
        "{}",
        peers.estimate()
    );
    assert!(seeds.contains(v4(2, 0, 0).ip()));
    assert!(peers.contains(v4(2, 19, 0).ip()));
    assert!(store.scrape(&ih(9)).is_none());
}

#[test]
fn sample_infohashes_is_bounded_and_deterministic() {
    let t0 = Instant::now();
    let mut store = PeerStore::new();
    for n in 0..100u8 {
        store.announce(ih(n), v4(0, 1, 1), false, t0);
    }
    assert_eq!(store.num_infohashes(), 100);
    let a = store.sample_infohashes(20, 5);
    assert_eq!(a.len(), 20);
    assert_eq!(a.iter().collect::<HashSet<_>>().len(), 20);
    assert_eq!(a, store.sample_infohashes(20, 5));
    assert_ne!(a, store.sample_infohashes(20, 6));
    assert_eq!(store.sample_infohashes(500, 5).len(), 100);
    assert!(store.sample_infohashes(0, 5).is_empty());
}

// ---------------------------------------------------------------------------------------------
// ItemStore

const SEED: [u8; 32] = [7; 32];

fn signed(seq: i64, value: &[u8]) -> MutableItem {
    MutableItem::sign(&SEED, b"salt", seq, value)
}

#[test]
fn immutable_put_and_get() {
    let t0 = Instant::now();
    let mut store = ItemStore::new();
    let target = store.put_immutable(b"12:Hello World!", None, t0).unwrap();
    assert_eq!(target, immutable_target(b"12:Hello World!"));
    assert_eq!(store.get(&target).unwrap().value(), b"12:Hello World!");
    assert_eq!(store.get(&target).unwrap().seq(), None);
    assert_eq!(store.get(&target).unwrap().target(), target);
    // A put that must match a given target.
    assert_eq!(
        store.put_immutable(b"i1e", Some(&target), t0),
        Err(ItemError::TargetMismatch)
    );
    assert_eq!(
        store.put_immutable(b"12:Hello World!", Some(&target), t0),
        Ok(target)
    );
    assert_eq!(
        store.put_immutable(b"not bencode", None, t0),
        Err(ItemError::InvalidValue)
    );
    let mut big = b"997:".to_vec();
    big.resize(1001, b'x');
    assert_eq!(
        store.put_immutable(&big, None, t0),
        Err(ItemError::ValueTooLarge(1001))
    );
    assert_eq!(store.len(), 1);
}

#[test]
fn mutable_put_rules() {
    let t0 = Instant::now();
    let mut store = ItemStore::new();
    let first = signed(5, b"1:a");
    let target = store.put_mutable(first.clone(), Some(99), t0).unwrap();
    assert_eq!(
        target,
        first.target(),
        "cas is ignored without a stored item"
    );
    assert_eq!(
        store.get(&target),
        Some(&StoredItem::Mutable(first.clone()))
    );

    // Lower sequence number: 302.
    let err = store.put_mutable(signed(4, b"1:b"), None, t0).unwrap_err();
    assert_eq!(err, ItemError::SeqTooLow { seq: 4, current: 5 });
    assert_eq!(err.krpc_error().0, 302);
    // Equal sequence number, different value: refused.
    let err = store.put_mutable(signed(5, b"1:b"), None, t0).unwrap_err();
    assert_eq!(err, ItemError::SeqConflict(5));
    // Equal sequence number, same value: accepted (refresh).
    assert_eq!(store.put_mutable(first.clone(), None, t0), Ok(target));
    // CAS mismatch: 301, even when the sequence number would be fine.
    let err = store
        .put_mutable(signed(6, b"1:c"), Some(4), t0)
        .unwrap_err();
    assert_eq!(err, ItemError::CasMismatch { cas: 4, current: 5 });
    assert_eq!(err.krpc_error().0, 301);
    // Matching CAS and higher seq: replaced.
    assert_eq!(
        store.put_mutable(signed(6, b"1:c"), Some(5), t0),
        Ok(target)
    );
    assert_eq!(store.get(&target).unwrap().seq(), Some(6));
    assert_eq!(store.get(&target).unwrap().value(), b"1:c");
    // Bad signature: 206, nothing changes.
    let mut forged = signed(7, b"1:d");
    forged.value = b"1:e".to_vec();
    let err = store.put_mutable(forged, None, t0).unwrap_err();
    assert_eq!(err, ItemError::InvalidSignature);
    assert_eq!(err.krpc_error().0, 206);
    assert_eq!(store.get(&target).unwrap().seq(), Some(6));
    // Same key, other salt: another target.
    let other = MutableItem::sign(&SEED, b"pepper", 1, b"1:x");
    let other_target = store.put_mutable(other, None, t0).unwrap();
    assert_ne!(other_target, target);
    assert_eq!(store.len(), 2);
}

#[test]
fn items_expire_after_two_hours_unless_refreshed() {
    let t0 = Instant::now();
    let mut store = ItemStore::new();
    let imm = store.put_immutable(b"i1e", None, t0).unwrap();
    let item = signed(1, b"i2e");
    let mutable = store.put_mutable(item.clone(), None, t0).unwrap();
    // Refresh the mutable item an hour in with the same seq and value.
    store.put_mutable(item, None, t0 + mins(60)).unwrap();
    store.expire(t0 + mins(119));
    assert_eq!(store.len(), 2);
    store.expire(t0 + mins(120));
    assert!(store.get(&imm).is_none());
    assert!(store.get(&mutable).is_some());
    store.expire(t0 + mins(180));
    assert!(store.is_empty());
}

#[test]
fn item_cap_evicts_the_stalest() {
    let t0 = Instant::now();
    let mut store = ItemStore::with_config(ItemStoreConfig {
        max_items: 3,
        ..ItemStoreConfig::default()
    });
    let a = store.put_immutable(b"i1e", None, t0).unwrap();
    let b = store.put_immutable(b"i2e", None, t0 + mins(1)).unwrap();
    let c = store.put_immutable(b"i3e", None, t0 + mins(2)).unwrap();
    // Refresh a: b becomes the stalest.
    store.put_immutable(b"i1e", None, t0 + mins(3)).unwrap();
    let d = store.put_immutable(b"i4e", None, t0 + mins(4)).unwrap();
    assert_eq!(store.len(), 3);
    assert!(store.get(&b).is_none());
    for t in [a, c, d] {
        assert!(store.get(&t).is_some());
    }
    let mut none = ItemStore::with_config(ItemStoreConfig {
        max_items: 0,
        ..ItemStoreConfig::default()
    });
    none.put_immutable(b"i1e", None, t0).unwrap();
    assert!(none.is_empty());
}

/// Signed items for seqs 0..6 and values 0..3, made once (signing is slow in debug builds).
fn presigned() -> &'static Vec<Vec<MutableItem>> {
    static ITEMS: OnceLock<Vec<Vec<MutableItem>>> = OnceLock::new();
    ITEMS.get_or_init(|| {
        (0..6)
            .map(|seq| {
                (0..3u8)
                    .map(|v| signed(seq, &[b'1', b':', b'a' + v]))
                    .collect()
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever order puts arrive in, a put is accepted exactly when it does not go backwards
    /// (seq higher, or equal with the same value, and a matching cas), and the store then
    /// holds the most recent accepted item.
    #[test]
    fn mutable_put_ordering(
        puts in prop::collection::vec((0usize..6, 0usize..3, prop::option::of(0i64..6)), 1..16)
    ) {
        let t0 = Instant::now();
        let items = presigned();
        let mut store = ItemStore::new();
        let mut model: Option<(i64, usize)> = None;
        for (i, (seq, value, cas)) in puts.into_iter().enumerate() {
            let item = items[seq][value].clone();
            let now = t0 + Duration::from_secs(i as u64);
            let result = store.put_mutable(item.clone(), cas, now);
            let seq = seq as i64;
            let expected = match model {
                None => Ok(()),
                Some((cur, _)) if cas.is_some_and(|c| c != cur) => {
                    Err(ItemError::CasMismatch { cas: cas.unwrap(), current: cur })
                }
                Some((cur, _)) if seq < cur => Err(ItemError::SeqTooLow { seq, current: cur }),
                Some((cur, v)) if seq == cur && v != value => Err(ItemError::SeqConflict(seq)),
                Some(_) => Ok(()),
            };
            prop_assert_eq!(result.map(|_| ()), expected);
            if expected.is_ok() {
                model = Some((seq, value));
            }
            let (cur, v) = model.unwrap();
            let stored = store.get(&item.target()).unwrap();
            prop_assert_eq!(stored.seq(), Some(cur));
            prop_assert_eq!(stored.value(), items[cur as usize][v].value.as_slice());
        }
    }

    /// The peer store never exceeds its limits.
    #[test]
    fn peer_store_limits_hold(
        announces in prop::collection::vec((0u8..8, 0u8..40, any::<bool>(), 0u64..100), 0..300)
    ) {
        let t0 = Instant::now();
        let config = PeerStoreConfig {
            max_infohashes: 5,
            max_peers_per_infohash: 7,
            max_peers_total: 20,
            peer_ttl: Duration::from_secs(30),
        };
        let mut store = PeerStore::with_config(config);
        for (h, ip, seed, t) in announces {
            let now = t0 + Duration::from_secs(t);
            store.announce(ih(h), v4(3, ip, 1), seed, now);
            prop_assert!(store.num_infohashes() <= 5);
            prop_assert!(store.total_peers() <= 20);
            let mut sum = 0;
            for n in 0..8 {
                prop_assert!(store.num_peers(&ih(n)) <= 7);
                sum += store.num_peers(&ih(n));
            }
            prop_assert_eq!(sum, store.total_peers());
            prop_assert!(store.num_peers(&ih(h)) >= 1, "the announce itself is stored");
        }
        store.expire(t0 + Duration::from_secs(200));
        prop_assert_eq!(store.total_peers(), 0);
    }
}
