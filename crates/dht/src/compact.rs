//! The compact binary formats of BEP 5 and BEP 32: peers and nodes as fixed-size byte strings.
//!
//! | what | layout | bytes |
//! | --- | --- | --- |
//! | IPv4 peer ("compact IP-address/port info") | 4-byte address, 2-byte port | 6 |
//! | IPv6 peer | 16-byte address, 2-byte port | 18 |
//! | IPv4 node ("compact node info") | 20-byte id, IPv4 peer | 26 |
//! | IPv6 node | 20-byte id, IPv6 peer | 38 |
//!
//! Everything is in network byte order (big-endian). The formats carry neither the flow
//! information nor the scope id of an IPv6 address: they are written as nothing and read as
//! zero.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::id::{Contact, Id};

/// Length of a compact IPv4 peer.
pub const PEER_V4_LEN: usize = 6;
/// Length of a compact IPv6 peer.
pub const PEER_V6_LEN: usize = 18;
/// Length of a compact IPv4 node.
pub const NODE_V4_LEN: usize = 26;
/// Length of a compact IPv6 node.
pub const NODE_V6_LEN: usize = 38;

/// Appends the compact form of `addr`: 6 bytes for IPv4, 18 for IPv6.
#[inline]
pub fn put_peer(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// The compact length of `addr`: [`PEER_V4_LEN`] or [`PEER_V6_LEN`].
#[inline]
pub fn peer_len(addr: &SocketAddr) -> usize {
    if addr.is_ipv4() {
        PEER_V4_LEN
    } else {
        PEER_V6_LEN
    }
}

/// Reads a compact peer of exactly 6 (IPv4) or 18 (IPv6) bytes; `None` for any other length.
#[inline]
pub fn peer(bytes: &[u8]) -> Option<SocketAddr> {
    if bytes.len() == PEER_V4_LEN {
        let (ip, port) = bytes.split_at_checked(4)?;
        let ip = u32::from_be_bytes(ip.try_into().ok()?);
        let port = u16::from_be_bytes(port.try_into().ok()?);
        Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
    } else if let Ok(b) = <&[u8; PEER_V6_LEN]>::try_from(bytes) {
        let (ip, port) = b.split_at(16);
        let ip: [u8; 16] = ip.try_into().ok()?;
        let port: [u8; 2] = port.try_into().ok()?;
        Some(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(ip),
            u16::from_be_bytes(port),
            0,
            0,
        )))
    } else {
        None
    }
}

/// Appends the compact form of `node`: 26 bytes for an IPv4 address, 38 for IPv6.
#[inline]
pub fn put_node(out: &mut Vec<u8>, node: &Contact) {
    out.extend_from_slice(node.id.as_bytes());
    put_peer(out, &node.addr);
}

/// Reads one compact node of exactly 26 (IPv4) or 38 (IPv6) bytes; `None` for any other length.
#[inline]
pub fn node(bytes: &[u8]) -> Option<Contact> {
    if bytes.len() != NODE_V4_LEN && bytes.len() != NODE_V6_LEN {
        return None;
    }
    let (id, addr) = bytes.split_at_checked(20)?;
    Some(Contact {
        id: Id::from_slice(id)?,
        addr: peer(addr)?,
    })
}

/// Reads a concatenation of compact IPv4 nodes (the BEP 5 `nodes` string); `None` if its
/// length is not a multiple of [`NODE_V4_LEN`].
pub fn nodes_v4(bytes: &[u8]) -> Option<Vec<Contact>> {
    nodes_of(bytes, NODE_V4_LEN)
}

/// Reads a concatenation of compact IPv6 nodes (the BEP 32 `nodes6` string); `None` if its
/// length is not a multiple of [`NODE_V6_LEN`].
pub fn nodes_v6(bytes: &[u8]) -> Option<Vec<Contact>> {
    nodes_of(bytes, NODE_V6_LEN)
}

fn nodes_of(bytes: &[u8], len: usize) -> Option<Vec<Contact>> {
    if bytes.len() % len != 0 {
        return None;
    }
    bytes.chunks_exact(len).map(node).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_roundtrip() {
        let v4: SocketAddr = "1.2.3.4:6881".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:513".parse().unwrap();
        let mut out = Vec::new();
        put_peer(&mut out, &v4);
        assert_eq!(out, [1, 2, 3, 4, 0x1a, 0xe1]);
        assert_eq!(peer(&out), Some(v4));
        out.clear();
        put_peer(&mut out, &v6);
        assert_eq!(out.len(), PEER_V6_LEN);
        assert_eq!(out[16..], [2, 1]);
        assert_eq!(peer(&out), Some(v6));
        assert_eq!(peer(&out[..17]), None);
        assert_eq!((peer_len(&v4), peer_len(&v6)), (6, 18));
    }

    #[test]
    fn nodes_roundtrip() {
        let a = Contact {
            id: Id([7; 20]),
            addr: "10.0.0.1:1".parse().unwrap(),
        };
        let b = Contact {
            id: Id([9; 20]),
            addr: "[::1]:65535".parse().unwrap(),
        };
        let mut out = Vec::new();
        put_node(&mut out, &a);
        put_node(&mut out, &a);
        assert_eq!(out.len(), 52);
        assert_eq!(nodes_v4(&out), Some(vec![a, a]));
        assert_eq!(nodes_v4(&out[1..]), None);
        assert_eq!(nodes_v4(&[]), Some(vec![]));
        out.clear();
        put_node(&mut out, &b);
        assert_eq!(out.len(), NODE_V6_LEN);
        assert_eq!(nodes_v6(&out), Some(vec![b]));
        assert_eq!(node(&out), Some(b));
        assert_eq!(node(&out[..30]), None);
    }
}
