//! A deterministic simulation of a Mainline DHT network, every node the real sans-IO node.
//!
//! ```text
//! cargo run --release --example dht_sim -- --nodes 10000 --lookups 1000
//! ```
//!
//! All nodes join through one bootstrap node; then `--lookups` info hashes are announced, each
//! by a random node, and looked up with `get_peers` from another random node, over a simulated
//! network with 10–80 ms latency and 1% loss. Prints the success rate, hops and messages per
//! lookup (median and 99th percentile) and memory per node.

use std::process::ExitCode;
use std::time::Instant;

use tessera::dht::sim::{Sim, SimConfig};

fn main() -> ExitCode {
    let mut config = SimConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse::<usize>().ok());
        match (flag.as_str(), value) {
            ("--nodes", Some(v)) if v >= 2 => config.nodes = v,
            ("--lookups", Some(v)) => {
                config.lookups = v;
                config.announces = v;
            }
            ("--seed", Some(v)) => config.seed = v as u64,
            _ => {
                eprintln!("usage: dht_sim [--nodes N] [--lookups L] [--seed S]");
                return ExitCode::FAILURE;
            }
        }
    }
    let started = Instant::now();
    let report = Sim::run(config.clone());
    println!("nodes:            {}", report.nodes);
    println!("lookups:          {}", report.lookups);
    println!(
        "success:          {:.1}% ({} of {} found the announced peer)",
        100.0 * report.success_rate(),
        report.found,
        report.lookups
    );
    println!(
        "hops:             median {}, p99 {}",
        report.hops.0, report.hops.1
    );
    println!(
        "messages/lookup:  median {}, p99 {} (queries sent; alpha {}, k {})",
        report.messages.0, report.messages.1, config.node.lookup.alpha, config.node.lookup.k
    );
    println!("memory per node:  {} bytes", report.bytes_per_node);
    println!(
        "routing table:    {:.1} nodes on average",
        report.table_size
    );
    println!(
        "datagrams:        {} in {:.0} s simulated, {:.1} s real",
        report.datagrams,
        report.simulated.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
