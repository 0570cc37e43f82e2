//! BEP 52 merkle trees over 16 KiB blocks, shared by torrent parsing and creation, the piece
//! store (block and piece verification) and the wire codec (hash requests and proofs).
//!
//! Layers are numbered by height: height 0 holds the leaf hashes (SHA-256 of each 16 KiB block,
//! the last block of a file hashed at its real length), height `h` nodes each cover `2^h` leaves.
//! Leaves past the end of a file are zero hashes, so a node over only padding at height `h` is
//! [`pad_hash(h)`](pad_hash).

use sha2::{Digest, Sha256};

use crate::hash::Sha256Hash;

/// Size of a merkle leaf block: 16 KiB.
pub const BLOCK_SIZE: u64 = 16 * 1024;

/// SHA-256 of one block (a leaf).
pub fn hash_leaf(block: &[u8]) -> Sha256Hash {
    Sha256Hash(Sha256::digest(block).into())
}

/// The parent of two nodes: SHA-256 of their concatenation.
pub fn hash_pair(left: &Sha256Hash, right: &Sha256Hash) -> Sha256Hash {
    let mut h = Sha256::new();
    h.update(left.0);
    h.update(right.0);
    Sha256Hash(h.finalize().into())
}

/// The root of a subtree of `2^height` zero leaves (height 0: the zero hash).
pub fn pad_hash(height: u32) -> Sha256Hash {
    let mut h = Sha256Hash::default();
    for _ in 0..height.min(64) {
        h = hash_pair(&h, &h);
    }
    h
}

/// Reduces one layer (nodes at `height`) to the root, padding it to a power of two with
/// [`pad_hash(height)`](pad_hash). An empty layer gives the zero hash.
pub fn root_from_layer(layer: &[Sha256Hash], height: u32) -> Sha256Hash {
    match layer.len() {
        0 => return Sha256Hash::default(),
        1 => return layer.first().copied().unwrap_or_default(),
        _ => {}
    }
    let mut pad = pad_hash(height);
    let mut cur: Vec<Sha256Hash> = layer.to_vec();
    while cur.len() > 1 {
        let next: Vec<Sha256Hash> = cur
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => hash_pair(l, r),
                [l] => hash_pair(l, &pad),
                _ => Sha256Hash::default(),
            })
            .collect();
        pad = hash_pair(&pad, &pad);
        cur = next;
    }
    cur.first().copied().unwrap_or_default()
}

/// Height of the piece layer for a piece length (a power of two, at least 16 KiB).
pub fn piece_layer_height(piece_length: u64) -> u32 {
    (piece_length.max(BLOCK_SIZE) / BLOCK_SIZE).trailing_zeros()
}

/// Number of 16 KiB blocks (leaves) in a file of `len` bytes.
pub fn block_count(len: u64) -> u64 {
    len.div_ceil(BLOCK_SIZE)
}

/// True if `piece_layer` (one hash per piece of a file of `file_len` bytes) reduces to `root`.
pub fn verify_piece_layer(
    piece_layer: &[Sha256Hash],
    piece_length: u64,
    file_len: u64,
    root: &Sha256Hash,
) -> bool {
    if piece_length == 0 || (piece_layer.len() as u64) != file_len.div_ceil(piece_length) {
        return false;
    }
    root_from_layer(piece_layer, piece_layer_height(piece_length)) == *root
}

/// Checks a BEP 52 proof: `node` at `height` and `index` within its layer, with `proof` the
/// sibling hashes from that layer upwards, reduces to `root`.
pub fn verify_proof(
    node: &Sha256Hash,
    mut index: u64,
    proof: &[Sha256Hash],
    root: &Sha256Hash,
) -> bool {
    let mut cur = *node;
    for sib in proof {
        cur = if index & 1 == 0 {
            hash_pair(&cur, sib)
        } else {
            hash_pair(sib, &cur)
        };
        index >>= 1;
    }
    index == 0 && cur == *root
}

/// A whole merkle tree for one file, kept layer by layer (leaves padded to a power of two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleTree {
    /// `layers[h]` holds the nodes at height `h`; the last layer holds the root alone.
    layers: Vec<Vec<Sha256Hash>>,
    /// Number of real (not padding) leaves.
    leaf_count: usize,
}

impl MerkleTree {
    /// Builds the tree over the given leaf hashes. An empty file gives a one-node zero tree.
    pub fn from_leaves(leaves: Vec<Sha256Hash>) -> Self {
        let leaf_count = leaves.len();
        let width = leaf_count.max(1).next_power_of_two();
        let mut layer = leaves;
        layer.resize(width, Sha256Hash::default());
        let mut layers = vec![layer];
        while let Some(last) = layers.last() {
            if last.len() <= 1 {
                break;
            }
            let next = last
                .chunks_exact(2)
                .map(|p| match p {
                    [l, r] => hash_pair(l, r),
                    _ => Sha256Hash::default(),
                })
                .collect();
            layers.push(next);
        }
        MerkleTree { layers, leaf_count }
    }

    /// Builds the tree over a file's contents.
    pub fn from_data(data: &[u8]) -> Self {
        Self::from_leaves(data.chunks(BLOCK_SIZE as usize).map(hash_leaf).collect())
    }

    /// The root hash (the file's `pieces root` when the file is not empty).
    pub fn root(&self) -> Sha256Hash {
        self.layers
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or_default()
    }

    /// Number of real leaves.
    pub fn leaf_count(&self) -> usize {
        self.leaf_count
    }

    /// Number of layers (height of the root plus one).
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// All nodes at `height`, padding included.
    pub fn layer(&self, height: u32) -> Option<&[Sha256Hash]> {
        self.layers.get(height as usize).map(Vec::as_slice)
    }

    /// The piece layer for `piece_length`: one hash per piece that holds file data (padding
    /// pieces past the end of the file are not included, as in a torrent's `piece layers`).
    pub fn piece_layer(&self, piece_length: u64) -> Vec<Sha256Hash> {
        let h = piece_layer_height(piece_length);
        let pieces = (self.leaf_count as u64).div_ceil(1u64 << h) as usize;
        match self.layer(h) {
            Some(l) => l.iter().take(pieces).copied().collect(),
            // The tree is shorter than a piece: the file is one (partial) piece, its root.
            None => vec![self.root()],
        }
    }

    /// Sibling hashes from the node at (`height`, `index`) up to (not including) the root.
    pub fn proof(&self, height: u32, mut index: usize) -> Option<Vec<Sha256Hash>> {
        let mut out = Vec::new();
        let layers = self.layers.get(height as usize..)?;
        if index >= layers.first()?.len() {
            return None;
        }
        for layer in layers.iter().take(layers.len().saturating_sub(1)) {
            out.push(*layer.get(index ^ 1)?);
            index >>= 1;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_hash_chain() {
        assert!(pad_hash(0).is_zero());
        let z = Sha256Hash::default();
        assert_eq!(pad_hash(1), hash_pair(&z, &z));
        assert_eq!(pad_hash(2), hash_pair(&pad_hash(1), &pad_hash(1)));
    }

    #[test]
    fn piece_layer_reduces_to_root() {
        // 5 blocks + a bit, 32 KiB pieces (2 blocks per piece) -> 3 pieces.
        let data: Vec<u8> = (0..(5 * BLOCK_SIZE as usize + 100))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let tree = MerkleTree::from_data(&data);
        assert_eq!(tree.leaf_count(), 6);
        let layer = tree.piece_layer(2 * BLOCK_SIZE);
        assert_eq!(layer.len(), 3);
        assert!(verify_piece_layer(
            &layer,
            2 * BLOCK_SIZE,
            data.len() as u64,
            &tree.root()
        ));
        let mut bad = layer.clone();
        bad[1].0[0] ^= 1;
        assert!(!verify_piece_layer(
            &bad,
            2 * BLOCK_SIZE,
            data.len() as u64,
            &tree.root()
        ));
        assert_eq!(root_from_layer(tree.layer(0).unwrap(), 0), tree.root());
    }

    #[test]
    fn proofs_verify_and_fail_when_tampered() {
        let leaves: Vec<_> = (0..11u8).map(|i| hash_leaf(&[i])).collect();
        let tree = MerkleTree::from_leaves(leaves.clone());
        for (i, leaf) in leaves.iter().enumerate() {
            let proof = tree.proof(0, i).unwrap();
            assert_eq!(proof.len(), 4);
            assert!(verify_proof(leaf, i as u64, &proof, &tree.root()));
            assert!(!verify_proof(leaf, (i as u64) ^ 1, &proof, &tree.root()));
        }
        assert!(tree.proof(0, 16).is_none());
    }
}
