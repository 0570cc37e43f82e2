//! BEP 11 `ut_pex`: peer exchange, compact IPv4 and IPv6 peer lists with flags.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use bytes::{BufMut, Bytes, BytesMut};
use tessera_bencode::{DecodeOptions, DictBuilder, DictRef};

use crate::ext_error::ExtError;
use crate::extension::ExtensionMessage;

/// Most peers accepted in one list of a `ut_pex` message. BEP 11 asks senders for at most 50
/// added and 50 dropped peers except in the first message; this leaves room for that first one.
pub const MAX_PEX_PEERS: usize = 500;
/// Largest `ut_pex` payload accepted, in bytes (four full lists plus flags fit easily).
pub const MAX_PEX_LEN: usize = 64 * 1024;

/// BEP 11 per-peer flags (`added.f`, `added6.f`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PexFlags(pub u8);

impl PexFlags {
    /// 0x01: prefers encryption.
    pub const PREFERS_ENCRYPTION: PexFlags = PexFlags(0x01);
    /// 0x02: seed or upload only.
    pub const SEED: PexFlags = PexFlags(0x02);
    /// 0x04: supports uTP.
    pub const UTP: PexFlags = PexFlags(0x04);
    /// 0x08: supports `ut_holepunch`.
    pub const HOLEPUNCH: PexFlags = PexFlags(0x08);
    /// 0x10: reachable (we reached it with an outgoing connection).
    pub const REACHABLE: PexFlags = PexFlags(0x10);

    /// True if every bit of `other` is set.
    pub fn contains(self, other: PexFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for PexFlags {
    type Output = PexFlags;
    fn bitor(self, rhs: PexFlags) -> PexFlags {
        PexFlags(self.0 | rhs.0)
    }
}

/// A BEP 11 `ut_pex` message.
///
/// Flags lists whose length does not match their peer list are ignored (every flag reads as 0),
/// as libtorrent does; a peer list whose length is not a multiple of 6 (IPv4) or 18 (IPv6)
/// bytes is an error. Each list holds at most [`MAX_PEX_PEERS`] peers.
///
/// ```
/// use bytes::Bytes;
/// use std::net::SocketAddrV4;
/// use tessera_wire::{ExtensionMessage, PexFlags, UtPex};
///
/// let pex = UtPex::decode(Bytes::from_static(b"d5:added6:\x7f\x00\x00\x01\x1a\xe17:added.f1:\x12e"))?;
/// let peer: SocketAddrV4 = "127.0.0.1:6881".parse().unwrap();
/// assert_eq!(pex.added, vec![(peer, PexFlags::SEED | PexFlags::REACHABLE)]);
/// # Ok::<(), tessera_wire::ExtError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UtPex {
    /// IPv4 peers connected since the last message, with their flags (`added`, `added.f`).
    pub added: Vec<(SocketAddrV4, PexFlags)>,
    /// IPv4 peers disconnected since the last message (`dropped`).
    pub dropped: Vec<SocketAddrV4>,
    /// IPv6 peers connected since the last message, with their flags (`added6`, `added6.f`).
    pub added6: Vec<(SocketAddrV6, PexFlags)>,
    /// IPv6 peers disconnected since the last message (`dropped6`).
    pub dropped6: Vec<SocketAddrV6>,
}

impl ExtensionMessage for UtPex {
    const NAME: &'static str = "ut_pex";

    /// Writes every non-empty list (flags only alongside a non-empty added list).
    fn encode(&self, out: &mut BytesMut) {
        let mut d = DictBuilder::new();
        if !self.added.is_empty() {
            let peers: Vec<u8> = self.added.iter().flat_map(|(a, _)| v4(a)).collect();
            let flags: Vec<u8> = self.added.iter().map(|(_, f)| f.0).collect();
            d.entry(b"added", &peers[..]);
            d.entry(b"added.f", &flags[..]);
        }
        if !self.added6.is_empty() {
            let peers: Vec<u8> = self.added6.iter().flat_map(|(a, _)| v6(a)).collect();
            let flags: Vec<u8> = self.added6.iter().map(|(_, f)| f.0).collect();
            d.entry(b"added6", &peers[..]);
            d.entry(b"added6.f", &flags[..]);
        }
        if !self.dropped.is_empty() {
            let peers: Vec<u8> = self.dropped.iter().flat_map(v4).collect();
            d.entry(b"dropped", &peers[..]);
        }
        if !self.dropped6.is_empty() {
            let peers: Vec<u8> = self.dropped6.iter().flat_map(v6).collect();
            d.entry(b"dropped6", &peers[..]);
        }
        let mut dict = Vec::new();
        d.finish(&mut dict);
        out.put_slice(&dict);
    }

    /// # Errors
    /// Oversized or malformed payloads, lists that are not whole compact entries, lists longer
    /// than [`MAX_PEX_PEERS`].
    fn decode(payload: Bytes) -> Result<Self, ExtError> {
        const WHAT: &str = "ut_pex";
        if payload.len() > MAX_PEX_LEN {
            return Err(ExtError::PayloadTooLarge {
                what: WHAT,
                len: payload.len(),
                max: MAX_PEX_LEN,
            });
        }
        let doc = DecodeOptions::lenient()
            .with_max_depth(8)
            .with_max_tokens(1024)
            .decode(&payload)
            .map_err(|source| ExtError::Bencode { what: WHAT, source })?;
        let d = doc
            .root()
            .as_dict()
            .ok_or(ExtError::NotADict { what: WHAT })?;
        let added = compact(d, "added", 6, parse_v4)?;
        let added_f = flags(d, "added.f", added.len());
        let added6 = compact(d, "added6", 18, parse_v6)?;
        let added6_f = flags(d, "added6.f", added6.len());
        Ok(UtPex {
            added: added.into_iter().zip(added_f).collect(),
            dropped: compact(d, "dropped", 6, parse_v4)?,
            added6: added6.into_iter().zip(added6_f).collect(),
            dropped6: compact(d, "dropped6", 18, parse_v6)?,
        })
    }
}

fn v4(a: &SocketAddrV4) -> [u8; 6] {
    let [a0, a1, a2, a3] = a.ip().octets();
    let [p0, p1] = a.port().to_be_bytes();
    [a0, a1, a2, a3, p0, p1]
}

fn v6(a: &SocketAddrV6) -> [u8; 18] {
    let mut out = [0u8; 18];
    let (ip, port) = out.split_at_mut(16);
    ip.copy_from_slice(&a.ip().octets());
    port.copy_from_slice(&a.port().to_be_bytes());
    out
}

fn parse_v4(c: &[u8]) -> Option<SocketAddrV4> {
    let (ip, port) = c.split_first_chunk::<4>()?;
    let port = <[u8; 2]>::try_from(port).ok()?;
    Some(SocketAddrV4::new(
        Ipv4Addr::from(*ip),
        u16::from_be_bytes(port),
    ))
}

fn parse_v6(c: &[u8]) -> Option<SocketAddrV6> {
    let (ip, port) = c.split_first_chunk::<16>()?;
    let port = <[u8; 2]>::try_from(port).ok()?;
    Some(SocketAddrV6::new(
        Ipv6Addr::from(*ip),
        u16::from_be_bytes(port),
        0,
        0,
    ))
}

/// A compact peer list under `key` (absent or not a string: empty).
fn compact<T>(
    d: DictRef<'_, '_>,
    key: &'static str,
    stride: usize,
    parse: fn(&[u8]) -> Option<T>,
) -> Result<Vec<T>, ExtError> {
    let Some(raw) = d.get(key.as_bytes()).and_then(|v| v.as_bytes()) else {
        return Ok(Vec::new());
    };
    if raw.len() % stride != 0 {
        return Err(ExtError::CompactLength {
            key,
            len: raw.len(),
            stride,
        });
    }
    let count = raw.len() / stride;
    if count > MAX_PEX_PEERS {
        return Err(ExtError::TooManyPeers {
            key,
            count,
            max: MAX_PEX_PEERS,
        });
    }
    Ok(raw.chunks_exact(stride).filter_map(parse).collect())
}

/// The flags under `key`, one per peer; all zero if absent or of another length.
fn flags(d: DictRef<'_, '_>, key: &str, peers: usize) -> Vec<PexFlags> {
    match d.get(key.as_bytes()).and_then(|v| v.as_bytes()) {
        Some(f) if f.len() == peers => f.iter().map(|&b| PexFlags(b)).collect(),
        _ => vec![PexFlags::default(); peers],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatched_flags_are_ignored() {
        let pex = UtPex::decode(Bytes::from_static(
            b"d5:added12:\x01\x02\x03\x04\x00\x01\x05\x06\x07\x08\x00\x027:added.f1:\x02e",
        ))
        .unwrap();
        assert_eq!(pex.added.len(), 2);
        assert!(pex.added.iter().all(|(_, f)| *f == PexFlags::default()));
    }
}
