//! Property tests: decoding what the encoder wrote gives back the value, byte for byte.

mod common;

use proptest::prelude::*;
use tessera_bencode::{decode, decode_lenient, from_bytes, to_bytes, Encode, Value};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_of_encode_is_identity(v in common::value()) {
        let bytes = v.to_bytes();
        let doc = decode(&bytes).unwrap();
        prop_assert_eq!(doc.root().to_owned(), v.clone());
        prop_assert_eq!(doc.root().raw(), &bytes[..]);
        prop_assert_eq!(doc.root().to_bencode(), bytes.clone());
        prop_assert!(doc.warnings().is_empty());
        let lenient = decode_lenient(&bytes).unwrap();
        prop_assert!(lenient.warnings().is_empty());
        prop_assert_eq!(lenient.root().to_owned(), v);
    }

    #[test]
    fn serde_value_matches_native_codec(v in common::value()) {
        let native = v.to_bytes();
        let via_serde = to_bytes(&v).unwrap();
        prop_assert_eq!(&via_serde, &native);
        let back: Value = from_bytes(&native).unwrap();
        prop_assert_eq!(back, v);
    }

    #[test]
    fn token_count_matches_value_count(v in common::value()) {
        fn count(v: &Value) -> usize {
            match v {
                Value::Int(_) | Value::Bytes(_) => 1,
                Value::List(l) => 1 + l.iter().map(count).sum::<usize>(),
                Value::Dict(d) => 1 + d.values().map(|x| 1 + count(x)).sum::<usize>(),
            }
        }
        let bytes = v.to_bytes();
        prop_assert_eq!(decode(&bytes).unwrap().token_count(), count(&v));
    }

    #[test]
    fn every_strict_prefix_is_rejected(v in common::value()) {
        let bytes = v.to_bytes();
        for cut in 0..bytes.len() {
            prop_assert!(decode(&bytes[..cut]).is_err(), "prefix {} accepted", cut);
        }
    }
}
