//! The BEP 6 allowed-fast set: pieces a peer may download even while choked.

use std::collections::HashSet;
use std::net::IpAddr;

use sha1::{Digest, Sha1};
use tessera_metainfo::Sha1Hash;

/// Most SHA-1 rounds [`allowed_fast_set`] spends per requested piece before giving up. Each
/// round yields five candidates; the bound only matters when `k` is close to `num_pieces`, where
/// the last missing indices take long to come up.
const ROUNDS_PER_PIECE: usize = 64;

/// The canonical allowed-fast set of `k` pieces for a peer at `ip`, as BEP 6 specifies.
///
/// The seed is the peer's address followed by the info hash; it is hashed with SHA-1 again
/// and again, and each digest gives five big-endian `u32`s, each taken modulo `num_pieces`.
/// Indices already in the set are skipped, until the set holds `k` pieces. The order is the
/// order in which the indices come up.
///
/// * IPv4: the address masked with `0xFFFFFF00` (BEP 6), so every host of a /24 gets the same
///   set. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are treated as the IPv4 address.
/// * IPv6: BEP 6 defines nothing. libtorrent hashes the whole 16-byte address, unmasked, and
///   this function does the same. (libtorrent hashes IPv4 addresses unmasked too, so its IPv4
///   sets differ from BEP 6; here the BEP and its test vector win.)
/// * `k >= num_pieces` gives every piece, in order; `num_pieces == 0` or `k == 0` gives none.
/// * The loop is bounded: should the digests fail to bring up `k` distinct indices within
///   64 rounds per piece (which takes `k` very close to `num_pieces`), the set comes back short.
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr};
/// use tessera_metainfo::Sha1Hash;
/// use tessera_wire::allowed_fast_set;
///
/// // The example of BEP 6.
/// let ip = IpAddr::V4(Ipv4Addr::new(80, 4, 4, 200));
/// let set = allowed_fast_set(ip, &Sha1Hash([0xAA; 20]), 1313, 7);
/// assert_eq!(set, [1059, 431, 808, 1217, 287, 376, 1188]);
/// ```
pub fn allowed_fast_set(ip: IpAddr, info_hash: &Sha1Hash, num_pieces: u32, k: usize) -> Vec<u32> {
    if num_pieces == 0 || k == 0 {
        return Vec::new();
    }
    if k >= num_pieces as usize {
        return (0..num_pieces).collect();
    }
    let mut x: Vec<u8> = Vec::with_capacity(36);
    match canonical_ip(ip) {
        IpAddr::V4(v4) => x.extend_from_slice(&(u32::from(v4) & 0xFFFF_FF00).to_be_bytes()),
        IpAddr::V6(v6) => x.extend_from_slice(&v6.octets()),
    }
    x.extend_from_slice(&info_hash.0);

    let mut set = Vec::with_capacity(k);
    let mut seen = HashSet::with_capacity(k);
    let mut digest: [u8; 20] = Sha1::digest(&x).into();
    let max_rounds = k.saturating_mul(ROUNDS_PER_PIECE);
    for _ in 0..max_rounds {
        for word in digest.chunks_exact(4) {
            let y = <[u8; 4]>::try_from(word).map_or(0, u32::from_be_bytes);
            let index = y % num_pieces;
            if seen.insert(index) {
                set.push(index);
                if set.len() == k {
                    return set;
                }
            }
        }
        digest = Sha1::digest(digest).into();
    }
    set
}

/// An IPv4-mapped IPv6 address as IPv4; any other address unchanged.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}
