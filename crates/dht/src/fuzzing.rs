//! Entry points for the fuzz targets in `fuzz/`: each takes arbitrary bytes and checks the
//! crate's invariants, panicking when one breaks (that is how a fuzzer learns about it). They
//! must never panic for any other reason, so every input is fair game.

// A failed assertion is this module's way of reporting a bug to the fuzzer.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::bep44::MutableItem;
use crate::id::Id;
use crate::krpc::{self, Body, Message, Query, Response};
use crate::node::{Event, Node, NodeConfig, MAX_ANSWER};

/// A datagram from the network: decode it as KRPC; if that succeeds, encode the message and
/// decode it again, which must give the same message, and the same bytes once more. The
/// encoding must be canonical bencode (when the BEP 44 value it carries verbatim is), and no
/// longer than [`krpc::MAX_DATAGRAM`]. If decoding fails, the error reply, when there is one,
/// must itself round-trip.
///
/// # Panics
/// When one of these invariants does not hold.
pub fn krpc_decode(data: &[u8]) {
    let decoded = krpc::decode(data);
    if data.len() <= krpc::MAX_DATAGRAM {
        let tape = tessera_bencode::DecodeOptions::lenient()
            .with_max_depth(krpc::MAX_DEPTH)
            .decode(data);
        let not_bencode = matches!(decoded, Err(krpc::KrpcError::NotBencode { .. }));
        assert_eq!(
            not_bencode,
            tape.is_err(),
            "bencode readers disagree: {decoded:?} / {:?}",
            tape.err()
        );
    }
    match decoded {
        Ok(msg) => {
            let bytes = msg.encode();
            let again = krpc::decode(&bytes)
                .unwrap_or_else(|e| panic!("re-encoded message does not decode: {e}"));
            assert_eq!(again, msg, "decode(encode(m)) != m");
            assert_eq!(again.encode(), bytes, "encoding is not stable");
            let mut appended = b"xy".to_vec();
            msg.encode_into(&mut appended);
            assert_eq!(appended.get(2..), Some(&bytes[..]), "encode_into != encode");
            if raw_value(&msg).is_none_or(|v| tessera_bencode::decode(v).is_ok()) {
                let doc = tessera_bencode::decode(&bytes);
                assert!(doc.is_ok(), "encoding is not canonical: {doc:?}");
            }
        }
        Err(err) => {
            let _ = err.to_string();
            let (code, _) = err.reply_code();
            if let Some(reply) = err.reply() {
                assert_eq!(Some(&reply.tid[..]), err.tid());
                assert!(matches!(reply.body, Body::Error { code: c, .. } if c == code));
                assert_eq!(krpc::decode(&reply.encode()), Ok(reply));
            }
        }
    }
}

fn raw_value(msg: &Message) -> Option<&[u8]> {
    match &msg.body {
        Body::Query(krpc::Query::Put { value, .. }) => Some(value),
        Body::Response(r) => r.value.as_deref(),
        _ => None,
    }
}

/// Most datagrams [`node_datagrams`] feeds one node.
const NODE_MAX_DATAGRAMS: usize = 64;
/// Transmit queue and in-flight bounds of the node [`node_datagrams`] runs.
const NODE_QUEUE: usize = 16;

/// Clock steps a [`node_datagrams`] control byte picks from.
const NODE_STEPS_MS: [u64; 8] = [0, 10, 100, 500, 1_000, 2_000, 5_000, 60_000];

/// The three contacts a [`node_datagrams`] node knows: (address, id).
fn node_contacts() -> [(SocketAddr, Id); 3] {
    let c = |i: u8| {
        (
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, i)), 6881),
            Id([i.wrapping_mul(0x51); 20]),
        )
    };
    [c(1), c(2), c(3)]
}

/// Datagrams from the network, fed to a node that knows a few contacts and has lookups
/// running (a `find_node`, an announce and a BEP 44 mutable `get`). `data` is a sequence of
/// frames, each a control byte, a big-endian 16-bit length and that many bytes (fewer at the
/// end) of datagram. The control byte's low three bits pick the sender: 0 to 2 the known
/// contacts, 3 an unknown IPv4 address, 4 the same IP on another port, 5 an IPv6 address,
/// 6 contact 0 as an IPv4-mapped IPv6 address, and 7 the destination of one of the last four
/// queries the node sent (bits 3 and 4 say which), with every `1:t2:xx` in the datagram
/// rewritten to carry that query's transaction id and every `2:id20:` followed by twenty `?`
/// rewritten to carry the id of that destination if it is known (one of the contacts, or a
/// node an earlier datagram listed), so that the fuzzer can complete the node's transactions. The mutable item looked up is
/// [`MutableItem::sign`]`(&[9; 32], b"salt", ..)`'s. The top three bits advance the clock (by 0 ms to 60 s) and, when they do,
/// [`Node::handle_timeout`] runs first. At most 64 frames are read.
///
/// The node must never panic; everything it sends must decode, its answers must fit in
/// [`MAX_ANSWER`] bytes, its transmit queue and queries in flight must stay within their
/// configured bounds (16 each), its memory within 1 MB, and its saved state must load back.
///
/// # Panics
/// When one of these invariants does not hold.
pub fn node_datagrams(data: &[u8]) {
    let t0 = Instant::now();
    let contacts = node_contacts();
    let mut node = Node::new(
        NodeConfig {
            id: Some(Id([0x80; 20])),
            seed: 5,
            max_in_flight: NODE_QUEUE,
            max_transmit_queue: NODE_QUEUE,
            max_lookups: 8,
            burst_per_ip: 40,
            ..NodeConfig::default()
        },
        t0,
    );
    // Learn the contacts: each is pinged and answers.
    for (addr, _) in &contacts {
        node.add_node(t0, *addr);
    }
    while let Some(t) = node.poll_transmit() {
        let msg = krpc::decode(&t.payload).expect("our ping decodes");
        if let Some((addr, id)) = contacts.iter().find(|(a, _)| *a == t.to) {
            let answer = Message::response(msg.tid, Response::new(*id)).encode();
            node.handle_datagram(t0, *addr, &answer);
        }
    }
    assert_eq!(node.table().len(), contacts.len());
    node.find_node(t0, Id([0x33; 20]));
    node.announce(t0, Id([0x44; 20]), Some(6881), false);
    let key = MutableItem::sign(&[9; 32], b"salt", 0, b"0:").key;
    node.get_mutable(t0, key, b"salt");

    let unknown = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)), 6881);
    let [(c0, _), (c1, _), (c2, _)] = contacts;
    let sources = [
        c0,
        c1,
        c2,
        unknown,
        SocketAddr::new(unknown.ip(), 1024),
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9)),
            6881,
        ),
        SocketAddr::new(
            IpAddr::V6(Ipv4Addr::new(203, 0, 113, 1).to_ipv6_mapped()),
            6881,
        ),
    ];
    // (destination, transaction id) of the queries the node sent, newest last.
    let mut sent: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    // Ids of the nodes we told the node about.
    let mut known: Vec<(SocketAddr, Id)> = contacts.to_vec();
    let mut now = t0;
    let check = |node: &mut Node, sent: &mut Vec<(SocketAddr, Vec<u8>)>| {
        let mut n = 0;
        while let Some(t) = node.poll_transmit() {
            n += 1;
            let msg = krpc::decode(&t.payload)
                .unwrap_or_else(|e| panic!("the node sent an undecodable datagram: {e}"));
            match &msg.body {
                Body::Query(_) => {
                    assert!(t.payload.len() <= krpc::MAX_DATAGRAM);
                    sent.push((t.to, msg.tid));
                    if sent.len() > 8 {
                        sent.remove(0);
                    }
                }
                Body::Response(_) | Body::Error { .. } => {
                    assert!(t.payload.len() <= MAX_ANSWER, "{} bytes", t.payload.len());
                }
            }
        }
        assert!(n <= NODE_QUEUE, "{n} datagrams queued");
        assert!(
            node.in_flight() <= NODE_QUEUE,
            "{} in flight",
            node.in_flight()
        );
        assert!(node.heap_bytes() <= 1 << 20, "{} bytes", node.heap_bytes());
        while let Some(e) = node.poll_event() {
            if let Event::LookupDone { closest, peers, .. } = e {
                assert!(closest.len() <= 8 && peers.len() <= 1000);
            }
        }
    };
    check(&mut node, &mut sent);

    let mut rest = data;
    for _ in 0..NODE_MAX_DATAGRAMS {
        let [control, hi, lo, tail @ ..] = rest else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (datagram, next) = tail.split_at(len);
        rest = next;
        let step = NODE_STEPS_MS
            .get(usize::from(control >> 5))
            .copied()
            .unwrap_or(0);
        if step > 0 {
            now += Duration::from_millis(step);
            node.handle_timeout(now);
            check(&mut node, &mut sent);
        }
        let (from, datagram) = match control & 7 {
            7 => {
                let pick = usize::from((control >> 3) & 3);
                match sent.len().checked_sub(pick + 1).and_then(|i| sent.get(i)) {
                    Some((to, tid)) => {
                        let id = known.iter().find(|(a, _)| a == to).map(|(_, id)| *id);
                        (*to, with_tid(datagram, tid, id))
                    }
                    None => (c0, datagram.to_vec()),
                }
            }
            i => (
                sources.get(usize::from(i)).copied().unwrap_or(unknown),
                datagram.to_vec(),
            ),
        };
        if let Ok(Message {
            body: Body::Response(r),
            ..
        }) = krpc::decode(&datagram)
        {
            for c in r.nodes.iter().chain(&r.nodes6) {
                if known.len() < 64 && !known.iter().any(|(a, _)| *a == c.addr) {
                    known.push((c.addr, c.id));
                }
            }
        }
        node.handle_datagram(now, from, &datagram);
        check(&mut node, &mut sent);
    }
    // Whatever happened, time can pass, and the state saves and loads.
    let later = now + Duration::from_secs(120);
    node.handle_timeout(later);
    check(&mut node, &mut sent);
    let (id, saved) = Node::load(&node.save()).expect("saved state loads");
    assert_eq!(id, node.id());
    assert_eq!(saved.len(), node.table().len() + node.table6().len());
    // A ping is still answered (by then the rate limit has refilled).
    let ping = Message::query(b"pp".to_vec(), Query::Ping { id: Id([1; 20]) }).encode();
    node.handle_datagram(later, unknown, &ping);
    let answered = std::iter::from_fn(|| node.poll_transmit()).any(|t| {
        t.to == unknown
            && krpc::decode(&t.payload)
                .is_ok_and(|m| m.tid == b"pp" && matches!(m.body, Body::Response(_)))
    });
    assert!(answered, "a ping after the run was not answered");
}

/// `datagram` with the two bytes after every `1:t2:` replaced by `tid` (when it is 2 bytes),
/// and every `2:id20:????????????????????` by `id` (when known).
fn with_tid(datagram: &[u8], tid: &[u8], id: Option<Id>) -> Vec<u8> {
    const ID_HOLE: &[u8; 27] = b"2:id20:????????????????????";
    let mut out = datagram.to_vec();
    let mut i = 0;
    while i < out.len() {
        if let (Some(window), [a, b]) = (out.get(i..i + 7), tid) {
            if window.starts_with(b"1:t2:") {
                if let Some(t) = out.get_mut(i + 5..i + 7) {
                    t.copy_from_slice(&[*a, *b]);
                }
                i += 7;
                continue;
            }
        }
        if let (Some(window), Some(id)) = (out.get(i..i + ID_HOLE.len()), id) {
            if window == ID_HOLE {
                if let Some(t) = out.get_mut(i + 7..i + ID_HOLE.len()) {
                    t.copy_from_slice(&id.0);
                }
                i += ID_HOLE.len();
                continue;
            }
        }
        i += 1;
    }
    out
}
