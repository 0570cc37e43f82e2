//! proptest round trips: `decode(encode(x)) == x` for the handshake and every message type.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tessera_metainfo::{Sha1Hash, Sha256Hash};
use tessera_wire::{
    message_id, BlockRequest, Handshake, HandshakePrefix, HashRequest, Hashes, Limits, Message,
    MessageDecoder, Reserved, HANDSHAKE_LEN,
};

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn block() -> impl Strategy<Value = BlockRequest> {
    (any::<u32>(), any::<u32>(), 1..=128 * 1024u32).prop_map(|(index, begin, length)| {
        BlockRequest {
            index,
            begin,
            length,
        }
    })
}

fn hash_request() -> impl Strategy<Value = HashRequest> {
    (any::<[u8; 32]>(), any::<[u32; 4]>()).prop_map(|(root, [b, i, l, p])| HashRequest {
        pieces_root: Sha256Hash(root),
        base_layer: b,
        index: i,
        length: l,
        proof_layers: p,
    })
}

/// Every message type, with payloads that the default limits accept.
fn message() -> impl Strategy<Value = Message> {
    let known = prop_oneof![
        Just(Message::KeepAlive),
        Just(Message::Choke),
        Just(Message::Unchoke),
        Just(Message::Interested),
        Just(Message::NotInterested),
        any::<u32>().prop_map(|piece| Message::Have { piece }),
        bytes(300).prop_map(Message::Bitfield),
        block().prop_map(Message::Request),
        (any::<u32>(), any::<u32>(), 1..2000usize).prop_map(|(index, begin, n)| Message::Piece {
            index,
            begin,
            data: Bytes::from(vec![0x5A; n]),
        }),
        block().prop_map(Message::Cancel),
        any::<u16>().prop_map(Message::Port),
        any::<u32>().prop_map(|piece| Message::SuggestPiece { piece }),
        Just(Message::HaveAll),
        Just(Message::HaveNone),
        block().prop_map(Message::RejectRequest),
        any::<u32>().prop_map(|piece| Message::AllowedFast { piece }),
        (any::<u8>(), bytes(300)).prop_map(|(id, payload)| Message::Extended { id, payload }),
        hash_request().prop_map(Message::HashRequest),
        (
            hash_request(),
            proptest::collection::vec(any::<[u8; 32]>(), 0..20)
        )
            .prop_map(|(request, hs)| {
                let hs: Vec<Sha256Hash> = hs.into_iter().map(Sha256Hash).collect();
                Message::Hashes(Hashes::from_hashes(request, &hs))
            }),
        hash_request().prop_map(Message::HashReject),
    ];
    let unknown = (any::<u8>(), bytes(100))
        .prop_filter("ids the codec knows", |(id, _)| !is_known(*id))
        .prop_map(|(id, payload)| Message::Unknown { id, payload });
    prop_oneof![20 => known, 1 => unknown]
}

fn is_known(id: u8) -> bool {
    matches!(id, 0..=9 | 0x0D..=0x11 | 20..=23)
}

fn decode_one(bytes: &[u8]) -> Message {
    let mut buf = BytesMut::from(bytes);
    let msg = MessageDecoder::new(Limits::default())
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    assert!(buf.is_empty(), "{} bytes left", buf.len());
    msg
}

proptest! {
    #[test]
    fn message_round_trip(msg in message()) {
        let enc = msg.to_bytes();
        prop_assert_eq!(enc.len(), msg.encoded_len());
        prop_assert_eq!(enc.get(4).copied(), msg.id());
        let dec = decode_one(&enc);
        prop_assert_eq!(&dec, &msg);
        // And back again: the encoding is canonical.
        prop_assert_eq!(dec.to_bytes(), enc);
    }

    #[test]
    fn message_stream_round_trip(msgs in proptest::collection::vec(message(), 0..30)) {
        let mut wire = BytesMut::new();
        for m in &msgs {
            m.encode(&mut wire);
        }
        let decoder = MessageDecoder::default();
        let mut got = Vec::new();
        while let Some(m) = decoder.decode(&mut wire).unwrap() {
            got.push(m);
        }
        prop_assert!(wire.is_empty());
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn handshake_round_trip(reserved in any::<[u8; 8]>(), ih in any::<[u8; 20]>(), pid in any::<[u8; 20]>()) {
        let hs = Handshake { reserved: Reserved(reserved), info_hash: Sha1Hash(ih), peer_id: pid };
        let mut buf = BytesMut::new();
        hs.encode(&mut buf);
        prop_assert_eq!(buf.len(), HANDSHAKE_LEN);
        let mut two = buf.clone();
        prop_assert_eq!(Handshake::decode(&mut buf).unwrap(), Some(hs));
        prop_assert!(buf.is_empty());
        let prefix = HandshakePrefix::decode(&mut two).unwrap().unwrap();
        prop_assert_eq!(prefix, hs.prefix());
        prop_assert_eq!(prefix.complete(&mut two), Some(hs));
    }

    #[test]
    fn reserved_flags_are_independent(reserved in any::<[u8; 8]>()) {
        let r = Reserved(reserved);
        prop_assert_eq!(r.dht(), reserved[7] & 0x01 != 0);
        prop_assert_eq!(r.fast(), reserved[7] & 0x04 != 0);
        prop_assert_eq!(r.v2_upgrade(), reserved[7] & 0x10 != 0);
        prop_assert_eq!(r.extension_protocol(), reserved[5] & 0x10 != 0);
        let mut cleared = r;
        cleared.remove(Reserved::FAST);
        prop_assert!(!cleared.fast());
        prop_assert_eq!(cleared | (r & Reserved::FAST), r);
    }
}

#[test]
fn message_ids_match_the_beps() {
    let cases = [
        (Message::Choke, message_id::CHOKE, 0),
        (Message::HaveAll, message_id::HAVE_ALL, 0x0E),
        (Message::HaveNone, message_id::HAVE_NONE, 0x0F),
        (
            Message::AllowedFast { piece: 0 },
            message_id::ALLOWED_FAST,
            0x11,
        ),
        (
            Message::Extended {
                id: 0,
                payload: Bytes::new(),
            },
            message_id::EXTENDED,
            20,
        ),
    ];
    for (m, id, n) in cases {
        assert_eq!(m.id(), Some(id));
        assert_eq!(id, n);
    }
    assert_eq!(Message::KeepAlive.id(), None);
}
