//! serde: derived types round trip, output is canonical, borrowed fields point into the input,
//! and errors say where they happened.

mod common;

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tessera_bencode::{
    decode, from_bytes, from_bytes_with, from_value_ref, to_bytes, to_writer, DeError,
    DecodeOptions, ErrorKind, Irregularity, PathSegment, SerError, Value,
};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct File<'a> {
    length: u64,
    #[serde(borrow)]
    path: Vec<&'a str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    md5sum: Option<String>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Info<'a> {
    // Declared out of key order on purpose: output must still be sorted.
    name: &'a str,
    #[serde(rename = "piece length")]
    piece_length: u32,
    #[serde(with = "serde_bytes")]
    pieces: &'a [u8],
    #[serde(borrow)]
    files: Vec<File<'a>>,
    private: Option<bool>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Torrent<'a> {
    announce: String,
    #[serde(
        rename = "announce-list",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    announce_list: Option<Vec<Vec<String>>>,
    #[serde(borrow)]
    info: Info<'a>,
    #[serde(rename = "creation date")]
    creation_date: Option<i64>,
}

fn sample() -> Torrent<'static> {
    Torrent {
        announce: "http://tracker.example/announce".into(),
        announce_list: Some(vec![vec!["udp://a".into()], vec!["udp://b".into()]]),
        info: Info {
            name: "dir",
            piece_length: 262_144,
            pieces: b"\x00\xff\x10\x80 twenty byte hash!",
            files: vec![
                File {
                    length: 5,
                    path: vec!["a", "b.txt"],
                    md5sum: None,
                },
                File {
                    length: 0,
                    path: vec!["empty"],
                    md5sum: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
                },
            ],
            private: None,
        },
        creation_date: Some(1_700_000_000),
    }
}

#[test]
fn derived_struct_round_trip_is_canonical() {
    let t = sample();
    let bytes = to_bytes(&t).unwrap();
    // Strict decoding accepts it: keys are sorted at every level, no `None` left behind.
    let doc = decode(&bytes).unwrap();
    let root = doc.root().as_dict().unwrap();
    let keys: Vec<_> = root.iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            &b"announce"[..],
            b"announce-list",
            b"creation date",
            b"info"
        ]
    );
    let info = root.get_dict(b"info").unwrap();
    let keys: Vec<_> = info.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [&b"files"[..], b"name", b"piece length", b"pieces"]);
    assert_eq!(info.get_bytes(b"pieces"), Some(t.info.pieces));
    assert!(info.get(b"private").is_none());

    let back: Torrent = from_bytes(&bytes).unwrap();
    assert_eq!(back, t);
    // Borrowed fields point into the input.
    let range = bytes.as_ptr_range();
    assert!(range.contains(&back.info.name.as_ptr()));
    assert!(range.contains(&back.info.pieces.as_ptr()));
    assert!(range.contains(&back.info.files[0].path[1].as_ptr()));
}

#[test]
fn exact_bytes_of_a_small_struct() {
    #[derive(Serialize)]
    struct S {
        z: i8,
        a: &'static str,
        m: Option<u8>,
        n: Option<u8>,
        flag: bool,
        off: bool,
    }
    let s = S {
        z: -1,
        a: "x",
        m: None,
        n: Some(7),
        flag: true,
        off: false,
    };
    assert_eq!(
        to_bytes(&s).unwrap(),
        b"d1:a1:x4:flagi1e1:ni7e3:offi0e1:zi-1ee".to_vec()
    );
}

#[test]
fn byte_strings_and_non_utf8() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct B<'a> {
        #[serde(with = "serde_bytes")]
        owned: Vec<u8>,
        #[serde(borrow, with = "serde_bytes")]
        borrowed: &'a [u8],
        buf: ByteBuf,
        #[serde(with = "serde_bytes")]
        maybe: Option<Vec<u8>>,
    }
    let b = B {
        owned: vec![0xff, 0x00, 0xfe],
        borrowed: b"\x80\x81",
        buf: ByteBuf::from(vec![0xc3, 0x28]),
        maybe: Some(vec![0xee]),
    };
    let bytes = to_bytes(&b).unwrap();
    assert_eq!(
        bytes,
        b"d8:borrowed2:\x80\x813:buf2:\xc3\x285:maybe1:\xee5:owned3:\xff\x00\xfee".to_vec()
    );
    assert_eq!(from_bytes::<B>(&bytes).unwrap(), b);

    // A plain Vec<u8> reads a byte string too (and still reads a list of integers).
    assert_eq!(
        from_bytes::<Vec<u8>>(b"3:\x00\x01\xff").unwrap(),
        vec![0, 1, 255]
    );
    assert_eq!(from_bytes::<Vec<u8>>(b"li1ei2ee").unwrap(), vec![1, 2]);
    assert_eq!(from_bytes::<[u8; 2]>(b"2:ab").unwrap(), *b"ab");
    assert!(from_bytes::<[u8; 2]>(b"3:abc").is_err());

    // A non-UTF-8 string where a `String` is wanted is a type error.
    let err = from_bytes::<String>(b"2:\xc3\x28").unwrap_err();
    assert!(matches!(err, DeError::Invalid { .. }), "{err}");
    assert_eq!(err.offset(), Some(0));
}

#[test]
fn maps_with_byte_and_integer_keys() {
    let mut m: HashMap<ByteBuf, i64> = HashMap::new();
    m.insert(ByteBuf::from(vec![0xff]), 1);
    m.insert(ByteBuf::from(b"b".to_vec()), 2);
    m.insert(ByteBuf::from(b"a".to_vec()), 3);
    let bytes = to_bytes(&m).unwrap();
    assert_eq!(bytes, b"d1:ai3e1:bi2e1:\xffi1ee".to_vec());
    assert_eq!(from_bytes::<HashMap<ByteBuf, i64>>(&bytes).unwrap(), m);

    // Integer keys are written in decimal and sorted as bytes.
    let ints: BTreeMap<u32, &str> = [(2, "two"), (10, "ten"), (1, "one")].into_iter().collect();
    let bytes = to_bytes(&ints).unwrap();
    assert_eq!(bytes, b"d1:13:one2:103:ten1:23:twoe".to_vec());
    assert_eq!(from_bytes::<BTreeMap<u32, &str>>(&bytes).unwrap(), ints);
    let err = from_bytes::<BTreeMap<u32, i64>>(b"d1:xi1ee").unwrap_err();
    assert_eq!(err.offset(), Some(1));

    // Borrowed str keys.
    let m: BTreeMap<&str, i64> = from_bytes(b"d3:fooi1e3:zapi2ee").unwrap();
    assert_eq!(m.get("zap"), Some(&2));
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Msg {
    Ping,
    Have(u32),
    Range(u32, u32),
    Request { index: u32, begin: u32, length: u32 },
}

#[test]
fn enums_are_externally_tagged() {
    let cases: [(Msg, &[u8]); 4] = [
        (Msg::Ping, b"4:Ping"),
        (Msg::Have(7), b"d4:Havei7ee"),
        (Msg::Range(1, 2), b"d5:Rangeli1ei2eee"),
        (
            Msg::Request {
                index: 1,
                begin: 2,
                length: 3,
            },
            b"d7:Requestd5:begini2e5:indexi1e6:lengthi3eee",
        ),
    ];
    for (msg, bytes) in cases {
        assert_eq!(to_bytes(&msg).unwrap(), bytes);
        assert_eq!(from_bytes::<Msg>(bytes).unwrap(), msg);
    }
    let msgs = vec![Msg::Ping, Msg::Have(1)];
    let bytes = to_bytes(&msgs).unwrap();
    assert_eq!(bytes, b"l4:Pingd4:Havei1eee".to_vec());
    assert_eq!(from_bytes::<Vec<Msg>>(&bytes).unwrap(), msgs);

    // Unit variants as map keys.
    #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
    enum Side {
        Left,
        Right,
    }
    let m: BTreeMap<Side, u8> = [(Side::Right, 1), (Side::Left, 2)].into_iter().collect();
    let bytes = to_bytes(&m).unwrap();
    assert_eq!(bytes, b"d4:Lefti2e5:Righti1ee".to_vec());
    assert_eq!(from_bytes::<BTreeMap<Side, u8>>(&bytes).unwrap(), m);

    let err = from_bytes::<Msg>(b"d4:Havei1e4:Pingi1ee").unwrap_err();
    assert!(err.to_string().contains("exactly one entry"), "{err}");
    let err = from_bytes::<Msg>(b"4:Pong").unwrap_err();
    assert!(err.to_string().contains("unknown variant"), "{err}");
    let err = from_bytes::<Msg>(b"4:Have").unwrap_err();
    assert!(matches!(err, DeError::Invalid { .. }), "{err}");
    let err = from_bytes::<Msg>(b"d4:Have3:abce").unwrap_err();
    assert_eq!(err.offset(), Some(7));
    assert_eq!(err.path().to_string(), "Have");
    assert!(from_bytes::<Msg>(b"i1e").is_err());
}

#[test]
fn unknown_keys_are_skipped() {
    #[derive(Debug, PartialEq, Deserialize)]
    struct Small {
        b: i64,
    }
    let input = b"d1:ad1:xll1:yeee1:bi5e1:cli1ei2eee";
    assert_eq!(from_bytes::<Small>(input).unwrap(), Small { b: 5 });
    from_bytes::<IgnoredAny>(input).unwrap();

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Strict {
        #[allow(dead_code)]
        b: i64,
    }
    let err = from_bytes::<Strict>(input).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    assert_eq!(err.offset(), Some(1));
}

#[test]
fn options_and_missing_fields() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct O {
        a: Option<i64>,
        b: Option<Vec<Option<i64>>>,
    }
    let none = O { a: None, b: None };
    assert_eq!(to_bytes(&none).unwrap(), b"de".to_vec());
    assert_eq!(from_bytes::<O>(b"de").unwrap(), none);
    let some = O {
        a: Some(0),
        b: Some(vec![Some(1)]),
    };
    assert_eq!(to_bytes(&some).unwrap(), b"d1:ai0e1:bli1eee".to_vec());
    assert_eq!(from_bytes::<O>(b"d1:ai0e1:bli1eee").unwrap(), some);
    // A `None` inside a list has no encoding.
    let bad = O {
        a: None,
        b: Some(vec![None]),
    };
    assert_eq!(to_bytes(&bad), Err(SerError::MissingValue));
    assert_eq!(to_bytes(&None::<i64>), Err(SerError::MissingValue));
    assert_eq!(to_bytes(&()), Err(SerError::MissingValue));
    let mut m = BTreeMap::new();
    m.insert("gone", None);
    m.insert("kept", Some(1));
    assert_eq!(to_bytes(&m).unwrap(), b"d4:kepti1ee".to_vec());

    let err = from_bytes::<File>(b"d4:pathl1:aee").unwrap_err();
    assert!(err.to_string().contains("missing field `length`"), "{err}");
    assert_eq!(err.offset(), Some(0));
    assert!(err.path().is_root());
}

#[test]
fn numbers() {
    assert_eq!(
        to_bytes(&u64::MAX),
        Err(SerError::UnsignedOutOfRange(u128::from(u64::MAX)))
    );
    assert_eq!(
        to_bytes(&(i64::MAX as u64)).unwrap(),
        b"i9223372036854775807e".to_vec()
    );
    assert_eq!(
        to_bytes(&i128::MIN),
        Err(SerError::SignedOutOfRange(i128::MIN))
    );
    assert_eq!(to_bytes(&-5i128).unwrap(), b"i-5e".to_vec());
    assert_eq!(to_bytes(&1.5f64), Err(SerError::Float));
    assert_eq!(to_bytes(&1.5f32), Err(SerError::Float));
    assert_eq!(to_bytes(&'é').unwrap(), "2:é".as_bytes().to_vec());
    assert_eq!(from_bytes::<char>("2:é".as_bytes()).unwrap(), 'é');

    assert_eq!(from_bytes::<u8>(b"i255e").unwrap(), 255);
    let err = from_bytes::<u8>(b"i256e").unwrap_err();
    assert!(matches!(err, DeError::Invalid { .. }), "{err}");
    assert!(from_bytes::<u64>(b"i-1e").is_err());
    assert_eq!(
        from_bytes::<i64>(b"i-9223372036854775808e").unwrap(),
        i64::MIN
    );
    assert_eq!(from_bytes::<u128>(b"i7e").unwrap(), 7);
    let err = from_bytes::<f64>(b"i1e").unwrap_err();
    assert!(err.to_string().contains("floating-point"), "{err}");
    assert!(from_bytes::<bool>(b"i1e").unwrap());
    assert!(!from_bytes::<bool>(b"i0e").unwrap());
    assert!(from_bytes::<bool>(b"i2e").is_err());
    assert!(from_bytes::<bool>(b"4:true").is_err());
}

#[test]
fn tuples_must_match_in_length() {
    assert_eq!(
        from_bytes::<(i64, String)>(b"li1e1:xe").unwrap(),
        (1, "x".into())
    );
    let err = from_bytes::<(i64, i64)>(b"li1ei2ei3ee").unwrap_err();
    assert!(err.to_string().contains("invalid length"), "{err}");
    assert!(from_bytes::<(i64, i64)>(b"li1ee").is_err());
    assert_eq!(to_bytes(&(1, "x")).unwrap(), b"li1e1:xe".to_vec());
}

#[test]
fn duplicate_keys_are_refused_when_serializing() {
    #[derive(Serialize)]
    struct Inner {
        a: i64,
    }
    #[derive(Serialize)]
    struct Outer {
        a: i64,
        #[serde(flatten)]
        inner: Inner,
    }
    let err = to_bytes(&Outer {
        a: 1,
        inner: Inner { a: 2 },
    })
    .unwrap_err();
    assert_eq!(err, SerError::DuplicateKey(b"a".to_vec()));

    // Same key from two differently typed map keys.
    struct Twice;
    impl Serialize for Twice {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut m = s.serialize_map(None)?;
            m.serialize_entry("b", &1)?;
            m.serialize_entry("1", &1)?;
            m.serialize_entry(&1u8, &2)?;
            m.end()
        }
    }
    assert_eq!(to_bytes(&Twice), Err(SerError::DuplicateKey(b"1".to_vec())));
    let mut out = b"keep".to_vec();
    assert!(to_writer(&Twice, &mut out).is_err());
    assert_eq!(out, b"keep");

    let mut bad_key = BTreeMap::new();
    bad_key.insert(vec![1u8], 1);
    assert_eq!(to_bytes(&bad_key), Err(SerError::KeyNotString));
}

#[test]
fn decode_errors_keep_offset_and_path() {
    let err = from_bytes::<Value>(b"d4:infod5:filesli1ei-0eeee").unwrap_err();
    let DeError::Decode(inner) = &err else {
        panic!("expected a decode error, got {err:?}");
    };
    assert_eq!(
        inner.kind,
        ErrorKind::NonCanonical(Irregularity::NegativeZero)
    );
    assert_eq!(err.offset(), Some(19));
    assert_eq!(err.path().to_string(), "info.files[1]");
    assert!(matches!(
        from_bytes::<Value>(b"l").unwrap_err(),
        DeError::Decode(_)
    ));
}

#[test]
fn type_errors_carry_offset_and_path() {
    let mut t = to_bytes(&sample()).unwrap();
    // Replace the second file's length (i0e) with a string of the same size.
    let at = t.windows(9).position(|w| w == b"lengthi0e").unwrap() + 6;
    t[at..at + 3].copy_from_slice(b"1:x");
    let err = from_bytes::<Torrent>(&t).unwrap_err();
    assert_eq!(err.offset(), Some(at));
    assert_eq!(err.path().to_string(), "info.files[1].length");
    assert_eq!(err.path().segments()[2], PathSegment::Index(1),);
    assert!(err.to_string().contains(&format!("at byte {at}")), "{err}");
}

#[test]
fn sub_values_of_a_document() {
    let bytes = to_bytes(&sample()).unwrap();
    let doc = decode(&bytes).unwrap();
    let info = doc.root().as_dict().unwrap().get(b"info").unwrap();
    let parsed: Info = from_value_ref(info).unwrap();
    assert_eq!(parsed, sample().info);
    let files = info.as_dict().unwrap().get(b"files").unwrap();
    let err = from_value_ref::<Vec<Info>>(files).unwrap_err();
    // The path is relative to the value handed in.
    assert_eq!(err.path().to_string(), "[0]");
    assert_eq!(err.offset(), Some(files.span().start + 1));
}

#[test]
fn lenient_input() {
    #[derive(Debug, PartialEq, Deserialize)]
    struct P {
        a: i64,
        b: i64,
    }
    let input = b"d1:bi1e1:ai2e1:bi3ee";
    assert!(matches!(from_bytes::<P>(input), Err(DeError::Decode(_))));
    // The first of duplicated keys wins, as with `DictRef::get`.
    let p: P = from_bytes_with(input, &DecodeOptions::lenient()).unwrap();
    assert_eq!(p, P { a: 2, b: 1 });
    let v: Value = from_bytes_with(input, &DecodeOptions::lenient()).unwrap();
    assert_eq!(
        v,
        common::dict([("a", Value::Int(2)), ("b", Value::Int(1))])
    );
    let deep = DecodeOptions::strict().with_max_depth(1);
    assert!(from_bytes_with::<Vec<Vec<i64>>>(b"llee", &deep).is_err());
}

#[test]
fn newtypes_and_units() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Id(u32);
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Wrap {
        id: Id,
        #[serde(default)]
        nothing: (),
    }
    let w = Wrap {
        id: Id(9),
        nothing: (),
    };
    assert_eq!(to_bytes(&w).unwrap(), b"d2:idi9ee".to_vec());
    assert_eq!(from_bytes::<Wrap>(b"d2:idi9ee").unwrap(), w);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn derived_round_trip(
        length in 0u64..=i64::MAX as u64,
        path in prop::collection::vec("[a-z0-9 ._-]{0,12}", 1..4),
        md5 in prop::option::of("[0-9a-f]{32}"),
    ) {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let f = File { length, path, md5sum: md5 };
        let bytes = to_bytes(&f).unwrap();
        prop_assert!(decode(&bytes).is_ok());
        prop_assert_eq!(from_bytes::<File>(&bytes).unwrap(), f);
    }

    #[test]
    fn value_through_serde(v in common::value()) {
        let bytes = to_bytes(&v).unwrap();
        prop_assert_eq!(&bytes, &v.to_bytes());
        prop_assert_eq!(from_bytes::<Value>(&bytes).unwrap(), v.clone());
        // Sorting and ignoring work at any depth.
        from_bytes::<IgnoredAny>(&bytes).unwrap();
    }
}
