//! Decoding a stream: chunked input gives what whole input gives, and every length and limit
//! error is reported with its amounts, early, without buffering past the limit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use tessera_wire::{
    fuzzing, BlockRequest, Error, ErrorKind, Handshake, Limits, Message, MessageDecoder,
    DEFAULT_MAX_MESSAGE_LEN, DEFAULT_MAX_REQUEST_LEN,
};

fn decode(limits: Limits, wire: &[u8]) -> Result<Option<Message>, Error> {
    MessageDecoder::new(limits).decode(&mut BytesMut::from(wire))
}

/// A frame with the given length prefix, id and payload.
fn frame(len: u32, id: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = len.to_be_bytes().to_vec();
    v.push(id);
    v.extend_from_slice(payload);
    v
}

fn sample_stream() -> Vec<u8> {
    let msgs = [
        Message::Bitfield(Bytes::from_static(&[0xFF, 0xF0])),
        Message::Interested,
        Message::KeepAlive,
        Message::Request(BlockRequest {
            index: 1,
            begin: 0,
            length: 16384,
        }),
        Message::Piece {
            index: 1,
            begin: 0,
            data: Bytes::from(vec![3u8; 16384]),
        },
        Message::Have { piece: 11 },
        Message::Extended {
            id: 3,
            payload: Bytes::from_static(b"d8:msg_typei0e5:piecei0ee"),
        },
        Message::Port(6881),
    ];
    let mut b = BytesMut::new();
    for m in &msgs {
        m.encode(&mut b);
    }
    b.to_vec()
}

#[test]
fn byte_by_byte_equals_whole() {
    let wire = sample_stream();
    let dec = MessageDecoder::new(Limits::default().for_torrent(12 * 32768, 32768));
    let mut whole = BytesMut::from(&wire[..]);
    let mut expected = Vec::new();
    while let Some(m) = dec.decode(&mut whole).unwrap() {
        expected.push(m);
    }
    assert_eq!(expected.len(), 8);
    let mut rx = BytesMut::new();
    let mut got = Vec::new();
    for &b in &wire {
        rx.put_u8(b);
        while let Some(m) = dec.decode(&mut rx).unwrap() {
            got.push(m);
        }
    }
    assert_eq!(got, expected);
}

#[test]
fn fuzz_entry_points_accept_sample_streams() {
    let wire = sample_stream();
    for seed in [0u8, 1, 7, 0x83, 0xFF] {
        let mut data = vec![seed];
        data.extend_from_slice(&wire);
        fuzzing::message_stream(&data);
        // A broken stream: an error in the middle.
        data.extend_from_slice(&frame(2, 4, &[0]));
        fuzzing::message_stream(&data);
    }
    let mut hs = BytesMut::new();
    Handshake {
        reserved: Default::default(),
        info_hash: Default::default(),
        peer_id: [9; 20],
    }
    .encode(&mut hs);
    fuzzing::handshake(&hs);
    fuzzing::handshake(&hs[..40]);
    fuzzing::handshake(b"\x13BitTorrent protoc0l");
}

proptest! {
    #[test]
    fn chunked_equals_whole(seed in any::<u8>(), cut in 0usize..20_000, junk in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut data = vec![seed];
        let wire = sample_stream();
        data.extend_from_slice(&wire[..cut.min(wire.len())]);
        data.extend_from_slice(&junk);
        fuzzing::message_stream(&data);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        fuzzing::message_stream(&data);
        fuzzing::handshake(&data);
    }
}

#[test]
fn need_more_bytes_consumes_nothing() {
    let dec = MessageDecoder::default();
    for partial in [&[][..], &[0, 0], &[0, 0, 0, 5], &[0, 0, 0, 5, 4, 0, 0]] {
        let mut b = BytesMut::from(partial);
        assert_eq!(dec.decode(&mut b), Ok(None));
        assert_eq!(&b[..], partial);
    }
}

#[test]
fn too_long_is_refused_from_the_prefix_alone() {
    let max = DEFAULT_MAX_MESSAGE_LEN;
    let mut b = BytesMut::from(&(max + 1).to_be_bytes()[..]);
    let cap = b.capacity();
    assert_eq!(
        MessageDecoder::default().decode(&mut b),
        Err(Error::MessageTooLong { len: max + 1, max })
    );
    // Nothing was reserved for the body.
    assert_eq!(b.capacity(), cap);
    // u32::MAX too.
    assert_eq!(
        decode(Limits::default(), &[0xFF; 4]),
        Err(Error::MessageTooLong { len: u32::MAX, max })
    );
    // Exactly the limit is fine (an unknown message of that length).
    let mut l = Limits::default();
    l.max_message_len = 10;
    assert!(matches!(
        decode(l, &frame(10, 0xC8, &[0; 9])),
        Ok(Some(Message::Unknown { id: 0xC8, .. }))
    ));
    assert_eq!(
        decode(l, &frame(11, 0xC8, &[])),
        Err(Error::MessageTooLong { len: 11, max: 10 })
    );
}

#[test]
fn within_limit_reserves_the_frame() {
    let mut b = BytesMut::from(&frame(20_000, 7, &[0, 0, 0, 0])[..]);
    assert_eq!(MessageDecoder::default().decode(&mut b), Ok(None));
    assert!(b.capacity() >= 20_004);
}

#[test]
fn fixed_lengths_are_exact_and_checked_early() {
    // (id, right length) for every fixed-size message.
    let fixed: [(u8, u32); 14] = [
        (0, 1),
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 5),
        (6, 13),
        (8, 13),
        (9, 3),
        (0x0D, 5),
        (0x0E, 1),
        (0x0F, 1),
        (0x10, 13),
        (0x11, 5),
        (21, 49),
    ];
    for (id, expected) in fixed.into_iter().chain([(23, 49)]) {
        for got in [expected - 1, expected + 1, 1000] {
            if got == 0 {
                continue;
            }
            // Only the prefix and the id are there: the error comes before the body.
            assert_eq!(
                decode(Limits::default(), &frame(got, id, &[])),
                Err(Error::IncorrectLength { id, expected, got }),
                "id {id} len {got}"
            );
        }
    }
}

#[test]
fn variable_lengths_have_minimums() {
    assert_eq!(
        decode(Limits::default(), &frame(8, 7, &[])),
        Err(Error::TooShort {
            id: 7,
            min: 9,
            got: 8
        })
    );
    assert_eq!(
        decode(Limits::default(), &frame(1, 20, &[])),
        Err(Error::TooShort {
            id: 20,
            min: 2,
            got: 1
        })
    );
    assert_eq!(
        decode(Limits::default(), &frame(48, 22, &[])),
        Err(Error::TooShort {
            id: 22,
            min: 49,
            got: 48
        })
    );
    assert_eq!(
        decode(Limits::default(), &frame(49 + 31, 22, &[])),
        Err(Error::HashesNotMultiple { len: 31 })
    );
    // An empty bitfield is fine while the piece count is unknown, an empty extended is not.
    assert_eq!(
        decode(Limits::default(), &frame(1, 5, &[])),
        Ok(Some(Message::Bitfield(Bytes::new())))
    );
}

#[test]
fn block_lengths() {
    let max = DEFAULT_MAX_REQUEST_LEN;
    let req = |len: u32| {
        let mut p = vec![0, 0, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(&len.to_be_bytes());
        frame(13, 6, &p)
    };
    assert_eq!(
        decode(Limits::default(), &req(0)),
        Err(Error::InvalidBlockLength { length: 0, max })
    );
    assert_eq!(
        decode(Limits::default(), &req(max + 1)),
        Err(Error::InvalidBlockLength {
            length: max + 1,
            max
        })
    );
    assert!(decode(Limits::default(), &req(max)).unwrap().is_some());
    // Cancel and reject are checked the same way.
    let mut cancel = req(0);
    cancel[4] = 8;
    assert!(matches!(
        decode(Limits::default(), &cancel),
        Err(Error::InvalidBlockLength { .. })
    ));
    // A piece with no data, and one over the request limit, refused from the header.
    assert_eq!(
        decode(Limits::default(), &frame(9, 7, &[])),
        Err(Error::InvalidBlockLength { length: 0, max })
    );
    assert_eq!(
        decode(Limits::default(), &frame(9 + max + 1, 7, &[])),
        Err(Error::InvalidBlockLength {
            length: max + 1,
            max
        })
    );
}

#[test]
fn piece_indices_and_blocks_against_geometry() {
    // 3 pieces of 32 KiB and a last one of 1000 bytes.
    let limits = Limits::default().for_torrent(3 * 32768 + 1000, 32768);
    assert_eq!(limits.num_pieces, Some(4));
    let have = |p: u32| frame(5, 4, &p.to_be_bytes());
    assert!(decode(limits, &have(3)).unwrap().is_some());
    assert_eq!(
        decode(limits, &have(4)),
        Err(Error::PieceOutOfRange {
            index: 4,
            num_pieces: 4
        })
    );
    for id in [0x0D, 0x11] {
        let mut f = have(9);
        f[4] = id;
        assert_eq!(
            decode(limits, &f),
            Err(Error::PieceOutOfRange {
                index: 9,
                num_pieces: 4
            })
        );
    }
    let req = |index: u32, begin: u32, length: u32| {
        let mut p = index.to_be_bytes().to_vec();
        p.extend_from_slice(&begin.to_be_bytes());
        p.extend_from_slice(&length.to_be_bytes());
        frame(13, 6, &p)
    };
    assert!(decode(limits, &req(0, 16384, 16384)).unwrap().is_some());
    assert_eq!(
        decode(limits, &req(0, 16385, 16384)),
        Err(Error::BlockOutOfPiece {
            index: 0,
            begin: 16385,
            length: 16384,
            piece_size: 32768
        })
    );
    assert!(decode(limits, &req(3, 0, 1000)).unwrap().is_some());
    assert_eq!(
        decode(limits, &req(3, 0, 1001)),
        Err(Error::BlockOutOfPiece {
            index: 3,
            begin: 0,
            length: 1001,
            piece_size: 1000
        })
    );
    // begin + length overflowing u32.
    assert!(matches!(
        decode(limits, &req(0, u32::MAX, 16384)),
        Err(Error::BlockOutOfPiece { .. })
    ));
    assert_eq!(
        decode(limits, &req(4, 0, 16384)),
        Err(Error::PieceOutOfRange {
            index: 4,
            num_pieces: 4
        })
    );
    // A piece message past the end of the last piece.
    let mut piece = 3u32.to_be_bytes().to_vec();
    piece.extend_from_slice(&500u32.to_be_bytes());
    piece.extend_from_slice(&[0; 501]);
    assert_eq!(
        decode(limits, &frame(9 + 501, 7, &piece)),
        Err(Error::BlockOutOfPiece {
            index: 3,
            begin: 500,
            length: 501,
            piece_size: 1000
        })
    );
}

#[test]
fn bitfield_size_and_spare_bits() {
    let limits = Limits::default().with_num_pieces(12);
    assert_eq!(
        decode(limits, &frame(2, 5, &[0xFF])),
        Err(Error::IncorrectLength {
            id: 5,
            expected: 3,
            got: 2
        })
    );
    assert_eq!(
        decode(limits, &frame(4, 5, &[])),
        Err(Error::IncorrectLength {
            id: 5,
            expected: 3,
            got: 4
        })
    );
    assert_eq!(
        decode(limits, &frame(3, 5, &[0xFF, 0xF0])),
        Ok(Some(Message::Bitfield(Bytes::from_static(&[0xFF, 0xF0]))))
    );
    assert_eq!(
        decode(limits, &frame(3, 5, &[0xFF, 0xF8])),
        Err(Error::SpareBitsSet { num_pieces: 12 })
    );
    // A whole number of bytes has no spare bits.
    let limits = Limits::default().with_num_pieces(16);
    assert!(decode(limits, &frame(3, 5, &[0xFF, 0xFF]))
        .unwrap()
        .is_some());
}

#[test]
fn piece_payload_is_zero_copy() {
    let msg = Message::Piece {
        index: 0,
        begin: 0,
        data: Bytes::from(vec![1u8; 16384]),
    };
    let mut buf = BytesMut::from(&msg.to_bytes()[..]);
    let base = buf.as_ptr() as usize;
    let Some(Message::Piece { data, .. }) = MessageDecoder::default().decode(&mut buf).unwrap()
    else {
        panic!("not a piece");
    };
    // The block still lives in the receive buffer's allocation, 13 bytes in.
    assert_eq!(data.as_ptr() as usize, base + 13);
}

#[test]
fn replay_fuzz_seed_corpora() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    type Target = (&'static str, fn(&[u8]));
    let targets: [Target; 2] = [
        ("wire_handshake", fuzzing::handshake),
        ("wire_stream", fuzzing::message_stream),
    ];
    for (dir, target) in targets {
        let mut n = 0;
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            target(&std::fs::read(entry.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n >= 3, "{dir}: {n} seeds");
    }
    // The mixed seed is a valid stream of every kind of message.
    let mixed = std::fs::read(root.join("wire_stream/core_mixed")).unwrap();
    let mut buf = BytesMut::from(&mixed[1..]);
    let dec = MessageDecoder::default();
    let mut n = 0;
    while let Some(m) = dec.decode(&mut buf).unwrap() {
        assert_eq!(m.to_bytes().len(), m.encoded_len());
        n += 1;
    }
    assert_eq!((n, buf.len()), (13, 0));
}

#[test]
fn errors_are_grouped_by_fault() {
    let kind = |wire: &[u8]| decode(Limits::default(), wire).unwrap_err().kind();
    assert_eq!(kind(&frame(2, 0, &[0])), ErrorKind::Malformed);
    assert_eq!(kind(&[0xFF; 5]), ErrorKind::Misbehaved);
    assert_eq!(kind(&frame(9, 7, &[])), ErrorKind::Misbehaved);
    let hs = Handshake::decode(&mut BytesMut::from(&b"\x14"[..])).unwrap_err();
    assert_eq!(hs.kind(), ErrorKind::Unsupported);
    assert_eq!(
        Error::Unframeable { len: 1 << 33 }.kind(),
        ErrorKind::Misuse
    );
}
