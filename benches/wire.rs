//! Peer wire decoding: tessera-wire against librqbit-peer-protocol, on the same byte streams in
//! one run.
//!
//! Inputs are generated deterministically:
//! * `small`: 200,000 small messages, a mix of have, request, cancel, interested, not
//!   interested, choke, unchoke and keep-alive (about 2 MB);
//! * `piece 16 KiB`: 512 piece messages carrying 16 KiB blocks (about 8 MiB).
//!
//! Each sample decodes the whole stream from a receive buffer that already holds it (the copy
//! into the buffer is not timed: a driver's socket read does it for every decoder). The
//! contenders:
//! * `tessera borrowed`: `MessageDecoder::decode_slice`, messages borrowing from the buffer;
//! * `tessera owned`: `MessageDecoder::decode`, messages owning their payload as `Bytes` split
//!   off the buffer (no copy);
//! * `librqbit-peer-protocol`: `Message::deserialize`, messages borrowing from the buffer.
//!
//! Every contender fully decodes every message: it reads every field and payload length of each
//! message into a checksum, and `black_box`es each message and the checksum. The borrowing
//! decoders drop the consumed bytes from the buffer once at the end, as a driver would after a
//! batch. A memcpy of the same stream is timed as a reference.
//!
//! After criterion has run, a table of medians from a plain timing loop in this process gives
//! rates and ratios (librqbit time / this decoder's time: above 1 is faster than librqbit), so
//! the comparison is printed even for `cargo bench --bench wire -- --quick`. A filter that
//! names no benchmark skips criterion and prints only the table:
//! `cargo bench --bench wire -- table`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput};
use tessera::wire::{BlockRequest, Message, MessageDecoder, MessageRef};

/// A small deterministic generator (xorshift64*), so inputs are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
}

/// The small-message stream and its message count.
fn small_stream(count: usize) -> (Vec<u8>, usize) {
    let mut rng = Rng(0x7E55_E4A5);
    let mut buf = BytesMut::new();
    for _ in 0..count {
        let block = BlockRequest {
            index: rng.below(4000),
            begin: rng.below(16) * 16384,
            length: 16384,
        };
        let msg = match rng.below(16) {
            0..=5 => Message::Have {
                piece: rng.below(4000),
            },
            6..=10 => Message::Request(block),
            11 => Message::Cancel(block),
            12 => Message::Interested,
            13 => Message::NotInterested,
            14 => {
                if rng.below(2) == 0 {
                    Message::Choke
                } else {
                    Message::Unchoke
                }
            }
            _ => Message::KeepAlive,
        };
        msg.encode(&mut buf);
    }
    (buf.to_vec(), count)
}

/// The piece stream and its message count.
fn piece_stream(count: usize) -> (Vec<u8>, usize) {
    let mut rng = Rng(0xB10C);
    let mut buf = BytesMut::new();
    for i in 0..count {
        let data: Vec<u8> = (0..16384 / 8)
            .flat_map(|_| rng.next().to_le_bytes())
            .collect();
        Message::Piece {
            index: (i / 16) as u32,
            begin: (i % 16) as u32 * 16384,
            data: Bytes::from(data),
        }
        .encode(&mut buf);
    }
    (buf.to_vec(), count)
}

/// A contender: decodes every message of a full receive buffer and returns how many it got
/// plus the payload bytes it saw, so nothing is optimised away and counts can be compared.
type Contender = (&'static str, fn(&mut BytesMut) -> (usize, usize));

/// Folds the fields of a block request into a checksum.
#[inline(always)]
fn block_sum(index: u32, begin: u32, length: u32) -> u64 {
    u64::from(index) ^ (u64::from(begin) << 8) ^ (u64::from(length) << 16)
}

fn tessera_borrowed(buf: &mut BytesMut) -> (usize, usize) {
    let decoder = MessageDecoder::default();
    let (mut n, mut bytes, mut at, mut sum) = (0, 0, 0, 0u64);
    while let Ok(Some((msg, used))) = decoder.decode_slice(buf.get(at..).unwrap_or_default()) {
        n += 1;
        at += used;
        sum = sum.wrapping_add(match &msg {
            MessageRef::Have { piece } => u64::from(*piece),
            MessageRef::Request(r) | MessageRef::Cancel(r) => block_sum(r.index, r.begin, r.length),
            MessageRef::Piece { index, begin, data } => {
                bytes += data.len();
                block_sum(*index, *begin, data.len() as u32)
            }
            other => u64::from(other.id().unwrap_or(0xFF)),
        });
        black_box(msg);
    }
    buf.advance(at);
    black_box(sum);
    (n, bytes)
}

fn tessera_owned(buf: &mut BytesMut) -> (usize, usize) {
    let decoder = MessageDecoder::default();
    let (mut n, mut bytes, mut sum) = (0, 0, 0u64);
    while let Ok(Some(msg)) = decoder.decode(buf) {
        n += 1;
        sum = sum.wrapping_add(match &msg {
            Message::Have { piece } => u64::from(*piece),
            Message::Request(r) | Message::Cancel(r) => block_sum(r.index, r.begin, r.length),
            Message::Piece { index, begin, data } => {
                bytes += data.len();
                block_sum(*index, *begin, data.len() as u32)
            }
            other => u64::from(other.id().unwrap_or(0xFF)),
        });
        black_box(msg);
    }
    black_box(sum);
    (n, bytes)
}

fn librqbit(buf: &mut BytesMut) -> (usize, usize) {
    use librqbit_peer_protocol::Message as RqMessage;
    let (mut n, mut bytes, mut off, mut sum) = (0, 0, 0, 0u64);
    while let Some(rest) = buf.get(off..) {
        if rest.is_empty() {
            break;
        }
        match RqMessage::deserialize(rest, &[]) {
            Ok((msg, len)) => {
                n += 1;
                off += len;
                sum = sum.wrapping_add(match &msg {
                    RqMessage::Have(piece) => u64::from(*piece),
                    RqMessage::Request(r) | RqMessage::Cancel(r) => {
                        block_sum(r.index, r.begin, r.length)
                    }
                    RqMessage::Piece(p) => {
                        let (a, b) = p.data();
                        bytes += a.len() + b.len();
                        block_sum(p.index, p.begin, (a.len() + b.len()) as u32)
                    }
                    RqMessage::KeepAlive => 0xFF,
                    RqMessage::Choke => 0,
                    RqMessage::Unchoke => 1,
                    RqMessage::Interested => 2,
                    RqMessage::NotInterested => 3,
                    RqMessage::Bitfield(_) => 5,
                    RqMessage::Extended(_) => 20,
                });
                black_box(msg);
            }
            Err(_) => break,
        }
    }
    buf.advance(off);
    black_box(sum);
    (n, bytes)
}

thread_local! {
    /// The destination of the memcpy reference, allocated and touched once.
    static COPY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reference: one memcpy of the whole stream into a second buffer (already faulted in).
fn memcpy(buf: &mut BytesMut) -> (usize, usize) {
    COPY.with_borrow_mut(|dst| {
        dst.resize(buf.len(), 0);
        black_box(&mut *dst).copy_from_slice(buf);
        (0, black_box(dst.len()))
    })
}

/// librqbit first: it is the base of the ratios.
const CONTENDERS: [Contender; 3] = [
    ("librqbit-peer-protocol", librqbit),
    ("tessera borrowed", tessera_borrowed),
    ("tessera owned", tessera_owned),
];

struct Input {
    name: &'static str,
    stream: Vec<u8>,
    messages: usize,
}

fn inputs() -> Vec<Input> {
    let (s, n) = small_stream(200_000);
    let (p, m) = piece_stream(512);
    vec![
        Input {
            name: "small",
            stream: s,
            messages: n,
        },
        Input {
            name: "piece 16 KiB",
            stream: p,
            messages: m,
        },
    ]
}

fn criterion_benches(c: &mut Criterion, inputs: &[Input]) {
    for input in inputs {
        let mut group = c.benchmark_group(format!("wire/{}", input.name));
        group.throughput(Throughput::Elements(input.messages as u64));
        group.sample_size(20);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        for (name, f) in CONTENDERS {
            group.bench_function(name, |b| {
                b.iter_batched(
                    || BytesMut::from(&input.stream[..]),
                    |mut buf| f(&mut buf),
                    BatchSize::LargeInput,
                );
            });
        }
        group.finish();
    }
}

/// Median time of one decode of a fresh buffer: at least 11 samples over about half a second.
fn median(f: fn(&mut BytesMut) -> (usize, usize), stream: &[u8]) -> Duration {
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 11 || (start.elapsed() < Duration::from_millis(500) && times.len() < 201) {
        let mut buf = BytesMut::from(stream);
        let t = Instant::now();
        black_box(f(black_box(&mut buf)));
        times.push(t.elapsed());
    }
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn print_table(inputs: &[Input]) {
    println!();
    println!(
        "peer wire decode, median of a timing loop (ratio = librqbit time / this time; above 1 is faster)"
    );
    for input in inputs {
        println!();
        println!(
            "{}: {} messages, {} bytes",
            input.name,
            input.messages,
            input.stream.len()
        );
        println!(
            "  {:<24} {:>10} {:>12} {:>10} {:>12}",
            "decoder", "median µs", "M msg/s", "GB/s", "vs librqbit"
        );
        let mut base = None;
        let rows = CONTENDERS
            .iter()
            .chain([&("memcpy (reference)", memcpy as _)]);
        for (name, f) in rows {
            let t = median(*f, &input.stream);
            let base_t = *base.get_or_insert(t);
            let secs = t.as_secs_f64();
            let rate = if *name == "memcpy (reference)" {
                "-".to_string()
            } else {
                format!("{:.1}", input.messages as f64 / secs / 1e6)
            };
            println!(
                "  {name:<24} {:>10.1} {rate:>12} {:>10.2} {:>11.2}x",
                secs * 1e6,
                input.stream.len() as f64 / secs / 1e9,
                base_t.as_secs_f64() / secs
            );
        }
    }
    println!();
}

fn main() {
    let inputs = inputs();
    // Every decoder must see the same messages and payload bytes before speed means anything.
    for input in &inputs {
        let mut payload = None;
        for (name, f) in CONTENDERS {
            let (n, bytes) = f(&mut BytesMut::from(&input.stream[..]));
            if n != input.messages || *payload.get_or_insert(bytes) != bytes {
                eprintln!(
                    "{}: {name} decoded {n} of {} messages, {bytes} payload bytes",
                    input.name, input.messages
                );
                std::process::exit(1);
            }
        }
    }

    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &inputs);
    c.final_summary();

    // `cargo bench` passes `--bench`; `cargo test --benches` does not and only smoke-tests.
    if std::env::args().any(|a| a == "--bench") {
        print_table(&inputs);
    }
}
