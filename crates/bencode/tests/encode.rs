//! The encoders are canonical: `DictBuilder` and the `ValueRef` re-encoder always write sorted,
//! unique keys and shortest-form numbers, whatever order or form they are given.

mod common;

use common::{dict, sloppy_encode};
use proptest::prelude::*;
use tessera_bencode::{
    decode, decode_lenient, put_bytes, put_int, DictBuilder, Encode, ErrorKind, Value,
};

#[test]
fn put_helpers() {
    let mut out = Vec::new();
    put_int(&mut out, 0);
    put_int(&mut out, -42);
    put_int(&mut out, i64::MIN);
    put_int(&mut out, i64::MAX);
    put_bytes(&mut out, b"");
    put_bytes(&mut out, b"spam");
    assert_eq!(
        out,
        b"i0ei-42ei-9223372036854775808ei9223372036854775807e0:4:spam".to_vec()
    );
    assert_eq!(7i64.to_bencode(), b"i7e");
    assert_eq!("hi".to_bencode(), b"2:hi");
    assert_eq!(b"\xff"[..].to_bencode(), b"1:\xff");
}

#[test]
fn dict_builder_sorts_and_replaces() {
    let mut b = DictBuilder::new();
    b.entry(b"zeta", &1i64)
        .entry(b"alpha", "x")
        .entry_with(b"mid", |out| {
            out.extend_from_slice(b"le");
        })
        .entry(b"alpha", "y")
        .entry(b"", &0i64);
    let mut out = Vec::new();
    b.finish(&mut out);
    assert_eq!(out, b"d0:i0e5:alpha1:y3:midle4:zetai1ee".to_vec());
    assert!(decode(&out).is_ok());

    let mut out = Vec::new();
    DictBuilder::new().finish(&mut out);
    assert_eq!(out, b"de");
}

#[test]
fn dict_builder_orders_by_raw_bytes() {
    // Byte order, not string order: 'B' (0x42) < 'a' (0x61) < 0xff, and a prefix sorts first.
    let mut b = DictBuilder::new();
    for k in [&b"\xff"[..], b"a", b"ab", b"B", b"aa"] {
        b.entry(k, &1i64);
    }
    let mut out = Vec::new();
    b.finish(&mut out);
    assert_eq!(out, b"d1:Bi1e1:ai1e2:aai1e2:abi1e1:\xffi1ee".to_vec());
}

#[test]
fn value_ref_reencoder_canonicalises() {
    let input = b"d1:bi03e1:al04:spami-0ee1:bi9e1:c0:e";
    let err = decode(input).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::NonCanonical(_)));
    let doc = decode_lenient(input).unwrap();
    let out = doc.root().to_bencode();
    // Sorted, first `b` kept, numbers in shortest form.
    assert_eq!(out, b"d1:al4:spami0ee1:bi3e1:c0:e".to_vec());
    assert!(decode(&out).unwrap().warnings().is_empty());
    // A sub-value re-encodes on its own.
    let a = doc.root().as_dict().unwrap().get(b"a").unwrap();
    assert_eq!(a.to_bencode(), b"l4:spami0ee".to_vec());
}

#[test]
fn value_encoding_is_sorted() {
    let v = dict([
        ("b", Value::Int(1)),
        ("a", Value::List(vec![Value::from("x"), Value::Int(-1)])),
    ]);
    assert_eq!(v.to_bytes(), b"d1:al1:xi-1ee1:bi1ee".to_vec());
    assert_eq!(v.to_bytes(), v.to_bencode());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn reencoding_sloppy_input_is_canonical(
        v in common::value(),
        choices in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut sloppy = Vec::new();
        sloppy_encode(&v, &mut choices.into_iter(), &mut sloppy);
        let doc = decode_lenient(&sloppy).unwrap();
        prop_assert_eq!(doc.root().to_owned(), v.clone());
        let canonical = doc.root().to_bencode();
        prop_assert_eq!(&canonical, &v.to_bytes());
        prop_assert!(decode(&canonical).unwrap().warnings().is_empty());
        match decode(&sloppy) {
            Ok(_) => prop_assert_eq!(&sloppy, &canonical),
            Err(e) => {
                prop_assert!(matches!(e.kind, ErrorKind::NonCanonical(_)), "{}", e);
                prop_assert!(!doc.warnings().is_empty());
            }
        }
    }

    #[test]
    fn dict_builder_matches_sorted_map(
        entries in prop::collection::vec((common::bytes(), common::int()), 0..24),
    ) {
        let mut builder = DictBuilder::new();
        let mut expected = std::collections::BTreeMap::new();
        for (k, i) in &entries {
            builder.entry(k, i);
            // A later entry replaces an earlier one with the same key.
            expected.insert(k.clone(), Value::Int(*i));
        }
        let mut out = Vec::new();
        builder.finish(&mut out);
        let expected = Value::Dict(expected);
        prop_assert_eq!(&out, &expected.to_bytes());
        prop_assert_eq!(decode(&out).unwrap().root().to_owned(), expected);
    }
}
