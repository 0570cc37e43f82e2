//! The piece picker: which blocks to request from which peer.
//!
//! The picker knows what we have, what each piece's priority is, how many connected peers have
//! each piece, and which blocks are requested from whom. Given a peer and what it has,
//! [`PiecePicker::pick`] hands out blocks in this order:
//!
//! 1. free blocks of pieces this peer is already downloading (so pieces complete quickly and
//!    a bad piece is likely to come from one peer);
//! 2. free blocks of other pieces in progress, highest priority first;
//! 3. new pieces: highest priority first, then rarest first with random tie-breaks (or lowest
//!    index first in sequential mode);
//! 4. in endgame (every wanted piece is requested or received in full), blocks already
//!    requested from someone else, up to [`PickerConfig::endgame_max_requesters`] peers a block.
//!
//! ```text
//!   HAVE / BITFIELD / seeds ──▶ availability ──▶ tiers: priority 7..1, each a vector of piece
//!                                                indices bucketed by availability
//!   pick ─▶ affinity ─▶ other partials ─▶ tiers (rarest first) ─▶ endgame duplicates
//!                                            │ a picked piece moves to the partial list
//!   block_received ─▶ piece_complete ─▶ (caller hashes) ─▶ piece_passed / piece_failed
//! ```
//!
//! # Complexity
//!
//! `n` is the number of pieces, `P` the number of pieces in progress (the partial list: a
//! few per peer), `b` the blocks in a piece, `A` the highest availability bucket (at most the
//! number of connected non-seed peers, capped at 1024).
//!
//! * Pieces that can start (wanted, not had, not in progress) live in seven *tiers*, one per
//!   priority. A tier is one vector of piece indices sorted by availability, with the start of
//!   each availability bucket recorded, as in libtorrent's `piece_picker`. A HAVE moves a piece
//!   to the next bucket by swapping it with the bucket's edge: O(1). Starting or returning a
//!   piece costs O(A) swaps. Seeds are counted apart ([`PiecePicker::add_seed`]) since they
//!   raise every piece alike: O(1) and no reordering.
//! * A BITFIELD with more than 64 pieces only updates the counts and marks the tiers dirty;
//!   the next [`pick`](PiecePicker::pick) rebuilds them with a counting sort in O(n). So a burst
//!   of peers joining costs one rebuild, not one per peer.
//! * [`pick`](PiecePicker::pick) walks the affinity and partial lists (O(P·b)), then the tiers
//!   from the best bucket down, starting each bucket at a random offset (the random tie-break),
//!   and stops as soon as it has enough blocks. For a peer that has most pieces this is a few
//!   steps. For a peer whose pieces we mostly have or that has few pieces, the walk gives up
//!   after 2048 pieces and instead looks at the peer's own pieces: O(n/8) to walk its bitfield
//!   plus O(k log k) to sort the k candidates. So no call costs more than about O(n/8 + k log k)
//!   whatever the torrent's size. Sequential mode keeps each tier in a `BTreeSet` as well.
//! * Memory: 12 bytes and one tier slot per piece, one state per block of a piece in
//!   progress only, at most `endgame_max_requesters` requesters per block, and per peer the
//!   pieces it has requests in.
//!
//! The picker is sans-IO: no clock, no I/O, and its random choices come from a small PRNG
//! seeded from [`PickerConfig::seed`], so a run is reproducible.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use tessera_store::{Bitfield, Layout};

use crate::PeerKey;

/// Bytes in a block, the unit of a request: every block of a piece is this long but the
/// piece's last, which may be shorter ([`Layout::block_len`]).
pub const BLOCK_LEN: u32 = 16 * 1024;
const _: () = assert!(BLOCK_LEN == tessera_store::BLOCK_SIZE);

/// Priority of a piece that is never picked.
pub const PRIORITY_SKIP: u8 = 0;
/// Priority every piece starts with.
pub const PRIORITY_DEFAULT: u8 = 4;
/// The highest priority; higher values are clamped to it.
pub const PRIORITY_MAX: u8 = 7;

/// One tier per non-zero priority.
const TIERS: usize = PRIORITY_MAX as usize;
/// Availabilities from here up share one bucket: rarest-first has nothing to gain from telling
/// 1024 holders from 1025, and it bounds a tier's bucket table whatever the caller counts.
const MAX_BUCKET: u32 = 1023;
/// Pieces `pick` looks at in tier order before it switches to the peer's own pieces.
const SCAN_BUDGET: usize = 2048;
/// A bitfield with more pieces than this marks the tiers dirty instead of moving each piece.
const BULK_UPDATE: u32 = 64;

/// One block of one piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRef {
    /// Piece index.
    pub piece: u32,
    /// Block index within the piece.
    pub block: u32,
}

impl BlockRef {
    /// Byte offset of the block in its piece: `block * BLOCK_LEN` (saturating, for indices no
    /// real piece has).
    pub fn begin(&self) -> u32 {
        self.block.saturating_mul(BLOCK_LEN)
    }
}

/// How a [`PiecePicker`] behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PickerConfig {
    /// Seed of the random tie-breaks: the same seed and calls give the same picks.
    pub seed: u64,
    /// Start new pieces in index order instead of rarest first (streaming).
    pub sequential: bool,
    /// In endgame, at most this many peers request one block (values below 1 count as 1,
    /// which turns endgame off).
    pub endgame_max_requesters: u8,
}

impl Default for PickerConfig {
    fn default() -> Self {
        PickerConfig {
            seed: 0,
            sequential: false,
            endgame_max_requesters: 2,
        }
    }
}

/// What [`PiecePicker::block_received`] made of a block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Received {
    /// The block had already been received, was requested from nobody, or is out of range:
    /// the caller must drop the data.
    pub duplicate: bool,
    /// Every block of the piece is now received: the caller hashes it, then calls
    /// [`PiecePicker::piece_passed`] or [`PiecePicker::piece_failed`].
    pub piece_complete: bool,
    /// Other peers that had also been asked for this block (endgame): the caller sends them
    /// CANCEL.
    pub cancel: Vec<PeerKey>,
}

impl Received {
    fn ignored() -> Self {
        Received {
            duplicate: true,
            ..Received::default()
        }
    }
}

/// The piece picker. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct PiecePicker {
    pieces: Vec<PieceState>,
    blocks: BlockCounts,
    have: Bitfield,
    num_have: u32,
    /// Pieces with priority > 0 that we lack.
    wanted_missing: u32,
    seeds: u32,
    /// `tiers[p - 1]` holds the startable pieces of priority `p`. Stale while `dirty`.
    tiers: [Tier; TIERS],
    /// Pieces in [`Place::Tier`].
    pickable: usize,
    dirty: bool,
    /// In sequential mode: the startable pieces of each tier in index order.
    seq: Option<Box<[BTreeSet<u32>; TIERS]>>,
    partials: Vec<Partial>,
    peers: BTreeMap<PeerKey, PeerRequests>,
    rng: SplitMix64,
    scan_budget: usize,
    config: PickerConfig,
}

/// Where a piece is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Verified.
    Had,
    /// Not had, priority 0, not in progress.
    Idle,
    /// Not had, priority > 0, not in progress: in its tier at `pos` (unless dirty).
    Tier,
    /// In progress: `partials[pos]`. Any priority.
    Partial,
}

#[derive(Debug, Clone, Copy)]
struct PieceState {
    /// Non-seed peers that have the piece.
    avail: u32,
    pos: u32,
    prio: u8,
    place: Place,
}

/// Blocks per piece: one number for most torrents (every piece but the last alike), one per
/// piece when the layout is irregular (v2 torrents, whose files each end in a short piece).
#[derive(Debug, Clone)]
enum BlockCounts {
    Uniform { blocks: u32, last: u32, pieces: u32 },
    PerPiece(Vec<u32>),
}

impl BlockCounts {
    fn new(layout: &Layout) -> Self {
        let pieces = layout.num_pieces();
        let blocks = layout.block_count(0);
        let last = layout.block_count(pieces.saturating_sub(1));
        if (1..pieces.saturating_sub(1)).all(|p| layout.block_count(p) == blocks) {
            BlockCounts::Uniform {
                blocks,
                last,
                pieces,
            }
        } else {
            BlockCounts::PerPiece((0..pieces).map(|p| layout.block_count(p)).collect())
        }
    }

    fn get(&self, piece: u32) -> u32 {
        match self {
            BlockCounts::Uniform {
                blocks,
                last,
                pieces,
            } => {
                if piece >= *pieces {
                    0
                } else if piece + 1 == *pieces {
                    *last
                } else {
                    *blocks
                }
            }
            BlockCounts::PerPiece(v) => v.get(piece as usize).copied().unwrap_or(0),
        }
    }
}

/// Startable pieces of one priority, sorted by availability bucket. Bucket `b` is
/// `order[starts[b]..starts[b + 1]]` (the last bucket ends at `order.len()`); within a bucket
/// the order is arbitrary.
#[derive(Debug, Clone, Default)]
struct Tier {
    order: Vec<u32>,
    starts: Vec<u32>,
}

impl Tier {
    fn begin(&self, b: usize) -> usize {
        self.starts.get(b).map_or(self.order.len(), |&s| s as usize)
    }

    fn end(&self, b: usize) -> usize {
        self.begin(b + 1)
    }

    fn ensure(&mut self, b: usize) {
        while self.starts.len() <= b {
            self.starts.push(self.order.len() as u32);
        }
    }

    fn shift_start(&mut self, b: usize, up: bool) {
        if let Some(s) = self.starts.get_mut(b) {
            *s = if up {
                s.saturating_add(1)
            } else {
                s.saturating_sub(1)
            };
        }
    }

    /// Swaps two slots and records the pieces' new positions.
    fn swap(&mut self, pieces: &mut [PieceState], i: usize, j: usize) {
        if i != j && i < self.order.len() && j < self.order.len() {
            self.order.swap(i, j);
        }
        for k in [i, j] {
            if let Some(st) = self.order.get(k).and_then(|&p| pieces.get_mut(p as usize)) {
                st.pos = k as u32;
            }
        }
    }

    /// Adds `piece` to bucket `b`: append, then move the first element of each higher bucket
    /// to that bucket's end, walking the hole down to bucket `b`. O(buckets above `b`).
    fn insert(&mut self, pieces: &mut [PieceState], piece: u32, b: usize) {
        self.ensure(b);
        let mut cur = self.order.len();
        self.order.push(piece);
        if let Some(st) = pieces.get_mut(piece as usize) {
            st.pos = cur as u32;
        }
        for k in (b + 1..self.starts.len()).rev() {
            let first = self.begin(k);
            self.swap(pieces, cur, first);
            self.shift_start(k, true);
            cur = first;
        }
    }

    /// Removes `piece` from bucket `b`, the reverse of [`insert`](Self::insert).
    fn remove(&mut self, pieces: &mut [PieceState], piece: u32, b: usize) {
        let Some(mut cur) = pieces.get(piece as usize).map(|st| st.pos as usize) else {
            return;
        };
        if self.order.get(cur) != Some(&piece) {
            return;
        }
        let nb = self.starts.len();
        for k in b..nb {
            let last = self.end(k).saturating_sub(1);
            self.swap(pieces, cur, last);
            self.shift_start(k + 1, false);
            cur = last;
        }
        self.order.pop();
        while self
            .starts
            .last()
            .is_some_and(|&s| s as usize >= self.order.len())
        {
            self.starts.pop();
        }
    }

    /// Moves `piece` from bucket `b` to `b + 1`: swap it to the end of `b`, which becomes the
    /// start of `b + 1`. O(1).
    fn move_up(&mut self, pieces: &mut [PieceState], piece: u32, b: usize) {
        self.ensure(b + 1);
        let Some(pos) = pieces.get(piece as usize).map(|st| st.pos as usize) else {
            return;
        };
        let last = self.end(b).saturating_sub(1);
        self.swap(pieces, pos, last);
        self.shift_start(b + 1, false);
    }

    /// Moves `piece` from bucket `b` (> 0) to `b - 1`. O(1).
    fn move_down(&mut self, pieces: &mut [PieceState], piece: u32, b: usize) {
        let Some(pos) = pieces.get(piece as usize).map(|st| st.pos as usize) else {
            return;
        };
        let first = self.begin(b);
        self.swap(pieces, pos, first);
        self.shift_start(b, true);
    }
}

/// The state of one block of a piece in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    Free,
    /// Requested from `by` and (endgame) from `more`, never the same peer twice.
    Requested {
        by: PeerKey,
        more: Vec<PeerKey>,
    },
    Received,
}

impl Block {
    fn requested_by(&self, peer: PeerKey) -> bool {
        matches!(self, Block::Requested { by, more } if *by == peer || more.contains(&peer))
    }
}

/// A piece in progress.
#[derive(Debug, Clone)]
struct Partial {
    piece: u32,
    blocks: Vec<Block>,
    /// Blocks in [`Block::Requested`].
    requested: u32,
    /// Blocks in [`Block::Received`].
    received: u32,
}

impl Partial {
    fn free(&self) -> u32 {
        (self.blocks.len() as u32)
            .saturating_sub(self.requested)
            .saturating_sub(self.received)
    }

    /// Takes `peer` off the requesters of `block`; the block is free again when nobody is
    /// left. Returns whether `peer` was a requester.
    fn unrequest(&mut self, block: usize, peer: PeerKey) -> bool {
        let Some(state) = self.blocks.get_mut(block) else {
            return false;
        };
        let Block::Requested { by, more } = state else {
            return false;
        };
        if *by == peer {
            match more.pop() {
                Some(next) => *by = next,
                None => {
                    *state = Block::Free;
                    self.requested = self.requested.saturating_sub(1);
                }
            }
            true
        } else if let Some(i) = more.iter().position(|&p| p == peer) {
            more.swap_remove(i);
            true
        } else {
            false
        }
    }
}

/// The requests one peer has outstanding.
#[derive(Debug, Clone, Default)]
struct PeerRequests {
    outstanding: usize,
    /// Pieces with requests, and how many.
    pieces: Vec<(u32, u32)>,
}

impl PeerRequests {
    fn add(&mut self, piece: u32, n: u32) {
        self.outstanding += n as usize;
        match self.pieces.iter_mut().find(|(p, _)| *p == piece) {
            Some((_, c)) => *c += n,
            None => self.pieces.push((piece, n)),
        }
    }

    fn remove(&mut self, piece: u32, n: u32) {
        if let Some(i) = self.pieces.iter().position(|(p, _)| *p == piece) {
            if let Some((_, c)) = self.pieces.get_mut(i) {
                let took = n.min(*c);
                *c -= took;
                self.outstanding = self.outstanding.saturating_sub(took as usize);
                if *c == 0 {
                    self.pieces.swap_remove(i);
                }
            }
        }
    }
}

fn bucket(avail: u32) -> usize {
    avail.min(MAX_BUCKET) as usize
}

/// The tier of a priority (1..=7).
fn tier_of(prio: u8) -> usize {
    usize::from(prio.clamp(1, PRIORITY_MAX) - 1)
}

impl PiecePicker {
    /// A picker for the pieces of `layout`, of which we have those in `have` (bits past the
    /// piece count are ignored). Every piece starts at [`PRIORITY_DEFAULT`] and availability 0.
    pub fn new(layout: &Layout, have: &Bitfield, config: PickerConfig) -> Self {
        let num = layout.num_pieces();
        let mut own = Bitfield::new(num);
        let mut num_have = 0;
        let mut pieces = Vec::with_capacity(num as usize);
        for piece in 0..num {
            let had = have.get(piece);
            if had {
                own.set(piece, true);
                num_have += 1;
            }
            pieces.push(PieceState {
                avail: 0,
                pos: 0,
                prio: PRIORITY_DEFAULT,
                place: if had { Place::Had } else { Place::Tier },
            });
        }
        let missing = num - num_have;
        let mut picker = PiecePicker {
            pieces,
            blocks: BlockCounts::new(layout),
            have: own,
            num_have,
            wanted_missing: missing,
            seeds: 0,
            tiers: Default::default(),
            pickable: missing as usize,
            dirty: true,
            seq: None,
            partials: Vec::new(),
            peers: BTreeMap::new(),
            rng: SplitMix64::new(config.seed),
            scan_budget: SCAN_BUDGET,
            config,
        };
        if picker.config.sequential {
            picker.build_seq();
        }
        picker.clean();
        picker
    }

    /// The configuration.
    pub fn config(&self) -> &PickerConfig {
        &self.config
    }

    /// Number of pieces in the torrent.
    pub fn num_pieces(&self) -> u32 {
        self.pieces.len() as u32
    }

    /// Number of blocks in `piece` (0 past the end).
    pub fn blocks_in_piece(&self, piece: u32) -> u32 {
        self.blocks.get(piece)
    }

    /// Sets the priority of `piece`: 0 never picks it, 1..=7 picks higher first (values above
    /// 7 count as 7). Blocks already requested stay requested. Out-of-range pieces are ignored.
    pub fn set_piece_priority(&mut self, piece: u32, priority: u8) {
        let prio = priority.min(PRIORITY_MAX);
        let Some(st) = self.pieces.get(piece as usize).copied() else {
            return;
        };
        if st.prio == prio {
            return;
        }
        if st.place != Place::Had {
            match (st.prio > 0, prio > 0) {
                (true, false) => self.wanted_missing -= 1,
                (false, true) => self.wanted_missing += 1,
                _ => {}
            }
        }
        match st.place {
            Place::Had | Place::Partial => self.set_prio(piece, prio),
            Place::Idle => {
                self.set_prio(piece, prio);
                if prio > 0 {
                    self.enter_tier(piece);
                }
            }
            Place::Tier => {
                self.leave_tier(piece, Place::Idle);
                self.set_prio(piece, prio);
                if prio > 0 {
                    self.enter_tier(piece);
                }
            }
        }
    }

    /// The priority of `piece` (0 past the end).
    pub fn piece_priority(&self, piece: u32) -> u8 {
        self.pieces.get(piece as usize).map_or(0, |st| st.prio)
    }

    /// Starts new pieces in index order (`true`) or rarest first (`false`).
    pub fn set_sequential(&mut self, on: bool) {
        self.config.sequential = on;
        if on {
            if self.seq.is_none() {
                self.build_seq();
            }
        } else {
            self.seq = None;
        }
    }

    /// A peer that has every piece connected. Seeds are counted apart from the per-piece
    /// counts: O(1), and they do not change which piece is rarest.
    pub fn add_seed(&mut self) {
        self.seeds = self.seeds.saturating_add(1);
    }

    /// A peer that has every piece left (or a seed counted with [`add_seed`](Self::add_seed)).
    pub fn remove_seed(&mut self) {
        self.seeds = self.seeds.saturating_sub(1);
    }

    /// Number of seeds counted with [`add_seed`](Self::add_seed).
    pub fn num_seeds(&self) -> u32 {
        self.seeds
    }

    /// A peer announced `piece` (HAVE). Out-of-range pieces are ignored. The caller counts each
    /// peer's piece once (it keeps the peer's bitfield).
    pub fn inc_availability(&mut self, piece: u32) {
        let Some(st) = self.pieces.get_mut(piece as usize) else {
            return;
        };
        let old = bucket(st.avail);
        st.avail = st.avail.saturating_add(1);
        let (new, place, prio) = (bucket(st.avail), st.place, st.prio);
        if place == Place::Tier && !self.dirty && new != old {
            if let Some(tier) = self.tiers.get_mut(tier_of(prio)) {
                tier.move_up(&mut self.pieces, piece, old);
            }
        }
    }

    /// A peer no longer has `piece` (lt_donthave). Out-of-range pieces and counts already at 0
    /// are ignored.
    pub fn dec_availability(&mut self, piece: u32) {
        let Some(st) = self.pieces.get_mut(piece as usize) else {
            return;
        };
        if st.avail == 0 {
            return;
        }
        let old = bucket(st.avail);
        st.avail -= 1;
        let (new, place, prio) = (bucket(st.avail), st.place, st.prio);
        if place == Place::Tier && !self.dirty && new != old {
            if let Some(tier) = self.tiers.get_mut(tier_of(prio)) {
                tier.move_down(&mut self.pieces, piece, old);
            }
        }
    }

    /// A peer sent its BITFIELD: every piece in it gains one holder. A peer with every piece
    /// is better counted with [`add_seed`](Self::add_seed).
    pub fn add_bitfield(&mut self, peer_has: &Bitfield) {
        for (n, piece) in (1u32..).zip(peer_has.iter_ones()) {
            if piece >= self.num_pieces() {
                break;
            }
            if n > BULK_UPDATE {
                self.dirty = true;
            }
            self.inc_availability(piece);
        }
    }

    /// A peer that sent `peer_has` (its bitfield and HAVEs since) left.
    pub fn remove_bitfield(&mut self, peer_has: &Bitfield) {
        for (n, piece) in (1u32..).zip(peer_has.iter_ones()) {
            if piece >= self.num_pieces() {
                break;
            }
            if n > BULK_UPDATE {
                self.dirty = true;
            }
            self.dec_availability(piece);
        }
    }

    /// How many connected peers have `piece`, seeds included (0 past the end).
    pub fn availability(&self, piece: u32) -> u32 {
        self.pieces
            .get(piece as usize)
            .map_or(0, |st| st.avail.saturating_add(self.seeds))
    }

    /// Picks up to `max` blocks for `peer` to request, appends them to `out` and records them
    /// as requested by `peer`.
    ///
    /// `peer_has` is what the peer has (ignored when `peer_is_seed`). With `only`, only those
    /// pieces are eligible (the allowed-fast set while the peer chokes us). See the
    /// [module documentation](self) for the order of preference.
    pub fn pick(
        &mut self,
        peer: PeerKey,
        peer_has: &Bitfield,
        peer_is_seed: bool,
        only: Option<&[u32]>,
        max: usize,
        out: &mut Vec<BlockRef>,
    ) {
        if max == 0 || self.wanted_missing == 0 {
            return;
        }
        self.clean();
        let eligible = |me: &PiecePicker, piece: u32| {
            me.wants(piece)
                && (peer_is_seed || peer_has.get(piece))
                && only.is_none_or(|o| o.contains(&piece))
        };
        let mut left = max;

        // 1. Pieces this peer is already downloading.
        let mine: Vec<u32> = self
            .peers
            .get(&peer)
            .map(|r| r.pieces.iter().map(|&(p, _)| p).collect())
            .unwrap_or_default();
        for &piece in &mine {
            if left == 0 {
                return;
            }
            if eligible(self, piece) {
                left -= self.request_free(piece, peer, left, out);
            }
        }

        // 2. Other pieces in progress, highest priority first, then those nearest completion
        // (or lowest index in sequential mode).
        let sequential = self.config.sequential;
        let mut others: Vec<(Reverse<u8>, u32, u32)> = self
            .partials
            .iter()
            .filter(|p| p.free() > 0 && !mine.contains(&p.piece) && eligible(self, p.piece))
            .map(|p| {
                let key = if sequential { p.piece } else { p.free() };
                (Reverse(self.piece_priority(p.piece)), key, p.piece)
            })
            .collect();
        others.sort_unstable();
        for (_, _, piece) in others {
            if left == 0 {
                return;
            }
            left -= self.request_free(piece, peer, left, out);
        }

        // 3. New pieces.
        if left > 0 {
            for piece in self.choose_new(peer_has, peer_is_seed, only, left) {
                if left == 0 {
                    return;
                }
                self.start_piece(piece);
                left -= self.request_free(piece, peer, left, out);
            }
        }

        // 4. Endgame: blocks others are already fetching.
        if left > 0 && self.in_endgame() {
            self.pick_endgame(peer, eligible, left, out);
        }
    }

    /// `peer`'s request for `block` is gone (choked, rejected, timed out). The block is free
    /// again unless others still request it or it was received. Unknown requests are ignored.
    pub fn cancel_request(&mut self, block: BlockRef, peer: PeerKey) {
        let Some(idx) = self.partial_index(block.piece) else {
            return;
        };
        let removed = self
            .partials
            .get_mut(idx)
            .is_some_and(|p| p.unrequest(block.block as usize, peer));
        if removed {
            self.peer_remove(peer, block.piece, 1);
            self.release_if_idle(idx);
        }
    }

    /// `peer` disconnected: all its requests are cancelled.
    pub fn peer_gone(&mut self, peer: PeerKey) {
        let Some(reqs) = self.peers.remove(&peer) else {
            return;
        };
        for (piece, _) in reqs.pieces {
            let Some(idx) = self.partial_index(piece) else {
                continue;
            };
            if let Some(partial) = self.partials.get_mut(idx) {
                for b in 0..partial.blocks.len() {
                    partial.unrequest(b, peer);
                }
            }
            self.release_if_idle(idx);
        }
    }

    /// `block` arrived from `peer`. Blocks that were not requested from anyone, were already
    /// received or do not exist come back as [`Received::duplicate`]. A block requested from
    /// someone else is accepted (a late answer to a request that timed out).
    pub fn block_received(&mut self, block: BlockRef, peer: PeerKey) -> Received {
        let Some(idx) = self.partial_index(block.piece) else {
            return Received::ignored();
        };
        let Some(partial) = self.partials.get_mut(idx) else {
            return Received::ignored();
        };
        let Some(state) = partial.blocks.get_mut(block.block as usize) else {
            return Received::ignored();
        };
        let (by, more) = match state {
            Block::Requested { by, more } => (*by, std::mem::take(more)),
            Block::Free | Block::Received => return Received::ignored(),
        };
        *state = Block::Received;
        partial.requested = partial.requested.saturating_sub(1);
        partial.received += 1;
        let piece_complete = partial.received as usize == partial.blocks.len();
        let mut cancel = Vec::new();
        for r in std::iter::once(by).chain(more) {
            self.peer_remove(r, block.piece, 1);
            if r != peer {
                cancel.push(r);
            }
        }
        Received {
            duplicate: false,
            piece_complete,
            cancel,
        }
    }

    /// The piece passed its hash check: we have it. Any requests still in it are forgotten.
    pub fn piece_passed(&mut self, piece: u32) {
        let Some(st) = self.pieces.get(piece as usize).copied() else {
            return;
        };
        match st.place {
            Place::Had => return,
            Place::Idle => {}
            Place::Tier => self.leave_tier(piece, Place::Had),
            Place::Partial => self.drop_partial(st.pos as usize),
        }
        if let Some(st) = self.pieces.get_mut(piece as usize) {
            st.place = Place::Had;
        }
        self.have.set(piece, true);
        self.num_have += 1;
        if st.prio > 0 {
            self.wanted_missing -= 1;
        }
    }

    /// The piece failed its hash check: all its blocks are free again (requests still in it
    /// are forgotten). Ignored unless the piece is in progress.
    pub fn piece_failed(&mut self, piece: u32) {
        if let Some(idx) = self.partial_index(piece) {
            self.drop_partial(idx);
            self.restore(piece);
        }
    }

    /// True if we have `piece`.
    pub fn have(&self, piece: u32) -> bool {
        self.have.get(piece)
    }

    /// The pieces we have.
    pub fn have_bitfield(&self) -> &Bitfield {
        &self.have
    }

    /// Number of pieces we have.
    pub fn num_have(&self) -> u32 {
        self.num_have
    }

    /// True if we have every piece with priority > 0.
    pub fn is_finished(&self) -> bool {
        self.wanted_missing == 0
    }

    /// True if we have every piece.
    pub fn is_seed(&self) -> bool {
        self.num_have == self.num_pieces()
    }

    /// True if every wanted piece we lack has all its blocks requested or received (and some
    /// wanted piece is still missing): requested blocks may then go to a second peer.
    pub fn in_endgame(&self) -> bool {
        self.wanted_missing > 0
            && self.pickable == 0
            && self
                .partials
                .iter()
                .all(|p| p.free() == 0 || self.piece_priority(p.piece) == 0)
    }

    /// True if `piece` has priority > 0 and we lack it.
    pub fn wants(&self, piece: u32) -> bool {
        self.pieces
            .get(piece as usize)
            .is_some_and(|st| st.prio > 0 && st.place != Place::Had)
    }

    /// True if the peer has a piece we want. O(1) for a seed, else O(pieces it has).
    pub fn is_interesting(&self, peer_has: &Bitfield, peer_is_seed: bool) -> bool {
        if peer_is_seed {
            return self.wanted_missing > 0;
        }
        self.wanted_missing > 0 && peer_has.iter_ones().any(|p| self.wants(p))
    }

    /// Blocks requested from `peer` and not yet received.
    pub fn outstanding(&self, peer: PeerKey) -> usize {
        self.peers.get(&peer).map_or(0, |r| r.outstanding)
    }

    /// Number of pieces in progress (some block requested or received, not yet verified).
    pub fn num_partial(&self) -> usize {
        self.partials.len()
    }

    // ---- internals ----

    fn partial_index(&self, piece: u32) -> Option<usize> {
        self.pieces
            .get(piece as usize)
            .filter(|st| st.place == Place::Partial)
            .map(|st| st.pos as usize)
    }

    fn set_place(&mut self, piece: u32, place: Place) {
        if let Some(st) = self.pieces.get_mut(piece as usize) {
            st.place = place;
        }
    }

    fn set_prio(&mut self, piece: u32, prio: u8) {
        if let Some(st) = self.pieces.get_mut(piece as usize) {
            st.prio = prio;
        }
    }

    /// Rebuilds the tiers if a bulk update left them stale.
    fn clean(&mut self) {
        if self.dirty {
            self.rebuild();
        }
    }

    /// Counting sort of the startable pieces into their tiers and buckets, then a shuffle of
    /// each bucket. O(n + buckets).
    fn rebuild(&mut self) {
        let mut counts: [Vec<u32>; TIERS] = Default::default();
        for st in self.pieces.iter().filter(|st| st.place == Place::Tier) {
            if let Some(c) = counts.get_mut(tier_of(st.prio)) {
                let b = bucket(st.avail);
                if c.len() <= b {
                    c.resize(b + 1, 0);
                }
                if let Some(x) = c.get_mut(b) {
                    *x += 1;
                }
            }
        }
        for (tier, c) in self.tiers.iter_mut().zip(&counts) {
            tier.starts.clear();
            let mut acc = 0u32;
            for &n in c {
                tier.starts.push(acc);
                acc += n;
            }
            tier.order.clear();
            tier.order.resize(acc as usize, 0);
        }
        let mut fill: Vec<Vec<u32>> = self.tiers.iter().map(|t| t.starts.clone()).collect();
        for (piece, st) in (0u32..).zip(self.pieces.iter_mut()) {
            if st.place != Place::Tier {
                continue;
            }
            let t = tier_of(st.prio);
            let slot = fill.get_mut(t).and_then(|f| f.get_mut(bucket(st.avail)));
            if let (Some(f), Some(tier)) = (slot, self.tiers.get_mut(t)) {
                if let Some(x) = tier.order.get_mut(*f as usize) {
                    *x = piece;
                }
                *f += 1;
            }
        }
        for tier in &mut self.tiers {
            for b in 0..tier.starts.len() {
                let (s, e) = (tier.begin(b), tier.end(b));
                if let Some(slice) = tier.order.get_mut(s..e) {
                    self.rng.shuffle(slice);
                }
            }
            while tier
                .starts
                .last()
                .is_some_and(|&s| s as usize >= tier.order.len())
            {
                tier.starts.pop();
            }
            for (i, &p) in tier.order.iter().enumerate() {
                if let Some(st) = self.pieces.get_mut(p as usize) {
                    st.pos = i as u32;
                }
            }
        }
        self.dirty = false;
    }

    fn build_seq(&mut self) {
        let mut seq: Box<[BTreeSet<u32>; TIERS]> = Box::default();
        for (piece, st) in (0u32..).zip(&self.pieces) {
            if st.place == Place::Tier {
                if let Some(set) = seq.get_mut(tier_of(st.prio)) {
                    set.insert(piece);
                }
            }
        }
        self.seq = Some(seq);
    }

    /// `piece` (priority > 0, neither had nor in progress) becomes startable.
    fn enter_tier(&mut self, piece: u32) {
        let Some(st) = self.pieces.get_mut(piece as usize) else {
            return;
        };
        st.place = Place::Tier;
        let (t, b) = (tier_of(st.prio), bucket(st.avail));
        self.pickable += 1;
        if !self.dirty {
            if let Some(tier) = self.tiers.get_mut(t) {
                tier.insert(&mut self.pieces, piece, b);
            }
        }
        if let Some(set) = self.seq.as_mut().and_then(|s| s.get_mut(t)) {
            set.insert(piece);
        }
    }

    /// `piece` leaves its tier for `to`.
    fn leave_tier(&mut self, piece: u32, to: Place) {
        let Some(st) = self.pieces.get(piece as usize).copied() else {
            return;
        };
        let t = tier_of(st.prio);
        self.pickable = self.pickable.saturating_sub(1);
        if !self.dirty {
            if let Some(tier) = self.tiers.get_mut(t) {
                tier.remove(&mut self.pieces, piece, bucket(st.avail));
            }
        }
        if let Some(set) = self.seq.as_mut().and_then(|s| s.get_mut(t)) {
            set.remove(&piece);
        }
        if let Some(st) = self.pieces.get_mut(piece as usize) {
            st.place = to;
        }
    }

    /// A piece no longer in progress goes back to its tier (or idle at priority 0).
    fn restore(&mut self, piece: u32) {
        let Some(prio) = self.pieces.get(piece as usize).map(|st| st.prio) else {
            return;
        };
        if prio > 0 {
            self.enter_tier(piece);
        } else {
            self.set_place(piece, Place::Idle);
        }
    }

    /// Moves a startable piece to the partial list.
    fn start_piece(&mut self, piece: u32) {
        let n = self.blocks.get(piece);
        self.leave_tier(piece, Place::Partial);
        let pos = self.partials.len() as u32;
        self.partials.push(Partial {
            piece,
            blocks: vec![Block::Free; n as usize],
            requested: 0,
            received: 0,
        });
        if let Some(st) = self.pieces.get_mut(piece as usize) {
            st.pos = pos;
        }
    }

    /// Removes `partials[idx]`, forgetting its requests. The piece's place is left to the
    /// caller.
    fn drop_partial(&mut self, idx: usize) {
        if idx >= self.partials.len() {
            return;
        }
        let partial = self.partials.swap_remove(idx);
        if let Some(moved) = self.partials.get(idx).map(|p| p.piece) {
            if let Some(st) = self.pieces.get_mut(moved as usize) {
                st.pos = idx as u32;
            }
        }
        for block in partial.blocks {
            if let Block::Requested { by, more } = block {
                for r in std::iter::once(by).chain(more) {
                    self.peer_remove(r, partial.piece, 1);
                }
            }
        }
    }

    /// Drops `partials[idx]` if nothing in it is requested or received.
    fn release_if_idle(&mut self, idx: usize) {
        let Some(p) = self.partials.get(idx) else {
            return;
        };
        if p.requested == 0 && p.received == 0 {
            let piece = p.piece;
            self.drop_partial(idx);
            self.restore(piece);
        }
    }

    fn peer_remove(&mut self, peer: PeerKey, piece: u32, n: u32) {
        if let Some(r) = self.peers.get_mut(&peer) {
            r.remove(piece, n);
            if r.outstanding == 0 && r.pieces.is_empty() {
                self.peers.remove(&peer);
            }
        }
    }

    /// Requests up to `left` free blocks of the piece in progress `piece` from `peer`.
    fn request_free(
        &mut self,
        piece: u32,
        peer: PeerKey,
        left: usize,
        out: &mut Vec<BlockRef>,
    ) -> usize {
        let Some(partial) = self
            .partial_index(piece)
            .and_then(|i| self.partials.get_mut(i))
        else {
            return 0;
        };
        let mut free = partial.free();
        let mut n = 0u32;
        for (b, state) in (0u32..).zip(partial.blocks.iter_mut()) {
            if n as usize == left || free == 0 {
                break;
            }
            if *state == Block::Free {
                *state = Block::Requested {
                    by: peer,
                    more: Vec::new(),
                };
                out.push(BlockRef { piece, block: b });
                n += 1;
                free -= 1;
            }
        }
        partial.requested += n;
        if n > 0 {
            self.peers.entry(peer).or_default().add(piece, n);
        }
        n as usize
    }

    /// The startable pieces to begin for a peer, best first, with at least `need` blocks in
    /// all (fewer if there are not enough).
    fn choose_new(
        &mut self,
        peer_has: &Bitfield,
        peer_is_seed: bool,
        only: Option<&[u32]>,
        need: usize,
    ) -> Vec<u32> {
        if self.pickable == 0 {
            return Vec::new();
        }
        let r = self.rng.next_u64();
        let has = |p: u32| peer_is_seed || peer_has.get(p);
        if let Some(only) = only {
            return self.choose_from(only.iter().copied(), has, r, need);
        }
        match self.scan_tiers(has, peer_is_seed, r, need) {
            Some(v) => v,
            None if peer_is_seed => Vec::new(),
            None => self.choose_from(peer_has.iter_ones(), has, r, need),
        }
    }

    /// Walks the tiers best first. `None` if the scan budget ran out first.
    fn scan_tiers(
        &self,
        has: impl Fn(u32) -> bool,
        unlimited: bool,
        r: u64,
        need: usize,
    ) -> Option<Vec<u32>> {
        let mut chosen = Vec::new();
        let mut blocks = 0usize;
        let mut scanned = 0usize;
        let mut visit = |p: u32| -> Option<bool> {
            scanned += 1;
            if !unlimited && scanned > self.scan_budget {
                return None;
            }
            let n = self.blocks.get(p) as usize;
            if n > 0 && has(p) {
                chosen.push(p);
                blocks += n;
            }
            Some(blocks >= need)
        };
        if let Some(seq) = &self.seq {
            for set in seq.iter().rev() {
                for &p in set {
                    if visit(p)? {
                        return Some(chosen);
                    }
                }
            }
        } else {
            for (t, tier) in self.tiers.iter().enumerate().rev() {
                for b in 0..tier.starts.len() {
                    let (s, e) = (tier.begin(b), tier.end(b));
                    let len = e.saturating_sub(s);
                    if len == 0 {
                        continue;
                    }
                    let off = (mix64(r ^ (((t as u64) << 32) | b as u64)) % len as u64) as usize;
                    for i in 0..len {
                        let Some(&p) = tier.order.get(s + (off + i) % len) else {
                            continue;
                        };
                        if visit(p)? {
                            return Some(chosen);
                        }
                    }
                }
            }
        }
        Some(chosen)
    }

    /// Sorts the startable pieces among `candidates` the way the tiers would.
    fn choose_from(
        &self,
        candidates: impl Iterator<Item = u32>,
        has: impl Fn(u32) -> bool,
        r: u64,
        need: usize,
    ) -> Vec<u32> {
        let sequential = self.seq.is_some();
        let mut keyed: Vec<(Reverse<u8>, u64, u32)> = candidates
            .filter_map(|p| {
                let st = self.pieces.get(p as usize)?;
                if st.place != Place::Tier || self.blocks.get(p) == 0 || !has(p) {
                    return None;
                }
                let key = if sequential {
                    u64::from(p)
                } else {
                    ((bucket(st.avail) as u64) << 32) | (mix64(r ^ u64::from(p)) >> 32)
                };
                Some((Reverse(st.prio), key, p))
            })
            .collect();
        keyed.sort_unstable();
        keyed.dedup_by_key(|k| k.2);
        let mut blocks = 0usize;
        let mut chosen = Vec::new();
        for (_, _, p) in keyed {
            if blocks >= need {
                break;
            }
            chosen.push(p);
            blocks += self.blocks.get(p) as usize;
        }
        chosen
    }

    /// Endgame: hands `peer` blocks requested from others (fewest requesters first, random
    /// among equals), at most `endgame_max_requesters` peers a block.
    fn pick_endgame(
        &mut self,
        peer: PeerKey,
        eligible: impl Fn(&PiecePicker, u32) -> bool,
        left: usize,
        out: &mut Vec<BlockRef>,
    ) {
        let cap = usize::from(self.config.endgame_max_requesters.max(1));
        if cap < 2 {
            return;
        }
        let r = self.rng.next_u64();
        let mut cands: Vec<(usize, Reverse<u8>, u64, usize, u32)> = Vec::new();
        for (i, partial) in self.partials.iter().enumerate() {
            if !eligible(self, partial.piece) {
                continue;
            }
            let prio = self.piece_priority(partial.piece);
            for (b, state) in (0u32..).zip(&partial.blocks) {
                if let Block::Requested { more, .. } = state {
                    let n = 1 + more.len();
                    if n < cap && !state.requested_by(peer) {
                        let tie = mix64(r ^ ((u64::from(partial.piece) << 32) | u64::from(b)));
                        cands.push((n, Reverse(prio), tie, i, b));
                    }
                }
            }
        }
        cands.sort_unstable();
        cands.truncate(left);
        for (_, _, _, i, b) in cands {
            let Some(partial) = self.partials.get_mut(i) else {
                continue;
            };
            if let Some(Block::Requested { more, .. }) = partial.blocks.get_mut(b as usize) {
                more.push(peer);
                let piece = partial.piece;
                out.push(BlockRef { piece, block: b });
                self.peers.entry(peer).or_default().add(piece, 1);
            }
        }
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny, fast generator, good enough for
/// tie-breaks and shuffles. Not for anything an attacker must not predict.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// Uniform in `0..n` (0 when `n` is 0), by Lemire's multiply-shift (bias below 2^-32 for
    /// the sizes used here).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Fisher–Yates shuffle.
    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// The SplitMix64 output function: a stateless 64-bit mixer.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};
    use tessera_metainfo::Metainfo;

    const A: PeerKey = PeerKey(1);
    const B: PeerKey = PeerKey(2);
    const C: PeerKey = PeerKey(3);

    /// A v1 single-file torrent of `total` bytes in pieces of `piece_len`.
    fn layout(piece_len: u64, total: u64) -> Layout {
        let n = total.div_ceil(piece_len) as usize;
        let mut b = format!(
            "d4:infod6:lengthi{total}e4:name1:a12:piece lengthi{piece_len}e6:pieces{}:",
            n * 20
        )
        .into_bytes();
        b.resize(b.len() + n * 20, 0);
        b.extend_from_slice(b"ee");
        Layout::new(&Metainfo::from_bytes(b).unwrap()).unwrap()
    }

    /// `pieces` pieces of `blocks` full blocks each.
    fn picker_with(pieces: u32, blocks: u32, config: PickerConfig) -> PiecePicker {
        let piece_len = u64::from(blocks) * u64::from(BLOCK_LEN);
        let l = layout(piece_len, piece_len * u64::from(pieces));
        PiecePicker::new(&l, &Bitfield::new(pieces), config)
    }

    fn picker(pieces: u32, blocks: u32) -> PiecePicker {
        picker_with(pieces, blocks, PickerConfig::default())
    }

    fn bits(n: u32, ones: &[u32]) -> Bitfield {
        let mut b = Bitfield::new(n);
        for &i in ones {
            b.set(i, true);
        }
        b
    }

    fn pick(p: &mut PiecePicker, peer: PeerKey, has: &Bitfield, max: usize) -> Vec<BlockRef> {
        let mut out = Vec::new();
        p.pick(peer, has, false, None, max, &mut out);
        p.check();
        out
    }

    fn pick_seed(p: &mut PiecePicker, peer: PeerKey, max: usize) -> Vec<BlockRef> {
        let mut out = Vec::new();
        p.pick(peer, &Bitfield::new(0), true, None, max, &mut out);
        p.check();
        out
    }

    fn pieces_of(blocks: &[BlockRef]) -> BTreeSet<u32> {
        blocks.iter().map(|b| b.piece).collect()
    }

    fn br(piece: u32, block: u32) -> BlockRef {
        BlockRef { piece, block }
    }

    impl PiecePicker {
        /// Checks every internal invariant against a recomputation from scratch.
        fn check(&self) {
            let n = self.num_pieces();
            assert_eq!(self.have.len(), n);
            let (mut have, mut missing, mut pickable) = (0, 0, 0);
            for (i, st) in (0u32..).zip(&self.pieces) {
                assert_eq!(self.have.get(i), st.place == Place::Had, "piece {i}");
                if st.place == Place::Had {
                    have += 1;
                } else if st.prio > 0 {
                    missing += 1;
                }
                assert!(st.prio <= PRIORITY_MAX);
                match st.place {
                    Place::Had => {}
                    Place::Idle => assert_eq!(st.prio, 0),
                    Place::Partial => assert_eq!(self.partials[st.pos as usize].piece, i),
                    Place::Tier => {
                        assert!(st.prio > 0);
                        pickable += 1;
                        let t = tier_of(st.prio);
                        if !self.dirty {
                            let tier = &self.tiers[t];
                            let pos = st.pos as usize;
                            assert_eq!(tier.order[pos], i);
                            let b = bucket(st.avail);
                            assert!(tier.begin(b) <= pos && pos < tier.end(b), "piece {i}");
                        }
                        if let Some(seq) = &self.seq {
                            assert!(seq[t].contains(&i));
                        }
                    }
                }
            }
            assert_eq!(self.num_have, have);
            assert_eq!(self.wanted_missing, missing);
            assert_eq!(self.pickable, pickable);
            if !self.dirty {
                let total: usize = self.tiers.iter().map(|t| t.order.len()).sum();
                assert_eq!(total, pickable);
                for (t, tier) in self.tiers.iter().enumerate() {
                    assert!(tier.starts.windows(2).all(|w| w[0] <= w[1]));
                    assert!(tier.starts.iter().all(|&s| s as usize <= tier.order.len()));
                    assert!(tier.starts.len() <= MAX_BUCKET as usize + 2);
                    for &p in &tier.order {
                        let st = self.pieces[p as usize];
                        assert_eq!((st.place, tier_of(st.prio)), (Place::Tier, t));
                    }
                }
            }
            if let Some(seq) = &self.seq {
                assert_eq!(seq.iter().map(BTreeSet::len).sum::<usize>(), pickable);
            }
            let cap = usize::from(self.config.endgame_max_requesters.max(1));
            let mut reqs: BTreeMap<PeerKey, BTreeMap<u32, u32>> = BTreeMap::new();
            for (i, p) in self.partials.iter().enumerate() {
                assert_eq!(self.pieces[p.piece as usize].place, Place::Partial);
                assert_eq!(self.pieces[p.piece as usize].pos as usize, i);
                assert_eq!(p.blocks.len() as u32, self.blocks.get(p.piece));
                let mut requested = 0;
                let mut received = 0;
                for b in &p.blocks {
                    match b {
                        Block::Free => {}
                        Block::Received => received += 1,
                        Block::Requested { by, more } => {
                            requested += 1;
                            let all: BTreeSet<PeerKey> =
                                std::iter::once(*by).chain(more.iter().copied()).collect();
                            assert_eq!(all.len(), 1 + more.len(), "a peer twice on a block");
                            assert!(all.len() <= cap);
                            for r in all {
                                *reqs.entry(r).or_default().entry(p.piece).or_default() += 1;
                            }
                        }
                    }
                }
                assert_eq!((p.requested, p.received), (requested, received));
                assert!(requested + received > 0, "idle partial {}", p.piece);
            }
            let got: BTreeMap<PeerKey, BTreeMap<u32, u32>> = self
                .peers
                .iter()
                .map(|(k, r)| {
                    let sum: u32 = r.pieces.iter().map(|&(_, c)| c).sum();
                    assert_eq!(sum as usize, r.outstanding);
                    assert!(r.pieces.iter().all(|&(_, c)| c > 0));
                    (*k, r.pieces.iter().copied().collect())
                })
                .collect();
            assert_eq!(got, reqs);
        }
    }

    #[test]
    fn block_ref_begin() {
        assert_eq!(br(3, 0).begin(), 0);
        assert_eq!(br(3, 2).begin(), 2 * BLOCK_LEN);
        assert_eq!(br(0, u32::MAX).begin(), u32::MAX);
    }

    #[test]
    fn new_counts_what_we_have() {
        let l = layout(32 * 1024, 5 * 32 * 1024 - 100);
        let mut have = bits(5, &[1, 3]);
        have.set(4, false);
        let mut p = PiecePicker::new(&l, &have, PickerConfig::default());
        p.check();
        assert_eq!(p.num_pieces(), 5);
        assert_eq!(p.num_have(), 2);
        assert!(p.have(1) && p.have(3) && !p.have(0) && !p.have(99));
        assert!(p.wants(0) && !p.wants(1) && !p.wants(99));
        assert!(!p.is_finished() && !p.is_seed());
        assert_eq!(p.blocks_in_piece(0), 2);
        assert_eq!(p.blocks_in_piece(4), 2);
        assert_eq!(p.blocks_in_piece(5), 0);
        assert_eq!(p.piece_priority(0), PRIORITY_DEFAULT);
        let got = pick_seed(&mut p, A, 100);
        assert_eq!(got.len(), 6);
        assert_eq!(pieces_of(&got), BTreeSet::from([0, 2, 4]));
        assert_eq!(p.outstanding(A), 6);
    }

    #[test]
    fn short_last_piece_has_fewer_blocks() {
        let l = layout(64 * 1024, 64 * 1024 + 20_000);
        let mut p = PiecePicker::new(&l, &Bitfield::new(2), PickerConfig::default());
        assert_eq!((p.blocks_in_piece(0), p.blocks_in_piece(1)), (4, 2));
        p.set_piece_priority(0, 0);
        assert_eq!(pick_seed(&mut p, A, 10), vec![br(1, 0), br(1, 1)]);
    }

    #[test]
    fn rarest_first() {
        let mut p = picker(10, 2);
        for piece in 0..10 {
            for _ in 0..(10 - piece) {
                p.inc_availability(piece);
            }
        }
        p.add_seed();
        assert_eq!(p.availability(9), 2);
        assert_eq!(p.availability(0), 11);
        p.check();
        let got = pick_seed(&mut p, A, 4);
        assert_eq!(got, vec![br(9, 0), br(9, 1), br(8, 0), br(8, 1)]);
        // A peer without piece 7 gets the next rarest it has.
        let has = bits(10, &[0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(pieces_of(&pick(&mut p, B, &has, 2)), BTreeSet::from([6]));
        p.dec_availability(0);
        for _ in 0..20 {
            p.dec_availability(0);
        }
        assert_eq!(p.availability(0), 1);
        p.check();
        assert_eq!(pieces_of(&pick_seed(&mut p, C, 2)), BTreeSet::from([0]));
    }

    #[test]
    fn bulk_bitfield_rebuilds_lazily() {
        let n = 1000;
        let mut p = picker(n, 1);
        let all: Vec<u32> = (0..n).collect();
        let most: Vec<u32> = (0..n).filter(|i| i % 97 != 5).collect();
        p.add_bitfield(&bits(n, &all));
        p.add_bitfield(&bits(n, &most));
        assert!(p.dirty);
        p.check();
        assert_eq!(p.availability(5), 1);
        assert_eq!(p.availability(6), 2);
        let got = pick_seed(&mut p, A, 3);
        assert!(!p.dirty);
        assert!(got.iter().all(|b| b.piece % 97 == 5), "{got:?}");
        p.remove_bitfield(&bits(n, &most));
        p.remove_bitfield(&bits(n, &all));
        p.check();
        assert_eq!(p.availability(6), 0);
    }

    #[test]
    fn priorities_tiers_and_skip() {
        let mut p = picker(6, 1);
        for piece in 0..6 {
            for _ in 0..piece {
                p.inc_availability(piece);
            }
        }
        p.set_piece_priority(5, 7);
        p.set_piece_priority(4, 6);
        p.set_piece_priority(0, 0);
        p.set_piece_priority(1, 200);
        assert_eq!(p.piece_priority(1), 7);
        p.check();
        let order: Vec<u32> = (0..5)
            .flat_map(|_| pick_seed(&mut p, A, 1))
            .map(|b| b.piece)
            .collect();
        assert_eq!(order, vec![1, 5, 4, 2, 3]);
        assert!(
            pick_seed(&mut p, A, 1).is_empty(),
            "priority 0 is never picked"
        );
        for piece in 1..6 {
            assert!(!p.block_received(br(piece, 0), A).duplicate);
            p.piece_passed(piece);
        }
        assert!(p.is_finished() && !p.is_seed() && !p.in_endgame());
        p.set_piece_priority(0, 1);
        assert!(!p.is_finished());
        assert_eq!(pick_seed(&mut p, A, 1), vec![br(0, 0)]);
        p.check();
    }

    #[test]
    fn priority_zero_on_partial_stops_picking() {
        let mut p = picker(2, 4);
        p.set_piece_priority(1, 0);
        assert_eq!(pick_seed(&mut p, A, 2), vec![br(0, 0), br(0, 1)]);
        p.set_piece_priority(0, 0);
        assert!(pick_seed(&mut p, A, 2).is_empty());
        assert!(pick_seed(&mut p, B, 2).is_empty());
        p.set_piece_priority(0, 3);
        assert_eq!(pick_seed(&mut p, A, 2), vec![br(0, 2), br(0, 3)]);
        p.set_piece_priority(0, 0);
        p.peer_gone(A);
        p.check();
        assert_eq!(p.pieces[0].place, Place::Idle);
    }

    #[test]
    fn sequential_mode() {
        let mut p = picker_with(
            8,
            1,
            PickerConfig {
                sequential: true,
                ..PickerConfig::default()
            },
        );
        for _ in 0..3 {
            p.inc_availability(6);
        }
        p.set_piece_priority(5, 5);
        let has = bits(8, &[1, 2, 3, 4, 5, 6, 7]);
        let order: Vec<u32> = (0..4)
            .flat_map(|_| pick(&mut p, A, &has, 1))
            .map(|b| b.piece)
            .collect();
        assert_eq!(order, vec![5, 1, 2, 3]);
        p.set_sequential(false);
        p.check();
        // Rarest first again: 6 is the most common, so 4 or 7 comes first.
        let next = pick(&mut p, A, &has, 1)[0].piece;
        assert!(next == 4 || next == 7);
        p.set_sequential(true);
        p.check();
        let order: Vec<u32> = (0..2)
            .flat_map(|_| pick(&mut p, B, &has, 1))
            .map(|b| b.piece)
            .collect();
        assert_eq!(
            order,
            vec![4, 6]
                .into_iter()
                .filter(|&x| x != next)
                .chain([7])
                .take(2)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn affinity_then_partials_then_new() {
        let mut p = picker(4, 4);
        assert_eq!(pieces_of(&pick_seed(&mut p, A, 2)).len(), 1);
        let a_piece = p.partials[0].piece;
        // B shares A's piece before starting a new one.
        let got = pick_seed(&mut p, B, 1);
        assert_eq!(got, vec![br(a_piece, 2)]);
        // A finishes its own piece first.
        let got = pick_seed(&mut p, A, 1);
        assert_eq!(got, vec![br(a_piece, 3)]);
        // Then new pieces.
        let got = pick_seed(&mut p, A, 5);
        assert_eq!(got.len(), 5);
        assert!(!got.iter().any(|b| b.piece == a_piece));
        let second = got[0].piece;
        assert!(got[..4].iter().all(|b| b.piece == second));
        // B's affinity is with a_piece, which is full; it joins A's last partial piece.
        let third = got[4].piece;
        assert_eq!(pick_seed(&mut p, B, 1), vec![br(third, 1)]);
        assert_eq!(p.outstanding(A), 2 + 1 + 5);
        assert_eq!(p.outstanding(B), 2);
    }

    #[test]
    fn peer_has_and_allowed_fast_filters() {
        let mut p = picker(20, 2);
        let has = bits(20, &[3, 7, 11]);
        assert!(p.is_interesting(&has, false));
        let got = pick(&mut p, A, &has, 100);
        assert_eq!(pieces_of(&got), BTreeSet::from([3, 7, 11]));
        let mut out = Vec::new();
        p.pick(
            B,
            &Bitfield::new(20),
            true,
            Some(&[5, 5, 7, 19, 99]),
            100,
            &mut out,
        );
        p.check();
        // 7 is A's but has no free blocks; 5 and 19 are new.
        assert_eq!(pieces_of(&out), BTreeSet::from([5, 19]));
        assert_eq!(out.len(), 4);
        out.clear();
        p.pick(C, &bits(20, &[1]), false, Some(&[2]), 100, &mut out);
        assert!(out.is_empty(), "allowed-fast piece the peer lacks");
        assert!(!p.is_interesting(&bits(20, &[]), false));
        assert!(!p.is_interesting(&bits(30, &[25]), false));
    }

    #[test]
    fn receive_complete_duplicate_unsolicited() {
        let mut p = picker(3, 2);
        let got = pick_seed(&mut p, A, 2);
        let piece = got[0].piece;
        assert_eq!(got, vec![br(piece, 0), br(piece, 1)]);
        let other = (piece + 1) % 3;
        // Unsolicited: a piece nobody started, a block past the end, a piece past the end.
        assert!(p.block_received(br(other, 0), A).duplicate);
        assert!(p.block_received(br(piece, 2), A).duplicate);
        assert!(p.block_received(br(99, 0), A).duplicate);
        assert!(p.block_received(br(u32::MAX, u32::MAX), A).duplicate);
        let r = p.block_received(br(piece, 0), A);
        assert_eq!(r, Received::default());
        assert!(p.block_received(br(piece, 0), A).duplicate);
        assert_eq!(p.outstanding(A), 1);
        // A late block from a peer we did not ask is accepted; A is told to cancel.
        let r = p.block_received(br(piece, 1), B);
        assert_eq!(
            r,
            Received {
                duplicate: false,
                piece_complete: true,
                cancel: vec![A]
            }
        );
        assert_eq!(p.outstanding(A), 0);
        p.check();
        p.piece_passed(piece);
        assert!(p.have(piece));
        assert!(p.block_received(br(piece, 1), A).duplicate);
        assert_eq!(p.num_partial(), 0);
        p.check();
    }

    #[test]
    fn cancel_frees_and_returns_piece() {
        let mut p = picker(2, 2);
        let got = pick_seed(&mut p, A, 2);
        let piece = got[0].piece;
        p.cancel_request(br(piece, 0), B); // not B's: ignored
        p.cancel_request(br(piece, 9), A);
        p.cancel_request(br(7, 0), A);
        assert_eq!(p.outstanding(A), 2);
        p.cancel_request(br(piece, 0), A);
        p.check();
        assert_eq!(p.outstanding(A), 1);
        assert_eq!(pick_seed(&mut p, B, 1), vec![br(piece, 0)]);
        p.cancel_request(br(piece, 0), B);
        p.cancel_request(br(piece, 1), A);
        p.check();
        assert_eq!(
            p.num_partial(),
            0,
            "an untouched piece goes back to its tier"
        );
        assert!(
            p.block_received(br(piece, 1), A).duplicate,
            "cancelled block is unsolicited"
        );
        // A received block keeps the piece in progress.
        let got = pick_seed(&mut p, A, 4);
        assert_eq!(got.len(), 4);
        assert!(!p.block_received(got[0], A).duplicate);
        p.peer_gone(A);
        p.check();
        assert_eq!(p.outstanding(A), 0);
        assert_eq!(p.num_partial(), 1);
        p.peer_gone(A);
    }

    #[test]
    fn piece_failed_frees_all_blocks() {
        let mut p = picker(1, 3);
        let got = pick_seed(&mut p, A, 3);
        for b in &got[..2] {
            assert!(!p.block_received(*b, A).duplicate);
        }
        assert!(p.block_received(got[2], A).piece_complete);
        p.piece_failed(0);
        p.check();
        assert_eq!(p.num_partial(), 0);
        assert!(!p.have(0));
        assert_eq!(pick_seed(&mut p, B, 3), got);
        p.piece_failed(0); // with requests out: they are forgotten
        p.check();
        assert_eq!(p.outstanding(B), 0);
        p.piece_failed(5);
        p.piece_passed(0);
        p.piece_failed(0);
        p.piece_passed(0);
        assert!(p.is_seed() && p.is_finished());
        assert!(!p.is_interesting(&bits(1, &[0]), true));
        assert!(pick_seed(&mut p, A, 3).is_empty());
    }

    #[test]
    fn endgame_duplicates_with_cap() {
        let mut p = picker(2, 2);
        assert!(!p.in_endgame());
        let got = pick_seed(&mut p, A, 4);
        assert_eq!(got.len(), 4);
        assert!(p.in_endgame());
        // A never gets a block twice.
        assert!(pick_seed(&mut p, A, 4).is_empty());
        let dup = pick_seed(&mut p, B, 3);
        assert_eq!(dup.len(), 3);
        let dup_c = pick_seed(&mut p, C, 4);
        assert_eq!(dup_c.len(), 1, "cap of 2 requesters leaves one block");
        assert!(!dup.contains(&dup_c[0]));
        let r = p.block_received(dup[0], B);
        assert_eq!(r.cancel, vec![A]);
        assert!(p.block_received(dup[0], A).duplicate);
        assert_eq!(p.outstanding(A), 3);
        assert_eq!(p.outstanding(B), 2);
        // Cancelling one of two requesters keeps the block requested.
        p.cancel_request(dup[1], A);
        assert_eq!(pick_seed(&mut p, C, 4), vec![dup[1]]);
        p.check();
        // Endgame off: no duplicates at all.
        let mut q = picker_with(
            1,
            2,
            PickerConfig {
                endgame_max_requesters: 1,
                ..PickerConfig::default()
            },
        );
        assert_eq!(pick_seed(&mut q, A, 4).len(), 2);
        assert!(q.in_endgame());
        assert!(pick_seed(&mut q, B, 4).is_empty());
    }

    #[test]
    fn random_tie_breaks_spread_peers_and_are_seeded() {
        let first = |seed: u64| {
            let mut p = picker_with(
                64,
                1,
                PickerConfig {
                    seed,
                    ..PickerConfig::default()
                },
            );
            (0..8)
                .map(|k| pick_seed(&mut p, PeerKey(k), 1)[0].piece)
                .collect::<Vec<_>>()
        };
        assert_eq!(first(1), first(1));
        assert_ne!(first(1), first(2));
        let picks: BTreeSet<u32> = (0..20).map(|s| first(s)[0]).collect();
        assert!(picks.len() > 10, "first pick hardly varies: {picks:?}");
    }

    #[test]
    fn seeds_do_not_disturb_order() {
        let mut p = picker(3, 1);
        p.inc_availability(0);
        p.inc_availability(2);
        for _ in 0..1000 {
            p.add_seed();
        }
        assert_eq!(p.num_seeds(), 1000);
        assert_eq!(p.availability(1), 1000);
        assert_eq!(pick_seed(&mut p, A, 1), vec![br(1, 0)]);
        for _ in 0..1001 {
            p.remove_seed();
        }
        assert_eq!(p.availability(0), 1);
    }

    #[test]
    fn availability_is_capped_in_buckets_not_counts() {
        let mut p = picker(2, 1);
        for _ in 0..5000 {
            p.inc_availability(0);
        }
        p.check();
        assert_eq!(p.availability(0), 5000);
        assert!(p
            .tiers
            .iter()
            .all(|t| t.starts.len() <= MAX_BUCKET as usize + 1));
        for _ in 0..5000 {
            p.dec_availability(0);
        }
        p.check();
        assert_eq!(p.availability(0), 0);
    }

    #[test]
    fn large_torrent_sparse_and_seed_peers() {
        // 100,000 single-block pieces.
        let n = 100_000;
        let mut p = picker(n, 1);
        let mut rng = SplitMix64::new(7);
        let mut peers = Vec::new();
        for _ in 0..20 {
            let mut b = Bitfield::new(n);
            for _ in 0..n / 4 {
                b.set(rng.below(u64::from(n)) as u32, true);
            }
            p.add_bitfield(&b);
            peers.push(b);
        }
        p.add_seed();
        let sparse = bits(n, &[10, 50_000, 99_999]);
        p.inc_availability(10);
        let got = pick(&mut p, A, &sparse, 10);
        assert_eq!(pieces_of(&got), BTreeSet::from([10, 50_000, 99_999]));
        // Rarest first among the pieces the peer has.
        let got = pick(&mut p, B, &peers[0], 1);
        let best = peers[0]
            .iter_ones()
            .filter(|&i| p.pieces[i as usize].place == Place::Tier || i == got[0].piece)
            .map(|i| p.availability(i))
            .min()
            .unwrap();
        assert_eq!(p.availability(got[0].piece), best);
        // Download everything from one seed.
        let mut done = 0;
        while !p.is_finished() {
            let mut got = Vec::new();
            p.pick(C, &Bitfield::new(0), true, None, 250, &mut got);
            assert!(!got.is_empty());
            for b in got {
                if p.block_received(b, C).piece_complete {
                    p.piece_passed(b.piece);
                    done += 1;
                }
            }
            for b in [br(10, 0), br(50_000, 0), br(99_999, 0)] {
                p.cancel_request(b, A);
            }
            p.cancel_request(got_first(&p, B), B);
        }
        assert_eq!(done, n);
        assert!(p.is_seed());
        p.check();

        fn got_first(p: &PiecePicker, peer: PeerKey) -> BlockRef {
            p.peers
                .get(&peer)
                .and_then(|r| r.pieces.first())
                .map_or(br(0, 0), |&(piece, _)| br(piece, 0))
        }
    }

    #[test]
    fn gigabyte_torrent_with_four_seeds_finishes_through_endgame() {
        // 1 GiB in 1 MiB pieces: 1024 pieces of 64 blocks.
        let mut p = picker(1024, 64);
        let peers: Vec<PeerKey> = (0..4).map(PeerKey).collect();
        for _ in &peers {
            p.add_seed();
        }
        let mut outstanding: Vec<Vec<BlockRef>> = vec![Vec::new(); 4];
        let mut saw_endgame = false;
        let mut rounds = 0;
        while !p.is_finished() {
            rounds += 1;
            assert!(rounds < 10_000);
            for (i, &peer) in peers.iter().enumerate() {
                let want = 200 - p.outstanding(peer).min(200);
                let mut out = Vec::new();
                p.pick(peer, &Bitfield::new(0), true, None, want, &mut out);
                outstanding[i].extend(out);
                // Each peer answers at its own speed.
                let n = (i + 1) * 20;
                let n = n.min(outstanding[i].len());
                let answered: Vec<BlockRef> = outstanding[i].drain(..n).collect();
                for b in answered {
                    let r = p.block_received(b, peer);
                    for c in &r.cancel {
                        let k = peers.iter().position(|x| x == c).unwrap();
                        outstanding[k].retain(|x| *x != b);
                    }
                    if r.piece_complete {
                        p.piece_passed(b.piece);
                    }
                }
            }
            saw_endgame |= p.in_endgame();
        }
        assert!(saw_endgame);
        assert!(p.is_seed());
        assert_eq!(p.num_partial(), 0);
        assert!(peers.iter().all(|&k| p.outstanding(k) == 0));
        p.check();
    }

    /// A deterministic stream of operations, run against a model of the requests.
    #[derive(Debug, Clone)]
    enum Op {
        Pick {
            peer: u32,
            seed: bool,
            has: u64,
            only: Option<Vec<u32>>,
            max: usize,
        },
        Receive {
            pick: usize,
            from: u32,
        },
        ReceiveAny {
            piece: u32,
            block: u32,
            from: u32,
        },
        Cancel {
            pick: usize,
        },
        Gone {
            peer: u32,
        },
        Pass {
            piece: u32,
        },
        Fail {
            piece: u32,
        },
        Prio {
            piece: u32,
            prio: u8,
        },
        Have {
            piece: u32,
            up: bool,
        },
        Bits {
            has: u64,
            add: bool,
        },
        Seed {
            add: bool,
        },
        Sequential(bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u32..4, any::<bool>(), any::<u64>(), proptest::option::weighted(0.2, proptest::collection::vec(0u32..14, 0..4)), 0usize..12)
                .prop_map(|(peer, seed, has, only, max)| Op::Pick { peer, seed, has, only, max }),
            5 => (any::<usize>(), 0u32..4).prop_map(|(pick, from)| Op::Receive { pick, from }),
            1 => (0u32..14, 0u32..4, 0u32..4).prop_map(|(piece, block, from)| Op::ReceiveAny { piece, block, from }),
            2 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
            1 => (0u32..4).prop_map(|peer| Op::Gone { peer }),
            2 => (0u32..13).prop_map(|piece| Op::Pass { piece }),
            1 => (0u32..13).prop_map(|piece| Op::Fail { piece }),
            1 => (0u32..13, 0u8..9).prop_map(|(piece, prio)| Op::Prio { piece, prio }),
            2 => (0u32..14, any::<bool>()).prop_map(|(piece, up)| Op::Have { piece, up }),
            1 => (any::<u64>(), any::<bool>()).prop_map(|(has, add)| Op::Bits { has, add }),
            1 => any::<bool>().prop_map(|add| Op::Seed { add }),
            1 => any::<bool>().prop_map(Op::Sequential),
        ]
    }

    /// 13 pieces of 3 blocks, the last of 1.
    fn small() -> (Layout, u32) {
        let piece = 3 * u64::from(BLOCK_LEN);
        (layout(piece, 12 * piece + 100), 13)
    }

    fn mask(n: u32, has: u64) -> Bitfield {
        let mut b = Bitfield::new(n);
        for i in 0..n {
            b.set(i, has >> i & 1 == 1);
        }
        b
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_ops_keep_invariants(
            seed in any::<u64>(),
            cap in 0u8..4,
            budget in prop_oneof![Just(0usize), Just(3), Just(SCAN_BUDGET)],
            have in any::<u64>(),
            ops in proptest::collection::vec(op(), 1..120),
        ) {
            let (l, n) = small();
            let config = PickerConfig { seed, sequential: seed % 3 == 0, endgame_max_requesters: cap };
            let mut p = PiecePicker::new(&l, &mask(n, have & 0x0f0f), config);
            p.scan_budget = budget;
            p.check();
            // Model: who requested each block, which blocks arrived, availability.
            let mut req: BTreeMap<BlockRef, BTreeSet<PeerKey>> = BTreeMap::new();
            let mut got: BTreeSet<BlockRef> = BTreeSet::new();
            let mut avail = vec![0u32; n as usize];
            let mut seeds = 0u32;
            let mut issued: Vec<(BlockRef, PeerKey)> = Vec::new();
            for op in ops {
                match op {
                    Op::Pick { peer, seed, has, only, max } => {
                        let peer = PeerKey(peer);
                        let has = mask(n, has);
                        let wanted: Vec<bool> = (0..n).map(|i| p.wants(i)).collect();
                        let mut out = vec![br(77, 77)];
                        p.pick(peer, &has, seed, only.as_deref(), max, &mut out);
                        prop_assert_eq!(out.remove(0), br(77, 77));
                        prop_assert!(out.len() <= max);
                        let distinct: BTreeSet<BlockRef> = out.iter().copied().collect();
                        prop_assert_eq!(distinct.len(), out.len());
                        for b in &out {
                            prop_assert!(wanted[b.piece as usize]);
                            prop_assert!(b.block < p.blocks_in_piece(b.piece));
                            prop_assert!(seed || has.get(b.piece));
                            prop_assert!(only.as_ref().is_none_or(|o| o.contains(&b.piece)));
                            prop_assert!(!got.contains(b));
                            let r = req.entry(*b).or_default();
                            if !r.is_empty() {
                                prop_assert!(p.in_endgame(), "duplicate request outside endgame");
                            }
                            prop_assert!(r.insert(peer));
                            issued.push((*b, peer));
                        }
                    }
                    Op::Receive { pick, from } => {
                        if issued.is_empty() { continue; }
                        let (b, asked) = issued[pick % issued.len()];
                        let from = if from == 0 { asked } else { PeerKey(from) };
                        let r = p.block_received(b, from);
                        check_receive(&mut p, &r, b, from, &mut req, &mut got)?;
                    }
                    Op::ReceiveAny { piece, block, from } => {
                        let b = br(piece, block);
                        let r = p.block_received(b, PeerKey(from));
                        check_receive(&mut p, &r, b, PeerKey(from), &mut req, &mut got)?;
                    }
                    Op::Cancel { pick } => {
                        if issued.is_empty() { continue; }
                        let (b, peer) = issued.swap_remove(pick % issued.len());
                        p.cancel_request(b, peer);
                        if let Some(r) = req.get_mut(&b) { r.remove(&peer); }
                    }
                    Op::Gone { peer } => {
                        p.peer_gone(PeerKey(peer));
                        for r in req.values_mut() { r.remove(&PeerKey(peer)); }
                    }
                    Op::Pass { piece } => {
                        p.piece_passed(piece);
                        req.retain(|b, _| b.piece != piece);
                    }
                    Op::Fail { piece } => {
                        let in_progress = p.num_partial();
                        p.piece_failed(piece);
                        if p.num_partial() < in_progress {
                            req.retain(|b, _| b.piece != piece);
                            got.retain(|b| b.piece != piece);
                        }
                    }
                    Op::Prio { piece, prio } => p.set_piece_priority(piece, prio),
                    Op::Have { piece, up } => {
                        if up {
                            p.inc_availability(piece);
                            if let Some(a) = avail.get_mut(piece as usize) { *a += 1; }
                        } else {
                            p.dec_availability(piece);
                            if let Some(a) = avail.get_mut(piece as usize) { *a = a.saturating_sub(1); }
                        }
                    }
                    Op::Bits { has, add } => {
                        let b = mask(n, has);
                        for i in b.iter_ones() {
                            if add { avail[i as usize] += 1 } else { avail[i as usize] = avail[i as usize].saturating_sub(1) }
                        }
                        if add { p.add_bitfield(&b) } else { p.remove_bitfield(&b) }
                    }
                    Op::Seed { add } => {
                        if add { p.add_seed(); seeds += 1 } else { p.remove_seed(); seeds = seeds.saturating_sub(1) }
                    }
                    Op::Sequential(on) => p.set_sequential(on),
                }
                p.check();
                req.retain(|_, r| !r.is_empty());
                issued.retain(|(b, peer)| req.get(b).is_some_and(|r| r.contains(peer)));
                for k in 0..4 {
                    let expect = req.values().filter(|r| r.contains(&PeerKey(k))).count();
                    prop_assert_eq!(p.outstanding(PeerKey(k)), expect);
                }
                for i in 0..n {
                    prop_assert_eq!(p.availability(i), avail[i as usize] + seeds);
                }
            }
        }

        #[test]
        fn first_pick_is_best_priority_then_rarest(
            seed in any::<u64>(),
            sequential in any::<bool>(),
            budget in prop_oneof![Just(0usize), Just(5), Just(SCAN_BUDGET)],
            avail in proptest::collection::vec(0u32..5, 40),
            prio in proptest::collection::vec(0u8..8, 40),
            peer_seed in any::<bool>(),
            has in any::<u64>(),
            bulk in any::<bool>(),
        ) {
            let l = layout(u64::from(BLOCK_LEN), 40 * u64::from(BLOCK_LEN));
            let config = PickerConfig { seed, sequential, ..PickerConfig::default() };
            let mut p = PiecePicker::new(&l, &Bitfield::new(40), config);
            p.scan_budget = budget;
            if bulk {
                for round in 0..5 {
                    let b: Vec<u32> = (0..40).filter(|&i| avail[i as usize] > round).collect();
                    p.add_bitfield(&bits(40, &b));
                }
            } else {
                for (i, &a) in (0u32..).zip(&avail) {
                    for _ in 0..a { p.inc_availability(i); }
                }
            }
            for (i, &q) in (0u32..).zip(&prio) { p.set_piece_priority(i, q); }
            let has = mask(40, has);
            let mut out = Vec::new();
            p.pick(A, &has, peer_seed, None, 1, &mut out);
            p.check();
            let eligible: Vec<u32> = (0..40).filter(|&i| prio[i as usize] > 0 && (peer_seed || has.get(i))).collect();
            let key = |i: u32| (Reverse(prio[i as usize]), if sequential { i } else { avail[i as usize] });
            match eligible.iter().map(|&i| key(i)).min() {
                None => prop_assert!(out.is_empty()),
                Some(best) => {
                    prop_assert_eq!(out.len(), 1);
                    prop_assert_eq!(key(out[0].piece), best);
                }
            }
        }

        #[test]
        fn swarm_download_always_finishes(
            seed in any::<u64>(),
            masks in proptest::collection::vec(any::<u64>(), 1..5),
            fail_every in 2u32..9,
            cap in 1u8..4,
        ) {
            let (l, n) = small();
            let config = PickerConfig { seed, endgame_max_requesters: cap, ..PickerConfig::default() };
            let mut p = PiecePicker::new(&l, &Bitfield::new(n), config);
            // The peers between them have everything: the last one fills the gaps.
            let mut union = 0u64;
            let mut peers: Vec<Bitfield> = masks.iter().map(|&m| { union |= m; mask(n, m) }).collect();
            peers.push(mask(n, !union));
            for b in &peers { p.add_bitfield(b); }
            let mut rng = SplitMix64::new(seed);
            let mut checks = 0u32;
            let mut steps = 0;
            while !p.is_finished() {
                steps += 1;
                prop_assert!(steps < 2000, "stuck");
                for (k, has) in peers.iter().enumerate() {
                    let peer = PeerKey(k as u32);
                    let mut out = Vec::new();
                    p.pick(peer, has, false, None, 1 + rng.below(4) as usize, &mut out);
                    for b in out {
                        match rng.below(4) {
                            0 => p.cancel_request(b, peer),
                            1 => p.peer_gone(peer),
                            _ => {
                                let r = p.block_received(b, peer);
                                if r.piece_complete {
                                    checks += 1;
                                    if checks % fail_every == 0 { p.piece_failed(b.piece) } else { p.piece_passed(b.piece) }
                                }
                            }
                        }
                    }
                }
                p.check();
            }
            prop_assert!(p.is_seed());
        }
    }

    fn check_receive(
        p: &mut PiecePicker,
        r: &Received,
        b: BlockRef,
        from: PeerKey,
        req: &mut BTreeMap<BlockRef, BTreeSet<PeerKey>>,
        got: &mut BTreeSet<BlockRef>,
    ) -> Result<(), TestCaseError> {
        let asked = req.remove(&b).unwrap_or_default();
        let expect_dup = p.have(b.piece) || got.contains(&b) || asked.is_empty();
        prop_assert_eq!(r.duplicate, expect_dup);
        if expect_dup {
            prop_assert!(r.cancel.is_empty() && !r.piece_complete);
            if !asked.is_empty() {
                req.insert(b, asked);
            }
            return Ok(());
        }
        got.insert(b);
        let cancel: BTreeSet<PeerKey> = r.cancel.iter().copied().collect();
        prop_assert_eq!(cancel.len(), r.cancel.len());
        let mut others = asked;
        others.remove(&from);
        prop_assert_eq!(cancel, others);
        let complete = (0..p.blocks_in_piece(b.piece)).all(|k| got.contains(&br(b.piece, k)));
        prop_assert_eq!(r.piece_complete, complete);
        Ok(())
    }
}
