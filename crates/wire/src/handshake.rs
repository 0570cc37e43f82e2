//! The peer handshake (BEP 3) and its reserved bits (BEP 4, 5, 6, 10, 52).
//!
//! ```text
//!  1      19                     8          20          20
//! [0x13]["BitTorrent protocol"][reserved][info hash][peer id]   = 68 bytes
//!  \______________ HandshakePrefix (48 bytes) ________/
//! ```

use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign};

use bytes::{Buf, BufMut, BytesMut};
use tessera_metainfo::Sha1Hash;

use crate::error::Error;

/// The protocol string of BEP 3, with its one-byte length in front.
pub const PROTOCOL: &[u8; 20] = b"\x13BitTorrent protocol";

/// Length of a whole handshake in bytes.
pub const HANDSHAKE_LEN: usize = 68;

/// Length of the part before the peer id: protocol string, reserved bytes and info hash.
pub const HANDSHAKE_PREFIX_LEN: usize = 48;

/// The eight reserved bytes of the handshake, where peers announce the extensions they support.
///
/// Bits are named by byte and mask, as the BEPs do: `Reserved::DHT` is byte 7, mask `0x01`.
/// Combine flags with `|` and test them with [`Reserved::contains`].
///
/// ```
/// use tessera_wire::Reserved;
///
/// let r = Reserved::FAST | Reserved::EXTENSION_PROTOCOL;
/// assert!(r.fast() && r.extension_protocol() && !r.dht());
/// assert_eq!(r.0, [0, 0, 0, 0, 0, 0x10, 0, 0x04]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Reserved(pub [u8; 8]);

impl Reserved {
    /// No bit set.
    pub const EMPTY: Reserved = Reserved([0; 8]);
    /// BEP 5, DHT: the peer accepts a `port` message (byte 7, `0x01`).
    pub const DHT: Reserved = Reserved::flag(7, 0x01);
    /// BEP 6, fast extension: have all/none, suggest, reject, allowed fast (byte 7, `0x04`).
    pub const FAST: Reserved = Reserved::flag(7, 0x04);
    /// BEP 52, upgrade to v2: the peer can continue on the v2 info hash (byte 7, `0x10`).
    pub const V2_UPGRADE: Reserved = Reserved::flag(7, 0x10);
    /// BEP 10, extension protocol: extended messages (id 20) (byte 5, `0x10`).
    pub const EXTENSION_PROTOCOL: Reserved = Reserved::flag(5, 0x10);

    /// A value with one bit set: `mask` in byte `byte` (0..8, as the BEPs number them).
    /// A `byte` past 7 gives [`Reserved::EMPTY`].
    pub const fn flag(byte: usize, mask: u8) -> Reserved {
        if byte >= 8 {
            return Reserved::EMPTY;
        }
        Reserved(((mask as u64) << (8 * (7 - byte))).to_be_bytes())
    }

    /// True if every bit set in `other` is set in `self`.
    pub fn contains(self, other: Reserved) -> bool {
        self & other == other
    }

    /// Sets the bits of `other`.
    pub fn insert(&mut self, other: Reserved) {
        *self |= other;
    }

    /// Clears the bits of `other`.
    pub fn remove(&mut self, other: Reserved) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a &= !b;
        }
    }

    /// BEP 5: the peer runs a DHT node.
    pub fn dht(self) -> bool {
        self.contains(Self::DHT)
    }

    /// BEP 6: the peer supports the fast extension.
    pub fn fast(self) -> bool {
        self.contains(Self::FAST)
    }

    /// BEP 10: the peer supports the extension protocol.
    pub fn extension_protocol(self) -> bool {
        self.contains(Self::EXTENSION_PROTOCOL)
    }

    /// BEP 52: the peer can upgrade a hybrid torrent's connection to v2.
    pub fn v2_upgrade(self) -> bool {
        self.contains(Self::V2_UPGRADE)
    }
}

impl BitOr for Reserved {
    type Output = Reserved;
    fn bitor(mut self, rhs: Reserved) -> Reserved {
        self |= rhs;
        self
    }
}

impl BitOrAssign for Reserved {
    fn bitor_assign(&mut self, rhs: Reserved) {
        for (a, b) in self.0.iter_mut().zip(rhs.0) {
            *a |= b;
        }
    }
}

impl BitAnd for Reserved {
    type Output = Reserved;
    fn bitand(mut self, rhs: Reserved) -> Reserved {
        for (a, b) in self.0.iter_mut().zip(rhs.0) {
            *a &= b;
        }
        self
    }
}

impl fmt::Debug for Reserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reserved({})", tessera_metainfo::to_hex(&self.0))
    }
}

/// A whole peer handshake.
///
/// ```
/// use bytes::BytesMut;
/// use tessera_metainfo::Sha1Hash;
/// use tessera_wire::{Handshake, Reserved, HANDSHAKE_LEN};
///
/// let hs = Handshake {
///     reserved: Reserved::EXTENSION_PROTOCOL | Reserved::FAST,
///     info_hash: Sha1Hash([0xAA; 20]),
///     peer_id: *b"-TS0001-abcdefghijkl",
/// };
/// let mut buf = BytesMut::new();
/// hs.encode(&mut buf);
/// assert_eq!(buf.len(), HANDSHAKE_LEN);
///
/// // Bytes arrive in pieces: `Ok(None)` until all 68 are there.
/// let mut rx = BytesMut::from(&buf[..30]);
/// assert_eq!(Handshake::decode(&mut rx), Ok(None));
/// rx.extend_from_slice(&buf[30..]);
/// assert_eq!(Handshake::decode(&mut rx), Ok(Some(hs)));
/// assert!(rx.is_empty());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handshake {
    /// The extensions the sender supports.
    pub reserved: Reserved,
    /// The torrent the connection is for (a v2 info hash truncated to 20 bytes, BEP 52).
    pub info_hash: Sha1Hash,
    /// The sender's peer id.
    pub peer_id: [u8; 20],
}

impl Handshake {
    /// The part before the peer id.
    pub fn prefix(&self) -> HandshakePrefix {
        HandshakePrefix {
            reserved: self.reserved,
            info_hash: self.info_hash,
        }
    }

    /// Appends the 68-byte handshake to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(HANDSHAKE_LEN);
        self.prefix().encode(dst);
        dst.put_slice(&self.peer_id);
    }

    /// Decodes a handshake from the front of `src`, consuming its 68 bytes on success.
    ///
    /// Returns `Ok(None)` while fewer than 68 bytes are buffered; nothing is consumed then.
    ///
    /// # Errors
    /// [`Error::NotBitTorrent`] as soon as a buffered byte differs from the protocol string,
    /// without waiting for the rest.
    pub fn decode(src: &mut BytesMut) -> Result<Option<Handshake>, Error> {
        check_protocol(src)?;
        if src.len() < HANDSHAKE_LEN {
            return Ok(None);
        }
        match HandshakePrefix::decode(src)? {
            Some(prefix) => Ok(prefix.complete(src)),
            None => Ok(None),
        }
    }
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("reserved", &self.reserved)
            .field("info_hash", &self.info_hash)
            .field("peer_id", &String::from_utf8_lossy(&self.peer_id))
            .finish()
    }
}

/// The first 48 bytes of a handshake: protocol string, reserved bytes and info hash.
///
/// A listener reads this first to find the torrent (and answer with its own handshake) before
/// the peer id arrives; some clients wait for the answer before sending their peer id.
///
/// ```
/// use bytes::BytesMut;
/// use tessera_metainfo::Sha1Hash;
/// use tessera_wire::{Handshake, HandshakePrefix, Reserved};
///
/// let hs = Handshake { reserved: Reserved::DHT, info_hash: Sha1Hash([7; 20]), peer_id: [1; 20] };
/// let mut wire = BytesMut::new();
/// hs.encode(&mut wire);
/// let mut rx = wire.split_to(48);
/// let prefix = HandshakePrefix::decode(&mut rx).unwrap().unwrap();
/// assert_eq!(prefix.info_hash, Sha1Hash([7; 20]));
/// // ... pick the torrent, then read the peer id once it is there.
/// assert_eq!(prefix.complete(&mut wire), Some(hs));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandshakePrefix {
    /// The extensions the sender supports.
    pub reserved: Reserved,
    /// The torrent the connection is for.
    pub info_hash: Sha1Hash,
}

impl HandshakePrefix {
    /// Appends the 48-byte prefix to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(HANDSHAKE_PREFIX_LEN);
        dst.put_slice(PROTOCOL);
        dst.put_slice(&self.reserved.0);
        dst.put_slice(&self.info_hash.0);
    }

    /// Decodes the prefix from the front of `src`, consuming its 48 bytes on success.
    ///
    /// Returns `Ok(None)` while fewer than 48 bytes are buffered.
    ///
    /// # Errors
    /// [`Error::NotBitTorrent`] as soon as a buffered byte differs from the protocol string.
    pub fn decode(src: &mut BytesMut) -> Result<Option<HandshakePrefix>, Error> {
        check_protocol(src)?;
        if src.len() < HANDSHAKE_PREFIX_LEN {
            return Ok(None);
        }
        src.advance(PROTOCOL.len());
        let mut reserved = [0u8; 8];
        src.copy_to_slice(&mut reserved);
        let mut info_hash = [0u8; 20];
        src.copy_to_slice(&mut info_hash);
        Ok(Some(HandshakePrefix {
            reserved: Reserved(reserved),
            info_hash: Sha1Hash(info_hash),
        }))
    }

    /// Reads the 20-byte peer id that follows the prefix from the front of `src` and returns
    /// the whole handshake, or `None` (consuming nothing) while fewer than 20 bytes are there.
    pub fn complete(self, src: &mut BytesMut) -> Option<Handshake> {
        if src.len() < 20 {
            return None;
        }
        let mut peer_id = [0u8; 20];
        src.copy_to_slice(&mut peer_id);
        Some(Handshake {
            reserved: self.reserved,
            info_hash: self.info_hash,
            peer_id,
        })
    }
}

/// Compares the buffered bytes (as many as there are) with the protocol string.
fn check_protocol(src: &[u8]) -> Result<(), Error> {
    match src.iter().zip(PROTOCOL.iter()).position(|(a, b)| a != b) {
        Some(offset) => Err(Error::NotBitTorrent {
            offset,
            byte: src.get(offset).copied().unwrap_or_default(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_protocol_fails_early() {
        let mut b = BytesMut::from(&b"\x13BitTorrent"[..]);
        assert_eq!(Handshake::decode(&mut b), Ok(None));
        let mut b = BytesMut::from(&b"\x13BitTorrenX"[..]);
        assert_eq!(
            Handshake::decode(&mut b),
            Err(Error::NotBitTorrent {
                offset: 10,
                byte: b'X'
            })
        );
        let mut b = BytesMut::from(&b"GET / HTTP/1.1"[..]);
        assert_eq!(
            HandshakePrefix::decode(&mut b),
            Err(Error::NotBitTorrent {
                offset: 0,
                byte: b'G'
            })
        );
    }

    #[test]
    fn reserved_bits() {
        assert_eq!(Reserved::DHT.0, [0, 0, 0, 0, 0, 0, 0, 0x01]);
        assert_eq!(Reserved::FAST.0, [0, 0, 0, 0, 0, 0, 0, 0x04]);
        assert_eq!(Reserved::V2_UPGRADE.0, [0, 0, 0, 0, 0, 0, 0, 0x10]);
        assert_eq!(Reserved::EXTENSION_PROTOCOL.0, [0, 0, 0, 0, 0, 0x10, 0, 0]);
        let mut r = Reserved::DHT | Reserved::V2_UPGRADE;
        assert!(r.dht() && r.v2_upgrade() && !r.fast());
        r.remove(Reserved::DHT);
        assert!(!r.dht() && r.v2_upgrade());
        r.insert(Reserved::FAST);
        assert!(r.fast());
        assert_eq!(Reserved::flag(8, 0xff), Reserved::EMPTY);
    }
}
