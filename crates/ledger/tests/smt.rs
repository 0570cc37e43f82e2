//! Tests of the authenticated map (`tessera_ledger::smt`): against a `BTreeMap` model, against a
//! naive reference implementation of the documented hashing rules, and of proof soundness.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use tessera_ledger::smt::{AuthMap, Hash, Proof, ProofError, EMPTY_ROOT, MAX_PROOF_DEPTH};

// --- a reference implementation, written from the documented formulas only ------------------

/// A blake3 key: `label` padded with zero bytes to 32.
fn blake3_key(label: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..label.len()].copy_from_slice(label.as_bytes());
    key
}

fn ref_path(key: &[u8]) -> Hash {
    *blake3::keyed_hash(&blake3_key("tessera-ledger/smt/v1/key-path"), key).as_bytes()
}

fn ref_leaf(path: &Hash, value: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new_keyed(&blake3_key("tessera-ledger/smt/v1/leaf"));
    h.update(path);
    h.update(blake3::hash(value).as_bytes());
    *h.finalize().as_bytes()
}

fn ref_internal(left: &Hash, right: &Hash) -> Hash {
    let mut h = blake3::Hasher::new_keyed(&blake3_key("tessera-ledger/smt/v1/node"));
    h.update(left);
    h.update(right);
    *h.finalize().as_bytes()
}

fn ref_bit(path: &Hash, depth: usize) -> bool {
    path[depth / 8] & (0x80 >> (depth % 8)) != 0
}

/// The root of the compressed tree over `(path, leaf hash)` pairs sharing `depth` leading bits.
fn ref_subtree(items: &[(Hash, Hash)], depth: usize) -> Hash {
    match items {
        [] => [0; 32],
        [(_, leaf)] => *leaf,
        _ => {
            let (left, right): (Vec<_>, Vec<_>) =
                items.iter().partition(|(path, _)| !ref_bit(path, depth));
            ref_internal(
                &ref_subtree(&left, depth + 1),
                &ref_subtree(&right, depth + 1),
            )
        }
    }
}

fn ref_root(model: &BTreeMap<Vec<u8>, Vec<u8>>) -> Hash {
    let items: Vec<(Hash, Hash)> = model
        .iter()
        .map(|(k, v)| {
            let p = ref_path(k);
            (p, ref_leaf(&p, v))
        })
        .collect();
    ref_subtree(&items, 0)
}

/// Encodes a proof from its parts, in the documented wire format.
fn encode_parts(leaf: Option<(Hash, Hash)>, siblings: &[Hash]) -> Vec<u8> {
    let mut out = b"d".to_vec();
    if let Some((p, v)) = leaf {
        out.extend_from_slice(b"4:leaf64:");
        out.extend_from_slice(&p);
        out.extend_from_slice(&v);
    }
    out.extend_from_slice(format!("8:siblings{}:", siblings.len() * 32).as_bytes());
    for s in siblings {
        out.extend_from_slice(s);
    }
    out.push(b'e');
    out
}

fn parts(proof: &Proof) -> (Option<(Hash, Hash)>, Vec<Hash>) {
    (
        proof.leaf().map(|(p, v)| (*p, *v)),
        proof.siblings().to_vec(),
    )
}

fn rebuild(leaf: Option<(Hash, Hash)>, siblings: &[Hash]) -> Proof {
    Proof::from_bytes(&encode_parts(leaf, siblings)).unwrap()
}

fn key_of(id: u8) -> Vec<u8> {
    // Key 0 is the empty key; the others are distinct, of 1 to 4 bytes.
    let len = if id == 0 { 0 } else { 1 + id % 4 };
    (0..len)
        .map(|i| id.wrapping_mul(31).wrapping_add(i))
        .collect()
}

// --- known answers -------------------------------------------------------------------------

#[test]
fn empty_map_root_is_zero() {
    let mut map = AuthMap::new();
    assert_eq!(map.root(), [0u8; 32]);
    assert_eq!(EMPTY_ROOT, [0u8; 32]);
    assert!(map.is_empty());
    assert_eq!(map.len(), 0);
    assert_eq!(map.iter().count(), 0);
    assert_eq!(AuthMap::from_entries(Vec::new()).root(), [0u8; 32]);
    let proof = map.prove(b"anything");
    assert!(proof.siblings().is_empty());
    assert_eq!(proof.verify(&[0; 32], b"anything", None), Ok(()));
    assert_eq!(
        proof.verify(&[0; 32], b"anything", Some(b"")),
        Err(ProofError::KeyAbsent)
    );
}

#[test]
fn single_entry_root_is_its_leaf_hash() {
    let (key, value) = (b"alice".as_slice(), b"100 coins".as_slice());
    // By hand: keyed_hash(LEAF_KEY, keyed_hash(KEY_PATH_KEY, key) ‖ blake3(value)).
    let path = blake3::keyed_hash(b"tessera-ledger/smt/v1/key-path\0\0", key);
    let mut preimage = path.as_bytes().to_vec();
    preimage.extend_from_slice(blake3::hash(value).as_bytes());
    let expected =
        *blake3::keyed_hash(b"tessera-ledger/smt/v1/leaf\0\0\0\0\0\0", &preimage).as_bytes();

    let mut map = AuthMap::new();
    map.insert(key, value);
    assert_eq!(map.root(), expected);
    assert_eq!(
        AuthMap::from_entries([(key.to_vec(), value.to_vec())]).root(),
        expected
    );
    assert_eq!(tessera_ledger::smt::key_path(key), *path.as_bytes());

    let proof = map.prove(key);
    assert!(proof.siblings().is_empty());
    assert_eq!(proof.verify(&expected, key, Some(value)), Ok(()));
}

#[test]
fn two_entries_root_by_hand() {
    // Find two keys whose paths differ in the first bit, and two that share it.
    let keys: Vec<Vec<u8>> = (0u32..64).map(|i| i.to_be_bytes().to_vec()).collect();
    let a = &keys[0];
    let pa = ref_path(a);
    let b = keys
        .iter()
        .find(|k| ref_bit(&ref_path(k), 0) != ref_bit(&pa, 0))
        .unwrap();
    let pb = ref_path(b);
    let (left, right) = if ref_bit(&pa, 0) {
        (ref_leaf(&pb, b"vb"), ref_leaf(&pa, b"va"))
    } else {
        (ref_leaf(&pa, b"va"), ref_leaf(&pb, b"vb"))
    };
    let mut map = AuthMap::new();
    map.insert(a, b"va");
    map.insert(b, b"vb");
    assert_eq!(map.root(), ref_internal(&left, &right));

    // Same first bit, different second bit: the root has an empty child.
    let c = keys
        .iter()
        .find(|k| {
            let p = ref_path(k);
            ref_bit(&p, 0) == ref_bit(&pa, 0) && ref_bit(&p, 1) != ref_bit(&pa, 1)
        })
        .unwrap();
    let pc = ref_path(c);
    let mut map = AuthMap::new();
    map.insert(a, b"va");
    map.insert(c, b"");
    let (l2, r2) = if ref_bit(&pa, 1) {
        (ref_leaf(&pc, b""), ref_leaf(&pa, b"va"))
    } else {
        (ref_leaf(&pa, b"va"), ref_leaf(&pc, b""))
    };
    let sub = ref_internal(&l2, &r2);
    let expected = if ref_bit(&pa, 0) {
        ref_internal(&[0; 32], &sub)
    } else {
        ref_internal(&sub, &[0; 32])
    };
    assert_eq!(map.root(), expected);
    assert_eq!(map.prove(a).siblings().len(), 2);

    // Removing one collapses back to a single leaf at the root.
    assert!(map.remove(c));
    assert_eq!(map.root(), ref_leaf(&pa, b"va"));
    assert!(!map.remove(c));
}

// --- model-based --------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Insert(u8, Vec<u8>),
    Remove(u8),
    Root,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..40, proptest::collection::vec(any::<u8>(), 0..6)).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => (0u8..40).prop_map(Op::Remove),
        1 => Just(Op::Root),
    ]
}

fn run(ops: &[Op]) -> (AuthMap, BTreeMap<Vec<u8>, Vec<u8>>) {
    let mut map = AuthMap::new();
    let mut model = BTreeMap::new();
    for op in ops {
        match op {
            Op::Insert(k, v) => {
                map.insert(&key_of(*k), v);
                model.insert(key_of(*k), v.clone());
            }
            Op::Remove(k) => {
                assert_eq!(map.remove(&key_of(*k)), model.remove(&key_of(*k)).is_some());
            }
            Op::Root => {
                map.root();
            }
        }
    }
    (map, model)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn behaves_like_a_btreemap(ops in proptest::collection::vec(op(), 0..120)) {
        let (mut map, model) = run(&ops);
        prop_assert_eq!(map.len(), model.len());
        prop_assert_eq!(map.is_empty(), model.is_empty());
        for id in 0..40 {
            let k = key_of(id);
            prop_assert_eq!(map.get(&k), model.get(&k).map(Vec::as_slice));
            prop_assert_eq!(map.contains_key(&k), model.contains_key(&k));
        }
        // iter: the model's entries, in path order.
        let listed: Vec<(Vec<u8>, Vec<u8>)> =
            map.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        prop_assert_eq!(map.iter().len(), model.len());
        let mut expected: Vec<(Vec<u8>, Vec<u8>)> =
            model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        expected.sort_by_key(|(k, _)| ref_path(k));
        prop_assert_eq!(listed, expected);

        // The root depends on the contents only.
        let root = map.root();
        prop_assert_eq!(root, ref_root(&model));
        let entries: Vec<(Vec<u8>, Vec<u8>)> =
            model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        prop_assert_eq!(AuthMap::from_entries(entries.clone()).root(), root);
        let mut reversed = AuthMap::new();
        for (k, v) in entries.iter().rev() {
            reversed.insert(k, v);
        }
        prop_assert_eq!(reversed.root(), root);
        let mut forward = AuthMap::new();
        for (k, v) in &entries {
            forward.insert(k, b"placeholder");
            forward.insert(k, v);
        }
        prop_assert_eq!(forward.root(), root);
        prop_assert_eq!(map.root(), root, "root() twice");

        // A clone evolves on its own.
        let mut copy = map.clone();
        copy.insert(b"only in the copy", b"");
        prop_assert_ne!(copy.root(), root);
        prop_assert_eq!(map.root(), root);

        // Removing everything, in either order, gives the empty root.
        for (k, _) in &entries {
            prop_assert!(map.remove(k));
        }
        prop_assert_eq!(map.root(), [0u8; 32]);
        prop_assert!(map.is_empty());
        prop_assert_eq!(map.iter().count(), 0);
        for (k, _) in entries.iter().rev() {
            prop_assert!(reversed.remove(k));
        }
        prop_assert_eq!(reversed.root(), [0u8; 32]);
        // And the emptied map is reusable.
        for (k, v) in &entries {
            map.insert(k, v);
        }
        prop_assert_eq!(map.root(), root);
    }

    #[test]
    fn from_entries_keeps_the_last_duplicate(
        entries in proptest::collection::vec((0u8..20, proptest::collection::vec(any::<u8>(), 0..4)), 0..60)
    ) {
        let entries: Vec<(Vec<u8>, Vec<u8>)> =
            entries.into_iter().map(|(k, v)| (key_of(k), v)).collect();
        let mut built = AuthMap::from_entries(entries.clone());
        let mut inserted = AuthMap::new();
        let mut model = BTreeMap::new();
        for (k, v) in &entries {
            inserted.insert(k, v);
            model.insert(k.clone(), v.clone());
        }
        prop_assert_eq!(built.len(), model.len());
        for (k, v) in &model {
            prop_assert_eq!(built.get(k), Some(v.as_slice()));
        }
        prop_assert_eq!(built.root(), inserted.root());
        prop_assert_eq!(built.root(), ref_root(&model));
        // A built map takes further writes like any other.
        built.insert(b"x", b"y");
        inserted.insert(b"x", b"y");
        prop_assert!(built.remove(&key_of(3)) == inserted.remove(&key_of(3)));
        prop_assert_eq!(built.root(), inserted.root());
    }

    #[test]
    fn proofs_verify_and_tampering_fails(ops in proptest::collection::vec(op(), 0..80)) {
        let (mut map, model) = run(&ops);
        let root = map.root();
        let proofs: Vec<(Vec<u8>, Proof)> =
            (0..48).map(|id| (key_of(id), map.prove(&key_of(id)))).collect();
        prop_assert_eq!(map.root(), root);
        for (key, proof) in &proofs {
            prop_assert!(proof.siblings().len() <= MAX_PROOF_DEPTH);
            prop_assert_eq!(&Proof::from_bytes(&proof.to_bytes()).unwrap(), proof);
            let other_root = {
                let mut r = root;
                r[7] ^= 1;
                r
            };
            match model.get(key) {
                Some(value) => {
                    prop_assert_eq!(proof.verify(&root, key, Some(value)), Ok(()));
                    prop_assert!(proof.verify(&other_root, key, Some(value)).is_err());
                    prop_assert_eq!(proof.verify(&root, key, None), Err(ProofError::KeyPresent));
                    let mut wrong = value.clone();
                    wrong.push(0);
                    prop_assert_eq!(proof.verify(&root, key, Some(&wrong)), Err(ProofError::WrongValue));
                    // Another key's value.
                    for (k2, v2) in &model {
                        if v2 != value {
                            prop_assert!(proof.verify(&root, key, Some(v2)).is_err());
                        }
                        // The proof of this key says nothing of the presence of another.
                        if k2 != key {
                            prop_assert!(proof.verify(&root, k2, Some(value)).is_err());
                            prop_assert!(proof.verify(&root, k2, Some(v2)).is_err());
                            prop_assert!(proof.verify(&root, k2, None).is_err());
                        }
                    }
                }
                None => {
                    prop_assert_eq!(proof.verify(&root, key, None), Ok(()));
                    prop_assert!(proof.verify(&other_root, key, None).is_err() || root == other_root);
                    prop_assert!(proof.verify(&root, key, Some(b"")).is_err());
                    // An exclusion proof for one key never shows a present key absent.
                    for k2 in model.keys() {
                        prop_assert!(proof.verify(&root, k2, None).is_err());
                    }
                }
            }
            let claim = model.get(key).map(Vec::as_slice);
            let (leaf, siblings) = parts(proof);
            prop_assert_eq!(&rebuild(leaf, &siblings), proof);

            // Every change of a sibling, the leaf, or the number of siblings is caught.
            for i in 0..siblings.len() {
                let mut s = siblings.clone();
                s[i][i % 32] ^= 0x40;
                prop_assert_eq!(rebuild(leaf, &s).verify(&root, key, claim), Err(ProofError::RootMismatch));
            }
            if !siblings.is_empty() {
                prop_assert!(rebuild(leaf, &siblings[1..]).verify(&root, key, claim).is_err());
                prop_assert!(rebuild(leaf, &siblings[..siblings.len() - 1]).verify(&root, key, claim).is_err());
            }
            let mut longer = siblings.clone();
            longer.push([0; 32]);
            prop_assert!(rebuild(leaf, &longer).verify(&root, key, claim).is_err());
            let mut longer = vec![[0u8; 32]];
            longer.extend_from_slice(&siblings);
            prop_assert!(rebuild(leaf, &longer).verify(&root, key, claim).is_err());
            if let Some((p, v)) = leaf {
                let mut p2 = p;
                p2[31] ^= 1;
                prop_assert!(rebuild(Some((p2, v)), &siblings).verify(&root, key, claim).is_err());
                let mut v2 = v;
                v2[0] ^= 1;
                prop_assert!(rebuild(Some((p, v2)), &siblings).verify(&root, key, claim).is_err());
                prop_assert!(rebuild(None, &siblings).verify(&root, key, claim).is_err());
            } else if !model.is_empty() {
                // Claiming some leaf where the tree has an empty subtree.
                let fake = (ref_path(b"nobody"), *blake3::hash(b"").as_bytes());
                prop_assert!(rebuild(Some(fake), &siblings).verify(&root, key, claim).is_err());
            }
            // Any one-byte change of the encoding is rejected, or changes nothing (checked for
            // a few keys: it is the slowest part of this test).
            let bytes = proof.to_bytes();
            let flips = if key.len() <= 1 { bytes.len() } else { 0 };
            for i in 0..flips {
                let mut b = bytes.clone();
                b[i] ^= 0x01;
                if let Ok(p) = Proof::from_bytes(&b) {
                    prop_assert!(p.verify(&root, key, claim).is_err(), "byte {} flipped still verifies", i);
                }
            }
        }
    }

    #[test]
    fn from_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Proof::from_bytes(&bytes);
    }

    #[test]
    fn from_bytes_of_near_proofs(
        leaf in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..70)),
        siblings_len in 0usize..300 * 32,
        extra in proptest::option::of(".{0,6}"),
    ) {
        let mut out = b"d".to_vec();
        if let Some(extra) = &extra {
            // An unknown key sorted before "leaf".
            out.extend_from_slice(format!("1:a{}:{}", extra.len(), extra).as_bytes());
        }
        if let Some(leaf) = &leaf {
            out.extend_from_slice(format!("4:leaf{}:", leaf.len()).as_bytes());
            out.extend_from_slice(leaf);
        }
        out.extend_from_slice(format!("8:siblings{siblings_len}:").as_bytes());
        out.resize(out.len() + siblings_len, 7);
        out.push(b'e');
        let result = Proof::from_bytes(&out);
        let valid = extra.is_none()
            && leaf.as_ref().is_none_or(|l| l.len() == 64)
            && siblings_len % 32 == 0
            && siblings_len / 32 <= MAX_PROOF_DEPTH;
        prop_assert_eq!(result.is_ok(), valid, "{:?}", result);
        if let Ok(p) = result {
            prop_assert_eq!(p.to_bytes(), out);
        }
    }
}

#[test]
fn from_bytes_rejects_hostile_input() {
    assert!(Proof::from_bytes(b"").is_err());
    assert!(Proof::from_bytes(b"de").is_err()); // no siblings field
    assert!(Proof::from_bytes(b"d8:siblings0:e").is_ok());
    assert!(Proof::from_bytes(b"d8:siblings0:ee").is_err()); // trailing bytes
    assert!(Proof::from_bytes(b"d8:siblings1:xe").is_err());
    assert!(Proof::from_bytes(b"d8:siblingsi0ee").is_err());
    // Keys out of order: not canonical.
    let mut unsorted = b"d8:siblings0:4:leaf64:".to_vec();
    unsorted.extend_from_slice(&[0; 64]);
    unsorted.push(b'e');
    assert!(Proof::from_bytes(&unsorted).is_err());
    // 257 siblings: too deep.
    assert_eq!(
        Proof::from_bytes(&encode_parts(None, &[[1; 32]; 257])),
        Err(ProofError::TooDeep(257))
    );
    assert!(Proof::from_bytes(&encode_parts(None, &[[1; 32]; 256])).is_ok());
    // A huge claimed length is refused without reading it.
    let mut huge = b"d8:siblings99999999999999:".to_vec();
    huge.resize(20_000, b'a');
    assert!(Proof::from_bytes(&huge).is_err());
}

// --- cost ---------------------------------------------------------------------------------

fn account_key(i: u32) -> Vec<u8> {
    let mut k = b"a".to_vec();
    k.extend_from_slice(blake3::hash(&i.to_le_bytes()).as_bytes()[..20].as_ref());
    k
}

#[test]
fn root_rehashes_only_dirty_paths() {
    let n: u32 = 100_000;
    let mut map =
        AuthMap::from_entries((0..n).map(|i| (account_key(i), i.to_le_bytes().repeat(4))));
    assert_eq!(map.len(), n as usize);
    let root = map.root();
    let before = map.hashes_computed();
    assert_eq!(map.root(), root);
    assert_eq!(
        map.hashes_computed(),
        before,
        "a clean root() hashes nothing"
    );

    let budget = |k: u64| k * (2 * u64::from(n.ilog2() + 1) + 4);

    // Update 10 existing keys.
    for i in 0..10u32 {
        map.insert(&account_key(i * 7919), b"new value");
    }
    let updated = map.root();
    assert_ne!(updated, root);
    let cost = map.hashes_computed() - before;
    assert!(
        cost > 0 && cost < budget(10),
        "10 updates cost {cost} hashes"
    );

    // Insert 10 new keys and remove 10.
    let before = map.hashes_computed();
    for i in 0..10u32 {
        map.insert(&account_key(n + i), b"fresh");
        assert!(map.remove(&account_key(i * 13 + 1)));
    }
    map.root();
    let cost = map.hashes_computed() - before;
    assert!(cost < budget(20), "20 inserts/removes cost {cost} hashes");

    // Writing a value equal to the current one changes nothing.
    let before = map.hashes_computed();
    map.insert(&account_key(5), &5u32.to_le_bytes().repeat(4));
    map.root();
    assert_eq!(map.hashes_computed(), before);

    // And the incremental root is the true one.
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> =
        map.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    assert_eq!(model.len(), n as usize);
    let rebuilt = AuthMap::from_entries(std::mem::take(&mut model)).root();
    assert_eq!(map.root(), rebuilt);

    // The tree stays shallow: depth about log2(n).
    let proof = map.prove(&account_key(77));
    assert!(
        proof.siblings().len() < 2 * n.ilog2() as usize,
        "depth {}",
        proof.siblings().len()
    );
    assert!(map.internal_nodes() < 2 * n as usize);
}
