//! Entry points for the fuzz targets: each takes arbitrary bytes, must never panic on them, and
//! panics only when an invariant of the codec breaks.

use bytes::{Bytes, BytesMut};

use crate::decoder::MessageDecoder;
use crate::error::Error;
use crate::handshake::{Handshake, HandshakePrefix, HANDSHAKE_LEN};
use crate::limits::Limits;
use crate::message::Message;

/// The extension payload target, kept beside its payload codecs in the extension module.
pub use crate::extension::extension_payloads;

/// Decodes `data` as a handshake split at every position (the first part decoded, then the
/// rest appended and decoded again), in one piece, and in two steps through
/// [`HandshakePrefix`]; all must agree, and a decoded handshake must re-encode to its bytes.
pub fn handshake(data: &[u8]) {
    let whole = Handshake::decode(&mut BytesMut::from(data));
    if let Ok(Some(hs)) = &whole {
        let mut out = BytesMut::new();
        hs.encode(&mut out);
        assert_eq!(
            Some(&out[..]),
            data.get(..HANDSHAKE_LEN),
            "re-encoding differs"
        );
    }
    for split in 0..=data.len() {
        let (a, b) = data.split_at(split);
        let mut buf = BytesMut::from(a);
        let first = Handshake::decode(&mut buf);
        let got = match first {
            Ok(None) => {
                assert_eq!(buf.len(), a.len(), "Ok(None) consumed bytes");
                buf.extend_from_slice(b);
                Handshake::decode(&mut buf)
            }
            other => other,
        };
        match (&whole, &got) {
            // A wrong byte in the first part is seen early; the whole buffer gives the same.
            (Err(e1), Err(e2)) => assert_eq!(e1, e2, "split at {split}"),
            _ => assert_eq!(whole, got, "split at {split}"),
        }
    }
    // Two steps: prefix, then peer id.
    let mut buf = BytesMut::from(data);
    let two_step = HandshakePrefix::decode(&mut buf).map(|p| p.and_then(|p| p.complete(&mut buf)));
    match (&whole, &two_step) {
        (Ok(Some(_)), _) | (Err(_), _) => assert_eq!(whole, two_step),
        // Fewer than 68 bytes: the prefix may be there without the peer id.
        (Ok(None), t) => assert!(matches!(t, Ok(None))),
    }
}

/// The outcome of decoding a stream: the messages with the bytes each was decoded from, and
/// the error that stopped decoding, if any.
type Outcome = (Vec<(Message, Vec<u8>)>, Option<Error>);

/// Decodes `data` as a message stream, all in one buffer and again fed in chunks, each through
/// both the owned path ([`MessageDecoder::decode`]) and the borrowed one
/// ([`MessageDecoder::decode_slice`]); all four must give the same messages, frames and error,
/// and every message must re-encode to exactly the bytes it was decoded from.
///
/// The first byte picks the chunking pattern (and, with its top bit, limits that know a small
/// torrent's geometry, so that index, bitfield and block checks run too); the rest is the
/// stream. Every message has one encoding (the length prefix is checked exactly against each
/// type), so decoding then encoding gives the input frame back, with no exception.
pub fn message_stream(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let mut limits = Limits::default();
    if seed & 0x80 != 0 {
        limits = limits.for_torrent(100_000, 32 * 1024);
    }
    let decoder = MessageDecoder::new(limits);

    let whole = decode_all(&decoder, stream, &mut std::iter::once(stream.len()));
    for (msg, frame) in &whole.0 {
        assert_eq!(msg.encoded_len(), frame.len(), "encoded_len of {msg:?}");
        assert_eq!(&msg.to_bytes()[..], &frame[..], "re-encoding of {msg:?}");
    }

    // A small xorshift generator seeded by the first byte gives chunk sizes 1..=2^k.
    let mut state = u32::from(seed) | 0x100;
    let span = 1u32 << (seed & 7);
    let mut chunks = std::iter::from_fn(move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        Some((state % span) as usize + 1)
    });
    let sizes: Vec<usize> = chunks.by_ref().take(stream.len()).collect();
    let chunked = decode_all(&decoder, stream, &mut sizes.iter().copied());
    assert_eq!(whole, chunked, "chunked decoding differs");

    let whole_slice = decode_all_slice(&decoder, stream, &mut std::iter::once(stream.len()));
    assert_eq!(whole, whole_slice, "borrowed decoding differs");
    let chunked_slice = decode_all_slice(&decoder, stream, &mut sizes.iter().copied());
    assert_eq!(whole, chunked_slice, "chunked borrowed decoding differs");
}

/// As [`decode_all`], through the borrowed path: after each chunk, decodes from the bytes
/// received and not yet consumed.
fn decode_all_slice(
    decoder: &MessageDecoder,
    stream: &[u8],
    chunks: &mut dyn Iterator<Item = usize>,
) -> Outcome {
    let mut out = Vec::new();
    let mut fed = 0usize;
    let mut consumed = 0usize;
    while fed < stream.len() {
        let n = chunks.next().unwrap_or(usize::MAX).max(1);
        fed = fed.saturating_add(n).min(stream.len());
        loop {
            let input = stream.get(consumed..fed).unwrap_or_default();
            match decoder.decode_slice(input) {
                Ok(Some((msg, used))) => {
                    assert!(used > 0 && used <= input.len(), "consumed {used}");
                    let frame = input.get(..used).unwrap_or_default();
                    assert_eq!(
                        msg.to_message(&Bytes::new()).as_ref(),
                        msg,
                        "as_ref of to_message"
                    );
                    out.push((msg.to_message(&Bytes::new()), frame.to_vec()));
                    consumed += used;
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

/// Feeds `stream` to `decoder` in chunks of the sizes `chunks` yields, decoding after each.
fn decode_all(
    decoder: &MessageDecoder,
    stream: &[u8],
    chunks: &mut dyn Iterator<Item = usize>,
) -> Outcome {
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    let mut fed = 0usize;
    let mut consumed = 0usize;
    while fed < stream.len() {
        let n = chunks.next().unwrap_or(usize::MAX).max(1);
        let end = fed.saturating_add(n).min(stream.len());
        buf.extend_from_slice(stream.get(fed..end).unwrap_or_default());
        fed = end;
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(msg)) => {
                    let used = before - buf.len();
                    let frame = stream.get(consumed..consumed + used).unwrap_or_default();
                    out.push((msg, frame.to_vec()));
                    consumed += used;
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
                    break;
                }
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}
