//! A compact set of piece indices: which pieces are verified.
//!
//! The byte form is the one BEP 3 uses on the wire and the resume file stores: piece 0 is the
//! high bit of the first byte, and the spare bits of the last byte are zero.

use thiserror::Error;

/// Why bytes could not be read as a [`Bitfield`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BitfieldError {
    /// The byte string does not have `ceil(num_pieces / 8)` bytes.
    #[error("bitfield has {got} bytes, expected {expected}")]
    WrongLength {
        /// Bytes a bitfield of this many pieces takes.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// A bit past the last piece is set.
    #[error("bitfield has a spare bit set past piece {num_pieces}")]
    SpareBitsSet {
        /// Number of pieces the bitfield describes.
        num_pieces: u32,
    },
}

/// A fixed-size set of piece indices `0..len`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Bitfield {
    bits: Vec<u8>,
    len: u32,
}

impl Bitfield {
    /// An empty set over `num_pieces` pieces.
    pub fn new(num_pieces: u32) -> Self {
        Bitfield {
            bits: vec![0; byte_len(num_pieces)],
            len: num_pieces,
        }
    }

    /// A full set over `num_pieces` pieces.
    pub fn full(num_pieces: u32) -> Self {
        let mut b = Bitfield::new(num_pieces);
        for i in 0..num_pieces {
            b.set(i, true);
        }
        b
    }

    /// Number of pieces the set ranges over (not the number set; see [`count`](Self::count)).
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True if the set ranges over no pieces at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds (`true`) or removes (`false`) piece `index`. Indices past [`len`](Self::len) are
    /// ignored; the return value says whether `index` was in range.
    pub fn set(&mut self, index: u32, value: bool) -> bool {
        if index >= self.len {
            return false;
        }
        let mask = 0x80u8 >> (index % 8);
        match self.bits.get_mut((index / 8) as usize) {
            Some(byte) => {
                if value {
                    *byte |= mask;
                } else {
                    *byte &= !mask;
                }
                true
            }
            None => false,
        }
    }

    /// True if piece `index` is in the set (false past the end).
    pub fn get(&self, index: u32) -> bool {
        if index >= self.len {
            return false;
        }
        let mask = 0x80u8 >> (index % 8);
        self.bits
            .get((index / 8) as usize)
            .is_some_and(|b| b & mask != 0)
    }

    /// Number of pieces in the set.
    pub fn count(&self) -> u32 {
        self.bits.iter().map(|b| b.count_ones()).sum()
    }

    /// True if every piece is in the set.
    pub fn is_full(&self) -> bool {
        self.count() == self.len
    }

    /// The pieces in the set, in increasing order.
    pub fn iter_ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.bits
            .iter()
            .zip(0u32..)
            .filter(|(b, _)| **b != 0)
            .flat_map(|(&b, i)| {
                (0..8u32)
                    .filter(move |bit| b & (0x80u8 >> bit) != 0)
                    .map(move |bit| i * 8 + bit)
            })
    }

    /// Adds every piece of `other` (which may range over a different number of pieces; those
    /// past [`len`](Self::len) are ignored).
    pub fn union_with(&mut self, other: &Bitfield) {
        for i in other.iter_ones() {
            self.set(i, true);
        }
    }

    /// The byte form: piece 0 in the high bit of the first byte, spare bits zero.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bits.clone()
    }

    /// Reads the byte form of a set over `num_pieces` pieces.
    ///
    /// # Errors
    /// [`BitfieldError::WrongLength`] if `bytes` is not `ceil(num_pieces / 8)` long,
    /// [`BitfieldError::SpareBitsSet`] if a bit past the last piece is set.
    pub fn from_bytes(bytes: &[u8], num_pieces: u32) -> Result<Self, BitfieldError> {
        let expected = byte_len(num_pieces);
        if bytes.len() != expected {
            return Err(BitfieldError::WrongLength {
                expected,
                got: bytes.len(),
            });
        }
        let spare = (expected as u64 * 8).saturating_sub(u64::from(num_pieces));
        if spare > 0 {
            let mask = (1u16 << spare).saturating_sub(1) as u8;
            if bytes.last().is_some_and(|b| b & mask != 0) {
                return Err(BitfieldError::SpareBitsSet { num_pieces });
            }
        }
        Ok(Bitfield {
            bits: bytes.to_vec(),
            len: num_pieces,
        })
    }
}

fn byte_len(num_pieces: u32) -> usize {
    num_pieces.div_ceil(8) as usize
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn set_get_count_iter() {
        let mut b = Bitfield::new(13);
        assert!(b.set(0, true));
        assert!(b.set(12, true));
        assert!(b.set(7, true));
        assert!(!b.set(13, true));
        assert!(b.get(12) && b.get(0) && b.get(7) && !b.get(1) && !b.get(13));
        assert_eq!(b.count(), 3);
        assert_eq!(b.iter_ones().collect::<Vec<_>>(), vec![0, 7, 12]);
        assert_eq!(b.to_bytes(), vec![0x81, 0x08]);
        b.set(7, false);
        assert_eq!(b.count(), 2);
        assert!(Bitfield::full(13).is_full());
        assert_eq!(Bitfield::full(13).to_bytes(), vec![0xff, 0xf8]);
    }

    #[test]
    fn from_bytes_checks_length_and_spare_bits() {
        assert_eq!(
            Bitfield::from_bytes(&[0xff], 9),
            Err(BitfieldError::WrongLength {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0xc0], 9),
            Err(BitfieldError::SpareBitsSet { num_pieces: 9 })
        );
        let b = Bitfield::from_bytes(&[0xff, 0x80], 9).unwrap();
        assert_eq!(b.count(), 9);
        assert!(Bitfield::from_bytes(&[], 0).unwrap().is_empty());
        let full = Bitfield::from_bytes(&[0xff], 8).unwrap();
        assert!(full.is_full());
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(len in 0u32..200, picks in proptest::collection::vec(0u32..200, 0..50)) {
            let mut b = Bitfield::new(len);
            for p in &picks {
                b.set(*p, true);
            }
            let back = Bitfield::from_bytes(&b.to_bytes(), len).unwrap();
            proptest::prop_assert_eq!(&back, &b);
            let expect: std::collections::BTreeSet<u32> =
                picks.iter().copied().filter(|p| *p < len).collect();
            proptest::prop_assert_eq!(b.iter_ones().collect::<Vec<_>>(), expect.into_iter().collect::<Vec<_>>());
        }
    }
}
