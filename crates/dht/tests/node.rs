#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! The node against hostile and edge-case traffic: one [`Node`] driven directly with crafted
//! datagrams and a fake clock, then a few end-to-end runs in the simulated network.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use tessera_dht::bep44::{immutable_target, MutableItem};
use tessera_dht::krpc::{
    self, decode, Body, Message, Query, Response, Want, ERROR_CAS_MISMATCH,
    ERROR_INVALID_SIGNATURE, ERROR_METHOD_UNKNOWN, ERROR_PROTOCOL, ERROR_SEQ_TOO_LOW,
};
use tessera_dht::node::MAX_ANSWER;
use tessera_dht::sim::{Sim, SimConfig};
use tessera_dht::token::ROTATION_INTERVAL;
use tessera_dht::{Contact, Event, FoundItem, Id, Node, NodeConfig, Transmit};

// ----------------------------------------------------------------------------------------
// Helpers

/// A deterministic id from a number.
fn id(n: u64) -> Id {
    let mut out = [0; 20];
    let mut state = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x1234_5678;
    for chunk in out.chunks_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        for (o, b) in chunk.iter_mut().zip(z.to_be_bytes()) {
            *o = b;
        }
    }
    Id(out)
}

/// A distinct public IPv4 address per `n`.
fn v4(n: u32) -> SocketAddr {
    let [_, b, c, d] = n.to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(20 + b, c, d, 7)), 6881)
}

/// A distinct public IPv6 address per `n`.
fn v6(n: u32) -> SocketAddr {
    let ip = Ipv6Addr::new(0x2a01, 0x4f8, 0, 0, 0, 0, (n >> 16) as u16, n as u16 + 1);
    SocketAddr::new(IpAddr::V6(ip), 6881)
}

/// SHA-1 of `bytes`, as an id.
fn sha1(bytes: &[u8]) -> Id {
    immutable_target(bytes)
}

fn config() -> NodeConfig {
    NodeConfig {
        id: Some(id(0)),
        seed: 42,
        ..NodeConfig::default()
    }
}

fn drain(node: &mut Node) -> Vec<Transmit> {
    std::iter::from_fn(|| node.poll_transmit()).collect()
}

fn decoded(t: &Transmit) -> Message {
    decode(&t.payload).unwrap_or_else(|e| panic!("the node sent something undecodable: {e}"))
}

/// Hands `msg` to the node from `from` and returns everything it sends, decoded.
fn exchange(node: &mut Node, now: Instant, from: SocketAddr, msg: &Message) -> Vec<Transmit> {
    node.handle_datagram(now, from, &msg.encode());
    drain(node)
}

/// Sends a query and returns the single answer (which must go back to the sender).
fn ask(node: &mut Node, now: Instant, from: SocketAddr, q: Query) -> Message {
    let out = exchange(node, now, from, &Message::query(b"qq".to_vec(), q));
    let answers: Vec<&Transmit> = out
        .iter()
        .filter(|t| t.to == from && !matches!(decoded(t).body, Body::Query(_)))
        .collect();
    assert_eq!(answers.len(), 1, "expected one answer, got {out:?}");
    let m = decoded(answers[0]);
    assert_eq!(m.tid, b"qq");
    m
}

fn response(m: &Message) -> &Response {
    match &m.body {
        Body::Response(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn error_code(m: &Message) -> i64 {
    match &m.body {
        Body::Error { code, .. } => *code,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Makes the node know `contacts` as confirmed nodes: it pings each, and each answers.
fn confirm(node: &mut Node, now: Instant, contacts: &[Contact]) {
    let by_addr: HashMap<SocketAddr, Id> = contacts.iter().map(|c| (c.addr, c.id)).collect();
    for chunk in contacts.chunks(256) {
        for c in chunk {
            node.add_node(now, c.addr);
        }
        for t in drain(node) {
            let m = decoded(&t);
            assert!(matches!(m.body, Body::Query(Query::Ping { .. })), "{m:?}");
            let id = by_addr[&t.to];
            node.handle_datagram(
                now,
                t.to,
                &Message::response(m.tid, Response::new(id)).encode(),
            );
        }
        assert!(drain(node).is_empty());
    }
}

fn contacts4(range: std::ops::Range<u32>) -> Vec<Contact> {
    range
        .map(|i| Contact {
            id: id(1000 + u64::from(i)),
            addr: v4(i),
        })
        .collect()
}

fn contacts6(range: std::ops::Range<u32>) -> Vec<Contact> {
    range
        .map(|i| Contact {
            id: id(500_000 + u64::from(i)),
            addr: v6(i),
        })
        .collect()
}

fn ping(n: u64) -> Query {
    Query::Ping { id: id(n) }
}

fn get_peers(n: u64, info_hash: Id) -> Query {
    Query::GetPeers {
        id: id(n),
        info_hash,
        want: None,
        noseed: false,
        scrape: false,
    }
}

fn announce(n: u64, info_hash: Id, port: u16, token: Vec<u8>) -> Query {
    Query::AnnouncePeer {
        id: id(n),
        info_hash,
        port,
        implied_port: false,
        token,
        seed: false,
    }
}

fn get(n: u64, target: Id, seq: Option<i64>) -> Query {
    Query::Get {
        id: id(n),
        target,
        seq,
        want: None,
    }
}

fn put(n: u64, token: Vec<u8>, item: &MutableItem, cas: Option<i64>) -> Query {
    Query::Put {
        id: id(n),
        token,
        value: item.value.clone(),
        key: Some(item.key),
        signature: Some(item.signature),
        salt: (!item.salt.is_empty()).then(|| item.salt.clone()),
        seq: Some(item.seq),
        cas,
    }
}

/// The write token the node hands `from` (through `get_peers`).
fn token(node: &mut Node, now: Instant, from: SocketAddr) -> Vec<u8> {
    let m = ask(node, now, from, get_peers(9, id(99)));
    response(&m).token.clone().expect("a token")
}

// ----------------------------------------------------------------------------------------
// Answers

#[test]
fn ping_is_answered_with_our_id_and_the_senders_address() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    let from = v4(1);
    let m = ask(&mut node, t0, from, ping(1));
    assert_eq!(m.ip, Some(from), "BEP 42 ip field");
    assert!(!m.read_only);
    assert_eq!(m.version.as_deref(), Some(&b"TS\x00\x01"[..]));
    assert_eq!(response(&m), &Response::new(id(0)));
    // From IPv6 too.
    let from6 = v6(1);
    let m = ask(&mut node, t0, from6, ping(2));
    assert_eq!(m.ip, Some(from6));
    assert_eq!(node.stats().queries_answered, 2);
}

#[test]
fn find_node_answers_the_eight_closest_of_the_querier_family() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    confirm(&mut node, t0, &contacts4(0..300));
    confirm(&mut node, t0, &contacts6(0..40));
    assert!(node.table().len() > 16, "{}", node.table().len());
    assert!(node.table6().len() > 8, "{}", node.table6().len());
    let target = id(77);
    let closest4 = node.table().closest(&target, 8);
    let closest6 = node.table6().closest(&target, 8);
    assert_eq!((closest4.len(), closest6.len()), (8, 8));
    let find = |want| Query::FindNode {
        id: id(1),
        target,
        want,
    };

    let m = ask(&mut node, t0, v4(9999), find(None));
    let r = response(&m);
    assert_eq!(r.nodes, closest4);
    assert!(r.nodes6.is_empty());
    assert!(r.token.is_none() && r.values.is_empty());

    let m = ask(&mut node, t0, v6(9999), find(None));
    let r = response(&m);
    assert!(r.nodes.is_empty());
    assert_eq!(r.nodes6, closest6);

    let m = ask(&mut node, t0, v4(9998), find(Some(Want::Both)));
    let r = response(&m);
    assert_eq!(r.nodes, closest4);
    assert_eq!(r.nodes6, closest6);

    let m = ask(&mut node, t0, v4(9997), find(Some(Want::V6)));
    let r = response(&m);
    assert!(r.nodes.is_empty());
    assert_eq!(r.nodes6, closest6);
}

#[test]
fn get_peers_hands_out_a_token_and_nodes_when_nothing_is_stored() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    confirm(&mut node, t0, &contacts4(0..50));
    let h = id(5);
    let m = ask(&mut node, t0, v4(900), get_peers(1, h));
    let r = response(&m);
    assert_eq!(r.token.as_ref().map(Vec::len), Some(8));
    assert!(r.values.is_empty());
    assert_eq!(r.nodes, node.table().closest(&h, 8));
    // The token is bound to the IP address, not the port.
    let other_port = SocketAddr::new(v4(900).ip(), 1234);
    let m2 = ask(&mut node, t0, other_port, get_peers(1, h));
    assert_eq!(response(&m2).token, r.token);
    let m3 = ask(&mut node, t0, v4(901), get_peers(1, h));
    assert_ne!(response(&m3).token, r.token);
}

#[test]
fn announce_with_a_valid_token_is_stored_and_returned() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    let h = id(5);
    let peer = v4(10);
    let tok = token(&mut node, t0, peer);
    let m = ask(&mut node, t0, peer, announce(10, h, 7000, tok));
    assert_eq!(response(&m), &Response::new(id(0)));
    assert_eq!(node.peer_store().num_peers(&h), 1);
    let m = ask(&mut node, t0, v4(11), get_peers(11, h));
    let r = response(&m);
    assert_eq!(r.values, vec![SocketAddr::new(peer.ip(), 7000)]);
    assert!(r.token.is_some());
    // An IPv6 querier gets IPv6 peers only: there are none.
    let m = ask(&mut node, t0, v6(11), get_peers(11, h));
    assert!(response(&m).values.is_empty());
}

#[test]
fn implied_port_uses_the_source_port() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    let h = id(6);
    let peer = SocketAddr::new(v4(10).ip(), 51413);
    let tok = token(&mut node, t0, peer);
    let q = Query::AnnouncePeer {
        id: id(10),
        info_hash: h,
        port: 1,
        implied_port: true,
        token: tok.clone(),
        seed: true,
    };
    ask(&mut node, t0, peer, q);
    let m = ask(&mut node, t0, v4(11), get_peers(11, h));
    assert_eq!(response(&m).values, vec![peer]);
    // Port 0 without implied_port is refused.
    let m = ask(&mut node, t0, v4(10), announce(10, id(7), 0, tok));
    assert_eq!(error_code(&m), ERROR_PROTOCOL);
    assert_eq!(node.peer_store().num_peers(&id(7)), 0);
}

#[test]
fn bad_or_foreign_tokens_are_refused_with_203() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    let h = id(5);
    let a = v4(1);
    let b = v4(2);
    let tok_a = token(&mut node, t0, a);
    for (from, tok) in [
        (a, vec![0; 8]),
        (a, tok_a[..7].to_vec()),
        (a, Vec::new()),
        (b, tok_a.clone()),
        (v6(1), tok_a.clone()),
    ] {
        let m = ask(&mut node, t0, from, announce(1, h, 7000, tok));
        assert_eq!(error_code(&m), ERROR_PROTOCOL);
    }
    assert_eq!(node.peer_store().num_peers(&h), 0);
    assert_eq!(node.peer_store().num_infohashes(), 0);
    // BEP 44 put too.
    let q = Query::Put {
        id: id(1),
        token: tok_a.clone(),
        value: b"4:spam".to_vec(),
        key: None,
        signature: None,
        salt: None,
        seq: None,
        cas: None,
    };
    let m = ask(&mut node, t0, b, q);
    assert_eq!(error_code(&m), ERROR_PROTOCOL);
    let m = ask(&mut node, t0, a, get(1, sha1(b"4:spam"), None));
    assert!(response(&m).value.is_none());
    // The right one still works.
    ask(&mut node, t0, a, announce(1, h, 7000, tok_a));
    assert_eq!(node.peer_store().num_peers(&h), 1);
}

#[test]
fn tokens_expire_after_two_rotations() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    let a = v4(1);
    let tok = token(&mut node, t0, a);
    // One rotation later the token is still good (previous secret)...
    let t1 = t0 + ROTATION_INTERVAL + Duration::from_secs(1);
    node.handle_timeout(t1);
    let m = ask(&mut node, t1, a, announce(1, id(1), 7000, tok.clone()));
    assert_eq!(response(&m).id, id(0));
    assert_eq!(node.peer_store().num_peers(&id(1)), 1);
    // ...two rotations later it is not.
    let t2 = t0 + ROTATION_INTERVAL * 2 + Duration::from_secs(1);
    node.handle_timeout(t2);
    let m = ask(&mut node, t2, a, announce(1, id(2), 7000, tok.clone()));
    assert_eq!(error_code(&m), ERROR_PROTOCOL);
    assert_eq!(node.peer_store().num_peers(&id(2)), 0);
    // Without handle_timeout in between (a long silence), too.
    let mut node = Node::new(config(), t0);
    let tok = token(&mut node, t0, a);
    let m = ask(&mut node, t2, a, announce(1, id(2), 7000, tok));
    assert_eq!(error_code(&m), ERROR_PROTOCOL);
    // A fresh token works.
    let tok = token(&mut node, t2, a);
    ask(&mut node, t2, a, announce(1, id(2), 7000, tok));
    assert_eq!(node.peer_store().num_peers(&id(2)), 1);
}

#[test]
fn get_peers_values_are_bounded_by_max_values() {
    let t0 = Instant::now();
    let mut node = Node::new(
        NodeConfig {
            max_values: 5,
            ..config()
        },
        t0,
    );
    let h = id(5);
    let announced: Vec<SocketAddr> = (0..12).map(|i| v4(100 + i)).collect();
    for (i, peer) in announced.iter().enumerate() {
        let tok = token(&mut node, t0, *peer);
        ask(&mut node, t0, *peer, announce(i as u64, h, 7000, tok));
    }
    assert_eq!(node.peer_store().num_peers(&h), 12);
    let m = ask(&mut node, t0, v4(1), get_peers(1, h));
    let values = &response(&m).values;
    assert_eq!(values.len(), 5);
    for v in values {
        assert!(announced.contains(&SocketAddr::new(v.ip(), 6881)), "{v}");
        assert_eq!(v.port(), 7000);
    }
}

#[test]
fn bep44_immutable_put_and_get() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    let a = v4(1);
    let value = b"12:Hello World!".to_vec();
    let target = sha1(&value);
    let m = ask(&mut node, t0, a, get(1, target, None));
    let r = response(&m);
    assert!(r.value.is_none());
    let tok = r.token.clone().unwrap();
    let put_q = |value: Vec<u8>| Query::Put {
        id: id(1),
        token: tok.clone(),
        value,
        key: None,
        signature: None,
        salt: None,
        seq: None,
        cas: None,
    };
    let m = ask(&mut node, t0, a, put_q(value.clone()));
    assert_eq!(response(&m), &Response::new(id(0)));
    let m = ask(&mut node, t0, v4(2), get(2, target, None));
    let r = response(&m);
    assert_eq!(r.value.as_deref(), Some(&value[..]));
    assert_eq!((r.key, r.signature, r.seq), (None, None, None));
    // Putting it again is fine; another value goes under another target.
    let m = ask(&mut node, t0, a, put_q(value.clone()));
    assert_eq!(response(&m), &Response::new(id(0)));
    let m = ask(&mut node, t0, a, put_q(b"li1ei2ee".to_vec()));
    assert_eq!(response(&m), &Response::new(id(0)));
    let m = ask(&mut node, t0, v4(2), get(2, sha1(b"li1ei2ee"), None));
    assert_eq!(response(&m).value.as_deref(), Some(&b"li1ei2ee"[..]));
}

#[test]
fn bep44_mutable_signature_seq_and_cas() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    let a = v4(1);
    let secret = [7; 32];
    let salt = b"salt".to_vec();
    let item1 = MutableItem::sign(&secret, &salt, 1, b"5:first");
    let target = item1.target();
    assert_eq!(target, {
        let mut k = item1.key.to_vec();
        k.extend_from_slice(&salt);
        sha1(&k)
    });
    let m = ask(&mut node, t0, a, get(1, target, None));
    let tok = response(&m).token.clone().unwrap();

    // A bad signature: 206, nothing stored.
    let mut forged = item1.clone();
    forged.value = b"5:forge".to_vec();
    let m = ask(&mut node, t0, a, put(1, tok.clone(), &forged, None));
    assert_eq!(error_code(&m), ERROR_INVALID_SIGNATURE);
    // A key without a signature: 206 too.
    let q = Query::Put {
        id: id(1),
        token: tok.clone(),
        value: item1.value.clone(),
        key: Some(item1.key),
        signature: None,
        salt: Some(salt.clone()),
        seq: Some(1),
        cas: None,
    };
    let m = ask(&mut node, t0, a, q);
    assert_eq!(error_code(&m), ERROR_INVALID_SIGNATURE);
    let m = ask(&mut node, t0, a, get(1, target, None));
    assert!(response(&m).value.is_none() && response(&m).seq.is_none());

    // Stored.
    let m = ask(&mut node, t0, a, put(1, tok.clone(), &item1, None));
    assert_eq!(response(&m), &Response::new(id(0)));
    let m = ask(&mut node, t0, v4(2), get(2, target, None));
    let r = response(&m);
    assert_eq!(r.value.as_deref(), Some(&b"5:first"[..]));
    assert_eq!(r.key, Some(item1.key));
    assert_eq!(r.signature, Some(item1.signature));
    assert_eq!(r.seq, Some(1));
    // `seq` in the get: the value only if newer.
    let m = ask(&mut node, t0, v4(2), get(2, target, Some(1)));
    let r = response(&m);
    assert_eq!(
        (r.seq, r.value.is_none(), r.signature.is_none()),
        (Some(1), true, true)
    );
    let m = ask(&mut node, t0, v4(2), get(2, target, Some(0)));
    assert!(response(&m).value.is_some());

    // Lower seq: 302. Same seq, other value: 302. Same item again: fine.
    let item0 = MutableItem::sign(&secret, &salt, 0, b"4:zero");
    let m = ask(&mut node, t0, a, put(1, tok.clone(), &item0, None));
    assert_eq!(error_code(&m), ERROR_SEQ_TOO_LOW);
    let other1 = MutableItem::sign(&secret, &salt, 1, b"5:other");
    let m = ask(&mut node, t0, a, put(1, tok.clone(), &other1, None));
    assert_eq!(error_code(&m), ERROR_SEQ_TOO_LOW);
    let m = ask(&mut node, t0, a, put(1, tok.clone(), &item1, None));
    assert_eq!(response(&m).id, id(0));
    // CAS mismatch: 301.
    let item2 = MutableItem::sign(&secret, &salt, 2, b"6:second");
    let m = ask(&mut node, t0, a, put(1, tok.clone(), &item2, Some(0)));
    assert_eq!(error_code(&m), ERROR_CAS_MISMATCH);
    let m = ask(&mut node, t0, a, get(1, target, None));
    assert_eq!(response(&m).seq, Some(1));
    // CAS match: stored.
    let m = ask(&mut node, t0, a, put(1, tok.clone(), &item2, Some(1)));
    assert_eq!(response(&m).id, id(0));
    let m = ask(&mut node, t0, a, get(1, target, None));
    assert_eq!(response(&m).value.as_deref(), Some(&b"6:second"[..]));
    assert_eq!(response(&m).seq, Some(2));
    // Another key under the same salt does not touch it.
    let intruder = MutableItem::sign(&[8; 32], &salt, 9, b"5:intru");
    ask(&mut node, t0, a, put(1, tok, &intruder, None));
    let m = ask(&mut node, t0, a, get(1, target, None));
    assert_eq!(response(&m).seq, Some(2));
}

#[test]
fn sample_infohashes_returns_the_stored_hashes() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    confirm(&mut node, t0, &contacts4(0..20));
    let hashes = [id(31), id(32), id(33)];
    for (i, h) in hashes.iter().enumerate() {
        let peer = v4(100 + i as u32);
        let tok = token(&mut node, t0, peer);
        ask(&mut node, t0, peer, announce(1, *h, 7000, tok));
    }
    let q = Query::SampleInfohashes {
        id: id(1),
        target: id(50),
        want: None,
    };
    let m = ask(&mut node, t0, v4(1), q);
    let r = response(&m);
    let mut samples = r.samples.clone();
    samples.sort();
    let mut expected = hashes.to_vec();
    expected.sort();
    assert_eq!(samples, expected);
    assert_eq!(r.num, Some(3));
    assert_eq!(r.interval, Some(300));
    assert_eq!(r.nodes, node.table().closest(&id(50), 8));
}

#[test]
fn unknown_methods_are_answered_like_find_node_or_with_204() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    confirm(&mut node, t0, &contacts4(0..50));
    let other = |target, info_hash| Query::Other {
        method: b"vote".to_vec(),
        id: id(1),
        target,
        info_hash,
    };
    let m = ask(&mut node, t0, v4(900), other(Some(id(3)), None));
    assert_eq!(response(&m).nodes, node.table().closest(&id(3), 8));
    let m = ask(&mut node, t0, v4(900), other(None, Some(id(4))));
    assert_eq!(response(&m).nodes, node.table().closest(&id(4), 8));
    let m = ask(&mut node, t0, v4(900), other(None, None));
    assert_eq!(error_code(&m), ERROR_METHOD_UNKNOWN);
    // A method name too long to keep: 204 as well.
    let raw = format!(
        "d1:ad2:id20:abcdefghij0123456789e1:q{}:{}1:t2:zz1:y1:qe",
        64,
        "x".repeat(64)
    );
    node.handle_datagram(t0, v4(900), raw.as_bytes());
    let out = drain(&mut node);
    assert_eq!(out.len(), 1);
    let m = decoded(&out[0]);
    assert_eq!(
        (m.tid.as_slice(), error_code(&m)),
        (&b"zz"[..], ERROR_METHOD_UNKNOWN)
    );
}

#[test]
fn malformed_queries_get_203_and_garbage_gets_nothing() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    let from = v4(1);
    // A query whose id is 3 bytes long, and one without its target.
    for raw in [
        &b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe"[..],
        &b"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:xy1:y1:qe"[..],
    ] {
        node.handle_datagram(t0, from, raw);
        let out = drain(&mut node);
        assert_eq!(out.len(), 1, "{}", String::from_utf8_lossy(raw));
        assert_eq!(out[0].to, from);
        let m = decoded(&out[0]);
        assert_eq!(m.tid, b"xy");
        assert_eq!(error_code(&m), ERROR_PROTOCOL);
    }
    // Garbage, truncated messages, a bad response, an error for no query of ours, a message
    // without a type: no answer at all.
    let garbage: [&[u8]; 7] = [
        b"",
        b"\x00\x01\x02",
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:xy1:y1:q",
        b"i42e",
        b"d1:rd2:id3:abce1:t2:xy1:y1:re",
        b"d1:eli201ee1:t2:xy1:y1:ee",
        b"d1:t2:xye",
    ];
    for raw in garbage {
        node.handle_datagram(t0, from, raw);
        assert!(
            drain(&mut node).is_empty(),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
    let oversized = vec![b'x'; krpc::MAX_DATAGRAM + 1];
    node.handle_datagram(t0, from, &oversized);
    assert!(drain(&mut node).is_empty());
    // All but the well-formed error are malformed.
    assert_eq!(node.stats().malformed, 2 + 6 + 1);
    assert_eq!(node.stats().queries_answered, 0);
    assert_eq!(node.table().len() + node.table().num_replacements(), 0);
}

// ----------------------------------------------------------------------------------------
// Protection

#[test]
fn rate_limit_bursts_then_drops_then_refills() {
    let t0 = Instant::now();
    let mut node = Node::new(
        NodeConfig {
            rate_per_ip: 2,
            burst_per_ip: 5,
            ..config()
        },
        t0,
    );
    let a = v4(1);
    for i in 0..5 {
        ask(&mut node, t0, a, ping(i));
    }
    for i in 0..3 {
        let out = exchange(&mut node, t0, a, &Message::query(b"qq".to_vec(), ping(i)));
        assert!(out.is_empty());
    }
    assert_eq!(node.stats().rate_limited, 3);
    assert_eq!(node.stats().queries_answered, 5);
    // The same IP on another port is the same IP.
    let a2 = SocketAddr::new(a.ip(), 9);
    assert!(exchange(&mut node, t0, a2, &Message::query(b"q".to_vec(), ping(1))).is_empty());
    assert_eq!(node.stats().rate_limited, 4);
    // Malformed queries count against the same budget: no error reply either.
    node.handle_datagram(t0, a, b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe");
    assert!(drain(&mut node).is_empty());
    // Another IP is served.
    ask(&mut node, t0, v4(2), ping(2));
    // Half a second at 2/s: one more query.
    let t1 = t0 + Duration::from_millis(500);
    ask(&mut node, t1, a, ping(1));
    assert!(exchange(&mut node, t1, a, &Message::query(b"q".to_vec(), ping(1))).is_empty());
    // Long after: a full burst again, no more.
    let t2 = t0 + Duration::from_secs(60);
    for i in 0..5 {
        ask(&mut node, t2, a, ping(i));
    }
    assert!(exchange(&mut node, t2, a, &Message::query(b"q".to_vec(), ping(1))).is_empty());
    assert_eq!(node.stats().rate_limited, 6);
    assert_eq!(node.stats().queries_answered, 5 + 1 + 1 + 5);
}

#[test]
fn rate_table_stays_bounded_under_100k_source_ips() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    let max = config().max_rate_entries;
    // An entry is an (IpAddr, (u64, Instant)) and a control byte; with deleted entries the
    // hash table may hold up to 4 slots per live entry before it rehashes in place.
    let per_entry = std::mem::size_of::<(IpAddr, (u64, Instant))>() + 1;
    let bound = node.heap_bytes() + 4 * max.next_power_of_two() * per_entry + 64 * 1024;
    let query = Message::query(b"qq".to_vec(), ping(1)).encode();
    // 100,000 addresses in 100 simulated seconds: the table forgets refilled entries.
    let mut peak = 0;
    for i in 0..100_000u32 {
        let now = t0 + Duration::from_millis(u64::from(i));
        node.handle_datagram(now, v4(i), &query);
        while node.poll_transmit().is_some() {}
        if i % 100 == 0 {
            node.handle_timeout(now);
            peak = peak.max(node.heap_bytes());
        }
    }
    assert!(peak <= bound, "{peak} > {bound}");
    let s = node.stats();
    assert_eq!(s.queries_answered, 100_000, "{s:?}");
    assert_eq!(s.rate_limited, 0);
    // 100,000 more at one instant: once the table is full of fresh entries, newcomers are
    // turned away rather than remembered, and nothing grows.
    let t1 = t0 + Duration::from_secs(1000);
    node.handle_timeout(t1);
    for i in 100_000..200_000u32 {
        node.handle_datagram(t1, v4(i), &query);
        while node.poll_transmit().is_some() {}
    }
    assert!(node.heap_bytes() <= peak, "{} > {peak}", node.heap_bytes());
    let s2 = node.stats();
    assert_eq!(
        s2.queries_answered - s.queries_answered,
        max as u64,
        "{s2:?}"
    );
    assert_eq!(s2.rate_limited - s.rate_limited, 100_000 - max as u64);
    // Known addresses are still served at full rate meanwhile. (That turning newcomers away is
    // cheap, with no pass over the table each time, is measured by the node bench, not here.)
    for i in 0..100_000u32 {
        let from = v4(100_000 + i % 1000);
        node.handle_datagram(t1 + Duration::from_millis(u64::from(i / 100)), from, &query);
        while node.poll_transmit().is_some() {}
    }
    assert_eq!(node.stats().queries_answered - s2.queries_answered, 100_000);
    println!("peak {peak} bytes (bound {bound})");
    // A known address is still served; newcomers are again once entries have refilled.
    ask(&mut node, t1, v4(100_000), ping(1));
    let t2 = t1 + Duration::from_secs(3);
    ask(&mut node, t2, v4(250_000), ping(1));
}

#[test]
fn answers_are_bounded_no_amplification() {
    let t0 = Instant::now();
    // A full-sized table, many peers on one hash, a big BEP 44 item with a long salt.
    let mut node = Node::new(
        NodeConfig {
            max_values: 200,
            ..config()
        },
        t0,
    );
    confirm(&mut node, t0, &contacts4(0..300));
    confirm(&mut node, t0, &contacts6(0..300));
    let h = id(5);
    let stored = id(6);
    for i in 0..200u32 {
        for peer in [v4(10_000 + i), v6(10_000 + i)] {
            let tok = token(&mut node, t0, peer);
            let q = Query::AnnouncePeer {
                id: id(1),
                info_hash: h,
                port: 7000,
                implied_port: false,
                token: tok,
                seed: i % 2 == 0,
            };
            ask(&mut node, t0, peer, q);
        }
    }
    let tok = token(&mut node, t0, v4(1));
    ask(&mut node, t0, v4(1), announce(1, stored, 7000, tok.clone()));
    let mut big = b"995:".to_vec();
    big.resize(999, b'x');
    let immutable = big.clone();
    ask(
        &mut node,
        t0,
        v4(1),
        Query::Put {
            id: id(1),
            token: tok.clone(),
            value: immutable.clone(),
            key: None,
            signature: None,
            salt: None,
            seq: None,
            cas: None,
        },
    );
    let item = MutableItem::sign(&[3; 32], &[b's'; 64], i64::MAX, &big);
    assert!(item.verify().is_ok());
    ask(&mut node, t0, v4(1), put(1, tok, &item, None));

    let want = [None, Some(Want::V4), Some(Want::V6), Some(Want::Both)];
    let mut queries = Vec::new();
    for w in want {
        queries.push(Query::FindNode {
            id: id(1),
            target: id(2),
            want: w,
        });
        for (noseed, scrape) in [(false, false), (true, false), (false, true), (true, true)] {
            for info_hash in [h, stored, id(7)] {
                queries.push(Query::GetPeers {
                    id: id(1),
                    info_hash,
                    want: w,
                    noseed,
                    scrape,
                });
            }
        }
        for target in [sha1(&immutable), item.target(), id(8)] {
            for seq in [None, Some(0)] {
                queries.push(Query::Get {
                    id: id(1),
                    target,
                    seq,
                    want: w,
                });
            }
        }
        queries.push(Query::SampleInfohashes {
            id: id(1),
            target: id(2),
            want: w,
        });
    }
    queries.push(ping(1));
    queries.push(Query::Other {
        method: b"x".to_vec(),
        id: id(1),
        target: Some(id(2)),
        info_hash: None,
    });
    let mut worst: HashMap<&'static str, (usize, usize)> = HashMap::new();
    let mut n = 0;
    for q in queries {
        for from in [v4(5), v6(5)] {
            // The smallest datagram that can carry this query: a 1-byte transaction id, no
            // version.
            let msg = Message::query(b"q".to_vec(), q.clone());
            let bytes = msg.encode();
            node.handle_datagram(t0, from, &bytes);
            let out = drain(&mut node);
            assert_eq!(out.len(), 1);
            let len = out[0].payload.len();
            assert!(len <= MAX_ANSWER, "{len} bytes answering {q:?} from {from}");
            let kind = match &q {
                Query::Ping { .. } => "ping",
                Query::FindNode { .. } => "find_node",
                Query::GetPeers { .. } => "get_peers",
                Query::Get { .. } => "get",
                Query::SampleInfohashes { .. } => "sample_infohashes",
                _ => "other",
            };
            let w = worst.entry(kind).or_default();
            if len * 1000 / bytes.len() > w.0 * 1000 / w.1.max(1) {
                *w = (len, bytes.len());
            }
            // Whatever was cut, the answer still says what matters.
            let m = decoded(&out[0]);
            let r = response(&m);
            if let Query::GetPeers { info_hash, .. } = &q {
                assert!(r.token.is_some());
                if *info_hash == h && !matches!(q, Query::GetPeers { noseed: true, .. }) {
                    assert!(!r.values.is_empty(), "{q:?}");
                }
                if *info_hash == id(7) {
                    assert!(!r.nodes.is_empty() || !r.nodes6.is_empty());
                }
            }
            if let Query::Get { target, seq, .. } = &q {
                if *target == sha1(&immutable) || (*target == item.target() && seq.is_none()) {
                    assert_eq!(r.value.as_deref(), Some(&big[..]));
                }
            }
            n += 1;
        }
    }
    println!("{n} answers; worst (answer, query) bytes per kind: {worst:?}");
    // What an answer adds to the query it answers, at most:
    // * ping: the `ip` field (25 bytes for IPv6) and our version (9), less the arguments;
    // * find_node and unknown methods: 8 IPv4 and 8 IPv6 contacts (8 × 26 + 8 × 38 = 512
    //   bytes) and their keys;
    // * sample_infohashes: 20 samples (400 bytes), `num` and `interval`, and the contacts;
    // * get_peers (values, BEP 33 filters) and get (a 1,000-byte BEP 44 value) are capped
    //   at MAX_ANSWER: at most 17.5 times their smallest query (84 bytes).
    let added = |k: &str| worst[k].0.saturating_sub(worst[k].1);
    assert!(added("ping") <= 34, "{}", added("ping"));
    assert!(added("find_node") <= 512 + 34, "{}", added("find_node"));
    assert!(added("other") <= 512 + 34, "{}", added("other"));
    assert!(
        added("sample_infohashes") <= 400 + 512 + 70,
        "{}",
        added("sample_infohashes")
    );
    for k in ["get_peers", "get"] {
        assert!(worst[k].1 >= 84, "{k}: {:?}", worst[k]);
        assert!(worst[k].0 <= MAX_ANSWER, "{k}: {:?}", worst[k]);
    }
    let factor = |k: &str| worst[k].0 as f64 / worst[k].1 as f64;
    assert!(factor("ping") < 1.5, "{}", factor("ping"));
    assert!(factor("find_node") < 6.0, "{}", factor("find_node"));
}

#[test]
fn oversized_answers_lose_contacts_before_peers() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    confirm(&mut node, t0, &contacts4(0..300));
    confirm(&mut node, t0, &contacts6(0..300));
    let h = id(5);
    for i in 0..60 {
        let peer = v6(10_000 + i);
        let tok = token(&mut node, t0, peer);
        ask(&mut node, t0, peer, announce(1, h, 7000, tok));
    }
    let query = |want, scrape| Query::GetPeers {
        id: id(1),
        info_hash: h,
        want,
        noseed: false,
        scrape,
    };
    let size = |node: &mut Node, q: Query| {
        let out = exchange(node, t0, v6(5), &Message::query(b"q".to_vec(), q));
        assert_eq!(out.len(), 1);
        (out[0].payload.len(), response(&decoded(&out[0])).clone())
    };
    // 50 IPv6 peers (21 bytes each) and 8 + 8 contacts do not fit: the IPv4 contacts go
    // first, then as many IPv6 ones as needed.
    let (len, r) = size(&mut node, query(Some(Want::Both), false));
    println!(
        "want both: {len} bytes, {} values, {} + {} nodes",
        r.values.len(),
        r.nodes.len(),
        r.nodes6.len()
    );
    assert!(len <= MAX_ANSWER && len > MAX_ANSWER - 38, "{len}");
    assert_eq!(r.values.len(), 50);
    assert!(r.nodes.is_empty());
    assert!(
        !r.nodes6.is_empty() && r.nodes6.len() < 8,
        "{}",
        r.nodes6.len()
    );
    assert_eq!(r.nodes6[..], node.table6().closest(&h, 8)[..r.nodes6.len()]);
    // With the BEP 33 filters (2 × 256 bytes) too, peers are cut as well, never the filters.
    let (len, r) = size(&mut node, query(None, true));
    println!(
        "scrape: {len} bytes, {} values, {} + {} nodes",
        r.values.len(),
        r.nodes.len(),
        r.nodes6.len()
    );
    assert!(len <= MAX_ANSWER && len > MAX_ANSWER - 21, "{len}");
    assert!(r.bloom_seeds.is_some() && r.bloom_peers.is_some());
    assert!(r.nodes.is_empty() && r.nodes6.is_empty());
    assert!(
        r.values.len() > 30 && r.values.len() < 50,
        "{}",
        r.values.len()
    );
    // An answer that fits is left alone.
    let (_, r) = size(&mut node, query(Some(Want::V4), false));
    assert_eq!((r.values.len(), r.nodes.len(), r.nodes6.len()), (50, 8, 0));
}

#[test]
fn a_spoofed_response_is_ignored() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    let real = v4(1);
    let spoofer = v4(50);
    node.add_node(t0, real);
    let out = drain(&mut node);
    assert_eq!(out.len(), 1);
    let tid = decoded(&out[0]).tid;
    // The right transaction id from the wrong address, carrying nodes to plant.
    let planted = Response {
        nodes: contacts4(100..108),
        ..Response::new(id(666))
    };
    let spoofed = Message::response(tid.clone(), planted.clone());
    assert!(exchange(&mut node, t0, spoofer, &spoofed).is_empty());
    assert_eq!(node.stats().unexpected, 1);
    assert_eq!(node.table().len() + node.table().num_replacements(), 0);
    // The same port on another IP, and the same IP on another port, are other addresses.
    for other in [
        SocketAddr::new(v4(3).ip(), real.port()),
        SocketAddr::new(real.ip(), 1),
    ] {
        assert!(exchange(&mut node, t0, other, &spoofed).is_empty());
    }
    assert_eq!(node.stats().unexpected, 3);
    assert!(node.table().is_empty());
    // The transaction is still open for the real node.
    exchange(
        &mut node,
        t0,
        real,
        &Message::response(tid, Response::new(id(1))),
    );
    assert_eq!(
        node.table().contacts().collect::<Vec<_>>(),
        vec![Contact {
            id: id(1),
            addr: real
        }]
    );

    // In a lookup: a spoofed answer plants no candidates.
    let mut node = Node::new(config(), t0);
    let seeds = contacts4(0..3);
    confirm(&mut node, t0, &seeds);
    node.find_node(t0, id(3)).unwrap();
    let out = drain(&mut node);
    assert_eq!(out.len(), 3);
    for t in &out {
        let m = decoded(t);
        let spoofed = Message::response(m.tid, planted.clone());
        assert!(exchange(&mut node, t0, spoofer, &spoofed).is_empty());
    }
    // The real answers (no nodes) finish the lookup without querying any planted node.
    for t in &out {
        let m = decoded(t);
        let who = seeds.iter().find(|c| c.addr == t.to).unwrap();
        let sent = exchange(
            &mut node,
            t0,
            t.to,
            &Message::response(m.tid, Response::new(who.id)),
        );
        assert!(sent.is_empty(), "{sent:?}");
    }
    let done = std::iter::from_fn(|| node.poll_event()).find_map(|e| match e {
        Event::LookupDone { stats, closest, .. } => Some((stats, closest)),
        _ => None,
    });
    let (stats, closest) = done.expect("lookup done");
    assert_eq!(stats.queries_sent, 3);
    assert_eq!(stats.responses, 3);
    assert_eq!(closest.len(), 3);
    assert_eq!(node.table().len(), 3);
}

#[test]
fn a_response_with_an_unexpected_id_counts_as_a_failure() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    let seeds = contacts4(0..2);
    confirm(&mut node, t0, &seeds);
    node.find_node(t0, id(3)).unwrap();
    let out = drain(&mut node);
    assert_eq!(out.len(), 2);
    let (first, second) = (&out[0], &out[1]);
    // The first answers with an id that is not the one we know at that address.
    let m = decoded(first);
    let impostor = Response {
        nodes: contacts4(100..108),
        ..Response::new(id(666))
    };
    let sent = exchange(&mut node, t0, first.to, &Message::response(m.tid, impostor));
    assert!(sent.is_empty(), "no node it named was queried: {sent:?}");
    assert!(!node.table().contains(&id(666)));
    let m = decoded(second);
    let who = seeds.iter().find(|c| c.addr == second.to).unwrap();
    exchange(
        &mut node,
        t0,
        second.to,
        &Message::response(m.tid, Response::new(who.id)),
    );
    let Some(Event::LookupDone { stats, closest, .. }) = node.poll_event() else {
        panic!("lookup not done");
    };
    assert_eq!((stats.responses, stats.failures), (1, 1));
    assert_eq!(closest, vec![*who]);
    assert_eq!(node.stats().unexpected, 0);
}

#[test]
fn unsolicited_responses_are_counted_unexpected() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    for (i, tid) in [&b"aa"[..], b"a", b"abcd", b""].iter().enumerate() {
        let m = Message::response(
            tid.to_vec(),
            Response {
                nodes: contacts4(0..8),
                ..Response::new(id(1))
            },
        );
        assert!(exchange(&mut node, t0, v4(i as u32), &m).is_empty());
    }
    // An error for a transaction we never opened changes nothing either.
    let e = Message::error(b"aa".to_vec(), 201, "x");
    assert!(exchange(&mut node, t0, v4(1), &e).is_empty());
    assert_eq!(node.stats().unexpected, 4);
    assert_eq!(node.table().len() + node.table().num_replacements(), 0);
    // A response to a query that timed out is unexpected too.
    node.add_node(t0, v4(9));
    let tid = decoded(&drain(&mut node)[0]).tid;
    let later = t0 + Duration::from_secs(5);
    node.handle_timeout(later);
    assert_eq!(node.stats().timeouts, 1);
    exchange(
        &mut node,
        later,
        v4(9),
        &Message::response(tid, Response::new(id(9))),
    );
    assert_eq!(node.stats().unexpected, 5);
    assert!(node.table().is_empty());
}

#[test]
fn a_read_only_node_says_so_and_answers_nothing() {
    let t0 = Instant::now();
    let mut node = Node::new(
        NodeConfig {
            read_only: true,
            ..config()
        },
        t0,
    );
    node.add_node(t0, v4(1));
    node.bootstrap(t0, &[v4(2)]);
    let out = drain(&mut node);
    assert_eq!(out.len(), 2);
    for t in &out {
        assert!(decoded(t).read_only, "ro=1 in every query");
    }
    for q in [ping(1), get_peers(1, id(2)), get(1, id(2), None)] {
        assert!(exchange(&mut node, t0, v4(3), &Message::query(b"q".to_vec(), q)).is_empty());
    }
    node.handle_datagram(t0, v4(3), b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe");
    assert!(drain(&mut node).is_empty());
    let s = node.stats();
    assert_eq!((s.queries_answered, s.rate_limited), (0, 0));
    // It still takes answers to its own queries.
    let tid = decoded(&out[0]).tid;
    exchange(
        &mut node,
        t0,
        v4(1),
        &Message::response(tid, Response::new(id(1))),
    );
    assert!(node.table().contains(&id(1)));
}

#[test]
fn read_only_queriers_are_answered_but_not_added() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    let mut q = Message::query(b"qq".to_vec(), ping(1));
    q.read_only = true;
    let out = exchange(&mut node, t0, v4(1), &q);
    assert_eq!(out.len(), 1, "only the answer, no ping to confirm it");
    assert!(matches!(decoded(&out[0]).body, Body::Response(_)));
    assert_eq!(node.table().len() + node.table().num_replacements(), 0);
    // A second later, still not (it never is), while an ordinary querier is kept as a
    // replacement and pinged to be confirmed.
    let t1 = t0 + Duration::from_secs(1);
    let mut q = Message::query(b"qq".to_vec(), ping(1));
    q.read_only = true;
    assert_eq!(exchange(&mut node, t1, v4(1), &q).len(), 1);
    let q = Message::query(b"qq".to_vec(), ping(2));
    let out = exchange(&mut node, t1, v4(2), &q);
    assert_eq!(out.len(), 2);
    assert!(matches!(
        decoded(&out[0]).body,
        Body::Query(Query::Ping { .. })
    ));
    assert!(matches!(decoded(&out[1]).body, Body::Response(_)));
    assert!(out.iter().all(|t| t.to == v4(2)));
    assert_eq!(node.table().num_replacements(), 1);
    // Nor does a read-only node's answer put it in the table.
    node.add_node(t0, v4(3));
    let tid = decoded(&drain(&mut node)[0]).tid;
    let mut r = Message::response(tid, Response::new(id(3)));
    r.read_only = true;
    exchange(&mut node, t0, v4(3), &r);
    assert!(!node.table().contains(&id(3)));
}

#[test]
fn pending_queries_and_transmit_queue_stay_bounded() {
    let t0 = Instant::now();
    let mut node = Node::new(
        NodeConfig {
            max_in_flight: 16,
            max_transmit_queue: 24,
            ..config()
        },
        t0,
    );
    // Learn 100 nodes with a roomy queue, then never answer again.
    let contacts = contacts4(0..100);
    for chunk in contacts.chunks(16) {
        confirm(&mut node, t0, chunk);
    }
    let known = node.table().len();
    assert!(known >= 16, "{known}");
    let before = node.stats();
    for i in 0..50 {
        node.add_node(t0, v4(1000 + i));
        node.find_node(t0, id(u64::from(i)));
        node.bootstrap(t0, &[v4(2000 + i)]);
    }
    let sent = node.stats().queries_sent - before.queries_sent;
    assert_eq!(sent, 16, "in flight at once");
    assert_eq!(node.in_flight(), 16);
    // Answers to queries (not our own) still fit while the queue has room...
    for i in 0..20 {
        node.handle_datagram(
            t0,
            v4(3000 + i),
            &Message::query(b"q".to_vec(), ping(1)).encode(),
        );
    }
    let out = drain(&mut node);
    assert_eq!(out.len(), 24, "the queue holds at most max_transmit_queue");
    // Time passes: all 16 time out, the lookups move on, but never past the bounds.
    let mut now = t0;
    for _ in 0..40 {
        now += Duration::from_millis(500);
        node.handle_timeout(now);
        let s = node.stats();
        let open = s.queries_sent - s.timeouts - before.queries_sent + before.timeouts;
        assert_eq!(open as usize, node.in_flight());
        assert!(node.in_flight() <= 16, "{} in flight", node.in_flight());
        assert!(drain(&mut node).len() <= 24);
    }
    assert!(node.stats().timeouts > before.timeouts + 16);
    assert!(node.heap_bytes() < 2_000_000, "{}", node.heap_bytes());
}

#[test]
fn responses_agree_on_our_external_address() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    let ours: SocketAddr = "198.51.100.77:6881".parse().unwrap();
    for i in 0..5u32 {
        node.add_node(t0, v4(i));
        let tid = decoded(&drain(&mut node)[0]).tid;
        let mut r = Message::response(tid, Response::new(id(u64::from(i) + 1)));
        r.ip = Some(ours);
        exchange(&mut node, t0, v4(i), &r);
        let e = node.poll_event();
        if i < 4 {
            assert_eq!(e, None);
        } else {
            assert_eq!(e, Some(Event::ExternalAddress(ours.ip())));
        }
    }
    // Another address catching up: while it trails, nothing changes; on a tie the choice
    // does not depend on hash-map order (the higher address wins, in every run).
    let other: SocketAddr = "198.51.100.78:6881".parse().unwrap();
    for i in 5..10u32 {
        node.add_node(t0, v4(i));
        let tid = decoded(&drain(&mut node)[0]).tid;
        let mut r = Message::response(tid, Response::new(id(u64::from(i) + 1)));
        r.ip = Some(other);
        exchange(&mut node, t0, v4(i), &r);
        let e = node.poll_event();
        if i < 9 {
            assert_eq!(e, None);
        } else {
            assert_eq!(e, Some(Event::ExternalAddress(other.ip())));
        }
    }
    // A spoofed `ip` in unsolicited responses does not vote.
    let mut node = Node::new(config(), t0);
    for i in 0..10u32 {
        let mut r = Message::response(vec![i as u8, 1], Response::new(id(1)));
        r.ip = Some(ours);
        exchange(&mut node, t0, v4(i), &r);
    }
    assert_eq!(node.poll_event(), None);
}

// ----------------------------------------------------------------------------------------
// Lookups end-to-end

fn small_sim(seed: u64) -> Sim {
    let mut sim = Sim::new(SimConfig {
        nodes: 50,
        announces: 0,
        lookups: 0,
        loss_per_mille: 0,
        seed,
        ..SimConfig::default()
    });
    sim.bootstrap();
    sim
}

#[test]
fn lookups_across_a_small_network() {
    let mut sim = small_sim(3);
    let h = id(4242);
    let Some(Event::LookupDone { stored, .. }) =
        sim.run_lookup(3, |n, now| n.announce(now, h, Some(7000), false))
    else {
        panic!("announce did not finish");
    };
    assert!(stored >= 6, "announced to {stored}");
    let Some(Event::LookupDone { peers, target, .. }) =
        sim.run_lookup(17, |n, now| n.get_peers(now, h))
    else {
        panic!("get_peers did not finish");
    };
    assert_eq!(target, h);
    assert_eq!(peers, vec![SocketAddr::new(Sim::addr(3).ip(), 7000)]);
    // The info hash is stored on the nodes closest to it.
    let holders = sim
        .nodes()
        .iter()
        .filter(|n| n.peer_store().num_peers(&h) > 0)
        .count();
    assert_eq!(holders, stored);

    // BEP 44 immutable.
    let value = b"d4:name7:tesserae".to_vec();
    let mut target = None;
    let Some(Event::LookupDone { stored, .. }) = sim.run_lookup(5, |n, now| {
        let (lookup, t) = n.put_immutable(now, value.clone()).unwrap();
        target = Some(t);
        lookup
    }) else {
        panic!("put did not finish");
    };
    assert!(stored >= 6, "put to {stored}");
    let target = target.unwrap();
    assert_eq!(target, sha1(&value));
    let Some(Event::LookupDone { item, .. }) =
        sim.run_lookup(40, |n, now| n.get_immutable(now, target))
    else {
        panic!("get did not finish");
    };
    assert_eq!(
        item.as_deref(),
        Some(&FoundItem {
            value: value.clone(),
            mutable: None
        })
    );

    // BEP 44 mutable, then a newer version.
    let secret = [9; 32];
    for seq in [1, 2] {
        let item = MutableItem::sign(&secret, b"profile", seq, format!("i{seq}e").as_bytes());
        let key = item.key;
        let expected = item.clone();
        let Some(Event::LookupDone { stored, .. }) =
            sim.run_lookup(8, |n, now| n.put_mutable(now, item).unwrap().0)
        else {
            panic!("put did not finish");
        };
        assert!(stored >= 6, "put to {stored}");
        let Some(Event::LookupDone { item, .. }) = sim.run_lookup(30 + seq as usize, |n, now| {
            n.get_mutable(now, key, b"profile")
        }) else {
            panic!("get did not finish");
        };
        let item = item.expect("found");
        assert_eq!(item.value, expected.value);
        assert_eq!(item.mutable, Some(expected));
    }
    // An unknown item is not found.
    let Some(Event::LookupDone { item, .. }) =
        sim.run_lookup(41, |n, now| n.get_immutable(now, id(1)))
    else {
        panic!("get did not finish");
    };
    assert_eq!(item, None);
}

#[test]
fn save_and_load_keep_our_id_and_contacts() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    confirm(&mut node, t0, &contacts4(0..40));
    confirm(&mut node, t0, &contacts6(0..10));
    let saved = node.save();
    let (own, contacts) = Node::load(&saved).expect("loads");
    assert_eq!(own, id(0));
    let mut expected: Vec<Contact> = node
        .table()
        .contacts()
        .chain(node.table6().contacts())
        .collect();
    expected.sort_by_key(|c| c.id);
    let mut got = contacts.clone();
    got.sort_by_key(|c| c.id);
    assert_eq!(got, expected);
    assert!(contacts.iter().any(|c| c.addr.is_ipv6()));
    // A restarted node with that id pings them back into its table.
    let mut again = Node::new(
        NodeConfig {
            id: Some(own),
            ..config()
        },
        t0,
    );
    confirm(&mut again, t0, &contacts);
    assert_eq!(again.table().len() + again.table6().len(), contacts.len());
    // Damaged state is refused.
    assert_eq!(Node::load(&saved[..saved.len() - 1]), None);
    assert_eq!(Node::load(b"de"), None);
    assert_eq!(Node::load(b"d2:id3:abc5:nodes0:6:nodes60:e"), None);
}

// ----------------------------------------------------------------------------------------
// Determinism

#[test]
fn same_seed_same_run_different_seed_different_run() {
    let run = |seed| {
        format!(
            "{:?}",
            Sim::run(SimConfig {
                nodes: 60,
                announces: 6,
                lookups: 6,
                seed,
                ..SimConfig::default()
            })
        )
    };
    let a = run(11);
    assert_eq!(a, run(11));
    assert_ne!(a, run(12));
}

/// Two identical nodes fed the same inputs send the same datagrams in the same order, even
/// when several lookups time out at once.
#[test]
fn identical_nodes_behave_identically() {
    let script = || {
        let t0 = Instant::now();
        let mut node = Node::new(config(), t0);
        confirm(&mut node, t0, &contacts4(0..200));
        let mut log = Vec::new();
        for i in 0..8 {
            node.find_node(t0, id(100 + i));
        }
        log.extend(drain(&mut node));
        let mut now = t0;
        for _ in 0..10 {
            now += Duration::from_millis(700);
            node.handle_timeout(now);
            log.extend(drain(&mut node));
        }
        (log, node.stats())
    };
    let (a, sa) = script();
    assert!(a.len() > 24, "{}", a.len());
    for _ in 0..4 {
        let (b, sb) = script();
        assert_eq!(sa, sb);
        assert_eq!(a.len(), b.len());
        let first_difference = a.iter().zip(&b).position(|(x, y)| x != y);
        assert_eq!(first_difference, None);
    }
}

#[test]
fn one_responder_repeating_itself_does_not_set_our_external_address() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    let ours: SocketAddr = "198.51.100.77:6881".parse().unwrap();
    let ip = v4(0).ip();
    let mut answered = 0;
    for port in 0..8u16 {
        let from = SocketAddr::new(ip, 7000 + port);
        node.add_node(t0, from);
        let sent = drain(&mut node);
        let Some(t) = sent.iter().find(|t| t.to == from) else {
            continue;
        };
        let mut r = Message::response(decoded(t).tid, Response::new(id(u64::from(port) + 1)));
        r.ip = Some(ours);
        exchange(&mut node, t0, from, &r);
        answered += 1;
    }
    assert!(answered >= 5, "only {answered} queries to answer");
    assert_eq!(node.poll_event(), None, "one IP decided our address");
}

#[test]
fn queries_time_out_in_deadline_order_and_answers_clear_their_deadline() {
    let t0 = Instant::now();
    let mut node = Node::new(config(), t0);
    let timeout = NodeConfig::default().query_timeout;
    let step = Duration::from_millis(500);
    // Three pings, sent half a second apart.
    let sent: Vec<Message> = (1..=3u32)
        .map(|n| {
            let at = t0 + step * (n - 1);
            node.add_node(at, v4(n));
            let out = drain(&mut node);
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].to, v4(n));
            decoded(&out[0])
        })
        .collect();
    assert_eq!(node.in_flight(), 3);
    assert!(node.poll_timeout().unwrap() <= t0 + timeout);
    // The second one is answered: it will not time out.
    node.handle_datagram(
        t0 + step,
        v4(2),
        &Message::response(sent[1].tid.clone(), Response::new(id(2))).encode(),
    );
    assert_eq!(node.in_flight(), 2);
    // Just before the first deadline nothing expires; at it, the first query does.
    node.handle_timeout(t0 + timeout - Duration::from_millis(1));
    assert_eq!(node.in_flight(), 2);
    node.handle_timeout(t0 + timeout);
    assert_eq!(node.in_flight(), 1);
    assert_eq!(node.stats().timeouts, 1);
    assert!(node.poll_timeout().unwrap() <= t0 + step * 2 + timeout);
    // The answered one's deadline passes without a timeout; then the third expires.
    node.handle_timeout(t0 + step + timeout);
    assert_eq!((node.in_flight(), node.stats().timeouts), (1, 1));
    node.handle_timeout(t0 + step * 2 + timeout);
    assert_eq!((node.in_flight(), node.stats().timeouts), (0, 2));
    // No deadline of a finished query is left behind to wake the driver for nothing.
    assert!(node.poll_timeout().unwrap() > t0 + step * 2 + timeout);
}
