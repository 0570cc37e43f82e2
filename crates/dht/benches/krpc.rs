//! KRPC codec throughput: what a node does per datagram.
//!
//! * `decode get_peers` / `decode find_node`: a typical incoming query (2-byte transaction id,
//!   4-byte client version, BEP 32 `want`);
//! * `decode response 8 nodes`: a `get_peers` response with a token and 8 IPv4 nodes;
//! * `encode response 8 nodes`: building that response's datagram, into a fresh `Vec` and
//!   into a reused buffer (as a node with a send buffer would);
//! * `decode error reply`: a malformed query down to the error reply to send;
//! * two yardsticks for the machine the figures come from: copying the `get_peers` datagram
//!   into a new `Vec`, and decoding it into `tessera_bencode`'s generic tape.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use tessera_dht::krpc::{decode, Message, Query, Response, Want};
use tessera_dht::{Contact, Id};

fn id(seed: u8) -> Id {
    let mut b = [0; 20];
    for (i, x) in b.iter_mut().enumerate() {
        *x = seed.wrapping_mul(31).wrapping_add(i as u8 * 7);
    }
    Id(b)
}

fn with_version(mut m: Message) -> Message {
    m.version = Some(b"TS\x00\x01".to_vec());
    m
}

fn response() -> Message {
    let nodes = (0..8u8)
        .map(|i| Contact {
            id: id(i + 10),
            addr: ([10, 0, i, 1], 6881 + u16::from(i)).into(),
        })
        .collect();
    let mut m = with_version(Message::response(
        b"ab".to_vec(),
        Response {
            nodes,
            token: Some(b"\x01\x02\x03\x04\x05\x06\x07\x08".to_vec()),
            ..Response::new(id(1))
        },
    ));
    m.ip = Some(([192, 0, 2, 7], 51413).into());
    m
}

fn bench(c: &mut Criterion) {
    let get_peers = with_version(Message::query(
        b"ab".to_vec(),
        Query::GetPeers {
            id: id(1),
            info_hash: id(2),
            want: Some(Want::V4),
            noseed: false,
            scrape: false,
        },
    ))
    .encode();
    let find_node = with_version(Message::query(
        b"cd".to_vec(),
        Query::FindNode {
            id: id(3),
            target: id(4),
            want: None,
        },
    ))
    .encode();
    let response = response();
    let response_bytes = response.encode();

    let mut g = c.benchmark_group("krpc");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode get_peers", |b| {
        b.iter(|| decode(black_box(&get_peers)))
    });
    // Two yardsticks for the machine: copying the datagram into a new buffer, and building
    // the generic bencode tape of it.
    g.bench_function("reference: copy get_peers datagram", |b| {
        b.iter(|| black_box(&get_peers).clone())
    });
    let opts = tessera_bencode::DecodeOptions::lenient().with_max_depth(16);
    g.bench_function("reference: bencode tape of get_peers", |b| {
        b.iter(|| opts.decode(black_box(&get_peers)).map(|d| d.token_count()))
    });
    g.bench_function("decode find_node", |b| {
        b.iter(|| decode(black_box(&find_node)))
    });
    g.bench_function("decode response 8 nodes", |b| {
        b.iter(|| decode(black_box(&response_bytes)))
    });
    g.bench_function("encode response 8 nodes", |b| {
        b.iter(|| black_box(&response).encode())
    });
    let mut buf = Vec::with_capacity(1500);
    g.bench_function("encode_into response 8 nodes", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&response).encode_into(&mut buf);
            black_box(buf.len())
        })
    });
    let bad = b"d1:ad2:id20:abcdefghij0123456789e1:q9:get_peers1:t2:aa1:y1:qe";
    g.bench_function("decode error reply", |b| {
        b.iter(|| {
            decode(black_box(bad))
                .err()
                .and_then(|e| e.reply())
                .map(|m| m.encode())
        })
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
