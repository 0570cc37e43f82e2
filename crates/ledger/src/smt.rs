//! [`AuthMap`]: an authenticated key-value map, a compressed binary sparse Merkle tree over
//! blake3.
//!
//! The ledger keeps its whole state in one `AuthMap`; the block's state root is
//! [`AuthMap::root`], and light clients check a [`Proof`] of inclusion or exclusion against it.
//!
//! # Hashing (the commitment a light client recomputes)
//!
//! Three 32-byte blake3 keys, ASCII padded with zero bytes, separate the three uses of the hash:
//!
//! * The **path** of a key is `blake3::keyed_hash(KEY_PATH_KEY, key)`
//!   ([`KEY_PATH_KEY`] = `"tessera-ledger/smt/v1/key-path"`), read as 256 bits, most
//!   significant bit of byte 0 first. Bit `d` chooses the child at depth `d`: 0 left, 1 right.
//! * A **leaf** hashes as `blake3::keyed_hash(LEAF_KEY, path ‖ blake3::hash(value))`
//!   ([`LEAF_KEY`] = `"tessera-ledger/smt/v1/leaf"`).
//! * An **internal node** hashes as `blake3::keyed_hash(NODE_KEY, left ‖ right)`
//!   ([`NODE_KEY`] = `"tessera-ledger/smt/v1/node"`).
//! * An **empty** subtree hashes as 32 zero bytes; the root of the empty map is all zeros.
//!
//! Node hashes take 64 bytes in, one blake3 compression (a tag byte in front would make it two).
//!
//! The tree is *compressed*: a subtree that holds exactly one entry is that entry's leaf,
//! wherever it sits, and an internal node exists exactly where its subtree holds two or more
//! entries. Such a node may have one empty child (when all its entries share the next bit).
//! Since a leaf's hash covers its full path and not its depth, a leaf that moves up or down when
//! neighbours come and go keeps its hash. The shape, and so the root, is a function of the set
//! of `(key, value)` pairs alone: insertion order and history never show. The expected depth of
//! a leaf is about `log2(n) + 1.3`, not 256.
//!
//! # Cost
//!
//! [`insert`](AuthMap::insert) and [`remove`](AuthMap::remove) change the shape and mark the
//! nodes on the key's path as dirty, hashing nothing but the key's path. [`root`](AuthMap::root)
//! rehashes the dirty nodes only: a block that changes `k` keys costs at most about
//! `k · (log2(n) + 7)` blake3 compressions (each dirty internal node, and the leaves hanging
//! off dirty nodes at 3 each: path, value, leaf), less where the changed paths share nodes,
//! whatever the size of the state. [`get`](AuthMap::get) does not walk the tree: a hash index
//! maps each key to its leaf.
//!
//! # Memory
//!
//! Nodes live in two arenas (`Vec`s indexed by `u32`, with free lists). A leaf is 32 bytes: its
//! key and value share one allocation, and its path and hash are recomputed rather than stored.
//! An internal node is 44 bytes (its cached hash, two children, a dirty flag); there are about
//! `1.44 n` of them. The index holds a 32-bit fingerprint and a leaf number per entry. A map of
//! `10^6` entries with 21-byte keys and 16-byte values takes about 160 bytes per entry all told
//! (see [`AuthMap::heap_bytes`]).
//!
//! ```
//! # use tessera_ledger::smt::AuthMap;
//! let mut state = AuthMap::new();
//! state.insert(b"alice", b"10");
//! state.insert(b"bob", b"");
//! let root = state.root();
//!
//! let proof = state.prove(b"alice");
//! assert!(proof.verify(&root, b"alice", Some(b"10")).is_ok());
//! assert!(proof.verify(&root, b"alice", Some(b"11")).is_err());
//!
//! let absent = state.prove(b"carol");
//! assert!(absent.verify(&root, b"carol", None).is_ok());
//! assert!(absent.verify(&root, b"carol", Some(b"")).is_err());
//! ```

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use serde::Deserialize;

/// A blake3 digest: a node hash, a key path or a root.
pub type Hash = [u8; 32];

/// The root of the empty map, and the hash of every empty subtree.
pub const EMPTY_ROOT: Hash = [0; 32];

/// The blake3 key of key paths: `path = blake3::keyed_hash(KEY_PATH_KEY, key)`.
pub const KEY_PATH_KEY: &[u8; 32] = b"tessera-ledger/smt/v1/key-path\0\0";

/// The blake3 key of leaves: `leaf = blake3::keyed_hash(LEAF_KEY, path ‖ blake3::hash(value))`.
pub const LEAF_KEY: &[u8; 32] = b"tessera-ledger/smt/v1/leaf\0\0\0\0\0\0";

/// The blake3 key of internal nodes: `node = blake3::keyed_hash(NODE_KEY, left ‖ right)`.
pub const NODE_KEY: &[u8; 32] = b"tessera-ledger/smt/v1/node\0\0\0\0\0\0";

/// The most siblings a [`Proof`] can have: one per bit of a path.
pub const MAX_PROOF_DEPTH: usize = 256;

/// The most bytes [`Proof::from_bytes`] looks at: a proof of [`MAX_PROOF_DEPTH`] siblings with
/// a leaf, plus slack for the bencode framing.
const MAX_PROOF_BYTES: usize = MAX_PROOF_DEPTH * 32 + 64 + 64;

/// The path of `key` in the tree (see the [module documentation](self)).
#[must_use]
pub fn key_path(key: &[u8]) -> Hash {
    *blake3::keyed_hash(KEY_PATH_KEY, key).as_bytes()
}

/// The hash of a leaf with path `path` whose value hashes (plain blake3) to `value_hash`.
#[must_use]
pub fn leaf_hash(path: &Hash, value_hash: &Hash) -> Hash {
    keyed_pair_hash(LEAF_KEY, path, value_hash)
}

/// The hash of an internal node with children hashing to `left` and `right`.
#[must_use]
pub fn internal_hash(left: &Hash, right: &Hash) -> Hash {
    keyed_pair_hash(NODE_KEY, left, right)
}

fn keyed_pair_hash(key: &[u8; 32], a: &Hash, b: &Hash) -> Hash {
    let mut buf = [0u8; 64];
    let (x, y) = buf.split_at_mut(32);
    x.copy_from_slice(a);
    y.copy_from_slice(b);
    *blake3::keyed_hash(key, &buf).as_bytes()
}

fn value_hash(value: &[u8]) -> Hash {
    *blake3::hash(value).as_bytes()
}

/// Bit `depth` of `path`, most significant bit of byte 0 first; `false` past the end.
fn bit(path: &Hash, depth: usize) -> bool {
    path.get(depth / 8)
        .is_some_and(|byte| (byte >> (7 - depth % 8)) & 1 == 1)
}

/// The number of leading bits `a` and `b` share (256 if equal).
fn common_prefix(a: &Hash, b: &Hash) -> usize {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let diff = x ^ y;
        if diff != 0 {
            return i * 8 + diff.leading_zeros() as usize;
        }
    }
    256
}

// ---------------------------------------------------------------------------------------------
// Arena
// ---------------------------------------------------------------------------------------------

/// A child reference: [`NONE`] for an empty subtree, `LEAF_TAG | i` for leaf `i`, else internal
/// node `i`. Also the end of a fingerprint chain.
const NONE: u32 = u32::MAX;
const LEAF_TAG: u32 = 1 << 31;
/// Arena indices stay below this, so that a tagged leaf index never equals [`NONE`].
const MAX_INDEX: usize = (LEAF_TAG - 1) as usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ref {
    Empty,
    Leaf(usize),
    Internal(usize),
}

fn decode(r: u32) -> Ref {
    if r == NONE {
        Ref::Empty
    } else if r & LEAF_TAG != 0 {
        Ref::Leaf((r & !LEAF_TAG) as usize)
    } else {
        Ref::Internal(r as usize)
    }
}

fn leaf_ref(i: u32) -> u32 {
    i | LEAF_TAG
}

fn is_leaf(r: u32) -> bool {
    r != NONE && r & LEAF_TAG != 0
}

#[derive(Clone)]
struct Internal {
    hash: Hash,
    left: u32,
    right: u32,
    dirty: bool,
}

impl Internal {
    fn child(&self, right: bool) -> u32 {
        if right {
            self.right
        } else {
            self.left
        }
    }

    fn set_child(&mut self, right: bool, r: u32) {
        if right {
            self.right = r;
        } else {
            self.left = r;
        }
    }
}

/// An entry. Its path and hash are not stored (64 bytes an entry): they are recomputed when
/// needed, which is when the entry or a neighbour changes.
#[derive(Clone)]
struct Leaf {
    /// The key followed by the value.
    kv: Box<[u8]>,
    key_len: usize,
    /// The next leaf whose key has the same fingerprint, or [`NONE`].
    next: u32,
}

impl Leaf {
    fn new(key: &[u8], value: &[u8]) -> Self {
        Leaf {
            kv: concat(key, value),
            key_len: key.len(),
            next: NONE,
        }
    }

    fn path(&self) -> Hash {
        key_path(self.key())
    }

    fn key(&self) -> &[u8] {
        self.kv.get(..self.key_len).unwrap_or_default()
    }

    fn value(&self) -> &[u8] {
        self.kv.get(self.key_len..).unwrap_or_default()
    }

    /// The leaf's hash: three blake3 compressions (path, value, leaf) for short entries.
    fn hash(&self) -> Hash {
        leaf_hash(&self.path(), &value_hash(self.value()))
    }
}

fn concat(a: &[u8], b: &[u8]) -> Box<[u8]> {
    let mut v = Vec::with_capacity(a.len().saturating_add(b.len()));
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    v.into_boxed_slice()
}

/// Index arithmetic past [`MAX_INDEX`] means more than two billion nodes: treated like the
/// allocation failure it is close to.
fn capacity_exhausted<T>() -> ! {
    std::alloc::handle_alloc_error(std::alloc::Layout::new::<T>())
}

/// A `Hasher` for keys that already are uniformly random `u32`s (fingerprints): spreads them
/// over all 64 bits, since the hash table takes its bucket from the low bits and its tag from
/// the high ones.
#[derive(Default, Clone, Copy)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Where a child reference is stored: the root, or one side of an internal node.
#[derive(Clone, Copy)]
enum Slot {
    Root,
    Child(usize, bool),
}

// ---------------------------------------------------------------------------------------------
// AuthMap
// ---------------------------------------------------------------------------------------------

/// An authenticated map from byte-string keys to byte-string values: a compressed binary sparse
/// Merkle tree over blake3 (see the [module documentation](self) for the hashing rules).
///
/// Writes are cheap and hash nothing; [`root`](Self::root) rehashes what changed since the last
/// call. Reads go through a hash index and never touch the tree.
#[derive(Clone)]
pub struct AuthMap {
    root: u32,
    internals: Vec<Internal>,
    leaves: Vec<Leaf>,
    free_internals: Vec<u32>,
    free_leaves: Vec<u32>,
    /// Fingerprint of a key → the first leaf of the chain of leaves with that fingerprint.
    index: HashMap<u32, u32, BuildHasherDefault<PassThrough>>,
    /// Keys the fingerprints: per map and random, so that nobody can aim keys at one chain.
    fingerprints: RandomState,
    len: usize,
    hashes: u64,
}

impl Default for AuthMap {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for AuthMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthMap")
            .field("len", &self.len)
            .field("internal_nodes", &self.internal_nodes())
            .field("hashes_computed", &self.hashes)
            .finish_non_exhaustive()
    }
}

impl AuthMap {
    /// An empty map; its root is [`EMPTY_ROOT`].
    #[must_use]
    pub fn new() -> Self {
        AuthMap {
            root: NONE,
            internals: Vec::new(),
            leaves: Vec::new(),
            free_internals: Vec::new(),
            free_leaves: Vec::new(),
            index: HashMap::default(),
            fingerprints: RandomState::new(),
            len: 0,
            hashes: 0,
        }
    }

    /// The number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map has no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `key`, if present.
    #[must_use]
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let leaf = self.find_leaf(self.fingerprint(key), key)?;
        self.leaves.get(leaf).map(Leaf::value)
    }

    /// Whether `key` is present.
    #[must_use]
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.find_leaf(self.fingerprint(key), key).is_some()
    }

    /// Sets `key` to `value`, replacing any previous value. An empty value is a value like any
    /// other (to delete, use [`remove`](Self::remove)).
    ///
    /// Hashes only the key's path; the tree is rehashed by the next [`root`](Self::root).
    pub fn insert(&mut self, key: &[u8], value: &[u8]) {
        let fp = self.fingerprint(key);
        if let Some(i) = self.find_leaf(fp, key) {
            if let Some(leaf) = self.leaves.get_mut(i) {
                if leaf.value() == value {
                    return;
                }
                match leaf.kv.get_mut(leaf.key_len..) {
                    // Same length (a balance, a counter): overwrite in place.
                    Some(old) if old.len() == value.len() => old.copy_from_slice(value),
                    _ => leaf.kv = concat(key, value),
                }
                self.mark_dirty(&key_path(key));
            }
            return;
        }
        let path = key_path(key);
        let new = self.alloc_leaf(Leaf::new(key, value));
        self.index_link(fp, new);
        self.len = self.len.saturating_add(1);
        self.attach(new, &path);
    }

    /// Hangs the (already indexed and counted) leaf `new` with path `path` into the tree.
    fn attach(&mut self, new: u32, path: &Hash) {
        let mut slot = Slot::Root;
        let mut cur = self.root;
        for depth in 0..=MAX_PROOF_DEPTH {
            match decode(cur) {
                Ref::Empty => {
                    self.set_slot(slot, leaf_ref(new));
                    return;
                }
                Ref::Internal(i) => {
                    let Some(node) = self.internals.get_mut(i) else {
                        break;
                    };
                    node.dirty = true;
                    let right = bit(path, depth);
                    cur = node.child(right);
                    slot = Slot::Child(i, right);
                }
                Ref::Leaf(l) => {
                    let Some(other) = self.leaves.get(l).map(Leaf::path) else {
                        break;
                    };
                    if other == *path {
                        // Two keys with one path: a blake3 collision. The newer entry replaces
                        // the older, as if they were the same key.
                        self.set_slot(slot, leaf_ref(new));
                        self.drop_leaf(l);
                        return;
                    }
                    let split = common_prefix(path, &other);
                    let pair = if bit(path, split) {
                        (cur, leaf_ref(new))
                    } else {
                        (leaf_ref(new), cur)
                    };
                    let mut sub = self.alloc_internal(pair.0, pair.1);
                    for level in (depth..split).rev() {
                        sub = if bit(path, level) {
                            self.alloc_internal(NONE, sub)
                        } else {
                            self.alloc_internal(sub, NONE)
                        };
                    }
                    self.set_slot(slot, sub);
                    return;
                }
            }
        }
        debug_assert!(false, "AuthMap: inconsistent tree while inserting");
    }

    /// Removes `key`; returns whether it was present.
    ///
    /// Hashes nothing; the tree is rehashed by the next [`root`](Self::root).
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let fp = self.fingerprint(key);
        let Some(target) = self.find_leaf(fp, key) else {
            return false;
        };
        let path = key_path(key);
        // Walk down to the leaf, marking the way dirty.
        let mut stack: Vec<(usize, bool)> = Vec::with_capacity(64);
        let mut cur = self.root;
        let mut found = false;
        for depth in 0..=MAX_PROOF_DEPTH {
            match decode(cur) {
                Ref::Internal(i) => {
                    let Some(node) = self.internals.get_mut(i) else {
                        break;
                    };
                    node.dirty = true;
                    let right = bit(&path, depth);
                    stack.push((i, right));
                    cur = node.child(right);
                }
                Ref::Leaf(l) => {
                    found = l == target;
                    break;
                }
                Ref::Empty => break,
            }
        }
        if !found {
            debug_assert!(false, "AuthMap: indexed key missing from the tree");
            return false;
        }
        self.index_unlink(fp, target);
        self.free_leaf(target);
        self.len = self.len.saturating_sub(1);

        // Collapse: a subtree left with one leaf becomes that leaf.
        let mut replacement = NONE;
        while let Some((i, right)) = stack.pop() {
            let Some(node) = self.internals.get_mut(i) else {
                return true;
            };
            let sibling = node.child(!right);
            let collapse = if replacement == NONE {
                sibling == NONE || is_leaf(sibling)
            } else {
                is_leaf(replacement) && sibling == NONE
            };
            if collapse {
                if replacement == NONE {
                    replacement = sibling;
                }
                self.free_internal(i);
            } else {
                node.set_child(right, replacement);
                return true;
            }
        }
        self.root = replacement;
        true
    }

    /// The root hash: rehashes the nodes changed since the last call, and nothing else.
    /// [`EMPTY_ROOT`] for the empty map.
    pub fn root(&mut self) -> Hash {
        self.hash_of(self.root, 0)
    }

    fn hash_of(&mut self, r: u32, depth: usize) -> Hash {
        match decode(r) {
            Ref::Empty => EMPTY_ROOT,
            Ref::Leaf(l) => {
                self.hashes = self.hashes.wrapping_add(3);
                self.leaves.get(l).map_or(EMPTY_ROOT, Leaf::hash)
            }
            Ref::Internal(i) => {
                let Some(node) = self.internals.get(i) else {
                    return EMPTY_ROOT;
                };
                if !node.dirty || depth > MAX_PROOF_DEPTH {
                    return node.hash;
                }
                let (left, right) = (node.left, node.right);
                let lh = self.hash_of(left, depth + 1);
                let rh = self.hash_of(right, depth + 1);
                let h = internal_hash(&lh, &rh);
                self.hashes = self.hashes.wrapping_add(1);
                if let Some(node) = self.internals.get_mut(i) {
                    node.hash = h;
                    node.dirty = false;
                }
                h
            }
        }
    }

    /// The cached hash of a node; exact once [`root`](Self::root) has run.
    fn cached_hash(&self, r: u32) -> Hash {
        match decode(r) {
            Ref::Empty => EMPTY_ROOT,
            Ref::Leaf(l) => self.leaves.get(l).map_or(EMPTY_ROOT, Leaf::hash),
            Ref::Internal(i) => self.internals.get(i).map_or(EMPTY_ROOT, |node| node.hash),
        }
    }

    /// A proof that `key` is present with its value, or absent, under the current
    /// [`root`](Self::root) (which this computes first).
    pub fn prove(&mut self, key: &[u8]) -> Proof {
        self.root();
        let path = key_path(key);
        let mut siblings = Vec::new();
        let mut cur = self.root;
        for depth in 0..=MAX_PROOF_DEPTH {
            match decode(cur) {
                Ref::Empty => break,
                Ref::Leaf(l) => {
                    let leaf = self.leaves.get(l).map(|leaf| ProofLeaf {
                        path: leaf.path(),
                        value_hash: value_hash(leaf.value()),
                    });
                    return Proof { siblings, leaf };
                }
                Ref::Internal(i) => {
                    let Some(node) = self.internals.get(i) else {
                        break;
                    };
                    let right = bit(&path, depth);
                    siblings.push(self.cached_hash(node.child(!right)));
                    cur = node.child(right);
                }
            }
        }
        Proof {
            siblings,
            leaf: None,
        }
    }

    /// All entries in a deterministic order: ascending by [`key_path`].
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            map: self,
            stack: if self.root == NONE {
                Vec::new()
            } else {
                vec![self.root]
            },
            remaining: self.len,
        }
    }

    /// Builds a map from `entries` (a later entry for a key replaces an earlier one, as with
    /// [`insert`](Self::insert)). Sorts by path and builds the tree bottom-up, hashing each node
    /// once, using all available cores for the key paths and the leaves: much faster than
    /// inserting one by one. The result is already hashed: [`root`](Self::root) is free.
    pub fn from_entries(entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Self {
        let entries: Vec<(Vec<u8>, Vec<u8>)> = entries.into_iter().collect();
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let entry = |i: usize| {
            entries
                .get(i)
                .map_or((&[][..], &[][..]), |(k, v)| (k.as_slice(), v.as_slice()))
        };

        // Key paths, in parallel.
        let mut paths: Vec<(Hash, usize)> = vec![(EMPTY_ROOT, 0); entries.len()];
        par_chunks(&mut paths, threads, |offset, chunk| {
            for (j, slot) in chunk.iter_mut().enumerate() {
                let i = offset + j;
                *slot = (key_path(entry(i).0), i);
            }
        });
        // Ties broken by input position, so that among equal paths the last entry wins.
        paths.sort_unstable();
        paths.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                *kept = *later;
            }
            same
        });
        let n = paths.len();
        if n > MAX_INDEX {
            capacity_exhausted::<Leaf>();
        }

        // Leaf hashes, in parallel.
        let mut hashes: Vec<Hash> = vec![EMPTY_ROOT; n];
        par_chunks(&mut hashes, threads, |offset, chunk| {
            for (slot, (path, i)) in chunk.iter_mut().zip(paths.iter().skip(offset)) {
                *slot = leaf_hash(path, &value_hash(entry(*i).1));
            }
        });

        // The leaves, in path order, and the fingerprint index.
        let mut map = AuthMap::new();
        map.hashes = (n as u64).wrapping_mul(3);
        map.len = n;
        map.leaves = paths
            .iter()
            .map(|&(_, i)| {
                let (k, v) = entry(i);
                Leaf::new(k, v)
            })
            .collect();
        drop(entries);
        map.index.reserve(n);
        for i in 0..n {
            let Some(key) = map.leaves.get(i).map(Leaf::key) else {
                continue;
            };
            let fp = fingerprint(&map.fingerprints, key);
            map.index_link(fp, i as u32);
        }

        // Internal nodes, bottom-up.
        map.internals.reserve(n + n / 2);
        map.root = map.build(&paths, &hashes, 0, n, 0).0;
        map.internals.shrink_to_fit();
        map
    }

    /// Builds the subtree over the sorted leaves `lo..hi` (whose paths and hashes are given),
    /// which share `depth` leading bits; returns its reference and hash.
    fn build(
        &mut self,
        paths: &[(Hash, usize)],
        hashes: &[Hash],
        lo: usize,
        hi: usize,
        depth: usize,
    ) -> (u32, Hash) {
        match hi.saturating_sub(lo) {
            0 => return (NONE, EMPTY_ROOT),
            1 => {
                return (
                    leaf_ref(lo as u32),
                    hashes.get(lo).copied().unwrap_or_default(),
                )
            }
            _ => {}
        }
        if depth >= MAX_PROOF_DEPTH {
            // Only distinct paths reach here, and they differ before bit 256.
            return (NONE, EMPTY_ROOT);
        }
        let mid = lo
            + paths
                .get(lo..hi)
                .map_or(0, |run| run.partition_point(|(path, _)| !bit(path, depth)));
        let (left, lh) = self.build(paths, hashes, lo, mid, depth + 1);
        let (right, rh) = self.build(paths, hashes, mid, hi, depth + 1);
        let hash = internal_hash(&lh, &rh);
        self.hashes = self.hashes.wrapping_add(1);
        let r = self.alloc_internal(left, right);
        if let Some(node) = self.internals.get_mut(r as usize) {
            node.hash = hash;
            node.dirty = false;
        }
        (r, hash)
    }

    /// The number of node hashes (blake3 compressions of leaves, values and internal nodes)
    /// computed by this map so far, for tests and benchmarks that check that
    /// [`root`](Self::root) only rehashes dirty nodes. A leaf counts 3 (its path, its value and
    /// itself).
    #[doc(hidden)]
    #[must_use]
    pub fn hashes_computed(&self) -> u64 {
        self.hashes
    }

    /// The number of internal nodes in the tree.
    #[must_use]
    pub fn internal_nodes(&self) -> usize {
        self.internals
            .len()
            .saturating_sub(self.free_internals.len())
    }

    /// An estimate of the heap memory this map holds, in bytes: the arenas and the index at
    /// their capacity, and each key-value allocation (with 8 bytes of allocator bookkeeping,
    /// rounded up to 16 as glibc's malloc does). Divide by [`len`](Self::len) for the cost per entry.
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        let arenas = self.internals.capacity() * std::mem::size_of::<Internal>()
            + self.leaves.capacity() * std::mem::size_of::<Leaf>()
            + (self.free_internals.capacity() + self.free_leaves.capacity()) * 4;
        // hashbrown: one (u32, u32) slot and one control byte per bucket, buckets a power of
        // two at most 7/8 full.
        let buckets = (self.index.capacity().saturating_mul(8) / 7)
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX);
        let index = buckets.saturating_mul(std::mem::size_of::<(u32, u32)>() + 1);
        let kv: usize = self
            .leaves
            .iter()
            .filter(|leaf| !leaf.kv.is_empty())
            .map(|leaf| (leaf.kv.len() + 8).div_ceil(16) * 16)
            .sum();
        arenas.saturating_add(index).saturating_add(kv)
    }

    // --- internals ----------------------------------------------------------------------------

    fn fingerprint(&self, key: &[u8]) -> u32 {
        fingerprint(&self.fingerprints, key)
    }

    fn find_leaf(&self, fp: u32, key: &[u8]) -> Option<usize> {
        let mut cur = *self.index.get(&fp)?;
        while cur != NONE {
            let leaf = self.leaves.get(cur as usize)?;
            if leaf.key() == key {
                return Some(cur as usize);
            }
            cur = leaf.next;
        }
        None
    }

    fn index_link(&mut self, fp: u32, leaf: u32) {
        let head = self.index.insert(fp, leaf).unwrap_or(NONE);
        if let Some(l) = self.leaves.get_mut(leaf as usize) {
            l.next = head;
        }
    }

    fn index_unlink(&mut self, fp: u32, leaf: usize) {
        let Some(&head) = self.index.get(&fp) else {
            return;
        };
        let after = self.leaves.get(leaf).map_or(NONE, |l| l.next);
        if head as usize == leaf {
            if after == NONE {
                self.index.remove(&fp);
            } else {
                self.index.insert(fp, after);
            }
            return;
        }
        let mut cur = head;
        while let Some(node) = self.leaves.get_mut(cur as usize) {
            if node.next as usize == leaf {
                node.next = after;
                return;
            }
            cur = node.next;
        }
    }

    /// Marks the internal nodes on `path` dirty, down to the leaf or empty subtree it ends in.
    fn mark_dirty(&mut self, path: &Hash) {
        let mut cur = self.root;
        for depth in 0..=MAX_PROOF_DEPTH {
            let Ref::Internal(i) = decode(cur) else {
                return;
            };
            let Some(node) = self.internals.get_mut(i) else {
                return;
            };
            node.dirty = true;
            cur = node.child(bit(path, depth));
        }
    }

    fn set_slot(&mut self, slot: Slot, r: u32) {
        match slot {
            Slot::Root => self.root = r,
            Slot::Child(i, right) => {
                if let Some(node) = self.internals.get_mut(i) {
                    node.set_child(right, r);
                }
            }
        }
    }

    fn alloc_leaf(&mut self, leaf: Leaf) -> u32 {
        if let Some(i) = self.free_leaves.pop() {
            if let Some(slot) = self.leaves.get_mut(i as usize) {
                *slot = leaf;
                return i;
            }
        }
        let i = self.leaves.len();
        if i >= MAX_INDEX {
            capacity_exhausted::<Leaf>();
        }
        self.leaves.push(leaf);
        i as u32
    }

    fn alloc_internal(&mut self, left: u32, right: u32) -> u32 {
        let node = Internal {
            hash: EMPTY_ROOT,
            left,
            right,
            dirty: true,
        };
        if let Some(i) = self.free_internals.pop() {
            if let Some(slot) = self.internals.get_mut(i as usize) {
                *slot = node;
                return i;
            }
        }
        let i = self.internals.len();
        if i >= MAX_INDEX {
            capacity_exhausted::<Internal>();
        }
        self.internals.push(node);
        i as u32
    }

    fn free_leaf(&mut self, i: usize) {
        if let Some(leaf) = self.leaves.get_mut(i) {
            leaf.kv = Box::default();
            leaf.key_len = 0;
            leaf.next = NONE;
            self.free_leaves.push(i as u32);
        }
    }

    fn free_internal(&mut self, i: usize) {
        if let Some(node) = self.internals.get_mut(i) {
            node.left = NONE;
            node.right = NONE;
            self.free_internals.push(i as u32);
        }
    }

    /// Unindexes and frees leaf `l`, which the tree no longer references.
    fn drop_leaf(&mut self, l: usize) {
        let Some(key) = self.leaves.get(l).map(|leaf| leaf.key().to_vec()) else {
            return;
        };
        let fp = self.fingerprint(&key);
        self.index_unlink(fp, l);
        self.free_leaf(l);
        self.len = self.len.saturating_sub(1);
    }
}

/// A key's fingerprint: the high half of its keyed SipHash.
fn fingerprint(state: &RandomState, key: &[u8]) -> u32 {
    (state.hash_one(key) >> 32) as u32
}

/// Runs `f(offset, chunk)` over about `threads` chunks of `items`, in parallel.
fn par_chunks<T: Send>(items: &mut [T], threads: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    const MIN_CHUNK: usize = 4096;
    let chunk = items.len().div_ceil(threads.max(1)).max(MIN_CHUNK);
    if threads <= 1 || items.len() <= MIN_CHUNK {
        f(0, items);
        return;
    }
    std::thread::scope(|scope| {
        for (n, part) in items.chunks_mut(chunk).enumerate() {
            let f = &f;
            scope.spawn(move || f(n * chunk, part));
        }
    });
}

impl<'a> IntoIterator for &'a AuthMap {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> Extend<(K, V)> for AuthMap {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k.as_ref(), v.as_ref());
        }
    }
}

/// The entries of an [`AuthMap`] as `(key, value)`, ascending by [`key_path`]; see
/// [`AuthMap::iter`].
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    map: &'a AuthMap,
    stack: Vec<u32>,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(r) = self.stack.pop() {
            match decode(r) {
                Ref::Empty => {}
                Ref::Leaf(l) => {
                    let leaf = self.map.leaves.get(l)?;
                    self.remaining = self.remaining.saturating_sub(1);
                    return Some((leaf.key(), leaf.value()));
                }
                Ref::Internal(i) => {
                    let node = self.map.internals.get(i)?;
                    self.stack.push(node.right);
                    self.stack.push(node.left);
                }
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Iter<'_> {}

// ---------------------------------------------------------------------------------------------
// Proofs
// ---------------------------------------------------------------------------------------------

/// The leaf a proof's path ends in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ProofLeaf {
    path: Hash,
    value_hash: Hash,
}

/// A proof that a key is present with a given value, or absent, under a root.
///
/// It lists the hashes of the siblings along the key's path, from the root's child down, and
/// the node the path ends in: an empty subtree, or a leaf (its path and the blake3 hash of its
/// value). The proof of a present key ends in that key's leaf; the proof of an absent key ends
/// in an empty subtree or in another key's leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    siblings: Vec<Hash>,
    leaf: Option<ProofLeaf>,
}

/// Why a [`Proof`] was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum ProofError {
    /// The bytes are not the canonical encoding of a proof.
    #[error("malformed proof: {0}")]
    Malformed(String),
    /// The proof has more siblings than a path has bits.
    #[error("proof has {0} siblings, more than {MAX_PROOF_DEPTH}")]
    TooDeep(usize),
    /// The hashes do not combine to the expected root.
    #[error("proof does not lead to the root")]
    RootMismatch,
    /// The leaf the proof ends in does not lie on the key's path, or (for inclusion) belongs to
    /// another key.
    #[error("proof is about another key")]
    WrongKey,
    /// The key's leaf holds a different value.
    #[error("the key holds another value")]
    WrongValue,
    /// Inclusion was claimed, but the proof ends in an empty subtree: the key is absent.
    #[error("the proof shows the key absent")]
    KeyAbsent,
    /// Exclusion was claimed, but the proof ends in the key's own leaf: the key is present.
    #[error("the proof shows the key present")]
    KeyPresent,
}

impl Proof {
    /// Checks that under `root`, `key` maps to `value` (`Some`) or is absent (`None`).
    ///
    /// # Errors
    /// [`ProofError::TooDeep`] if the proof is longer than a path; [`ProofError::KeyAbsent`] or
    /// [`ProofError::KeyPresent`] if the proof shows the opposite of the claim;
    /// [`ProofError::WrongKey`] or [`ProofError::WrongValue`] if it ends in a leaf that does not
    /// fit the claim; [`ProofError::RootMismatch`] if its hashes do not lead to `root`.
    pub fn verify(&self, root: &Hash, key: &[u8], value: Option<&[u8]>) -> Result<(), ProofError> {
        let depth = self.siblings.len();
        if depth > MAX_PROOF_DEPTH {
            return Err(ProofError::TooDeep(depth));
        }
        let path = key_path(key);
        let mut hash = match (value, &self.leaf) {
            (Some(value), Some(leaf)) => {
                if leaf.path != path {
                    return Err(ProofError::WrongKey);
                }
                if leaf.value_hash != value_hash(value) {
                    return Err(ProofError::WrongValue);
                }
                leaf_hash(&leaf.path, &leaf.value_hash)
            }
            (Some(_), None) => return Err(ProofError::KeyAbsent),
            (None, Some(leaf)) => {
                if leaf.path == path {
                    return Err(ProofError::KeyPresent);
                }
                // A leaf at depth d shares its first d bits with every path through it.
                if common_prefix(&leaf.path, &path) < depth {
                    return Err(ProofError::WrongKey);
                }
                leaf_hash(&leaf.path, &leaf.value_hash)
            }
            (None, None) => EMPTY_ROOT,
        };
        for (d, sibling) in self.siblings.iter().enumerate().rev() {
            hash = if bit(&path, d) {
                internal_hash(sibling, &hash)
            } else {
                internal_hash(&hash, sibling)
            };
        }
        if hash == *root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        }
    }

    /// The sibling hashes along the key's path, from the root's child down.
    #[must_use]
    pub fn siblings(&self) -> &[Hash] {
        &self.siblings
    }

    /// The leaf the path ends in, as `(path, blake3(value))`; `None` for an empty subtree.
    #[must_use]
    pub fn leaf(&self) -> Option<(&Hash, &Hash)> {
        self.leaf.as_ref().map(|l| (&l.path, &l.value_hash))
    }

    /// The canonical encoding: a bencode dictionary `{"leaf": path ‖ value hash (64 bytes,
    /// absent for an empty subtree), "siblings": the sibling hashes concatenated}`.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.siblings.len() * 32 + 96);
        out.push(b'd');
        if let Some(leaf) = &self.leaf {
            tessera_bencode::put_bytes(&mut out, b"leaf");
            let mut both = [0u8; 64];
            let (p, v) = both.split_at_mut(32);
            p.copy_from_slice(&leaf.path);
            v.copy_from_slice(&leaf.value_hash);
            tessera_bencode::put_bytes(&mut out, &both);
        }
        tessera_bencode::put_bytes(&mut out, b"siblings");
        tessera_bencode::put_bytes(&mut out, self.siblings.as_flattened());
        out.push(b'e');
        out
    }

    /// Decodes [`to_bytes`](Self::to_bytes)' encoding, and only that: strict bencode, no other
    /// keys, exact lengths, at most [`MAX_PROOF_DEPTH`] siblings. Never panics; looks at no more
    /// than about 8 KiB.
    ///
    /// # Errors
    /// [`ProofError::Malformed`] if `bytes` is not such an encoding, [`ProofError::TooDeep`] if
    /// it has too many siblings.
    pub fn from_bytes(bytes: &[u8]) -> Result<Proof, ProofError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Wire<'a> {
            #[serde(with = "serde_bytes", borrow, default)]
            leaf: Option<&'a [u8]>,
            #[serde(with = "serde_bytes", borrow)]
            siblings: &'a [u8],
        }

        if bytes.len() > MAX_PROOF_BYTES {
            return Err(ProofError::Malformed(format!(
                "{} bytes, more than a proof can take",
                bytes.len()
            )));
        }
        let wire: Wire<'_> =
            tessera_bencode::from_bytes(bytes).map_err(|e| ProofError::Malformed(e.to_string()))?;
        if wire.siblings.len() % 32 != 0 {
            return Err(ProofError::Malformed(
                "siblings are not a whole number of hashes".into(),
            ));
        }
        let depth = wire.siblings.len() / 32;
        if depth > MAX_PROOF_DEPTH {
            return Err(ProofError::TooDeep(depth));
        }
        let siblings: Vec<Hash> = wire
            .siblings
            .chunks_exact(32)
            .filter_map(|chunk| Hash::try_from(chunk).ok())
            .collect();
        let leaf = match wire.leaf {
            None => None,
            Some(both) => {
                let (path, value_hash) = both
                    .split_first_chunk::<32>()
                    .and_then(|(p, rest)| Some((*p, *<&Hash>::try_from(rest).ok()?)))
                    .ok_or_else(|| ProofError::Malformed("leaf is not 64 bytes".into()))?;
                Some(ProofLeaf { path, value_hash })
            }
        };
        Ok(Proof { siblings, leaf })
    }
}
