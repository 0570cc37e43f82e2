//! Entry points for the fuzz targets in `fuzz/`: each takes arbitrary bytes and checks the
//! crate's invariants, panicking when one breaks (that is how a fuzzer learns about it). They
//! must never panic for any other reason, so every input is fair game.

// A failed assertion is this module's way of reporting a bug to the fuzzer.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use crate::krpc::{self, Body, Message};

/// A datagram from the network: decode it as KRPC; if that succeeds, encode the message and
/// decode it again, which must give the same message, and the same bytes once more. The
/// encoding must be canonical bencode (when the BEP 44 value it carries verbatim is), and no
/// longer than [`krpc::MAX_DATAGRAM`]. If decoding fails, the error reply, when there is one,
/// must itself round-trip.
///
/// # Panics
/// When one of these invariants does not hold.
pub fn krpc_decode(data: &[u8]) {
    let decoded = krpc::decode(data);
    if data.len() <= krpc::MAX_DATAGRAM {
        let tape = tessera_bencode::DecodeOptions::lenient()
            .with_max_depth(krpc::MAX_DEPTH)
            .decode(data);
        let not_bencode = matches!(decoded, Err(krpc::KrpcError::NotBencode { .. }));
        assert_eq!(
            not_bencode,
            tape.is_err(),
            "bencode readers disagree: {decoded:?} / {:?}",
            tape.err()
        );
    }
    match decoded {
        Ok(msg) => {
            let bytes = msg.encode();
            let again = krpc::decode(&bytes)
                .unwrap_or_else(|e| panic!("re-encoded message does not decode: {e}"));
            assert_eq!(again, msg, "decode(encode(m)) != m");
            assert_eq!(again.encode(), bytes, "encoding is not stable");
            let mut appended = b"xy".to_vec();
            msg.encode_into(&mut appended);
            assert_eq!(appended.get(2..), Some(&bytes[..]), "encode_into != encode");
            if raw_value(&msg).is_none_or(|v| tessera_bencode::decode(v).is_ok()) {
                let doc = tessera_bencode::decode(&bytes);
                assert!(doc.is_ok(), "encoding is not canonical: {doc:?}");
            }
        }
        Err(err) => {
            let _ = err.to_string();
            let (code, _) = err.reply_code();
            if let Some(reply) = err.reply() {
                assert_eq!(Some(&reply.tid[..]), err.tid());
                assert!(matches!(reply.body, Body::Error { code: c, .. } if c == code));
                assert_eq!(krpc::decode(&reply.encode()), Ok(reply));
            }
        }
    }
}

fn raw_value(msg: &Message) -> Option<&[u8]> {
    match &msg.body {
        Body::Query(krpc::Query::Put { value, .. }) => Some(value),
        Body::Response(r) => r.value.as_deref(),
        _ => None,
    }
}
