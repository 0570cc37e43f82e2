//! Entry points for fuzz targets: each takes arbitrary bytes and checks the crate's invariants.
//!
//! These functions panic when an invariant breaks; that is how a fuzzer learns about it. They
//! must never panic for any other reason, so every input is fair game.

// A failed assertion is this module's way of reporting a bug to the fuzzer.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use crate::decode::{decode, decode_lenient};
use crate::encode::Encode;
use crate::error::ErrorKind;
use crate::value::Value;
use crate::{from_bytes_with, to_bytes, DecodeOptions};

/// Decodes `data` strictly and leniently with default limits and checks that the two modes and
/// the encoder agree:
///
/// * strict success implies lenient success with the same value and no warnings, and the root
///   re-encoded reproduces the input byte for byte;
/// * lenient success implies that strict decoding either succeeds or fails only for a
///   non-canonical encoding, that the re-encoded root decodes strictly to the same value, and
///   that serde (`from_bytes_with::<Value>`, `to_bytes`) agrees with the tape.
///
/// Folding (`decode_folded`, here of `info.files` as in a torrent) must not change the verdict,
/// the warnings or the value, in either mode.
///
/// # Panics
/// When one of these invariants does not hold.
pub fn decode_roundtrip(data: &[u8]) {
    let strict = decode(data);
    let lenient = decode_lenient(data);
    for (opts, full) in [
        (DecodeOptions::strict(), &strict),
        (DecodeOptions::lenient(), &lenient),
    ] {
        let folded = opts.decode_folded(data, &[b"info", b"files"]);
        match (full, &folded) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.warnings(), b.warnings(), "folding changed the warnings");
                assert_eq!(
                    a.root().to_owned(),
                    b.root().to_owned(),
                    "folding changed the value"
                );
            }
            (Err(a), Err(b)) => assert_eq!(a, b, "folding changed the error"),
            (a, b) => panic!(
                "folding changed the verdict: {:?} vs {:?}",
                a.as_ref().err(),
                b.as_ref().err()
            ),
        }
    }

    if let Ok(doc) = &strict {
        let reencoded = doc.root().to_bencode();
        assert_eq!(reencoded, data, "strict input must re-encode byte for byte");
        let len = lenient
            .as_ref()
            .expect("strict success implies lenient success");
        assert!(len.warnings().is_empty(), "canonical input gave warnings");
        assert_eq!(len.root().to_owned(), doc.root().to_owned());
    }

    match &lenient {
        Ok(doc) => {
            if let Err(e) = &strict {
                assert!(
                    matches!(e.kind, ErrorKind::NonCanonical(_)),
                    "lenient accepted what strict rejected as {e}"
                );
                assert!(!doc.warnings().is_empty(), "no warning for {e}");
            }
            let owned = doc.root().to_owned();
            let reencoded = doc.root().to_bencode();
            let again = decode(&reencoded).expect("re-encoded output must decode strictly");
            assert_eq!(again.root().to_owned(), owned);
            assert_eq!(owned.to_bytes(), reencoded);

            let via_serde: Value = from_bytes_with(data, &DecodeOptions::lenient())
                .expect("any bencode deserializes into Value");
            assert_eq!(via_serde, owned);
            let serde_bytes = to_bytes(&owned).expect("any Value serializes");
            assert_eq!(serde_bytes, reencoded);
        }
        Err(e) => {
            let s = strict
                .as_ref()
                .expect_err("lenient failure implies strict failure");
            assert!(
                s.offset <= e.offset,
                "strict failed later ({s}) than lenient ({e})"
            );
        }
    }
}
