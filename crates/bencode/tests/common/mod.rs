//! Strategies and helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use tessera_bencode::{put_bytes, put_int, Document, Value, ValueRef};

/// Short byte strings, biased towards a small alphabet so that keys collide and sort closely.
pub(crate) fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..12),
        prop::collection::vec(prop::sample::select(&b"abc\x00\xff"[..]), 0..4),
    ]
}

/// Integers, biased towards the edges.
pub(crate) fn int() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        -3i64..3,
        Just(i64::MIN),
        Just(i64::MAX),
        Just(i64::MIN + 1),
    ]
}

/// Arbitrary owned values, nested a few levels.
pub(crate) fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![int().prop_map(Value::Int), bytes().prop_map(Value::Bytes)];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
            prop::collection::btree_map(bytes(), inner, 0..8).prop_map(Value::Dict),
        ]
    })
}

/// Encodes `v` the way sloppy real-world writers do: dictionary entries in a scrambled order,
/// integers and string lengths with leading zeros, `-0` for zero. `choices` drives the mess.
pub(crate) fn sloppy_encode(v: &Value, choices: &mut impl Iterator<Item = u8>, out: &mut Vec<u8>) {
    let mut pick = || choices.next().unwrap_or(0);
    match v {
        Value::Int(i) => {
            let c = pick();
            if *i == 0 && c % 4 == 1 {
                out.extend_from_slice(b"i-0e");
            } else if c % 4 == 2 {
                out.push(b'i');
                if *i < 0 {
                    out.push(b'-');
                }
                out.extend_from_slice(format!("00{}e", i.unsigned_abs()).as_bytes());
            } else {
                put_int(out, *i);
            }
        }
        Value::Bytes(b) => sloppy_bytes(b, pick(), out),
        Value::List(l) => {
            out.push(b'l');
            for x in l {
                sloppy_encode(x, choices, out);
            }
            out.push(b'e');
        }
        Value::Dict(d) => {
            let mut entries: Vec<_> = d.iter().collect();
            let c = pick();
            if c % 3 == 1 {
                entries.reverse();
            } else if c % 3 == 2 && entries.len() > 1 {
                let k = usize::from(c) % entries.len();
                entries.rotate_left(k);
            }
            out.push(b'd');
            for (k, x) in entries {
                let c = choices.next().unwrap_or(0);
                sloppy_bytes(k, c, out);
                sloppy_encode(x, choices, out);
            }
            out.push(b'e');
        }
    }
}

fn sloppy_bytes(b: &[u8], c: u8, out: &mut Vec<u8>) {
    if c % 5 == 3 {
        out.extend_from_slice(format!("0{}:", b.len()).as_bytes());
        out.extend_from_slice(b);
    } else {
        put_bytes(out, b);
    }
}

/// A dictionary value from `(key, value)` pairs.
pub(crate) fn dict<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Dict(
        entries
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// A torrent-like document with `files` at `info.files`.
pub(crate) fn with_files(files: Value) -> Value {
    dict([
        ("announce", Value::Bytes(b"x".to_vec())),
        ("info", dict([("files", files), ("name", Value::Int(1))])),
    ])
}

/// [`with_files`] of `files`, encoded sloppily as `choices` drive it (see [`sloppy_encode`]).
pub(crate) fn sloppy_with_files(files: Value, choices: Vec<u8>) -> Vec<u8> {
    let mut input = Vec::new();
    sloppy_encode(
        &with_files(files),
        &mut choices.into_iter().cycle(),
        &mut input,
    );
    input
}

/// The value at `info.files` in `doc` (see [`with_files`]).
pub(crate) fn files_value<'d, 'a>(doc: &'d Document<'a>) -> Option<ValueRef<'d, 'a>> {
    doc.root()
        .as_dict()?
        .get_dict(b"info")?
        .as_value()
        .as_dict()?
        .get(b"files")
}
