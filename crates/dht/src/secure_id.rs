//! BEP 42 (DHT security extension): node ids tied to the node's external IP address.
//!
//! The first 21 bits of a secure node id are the top 21 bits of CRC32C over the masked external
//! address (the whole IPv4 address, or the high 64 bits of an IPv6 address) with a 3-bit random
//! number `r` in its top bits; `r` is the low three bits of the id's last byte.
//!
//! Nodes on local addresses (see [`is_exempt`]) are exempt from the check.

use std::net::IpAddr;

use crate::id::Id;

/// The reflected Castagnoli polynomial.
const CASTAGNOLI_REFLECTED: u32 = 0x82F6_3B78;

/// Byte-at-a-time lookup table for [`crc32c`], built at compile time.
const CRC32C_TABLE: [u32; 256] = build_table();

// Evaluated only in const context: an out-of-range index would fail the build, not panic.
#[allow(clippy::indexing_slicing)]
const fn build_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ CASTAGNOLI_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// CRC-32C (Castagnoli, as in iSCSI and SSE 4.2's `crc32` instruction) of `data`.
///
/// ```
/// assert_eq!(tessera_dht::secure_id::crc32c(b"123456789"), 0xE306_9283);
/// ```
pub fn crc32c(data: &[u8]) -> u32 {
    let crc = data.iter().fold(!0u32, |crc, &byte| {
        // The table has 256 entries, so a u8 index is always in range.
        let entry = CRC32C_TABLE
            .get(usize::from((crc as u8) ^ byte))
            .copied()
            .unwrap_or(0);
        entry ^ (crc >> 8)
    });
    !crc
}

/// Mask applied to an IPv4 address before hashing.
const V4_MASK: [u8; 4] = [0x03, 0x0f, 0x3f, 0xff];
/// Mask applied to the high 64 bits of an IPv6 address before hashing.
const V6_MASK: [u8; 8] = [0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff];

/// CRC32C of the masked address with `r` (0..=7) in its top three bits. An IPv4-mapped IPv6
/// address (as a dual-stack socket reports IPv4 peers) is treated as the IPv4 address.
fn masked_crc(ip: IpAddr, r: u8) -> u32 {
    let r_bits = (r & 0x7) << 5;
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let mut bytes = v4.octets();
            for (b, m) in bytes.iter_mut().zip(V4_MASK) {
                *b &= m;
            }
            if let Some(first) = bytes.first_mut() {
                *first |= r_bits;
            }
            crc32c(&bytes)
        }
        IpAddr::V6(v6) => {
            let octets = v6.octets();
            let mut bytes = [0u8; 8];
            for ((b, o), m) in bytes.iter_mut().zip(octets).zip(V6_MASK) {
                *b = o & m;
            }
            if let Some(first) = bytes.first_mut() {
                *first |= r_bits;
            }
            crc32c(&bytes)
        }
    }
}

/// Generates a BEP 42 node id for our external address `ip`.
///
/// `rand` becomes the id's last byte (its low three bits are the `r` fed into the hash); bits
/// 3–5 of `rand` fill the three free low bits of byte 2, and `tail` fills bytes 3 to 18. Pass
/// random bytes for both to get a uniformly distributed id within the allowed prefix.
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr};
/// use tessera_dht::secure_id::{is_secure, secure_id};
///
/// let ip = IpAddr::V4(Ipv4Addr::new(124, 31, 75, 21));
/// let id = secure_id(ip, 1, &[0; 16]);
/// assert_eq!(&id.0[..3], &[0x5f, 0xbf, 0xb8]);
/// assert!(is_secure(&id, ip));
/// ```
pub fn secure_id(ip: IpAddr, rand: u8, tail: &[u8; 16]) -> Id {
    let crc = masked_crc(ip, rand).to_be_bytes();
    let [c0, c1, c2, _] = crc;
    let mut id = [0u8; 20];
    let (head, rest) = id.split_at_mut(3);
    head.copy_from_slice(&[c0, c1, (c2 & 0xf8) | ((rand >> 3) & 0x7)]);
    let (middle, last) = rest.split_at_mut(16);
    middle.copy_from_slice(tail);
    if let Some(b) = last.first_mut() {
        *b = rand;
    }
    Id(id)
}

/// Whether `id` is an acceptable node id for a node at `ip` under BEP 42: its first 21 bits match
/// the hash of the masked address with the `r` taken from the id's last byte, or `ip` is a local
/// address exempt from the check ([`is_exempt`]).
pub fn is_secure(id: &Id, ip: IpAddr) -> bool {
    if is_exempt(ip) {
        return true;
    }
    let [i0, i1, i2, .., i19] = id.0;
    let [c0, c1, c2, _] = masked_crc(ip, i19).to_be_bytes();
    i0 == c0 && i1 == c1 && (i2 & 0xf8) == (c2 & 0xf8)
}

/// Whether BEP 42 exempts `ip` from node id verification: the local blocks the BEP lists
/// (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16, 127.0.0.0/8) and their IPv6
/// counterparts (`::1`, unique local `fc00::/7`, link-local `fe80::/10`). IPv4-mapped IPv6
/// addresses are judged as IPv4.
pub fn is_exempt(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local() || v4.is_loopback(),
        IpAddr::V6(v6) => {
            let first = v6.segments().first().copied().unwrap_or(0);
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn crc32c_check_values() {
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        // RFC 3720 B.4: 32 bytes of zeros and of 0xff.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
    }

    #[test]
    fn exemptions() {
        for ip in [
            IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
            IpAddr::V4(Ipv4Addr::new(172, 31, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(169, 254, 9, 9)),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
        ] {
            assert!(is_exempt(ip), "{ip}");
        }
        for ip in [
            IpAddr::V4(Ipv4Addr::new(172, 32, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 1)),
        ] {
            assert!(!is_exempt(ip), "{ip}");
        }
    }

    #[test]
    fn v6_roundtrip_and_mapped_v4() {
        let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x1234, 0x5678, 9, 9, 9, 9));
        for rand in [0u8, 7, 0x55, 0xff] {
            let id = secure_id(ip, rand, &[0xab; 16]);
            assert!(is_secure(&id, ip));
            assert_eq!(id.0[19], rand);
            // Only the /64 counts.
            let same64 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x1234, 0x5678, 1, 2, 3, 4));
            assert!(is_secure(&id, same64));
        }
        let v4 = Ipv4Addr::new(124, 31, 75, 21);
        let id = secure_id(IpAddr::V4(v4), 1, &[0; 16]);
        assert!(is_secure(&id, IpAddr::V6(v4.to_ipv6_mapped())));
    }
}
