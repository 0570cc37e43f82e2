//! Extension layer: BEP 10 handshakes and the registry, BEP 9/11/21/54 payloads, a user-defined
//! extension, and BEP 52 hash verification against real merkle trees.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use tessera_bencode::Value;
use tessera_metainfo::merkle::{piece_layer_height, MerkleTree, BLOCK_SIZE};
use tessera_metainfo::Sha256Hash;
use tessera_wire::{
    answer_hash_request, extension_payloads, uncle_count, validate_hash_request, verify_hashes,
    ExtError, ExtendedHandshake, ExtensionMessage, ExtensionRegistry, HashRequest, Hashes,
    Incoming, Limits, LtDonthave, Message, MessageDecoder, PexFlags, UploadOnly, UtMetadata, UtPex,
    MAX_EXTENSIONS, MAX_METADATA_SIZE, MAX_PEX_PEERS,
};

// ---------------------------------------------------------------- golden vectors (BEP texts)

#[test]
fn bep10_example_handshake() {
    // BEP 10's example, with the byte count of "µT_PEX" corrected (the text says 6, the UTF-8
    // name has 7 bytes) so that the string is valid bencode.
    let raw = b"d1:md11:LT_metadatai1e7:\xc2\xb5T_PEXi2ee1:pi6881e1:v13:\xc2\xb5Torrent 1.2e";
    let hs = ExtendedHandshake::decode(raw).unwrap();
    assert_eq!(hs.m.get("LT_metadata"), Some(&1));
    assert_eq!(hs.m.get("µT_PEX"), Some(&2));
    assert_eq!(hs.p, Some(6881));
    assert_eq!(hs.v.as_deref(), Some("µTorrent 1.2"));
    assert!(hs.unknown.is_empty());
    assert_eq!(&hs.encode()[..], &raw[..]);
}

#[test]
fn bep10_disable_message() {
    // "To disable the support for LT_metadata at run-time ... d11:LT_metadatai0ee" is the `m`
    // dictionary; inside a handshake it reads:
    let hs = ExtendedHandshake::decode(b"d1:md11:LT_metadatai0eee").unwrap();
    assert_eq!(hs.m.get("LT_metadata"), Some(&0));
    assert_eq!(hs.id_of("LT_metadata"), None);
    assert_eq!(
        &ExtensionRegistry::disable_handshake(["LT_metadata"]).encode()[..],
        b"d1:md11:LT_metadatai0eee"
    );
}

#[test]
fn bep9_examples() {
    let req = UtMetadata::decode(Bytes::from_static(b"d8:msg_typei0e5:piecei0ee")).unwrap();
    assert_eq!(req, UtMetadata::Request { piece: 0 });
    assert_eq!(&req.to_payload()[..], b"d8:msg_typei0e5:piecei0ee");

    // The data example announces total_size 34256; piece 0 is then a full 16 KiB.
    let mut payload = b"d8:msg_typei1e5:piecei0e10:total_sizei34256ee".to_vec();
    payload.extend(std::iter::repeat_n(b'x', 16384));
    let data = UtMetadata::decode(Bytes::from(payload.clone())).unwrap();
    let UtMetadata::Data {
        piece,
        total_size,
        data: ref bytes,
    } = data
    else {
        panic!("not a data message: {data:?}");
    };
    assert_eq!((piece, total_size, bytes.len()), (0, 34256, 16384));
    assert!(bytes.iter().all(|&b| b == b'x'));
    assert_eq!(&data.to_payload()[..], &payload[..]);

    // The reject example in the BEP text says msg_type 1 (a typo); msg_type 2 is reject.
    let rej = UtMetadata::decode(Bytes::from_static(b"d8:msg_typei2e5:piecei0ee")).unwrap();
    assert_eq!(rej, UtMetadata::Reject { piece: 0 });
    assert_eq!(&rej.to_payload()[..], b"d8:msg_typei2e5:piecei0ee");

    // The handshake example: {'m': {'ut_metadata', 3}, 'metadata_size': 31235}.
    let hs = ExtendedHandshake::decode(b"d1:md11:ut_metadatai3ee13:metadata_sizei31235ee").unwrap();
    assert_eq!(hs.id_of("ut_metadata"), Some(3));
    assert_eq!(hs.metadata_size, Some(31235));
}

#[test]
fn bep11_example() {
    // One IPv4 and one IPv6 peer added with flags, one of each dropped.
    let mut raw = Vec::new();
    raw.extend_from_slice(b"d5:added6:\x0a\x00\x00\x01\x1a\xe1");
    raw.extend_from_slice(b"7:added.f1:\x03");
    raw.extend_from_slice(b"6:added618:");
    raw.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    raw.extend_from_slice(&[0x1a, 0xe2]);
    raw.extend_from_slice(b"8:added6.f1:\x10");
    raw.extend_from_slice(b"7:dropped6:\x0a\x00\x00\x02\x00\x50");
    raw.extend_from_slice(b"8:dropped618:");
    raw.extend_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
    raw.extend_from_slice(&[0x00, 0x51]);
    raw.push(b'e');
    let pex = UtPex::decode(Bytes::from(raw.clone())).unwrap();
    assert_eq!(
        pex.added,
        vec![(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 6881),
            PexFlags::PREFERS_ENCRYPTION | PexFlags::SEED
        )]
    );
    assert_eq!(
        pex.added6,
        vec![(
            SocketAddrV6::new(Ipv6Addr::LOCALHOST, 6882, 0, 0),
            PexFlags::REACHABLE
        )]
    );
    assert_eq!(
        pex.dropped,
        vec![SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80)]
    );
    assert_eq!(
        pex.dropped6,
        vec![SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 81, 0, 0)]
    );
    assert!(pex.added[0].1.contains(PexFlags::SEED));
    assert!(!pex.added[0].1.contains(PexFlags::UTP));
    assert_eq!(&pex.to_payload()[..], &raw[..]);
}

#[test]
fn upload_only_and_donthave_vectors() {
    assert_eq!(&UploadOnly(true).to_payload()[..], &[1]);
    assert_eq!(&UploadOnly(false).to_payload()[..], &[0]);
    assert_eq!(
        UploadOnly::decode(Bytes::from_static(&[7])).unwrap(),
        UploadOnly(true)
    );
    assert_eq!(&LtDonthave(0x01020304).to_payload()[..], &[1, 2, 3, 4]);
}

// ---------------------------------------------------------------- hostile inputs

#[test]
fn hostile_handshakes() {
    // Not a dictionary, not bencode, truncated.
    assert!(matches!(
        ExtendedHandshake::decode(b"li1ee"),
        Err(ExtError::NotADict { .. })
    ));
    assert!(matches!(
        ExtendedHandshake::decode(b"d1:md11:ut_metadatai1e"),
        Err(ExtError::Bencode { .. })
    ));
    assert!(matches!(
        ExtendedHandshake::decode(b""),
        Err(ExtError::Bencode { .. })
    ));
    // Oversized payload.
    let big = vec![b'x'; tessera_wire::MAX_HANDSHAKE_LEN + 1];
    assert!(matches!(
        ExtendedHandshake::decode(&big),
        Err(ExtError::PayloadTooLarge { len, .. }) if len == big.len()
    ));
    // Too many extensions.
    let mut m = BTreeMap::new();
    for i in 0..=MAX_EXTENSIONS {
        m.insert(format!("ext{i:04}"), 1u8);
    }
    let hs = ExtendedHandshake {
        m,
        ..Default::default()
    };
    assert_eq!(
        ExtendedHandshake::decode(&hs.encode()),
        Err(ExtError::TooManyExtensions {
            count: MAX_EXTENSIONS + 1,
            max: MAX_EXTENSIONS
        })
    );
    // An over-long extension name and client version.
    let long = format!("d1:md{}:{}i1eee", 65, "a".repeat(65));
    assert!(matches!(
        ExtendedHandshake::decode(long.as_bytes()),
        Err(ExtError::StringTooLong {
            key: "m",
            len: 65,
            ..
        })
    ));
    let long_v = format!("d1:v{}:{}e", 300, "v".repeat(300));
    assert!(matches!(
        ExtendedHandshake::decode(long_v.as_bytes()),
        Err(ExtError::StringTooLong {
            key: "v",
            len: 300,
            ..
        })
    ));
    // Deep nesting in an unknown key is bounded.
    let deep = format!("d1:x{}{}e", "l".repeat(50), "e".repeat(50));
    assert!(matches!(
        ExtendedHandshake::decode(deep.as_bytes()),
        Err(ExtError::Bencode { .. })
    ));
}

#[test]
fn lenient_handshake_types() {
    // Wrong types and ranges are kept as unknown entries, like libtorrent ignores them.
    let raw = b"d1:md11:ut_metadatai-1e6:ut_pexi2ee1:pi70000e4:reqqi-5e6:yourip4:\x7f\x00\x00\x01e";
    let hs = ExtendedHandshake::decode(raw).unwrap();
    assert_eq!(hs.m.len(), 1);
    assert_eq!(hs.id_of("ut_pex"), Some(2));
    assert_eq!(hs.p, None);
    assert_eq!(hs.unknown.get(&b"p"[..]), Some(&Value::Int(70000)));
    assert_eq!(hs.reqq, None);
    assert_eq!(hs.yourip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    // Unsorted keys are accepted.
    let hs = ExtendedHandshake::decode(b"d1:pi1e1:mdee").unwrap();
    assert_eq!(hs.p, Some(1));
}

#[test]
fn hostile_metadata() {
    let dec = |b: &[u8]| UtMetadata::decode(Bytes::copy_from_slice(b));
    assert!(matches!(
        dec(b"d5:piecei0ee"),
        Err(ExtError::MissingKey {
            key: "msg_type",
            ..
        })
    ));
    assert!(matches!(
        dec(b"d8:msg_type1:05:piecei0ee"),
        Err(ExtError::InvalidValue {
            key: "msg_type",
            ..
        })
    ));
    assert_eq!(
        dec(b"d8:msg_typei9e5:piecei0ee"),
        Err(ExtError::UnknownMetadataMessage { msg_type: 9 })
    );
    assert!(matches!(
        dec(b"d8:msg_typei0e5:piecei-1ee"),
        Err(ExtError::MetadataPieceOutOfRange { piece: -1, .. })
    ));
    assert!(matches!(
        dec(b"d8:msg_typei1e5:piecei0ee"),
        Err(ExtError::MissingKey {
            key: "total_size",
            ..
        })
    ));
    assert!(matches!(
        dec(b"d8:msg_typei1e5:piecei0e10:total_sizei0eex"),
        Err(ExtError::MetadataSizeOutOfRange { size: 0, .. })
    ));
    let huge = format!(
        "d8:msg_typei1e5:piecei0e10:total_sizei{}ee",
        MAX_METADATA_SIZE + 1
    );
    assert!(matches!(
        dec(huge.as_bytes()),
        Err(ExtError::MetadataSizeOutOfRange { .. })
    ));
    // Piece 1 of 5 bytes of metadata does not exist.
    assert!(matches!(
        dec(b"d8:msg_typei1e5:piecei1e10:total_sizei5eehello"),
        Err(ExtError::MetadataPieceOutOfRange {
            piece: 1,
            pieces: 1
        })
    ));
    // Truncated data, and data longer than the piece.
    assert_eq!(
        dec(b"d8:msg_typei1e5:piecei0e10:total_sizei5eehell"),
        Err(ExtError::MetadataPieceLength {
            piece: 0,
            expected: 5,
            got: 4
        })
    );
    let mut over = b"d8:msg_typei1e5:piecei0e10:total_sizei40000ee".to_vec();
    over.extend(std::iter::repeat_n(0u8, 16385));
    assert_eq!(
        dec(&over),
        Err(ExtError::MetadataPieceLength {
            piece: 0,
            expected: 16384,
            got: 16385
        })
    );
    // Far more than one piece and a dictionary.
    assert!(matches!(
        dec(&vec![b'd'; 20_000]),
        Err(ExtError::PayloadTooLarge { .. })
    ));
    assert!(matches!(dec(b"d8:msg_type"), Err(ExtError::Bencode { .. })));
    assert!(matches!(dec(b"i1e"), Err(ExtError::NotADict { .. })));
}

#[test]
fn hostile_pex() {
    let dec = |b: &[u8]| UtPex::decode(Bytes::copy_from_slice(b));
    assert_eq!(
        dec(b"d5:added5:12345e"),
        Err(ExtError::CompactLength {
            key: "added",
            len: 5,
            stride: 6
        })
    );
    assert_eq!(
        dec(b"d8:dropped66:123456e"),
        Err(ExtError::CompactLength {
            key: "dropped6",
            len: 6,
            stride: 18
        })
    );
    let many = vec![0u8; 6 * (MAX_PEX_PEERS + 1)];
    let mut raw = format!("d5:added{}:", many.len()).into_bytes();
    raw.extend_from_slice(&many);
    raw.push(b'e');
    assert_eq!(
        dec(&raw),
        Err(ExtError::TooManyPeers {
            key: "added",
            count: MAX_PEX_PEERS + 1,
            max: MAX_PEX_PEERS
        })
    );
    assert!(matches!(dec(b"le"), Err(ExtError::NotADict { .. })));
    assert!(matches!(dec(b"d5:added"), Err(ExtError::Bencode { .. })));
    // Wrong types are treated as absent lists.
    assert_eq!(dec(b"d5:addedi1ee").unwrap(), UtPex::default());
}

#[test]
fn hostile_small_payloads() {
    assert_eq!(
        LtDonthave::decode(Bytes::from_static(&[1, 2, 3, 4, 5])),
        Err(ExtError::IncorrectLength {
            what: "lt_donthave",
            expected: 4,
            got: 5
        })
    );
    assert!(LtDonthave::decode(Bytes::new()).is_err());
    assert_eq!(
        UploadOnly::decode(Bytes::new()),
        Err(ExtError::IncorrectLength {
            what: "upload_only",
            expected: 1,
            got: 0
        })
    );
    assert!(UploadOnly::decode(Bytes::from_static(&[1, 1])).is_err());
}

// ---------------------------------------------------------------- registry and dispatch

/// A toy extension of our own, as a user would write one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cheque {
    amount: u64,
    memo: String,
}

impl ExtensionMessage for Cheque {
    const NAME: &'static str = "tessera_cheque";

    fn encode(&self, out: &mut BytesMut) {
        out.put_u64(self.amount);
        out.put_slice(self.memo.as_bytes());
    }

    fn decode(payload: Bytes) -> Result<Self, ExtError> {
        let err = ExtError::IncorrectLength {
            what: Self::NAME,
            expected: 8,
            got: payload.len(),
        };
        let (amount, memo) = payload.split_first_chunk::<8>().ok_or(err.clone())?;
        Ok(Cheque {
            amount: u64::from_be_bytes(*amount),
            memo: String::from_utf8(memo.to_vec()).map_err(|_| err)?,
        })
    }
}

#[test]
fn registry_dispatch_through_the_core_codec() {
    let mut ours = ExtensionRegistry::with_builtin();
    let cheque_id = ours.register::<Cheque>().unwrap();
    assert_eq!(cheque_id, 5);
    assert_eq!(ours.register::<Cheque>().unwrap(), 5, "idempotent");

    let mut theirs = ExtensionRegistry::new();
    theirs.register_with_id("tessera_cheque", 42).unwrap();
    theirs.register_with_id("ut_pex", 9).unwrap();
    assert!(matches!(
        theirs.register_with_id("ut_metadata", 42),
        Err(ExtError::IdTaken { id: 42, .. })
    ));
    assert!(theirs.register_with_id("x", 0).is_err());

    // Handshakes travel as Message::Extended { id: 0 } through the core codec.
    let decoder = MessageDecoder::new(Limits::default());
    let mut wire = BytesMut::new();
    Message::Extended {
        id: 0,
        payload: theirs.handshake().encode(),
    }
    .encode(&mut wire);
    let Some(Message::Extended { id, payload }) = decoder.decode(&mut wire).unwrap() else {
        panic!("not an extended message");
    };
    let Incoming::Handshake(hs) = ours.handle_incoming(id, payload).unwrap() else {
        panic!("not a handshake");
    };
    assert_eq!(hs.id_of("tessera_cheque"), Some(42));
    theirs.apply_peer_handshake(&ExtendedHandshake::decode(&ours.handshake().encode()).unwrap());

    // We send a cheque under their id; they dispatch it under their own name.
    let cheque = Cheque {
        amount: 12_345,
        memo: "block 7".into(),
    };
    let (id, payload) = ours.encode(&cheque).unwrap();
    assert_eq!(id, 42);
    Message::Extended { id, payload }.encode(&mut wire);
    let Some(Message::Extended { id, payload }) = decoder.decode(&mut wire).unwrap() else {
        panic!("not an extended message");
    };
    let incoming = theirs.handle_incoming(id, payload.clone()).unwrap();
    assert_eq!(incoming.decode_as::<Cheque>(), Some(Ok(cheque.clone())));
    assert_eq!(incoming.decode_as::<UtPex>(), None);
    assert_eq!(
        theirs.decode::<Cheque>(id, payload.clone()),
        Some(Ok(cheque))
    );
    assert_eq!(theirs.decode::<UtPex>(id, payload), None);

    // They send pex under our id 2; an id we never advertised is reported as unknown.
    let (id, payload) = theirs.encode(&UtPex::default()).unwrap();
    assert_eq!(id, 2);
    assert!(matches!(
        ours.handle_incoming(id, payload).unwrap(),
        Incoming::Message { ref name, .. } if name == "ut_pex"
    ));
    assert!(matches!(
        ours.handle_incoming(200, Bytes::new()).unwrap(),
        Incoming::UnknownId { id: 200, .. }
    ));
    // We never learnt an id for lt_donthave from them.
    assert!(matches!(
        ours.encode(&LtDonthave(1)),
        Err(ExtError::NotNegotiated { .. })
    ));

    // A follow-up handshake disables the cheque extension only.
    let off = ExtensionRegistry::disable_handshake(["tessera_cheque"]);
    ours.handle_incoming(0, off.encode()).unwrap();
    assert_eq!(ours.outgoing_id("tessera_cheque"), None);
    assert_eq!(ours.outgoing_id("ut_pex"), Some(9));
    // And a later one moves ut_pex to another id.
    let mut moved = ExtendedHandshake::default();
    moved.m.insert("ut_pex".into(), 11);
    ours.apply_peer_handshake(&moved);
    assert_eq!(ours.outgoing_id("ut_pex"), Some(11));
    // Unregistering frees our id.
    assert_eq!(ours.unregister("tessera_cheque"), Some(5));
    assert_eq!(ours.incoming_name(5), None);
}

#[test]
fn registry_limits() {
    let mut r = ExtensionRegistry::new();
    assert!(matches!(
        r.register_name(""),
        Err(ExtError::InvalidName { len: 0, .. })
    ));
    assert!(r.register_name(&"n".repeat(65)).is_err());
    for i in 0..255 {
        r.register_name(&format!("e{i}")).unwrap();
    }
    assert_eq!(r.register_name("one_more"), Err(ExtError::NoFreeId));
    assert_eq!(r.incoming_name(255), Some("e254"));
}

// ---------------------------------------------------------------- BEP 52 hashes

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn req(tree: &MerkleTree, base: u32, index: u32, length: u32, proof: u32) -> HashRequest {
    HashRequest {
        pieces_root: tree.root(),
        base_layer: base,
        index,
        length,
        proof_layers: proof,
    }
}

#[test]
fn hashes_from_real_trees_verify_and_tampering_fails() {
    // 11 blocks and a bit: 12 leaves, padded to 16; root at layer 4.
    let d = data(11 * BLOCK_SIZE as usize + 1000);
    let tree = MerkleTree::from_data(&d);
    let blocks = tree.leaf_count() as u64;
    assert_eq!(blocks, 12);
    let mut checked = 0;
    for base in 0..4u32 {
        let layer_size = 16u32 >> base;
        let mut length = 1;
        while length <= layer_size {
            for index in (0..layer_size).step_by(length as usize) {
                for proof in 0..(4 - base) {
                    let r = req(&tree, base, index, length, proof);
                    let reply = answer_hash_request(&tree, &r).unwrap();
                    assert_eq!(reply.len() as u32, length + uncle_count(&r));
                    let reached = base + length.ilog2() + uncle_count(&r);
                    let res = verify_hashes(&reply, &tree.root(), blocks);
                    if reached < 4 {
                        assert_eq!(
                            res,
                            Err(ExtError::ProofTooShort {
                                reached,
                                root_layer: 4
                            })
                        );
                        continue;
                    }
                    let base_hashes = res.unwrap();
                    let layer = tree.layer(base).unwrap();
                    assert_eq!(
                        base_hashes,
                        layer[index as usize..(index + length) as usize]
                    );
                    checked += 1;
                    // Flip one bit in every hash in turn: each tampering must fail.
                    for h in 0..reply.len() {
                        let mut bytes = reply.hashes.to_vec();
                        bytes[h * 32 + 5] ^= 0x40;
                        let bad = Hashes {
                            request: r,
                            hashes: Bytes::from(bytes),
                        };
                        assert_eq!(
                            verify_hashes(&bad, &tree.root(), blocks),
                            Err(ExtError::HashMismatch),
                            "tampered hash {h} of {r:?}"
                        );
                    }
                    // Swapping the reply onto another index must fail too, unless both
                    // ranges hold the same hashes (two stretches of padding).
                    let other = (index + length) % layer_size;
                    let same = layer[index as usize..(index + length) as usize]
                        == layer[other as usize..(other + length) as usize];
                    if layer_size > length && !same {
                        let moved = Hashes {
                            request: HashRequest { index: other, ..r },
                            hashes: reply.hashes.clone(),
                        };
                        assert!(verify_hashes(&moved, &tree.root(), blocks).is_err());
                    }
                }
            }
            length *= 2;
        }
    }
    assert!(checked > 30, "only {checked} replies checked");
}

#[test]
fn piece_layer_request_with_padding() {
    // 6 pieces of 32 KiB (the last one short): the piece layer (height 1) has 8 nodes, 2 pad.
    let d = data(5 * 32 * 1024 + 5000);
    let tree = MerkleTree::from_data(&d);
    let h = piece_layer_height(32 * 1024);
    assert_eq!(h, 1);
    let blocks = tree.leaf_count() as u64;
    let r = req(&tree, h, 0, 8, 2);
    validate_hash_request(&r, blocks, h).unwrap();
    assert_eq!(uncle_count(&r), 0);
    let reply = answer_hash_request(&tree, &r).unwrap();
    let got = verify_hashes(&reply, &tree.root(), blocks).unwrap();
    assert_eq!(got[..6], tree.piece_layer(32 * 1024)[..]);
    assert_eq!(got[6], tessera_metainfo::merkle::pad_hash(1));
}

#[test]
fn malformed_hash_requests_are_rejected() {
    let tree = MerkleTree::from_data(&data(100 * BLOCK_SIZE as usize)); // 128 leaves, root at 7
    let n = 100u64;
    let piece = 2; // 64 KiB pieces
    let check = |base, index, length, proof| {
        validate_hash_request(&req(&tree, base, index, length, proof), n, piece)
    };
    assert_eq!(check(0, 0, 4, 6), Ok(()));
    assert_eq!(check(piece, 0, 32, 4), Ok(()));
    assert_eq!(
        check(0, 0, 3, 0),
        Err(ExtError::HashRequestLength {
            length: 3,
            max: 8192
        })
    );
    assert!(matches!(
        check(0, 0, 0, 0),
        Err(ExtError::HashRequestLength { length: 0, .. })
    ));
    assert!(matches!(
        check(0, 0, 16384, 0),
        Err(ExtError::HashRequestLength { .. })
    ));
    assert_eq!(
        check(0, 2, 4, 0),
        Err(ExtError::HashRequestMisaligned {
            index: 2,
            length: 4
        })
    );
    assert_eq!(
        check(7, 0, 1, 0),
        Err(ExtError::BaseLayerOutOfRange {
            base_layer: 7,
            root_layer: 7
        })
    );
    assert_eq!(
        check(1, 0, 2, 0),
        Err(ExtError::UnsupportedBaseLayer {
            base_layer: 1,
            piece_layer: 2
        })
    );
    assert_eq!(
        check(0, 128, 4, 0),
        Err(ExtError::HashRangeOutOfLayer {
            index: 128,
            length: 4,
            layer_size: 128
        })
    );
    assert_eq!(
        check(0, 0, 256, 0),
        Err(ExtError::HashRangeOutOfLayer {
            index: 0,
            length: 256,
            layer_size: 128
        })
    );
    assert_eq!(
        check(0, 0, 4, 7),
        Err(ExtError::ProofLayersOutOfRange {
            proof_layers: 7,
            max: 6
        })
    );
    assert_eq!(
        check(piece, 0, 4, u32::MAX),
        Err(ExtError::ProofLayersOutOfRange {
            proof_layers: u32::MAX,
            max: 4
        })
    );
    assert_eq!(
        check(u32::MAX, 0, 1, 0),
        Err(ExtError::BaseLayerOutOfRange {
            base_layer: u32::MAX,
            root_layer: 7
        })
    );
    assert_eq!(
        validate_hash_request(&req(&tree, 0, 0, 1, 0), 1, 0),
        Err(ExtError::NoHashTree { num_blocks: 1 })
    );
}

#[test]
fn wrong_hash_counts_and_roots() {
    let tree = MerkleTree::from_data(&data(8 * BLOCK_SIZE as usize));
    let r = req(&tree, 0, 0, 2, 2); // 2 uncles
    let reply = answer_hash_request(&tree, &r).unwrap();
    assert_eq!(reply.len(), 4);
    let short = Hashes {
        request: r,
        hashes: reply.hashes.slice(..96),
    };
    assert_eq!(
        verify_hashes(&short, &tree.root(), 8),
        Err(ExtError::HashCount {
            expected: 4,
            got: 3
        })
    );
    let ragged = Hashes {
        request: r,
        hashes: reply.hashes.slice(..100),
    };
    assert!(matches!(
        verify_hashes(&ragged, &tree.root(), 8),
        Err(ExtError::HashCount { .. })
    ));
    assert_eq!(
        verify_hashes(&reply, &Sha256Hash([9; 32]), 8),
        Err(ExtError::WrongPiecesRoot)
    );
    let other_root = Hashes {
        request: HashRequest {
            pieces_root: Sha256Hash([9; 32]),
            ..r
        },
        hashes: reply.hashes.clone(),
    };
    assert_eq!(
        verify_hashes(&other_root, &Sha256Hash([9; 32]), 8),
        Err(ExtError::HashMismatch)
    );
    assert_eq!(
        answer_hash_request(&tree, &other_root.request),
        Err(ExtError::WrongPiecesRoot)
    );
}

// ---------------------------------------------------------------- round trips

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Int),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::List),
            proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 0..6),
                inner,
                0..3
            )
            .prop_map(Value::Dict),
        ]
    })
}

fn arb_handshake() -> impl Strategy<Value = ExtendedHandshake> {
    let known: &[&[u8]] = &[
        b"m",
        b"v",
        b"p",
        b"yourip",
        b"ipv4",
        b"ipv6",
        b"reqq",
        b"metadata_size",
        b"upload_only",
        b"complete_ago",
        b"share_mode",
        b"e",
    ];
    let known: Vec<Vec<u8>> = known.iter().map(|k| k.to_vec()).collect();
    (
        proptest::collection::btree_map("[a-z_]{1,20}", any::<u8>(), 0..8),
        proptest::option::of("\\PC{0,20}"),
        proptest::option::of(any::<u16>()),
        proptest::option::of(prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from)
        ]),
        proptest::option::of(any::<[u8; 4]>().prop_map(Ipv4Addr::from)),
        proptest::option::of(any::<[u8; 16]>().prop_map(Ipv6Addr::from)),
        (
            proptest::option::of(any::<u32>()),
            proptest::option::of(0..=i64::MAX as u64),
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<bool>()),
        ),
        proptest::collection::btree_map(
            proptest::collection::vec(any::<u8>(), 1..10),
            arb_value(),
            0..4,
        ),
    )
        .prop_map(
            move |(m, v, p, yourip, ipv4, ipv6, (reqq, ms, uo, ca, sm, e), mut unknown)| {
                unknown.retain(|k, _| !known.contains(k));
                ExtendedHandshake {
                    m,
                    v,
                    p,
                    yourip,
                    ipv4,
                    ipv6,
                    reqq,
                    metadata_size: ms,
                    upload_only: uo,
                    complete_ago: ca,
                    share_mode: sm,
                    encryption: e,
                    unknown,
                }
            },
        )
}

fn arb_metadata() -> impl Strategy<Value = UtMetadata> {
    let max_piece = (MAX_METADATA_SIZE / 16384) as u32;
    prop_oneof![
        (0..max_piece).prop_map(|piece| UtMetadata::Request { piece }),
        (0..max_piece).prop_map(|piece| UtMetadata::Reject { piece }),
        (1..=MAX_METADATA_SIZE, any::<u32>(), any::<u8>()).prop_map(|(total, p, fill)| {
            let pieces = total.div_ceil(16384) as u32;
            let piece = p % pieces;
            let len = UtMetadata::piece_len(total, piece).unwrap();
            UtMetadata::Data {
                piece,
                total_size: total,
                data: Bytes::from(vec![fill; len]),
            }
        }),
    ]
}

fn arb_pex() -> impl Strategy<Value = UtPex> {
    let v4 =
        || (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddrV4::new(ip.into(), p));
    let v6 = || {
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddrV6::new(Ipv6Addr::from(ip), p, 0, 0))
    };
    let flags = || any::<u8>().prop_map(PexFlags);
    (
        proptest::collection::vec((v4(), flags()), 0..20),
        proptest::collection::vec(v4(), 0..20),
        proptest::collection::vec((v6(), flags()), 0..20),
        proptest::collection::vec(v6(), 0..20),
    )
        .prop_map(|(added, dropped, added6, dropped6)| UtPex {
            added,
            dropped,
            added6,
            dropped6,
        })
}

proptest! {
    #[test]
    fn handshake_round_trip(hs in arb_handshake()) {
        let enc = hs.encode();
        let back = ExtendedHandshake::decode(&enc).unwrap();
        prop_assert_eq!(&back, &hs);
        prop_assert_eq!(back.encode(), enc.clone());
        // Canonical: the strict decoder accepts it.
        prop_assert!(tessera_bencode::decode(&enc).is_ok());
    }

    #[test]
    fn metadata_round_trip(msg in arb_metadata()) {
        prop_assert_eq!(UtMetadata::decode(msg.to_payload()).unwrap(), msg);
    }

    #[test]
    fn pex_round_trip(pex in arb_pex()) {
        prop_assert_eq!(UtPex::decode(pex.to_payload()).unwrap(), pex);
    }

    #[test]
    fn small_round_trips(piece in any::<u32>(), flag in any::<bool>()) {
        prop_assert_eq!(LtDonthave::decode(LtDonthave(piece).to_payload()).unwrap(), LtDonthave(piece));
        prop_assert_eq!(UploadOnly::decode(UploadOnly(flag).to_payload()).unwrap(), UploadOnly(flag));
    }

    #[test]
    fn custom_round_trip(amount in any::<u64>(), memo in "\\PC{0,40}") {
        let c = Cheque { amount, memo };
        prop_assert_eq!(Cheque::decode(c.to_payload()).unwrap(), c);
    }

    #[test]
    fn fuzz_entry_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        extension_payloads(&data);
    }

    #[test]
    fn fuzz_entry_on_near_valid_payloads(
        kind in 0u8..5,
        msg in prop_oneof![
            arb_handshake().prop_map(|h| h.encode().to_vec()),
            arb_pex().prop_map(|p| p.to_payload().to_vec()),
        ],
        cut in any::<prop::sample::Index>(),
        flip in any::<(prop::sample::Index, u8)>(),
    ) {
        let mut data = vec![kind];
        data.extend_from_slice(&msg);
        extension_payloads(&data);
        let mut bent = data.clone();
        if bent.len() > 1 {
            let i = flip.0.index(bent.len() - 1) + 1;
            bent[i] ^= flip.1;
        }
        extension_payloads(&bent);
        let end = cut.index(data.len()) + 1;
        extension_payloads(&data[..end]);
    }

    #[test]
    fn hash_replies_verify(blocks in 2u64..300, seed in any::<u8>(), pick in any::<(u32, u32, u32, u32)>()) {
        let leaves: Vec<Sha256Hash> = (0..blocks)
            .map(|i| tessera_metainfo::merkle::hash_leaf(&[seed, i as u8, (i >> 8) as u8]))
            .collect();
        let tree = MerkleTree::from_leaves(leaves);
        let root_layer = blocks.next_power_of_two().trailing_zeros();
        let base = pick.0 % root_layer;
        let layer_size = (blocks.next_power_of_two() >> base) as u32;
        let length = 1u32 << (pick.1 % (layer_size.ilog2() + 1));
        let index = (pick.2 % (layer_size / length)) * length;
        // A proof that reaches the root: the most proof layers, unless the base hashes cover
        // their whole layer (then any number does).
        let max_proof = root_layer - base - 1;
        let proof = if length == layer_size { pick.3 % (max_proof + 1) } else { max_proof };
        let r = req(&tree, base, index, length, proof);
        let reply = answer_hash_request(&tree, &r).unwrap();
        let got = verify_hashes(&reply, &tree.root(), blocks);
        prop_assert!(got.is_ok(), "{:?}: {:?}", r, got);
        let mut bytes = reply.hashes.to_vec();
        let at = (pick.0 as usize) % bytes.len();
        bytes[at] ^= 1;
        let bad = Hashes { request: r, hashes: Bytes::from(bytes) };
        prop_assert_eq!(verify_hashes(&bad, &tree.root(), blocks), Err(ExtError::HashMismatch));
    }
}
