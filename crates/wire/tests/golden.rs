//! Golden byte vectors written out by hand from the BEPs: each message encodes to exactly these
//! bytes, and these bytes decode to the message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use bytes::{Bytes, BytesMut};
use tessera_metainfo::{Sha1Hash, Sha256Hash};
use tessera_wire::{
    encode_piece_header, BlockRequest, Handshake, HashRequest, Hashes, Limits, Message,
    MessageDecoder, Reserved,
};

fn check(msg: Message, wire: &[u8]) {
    assert_eq!(&msg.to_bytes()[..], wire, "encoding of {msg:?}");
    let mut buf = BytesMut::from(wire);
    let dec = MessageDecoder::new(Limits::default())
        .decode(&mut buf)
        .unwrap();
    assert_eq!(dec, Some(msg.clone()));
    assert!(buf.is_empty());
    // The borrowed path reads the same message from the same bytes, consuming all of them.
    let (msg_ref, used) = MessageDecoder::new(Limits::default())
        .decode_slice(wire)
        .unwrap()
        .unwrap();
    assert_eq!(msg_ref, msg.as_ref());
    assert_eq!(used, wire.len());
    assert_eq!(msg_ref.to_message(&Bytes::new()), msg);
}

#[test]
fn bep3_messages() {
    check(Message::KeepAlive, &[0, 0, 0, 0]);
    check(Message::Choke, &[0, 0, 0, 1, 0]);
    check(Message::Unchoke, &[0, 0, 0, 1, 1]);
    check(Message::Interested, &[0, 0, 0, 1, 2]);
    check(Message::NotInterested, &[0, 0, 0, 1, 3]);
    // have: <len=0005><id=4><piece index>
    check(
        Message::Have { piece: 0x0102_0304 },
        &[0, 0, 0, 5, 4, 1, 2, 3, 4],
    );
    // bitfield: <len=0001+X><id=5><bitfield>
    check(
        Message::Bitfield(Bytes::from_static(&[0b1010_0000, 0xFF])),
        &[0, 0, 0, 3, 5, 0xA0, 0xFF],
    );
    // request: <len=0013><id=6><index><begin><length>, a 16 KiB block at 32 KiB in piece 1.
    check(
        Message::Request(BlockRequest {
            index: 1,
            begin: 0x8000,
            length: 0x4000,
        }),
        &[0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x80, 0, 0, 0, 0x40, 0],
    );
    // piece: <len=0009+X><id=7><index><begin><block>
    check(
        Message::Piece {
            index: 2,
            begin: 0x4000,
            data: Bytes::from_static(b"abc"),
        },
        &[0, 0, 0, 12, 7, 0, 0, 0, 2, 0, 0, 0x40, 0, b'a', b'b', b'c'],
    );
    check(
        Message::Cancel(BlockRequest {
            index: 1,
            begin: 0,
            length: 0x4000,
        }),
        &[0, 0, 0, 13, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x40, 0],
    );
}

#[test]
fn bep5_port() {
    // port: <len=0003><id=9><listen-port>, 6881 = 0x1AE1.
    check(Message::Port(6881), &[0, 0, 0, 3, 9, 0x1A, 0xE1]);
}

#[test]
fn bep6_messages() {
    check(
        Message::SuggestPiece { piece: 7 },
        &[0, 0, 0, 5, 0x0D, 0, 0, 0, 7],
    );
    check(Message::HaveAll, &[0, 0, 0, 1, 0x0E]);
    check(Message::HaveNone, &[0, 0, 0, 1, 0x0F]);
    check(
        Message::RejectRequest(BlockRequest {
            index: 3,
            begin: 0x4000,
            length: 0x4000,
        }),
        &[0, 0, 0, 13, 0x10, 0, 0, 0, 3, 0, 0, 0x40, 0, 0, 0, 0x40, 0],
    );
    check(
        Message::AllowedFast { piece: 1059 },
        &[0, 0, 0, 5, 0x11, 0, 0, 0x04, 0x23],
    );
}

#[test]
fn bep10_extended_handshake_frame() {
    // <len><id=20><extended id=0><bencoded handshake>, from the example of BEP 10.
    let payload = b"d1:md11:ut_metadatai3ee1:pi6881e1:v13:\xc2\xb5Torrent 1.2e";
    let mut wire = vec![0, 0, 0, (2 + payload.len()) as u8, 20, 0];
    wire.extend_from_slice(payload);
    check(
        Message::Extended {
            id: 0,
            payload: Bytes::from_static(payload),
        },
        &wire,
    );
}

#[test]
fn bep52_hash_messages() {
    let request = HashRequest {
        pieces_root: Sha256Hash([0x11; 32]),
        base_layer: 0,
        index: 4,
        length: 2,
        proof_layers: 1,
    };
    // hash request: <len=0049><id=21><pieces root><base layer><index><length><proof layers>
    let mut wire = vec![0, 0, 0, 49, 21];
    wire.extend_from_slice(&[0x11; 32]);
    wire.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 1]);
    check(Message::HashRequest(request), &wire);
    wire[4] = 23;
    check(Message::HashReject(request), &wire);
    // hashes: the same header, then the hashes.
    wire[3] = 49 + 3 * 32;
    wire[4] = 22;
    for b in [0xA1, 0xA2, 0xA3] {
        wire.extend_from_slice(&[b; 32]);
    }
    let hashes = Hashes::from_hashes(
        request,
        &[
            Sha256Hash([0xA1; 32]),
            Sha256Hash([0xA2; 32]),
            Sha256Hash([0xA3; 32]),
        ],
    );
    assert_eq!(hashes.base().count(), 2);
    assert_eq!(hashes.proof().collect::<Vec<_>>(), [Sha256Hash([0xA3; 32])]);
    check(Message::Hashes(hashes), &wire);
}

#[test]
fn unknown_message_kept_whole() {
    check(
        Message::Unknown {
            id: 0xFE,
            payload: Bytes::from_static(b"xy"),
        },
        &[0, 0, 0, 3, 0xFE, b'x', b'y'],
    );
}

#[test]
fn handshake_bytes() {
    let hs = Handshake {
        reserved: Reserved::DHT | Reserved::FAST | Reserved::EXTENSION_PROTOCOL,
        info_hash: Sha1Hash([0xAA; 20]),
        peer_id: *b"-TS0001-123456789012",
    };
    let mut wire = vec![19];
    wire.extend_from_slice(b"BitTorrent protocol");
    wire.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0x05]);
    wire.extend_from_slice(&[0xAA; 20]);
    wire.extend_from_slice(b"-TS0001-123456789012");
    let mut buf = BytesMut::new();
    hs.encode(&mut buf);
    assert_eq!(&buf[..], &wire[..]);
    assert_eq!(Handshake::decode(&mut buf).unwrap(), Some(hs));
}

#[test]
fn piece_header_then_payload() {
    let data = Bytes::from(vec![7u8; 16384]);
    let mut head = BytesMut::new();
    encode_piece_header(9, 16384, data.len(), &mut head).unwrap();
    assert_eq!(&head[..], &[0, 0, 0x40, 9, 7, 0, 0, 0, 9, 0, 0, 0x40, 0]);
    let whole = Message::Piece {
        index: 9,
        begin: 16384,
        data: data.clone(),
    }
    .to_bytes();
    assert_eq!(&whole[..13], &head[..]);
    assert_eq!(&whole[13..], &data[..]);
}
