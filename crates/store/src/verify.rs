//! Piece verification against v1 (SHA-1 of the whole piece) and v2 (per-file merkle) hashes.
//!
//! ```text
//!  piece bytes ──SHA-1──────────────────────────────────────────▶ == piece_hash_v1(piece)
//!       │
//!       └─ file part ─16 KiB leaves─▶ subtree (zero leaves past the file end)
//!                                        ▶ == piece layer hash (or pieces root for a small file)
//! ```
//!
//! [`Verifier::verify_piece`] checks a whole piece already in memory; [`PieceHasher`] hashes
//! a piece as its blocks arrive, in any order, so it never has to be read back from disk.

use std::collections::BTreeMap;
use std::fmt;

use sha1::{Digest, Sha1};
use tessera_metainfo::merkle::{hash_leaf, hash_pair, pad_hash, piece_layer_height, BLOCK_SIZE};
use tessera_metainfo::{Metainfo, Sha256Hash, TorrentVersion};
use thiserror::Error;

use crate::layout::Layout;

/// The outcome of checking one piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PieceVerdict {
    /// Every hash the torrent carries for the piece matches.
    Ok,
    /// At least one hash does not match. Each flag is `true` when that hash was checked and did
    /// not match. In a hybrid torrent exactly one flag set means the v1 and v2 hashes disagree
    /// about the same bytes (see [`Verifier::is_version_conflict`]).
    Failed {
        /// The SHA-1 piece hash did not match.
        v1: bool,
        /// The merkle piece hash (or pieces root) did not match.
        v2: bool,
    },
    /// The torrent carries no hash to check the piece against (a v2 torrent without its piece
    /// layers, or a piece index past the end).
    Unverifiable,
}

impl PieceVerdict {
    /// True for [`PieceVerdict::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, PieceVerdict::Ok)
    }
}

impl fmt::Display for PieceVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PieceVerdict::Ok => f.write_str("ok"),
            PieceVerdict::Unverifiable => f.write_str("no hash to verify against"),
            PieceVerdict::Failed { v1: true, v2: true } => {
                f.write_str("v1 (SHA-1) and v2 (merkle) hashes both mismatch")
            }
            PieceVerdict::Failed {
                v1: true,
                v2: false,
            } => f.write_str("v1 (SHA-1) hash mismatch (v2 merkle hash not checked or matched)"),
            PieceVerdict::Failed {
                v1: false,
                v2: true,
            } => f.write_str("v2 (merkle) hash mismatch (v1 SHA-1 hash not checked or matched)"),
            PieceVerdict::Failed { .. } => f.write_str("hash mismatch"),
        }
    }
}

/// What the v2 check of one piece compares against.
#[derive(Debug, Clone, Copy)]
struct V2Target {
    /// The piece layer hash, or the pieces root for a file of one piece or less.
    expected: Sha256Hash,
    /// Bytes of the file in this piece (the rest of the piece, if any, is padding).
    file_bytes: u64,
    /// `Some(h)`: reduce the leaves to a subtree of `2^h` leaves (a piece of a larger file).
    /// `None`: reduce them to the file's root (the file fits in one piece).
    height: Option<u32>,
}

/// Checks pieces of one torrent against its v1 and v2 hashes.
///
/// It borrows the torrent and its layout, and is `Sync`: one verifier serves every thread of
/// a recheck.
#[derive(Debug, Clone, Copy)]
pub struct Verifier<'a> {
    meta: &'a Metainfo,
    layout: &'a Layout,
    has_v1: bool,
    has_v2: bool,
}

impl<'a> Verifier<'a> {
    /// A verifier for `meta`, whose pieces `layout` maps to files.
    pub fn new(meta: &'a Metainfo, layout: &'a Layout) -> Self {
        let version = meta.version();
        Verifier {
            meta,
            layout,
            has_v1: version.has_v1(),
            has_v2: version.has_v2(),
        }
    }

    /// The torrent's version.
    pub fn version(&self) -> TorrentVersion {
        self.meta.version()
    }

    /// True when `verdict` shows the two halves of a hybrid torrent disagreeing: one hash of
    /// the same bytes matched and the other did not, so the torrent's v1 and v2 hashes describe
    /// different content (or were crafted to). Always false for v1-only and v2-only torrents.
    pub fn is_version_conflict(&self, verdict: &PieceVerdict) -> bool {
        self.has_v1 && self.has_v2 && matches!(verdict, PieceVerdict::Failed { v1, v2 } if v1 != v2)
    }

    /// The layout the verifier maps pieces with.
    pub fn layout(&self) -> &'a Layout {
        self.layout
    }

    /// Checks the whole contents of `piece` (its padding bytes included, as zeros).
    ///
    /// Data of the wrong length fails every hash the torrent carries.
    pub fn verify_piece(&self, piece: u32, data: &[u8]) -> PieceVerdict {
        if piece >= self.layout.num_pieces() {
            return PieceVerdict::Unverifiable;
        }
        let v1_expected = self.v1_expected(piece);
        let v2_target = self.v2_target(piece);
        if v1_expected.is_none() && v2_target.is_none() {
            return PieceVerdict::Unverifiable;
        }
        if data.len() as u64 != self.layout.piece_size(piece) {
            return PieceVerdict::Failed {
                v1: v1_expected.is_some(),
                v2: v2_target.is_some(),
            };
        }
        // One pass over the piece in 16 KiB blocks: each block is fed to SHA-1 and hashed as a
        // v2 leaf while it is still in L1 cache, rather than walking the piece twice.
        let mut sha1 = v1_expected.map(|_| Sha1::new());
        let file_bytes = v2_target.map_or(0, |t| usize::try_from(t.file_bytes).unwrap_or(0));
        let mut leaves: Vec<Sha256Hash> = Vec::with_capacity(if v2_target.is_some() {
            file_bytes.div_ceil(BLOCK_SIZE as usize)
        } else {
            0
        });
        let mut at = 0usize;
        for block in data.chunks(BLOCK_SIZE as usize) {
            if let Some(sha) = sha1.as_mut() {
                sha.update(block);
            }
            if v2_target.is_some() && at < file_bytes {
                let in_file = (file_bytes - at).min(block.len());
                leaves.push(hash_leaf(block.get(..in_file).unwrap_or(block)));
            }
            at = at.saturating_add(block.len());
        }
        let v1_bad = match (sha1, v1_expected) {
            (Some(sha), Some(h)) => sha.finalize().as_slice() != h.0.as_slice(),
            _ => false,
        };
        let v2_bad = v2_target.is_some_and(|t| reduce(&leaves, t.height) != t.expected);
        verdict(v1_bad, v2_bad)
    }

    /// The SHA-1 hash of `piece`, if the torrent has v1 hashes.
    fn v1_expected(&self, piece: u32) -> Option<tessera_metainfo::Sha1Hash> {
        if !self.has_v1 {
            return None;
        }
        self.meta.piece_hash_v1(piece as usize)
    }

    /// What the v2 check of `piece` compares against, if the torrent has v2 hashes for it.
    fn v2_target(&self, piece: u32) -> Option<V2Target> {
        if !self.has_v2 {
            return None;
        }
        let (file, piece_in_file) = self.layout.v2_file_of_piece(piece)?;
        let f = self.layout.files().get(file)?;
        let length = f.length;
        let piece_length = self.layout.piece_length();
        let start = u64::from(piece_in_file).checked_mul(piece_length)?;
        let file_bytes = length.checked_sub(start)?.min(piece_length);
        if file_bytes == 0 {
            return None;
        }
        let layer = self.meta.piece_layer(f.metainfo_index?)?;
        let expected = *layer.get(piece_in_file as usize)?;
        let height = (length > piece_length).then(|| piece_layer_height(piece_length));
        Some(V2Target {
            expected,
            file_bytes,
            height,
        })
    }
}

fn verdict(v1_bad: bool, v2_bad: bool) -> PieceVerdict {
    if v1_bad || v2_bad {
        PieceVerdict::Failed {
            v1: v1_bad,
            v2: v2_bad,
        }
    } else {
        PieceVerdict::Ok
    }
}

/// Reduces leaf hashes to the root of a subtree of `2^height` leaves (`Some`), or of the
/// smallest power of two that holds them (`None`), zero leaves filling the rest.
fn reduce(leaves: &[Sha256Hash], height: Option<u32>) -> Sha256Hash {
    let levels = match height {
        Some(h) => h,
        None => leaves.len().max(1).next_power_of_two().trailing_zeros(),
    };
    let mut cur: Vec<Sha256Hash> = leaves.to_vec();
    for level in 0..levels {
        if cur.is_empty() {
            return pad_hash(levels);
        }
        let pad = pad_hash(level);
        cur = cur
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => hash_pair(l, r),
                [l] => hash_pair(l, &pad),
                _ => pad,
            })
            .collect();
    }
    cur.first().copied().unwrap_or_else(|| pad_hash(levels))
}

/// Misuse of a [`PieceHasher`]: a range it cannot take.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HashError {
    /// The range does not start on a 16 KiB block boundary, or ends inside a block that is not
    /// the piece's last.
    #[error("range {begin}+{len} is not made of whole 16 KiB blocks")]
    Unaligned {
        /// Offset within the piece.
        begin: u64,
        /// Length of the range.
        len: u64,
    },
    /// The range ends past the end of the piece.
    #[error("range {begin}+{len} is past the piece's {piece_size} bytes")]
    OutOfRange {
        /// Offset within the piece.
        begin: u64,
        /// Length of the range.
        len: u64,
        /// Size of the piece.
        piece_size: u64,
    },
    /// A block of the range was given before.
    #[error("block at {begin} was already given")]
    Duplicate {
        /// Offset within the piece of the repeated block.
        begin: u64,
    },
}

/// Hashes one piece as its blocks arrive, in any order.
///
/// SHA-1 is fed in order: a block that arrives early is kept until the bytes before it have
/// come (at most one piece in memory). For v2 the SHA-256 leaf of each 16 KiB block is taken
/// as it arrives. [`finish`](Self::finish) gives the same verdict as
/// [`Verifier::verify_piece`] on the whole piece.
#[derive(Debug)]
pub struct PieceHasher {
    piece: u32,
    size: u64,
    v1: Option<(Sha1, tessera_metainfo::Sha1Hash)>,
    v1_pos: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    v2: Option<V2Target>,
    leaves: Vec<Option<Sha256Hash>>,
    received: Vec<bool>,
}

impl PieceHasher {
    /// A hasher for `piece` of the verifier's torrent.
    pub fn new(verifier: &Verifier<'_>, piece: u32) -> Self {
        let size = verifier.layout.piece_size(piece);
        let in_range = piece < verifier.layout.num_pieces();
        let v1 = verifier
            .v1_expected(piece)
            .filter(|_| in_range)
            .map(|h| (Sha1::new(), h));
        let v2 = verifier.v2_target(piece).filter(|_| in_range);
        let blocks = usize::try_from(size.div_ceil(BLOCK_SIZE)).unwrap_or(0);
        let leaf_count = v2.map_or(0, |t| {
            usize::try_from(t.file_bytes.div_ceil(BLOCK_SIZE)).unwrap_or(0)
        });
        PieceHasher {
            piece,
            size,
            v1,
            v1_pos: 0,
            pending: BTreeMap::new(),
            v2,
            leaves: vec![None; leaf_count],
            received: vec![false; blocks],
        }
    }

    /// The piece being hashed.
    pub fn piece(&self) -> u32 {
        self.piece
    }

    /// True once every block of the piece has been given.
    pub fn is_complete(&self) -> bool {
        self.received.iter().all(|r| *r)
    }

    /// Takes the bytes at offset `begin` within the piece: one or more whole 16 KiB blocks
    /// (the piece's last block may be short).
    ///
    /// # Errors
    /// [`HashError`] if the range is not whole blocks, lies past the piece, or repeats a block;
    /// the hasher is unchanged then.
    pub fn update(&mut self, begin: u64, data: &[u8]) -> Result<(), HashError> {
        let len = data.len() as u64;
        let end =
            begin
                .checked_add(len)
                .filter(|e| *e <= self.size)
                .ok_or(HashError::OutOfRange {
                    begin,
                    len,
                    piece_size: self.size,
                })?;
        if begin % BLOCK_SIZE != 0 || (end % BLOCK_SIZE != 0 && end != self.size) || len == 0 {
            return Err(HashError::Unaligned { begin, len });
        }
        let first = (begin / BLOCK_SIZE) as usize;
        let count = len.div_ceil(BLOCK_SIZE) as usize;
        let slots = self
            .received
            .get(first..first.saturating_add(count))
            .ok_or(HashError::Unaligned { begin, len })?;
        if let Some(i) = slots.iter().position(|r| *r) {
            return Err(HashError::Duplicate {
                begin: begin.saturating_add(i as u64 * BLOCK_SIZE),
            });
        }
        for r in self.received.iter_mut().skip(first).take(count) {
            *r = true;
        }

        if let Some(t) = self.v2 {
            for (i, block) in data.chunks(BLOCK_SIZE as usize).enumerate() {
                let block_begin = begin.saturating_add(i as u64 * BLOCK_SIZE);
                if block_begin >= t.file_bytes {
                    // Padding past the file's end: a zero leaf, already implied.
                    break;
                }
                let in_file = (t.file_bytes - block_begin).min(block.len() as u64) as usize;
                let leaf = hash_leaf(block.get(..in_file).unwrap_or(block));
                if let Some(slot) = self.leaves.get_mut(first.saturating_add(i)) {
                    *slot = Some(leaf);
                }
            }
        }

        if let Some((sha, _)) = self.v1.as_mut() {
            if begin == self.v1_pos {
                sha.update(data);
                self.v1_pos = end;
                while let Some(next) = self.pending.remove(&self.v1_pos) {
                    sha.update(&next);
                    self.v1_pos = self.v1_pos.saturating_add(next.len() as u64);
                }
            } else {
                self.pending.insert(begin, data.to_vec());
            }
        }
        Ok(())
    }

    /// The verdict on the piece. A piece with blocks missing fails every hash the torrent
    /// carries for it.
    pub fn finish(self) -> PieceVerdict {
        if self.v1.is_none() && self.v2.is_none() {
            return PieceVerdict::Unverifiable;
        }
        let complete = self.is_complete();
        let v1_bad = match self.v1 {
            Some((sha, expected)) => {
                !complete
                    || self.v1_pos != self.size
                    || sha.finalize().as_slice() != expected.0.as_slice()
            }
            None => false,
        };
        let v2_bad = match self.v2 {
            Some(t) => {
                let leaves: Option<Vec<Sha256Hash>> = self.leaves.iter().copied().collect();
                match leaves {
                    Some(l) if complete => reduce(&l, t.height) != t.expected,
                    _ => true,
                }
            }
            None => false,
        };
        verdict(v1_bad, v2_bad)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use tessera_metainfo::merkle::MerkleTree;

    #[test]
    fn reduce_matches_merkle_tree() {
        for n in 1..=9usize {
            let leaves: Vec<_> = (0..n).map(|i| hash_leaf(&[i as u8])).collect();
            let tree = MerkleTree::from_leaves(leaves.clone());
            assert_eq!(reduce(&leaves, None), tree.root(), "{n} leaves");
            // A subtree of 16 leaves equals the tree of the leaves padded to 16.
            let mut padded = leaves.clone();
            padded.resize(16, Sha256Hash::default());
            assert_eq!(
                reduce(&leaves, Some(4)),
                MerkleTree::from_leaves(padded).root()
            );
        }
        assert_eq!(reduce(&[], Some(3)), pad_hash(3));
    }
}
