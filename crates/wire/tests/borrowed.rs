//! The borrowed decode path (`MessageDecoder::decode_slice`, `MessageRef`) against the owned one
//! (`MessageDecoder::decode`, `Message`): the same messages, the same bytes consumed, the same
//! errors, on any input and any chunking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tessera_wire::{BlockRequest, Error, Limits, Message, MessageDecoder, MessageRef};

/// What one decode step gave: a message (owned) with the bytes it used, need-more, or an error.
#[derive(Debug, PartialEq)]
enum Step {
    Msg(Message, usize),
    NeedMore,
    Failed(Error),
}

/// Feeds `stream` in chunks of the given sizes to the owned path, stepping after each chunk.
fn owned_steps(dec: &MessageDecoder, stream: &[u8], chunks: &[usize]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut sizes = chunks.iter().copied().chain(std::iter::repeat(usize::MAX));
    while fed < stream.len() {
        let end = fed
            .saturating_add(sizes.next().unwrap().max(1))
            .min(stream.len());
        buf.extend_from_slice(&stream[fed..end]);
        fed = end;
        loop {
            let before = buf.len();
            match dec.decode(&mut buf) {
                Ok(Some(msg)) => steps.push(Step::Msg(msg, before - buf.len())),
                Ok(None) => {
                    assert_eq!(buf.len(), before);
                    steps.push(Step::NeedMore);
                    break;
                }
                Err(e) => {
                    steps.push(Step::Failed(e));
                    return steps;
                }
            }
        }
    }
    steps
}

/// The same through the borrowed path: the input is the part of `stream` received so far, from
/// the first byte not yet consumed.
fn borrowed_steps(dec: &MessageDecoder, stream: &[u8], chunks: &[usize]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut fed = 0;
    let mut at = 0;
    let mut sizes = chunks.iter().copied().chain(std::iter::repeat(usize::MAX));
    while fed < stream.len() {
        fed = fed
            .saturating_add(sizes.next().unwrap().max(1))
            .min(stream.len());
        loop {
            let input = &stream[at..fed];
            match dec.decode_slice(input) {
                Ok(Some((msg, used))) => {
                    assert!(used <= input.len());
                    // Payloads borrow from the input, inside the frame.
                    if let Some(p) = msg.payload() {
                        let frame = input[..used].as_ptr_range();
                        let pr = p.as_ptr_range();
                        assert!(frame.start <= pr.start && pr.end == frame.end);
                    }
                    steps.push(Step::Msg(msg.to_message(&Bytes::new()), used));
                    at += used;
                }
                Ok(None) => {
                    steps.push(Step::NeedMore);
                    break;
                }
                Err(e) => {
                    steps.push(Step::Failed(e));
                    return steps;
                }
            }
        }
    }
    steps
}

/// Limits with or without a small torrent's geometry, so that index, bitfield and block checks
/// run too.
fn limits(geometry: bool, small_max: bool) -> Limits {
    let mut l = Limits::default();
    if geometry {
        l = l.for_torrent(100_000, 32 * 1024);
    }
    if small_max {
        l.max_message_len = 300;
    }
    l
}

/// One frame: an id (known or not), a length prefix near the right one for it, a body.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    let id = prop_oneof![0u8..=9, 13u8..=23, any::<u8>()];
    let len = prop_oneof![
        Just(0u32),
        1u32..=3,
        Just(5),
        Just(13),
        Just(49),
        Just(13 + 4),
        Just(49 + 64),
        1u32..200,
        Just(u32::MAX),
    ];
    (
        id,
        len,
        proptest::collection::vec(any::<u8>(), 0..200),
        any::<bool>(),
    )
        .prop_map(|(id, len, body, small_values)| {
            let mut f = len.to_be_bytes().to_vec();
            if len == 0 {
                return f;
            }
            f.push(id);
            let mut body = body;
            body.resize(len.saturating_sub(1).min(200) as usize, 0);
            if small_values {
                // Fields that pass the geometry checks more often: small indices and offsets.
                for b in body.iter_mut().take(12).step_by(4) {
                    *b = 0;
                }
            }
            f.extend_from_slice(&body);
            f
        })
}

proptest! {
    #[test]
    fn paths_agree_on_frames(
        frames in proptest::collection::vec(frame(), 0..12),
        chunks in proptest::collection::vec(1usize..40, 0..40),
        geometry in any::<bool>(),
        small_max in any::<bool>(),
    ) {
        let stream = frames.concat();
        let dec = MessageDecoder::new(limits(geometry, small_max));
        let whole = owned_steps(&dec, &stream, &[]);
        prop_assert_eq!(&borrowed_steps(&dec, &stream, &[]), &whole);
        prop_assert_eq!(
            borrowed_steps(&dec, &stream, &chunks),
            owned_steps(&dec, &stream, &chunks)
        );
    }

    #[test]
    fn paths_agree_on_arbitrary_bytes(
        stream in proptest::collection::vec(any::<u8>(), 0..300),
        chunks in proptest::collection::vec(1usize..16, 0..40),
        geometry in any::<bool>(),
    ) {
        let dec = MessageDecoder::new(limits(geometry, false));
        prop_assert_eq!(
            borrowed_steps(&dec, &stream, &chunks),
            owned_steps(&dec, &stream, &chunks)
        );
        tessera_wire::fuzzing::message_stream(&stream);
    }
}

#[test]
fn need_more_and_keep_alive() {
    let dec = MessageDecoder::default();
    assert_eq!(dec.decode_slice(&[]), Ok(None));
    assert_eq!(dec.decode_slice(&[0, 0, 0]), Ok(None));
    assert_eq!(dec.decode_slice(&[0, 0, 0, 5]), Ok(None));
    assert_eq!(dec.decode_slice(&[0, 0, 0, 5, 4, 0, 0]), Ok(None));
    assert_eq!(
        dec.decode_slice(&[0, 0, 0, 0, 0xFF]),
        Ok(Some((MessageRef::KeepAlive, 4)))
    );
}

#[test]
fn errors_come_early_and_match() {
    let dec = MessageDecoder::new(Limits::default().for_torrent(1 << 20, 1 << 16));
    // A wrong fixed length is refused from the prefix and id alone.
    assert_eq!(
        dec.decode_slice(&[0, 0, 0, 6, 6]),
        Err(Error::IncorrectLength {
            id: 6,
            expected: 13,
            got: 6
        })
    );
    assert_eq!(
        dec.decode_slice(&[0xFF, 0, 0, 0]),
        Err(Error::MessageTooLong {
            len: 0xFF00_0000,
            max: tessera_wire::DEFAULT_MAX_MESSAGE_LEN
        })
    );
    // Piece index past the 16 pieces of the torrent.
    let req = Message::Request(BlockRequest {
        index: 16,
        begin: 0,
        length: 16384,
    })
    .to_bytes();
    assert_eq!(
        dec.decode_slice(&req),
        Err(Error::PieceOutOfRange {
            index: 16,
            num_pieces: 16
        })
    );
}

#[test]
fn to_message_shares_the_backing_buffer() {
    let piece = Message::Piece {
        index: 1,
        begin: 16384,
        data: Bytes::from(vec![7u8; 1000]),
    };
    let mut wire = BytesMut::from(&piece.to_bytes()[..]);
    wire.extend_from_slice(&[0, 0, 0, 1, 2]);
    let rx = wire.freeze();
    let dec = MessageDecoder::default();
    let (msg, used) = dec.decode_slice(&rx).unwrap().unwrap();
    assert_eq!(used, 1013);
    assert_eq!(msg, piece.as_ref());
    let shared = msg.to_message(&rx);
    let copied = msg.to_message(&Bytes::new());
    assert_eq!(shared, piece);
    assert_eq!(copied, piece);
    let (Message::Piece { data: s, .. }, Message::Piece { data: c, .. }) = (&shared, &copied)
    else {
        panic!("not pieces");
    };
    assert_eq!(s.as_ptr(), rx[13..].as_ptr());
    assert_ne!(c.as_ptr(), rx[13..].as_ptr());
    // A backing that does not hold the payload (a neighbouring slice) is not used.
    assert_eq!(msg.to_message(&rx.slice(..13)), piece);
    let (next, used) = dec.decode_slice(&rx[1013..]).unwrap().unwrap();
    assert_eq!((next, used), (MessageRef::Interested, 5));
    assert_eq!(next.payload(), None);
    assert_eq!(next.id(), Some(2));
    assert_eq!(MessageRef::KeepAlive.id(), None);
}
