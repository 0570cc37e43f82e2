//! The fuzzing entry point holds its invariants on random, mutated and hand-picked inputs.

mod common;

use proptest::prelude::*;
use tessera_bencode::fuzzing::decode_roundtrip;

#[test]
fn hand_picked_inputs() {
    let inputs: &[&[u8]] = &[
        b"",
        b"i0e",
        b"i-0e",
        b"i00e",
        b"i-00e",
        b"ie",
        b"i9223372036854775808e",
        b"i-9223372036854775808e",
        b"0:",
        b"00:",
        b"01:a",
        b"1:",
        b"le",
        b"de",
        b"d1:ae",
        b"d1:bi1e1:ai2ee",
        b"d1:ai1e1:ai2ee",
        b"d1:bi1e1:ai2e1:bi3ee",
        b"d1:ad1:bi1e1:bi2eee",
        b"i1ei2e",
        b"l",
        b"llllllllll",
        b"d4:infod5:filesli1ei-0eeee",
        b"di1ei2ee",
        b"4294967296:",
    ];
    for input in inputs {
        decode_roundtrip(input);
    }
    let mut deep = vec![b'l'; 200];
    deep.extend(std::iter::repeat_n(b'e', 200));
    decode_roundtrip(&deep);
}

/// Inputs built from bencode tokens so that most of them parse at least partly.
fn tokenish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"l".to_vec()),
        Just(b"d".to_vec()),
        Just(b"e".to_vec()),
        Just(b"i-0e".to_vec()),
        Just(b"i007e".to_vec()),
        (-20i64..20).prop_map(|i| format!("i{i}e").into_bytes()),
        prop::sample::select(vec!["a", "b", "c", "ab", ""]).prop_map(|s| format!(
            "{}:{}",
            s.len(),
            s
        )
        .into_bytes()),
        Just(b"01:a".to_vec()),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_bytes(data in prop::collection::vec(any::<u8>(), 0..64)) {
        decode_roundtrip(&data);
    }

    #[test]
    fn token_soup(data in tokenish()) {
        decode_roundtrip(&data);
    }

    #[test]
    fn mutated_encodings(
        v in common::value(),
        choices in prop::collection::vec(any::<u8>(), 0..64),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut data = Vec::new();
        common::sloppy_encode(&v, &mut choices.into_iter(), &mut data);
        decode_roundtrip(&data);
        if data.is_empty() {
            return Ok(());
        }
        for (at, byte) in flips {
            let i = at.index(data.len());
            data[i] = byte;
        }
        decode_roundtrip(&data);
        decode_roundtrip(&data[..cut.index(data.len())]);
    }
}
