//! `decode_folded` checks exactly what `decode` checks and gives the same values; `RawValue`
//! reads folded elements as the tape would.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use tessera_bencode::{decode, DecodeOptions, Encode, ErrorKind, Kind, RawValue, Value};

const PATH: &[&[u8]] = &[b"info", b"files"];

/// A `Value` read through `RawValue` alone (duplicate keys: the first wins, as in `to_owned`).
fn raw_owned(v: RawValue<'_>) -> Value {
    match v.kind() {
        Kind::Int => Value::Int(v.as_int().unwrap()),
        Kind::Bytes => Value::Bytes(v.as_bytes().unwrap().to_vec()),
        Kind::List => Value::List(v.as_list().unwrap().map(raw_owned).collect()),
        Kind::Dict => {
            let mut map = BTreeMap::new();
            for (k, x) in v.as_dict().unwrap() {
                map.entry(k.to_vec()).or_insert_with(|| raw_owned(x));
            }
            Value::Dict(map)
        }
    }
}

/// Decodes `input` both ways with `opts` and checks that they agree.
fn agree(input: &[u8], opts: DecodeOptions) -> Result<(), TestCaseError> {
    let full = opts.decode(input);
    let folded = opts.decode_folded(input, PATH);
    match (&full, &folded) {
        (Err(a), Err(b)) => prop_assert_eq!(a, b),
        (Ok(a), Ok(b)) => {
            prop_assert_eq!(a.warnings(), b.warnings());
            prop_assert_eq!(a.root().to_owned(), b.root().to_owned());
            prop_assert_eq!(a.root().to_bencode(), b.root().to_bencode());
            prop_assert!(b.token_count() <= a.token_count());
            if let (Some(fa), Some(fb)) = (common::files_value(a), common::files_value(b)) {
                prop_assert!(!fb.is_folded());
                let ea: Vec<_> = match fa.kind() {
                    Kind::List => fa.as_list().unwrap().iter().collect(),
                    Kind::Dict => fa.as_dict().unwrap().iter().map(|(_, v)| v).collect(),
                    _ => Vec::new(),
                };
                let eb: Vec<_> = match fb.kind() {
                    Kind::List => fb.as_list().unwrap().iter().collect(),
                    Kind::Dict => fb.as_dict().unwrap().iter().map(|(_, v)| v).collect(),
                    _ => Vec::new(),
                };
                prop_assert_eq!(ea.len(), eb.len());
                for (x, y) in ea.iter().zip(&eb) {
                    prop_assert_eq!(x.span(), y.span());
                    prop_assert_eq!(x.kind(), y.kind());
                    let holds = match x.kind() {
                        Kind::List => x.as_list().unwrap().len(),
                        Kind::Dict => x.as_dict().unwrap().len(),
                        _ => 0,
                    };
                    prop_assert_eq!(y.is_folded(), holds > 0);
                    prop_assert_eq!(raw_owned(RawValue::from(*y)), x.to_owned());
                    prop_assert_eq!(y.to_owned(), x.to_owned());
                }
            }
        }
        _ => prop_assert!(false, "{:?} vs {:?}", full.err(), folded.err()),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn folding_changes_nothing_but_the_tape(
        v in common::value(),
        choices in prop::collection::vec(any::<u8>(), 0..64),
        cut in any::<prop::sample::Index>(),
    ) {
        let input = common::sloppy_with_files(v, choices);
        for opts in [DecodeOptions::strict(), DecodeOptions::lenient()] {
            agree(&input, opts)?;
            // Every limit is counted the same way.
            if let Ok(doc) = opts.decode(&input) {
                agree(&input, opts.with_max_tokens(doc.token_count() - 1))?;
            }
            agree(&input, opts.with_max_depth(4))?;
            // Errors inside and around the folded container.
            agree(&input[..cut.index(input.len() + 1)], opts)?;
        }
    }
}

#[test]
fn elements_of_the_container_are_folded_and_readable() {
    let input = b"d4:infod5:filesld6:lengthi1e4:pathl1:a1:bee\
                  d6:lengthi2e4:pathl1:ceeledei7ee4:name1:xee";
    let doc = DecodeOptions::strict().decode_folded(input, PATH).unwrap();
    let full = decode(input).unwrap();
    assert_eq!(doc.token_count(), 12);
    assert!(full.token_count() > doc.token_count());
    let files = common::files_value(&doc).unwrap().as_list().unwrap();
    assert_eq!(files.len(), 5);
    let elems: Vec<_> = files.iter().collect();
    assert_eq!(elems.len(), 5);
    assert!(elems[0].is_folded() && elems[1].is_folded());
    // Empty containers hold nothing to fold.
    assert!(!elems[2].is_folded() && !elems[3].is_folded());
    assert_eq!(elems[4].as_int(), Some(7));
    let first = elems[0].as_dict().unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(first.iter().count(), 0);
    assert_eq!(first.get(b"length"), None);
    let raw = RawValue::from(elems[0]);
    assert_eq!(raw.get(b"length").and_then(|v| v.as_int()), Some(1));
    let path: Vec<&[u8]> = raw
        .get(b"path")
        .and_then(|p| p.as_list())
        .unwrap()
        .filter_map(|c| c.as_bytes())
        .collect();
    assert_eq!(path, [&b"a"[..], b"b"]);
    // Owned copies and re-encoding see through the folding; serde refuses it.
    assert_eq!(doc.root().to_owned(), full.root().to_owned());
    assert_eq!(doc.root().to_bencode(), input.to_vec());
    let err = tessera_bencode::from_value_ref::<Value>(doc.root()).unwrap_err();
    assert!(err.to_string().contains("folded"), "{err}");
    // Nothing else is folded.
    let name = doc.root().as_dict().unwrap().get_dict(b"info").unwrap();
    assert_eq!(name.get_bytes(b"name"), Some(&b"x"[..]));
}

#[test]
fn errors_inside_the_folded_container_are_the_same() {
    let unsorted = b"d4:infod5:filesld1:bi1e1:ai2eeeee";
    let a = decode(unsorted).unwrap_err();
    let b = DecodeOptions::strict()
        .decode_folded(unsorted, PATH)
        .unwrap_err();
    assert_eq!(a, b);
    assert!(matches!(b.kind, ErrorKind::NonCanonical(_)));
    assert_eq!(b.path.to_string(), a.path.to_string());
    let deep = b"d4:infod5:fileslllleeeeee";
    let opts = DecodeOptions::strict().with_max_depth(5);
    assert_eq!(
        opts.decode(deep).unwrap_err(),
        opts.decode_folded(deep, PATH).unwrap_err()
    );
}

#[test]
fn an_empty_path_folds_what_the_root_holds() {
    let input = b"ld1:ai1eeli2eee";
    let doc = DecodeOptions::strict().decode_folded(input, &[]).unwrap();
    assert_eq!(doc.token_count(), 3);
    let l = doc.root().as_list().unwrap();
    assert!(l.iter().all(|v| v.is_folded()));
    assert_eq!(
        doc.root().to_owned(),
        decode(input).unwrap().root().to_owned()
    );
}
