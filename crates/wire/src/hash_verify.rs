//! BEP 52 hash requests: checking a request against a file's tree, answering it from a
//! [`MerkleTree`], and verifying a `hashes` reply against the file's `pieces root`.
//!
//! A request names a base layer (height above the 16 KiB leaves), a range of `length` hashes in
//! it starting at `index`, and a number of proof layers. The reply carries the base hashes, then
//! the uncle hashes that prove them, lowest first. Because `length` is a power of two and
//! `index` a multiple of it, the base hashes are the leaves of a whole subtree, so the first
//! `log2(length) - 1` proof layers can be computed from them and are left out:
//!
//! ```text
//!  uncles = max(0, proof_layers + 1 - log2(length))
//!  highest layer reached = base_layer + max(log2(length), proof_layers + 1)
//! ```
//!
//! This is how libtorrent counts (its `hashes` handler and `merkle_tree::get_hashes`).
//!
//! ```
//! use tessera_metainfo::merkle::MerkleTree;
//! use tessera_wire::{answer_hash_request, verify_hashes, HashRequest};
//!
//! let data = vec![7u8; 20 * 16384]; // 20 blocks: 32 leaves, the root at layer 5
//! let tree = MerkleTree::from_data(&data);
//! let req = HashRequest {
//!     pieces_root: tree.root(),
//!     base_layer: 0,
//!     index: 4,
//!     length: 4,
//!     proof_layers: 4, // 4 + 1 - log2(4) = 3 uncle hashes, reaching layer 5
//! };
//! let reply = answer_hash_request(&tree, &req)?;
//! assert_eq!(reply.len(), 4 + 3);
//! let leaves = verify_hashes(&reply, &tree.root(), 20)?;
//! assert_eq!(leaves, tree.layer(0).unwrap()[4..8]);
//! # Ok::<(), tessera_wire::ExtError>(())
//! ```

use tessera_metainfo::merkle::{root_from_layer, verify_proof, MerkleTree};
use tessera_metainfo::Sha256Hash;

use crate::ext_error::ExtError;
use crate::message::{HashRequest, Hashes};

/// Most hashes one request may ask for from its base layer (libtorrent's limit: enough for
/// the block hashes of a 128 MiB piece).
pub const MAX_HASH_REQUEST_LENGTH: u32 = 8192;

/// Height of the root of a tree over `num_blocks` leaves (padded to a power of two).
fn root_layer(num_blocks: u64) -> u32 {
    num_blocks.max(1).next_power_of_two().trailing_zeros()
}

/// Checks everything that does not depend on which layers a side supports.
fn check_shape(req: &HashRequest, file_num_blocks: u64) -> Result<u32, ExtError> {
    if file_num_blocks <= 1 {
        // No tree below the root: the root itself is in the metadata.
        return Err(ExtError::NoHashTree {
            num_blocks: file_num_blocks,
        });
    }
    let length = req.length;
    if length == 0 || !length.is_power_of_two() || length > MAX_HASH_REQUEST_LENGTH {
        return Err(ExtError::HashRequestLength {
            length,
            max: MAX_HASH_REQUEST_LENGTH,
        });
    }
    if req.index % length != 0 {
        return Err(ExtError::HashRequestMisaligned {
            index: req.index,
            length,
        });
    }
    let root = root_layer(file_num_blocks);
    if req.base_layer >= root {
        return Err(ExtError::BaseLayerOutOfRange {
            base_layer: req.base_layer,
            root_layer: root,
        });
    }
    let layer_size = file_num_blocks.next_power_of_two() >> req.base_layer;
    if u64::from(req.index) + u64::from(length) > layer_size {
        return Err(ExtError::HashRangeOutOfLayer {
            index: req.index,
            length,
            layer_size,
        });
    }
    let max = root - req.base_layer - 1;
    if req.proof_layers > max {
        return Err(ExtError::ProofLayersOutOfRange {
            proof_layers: req.proof_layers,
            max,
        });
    }
    Ok(root)
}

/// Number of uncle hashes a reply to `req` carries.
pub fn uncle_count(req: &HashRequest) -> u32 {
    let base_layers = req.length.max(1).ilog2();
    req.proof_layers
        .saturating_add(1)
        .saturating_sub(base_layers)
}

/// Checks a hash request against a file of `file_num_blocks` 16 KiB blocks whose piece layer
/// is at `piece_layer_height` (see [`piece_layer_height`](tessera_metainfo::merkle::piece_layer_height)).
///
/// The rules are libtorrent's `validate_hash_request` (length at most 8192, base layer below
/// the root, the range inside its layer, fewer proof layers than layers above the base) plus
/// those BEP 52 states and libtorrent's requests always follow: the length is a power of two,
/// the index a multiple of it, and the base layer is the leaf layer or the piece layer.
///
/// # Errors
/// The first rule the request breaks, as an [`ExtError`] naming the amounts.
pub fn validate_hash_request(
    req: &HashRequest,
    file_num_blocks: u64,
    piece_layer_height: u32,
) -> Result<(), ExtError> {
    check_shape(req, file_num_blocks)?;
    if req.base_layer != 0 && req.base_layer != piece_layer_height {
        return Err(ExtError::UnsupportedBaseLayer {
            base_layer: req.base_layer,
            piece_layer: piece_layer_height,
        });
    }
    Ok(())
}

/// Verifies a `hashes` reply against the file's `pieces root`, for a file of `file_num_leaves`
/// 16 KiB blocks. Returns the base layer hashes (`request.length` of them; those past the end of
/// the file's layer are padding hashes).
///
/// The base hashes are reduced to the root of their subtree, then the uncle hashes carry it up;
/// the result must be `root`. The proof must reach the root: a reply that stops below it cannot
/// be checked against the root alone.
///
/// # Errors
/// A malformed request (as [`validate_hash_request`], without the base layer rule), the wrong
/// number of hashes ([`ExtError::HashCount`]), a proof that stops below the root
/// ([`ExtError::ProofTooShort`]) or hashes that do not reduce to `root`
/// ([`ExtError::HashMismatch`]).
pub fn verify_hashes(
    hashes: &Hashes,
    root: &Sha256Hash,
    file_num_leaves: u64,
) -> Result<Vec<Sha256Hash>, ExtError> {
    let req = &hashes.request;
    if req.pieces_root != *root {
        return Err(ExtError::WrongPiecesRoot);
    }
    let root_height = check_shape(req, file_num_leaves)?;
    let uncles = uncle_count(req);
    let expected = u64::from(req.length) + u64::from(uncles);
    let got = (hashes.hashes.len() / 32) as u64;
    if got != expected || hashes.hashes.len() % 32 != 0 {
        return Err(ExtError::HashCount { expected, got });
    }
    let subtree_layers = req.length.ilog2();
    let reached = req.base_layer + subtree_layers + uncles;
    if reached != root_height {
        return Err(ExtError::ProofTooShort {
            reached,
            root_layer: root_height,
        });
    }
    let base: Vec<Sha256Hash> = hashes.base().collect();
    let proof: Vec<Sha256Hash> = hashes.proof().collect();
    let subtree_root = root_from_layer(&base, req.base_layer);
    let subtree_index = u64::from(req.index >> subtree_layers);
    if !verify_proof(&subtree_root, subtree_index, &proof, root) {
        return Err(ExtError::HashMismatch);
    }
    Ok(base)
}

/// Answers a hash request from a file's whole tree: the base hashes (padding included where
/// the range runs past the file) and the uncle hashes the request calls for.
///
/// # Errors
/// The request is malformed for this tree (as [`validate_hash_request`], without the base
/// layer rule) or names another file ([`ExtError::WrongPiecesRoot`]).
pub fn answer_hash_request(tree: &MerkleTree, req: &HashRequest) -> Result<Hashes, ExtError> {
    if req.pieces_root != tree.root() {
        return Err(ExtError::WrongPiecesRoot);
    }
    check_shape(req, tree.leaf_count() as u64)?;
    let layer = tree
        .layer(req.base_layer)
        .ok_or(ExtError::BaseLayerOutOfRange {
            base_layer: req.base_layer,
            root_layer: tree.layer_count().saturating_sub(1) as u32,
        })?;
    let start = req.index as usize;
    let end = start.saturating_add(req.length as usize);
    let base = layer.get(start..end).ok_or(ExtError::HashRangeOutOfLayer {
        index: req.index,
        length: req.length,
        layer_size: layer.len() as u64,
    })?;
    let subtree_layers = req.length.ilog2();
    let proof = tree
        .proof(req.base_layer + subtree_layers, start >> subtree_layers)
        .unwrap_or_default();
    let uncles = uncle_count(req) as usize;
    let mut all = Vec::with_capacity(base.len() + uncles);
    all.extend_from_slice(base);
    all.extend(proof.into_iter().take(uncles));
    Ok(Hashes::from_hashes(*req, &all))
}
