//! The KRPC codec: BEP 5's own examples, the extensions' messages, what is refused and what is
//! tolerated, and round-trip properties.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::SocketAddr;

use proptest::prelude::*;
use tessera_dht::krpc::{
    decode, Body, KrpcError, Message, Query, Response, Want, MAX_DATAGRAM, MAX_DEPTH,
    MAX_ERROR_MESSAGE, MAX_NODES, MAX_TID_LEN,
};
use tessera_dht::{Contact, Id};

const ABC: Id = Id(*b"abcdefghij0123456789");
const MNO: Id = Id(*b"mnopqrstuvwxyz123456");

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn tid() -> Vec<u8> {
    b"aa".to_vec()
}

/// Decodes `wire`, compares with `expected`, and checks that it re-encodes to `wire`.
fn vector(wire: &[u8], expected: &Message) {
    let got = decode(wire).unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(wire)));
    assert_eq!(&got, expected, "{}", String::from_utf8_lossy(wire));
    assert_eq!(
        String::from_utf8_lossy(&got.encode()),
        String::from_utf8_lossy(wire)
    );
    // Every strict prefix is refused.
    for cut in 0..wire.len() {
        assert!(decode(&wire[..cut]).is_err(), "prefix {cut} accepted");
    }
}

// ---- BEP 5 examples, byte for byte ----

#[test]
fn bep5_ping() {
    vector(
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
        &Message::query(tid(), Query::Ping { id: ABC }),
    );
    vector(
        b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
        &Message::response(tid(), Response::new(MNO)),
    );
}

#[test]
fn bep5_find_node() {
    vector(
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
        &Message::query(
            tid(),
            Query::FindNode {
                id: ABC,
                target: MNO,
                want: None,
            },
        ),
    );
    // BEP 5's response example has a placeholder ("def456...", 9 bytes) for the nodes: not a
    // multiple of 26, so refused, with the transaction id kept.
    let err =
        decode(b"d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e1:t2:aa1:y1:re").unwrap_err();
    assert_eq!(err.tid(), Some(&b"aa"[..]));
    assert!(!err.is_query());
    assert_eq!(err.reply(), None);
    // The same response with two real nodes.
    let wire = b"d1:rd2:id20:0123456789abcdefghij5:nodes52:\
        mnopqrstuvwxyz123456\x01\x02\x03\x04\x1a\xe1\
        abcdefghij0123456789\x7f\x00\x00\x01\x00\x50e1:t2:aa1:y1:re";
    vector(
        wire,
        &Message::response(
            tid(),
            Response {
                nodes: vec![
                    Contact {
                        id: MNO,
                        addr: addr("1.2.3.4:6881"),
                    },
                    Contact {
                        id: ABC,
                        addr: addr("127.0.0.1:80"),
                    },
                ],
                ..Response::new(Id(*b"0123456789abcdefghij"))
            },
        ),
    );
}

#[test]
fn bep5_get_peers() {
    vector(
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe",
        &Message::query(
            tid(),
            Query::GetPeers {
                id: ABC,
                info_hash: MNO,
                want: None,
                noseed: false,
                scrape: false,
            },
        ),
    );
    vector(
        b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
        &Message::response(
            tid(),
            Response {
                token: Some(b"aoeusnth".to_vec()),
                values: vec![addr("97.120.106.101:11893"), addr("105.100.104.116:28269")],
                ..Response::new(ABC)
            },
        ),
    );
    // The "closest nodes" example, again with the placeholder replaced by one real node.
    assert!(decode(
        b"d1:rd2:id20:abcdefghij01234567895:nodes9:def456...5:token8:aoeusnthe1:t2:aa1:y1:re"
    )
    .is_err());
    vector(
        b"d1:rd2:id20:abcdefghij01234567895:nodes26:mnopqrstuvwxyz123456\x0a\x00\x00\x01\x1a\xe15:token8:aoeusnthe1:t2:aa1:y1:re",
        &Message::response(
            tid(),
            Response {
                token: Some(b"aoeusnth".to_vec()),
                nodes: vec![Contact {
                    id: MNO,
                    addr: addr("10.0.0.1:6881"),
                }],
                ..Response::new(ABC)
            },
        ),
    );
}

#[test]
fn bep5_announce_peer() {
    vector(
        b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
        &Message::query(
            tid(),
            Query::AnnouncePeer {
                id: ABC,
                info_hash: MNO,
                port: 6881,
                implied_port: true,
                token: b"aoeusnth".to_vec(),
                seed: false,
            },
        ),
    );
}

#[test]
fn bep5_error() {
    // The BEP's spelling: "Ocurred", 23 bytes.
    vector(
        b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
        &Message::error(tid(), 201, "A Generic Error Ocurred"),
    );
}

// ---- Extensions ----

#[test]
fn bep32_ipv6() {
    vector(
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234564:wantl2:n42:n6ee1:q9:find_node1:t2:aa1:y1:qe",
        &Message::query(
            tid(),
            Query::FindNode {
                id: ABC,
                target: MNO,
                want: Some(Want::Both),
            },
        ),
    );
    let mut wire = b"d1:rd2:id20:abcdefghij01234567896:nodes638:mnopqrstuvwxyz123456".to_vec();
    wire.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    wire.extend_from_slice(b"\x1a\xe16:valuesl18:");
    wire.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    wire.extend_from_slice(b"\x00\x016:\x01\x02\x03\x04\x00\x02ee1:t2:aa1:y1:re");
    vector(
        &wire,
        &Message::response(
            tid(),
            Response {
                nodes6: vec![Contact {
                    id: MNO,
                    addr: addr("[2001:db8::1]:6881"),
                }],
                values: vec![addr("[fe80::2]:1"), addr("1.2.3.4:2")],
                ..Response::new(ABC)
            },
        ),
    );
    // `want` variants, and what reads as no `want`.
    for (list, want) in [
        (&b"l2:n4e"[..], Some(Want::V4)),
        (b"l2:n6e", Some(Want::V6)),
        (b"l2:n62:n4e", Some(Want::Both)),
        (b"l2:n62:n62:xxe", Some(Want::V6)),
        (b"le", None),
        (b"l2:n5i4ee", None),
        (b"2:n4", None),
    ] {
        let mut wire =
            b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234564:want".to_vec();
        wire.extend_from_slice(list);
        wire.extend_from_slice(b"e1:q9:find_node1:t2:aa1:y1:qe");
        let msg = decode(&wire).unwrap();
        assert!(
            matches!(msg.body, Body::Query(Query::FindNode { want: w, .. }) if w == want),
            "{list:?}"
        );
    }
    assert!(Want::Both.v4() && Want::Both.v6() && Want::V4.v4() && !Want::V4.v6());
}

#[test]
fn bep33_scrape() {
    vector(
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234566:noseedi1e6:scrapei1ee1:q9:get_peers1:t2:aa1:y1:qe",
        &Message::query(
            tid(),
            Query::GetPeers {
                id: ABC,
                info_hash: MNO,
                want: None,
                noseed: true,
                scrape: true,
            },
        ),
    );
    let mut wire = b"d1:rd4:BFpe256:".to_vec();
    wire.extend_from_slice(&[0xaa; 256]);
    wire.extend_from_slice(b"4:BFsd256:");
    wire.extend_from_slice(&[0x55; 256]);
    wire.extend_from_slice(b"2:id20:abcdefghij01234567895:token2:tke1:t2:aa1:y1:re");
    vector(
        &wire,
        &Message::response(
            tid(),
            Response {
                bloom_peers: Some(Box::new([0xaa; 256])),
                bloom_seeds: Some(Box::new([0x55; 256])),
                token: Some(b"tk".to_vec()),
                ..Response::new(ABC)
            },
        ),
    );
    // A bloom filter of the wrong size is refused.
    assert!(decode(b"d1:rd4:BFsd3:abc2:id20:abcdefghij0123456789e1:t2:aa1:y1:re").is_err());
}

#[test]
fn bep42_bep43_and_version() {
    let mut m = Message::response(tid(), Response::new(MNO));
    m.ip = Some(addr("1.2.3.4:6881"));
    m.version = Some(b"LT\x01\x02".to_vec());
    vector(
        b"d2:ip6:\x01\x02\x03\x04\x1a\xe11:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:v4:LT\x01\x021:y1:re",
        &m,
    );
    let mut q = Message::query(b"\x00\x01\x02\x03".to_vec(), Query::Ping { id: ABC });
    q.read_only = true;
    q.ip = Some(addr("[::1]:1"));
    let wire = q.encode();
    assert!(wire.windows(7).any(|w| w == b"2:roi1e"));
    vector(&wire, &q);
    // Sloppy values are dropped: `ip` of the wrong length, an over-long `v`, `ro` not an int.
    let m = decode(
        b"d2:ip3:abc1:rd2:id20:mnopqrstuvwxyz123456e2:ro1:x1:t2:aa1:v17:abcdefghijklmnopq1:y1:re",
    )
    .unwrap();
    assert_eq!(
        (m.ip, m.version, m.read_only),
        (None, None, false),
        "sloppy top-level keys ignored"
    );
}

const PUBKEY: [u8; 32] = [
    0x77, 0xff, 0x84, 0x90, 0x5a, 0x91, 0x93, 0x63, 0x67, 0xc0, 0x13, 0x60, 0x80, 0x31, 0x04, 0xf9,
    0x24, 0x32, 0xfc, 0xd9, 0x04, 0xa4, 0x35, 0x11, 0x87, 0x6d, 0xf5, 0xcd, 0xf3, 0xe7, 0xe5, 0x48,
];

#[test]
fn bep44_get_put() {
    let target = Id([0x5a; 20]);
    vector(
        b"d1:ad2:id20:abcdefghij01234567893:seqi4e6:target20:ZZZZZZZZZZZZZZZZZZZZe1:q3:get1:t2:aa1:y1:qe",
        &Message::query(
            tid(),
            Query::Get {
                id: ABC,
                target,
                seq: Some(4),
                want: None,
            },
        ),
    );
    // Immutable put: the value is kept byte for byte.
    vector(
        b"d1:ad2:id20:abcdefghij01234567895:token2:tk1:v12:Hello World!e1:q3:put1:t2:aa1:y1:qe",
        &Message::query(
            tid(),
            Query::Put {
                id: ABC,
                token: b"tk".to_vec(),
                value: b"12:Hello World!".to_vec(),
                key: None,
                signature: None,
                salt: None,
                seq: None,
                cas: None,
            },
        ),
    );
    // Mutable put with every field.
    let put = Message::query(
        tid(),
        Query::Put {
            id: ABC,
            token: b"tk".to_vec(),
            value: b"d1:ai1e1:bl3:xyzee".to_vec(),
            key: Some(PUBKEY),
            signature: Some([0x30; 64]),
            salt: Some(b"foobar".to_vec()),
            seq: Some(1),
            cas: Some(0),
        },
    );
    let wire = put.encode();
    let mut expected = b"d1:ad3:casi0e2:id20:abcdefghij01234567891:k32:".to_vec();
    expected.extend_from_slice(&PUBKEY);
    expected.extend_from_slice(b"4:salt6:foobar3:seqi1e3:sig64:");
    expected.extend_from_slice(&[0x30; 64]);
    expected.extend_from_slice(b"5:token2:tk1:vd1:ai1e1:bl3:xyzeee1:q3:put1:t2:aa1:y1:qe");
    assert_eq!(wire, expected);
    vector(&wire, &put);
    // A non-canonical value (unsorted keys, leading zero) is kept exactly as sent.
    let wire =
        b"d1:ad2:id20:abcdefghij01234567895:token2:tk1:vd1:bi01e1:ai1eee1:q3:put1:t2:aa1:y1:qe";
    let m = decode(wire).unwrap();
    assert!(
        matches!(&m.body, Body::Query(Query::Put { value, .. }) if value == b"d1:bi01e1:ai1ee")
    );
    assert_eq!(m.encode(), wire);
    // A get response for a mutable item.
    let resp = Message::response(
        tid(),
        Response {
            token: Some(b"tok".to_vec()),
            value: Some(b"12:Hello World!".to_vec()),
            key: Some(PUBKEY),
            signature: Some([7; 64]),
            seq: Some(1),
            nodes: vec![Contact {
                id: MNO,
                addr: addr("8.8.8.8:53"),
            }],
            ..Response::new(ABC)
        },
    );
    vector(&resp.encode(), &resp);
}

#[test]
fn bep44_limits() {
    let put = |v: &[u8], salt: &[u8]| {
        let mut w = b"d1:ad2:id20:abcdefghij01234567894:salt".to_vec();
        w.extend_from_slice(format!("{}:", salt.len()).as_bytes());
        w.extend_from_slice(salt);
        w.extend_from_slice(b"5:token2:tk1:v");
        w.extend_from_slice(v);
        w.extend_from_slice(b"e1:q3:put1:t2:aa1:y1:qe");
        decode(&w)
    };
    let value = |n: usize| {
        let mut v = format!("{}:", n - if n > 1003 { 5 } else { 4 }).into_bytes();
        v.resize(n, b'x');
        v
    };
    assert_eq!(value(1000).len(), 1000);
    assert!(put(&value(1000), b"").is_ok());
    let err = put(&value(1001), b"").unwrap_err();
    assert_eq!(err.reply_code(), (205, "message (v field) too big"));
    assert!(put(b"i1e", &[b's'; 64]).is_ok());
    let err = put(b"i1e", &[b's'; 65]).unwrap_err();
    assert_eq!(err.reply_code(), (207, "salt (salt field) too big"));
    let reply = err.reply().unwrap();
    assert_eq!(reply.tid, b"aa");
    assert_eq!(
        reply.encode(),
        b"d1:eli207e25:salt (salt field) too bige1:t2:aa1:y1:ee"
    );
    // Wrong lengths of k and sig, wrong types of seq and cas.
    for bad in [&b"1:k3:abc"[..], b"3:sig3:abc", b"3:seq1:1", b"3:casle"] {
        let mut w = b"d1:ad".to_vec();
        w.extend_from_slice(bad);
        w.extend_from_slice(b"2:id20:abcdefghij01234567895:token2:tk1:vi1ee1:q3:put1:t2:aa1:y1:qe");
        let err = decode(&w).unwrap_err();
        assert_eq!(err.reply_code().0, 203, "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn bep51_sample_infohashes() {
    vector(
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q17:sample_infohashes1:t2:aa1:y1:qe",
        &Message::query(
            tid(),
            Query::SampleInfohashes {
                id: ABC,
                target: MNO,
                want: None,
            },
        ),
    );
    vector(
        b"d1:rd2:id20:abcdefghij01234567898:intervali21600e3:numi1234e7:samples40:abcdefghij0123456789mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
        &Message::response(
            tid(),
            Response {
                interval: Some(21600),
                num: Some(1234),
                samples: vec![ABC, MNO],
                ..Response::new(ABC)
            },
        ),
    );
    assert!(decode(b"d1:rd2:id20:abcdefghij01234567897:samples3:abce1:t2:aa1:y1:re").is_err());
}

// ---- Leniency and refusals ----

#[test]
fn unknown_methods() {
    // BEP 5: unknown methods are kept, with a target if there is one.
    vector(
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q4:vote1:t2:aa1:y1:qe",
        &Message::query(
            tid(),
            Query::Other {
                method: b"vote".to_vec(),
                id: ABC,
                target: Some(MNO),
                info_hash: None,
            },
        ),
    );
    // A malformed target of an unknown method is dropped, not refused.
    let m = decode(b"d1:ad2:id20:abcdefghij01234567899:info_hash2:xx6:target20:mnopqrstuvwxyz123456e1:q4:vote1:t2:aa1:y1:qe").unwrap();
    assert!(
        matches!(&m.body, Body::Query(Query::Other { target: Some(t), info_hash: None, .. }) if *t == MNO)
    );
    // A method name too long to keep: 204.
    let err = decode(
        b"d1:ad2:id20:abcdefghij0123456789e1:q33:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx1:t2:aa1:y1:qe",
    )
    .unwrap_err();
    assert!(matches!(err, KrpcError::UnknownMethod { .. }));
    assert_eq!(err.reply_code(), (204, "method unknown"));
    assert_eq!(
        err.reply().unwrap(),
        Message::error(tid(), 204, "method unknown")
    );
}

#[test]
fn unknown_keys_unsorted_keys_duplicates_and_trailing_bytes() {
    let ping = Message::query(tid(), Query::Ping { id: ABC });
    for wire in [
        // Unknown keys at both levels.
        &b"d1:ad2:id20:abcdefghij01234567895:extrali1eee1:q4:ping1:t2:aa1:xi3e1:y1:qe"[..],
        // Unsorted keys.
        b"d1:y1:q1:t2:aa1:q4:ping1:ad2:id20:abcdefghij0123456789ee",
        // Duplicates: the first counts.
        b"d1:ad2:id20:abcdefghij01234567892:id20:mnopqrstuvwxyz123456e1:q4:ping1:t2:aa1:t2:bb1:y1:qe",
        // Trailing bytes after the message.
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe\n\x00",
        // Leading zeros.
        b"d1:ad2:id020:abcdefghij0123456789e1:q4:ping1:t02:aa1:y1:qe",
    ] {
        assert_eq!(decode(wire), Ok(ping.clone()), "{}", String::from_utf8_lossy(wire));
    }
    // Flags are true for any non-zero integer, false for anything else.
    let m = decode(b"d1:ad2:id20:abcdefghij01234567896:noseedi7e6:scrape1:19:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe").unwrap();
    assert!(matches!(
        m.body,
        Body::Query(Query::GetPeers {
            noseed: true,
            scrape: false,
            ..
        })
    ));
}

#[test]
fn values_entries_of_the_wrong_length_are_skipped() {
    let m = decode(b"d1:rd2:id20:abcdefghij01234567896:valuesl6:axje.u5:short6:idhtnmi5ele18:aaaaaaaaaaaaaaaaaaee1:t2:aa1:y1:re").unwrap();
    let Body::Response(r) = m.body else { panic!() };
    assert_eq!(r.values.len(), 3);
    assert_eq!(r.values[0], addr("97.120.106.101:11893"));
    // `values` that is not a list is refused.
    assert!(decode(b"d1:rd2:id20:abcdefghij01234567896:values6:axje.ue1:t2:aa1:y1:re").is_err());
}

#[test]
fn announce_port() {
    let announce = |args: &[u8]| {
        let mut w = b"d1:ad2:id20:abcdefghij0123456789".to_vec();
        w.extend_from_slice(args);
        w.extend_from_slice(
            b"9:info_hash20:mnopqrstuvwxyz1234565:token1:te1:q13:announce_peer1:t2:aa1:y1:qe",
        );
        decode(&w)
    };
    let port = |r: Result<Message, KrpcError>| match r.unwrap().body {
        Body::Query(Query::AnnouncePeer {
            port,
            implied_port,
            seed,
            ..
        }) => (port, implied_port, seed),
        other => panic!("{other:?}"),
    };
    assert_eq!(port(announce(b"4:porti1e")), (1, false, false));
    assert_eq!(
        port(announce(b"4:porti65535e4:seedi1e")),
        (65535, false, true)
    );
    assert_eq!(
        port(announce(b"12:implied_porti1e4:porti70000e")),
        (0, true, false)
    );
    assert!(announce(b"4:porti70000e").is_err());
    assert!(announce(b"4:porti-1e").is_err());
    assert!(announce(b"").is_err());
    assert!(announce(b"12:implied_porti1e").is_err());
}

#[test]
fn refusals_keep_what_a_reply_needs() {
    struct Case(&'static [u8], Option<&'static [u8]>, bool);
    for Case(wire, tid, query) in [
        // Not a dictionary, no `t`, `t` too long or not a string.
        Case(b"le", None, false),
        Case(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:y1:qe", None, true),
        Case(
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t17:aaaaaaaaaaaaaaaaa1:y1:qe",
            None,
            true,
        ),
        Case(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:ti1e1:y1:qe", None, true),
        // Missing or unknown `y`.
        Case(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aae", Some(b"aa"), false),
        Case(b"d1:t2:aa1:y1:xe", Some(b"aa"), false),
        // Queries: no `q`, no `a`, bad `id`, missing target or info_hash, bad token.
        Case(b"d1:ad2:id20:abcdefghij0123456789e1:t2:aa1:y1:qe", Some(b"aa"), true),
        Case(b"d1:q4:ping1:t2:aa1:y1:qe", Some(b"aa"), true),
        Case(b"d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t2:aa1:y1:qe", Some(b"aa"), true),
        Case(b"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:aa1:y1:qe", Some(b"aa"), true),
        Case(b"d1:ad2:id20:abcdefghij01234567896:target2:xxe1:q9:find_node1:t2:aa1:y1:qe", Some(b"aa"), true),
        Case(b"d1:ad2:id20:abcdefghij0123456789e1:q9:get_peers1:t2:aa1:y1:qe", Some(b"aa"), true),
        Case(b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti1e5:tokeni1ee1:q13:announce_peer1:t2:aa1:y1:qe", Some(b"aa"), true),
        // Responses: no `r`, no `id`, nodes not a multiple of 26 or 38 or not a string.
        Case(b"d1:t2:aa1:y1:re", Some(b"aa"), false),
        Case(b"d1:rde1:t2:aa1:y1:re", Some(b"aa"), false),
        Case(b"d1:rd2:id20:abcdefghij01234567895:nodes27:mnopqrstuvwxyz123456\x01\x02\x03\x04\x1a\xe1xe1:t2:aa1:y1:re", Some(b"aa"), false),
        Case(b"d1:rd2:id20:abcdefghij01234567896:nodes626:mnopqrstuvwxyz123456\x01\x02\x03\x04\x1a\xe1e1:t2:aa1:y1:re", Some(b"aa"), false),
        Case(b"d1:rd2:id20:abcdefghij01234567895:nodesi0ee1:t2:aa1:y1:re", Some(b"aa"), false),
        Case(b"d1:rd2:id20:abcdefghij01234567895:token4:abcd1:k1:xe1:t2:aa1:y1:re", Some(b"aa"), false),
        // Errors: no `e`, no code.
        Case(b"d1:t2:aa1:y1:ee", Some(b"aa"), false),
        Case(b"d1:el3:abce1:t2:aa1:y1:ee", Some(b"aa"), false),
    ] {
        let err = decode(wire).unwrap_err();
        let what = String::from_utf8_lossy(wire);
        assert_eq!(err.tid(), tid, "{what}");
        assert_eq!(err.is_query(), query, "{what}");
        assert_eq!(err.reply_code(), (203, "protocol error"), "{what}");
        assert_eq!(err.reply().is_some(), query && tid.is_some(), "{what}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn size_and_nesting_limits() {
    // Too long, even if well-formed.
    let mut big = b"d1:rd2:id20:abcdefghij01234567895:token".to_vec();
    big.extend_from_slice(format!("{}:", MAX_DATAGRAM).as_bytes());
    big.resize(big.len() + MAX_DATAGRAM, b'x');
    big.extend_from_slice(b"e1:t2:aa1:y1:re");
    assert!(matches!(decode(&big), Err(KrpcError::Oversized { .. })));
    assert_eq!(decode(&big).unwrap_err().reply(), None);
    assert!(matches!(decode(b""), Err(KrpcError::NotBencode { .. })));
    // Deep nesting in an ignored key is still refused.
    let mut deep = b"d1:ad2:id20:abcdefghij01234567891:x".to_vec();
    deep.extend(std::iter::repeat_n(b'l', 20));
    deep.extend(std::iter::repeat_n(b'e', 20));
    deep.extend_from_slice(b"e1:q4:ping1:t2:aa1:y1:qe");
    assert!(matches!(decode(&deep), Err(KrpcError::NotBencode { .. })));
    // Exactly MAX_DEPTH levels (the message is level 1) are accepted, one more is not.
    for (lists, ok) in [(MAX_DEPTH - 1, true), (MAX_DEPTH, false)] {
        let mut w = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:x".to_vec();
        w.extend(std::iter::repeat_n(b'l', lists));
        w.extend(std::iter::repeat_n(b'e', lists));
        w.extend_from_slice(b"1:y1:qe");
        assert_eq!(decode(&w).is_ok(), ok, "{lists}");
        tessera_dht::fuzzing::krpc_decode(&w);
    }
    // Syntax errors inside ignored keys are still errors.
    for bad in [
        &b"i1x2e"[..],
        b"i-e",
        b"ie",
        b"i99999999999999999999e",
        b"d1:ae",
        b"di1ei2ee",
        b"3:ab",
        b"x",
    ] {
        let mut w = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:x".to_vec();
        w.extend_from_slice(bad);
        w.extend_from_slice(b"1:y1:qe");
        assert!(
            matches!(decode(&w), Err(KrpcError::NotBencode { .. })),
            "{}",
            String::from_utf8_lossy(bad)
        );
        tessera_dht::fuzzing::krpc_decode(&w);
    }
    // More nodes than MAX_NODES.
    let mut many = b"d1:rd2:id20:abcdefghij01234567895:nodes".to_vec();
    let n = MAX_NODES + 1;
    many.extend_from_slice(format!("{}:", n * 26).as_bytes());
    many.resize(many.len() + n * 26, 1);
    many.extend_from_slice(b"e1:t2:aa1:y1:re");
    assert!(many.len() <= MAX_DATAGRAM);
    assert!(matches!(decode(&many), Err(KrpcError::Malformed { .. })));
    // The longest transaction id.
    let t = vec![b'z'; MAX_TID_LEN];
    let m = Message::query(t.clone(), Query::Ping { id: ABC });
    assert_eq!(decode(&m.encode()).unwrap().tid, t);
}

#[test]
fn error_messages() {
    // Not UTF-8: replaced. Missing: empty. Too long: cut at a character boundary.
    let m = decode(b"d1:eli202e3:a\xffbe1:t2:aa1:y1:ee").unwrap();
    assert_eq!(
        m.body,
        Body::Error {
            code: 202,
            message: "a\u{fffd}b".into()
        }
    );
    let m = decode(b"d1:eli-5ee1:t0:1:y1:ee").unwrap();
    assert_eq!(
        m.body,
        Body::Error {
            code: -5,
            message: String::new()
        }
    );
    assert_eq!(m.encode(), b"d1:eli-5e0:e1:t0:1:y1:ee");
    let mut w = b"d1:eli201e300:".to_vec();
    w.extend(std::iter::repeat_n(0xff, 300));
    w.extend_from_slice(b"e1:t2:aa1:y1:ee");
    let Body::Error { message, .. } = decode(&w).unwrap().body else {
        panic!()
    };
    assert!(message.len() <= MAX_ERROR_MESSAGE && message.len() > MAX_ERROR_MESSAGE - 3);
    assert!(message.chars().all(|c| c == '\u{fffd}'));
}

#[test]
fn encoding_skips_contacts_of_the_wrong_family() {
    let v4 = Contact {
        id: ABC,
        addr: addr("1.2.3.4:5"),
    };
    let v6 = Contact {
        id: MNO,
        addr: addr("[::2]:5"),
    };
    let m = Message::response(
        tid(),
        Response {
            nodes: vec![v4, v6],
            nodes6: vec![v4, v6],
            ..Response::new(ABC)
        },
    );
    let Body::Response(r) = decode(&m.encode()).unwrap().body else {
        panic!()
    };
    assert_eq!((r.nodes, r.nodes6), (vec![v4], vec![v6]));
}

#[test]
fn query_accessors() {
    let q = Query::Other {
        method: b"x".to_vec(),
        id: MNO,
        target: None,
        info_hash: None,
    };
    assert_eq!((q.id(), q.method()), (MNO, &b"x"[..]));
    assert_eq!(Query::Ping { id: ABC }.method(), b"ping");
    let mut out = b"prefix".to_vec();
    let m = Message::query(tid(), q);
    m.encode_into(&mut out);
    assert_eq!(&out[6..], &m.encode()[..]);
}

// ---- Properties ----

fn id() -> impl Strategy<Value = Id> {
    any::<[u8; 20]>().prop_map(Id)
}

fn sock_v4() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)))
}

fn sock_v6() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)))
}

fn sock() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![sock_v4(), sock_v6()]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

fn want() -> impl Strategy<Value = Option<Want>> {
    prop::option::of(prop_oneof![
        Just(Want::V4),
        Just(Want::V6),
        Just(Want::Both)
    ])
}

/// A bencoded value, canonical or not (BEP 44 `v` is kept as sent).
fn bencoded() -> impl Strategy<Value = Vec<u8>> {
    use tessera_bencode::{Encode, Value};
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Int),
        bytes(20).prop_map(Value::Bytes),
    ];
    let value = leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
            prop::collection::btree_map(bytes(6), inner, 0..4).prop_map(Value::Dict),
        ]
    });
    prop_oneof![
        value.prop_map(|v| v.to_bencode()),
        Just(b"d1:bi1e1:ai01ee".to_vec()),
    ]
}

fn method() -> impl Strategy<Value = Vec<u8>> {
    bytes(32).prop_filter("a known method", |m| {
        !matches!(
            &m[..],
            b"ping"
                | b"find_node"
                | b"get_peers"
                | b"announce_peer"
                | b"get"
                | b"put"
                | b"sample_infohashes"
        )
    })
}

fn query() -> impl Strategy<Value = Query> {
    prop_oneof![
        id().prop_map(|id| Query::Ping { id }),
        (id(), id(), want()).prop_map(|(id, target, want)| Query::FindNode { id, target, want }),
        (id(), id(), want(), any::<bool>(), any::<bool>()).prop_map(
            |(id, info_hash, want, noseed, scrape)| Query::GetPeers {
                id,
                info_hash,
                want,
                noseed,
                scrape
            }
        ),
        (
            id(),
            id(),
            any::<u16>(),
            any::<bool>(),
            bytes(64),
            any::<bool>()
        )
            .prop_map(|(id, info_hash, port, implied_port, token, seed)| {
                Query::AnnouncePeer {
                    id,
                    info_hash,
                    port,
                    implied_port,
                    token,
                    seed,
                }
            }),
        (id(), id(), any::<Option<i64>>(), want()).prop_map(|(id, target, seq, want)| {
            Query::Get {
                id,
                target,
                seq,
                want,
            }
        }),
        (
            id(),
            bytes(64),
            bencoded(),
            any::<Option<[u8; 32]>>(),
            prop::option::of(any::<[u8; 32]>().prop_map(|h| {
                let mut s = [0; 64];
                s[..32].copy_from_slice(&h);
                s[32..].copy_from_slice(&h);
                s
            })),
            prop::option::of(bytes(64)),
            any::<(Option<i64>, Option<i64>)>()
        )
            .prop_map(|(id, token, value, key, signature, salt, (seq, cas))| {
                Query::Put {
                    id,
                    token,
                    value,
                    key,
                    signature,
                    salt,
                    seq,
                    cas,
                }
            }),
        (id(), id(), want()).prop_map(|(id, target, want)| Query::SampleInfohashes {
            id,
            target,
            want
        }),
        (
            method(),
            id(),
            prop::option::of(id()),
            prop::option::of(id())
        )
            .prop_map(|(method, id, target, info_hash)| Query::Other {
                method,
                id,
                target,
                info_hash
            }),
    ]
}

fn contacts(addr: impl Strategy<Value = SocketAddr>) -> impl Strategy<Value = Vec<Contact>> {
    prop::collection::vec(
        (id(), addr).prop_map(|(id, addr)| Contact { id, addr }),
        0..=8,
    )
}

fn response() -> impl Strategy<Value = Response> {
    (
        (
            id(),
            contacts(sock_v4()),
            contacts(sock_v6()),
            prop::collection::vec(sock(), 0..=10),
            prop::option::of(bytes(64)),
        ),
        (
            prop::option::of(bencoded()),
            any::<Option<[u8; 32]>>(),
            prop::option::of(Just([9u8; 64])),
            any::<Option<i64>>(),
            prop::collection::vec(id(), 0..=10),
        ),
        (
            any::<Option<i64>>(),
            any::<Option<i64>>(),
            prop::option::of(any::<u8>().prop_map(|b| Box::new([b; 256]))),
            prop::option::of(any::<u8>().prop_map(|b| Box::new([b; 256]))),
        ),
    )
        .prop_map(
            |(
                (id, nodes, nodes6, values, token),
                (value, key, signature, seq, samples),
                (interval, num, bloom_seeds, bloom_peers),
            )| Response {
                id,
                nodes,
                nodes6,
                values,
                token,
                value,
                key,
                signature,
                seq,
                samples,
                interval,
                num,
                bloom_seeds,
                bloom_peers,
            },
        )
}

fn message() -> impl Strategy<Value = Message> {
    let body = prop_oneof![
        query().prop_map(Body::Query),
        response().prop_map(Body::Response),
        (any::<i64>(), "\\PC{0,60}").prop_map(|(code, message)| Body::Error { code, message }),
    ];
    (
        bytes(MAX_TID_LEN),
        prop::option::of(bytes(16)),
        prop::option::of(sock()),
        any::<bool>(),
        body,
    )
        .prop_map(|(tid, version, ip, read_only, body)| Message {
            tid,
            version,
            ip,
            read_only,
            body,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn messages_roundtrip(m in message()) {
        let bytes = m.encode();
        prop_assert!(bytes.len() <= MAX_DATAGRAM, "{} bytes", bytes.len());
        prop_assert_eq!(decode(&bytes), Ok(m.clone()));
        // Canonical bencode, unless it carries a non-canonical BEP 44 value verbatim.
        let raw = match &m.body {
            Body::Query(Query::Put { value, .. }) => Some(value.clone()),
            Body::Response(r) => r.value.clone(),
            _ => None,
        };
        if raw.is_none_or(|v| tessera_bencode::decode(&v).is_ok()) {
            prop_assert!(tessera_bencode::decode(&bytes).is_ok());
        }
        tessera_dht::fuzzing::krpc_decode(&bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in bytes(300)) {
        tessera_dht::fuzzing::krpc_decode(&data);
    }

    #[test]
    fn mutated_messages_never_panic(
        m in message(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = m.encode();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        tessera_dht::fuzzing::krpc_decode(&bytes);
        let n = cut.index(bytes.len());
        tessera_dht::fuzzing::krpc_decode(&bytes[..n]);
    }
}

/// Any bencode value, as a candidate datagram.
fn any_bencode() -> impl Strategy<Value = Vec<u8>> {
    use tessera_bencode::{Encode, Value};
    let key = prop_oneof![
        Just(b"a".to_vec()),
        Just(b"r".to_vec()),
        Just(b"t".to_vec()),
        Just(b"y".to_vec()),
        Just(b"id".to_vec()),
        Just(b"nodes".to_vec()),
        Just(b"values".to_vec()),
        bytes(3),
    ];
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Int),
        prop_oneof![
            Just(b"q".to_vec()),
            Just(b"r".to_vec()),
            Just(vec![7; 20]),
            bytes(30)
        ]
        .prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(20, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            prop::collection::btree_map(key.clone(), inner, 0..6).prop_map(Value::Dict),
        ]
    })
    .prop_map(|v| v.to_bencode())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Deep, shaped-like-KRPC bencode: the codec's reader agrees with `tessera_bencode` (checked
    /// inside `krpc_decode`), on the value and on every prefix.
    #[test]
    fn bencode_inputs(data in any_bencode(), cut in any::<prop::sample::Index>()) {
        tessera_dht::fuzzing::krpc_decode(&data);
        tessera_dht::fuzzing::krpc_decode(&data[..cut.index(data.len())]);
    }
}
