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
//! a piece as its blocks arrive, in any order, so it never has to be read back from disk;
//! [`Verifier::verify_block_proof`] and [`Verifier::verify_block_in_piece`] check one v2 block
//! on its own with the uncle hashes a peer sent (see [`block`](crate::verify_block_proof)).
//!
//! The v2 piece hashes come from the torrent's `piece layers`, or, for a torrent from a
//! magnet link, from a [`PieceLayers`] filled in as peers send them
//! ([`Verifier::with_piece_layers`]).

use std::collections::BTreeMap;
use std::fmt;

use sha1::{Digest, Sha1};
use sha2::Sha256;
use tessera_metainfo::merkle::{hash_leaf, hash_pair, pad_hash, piece_layer_height, BLOCK_SIZE};
use tessera_metainfo::{Metainfo, Sha256Hash, TorrentVersion};
use thiserror::Error;

use crate::block::{verify_block_in_piece, verify_block_proof, BlockError};
use crate::layout::Layout;
use crate::piece_layers::PieceLayers;

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
    layers: Option<&'a PieceLayers>,
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
            layers: None,
            has_v1: version.has_v1(),
            has_v2: version.has_v2(),
        }
    }

    /// A verifier that also takes v2 piece hashes from `layers` for files whose layer `meta`
    /// does not carry: a torrent from a magnet link, whose layers peers send later. Every
    /// layer in `layers` was checked against its file's pieces root when it was inserted.
    ///
    /// `layers` must be for `layout` ([`PieceLayers::new`] of it); layers for a layout with
    /// another number of files are ignored. A piece whose layer is known from neither is
    /// [`PieceVerdict::Unverifiable`] by v2 (as with [`new`](Self::new)); build a new
    /// verifier (it is cheap) after inserting layers.
    pub fn with_piece_layers(
        meta: &'a Metainfo,
        layout: &'a Layout,
        layers: &'a PieceLayers,
    ) -> Self {
        let mut v = Verifier::new(meta, layout);
        v.layers = (layers.len() == layout.files().len()).then_some(layers);
        v
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
        let mut stream = PieceStream::with_targets(data.len() as u64, v1_expected, v2_target);
        stream.update(data);
        stream.finish()
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
        let expected = self.piece_hash(file, piece_in_file)?;
        let height = (length > piece_length).then(|| piece_layer_height(piece_length));
        Some(V2Target {
            expected,
            file_bytes,
            height,
        })
    }
}

impl Verifier<'_> {
    /// Hash `piece_in_file` of the piece layer of `file` (a layout index): from the torrent,
    /// else from the piece layers supplied later.
    fn piece_hash(&self, file: usize, piece_in_file: u32) -> Option<Sha256Hash> {
        let f = self.layout.files().get(file)?;
        let from_meta = f.metainfo_index.and_then(|m| self.meta.piece_layer(m));
        let layer = from_meta.or_else(|| self.layers?.get(file))?;
        layer.get(piece_in_file as usize).copied()
    }

    /// Where v2 block `begin` of `piece` lies: (file, the piece's index in the file's piece
    /// layer, the block's index in the file, file bytes in the block). Checks `data` is exactly the block (16 KiB, or what is left of the
    /// piece) and that any part of it past the file's end (padding, in hybrid torrents) is
    /// zeros; `Ok(None)` if the whole block is such padding, and verified by that.
    fn v2_block(
        &self,
        piece: u32,
        begin: u32,
        data: &[u8],
    ) -> Result<Option<(usize, u32, u64, usize)>, BlockError> {
        if !self.has_v2 {
            return Err(BlockError::NotV2);
        }
        let count = u64::from(self.layout.block_count(piece));
        if piece >= self.layout.num_pieces() {
            return Err(BlockError::OutOfRange {
                index: u64::from(begin / crate::layout::BLOCK_SIZE),
                count,
            });
        }
        if begin % crate::layout::BLOCK_SIZE != 0 {
            return Err(BlockError::Unaligned {
                begin: u64::from(begin),
            });
        }
        let block = begin / crate::layout::BLOCK_SIZE;
        let expected = self
            .layout
            .block_len(piece, block)
            .ok_or(BlockError::OutOfRange {
                index: u64::from(block),
                count,
            })?;
        let got = data.len() as u64;
        if got != u64::from(expected) {
            return Err(BlockError::WrongLength {
                expected: u64::from(expected),
                got,
            });
        }
        let (file, piece_in_file) = self
            .layout
            .v2_file_of_piece(piece)
            .ok_or(BlockError::NotV2)?;
        let f = self.layout.files().get(file).ok_or(BlockError::NotV2)?;
        let offset = u64::from(piece_in_file)
            .checked_mul(self.layout.piece_length())
            .and_then(|o| o.checked_add(u64::from(begin)))
            .ok_or(BlockError::NotV2)?;
        let in_file = usize::try_from(f.length.saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(data.len());
        if data
            .get(in_file..)
            .unwrap_or_default()
            .iter()
            .any(|&b| b != 0)
        {
            return Err(BlockError::PaddingNotZero);
        }
        if in_file == 0 {
            return Ok(None);
        }
        Ok(Some((file, piece_in_file, offset / BLOCK_SIZE, in_file)))
    }

    /// Checks `data`, the block at `begin` (a multiple of 16 KiB) in `piece`, against its
    /// file's pieces root, with `uncles` the sibling hashes from the block's leaf up to the
    /// root, lowest first, as a peer sends them (BEP 52 `hashes` for base layer 0 with the
    /// full proof; [`block_proof_len`](crate::block_proof_len) of the file's length of them).
    /// Needs no piece layer, so it works for a torrent from a magnet link from the start.
    ///
    /// In a hybrid torrent a block may run past its file's end into the padding after it:
    /// those bytes must be zeros, and a block wholly in padding verifies if it is all zeros
    /// (with no uncles).
    ///
    /// # Errors
    /// [`BlockError::Mismatch`] for a bad block or proof, [`BlockError::PaddingNotZero`],
    /// [`BlockError::ProofLength`]; [`BlockError::NotV2`] for a torrent without v2 hashes;
    /// [`BlockError::Unaligned`], [`BlockError::OutOfRange`] or [`BlockError::WrongLength`]
    /// if `begin` and `data` are not a block of the piece.
    pub fn verify_block_proof(
        &self,
        piece: u32,
        begin: u32,
        data: &[u8],
        uncles: &[Sha256Hash],
    ) -> Result<(), BlockError> {
        let Some((file, _, index, in_file)) = self.v2_block(piece, begin, data)? else {
            return padding_only(uncles);
        };
        let f = self.layout.files().get(file).ok_or(BlockError::NotV2)?;
        let root = f.pieces_root.ok_or(BlockError::NotV2)?;
        let block = data.get(..in_file).unwrap_or(data);
        verify_block_proof(f.length, index, block, uncles, &root)
    }

    /// Checks `data`, the block at `begin` in `piece`, against the piece's hash in its file's
    /// piece layer (from the torrent, or from the [`PieceLayers`] given to
    /// [`with_piece_layers`](Self::with_piece_layers)), with `uncles` the sibling hashes from
    /// the block's leaf up to the piece layer: `log2(piece length / 16 KiB)` of them (for a
    /// file no larger than a piece, up to its root). Padding is handled as in
    /// [`verify_block_proof`](Self::verify_block_proof).
    ///
    /// # Errors
    /// As [`verify_block_proof`](Self::verify_block_proof), and [`BlockError::NoPieceHash`]
    /// while the piece layer is not known.
    pub fn verify_block_in_piece(
        &self,
        piece: u32,
        begin: u32,
        data: &[u8],
        uncles: &[Sha256Hash],
    ) -> Result<(), BlockError> {
        let Some((file, piece_in_file, index, in_file)) = self.v2_block(piece, begin, data)? else {
            return padding_only(uncles);
        };
        let f = self.layout.files().get(file).ok_or(BlockError::NotV2)?;
        let hash = self
            .piece_hash(file, piece_in_file)
            .ok_or(BlockError::NoPieceHash { piece })?;
        let block = data.get(..in_file).unwrap_or(data);
        verify_block_in_piece(
            f.length,
            self.layout.piece_length(),
            index,
            block,
            uncles,
            &hash,
        )
    }
}

/// The verdict on a block wholly in padding, already checked to be zeros: no proof needed.
fn padding_only(uncles: &[Sha256Hash]) -> Result<(), BlockError> {
    if uncles.is_empty() {
        Ok(())
    } else {
        Err(BlockError::ProofLength {
            expected: 0,
            got: uncles.len() as u64,
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

/// Hashes one piece whose bytes are given in order, in parts of any size: what
/// [`Verifier::verify_piece`] does with the whole piece at once, and a recheck with a piece
/// read in parts, so that a large piece never needs a buffer of its size.
#[derive(Debug)]
pub(crate) struct PieceStream {
    /// Bytes the piece has.
    size: u64,
    /// Bytes given so far.
    fed: u64,
    v1: Option<(Sha1, tessera_metainfo::Sha1Hash)>,
    v2: Option<V2Target>,
    /// The v2 leaf being hashed.
    leaf: Sha256,
    leaves: Vec<Sha256Hash>,
}

impl PieceStream {
    /// A stream for `piece` of the verifier's torrent.
    pub(crate) fn new(verifier: &Verifier<'_>, piece: u32) -> PieceStream {
        let in_range = piece < verifier.layout.num_pieces();
        PieceStream::with_targets(
            verifier.layout.piece_size(piece),
            verifier.v1_expected(piece).filter(|_| in_range),
            verifier.v2_target(piece).filter(|_| in_range),
        )
    }

    fn with_targets(
        size: u64,
        v1: Option<tessera_metainfo::Sha1Hash>,
        v2: Option<V2Target>,
    ) -> PieceStream {
        let leaf_count = v2.map_or(0, |t| t.file_bytes.div_ceil(BLOCK_SIZE));
        PieceStream {
            size,
            fed: 0,
            v1: v1.map(|h| (Sha1::new(), h)),
            v2,
            leaf: Sha256::new(),
            // At most a piece's worth of leaves (the piece length fits in `u32`).
            leaves: Vec::with_capacity(usize::try_from(leaf_count).unwrap_or(0)),
        }
    }

    /// Takes the next bytes of the piece.
    pub(crate) fn update(&mut self, mut data: &[u8]) {
        // In steps that end on the piece's 16 KiB boundaries: each step is fed to SHA-1 and to
        // the v2 leaf while it is still in L1 cache, rather than walking the data twice.
        while !data.is_empty() {
            let to_boundary = BLOCK_SIZE - self.fed % BLOCK_SIZE;
            let n = usize::try_from(to_boundary)
                .unwrap_or(usize::MAX)
                .min(data.len());
            let (step, rest) = data.split_at(n);
            if let Some((sha, _)) = self.v1.as_mut() {
                sha.update(step);
            }
            let end = self.fed.saturating_add(n as u64);
            if let Some(t) = self.v2 {
                if self.fed < t.file_bytes {
                    let in_file = usize::try_from(t.file_bytes - self.fed)
                        .unwrap_or(usize::MAX)
                        .min(n);
                    self.leaf.update(step.get(..in_file).unwrap_or(step));
                    if end % BLOCK_SIZE == 0 || end >= t.file_bytes {
                        let leaf = self.leaf.finalize_reset();
                        self.leaves.push(Sha256Hash(leaf.into()));
                    }
                }
            }
            self.fed = end;
            data = rest;
        }
    }

    /// The verdict: every hash the torrent carries for the piece must match, and exactly the
    /// piece's bytes must have been given.
    pub(crate) fn finish(self) -> PieceVerdict {
        if self.v1.is_none() && self.v2.is_none() {
            return PieceVerdict::Unverifiable;
        }
        let whole = self.fed == self.size;
        let v1_bad = match self.v1 {
            Some((sha, expected)) => !whole || sha.finalize().as_slice() != expected.0.as_slice(),
            None => false,
        };
        let v2_bad = self
            .v2
            .is_some_and(|t| !whole || reduce(&self.leaves, t.height) != t.expected);
        verdict(v1_bad, v2_bad)
    }
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

    /// A piece fed to a [`PieceStream`] in parts of any size, on or off block boundaries,
    /// gets the verdict of the whole piece at once.
    #[test]
    fn stream_in_any_parts_matches_the_whole() {
        use tessera_metainfo::{TorrentBuilder, TorrentVersion};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        std::fs::create_dir(&root).unwrap();
        let gen = |seed: u8, n: usize| -> Vec<u8> {
            (0..n)
                .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed))
                .collect()
        };
        std::fs::write(root.join("a"), gen(3, 150_001)).unwrap();
        std::fs::write(root.join("b"), gen(5, 20_000)).unwrap();
        for version in [
            TorrentVersion::V1,
            TorrentVersion::V2,
            TorrentVersion::Hybrid,
        ] {
            let t = TorrentBuilder::new(&root)
                .version(version)
                .piece_length(65_536)
                .build()
                .unwrap();
            let meta = Metainfo::from_bytes(t.bytes).unwrap();
            let layout = Layout::new(&meta).unwrap();
            let v = Verifier::new(&meta, &layout);
            let mem = crate::MemoryBackend::new(&layout);
            for (i, f) in layout.files().iter().enumerate() {
                if !f.padding {
                    let data = std::fs::read(dir.path().join(&f.path)).unwrap();
                    crate::Backend::write_at(&mem, i, 0, &data).unwrap();
                }
            }
            for piece in 0..layout.num_pieces() {
                let mut data = crate::read_piece(&mem, &layout, piece).unwrap();
                for corrupt in [false, true] {
                    if corrupt {
                        data[7] ^= 1;
                    }
                    let whole = v.verify_piece(piece, &data);
                    assert_eq!(whole.is_ok(), !corrupt, "{version:?} piece {piece}");
                    for step in [1usize, 1000, 16_383, 16_384, 16_385, 40_000] {
                        let mut s = PieceStream::new(&v, piece);
                        for part in data.chunks(step) {
                            s.update(part);
                        }
                        assert_eq!(s.finish(), whole, "{version:?} piece {piece} step {step}");
                    }
                    // Too few bytes fail.
                    let mut s = PieceStream::new(&v, piece);
                    s.update(&data[..data.len() - 1]);
                    assert!(!s.finish().is_ok());
                }
            }
        }
    }
}
