//! State-root cost of the authenticated map as the state grows: for 10^4, 10^5 and 10^6
//! accounts, "update 1,000 existing keys + `root()`" (should grow like log n, not n) and
//! "1,000 `get`s". Also prints build time, hashes and time per updated key, and memory per
//! entry (the map's own estimate and the resident-set growth during the build).
//!
//! `cargo bench -p tessera-ledger --bench state_root`
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tessera_ledger::smt::AuthMap;

const UPDATES: usize = 1_000;

/// `b"a" ++ 20-byte address`, like an account key.
fn account_key(i: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(21);
    k.push(b'a');
    k.extend_from_slice(&blake3::hash(&i.to_le_bytes()).as_bytes()[..20]);
    k
}

/// xorshift64*: a deterministic stream of indices.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Resident set size in bytes, from /proc/self/statm (0 where unavailable).
fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Time this thread has spent on a CPU, from /proc/thread-self/schedstat: unlike wall time it
/// does not count time taken by other processes on a busy machine. `None` where unavailable.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse::<u64>().ok()?;
    Some(Duration::from_nanos(ns))
}

fn update_round(map: &mut AuthMap, keys: &[Vec<u8>], rng: &mut Rng, round: u64) -> [u8; 32] {
    for j in 0..UPDATES as u64 {
        let key = &keys[rng.below(keys.len() as u64) as usize];
        let mut value = [0u8; 16];
        value[..8].copy_from_slice(&round.to_le_bytes());
        value[8..].copy_from_slice(&j.to_le_bytes());
        map.insert(key, &value);
    }
    map.root()
}

fn state_root(c: &mut Criterion) {
    let mut group = c.benchmark_group("state_root");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let mut summary = Vec::new();

    for n in [10_000u64, 100_000, 1_000_000] {
        let keys: Vec<Vec<u8>> = (0..n).map(account_key).collect();
        let rss_before = rss_bytes();
        let start = Instant::now();
        let mut map = AuthMap::from_entries(
            keys.iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), (i as u128).to_le_bytes().to_vec())),
        );
        let root = map.root();
        let build = start.elapsed();
        let rss_delta = rss_bytes().saturating_sub(rss_before);
        black_box(root);

        // Hand-timed rounds, for a per-key figure and a hash count.
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n);
        update_round(&mut map, &keys, &mut rng, 0);
        let hashes_before = map.hashes_computed();
        let rounds = 20u64;
        let start = Instant::now();
        let cpu_start = cpu_time();
        for round in 1..=rounds {
            black_box(update_round(&mut map, &keys, &mut rng, round));
        }
        let updates = rounds as u32 * UPDATES as u32;
        let per_key = start.elapsed() / updates;
        let cpu_per_key = cpu_time()
            .zip(cpu_start)
            .map_or(per_key, |(end, start)| (end - start) / updates);
        let hashes_per_key =
            (map.hashes_computed() - hashes_before) as f64 / (rounds as f64 * UPDATES as f64);

        let start = cpu_time().unwrap_or_default();
        let wall = Instant::now();
        let mut found = 0usize;
        for _ in 0..100 {
            for _ in 0..UPDATES {
                let key = &keys[rng.below(n) as usize];
                found += usize::from(map.get(key).is_some());
            }
        }
        let per_get = cpu_time().map_or(wall.elapsed(), |end| end - start) / (100 * UPDATES as u32);
        assert_eq!(found, 100 * UPDATES);

        let line = format!(
            "n = {n:>9}: build {build:>9.2?} | update+root {cpu_per_key:>7.2?}/key on CPU ({per_key:.2?} wall), {hashes_per_key:.1} hashes/key | get {per_get:>6.2?} | depth {} | {:.2} internal nodes/entry | {:.0} B/entry (estimate), {:.0} B/entry (RSS growth)",
            map.prove(&keys[0]).siblings().len(),
            map.internal_nodes() as f64 / n as f64,
            map.heap_bytes() as f64 / n as f64,
            rss_delta as f64 / n as f64,
        );
        println!("{line}");
        summary.push(line);

        group.throughput(Throughput::Elements(UPDATES as u64));
        let mut round = 1_000u64;
        group.bench_with_input(
            BenchmarkId::new("update_1000_keys_and_root", n),
            &n,
            |b, _| {
                b.iter(|| {
                    round += 1;
                    update_round(&mut map, &keys, &mut rng, round)
                });
            },
        );
        group.bench_with_input(BenchmarkId::new("get_1000_keys", n), &n, |b, _| {
            b.iter(|| {
                let mut total = 0usize;
                for _ in 0..UPDATES {
                    total += map.get(&keys[rng.below(n) as usize]).map_or(0, <[u8]>::len);
                }
                total
            });
        });
        drop(map);
    }
    group.finish();
    println!("\nsummary (update cost per key should grow like log n):");
    for line in summary {
        println!("  {line}");
    }
}

criterion_group!(benches, state_root);
criterion_main!(benches);
