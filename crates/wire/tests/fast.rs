//! The BEP 6 allowed-fast set: the vectors of the BEP and the guards around them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use tessera_metainfo::Sha1Hash;
use tessera_wire::allowed_fast_set;

const IH: Sha1Hash = Sha1Hash([0xAA; 20]);

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

#[test]
fn bep6_vectors() {
    let ip = v4(80, 4, 4, 200);
    assert_eq!(
        allowed_fast_set(ip, &IH, 1313, 7),
        [1059, 431, 808, 1217, 287, 376, 1188]
    );
    assert_eq!(
        allowed_fast_set(ip, &IH, 1313, 9),
        [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]
    );
}

#[test]
fn ipv4_low_byte_is_masked() {
    let a = allowed_fast_set(v4(80, 4, 4, 200), &IH, 1313, 9);
    assert_eq!(allowed_fast_set(v4(80, 4, 4, 0), &IH, 1313, 9), a);
    assert_eq!(allowed_fast_set(v4(80, 4, 4, 255), &IH, 1313, 9), a);
    assert_ne!(allowed_fast_set(v4(80, 4, 5, 200), &IH, 1313, 9), a);
    // IPv4-mapped IPv6 counts as IPv4.
    let mapped = IpAddr::V6(Ipv4Addr::new(80, 4, 4, 17).to_ipv6_mapped());
    assert_eq!(allowed_fast_set(mapped, &IH, 1313, 9), a);
}

#[test]
fn ipv6_uses_the_whole_address() {
    let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let b: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let sa = allowed_fast_set(IpAddr::V6(a), &IH, 1313, 7);
    assert_eq!(sa.len(), 7);
    assert_ne!(sa, allowed_fast_set(IpAddr::V6(b), &IH, 1313, 7));
    // Deterministic.
    assert_eq!(sa, allowed_fast_set(IpAddr::V6(a), &IH, 1313, 7));
}

#[test]
fn small_torrents() {
    let ip = v4(10, 0, 0, 1);
    assert_eq!(allowed_fast_set(ip, &IH, 5, 10), [0, 1, 2, 3, 4]);
    assert_eq!(allowed_fast_set(ip, &IH, 5, 5), [0, 1, 2, 3, 4]);
    assert!(allowed_fast_set(ip, &IH, 0, 10).is_empty());
    assert!(allowed_fast_set(ip, &IH, 100, 0).is_empty());
    // One piece short of everything: terminates with four distinct pieces of five.
    let mut s = allowed_fast_set(ip, &IH, 5, 4);
    assert_eq!(s.len(), 4);
    s.sort_unstable();
    s.dedup();
    assert_eq!(s.len(), 4);
}

proptest! {
    #[test]
    fn distinct_in_range_and_prefix_stable(ip in any::<[u8; 4]>(), ih in any::<[u8; 20]>(), n in 1u32..5000, k in 0usize..40) {
        let ip = IpAddr::V4(Ipv4Addr::from(ip));
        let ih = Sha1Hash(ih);
        let set = allowed_fast_set(ip, &ih, n, k);
        prop_assert_eq!(set.len(), k.min(n as usize));
        let mut sorted = set.clone();
        sorted.sort_unstable();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), set.len());
        prop_assert!(set.iter().all(|&p| p < n));
        // A larger k extends a smaller one (unless k covers every piece).
        if k + 1 < n as usize {
            let more = allowed_fast_set(ip, &ih, n, k + 1);
            prop_assert_eq!(&more[..k], &set[..]);
        }
    }
}
