//! Replays the checked-in fuzz seed corpora (`fuzz/corpus/dht_krpc`, `fuzz/corpus/dht_node`)
//! through the fuzz entry points, so every test run covers them. `TESSERA_WRITE_CORPUS=1`
//! regenerates the seeds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::SocketAddr;
use std::path::PathBuf;

use tessera_dht::bep44::MutableItem;
use tessera_dht::krpc::{decode, Message, Query, Response, Want};
use tessera_dht::{Contact, Id};

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(name)
}

fn id(b: u8) -> Id {
    let mut out = [0; 20];
    for (i, x) in out.iter_mut().enumerate() {
        *x = b.wrapping_mul(37).wrapping_add(i as u8);
    }
    Id(out)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn contacts(n: u8, v6: bool) -> Vec<Contact> {
    (0..n)
        .map(|i| Contact {
            id: id(100 + i),
            addr: if v6 {
                addr(&format!("[2001:db8::{}]:{}", i + 1, 6881 + u16::from(i)))
            } else {
                addr(&format!("198.51.100.{}:{}", i + 1, 6881 + u16::from(i)))
            },
        })
        .collect()
}

/// A version, as libtorrent sends it.
fn lt(mut m: Message) -> Message {
    m.version = Some(b"LT\x02\x00".to_vec());
    m
}

fn seeds() -> Vec<Vec<u8>> {
    let t = |n: u8| vec![b'a', n];
    let mut ping_r = lt(Message::response(t(1), Response::new(id(2))));
    ping_r.ip = Some(addr("203.0.113.9:51413"));
    let mut ro = Message::query(t(0), Query::Ping { id: id(1) });
    ro.read_only = true;
    let messages = vec![
        lt(Message::query(t(1), Query::Ping { id: id(1) })),
        ping_r,
        ro,
        lt(Message::query(
            t(2),
            Query::FindNode {
                id: id(1),
                target: id(3),
                want: Some(Want::Both),
            },
        )),
        Message::response(
            t(2),
            Response {
                nodes: contacts(8, false),
                nodes6: contacts(4, true),
                ..Response::new(id(2))
            },
        ),
        lt(Message::query(
            t(3),
            Query::GetPeers {
                id: id(1),
                info_hash: id(4),
                want: Some(Want::V4),
                noseed: true,
                scrape: true,
            },
        )),
        Message::response(
            t(3),
            Response {
                token: Some(b"\x9a\x1f\x00\x7e".to_vec()),
                values: vec![
                    addr("192.0.2.1:6881"),
                    addr("192.0.2.2:51413"),
                    addr("[2001:db8::7]:6881"),
                ],
                ..Response::new(id(2))
            },
        ),
        Message::response(
            t(3),
            Response {
                token: Some(b"\x9a\x1f\x00\x7e".to_vec()),
                nodes: contacts(8, false),
                bloom_seeds: Some(Box::new([0x11; 256])),
                bloom_peers: Some(Box::new([0x3c; 256])),
                ..Response::new(id(2))
            },
        ),
        lt(Message::query(
            t(4),
            Query::AnnouncePeer {
                id: id(1),
                info_hash: id(4),
                port: 6881,
                implied_port: true,
                token: b"\x9a\x1f\x00\x7e".to_vec(),
                seed: true,
            },
        )),
        Message::query(
            t(5),
            Query::Get {
                id: id(1),
                target: id(5),
                seq: Some(3),
                want: None,
            },
        ),
        Message::response(
            t(5),
            Response {
                token: Some(b"tok1".to_vec()),
                value: Some(b"d4:name7:tessera7:versioni2ee".to_vec()),
                key: Some([0x77; 32]),
                signature: Some([0x30; 64]),
                seq: Some(4),
                nodes: contacts(2, false),
                ..Response::new(id(2))
            },
        ),
        Message::query(
            t(6),
            Query::Put {
                id: id(1),
                token: b"tok1".to_vec(),
                value: b"12:Hello World!".to_vec(),
                key: None,
                signature: None,
                salt: None,
                seq: None,
                cas: None,
            },
        ),
        Message::query(
            t(7),
            Query::Put {
                id: id(1),
                token: b"tok1".to_vec(),
                value: b"l5:alpha4:betai42ee".to_vec(),
                key: Some([0x77; 32]),
                signature: Some([0x30; 64]),
                salt: Some(b"foobar".to_vec()),
                seq: Some(5),
                cas: Some(4),
            },
        ),
        Message::query(
            t(8),
            Query::SampleInfohashes {
                id: id(1),
                target: id(6),
                want: None,
            },
        ),
        Message::response(
            t(8),
            Response {
                interval: Some(21600),
                num: Some(1500),
                samples: (10..14).map(id).collect(),
                nodes: contacts(3, false),
                ..Response::new(id(2))
            },
        ),
        Message::query(
            t(9),
            Query::Other {
                method: b"vote".to_vec(),
                id: id(1),
                target: Some(id(7)),
                info_hash: None,
            },
        ),
        Message::error(t(4), 203, "invalid token"),
    ];
    let mut seeds: Vec<Vec<u8>> = messages.iter().map(Message::encode).collect();
    // BEP 5's own example, and a slightly sloppy peer (unsorted keys, an unknown key).
    seeds.push(b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee".to_vec());
    seeds.push(
        b"d1:y1:q1:q9:get_peers1:t2:aa1:ad9:info_hash20:mnopqrstuvwxyz1234562:id20:abcdefghij01234567894:nodei1eee"
            .to_vec(),
    );
    seeds
}

#[test]
fn replay_dht_corpus() {
    let dir = corpus("dht_krpc");
    if std::env::var_os("TESSERA_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, bytes) in seeds().into_iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), bytes).unwrap();
        }
    }
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        tessera_dht::fuzzing::krpc_decode(&bytes);
        // Every prefix too: a truncated datagram must be refused, never trusted or panicked on.
        for cut in 0..bytes.len() {
            tessera_dht::fuzzing::krpc_decode(&bytes[..cut]);
            assert!(decode(&bytes[..cut]).is_err());
        }
        n += 1;
    }
    assert!(n >= 12, "only {n} seeds for dht_krpc");
}

#[test]
fn seeds_decode() {
    // The seeds are valid messages, so the corpus exercises the accepting paths.
    for bytes in seeds() {
        let msg = decode(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert!(bytes.len() <= tessera_dht::krpc::MAX_DATAGRAM);
        let _ = msg;
    }
}

// ----------------------------------------------------------------------------------------
// dht_node: framed datagrams fed to a running node (see `tessera_dht::fuzzing::node_datagrams`)

/// Sender codes of a frame's control byte.
const FROM_CONTACT: u8 = 0;
const FROM_UNKNOWN: u8 = 3;
const FROM_OTHER_PORT: u8 = 4;
const FROM_V6: u8 = 5;
const FROM_MAPPED: u8 = 6;
/// "The destination of the newest query the node sent", with its tid and id filled in.
const AS_DESTINATION: u8 = 7;

/// One frame: control byte (sender, clock step), length, datagram.
fn frame(out: &mut Vec<u8>, from: u8, step: u8, datagram: &[u8]) {
    out.push(from | (step << 5));
    out.extend_from_slice(&(datagram.len() as u16).to_be_bytes());
    out.extend_from_slice(datagram);
}

/// A response from the destination of one of the node's recent queries (`pick` 0 = newest):
/// the transaction id and the responder's id are placeholders the harness fills in.
fn reply(out: &mut Vec<u8>, pick: u8, step: u8, r: Response) {
    let m = Message::response(
        b"xx".to_vec(),
        Response {
            id: Id([b'?'; 20]),
            ..r
        },
    );
    out.push(AS_DESTINATION | (pick << 3) | (step << 5));
    let bytes = m.encode();
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(&bytes);
}

fn node_seeds() -> Vec<Vec<u8>> {
    let q = |n: u8, query: Query| Message::query(vec![b'q', n], query).encode();
    let token = b"\x9a\x1f\x00\x7e\x01\x02\x03\x04".to_vec();
    let mut seeds = Vec::new();

    // 0: one of every query, from every kind of sender.
    let mut s = Vec::new();
    frame(&mut s, FROM_UNKNOWN, 0, &q(1, Query::Ping { id: id(1) }));
    frame(
        &mut s,
        FROM_V6,
        0,
        &q(
            2,
            Query::FindNode {
                id: id(2),
                target: id(3),
                want: Some(Want::Both),
            },
        ),
    );
    frame(
        &mut s,
        FROM_OTHER_PORT,
        1,
        &q(
            3,
            Query::GetPeers {
                id: id(1),
                info_hash: id(4),
                want: None,
                noseed: true,
                scrape: true,
            },
        ),
    );
    frame(
        &mut s,
        FROM_UNKNOWN,
        0,
        &q(
            4,
            Query::AnnouncePeer {
                id: id(1),
                info_hash: id(4),
                port: 6881,
                implied_port: true,
                token: token.clone(),
                seed: false,
            },
        ),
    );
    frame(
        &mut s,
        FROM_CONTACT,
        0,
        &q(
            5,
            Query::Get {
                id: id(5),
                target: id(6),
                seq: Some(1),
                want: None,
            },
        ),
    );
    frame(
        &mut s,
        FROM_MAPPED,
        0,
        &q(
            6,
            Query::Put {
                id: id(1),
                token: token.clone(),
                value: b"12:Hello World!".to_vec(),
                key: None,
                signature: None,
                salt: None,
                seq: None,
                cas: None,
            },
        ),
    );
    frame(
        &mut s,
        FROM_UNKNOWN,
        0,
        &q(
            7,
            Query::SampleInfohashes {
                id: id(1),
                target: id(7),
                want: Some(Want::V6),
            },
        ),
    );
    frame(
        &mut s,
        FROM_UNKNOWN,
        0,
        &q(
            8,
            Query::Other {
                method: b"vote".to_vec(),
                id: id(1),
                target: Some(id(8)),
                info_hash: None,
            },
        ),
    );
    let mut ro = Message::query(b"q9".to_vec(), Query::Ping { id: id(9) });
    ro.read_only = true;
    frame(&mut s, FROM_UNKNOWN, 0, &ro.encode());
    seeds.push(s);

    // 1: the node's lookups answered: the announce's first query with nodes and a token,
    // then whatever the node asks next, with tokens and peers; time passes, the announces go
    // out and are acknowledged.
    let mut s = Vec::new();
    reply(
        &mut s,
        3,
        0,
        Response {
            nodes: contacts(8, false),
            token: Some(token.clone()),
            ..Response::default()
        },
    );
    for round in 0..12u8 {
        reply(
            &mut s,
            round % 3,
            0,
            Response {
                token: Some(token.clone()),
                values: vec![addr("192.0.2.1:6881"), addr("192.0.2.2:51413")],
                nodes6: if round == 5 {
                    contacts(4, true)
                } else {
                    Vec::new()
                },
                ..Response::default()
            },
        );
    }
    frame(&mut s, FROM_UNKNOWN, 5, &q(1, Query::Ping { id: id(1) }));
    for pick in 0..4 {
        reply(&mut s, pick, 0, Response::default());
    }
    reply(&mut s, 0, 7, Response::default());
    seeds.push(s);

    // 2: the mutable item the node looks up, validly signed, and a forged one.
    let item = MutableItem::sign(&[9; 32], b"salt", 7, b"5:hello");
    let mut s = Vec::new();
    for (pick, sig) in [(0, item.signature), (1, [0x30; 64])] {
        reply(
            &mut s,
            pick,
            0,
            Response {
                token: Some(token.clone()),
                value: Some(item.value.clone()),
                key: Some(item.key),
                signature: Some(sig),
                seq: Some(item.seq),
                nodes: contacts(2, false),
                ..Response::default()
            },
        );
    }
    seeds.push(s);

    // 3: spoofing: answers from the wrong addresses, with wrong ids, errors, BEP 42 votes.
    let mut s = Vec::new();
    let planted = Message::response(
        b"xx".to_vec(),
        Response {
            nodes: contacts(8, false),
            ..Response::new(id(66))
        },
    )
    .encode();
    frame(&mut s, FROM_UNKNOWN, 0, &planted);
    frame(&mut s, FROM_CONTACT, 0, &planted);
    s.push(AS_DESTINATION | (1 << 3));
    s.extend_from_slice(&(planted.len() as u16).to_be_bytes());
    s.extend_from_slice(&planted);
    let error = Message::error(b"xx".to_vec(), 202, "server error").encode();
    s.push(AS_DESTINATION | (2 << 3));
    s.extend_from_slice(&(error.len() as u16).to_be_bytes());
    s.extend_from_slice(&error);
    let mut voted = Message::response(b"xx".to_vec(), Response::new(Id([b'?'; 20])));
    voted.ip = Some(addr("198.51.100.200:6881"));
    let voted = voted.encode();
    for pick in 0..4u8 {
        s.push(AS_DESTINATION | (pick << 3));
        s.extend_from_slice(&(voted.len() as u16).to_be_bytes());
        s.extend_from_slice(&voted);
    }
    seeds.push(s);

    // 4: hostile bytes: garbage, truncated, malformed with a readable tid, oversized, a flood.
    let mut s = Vec::new();
    frame(&mut s, FROM_UNKNOWN, 0, b"\x00\xff garbage");
    frame(
        &mut s,
        FROM_UNKNOWN,
        0,
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:q",
    );
    frame(
        &mut s,
        FROM_V6,
        0,
        b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe",
    );
    frame(&mut s, FROM_UNKNOWN, 0, &[b'x'; 2100]);
    for i in 0..50u8 {
        frame(&mut s, FROM_UNKNOWN, 0, &q(i, Query::Ping { id: id(i) }));
    }
    frame(&mut s, FROM_UNKNOWN, 3, &q(0, Query::Ping { id: id(0) }));
    seeds.push(s);
    seeds
}

#[test]
fn replay_dht_node_corpus() {
    let dir = corpus("dht_node");
    if std::env::var_os("TESSERA_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, bytes) in node_seeds().into_iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), bytes).unwrap();
        }
    }
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        tessera_dht::fuzzing::node_datagrams(&bytes);
        // Cut short anywhere (a few dozen places per seed).
        for cut in (0..bytes.len()).step_by(bytes.len() / 32 + 1) {
            tessera_dht::fuzzing::node_datagrams(&bytes[..cut]);
        }
        n += 1;
    }
    assert!(n >= 5, "only {n} seeds for dht_node");
}

#[test]
fn node_seeds_hold_valid_datagrams() {
    // The frames of the seeds are whole, and most are messages that decode, so the corpus
    // starts from the accepting paths.
    let seeds = node_seeds();
    let mut messages = 0;
    for seed in &seeds {
        let mut rest = &seed[..];
        while let [_, hi, lo, tail @ ..] = rest {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            assert!(len <= tail.len(), "frame longer than the seed");
            if decode(&tail[..len]).is_ok() {
                messages += 1;
            }
            rest = &tail[len..];
        }
    }
    assert!(messages >= 60, "{messages}");
}
