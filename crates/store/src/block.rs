//! BEP 52 verification of a single 16 KiB block, before the rest of its piece has arrived.
//!
//! A v2 file's merkle tree has the SHA-256 of each 16 KiB block as its leaves. With the uncle
//! hashes a peer sends for a block (its `hashes` reply: the sibling of each node on the way
//! up), the block alone can be checked against the file's `pieces root`
//! ([`verify_block_proof`]), or, with fewer uncles, against the hash of its piece in the piece
//! layer ([`verify_block_in_piece`]). A downloader can then drop a bad block, and the peer
//! that sent it, at once instead of when the piece fails.
//!
//! ```text
//!  pieces root ─────────────────────────────── verify_block_proof: uncles up to here
//!       │            ... piece layer hash ──── verify_block_in_piece: uncles up to here
//!       │                  /        \
//!   leaf = SHA-256(block)    uncle  (then the uncle of the parent, and so on)
//! ```
//!
//! [`Verifier::verify_block_proof`](crate::Verifier::verify_block_proof) and
//! [`Verifier::verify_block_in_piece`](crate::Verifier::verify_block_in_piece) do the same
//! given a piece and an offset in it, as blocks are requested.
//!
//! ```
//! use tessera_metainfo::merkle::{MerkleTree, BLOCK_SIZE};
//! use tessera_store::{verify_block_in_piece, verify_block_proof, BlockError};
//!
//! let file = vec![7u8; 5 * 16384 + 100]; // 6 blocks, the last one short
//! let tree = MerkleTree::from_data(&file);
//! let block = &file[3 * 16384..4 * 16384];
//! let uncles = tree.proof(0, 3).unwrap(); // 3 uncles: 8 leaves after padding
//! verify_block_proof(file.len() as u64, 3, block, &uncles, &tree.root())?;
//!
//! // With 32 KiB pieces, one uncle reaches the piece layer.
//! let piece_hash = tree.piece_layer(2 * BLOCK_SIZE)[1];
//! verify_block_in_piece(file.len() as u64, 2 * BLOCK_SIZE, 3, block, &uncles[..1], &piece_hash)?;
//!
//! let mut bad = block.to_vec();
//! bad[0] ^= 1;
//! assert_eq!(
//!     verify_block_proof(file.len() as u64, 3, &bad, &uncles, &tree.root()),
//!     Err(BlockError::Mismatch)
//! );
//! # Ok::<(), BlockError>(())
//! ```

use tessera_metainfo::merkle::{
    block_count, hash_leaf, piece_layer_height, verify_proof, BLOCK_SIZE,
};
use tessera_metainfo::Sha256Hash;
use thiserror::Error;

/// Why a block did not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BlockError {
    // --- The data or the proof is bad (the peer's fault) ---
    /// The block's hash with the uncles does not reach the expected hash: the data or the
    /// proof is wrong.
    #[error("the block does not match its merkle hash")]
    Mismatch,
    /// The wrong number of uncle hashes for where the block sits in the tree.
    #[error("{got} uncle hashes where the proof needs {expected}")]
    ProofLength {
        /// Uncles needed.
        expected: u32,
        /// Uncles given.
        got: u64,
    },
    /// Bytes of the block that lie in the padding after a file (hybrid torrents) are not zero.
    #[error("the block's padding bytes are not zero")]
    PaddingNotZero,

    // --- Nothing to check against ---
    /// The torrent has no v2 hashes, or the block is not in a v2 file.
    #[error("no v2 merkle tree covers this block")]
    NotV2,
    /// The hash of the block's piece in the piece layer is not known yet (a torrent from a
    /// magnet link whose file layer no peer has sent; see
    /// [`PieceLayers`](crate::PieceLayers)).
    #[error("the piece layer hash of piece {piece} is not known yet")]
    NoPieceHash {
        /// The piece.
        piece: u32,
    },

    // --- The caller's misuse ---
    /// The block does not start on a 16 KiB boundary.
    #[error("a block starting at {begin} is not on a 16 KiB boundary")]
    Unaligned {
        /// Offset in the piece.
        begin: u64,
    },
    /// The block (or its piece) lies past the end of the piece, file or torrent.
    #[error("block {index} is past the end (there are {count})")]
    OutOfRange {
        /// The block's index in its piece or file.
        index: u64,
        /// Blocks there are.
        count: u64,
    },
    /// The data is not as long as the block is (16 KiB, except at the end of a file or piece).
    #[error("block of {got} bytes where {expected} are needed")]
    WrongLength {
        /// The block's length.
        expected: u64,
        /// Bytes given.
        got: u64,
    },
}

/// Number of uncle hashes that prove a block of a file of `file_len` bytes up to its pieces
/// root: the height of the file's tree (its leaves padded to a power of two).
pub fn block_proof_len(file_len: u64) -> u32 {
    block_count(file_len)
        .max(1)
        .next_power_of_two()
        .trailing_zeros()
}

/// The length of block `index` of a file of `file_len` bytes.
fn leaf_len(file_len: u64, index: u64) -> Result<u64, BlockError> {
    let count = block_count(file_len);
    if index >= count {
        return Err(BlockError::OutOfRange { index, count });
    }
    Ok(file_len
        .saturating_sub(index.saturating_mul(BLOCK_SIZE))
        .min(BLOCK_SIZE))
}

/// Checks `data`, block `index` of a file of `file_len` bytes (16 KiB, the last block of the
/// file shorter), against the file's `pieces_root`, with `uncles` the sibling hashes from the
/// leaf up to the root, lowest first ([`block_proof_len`] of them).
///
/// # Errors
/// [`BlockError::Mismatch`] if the block or the proof is wrong; [`BlockError::ProofLength`],
/// [`BlockError::OutOfRange`] or [`BlockError::WrongLength`] if they do not fit the file.
pub fn verify_block_proof(
    file_len: u64,
    index: u64,
    data: &[u8],
    uncles: &[Sha256Hash],
    pieces_root: &Sha256Hash,
) -> Result<(), BlockError> {
    check_leaf(file_len, index, data)?;
    check(data, index, uncles, block_proof_len(file_len), pieces_root)
}

/// Checks `data`, block `index` of a file of `file_len` bytes, against `piece_hash`, the hash
/// of its piece in the file's piece layer (for torrents of `piece_length`), with `uncles` the
/// sibling hashes from the leaf up to the piece layer: `log2(piece_length / 16 KiB)` of them.
/// For a file no larger than one piece the piece hash is the pieces root, and `uncles` go up
/// to it ([`block_proof_len`] of them).
///
/// # Errors
/// As [`verify_block_proof`].
pub fn verify_block_in_piece(
    file_len: u64,
    piece_length: u64,
    index: u64,
    data: &[u8],
    uncles: &[Sha256Hash],
    piece_hash: &Sha256Hash,
) -> Result<(), BlockError> {
    check_leaf(file_len, index, data)?;
    if file_len <= piece_length {
        return check(data, index, uncles, block_proof_len(file_len), piece_hash);
    }
    let height = piece_layer_height(piece_length);
    // The block's index among the leaves under its piece.
    let in_piece = index & ((1u64 << height.min(63)) - 1);
    check(data, in_piece, uncles, height, piece_hash)
}

/// Checks that `data` is as long as block `index` of the file.
fn check_leaf(file_len: u64, index: u64, data: &[u8]) -> Result<(), BlockError> {
    let expected = leaf_len(file_len, index)?;
    let got = data.len() as u64;
    if got != expected {
        return Err(BlockError::WrongLength { expected, got });
    }
    Ok(())
}

/// Hashes `data` as the leaf at `index` of a subtree of height `height` and checks it against
/// `expected` with `uncles`.
fn check(
    data: &[u8],
    index: u64,
    uncles: &[Sha256Hash],
    height: u32,
    expected: &Sha256Hash,
) -> Result<(), BlockError> {
    if uncles.len() as u64 != u64::from(height) {
        return Err(BlockError::ProofLength {
            expected: height,
            got: uncles.len() as u64,
        });
    }
    if verify_proof(&hash_leaf(data), index, uncles, expected) {
        Ok(())
    } else {
        Err(BlockError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use tessera_metainfo::merkle::MerkleTree;

    fn file(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 253) as u8).collect()
    }

    #[test]
    fn every_block_verifies_against_the_root_and_its_piece() {
        let b = BLOCK_SIZE as usize;
        for len in [
            1,
            b - 1,
            b,
            b + 1,
            2 * b,
            5 * b + 100,
            8 * b,
            9 * b,
            33 * b - 7,
        ] {
            let data = file(len);
            let tree = MerkleTree::from_data(&data);
            let flen = len as u64;
            for piece_length in [BLOCK_SIZE, 2 * BLOCK_SIZE, 4 * BLOCK_SIZE, 64 * BLOCK_SIZE] {
                let layer = tree.piece_layer(piece_length);
                let per_piece = (piece_length / BLOCK_SIZE) as usize;
                let h = piece_layer_height(piece_length) as usize;
                for (i, block) in data.chunks(b).enumerate() {
                    let proof = tree.proof(0, i).unwrap();
                    assert_eq!(proof.len(), block_proof_len(flen) as usize);
                    let idx = i as u64;
                    verify_block_proof(flen, idx, block, &proof, &tree.root()).unwrap();
                    let (uncles, hash) = if flen <= piece_length {
                        (&proof[..], tree.root())
                    } else {
                        (&proof[..h], layer[i / per_piece])
                    };
                    verify_block_in_piece(flen, piece_length, idx, block, uncles, &hash).unwrap();

                    // A flipped bit, a wrong uncle, the wrong index, the wrong piece: refused.
                    let mut bad = block.to_vec();
                    let mid = bad.len() / 2;
                    bad[mid] ^= 0x10;
                    let root = tree.root();
                    assert_eq!(
                        verify_block_proof(flen, idx, &bad, &proof, &root),
                        Err(BlockError::Mismatch)
                    );
                    assert_eq!(
                        verify_block_in_piece(flen, piece_length, idx, &bad, uncles, &hash),
                        Err(BlockError::Mismatch)
                    );
                    if !proof.is_empty() {
                        let mut wrong = proof.clone();
                        let last = wrong.len() - 1;
                        wrong[last].0[0] ^= 1;
                        assert_eq!(
                            verify_block_proof(flen, idx, block, &wrong, &root),
                            Err(BlockError::Mismatch)
                        );
                        assert_eq!(
                            verify_block_proof(flen, idx, block, &proof[..last], &root),
                            Err(BlockError::ProofLength {
                                expected: last as u32 + 1,
                                got: last as u64
                            })
                        );
                    }
                }
            }
            // Past the end, and the wrong length.
            let count = block_count(flen);
            assert_eq!(
                verify_block_proof(flen, count, &[], &[], &tree.root()),
                Err(BlockError::OutOfRange {
                    index: count,
                    count
                })
            );
            let first = &data[..b.min(len)];
            let proof = tree.proof(0, 0).unwrap();
            assert!(matches!(
                verify_block_proof(flen, 0, &first[..first.len() - 1], &proof, &tree.root()),
                Err(BlockError::WrongLength { .. })
            ));
        }
    }
}
