//! BEP 33 scrape bloom filters: 256-byte filters of peer IP addresses (`BFsd`, `BFpe`) whose
//! population can be estimated and which combine by OR-ing.

use std::net::IpAddr;

use sha1::{Digest, Sha1};

/// Size of a filter in bytes.
pub const BLOOM_BYTES: usize = 256;
/// Size of a filter in bits (`m`).
const M: usize = BLOOM_BYTES * 8;
/// Number of bits set per inserted address (`k`).
const K: f64 = 2.0;

/// A BEP 33 bloom filter (m = 2048 bits, k = 2) of IP addresses.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScrapeBloom([u8; BLOOM_BYTES]);

impl Default for ScrapeBloom {
    fn default() -> Self {
        ScrapeBloom([0; BLOOM_BYTES])
    }
}

impl std::fmt::Debug for ScrapeBloom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeBloom")
            .field("zero_bits", &self.zero_bits())
            .field("estimate", &self.estimate())
            .finish()
    }
}

impl From<[u8; BLOOM_BYTES]> for ScrapeBloom {
    fn from(bytes: [u8; BLOOM_BYTES]) -> Self {
        ScrapeBloom(bytes)
    }
}

/// The two bit indexes BEP 33 derives from an address: the first two little-endian 16-bit
/// words of SHA-1 of the address bytes, modulo m. An IPv4-mapped IPv6 address counts as the
/// IPv4 address it carries.
fn indexes(ip: IpAddr) -> [usize; 2] {
    let hash = match ip.to_canonical() {
        IpAddr::V4(v4) => Sha1::digest(v4.octets()),
        IpAddr::V6(v6) => Sha1::digest(v6.octets()),
    };
    let mut out = [0; 2];
    for (o, pair) in out.iter_mut().zip(hash.chunks_exact(2)) {
        let word = pair
            .iter()
            .rev()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        *o = word % M;
    }
    out
}

impl ScrapeBloom {
    /// An empty filter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts an address: its 4 bytes (IPv4, including IPv4-mapped IPv6) or 16 bytes (IPv6).
    pub fn insert(&mut self, ip: IpAddr) {
        for index in indexes(ip) {
            if let Some(byte) = self.0.get_mut(index / 8) {
                *byte |= 1 << (index % 8);
            }
        }
    }

    /// Whether `ip` may have been inserted (false positives are possible, false negatives not).
    pub fn contains(&self, ip: IpAddr) -> bool {
        indexes(ip).iter().all(|&index| {
            self.0
                .get(index / 8)
                .is_some_and(|byte| byte & (1 << (index % 8)) != 0)
        })
    }

    /// Number of bits still zero.
    pub fn zero_bits(&self) -> usize {
        self.0.iter().map(|b| b.count_zeros() as usize).sum()
    }

    /// Whether nothing has been inserted.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }

    /// BEP 33's estimate of how many distinct addresses were inserted:
    /// `ln(c / m) / (k · ln(1 − 1/m))` where `c` is the number of zero bits.
    ///
    /// BEP 33 writes `c = min(m − 1, zero bits)`, which makes an empty filter estimate 0.5 and a
    /// full one infinity; here `c` is clamped to `1..=m` instead, so an empty filter estimates 0
    /// and a full one saturates at about 7,800. Every other filter gets exactly the BEP's value.
    /// Past some 6,000 addresses the estimate is unreliable.
    pub fn estimate(&self) -> f64 {
        let m = M as f64;
        let c = self.zero_bits().max(1) as f64;
        (c / m).ln() / (K * (1.0 - 1.0 / m).ln())
    }

    /// The union of two filters (the filter of the union of their sets).
    #[must_use]
    pub fn union(&self, other: &ScrapeBloom) -> ScrapeBloom {
        let mut out = *self;
        out.union_with(other);
        out
    }

    /// Adds all of `other`'s bits to this filter.
    pub fn union_with(&mut self, other: &ScrapeBloom) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    /// The filter's 256 bytes, as sent in `BFsd` / `BFpe`.
    pub fn as_bytes(&self) -> &[u8; BLOOM_BYTES] {
        &self.0
    }

    /// A filter from a received `BFsd` / `BFpe` value; `None` unless it is exactly 256 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<ScrapeBloom> {
        bytes.try_into().ok().map(ScrapeBloom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn empty_and_single() {
        let mut f = ScrapeBloom::new();
        assert!(f.is_empty());
        assert_eq!(f.estimate(), 0.0);
        let ip = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1));
        f.insert(ip);
        assert!(f.contains(ip));
        assert!(!f.is_empty());
        assert!((f.estimate() - 1.0).abs() < 0.01 || f.zero_bits() == M - 1);
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 168, 1, 1).to_ipv6_mapped());
        assert!(f.contains(mapped));
        assert_eq!(ScrapeBloom::from_bytes(f.as_bytes()), Some(f));
        assert_eq!(ScrapeBloom::from_bytes(&[0; 255]), None);
    }

    #[test]
    fn full_filter_saturates() {
        let f = ScrapeBloom::from([0xff; BLOOM_BYTES]);
        let e = f.estimate();
        assert!(e.is_finite() && (7_700.0..7_900.0).contains(&e), "{e}");
    }
}
