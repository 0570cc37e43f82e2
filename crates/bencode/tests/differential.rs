//! Differential tests against `serde_bencode` on input both should accept: canonical documents
//! decode to the same values, and both serializers write the same bytes for the same struct.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use tessera_bencode::{decode, from_bytes, to_bytes, Value};

fn from_peer(v: serde_bencode::value::Value) -> Value {
    use serde_bencode::value::Value as P;
    match v {
        P::Int(i) => Value::Int(i),
        P::Bytes(b) => Value::Bytes(b),
        P::List(l) => Value::List(l.into_iter().map(from_peer).collect()),
        P::Dict(d) => Value::Dict(
            d.into_iter()
                .map(|(k, v)| (k, from_peer(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PeerFile {
    length: i64,
    path: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    md5sum: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PeerInfo {
    // Not in key order: both serializers must sort.
    name: String,
    #[serde(rename = "piece length")]
    piece_length: i64,
    #[serde(with = "serde_bytes")]
    pieces: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    length: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    files: Option<Vec<PeerFile>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    private: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PeerTorrent {
    info: PeerInfo,
    announce: String,
    #[serde(
        rename = "announce-list",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    announce_list: Option<Vec<Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(
        rename = "creation date",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    creation_date: Option<i64>,
}

fn text() -> impl Strategy<Value = String> {
    "[ -~]{0,16}"
}

fn torrent() -> impl Strategy<Value = PeerTorrent> {
    let file = (
        any::<i64>(),
        prop::collection::vec(text(), 1..4),
        prop::option::of(text()),
    )
        .prop_map(|(length, path, md5sum)| PeerFile {
            length,
            path,
            md5sum,
        });
    let info = (
        text(),
        any::<i64>(),
        prop::collection::vec(any::<u8>(), 0..60),
        prop::option::of(any::<i64>()),
        prop::option::of(prop::collection::vec(file, 0..5)),
        prop::option::of(0i64..2),
    )
        .prop_map(
            |(name, piece_length, pieces, length, files, private)| PeerInfo {
                name,
                piece_length,
                pieces,
                length,
                files,
                private,
            },
        );
    (
        info,
        text(),
        prop::option::of(prop::collection::vec(
            prop::collection::vec(text(), 0..3),
            0..3,
        )),
        prop::option::of(text()),
        prop::option::of(any::<i64>()),
    )
        .prop_map(
            |(info, announce, announce_list, comment, creation_date)| PeerTorrent {
                info,
                announce,
                announce_list,
                comment,
                creation_date,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn canonical_documents_decode_alike(v in common::value()) {
        let bytes = v.to_bytes();
        let ours = decode(&bytes).unwrap().root().to_owned();
        let peer: serde_bencode::value::Value = serde_bencode::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&ours, &from_peer(peer));
        let ours_serde: Value = from_bytes(&bytes).unwrap();
        prop_assert_eq!(ours_serde, ours);
    }

    #[test]
    fn structs_serialize_identically(t in torrent()) {
        let ours = to_bytes(&t).unwrap();
        let peer = serde_bencode::to_bytes(&t).unwrap();
        prop_assert_eq!(&ours, &peer);
        // And each side reads what the other wrote.
        prop_assert_eq!(from_bytes::<PeerTorrent>(&peer).unwrap(), t.clone());
        prop_assert_eq!(serde_bencode::from_bytes::<PeerTorrent>(&ours).unwrap(), t);
    }

    #[test]
    fn values_serialize_identically(v in common::value()) {
        // serde_bencode's own Value serializes dictionaries from a HashMap; both must sort.
        let peer_value: serde_bencode::value::Value = serde_bencode::from_bytes(&v.to_bytes()).unwrap();
        let peer = serde_bencode::to_bytes(&peer_value).unwrap();
        prop_assert_eq!(to_bytes(&v).unwrap(), peer);
    }
}
