//! Decoder behaviour: every error kind, offsets and key paths, lenient warnings, limits.

use tessera_bencode::{
    decode, decode_lenient, DecodeOptions, Error, ErrorKind, Irregularity, Kind, PathSegment,
    Value, DEFAULT_MAX_DEPTH,
};

fn strict_err(input: &[u8]) -> Error {
    expect_err(input, decode(input))
}

fn lenient_err(input: &[u8]) -> Error {
    expect_err(input, decode_lenient(input))
}

#[track_caller]
fn expect_err(input: &[u8], result: Result<tessera_bencode::Document<'_>, Error>) -> Error {
    let shown = result.as_ref().map(|doc| doc.root().to_owned());
    assert!(
        shown.is_err(),
        "{:?} decoded to {:?}",
        input.escape_ascii().to_string(),
        shown
    );
    result.err().unwrap_or_else(|| unreachable!())
}

fn key(k: &str) -> PathSegment {
    PathSegment::Key(k.as_bytes().to_vec())
}

#[test]
fn nested_negative_zero_reports_offset_and_path() {
    let input = b"d4:infod5:filesli1ei-0eeee";
    let err = strict_err(input);
    assert_eq!(
        err.kind,
        ErrorKind::NonCanonical(Irregularity::NegativeZero)
    );
    assert_eq!(err.offset, 19);
    assert_eq!(&input[err.offset..err.offset + 4], b"i-0e");
    assert_eq!(
        err.path.segments(),
        &[key("info"), key("files"), PathSegment::Index(1)]
    );
    assert_eq!(err.path.to_string(), "info.files[1]");
    assert_eq!(
        err.to_string(),
        "negative zero integer (strict mode) at byte 19 (info.files[1])"
    );

    let doc = decode_lenient(input).unwrap();
    let files = doc.root().as_dict().unwrap().get_dict(b"info").unwrap();
    let files = files.get_list(b"files").unwrap();
    assert_eq!(files.get(1).unwrap().as_int(), Some(0));
    assert_eq!(doc.warnings().len(), 1);
    let w = &doc.warnings()[0];
    assert_eq!(w.kind, Irregularity::NegativeZero);
    assert_eq!(w.offset, 19);
    assert_eq!(w.path.to_string(), "info.files[1]");
}

#[test]
fn empty_input() {
    let err = strict_err(b"");
    assert_eq!(err.kind, ErrorKind::UnexpectedEof);
    assert_eq!(err.offset, 0);
    assert!(err.path.is_root());
    assert_eq!(lenient_err(b""), err);
}

#[test]
fn unexpected_eof_inside_values() {
    for (input, offset) in [
        (&b"l"[..], 1),
        (b"d", 1),
        (b"d1:a", 4),
        (b"li1e", 4),
        (b"i12", 3),
        (b"i", 1),
        (b"12", 2),
        (b"ld3:keyl", 8),
    ] {
        let err = strict_err(input);
        assert_eq!(err.kind, ErrorKind::UnexpectedEof, "{input:?}");
        assert_eq!(err.offset, offset, "{input:?}");
        assert_eq!(lenient_err(input), err);
    }
}

#[test]
fn eof_path_points_into_the_open_container() {
    let err = strict_err(b"d1:ald1:b");
    assert_eq!(err.kind, ErrorKind::UnexpectedEof);
    assert_eq!(err.path.to_string(), "a[0].b");
}

#[test]
fn unexpected_bytes() {
    for (input, byte, offset) in [
        (&b"x"[..], b'x', 0),
        (b"e", b'e', 0),
        (b" i1e", b' ', 0),
        (b"l1:ax", b'x', 4),
        (b"li1e-e", b'-', 4),
    ] {
        let err = strict_err(input);
        assert_eq!(err.kind, ErrorKind::UnexpectedByte(byte), "{input:?}");
        assert_eq!(err.offset, offset, "{input:?}");
    }
    let err = strict_err(b"l1:ax");
    assert_eq!(err.path.segments(), &[PathSegment::Index(1)]);
}

#[test]
fn malformed_integers() {
    for (input, offset) in [
        (&b"ie"[..], 0),
        (b"i-e", 0),
        (b"i1x2e", 0),
        (b"i--1e", 0),
        (b"i+1e", 0),
        (b"i 1e", 0),
        (b"i1-e", 0),
        (b"i12x", 0),
        (b"li-x", 1),
    ] {
        let err = strict_err(input);
        assert_eq!(err.kind, ErrorKind::MalformedInteger, "{input:?}");
        assert_eq!(err.offset, offset, "{input:?}");
        assert_eq!(lenient_err(input), err, "{input:?}");
    }
}

#[test]
fn integer_limits() {
    let max = format!("i{}e", i64::MAX);
    let min = format!("i{}e", i64::MIN);
    assert_eq!(
        decode(max.as_bytes()).unwrap().root().as_int(),
        Some(i64::MAX)
    );
    assert_eq!(
        decode(min.as_bytes()).unwrap().root().as_int(),
        Some(i64::MIN)
    );
    for input in [
        "i9223372036854775808e",
        "i-9223372036854775809e",
        "i99999999999999999999999999e",
        "l0:i18446744073709551616ee",
    ] {
        let err = strict_err(input.as_bytes());
        assert_eq!(err.kind, ErrorKind::IntegerOverflow, "{input}");
        assert_eq!(
            err.offset,
            input
                .find("i9")
                .or(input.find("i-"))
                .or(input.find("i1"))
                .unwrap()
        );
        assert_eq!(lenient_err(input.as_bytes()), err);
    }
}

#[test]
fn bad_string_lengths() {
    for (input, offset) in [
        (&b"5:ab"[..], 0),
        (b"1x:a", 1),
        (b"l3:abc5:xee", 6),
        (b"99999999999999999999999999:", 0),
        (b"4294967296:", 0),
    ] {
        let err = strict_err(input);
        assert_eq!(err.kind, ErrorKind::BadStringLength, "{input:?}");
        assert_eq!(err.offset, offset, "{input:?}");
        assert_eq!(lenient_err(input), err);
    }
}

#[test]
fn keys_must_be_strings() {
    for (input, offset) in [
        (&b"di1ei2ee"[..], 1),
        (b"d1:ai1eli1eei2ee", 7),
        (b"d1:ai1edee", 7),
    ] {
        let err = strict_err(input);
        assert_eq!(err.kind, ErrorKind::KeyNotString, "{input:?}");
        assert_eq!(err.offset, offset, "{input:?}");
        assert!(err.path.is_root());
        assert_eq!(lenient_err(input), err);
    }
}

#[test]
fn key_without_value() {
    let err = strict_err(b"d1:ae");
    assert_eq!(err.kind, ErrorKind::MissingValue);
    assert_eq!(err.offset, 4);
    assert_eq!(err.path.to_string(), "a");
    assert_eq!(lenient_err(b"d1:ae"), err);
}

fn nested_lists(depth: usize) -> Vec<u8> {
    let mut v = vec![b'l'; depth];
    v.extend(std::iter::repeat_n(b'e', depth));
    v
}

#[test]
fn depth_limit_default() {
    assert_eq!(DEFAULT_MAX_DEPTH, 128);
    let ok = nested_lists(128);
    let doc = decode(&ok).unwrap();
    assert_eq!(doc.token_count(), 128);
    let err = strict_err(&nested_lists(129));
    assert_eq!(err.kind, ErrorKind::DepthExceeded { limit: 128 });
    assert_eq!(err.offset, 128);
    assert_eq!(err.path.segments().len(), 128);
    // Dictionaries count too.
    let mut dicts = b"d1:a".repeat(128);
    dicts.extend_from_slice(b"i1e");
    dicts.extend(std::iter::repeat_n(b'e', 128));
    assert!(decode(&dicts).is_ok());
    let mut deeper = b"d1:a".repeat(129);
    deeper.extend_from_slice(b"i1e");
    deeper.extend(std::iter::repeat_n(b'e', 129));
    let err = strict_err(&deeper);
    assert_eq!(err.kind, ErrorKind::DepthExceeded { limit: 128 });
    assert_eq!(err.offset, 128 * 4);
}

#[test]
fn depth_limit_configurable() {
    let opts = DecodeOptions::strict().with_max_depth(3);
    assert!(opts.decode(&nested_lists(3)).is_ok());
    let err = opts.decode(&nested_lists(4)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::DepthExceeded { limit: 3 });
    assert_eq!(err.offset, 3);
    // Depth 0 still allows a scalar root.
    let flat = DecodeOptions::lenient().with_max_depth(0);
    assert_eq!(flat.decode(b"i5e").unwrap().root().as_int(), Some(5));
    assert_eq!(
        flat.decode(b"le").unwrap_err().kind,
        ErrorKind::DepthExceeded { limit: 0 }
    );
    // A deep but configured-for input decodes.
    let deep = DecodeOptions::strict().with_max_depth(10_000);
    assert_eq!(
        deep.decode(&nested_lists(5_000)).unwrap().token_count(),
        5_000
    );
}

#[test]
fn token_limit() {
    let opts = DecodeOptions::strict().with_max_tokens(4);
    assert_eq!(opts.decode(b"li1ei2ei3ee").unwrap().token_count(), 4);
    let opts = DecodeOptions::strict().with_max_tokens(3);
    let err = opts.decode(b"li1ei2ei3ee").unwrap_err();
    assert_eq!(err.kind, ErrorKind::TooManyTokens { limit: 3 });
    assert_eq!(err.offset, 7);
    assert_eq!(err.path.segments(), &[PathSegment::Index(2)]);
    // Keys count as values.
    let opts = DecodeOptions::lenient().with_max_tokens(2);
    let err = opts.decode(b"d1:ai1ee").unwrap_err();
    assert_eq!(err.kind, ErrorKind::TooManyTokens { limit: 2 });
    assert_eq!(err.offset, 4);
}

#[test]
fn non_canonical_strict_and_lenient() {
    let cases: [(&[u8], Irregularity, usize, &str); 8] = [
        (b"d1:bi1e1:ai2ee", Irregularity::UnsortedKeys, 7, "a"),
        (b"d1:ai1e1:ai2ee", Irregularity::DuplicateKey, 7, "a"),
        (b"i-0e", Irregularity::NegativeZero, 0, "<root>"),
        (b"i03e", Irregularity::LeadingZeros, 0, "<root>"),
        (b"li-01ee", Irregularity::LeadingZeros, 1, "[0]"),
        (b"04:spam", Irregularity::LeadingZeros, 0, "<root>"),
        (b"i1ex", Irregularity::TrailingData, 3, "<root>"),
        (b"d1:a00:e", Irregularity::LeadingZeros, 4, "a"),
    ];
    for (input, kind, offset, path) in cases {
        let err = strict_err(input);
        assert_eq!(err.kind, ErrorKind::NonCanonical(kind), "{input:?}");
        assert_eq!(err.offset, offset, "{input:?}");
        assert_eq!(err.path.to_string(), path, "{input:?}");

        let doc = decode_lenient(input).unwrap();
        let w = &doc.warnings()[0];
        assert_eq!(w.kind, kind, "{input:?}");
        assert_eq!(w.offset, offset, "{input:?}");
        assert_eq!(w.path.to_string(), path, "{input:?}");
    }
}

#[test]
fn lenient_values() {
    let doc = decode_lenient(b"d1:bi1e1:ai2e1:bi3ee").unwrap();
    // The second `b` is greater than the key before it: the one warning is for the unsorted `a`.
    let kinds: Vec<_> = doc.warnings().iter().map(|w| w.kind).collect();
    assert_eq!(kinds, [Irregularity::UnsortedKeys]);
    let root = doc.root().as_dict().unwrap();
    // Entries keep input order; lookups return the first of duplicated keys.
    let keys: Vec<_> = root.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [&b"b"[..], b"a", b"b"]);
    assert_eq!(root.get_int(b"b"), Some(1));
    let owned = doc.root().to_owned();
    let mut expected = std::collections::BTreeMap::new();
    expected.insert(b"a".to_vec(), Value::Int(2));
    expected.insert(b"b".to_vec(), Value::Int(1));
    assert_eq!(owned, Value::Dict(expected));

    assert_eq!(
        decode_lenient(b"04:spam").unwrap().root().as_bytes(),
        Some(&b"spam"[..])
    );
    assert_eq!(decode_lenient(b"i-007e").unwrap().root().as_int(), Some(-7));
    let trailing = decode_lenient(b"i1ei2e").unwrap();
    assert_eq!(trailing.root().as_int(), Some(1));
    assert_eq!(trailing.root().raw(), b"i1e");
    // Two irregularities in one integer give two warnings.
    let both = decode_lenient(b"i-00e").unwrap();
    let kinds: Vec<_> = both.warnings().iter().map(|w| w.kind).collect();
    assert_eq!(
        kinds,
        [Irregularity::LeadingZeros, Irregularity::NegativeZero]
    );
    assert!(decode(b"d1:ai1ee").unwrap().warnings().is_empty());
}

#[test]
fn canonical_edge_cases_are_accepted() {
    for input in [
        &b"i0e"[..],
        b"0:",
        b"le",
        b"de",
        b"i-1e",
        b"d0:i1ee",
        b"d1:a0:1:b0:e",
    ] {
        let doc = decode(input).unwrap();
        assert_eq!(doc.root().raw(), input);
        assert!(doc.warnings().is_empty());
    }
    // Non-UTF-8 keys and values.
    let doc = decode(b"d1:\xffl1:\xfeee").unwrap();
    let (k, v) = doc.root().as_dict().unwrap().iter().next().unwrap();
    assert_eq!(k, b"\xff");
    assert_eq!(
        v.as_list().unwrap().get(0).unwrap().as_bytes(),
        Some(&b"\xfe"[..])
    );
    assert_eq!(v.as_list().unwrap().get(0).unwrap().as_str(), None);
}

#[test]
fn views_and_spans() {
    let input = b"d4:infod6:lengthi5e4:name3:abce5:otherl1:xi-3eee";
    let doc = decode(input).unwrap();
    assert_eq!(doc.input(), input);
    let root = doc.root().as_dict().unwrap();
    assert_eq!(root.len(), 2);
    let info = root.get(b"info").unwrap();
    assert_eq!(info.kind(), Kind::Dict);
    assert_eq!(info.raw(), b"d6:lengthi5e4:name3:abce");
    assert_eq!(info.span(), 7..31);
    let other = root.get_list(b"other").unwrap();
    assert_eq!(other.len(), 2);
    assert_eq!(other.get(1).unwrap().as_int(), Some(-3));
    assert_eq!(other.get(1).unwrap().raw(), b"i-3e");
    assert!(other.get(2).is_none());
    assert_eq!(root.get_str(b"missing"), None);
    assert_eq!(info.as_dict().unwrap().get_str(b"name"), Some("abc"));
    // Type mismatches answer None rather than anything else.
    assert_eq!(info.as_int(), None);
    assert!(info.as_list().is_none());
    assert_eq!(other.get(0).unwrap().as_int(), None);

    let owner = bytes::Bytes::copy_from_slice(input);
    let doc = decode(&owner).unwrap();
    let name = doc
        .root()
        .as_dict()
        .unwrap()
        .get_dict(b"info")
        .unwrap()
        .get(b"name")
        .unwrap();
    assert_eq!(name.slice_of(&owner).unwrap(), &b"abc"[..]);
    let other_buf = bytes::Bytes::copy_from_slice(input);
    assert!(name.slice_of(&other_buf).is_none());
}

#[test]
fn error_display_escapes_binary_keys() {
    let err = strict_err(b"d1:\xffi-0ee");
    assert_eq!(err.path.to_string(), "\\xff");
}
