//! Replays the checked-in fuzz seed corpus (`fuzz/corpus/dht_krpc`) through the fuzz entry
//! point, so every test run covers it. `TESSERA_WRITE_CORPUS=1` regenerates the seeds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::SocketAddr;
use std::path::PathBuf;

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
