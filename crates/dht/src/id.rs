//! Node ids, info hashes and the XOR metric; contacts (an id with its address).

use std::fmt;
use std::net::SocketAddr;

/// A 160-bit DHT id: a node id or an info hash / BEP 44 target (they share one key space).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Id(pub [u8; 20]);

impl Id {
    /// The id as bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// From a slice of exactly 20 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Id> {
        bytes.try_into().ok().map(Id)
    }

    /// XOR distance to `other`, compared as a big-endian 160-bit number.
    pub fn distance(&self, other: &Id) -> Id {
        let mut out = [0; 20];
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(other.0.iter())) {
            *o = a ^ b;
        }
        Id(out)
    }

    /// Number of leading bits shared with `other` (160 if equal).
    pub fn common_prefix_len(&self, other: &Id) -> usize {
        for (i, (a, b)) in self.0.iter().zip(other.0.iter()).enumerate() {
            let x = a ^ b;
            if x != 0 {
                return i * 8 + x.leading_zeros() as usize;
            }
        }
        160
    }

    /// Bit `index` (0 = most significant).
    pub fn bit(&self, index: usize) -> bool {
        self.0
            .get(index / 8)
            .is_some_and(|b| b & (0x80 >> (index % 8)) != 0)
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 40 hex digits.
    pub fn from_hex(s: &str) -> Option<Id> {
        if s.len() != 40 || !s.is_ascii() {
            return None;
        }
        let mut out = [0; 20];
        for (o, i) in out.iter_mut().zip((0..40).step_by(2)) {
            *o = u8::from_str_radix(s.get(i..i + 2)?, 16).ok()?;
        }
        Some(Id(out))
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.to_hex())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A node as other nodes describe it: its id and UDP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Contact {
    /// The node's id.
    pub id: Id,
    /// Its UDP address.
    pub addr: SocketAddr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric() {
        let a = Id([0; 20]);
        let mut b = [0; 20];
        b[0] = 0x10;
        let b = Id(b);
        assert_eq!(a.common_prefix_len(&b), 3);
        assert_eq!(a.common_prefix_len(&a), 160);
        assert!(b.bit(3) && !b.bit(2) && !b.bit(4));
        assert_eq!(a.distance(&b), b);
        assert_eq!(Id::from_hex(&b.to_hex()), Some(b));
        assert_eq!(Id::from_hex("zz"), None);
    }
}
