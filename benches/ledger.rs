//! Ledger throughput against the limit of signature verification on all cores, in one run.
//!
//! ```text
//! cargo bench --bench ledger                       # 1,000,000 accounts
//! TESSERA_BENCH_ACCOUNTS=10000 cargo bench --bench ledger
//! ```
//!
//! Prints, for a state of N accounts (default 10^6; `TESSERA_BENCH_ACCOUNTS`):
//! - the all-core k256 verification limit (verifications/s of the same transactions, on every
//!   core, nothing else);
//! - token transfers/s and cheque cash-outs/s through the node (admission with parallel
//!   signature checks, block execution, state root, block log append and fsync), and each as
//!   a share of the limit;
//! - off-chain cheque signing and verification/s on one core (what a seeder pays per piece);
//! - resident memory of the node.

#![allow(clippy::indexing_slicing, clippy::cast_precision_loss)]

use std::time::Instant;

use tessera::ledger::cheque::{Cheque, ChequeReceiver};
use tessera::ledger::contracts::{self, chequebook, token};
use tessera::ledger::{
    parallel_map, verify_parallel, Address, Call, Genesis, Hash, Node, NodeConfig, Params,
    SecretKey, SignedTransaction, Transaction,
};

const CHAIN_ID: u64 = 1;
const BLOCK_TXS: usize = 4_000;

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

fn sign(key: &SecretKey, nonce: u64, call: Call) -> SignedTransaction {
    let tx = Transaction {
        chain_id: CHAIN_ID,
        sender: key.public_key(),
        nonce,
        gas_limit: 50_000,
        gas_price: 1,
        call,
    };
    match SignedTransaction::sign(tx, key) {
        Ok(stx) => stx,
        Err(e) => {
            eprintln!("cannot sign: {e}");
            std::process::exit(1)
        }
    }
}

/// Runs `txs` through the node in blocks (signatures of the next block checked on all cores
/// while the current one executes); returns transactions per second.
fn run(node: &mut Node, txs: Vec<SignedTransaction>) -> f64 {
    let count = txs.len();
    let started = Instant::now();
    let mut txs = txs.into_iter().peekable();
    let batches = std::iter::from_fn(|| {
        txs.peek()?;
        Some(txs.by_ref().take(BLOCK_TXS).collect::<Vec<_>>())
    });
    let clock = std::cell::Cell::new(node.ledger().head().time_ms);
    let mut bad = 0;
    let result = node.run_batches(
        batches,
        || {
            clock.set(clock.get() + 1_000);
            clock.get()
        },
        |admitted, committed| {
            bad += admitted.iter().filter(|r| r.is_err()).count() + committed.rejected.len();
            true
        },
    );
    if let Err(e) = result {
        eprintln!("block failed: {e}");
        std::process::exit(1)
    }
    if bad > 0 {
        eprintln!("{bad} transactions refused or left out");
        std::process::exit(1)
    }
    count as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is parsed.
    let accounts: u64 = std::env::var("TESSERA_BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let senders: u64 = 8_000.min(accounts);
    let txs_per_kind = 16_000usize;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("ledger bench: {accounts} accounts, {senders} signing accounts, {cores} cores");

    let rss_before = rss_mib();
    let indices: Vec<u64> = (0..senders).collect();
    let keys: Vec<SecretKey> = parallel_map(&indices, &|i| SecretKey::test_account(*i));
    let sender_addresses: Vec<Address> = keys.iter().map(|k| k.public_key().address()).collect();
    // The rest of the accounts hold balances but never sign: their addresses need no key.
    let mut genesis_accounts: Vec<(Address, u64)> = sender_addresses
        .iter()
        .map(|a| (*a, 1_000_000_000))
        .collect();
    for i in senders..accounts {
        let h = Hash::of("tessera bench filler account", &i.to_be_bytes());
        let mut a = [0; 20];
        a.copy_from_slice(&h.0[..20]);
        genesis_accounts.push((Address(a), 1_000));
    }
    let genesis = Genesis {
        chain_id: CHAIN_ID,
        time_ms: 1_000,
        params: Params::default(),
        accounts: genesis_accounts,
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("tempdir: {e}");
            return;
        }
    };
    let started = Instant::now();
    let config = NodeConfig {
        max_block_txs: BLOCK_TXS,
        snapshot_every: 0,
        proposer: Address::of_contract("sequencer"),
        ..NodeConfig::default()
    };
    let mut node = match Node::init(dir.path(), &genesis, config) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("init: {e}");
            return;
        }
    };
    drop(genesis);
    println!(
        "genesis with {accounts} accounts: {:.2} s, resident memory {:.0} MiB ({:.0} bytes per account)",
        started.elapsed().as_secs_f64(),
        rss_mib(),
        (rss_mib() - rss_before) * 1024.0 * 1024.0 / accounts as f64
    );

    // Funded chequebooks for the cheque run (set-up, not timed).
    let deposits: Vec<SignedTransaction> = parallel_map(&indices, &|i| {
        let args = chequebook::DepositArgs {
            amount: 100_000_000,
        };
        let call = Call::new(contracts::CHEQUEBOOK, "deposit", &args);
        sign(
            &keys[*i as usize],
            0,
            call.unwrap_or_else(|_| std::process::exit(1)),
        )
    });
    run(&mut node, deposits);

    // Transfers: sender i pays sender i+1, or a filler account.
    let specs: Vec<usize> = (0..txs_per_kind).collect();
    let transfers: Vec<SignedTransaction> = parallel_map(&specs, &|t| {
        let s = *t % senders as usize;
        let nonce = 1 + (*t / senders as usize) as u64;
        let to = sender_addresses[(s + 1) % senders as usize];
        let args = token::TransferArgs { to, amount: 1 };
        let call = Call::new(contracts::TOKEN, "transfer", &args);
        sign(
            &keys[s],
            nonce,
            call.unwrap_or_else(|_| std::process::exit(1)),
        )
    });
    let rounds = (txs_per_kind as u64).div_ceil(senders);

    // The limit: the same signatures verified on every core, nothing else.
    let started = Instant::now();
    let ok = verify_parallel(&transfers)
        .iter()
        .filter(|r| r.is_ok())
        .count();
    let limit = transfers.len() as f64 / started.elapsed().as_secs_f64();
    assert_eq!(ok, transfers.len());
    println!("k256 verification limit ({cores} cores): {limit:.0} signatures/s");

    let tps = run(&mut node, transfers);
    println!(
        "transfers: {tps:.0} tx/s = {:.1}% of the verification limit",
        100.0 * tps / limit
    );

    // Cheque cash-outs: beneficiary i+1 cashes a cheque from payer i.
    let cheques: Vec<SignedTransaction> = parallel_map(&specs, &|t| {
        let payer = *t % senders as usize;
        let beneficiary = (payer + 1) % senders as usize;
        let round = (*t / senders as usize) as u64;
        let cheque = Cheque {
            chain_id: CHAIN_ID,
            payer: sender_addresses[payer],
            beneficiary: sender_addresses[beneficiary],
            content: None,
            cumulative: 100 * (round + 1),
        }
        .sign(&keys[payer])
        .unwrap_or_else(|_| std::process::exit(1));
        let args = chequebook::CashArgs {
            cheque: cheque.encode().unwrap_or_else(|_| std::process::exit(1)),
        };
        let call = Call::new(contracts::CHEQUEBOOK, "cash", &args);
        sign(
            &keys[beneficiary],
            1 + rounds + round,
            call.unwrap_or_else(|_| std::process::exit(1)),
        )
    });
    let tps = run(&mut node, cheques);
    // A cash-out carries two signatures (transaction and cheque): its limit is half.
    println!(
        "cheque cash-outs: {tps:.0} tx/s = {:.1}% of the verification limit for two signatures each ({:.0}/s)",
        200.0 * tps / limit,
        limit / 2.0
    );
    println!(
        "resident memory after the runs: {:.0} MiB; state entries {}",
        rss_mib(),
        node.ledger().state().len()
    );

    // Off-chain cheques, one core: what the swarm pays per piece.
    let payer = &keys[0];
    let payer_key = payer.public_key();
    let mut receiver = ChequeReceiver::new(CHAIN_ID, sender_addresses[1]);
    let n = 4_000u64;
    let started = Instant::now();
    let signed: Vec<_> = (1..=n)
        .map(|c| {
            Cheque {
                chain_id: CHAIN_ID,
                payer: sender_addresses[0],
                beneficiary: sender_addresses[1],
                content: None,
                cumulative: c,
            }
            .sign(payer)
            .unwrap_or_else(|_| std::process::exit(1))
        })
        .collect();
    let sign_rate = n as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for cheque in &signed {
        if receiver.receive(cheque, &payer_key).is_err() {
            eprintln!("cheque refused");
            std::process::exit(1)
        }
    }
    let verify_rate = n as f64 / started.elapsed().as_secs_f64();
    println!(
        "off-chain cheques, one core: {sign_rate:.0} signed/s, {verify_rate:.0} verified and accepted/s"
    );
}
