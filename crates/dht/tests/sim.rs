//! The real node in a deterministic simulated network: joining, routing tables that know
//! their neighbourhood, announces found by lookups from elsewhere, bounded messages and memory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use tessera_dht::sim::{Sim, SimConfig};
use tessera_dht::{Event, Id};

fn config(nodes: usize, lookups: usize) -> SimConfig {
    SimConfig {
        nodes,
        lookups,
        announces: lookups,
        ..SimConfig::default()
    }
}

#[test]
fn announced_peers_are_found_from_anywhere() {
    let report = Sim::run(config(600, 60));
    println!("{report:?}");
    assert!(
        report.success_rate() >= 0.99,
        "only {} of {} lookups found the peer",
        report.found,
        report.lookups
    );
    // α = 3, k = 8: a lookup in 600 nodes needs a few rounds of three queries.
    assert!(
        report.messages.0 <= 30,
        "median messages {}",
        report.messages.0
    );
    assert!(report.hops.1 <= 8, "p99 hops {}", report.hops.1);
    assert!(
        report.bytes_per_node < 100_000,
        "{} bytes per node",
        report.bytes_per_node
    );
}

#[test]
fn routing_tables_know_their_neighbourhood() {
    let mut sim = Sim::new(config(400, 0));
    sim.bootstrap();
    let ids: Vec<Id> = sim.nodes().iter().map(|n| n.id()).collect();
    let mut complete = 0;
    for node in sim.nodes() {
        let own = node.id();
        assert!(
            node.table().len() >= 8,
            "a node did not join: {} entries",
            node.table().len()
        );
        let mut truth: Vec<Id> = ids.iter().copied().filter(|i| *i != own).collect();
        truth.sort_by_key(|i| i.distance(&own));
        let known: Vec<Id> = node.table().contacts().map(|c| c.id).collect();
        if truth[..8].iter().filter(|i| known.contains(i)).count() >= 6 {
            complete += 1;
        }
    }
    assert!(
        complete * 10 >= ids.len() * 9,
        "{complete} of {} know ≥6 of their 8 closest",
        ids.len()
    );
}

#[test]
fn lookups_converge_on_the_true_closest_nodes() {
    let mut sim = Sim::new(config(400, 0));
    sim.bootstrap();
    let ids: Vec<Id> = sim.nodes().iter().map(|n| n.id()).collect();
    for t in 0..20u64 {
        let mut target = [0u8; 20];
        target[..8].copy_from_slice(&t.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
        let target = Id(target);
        let mut truth = ids.clone();
        truth.sort_by_key(|i| i.distance(&target));
        let who = (t as usize * 37) % ids.len();
        let Some(Event::LookupDone { closest, .. }) =
            sim.run_lookup(who, |n, now| n.find_node(now, target))
        else {
            panic!("lookup {t} did not finish");
        };
        let got: Vec<Id> = closest.iter().map(|c| c.id).collect();
        let overlap = truth[..8].iter().filter(|i| got.contains(i)).count();
        assert!(overlap >= 6, "lookup {t}: {overlap} of the true 8 closest");
    }
}
