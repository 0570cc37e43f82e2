//! The incentive ledger as a single-node sequencer on a local directory.
//!
//! ```text
//! cargo run --release --example ledger -- init   --dir D [--accounts N] [--balance B]
//! cargo run --release --example ledger -- load   --dir D --txs N [--kind transfer|cheque|mixed] [--block-txs K]
//! cargo run --release --example ledger -- verify --dir D
//! cargo run --release --example ledger -- show   --dir D [--account ADDR|test:INDEX]
//! ```
//!
//! `init` creates genesis with N **test accounts whose keys derive from their index alone**
//! (`SecretKey::test_account`): anyone can sign for them, so they are for trying the ledger,
//! never for value. `load` signs N transactions from those accounts, runs them through the node
//! and prints `committed HEIGHT TXS STATE_ROOT` after each block is synced to disk, then
//! `tx/s: X` (signing excluded). `verify` replays the chain from genesis checking every link,
//! signature and root. `show` prints the head and an account with its inclusion proof.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tessera::ledger::cheque::{Cheque, ContentId};
use tessera::ledger::contracts::{self, chequebook, token};
use tessera::ledger::state::account_key;
use tessera::ledger::{
    parallel_map, replay, Address, Call, Genesis, Node, NodeConfig, Params, SecretKey,
    SignedTransaction, Transaction,
};

const CHAIN_ID: u64 = 1;
const GAS_PRICE: u64 = 1;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Transfer,
    Cheque,
    Mixed,
}

struct Args {
    command: String,
    dir: PathBuf,
    accounts: u64,
    balance: u64,
    txs: u64,
    kind: Kind,
    block_txs: usize,
    account: Option<String>,
}

fn usage() -> String {
    "usage: ledger <init|load|verify|show> --dir DIR [--accounts N] [--balance B] [--txs N] \
     [--kind transfer|cheque|mixed] [--block-txs K] [--account ADDR|test:INDEX]"
        .into()
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let command = it.next().ok_or_else(usage)?;
    let mut args = Args {
        command,
        dir: PathBuf::new(),
        accounts: 1_000,
        balance: 1_000_000_000,
        txs: 10_000,
        kind: Kind::Transfer,
        block_txs: 2_000,
        account: None,
    };
    let mut dir = None;
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|_| format!("bad number {v:?}"));
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--accounts" => args.accounts = number(value()?)?,
            "--balance" => args.balance = number(value()?)?,
            "--txs" => args.txs = number(value()?)?,
            "--block-txs" => {
                args.block_txs = usize::try_from(number(value()?)?).map_err(|e| e.to_string())?
            }
            "--account" => args.account = Some(value()?),
            "--kind" => {
                args.kind = match value()?.as_str() {
                    "transfer" => Kind::Transfer,
                    "cheque" => Kind::Cheque,
                    "mixed" => Kind::Mixed,
                    other => return Err(format!("unknown kind {other:?}")),
                }
            }
            _ => return Err(usage()),
        }
    }
    args.dir = dir.ok_or_else(usage)?;
    if args.accounts < 2 {
        return Err("--accounts must be at least 2".into());
    }
    if args.block_txs == 0 {
        return Err("--block-txs must be at least 1".into());
    }
    Ok(args)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn config() -> NodeConfig {
    NodeConfig {
        proposer: Address::of_contract("sequencer"),
        ..NodeConfig::default()
    }
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| match args.command.as_str() {
        "init" => init(&args),
        "load" => load(&args),
        "verify" => verify(&args),
        "show" => show(&args),
        _ => Err(usage()),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init(args: &Args) -> Result<(), String> {
    let supply = u128::from(args.accounts) * u128::from(args.balance);
    if supply > i64::MAX as u128 {
        return Err("accounts × balance exceeds the largest supply (2^63 - 1)".into());
    }
    let accounts = test_addresses(args.accounts)
        .into_iter()
        .map(|a| (a, args.balance))
        .collect();
    let genesis = Genesis {
        chain_id: CHAIN_ID,
        time_ms: now_ms(),
        params: Params::default(),
        accounts,
    };
    let node = Node::init(&args.dir, &genesis, config()).map_err(|e| e.to_string())?;
    println!("genesis {}", node.ledger().head().state_root);
    Ok(())
}

/// Addresses of test accounts `0..n`, derived on all cores.
fn test_addresses(n: u64) -> Vec<Address> {
    parallel_map(&(0..n).collect::<Vec<_>>(), &|i| {
        SecretKey::test_account(*i).public_key().address()
    })
}

/// One transaction to sign: sender index, its nonce, and the call.
struct Spec {
    sender: u64,
    nonce: u64,
    call: Call,
}

fn load(args: &Args) -> Result<(), String> {
    let mut node = Node::open(
        &args.dir,
        NodeConfig {
            max_block_txs: args.block_txs,
            ..config()
        },
    )
    .map_err(|e| e.to_string())?;
    let genesis = Node::read_genesis(&args.dir).map_err(|e| e.to_string())?;
    let accounts = u64::try_from(genesis.accounts.len()).unwrap_or(u64::MAX);
    let keys: HashMap<u64, SecretKey> = HashMap::new();
    let mut keys = keys;
    let mut nonces: HashMap<u64, u64> = HashMap::new();
    let mut addresses: HashMap<u64, Address> = HashMap::new();
    let mut address_of = |i: u64| {
        *addresses
            .entry(i)
            .or_insert_with(|| SecretKey::test_account(i).public_key().address())
    };

    // Cheques need funded chequebooks: payers deposit first (untimed set-up blocks).
    let payers = accounts.min(args.txs.max(1));
    let cheque_payers = if args.kind == Kind::Transfer {
        0
    } else {
        payers
    };
    let mut setup = Vec::new();
    for p in 0..cheque_payers {
        let address = address_of(p);
        if chequebook::book(node.ledger().state(), &address).is_none() {
            let nonce = next_nonce(&node, &mut nonces, p, address);
            let deposit = chequebook::DepositArgs {
                amount: genesis.accounts.first().map_or(0, |(_, b)| b / 4),
            };
            setup.push(Spec {
                sender: p,
                nonce,
                call: Call::new(contracts::CHEQUEBOOK, "deposit", &deposit)
                    .map_err(|e| e.to_string())?,
            });
        }
    }
    if !setup.is_empty() {
        let signed = sign_all(setup, &mut keys);
        run(&mut node, signed, args.block_txs)?;
    }

    // The timed transactions.
    let mut cumulative: HashMap<(Address, Address), u64> = HashMap::new();
    let mut specs = Vec::with_capacity(usize::try_from(args.txs).unwrap_or(0));
    for t in 0..args.txs {
        let sender = t % accounts;
        let receiver = (sender + 1) % accounts;
        let cheque = match args.kind {
            Kind::Transfer => false,
            Kind::Cheque => true,
            Kind::Mixed => t % 2 == 1,
        };
        if cheque {
            // The beneficiary (`sender` here) cashes a cheque written by payer `receiver`.
            let payer = receiver % cheque_payers.max(1);
            let payer_address = address_of(payer);
            let beneficiary = address_of(sender);
            let lane = cumulative
                .entry((payer_address, beneficiary))
                .or_insert_with(|| {
                    chequebook::paid(node.ledger().state(), &payer_address, &beneficiary, None)
                });
            *lane += 1;
            let payer_key = keys
                .entry(payer)
                .or_insert_with(|| SecretKey::test_account(payer));
            let signed = Cheque {
                chain_id: CHAIN_ID,
                payer: payer_address,
                beneficiary,
                content: None::<ContentId>,
                cumulative: *lane,
            }
            .sign(payer_key)
            .map_err(|e| e.to_string())?;
            let nonce = next_nonce(&node, &mut nonces, sender, beneficiary);
            let cash = chequebook::CashArgs {
                cheque: signed.encode().map_err(|e| e.to_string())?,
            };
            specs.push(Spec {
                sender,
                nonce,
                call: Call::new(contracts::CHEQUEBOOK, "cash", &cash).map_err(|e| e.to_string())?,
            });
        } else {
            let from = address_of(sender);
            let nonce = next_nonce(&node, &mut nonces, sender, from);
            let transfer = token::TransferArgs {
                to: address_of(receiver),
                amount: 1,
            };
            specs.push(Spec {
                sender,
                nonce,
                call: Call::new(contracts::TOKEN, "transfer", &transfer)
                    .map_err(|e| e.to_string())?,
            });
        }
    }
    let signed = sign_all(specs, &mut keys);
    let count = signed.len();
    let started = Instant::now();
    run(&mut node, signed, args.block_txs)?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "tx/s: {:.0}",
        if seconds > 0.0 {
            count as f64 / seconds
        } else {
            0.0
        }
    );
    Ok(())
}

fn next_nonce(node: &Node, nonces: &mut HashMap<u64, u64>, index: u64, address: Address) -> u64 {
    let n = nonces
        .entry(index)
        .or_insert_with(|| node.ledger().account(&address).nonce);
    let out = *n;
    *n += 1;
    out
}

fn sign_all(specs: Vec<Spec>, keys: &mut HashMap<u64, SecretKey>) -> Vec<SignedTransaction> {
    for spec in &specs {
        keys.entry(spec.sender)
            .or_insert_with(|| SecretKey::test_account(spec.sender));
    }
    let keys = &*keys;
    parallel_map(&specs, &|spec| {
        let key = keys.get(&spec.sender)?;
        let tx = Transaction {
            chain_id: CHAIN_ID,
            sender: key.public_key(),
            nonce: spec.nonce,
            gas_limit: 50_000,
            gas_price: GAS_PRICE,
            call: spec.call.clone(),
        };
        SignedTransaction::sign(tx, key).ok()
    })
    .into_iter()
    .flatten()
    .collect()
}

/// Runs `txs` through the node in block-sized batches (the next batch's signatures are checked
/// on all cores while the current block executes), printing each block once it is durable.
fn run(node: &mut Node, txs: Vec<SignedTransaction>, block_txs: usize) -> Result<(), String> {
    let mut txs = txs.into_iter().peekable();
    let batches = std::iter::from_fn(|| {
        txs.peek()?;
        Some(txs.by_ref().take(block_txs).collect::<Vec<_>>())
    });
    let mut problem = None;
    node.run_batches(batches, now_ms, |admitted, committed| {
        if let Some(Err(e)) = admitted.iter().find(|r| r.is_err()) {
            problem = Some(format!("transaction refused: {e}"));
            return false;
        }
        if let Some((_, _, e)) = committed.rejected.first() {
            problem = Some(format!("transaction left out of the block: {e}"));
            return false;
        }
        println!(
            "committed {} {} {}",
            committed.header.height, committed.txs, committed.header.state_root
        );
        true
    })
    .map_err(|e| e.to_string())?;
    problem.map_or(Ok(()), Err)
}

fn verify(args: &Args) -> Result<(), String> {
    let report = replay(&args.dir).map_err(|e| e.to_string())?;
    if !report.recovery.is_clean() {
        eprintln!(
            "note: dropped a torn tail of the block log ({:?})",
            report.recovery
        );
    }
    if let Some((height, error)) = report.failure {
        return Err(format!("block {height} is bad: {error}"));
    }
    if report.total_balance != report.supply {
        return Err(format!(
            "balances sum to {} but the supply is {}",
            report.total_balance, report.supply
        ));
    }
    println!(
        "ok {} {} supply {}",
        report.head.height, report.state_root, report.supply
    );
    Ok(())
}

fn show(args: &Args) -> Result<(), String> {
    let mut node = Node::open(&args.dir, config()).map_err(|e| e.to_string())?;
    let head = node.ledger().head().clone();
    println!("height      {}", head.height);
    println!("block       {}", head.hash());
    println!("state root  {}", head.state_root);
    println!("time ms     {}", head.time_ms);
    println!("accounts    {}", node.ledger().state().len());
    let Some(account) = &args.account else {
        return Ok(());
    };
    let address = match account.strip_prefix("test:") {
        Some(index) => {
            let index = index
                .parse::<u64>()
                .map_err(|_| format!("bad test account {account:?}"))?;
            SecretKey::test_account(index).public_key().address()
        }
        None => Address::from_hex(account.trim_start_matches("0x"))
            .ok_or_else(|| format!("bad address {account:?} (40 hex digits or test:INDEX)"))?,
    };
    let state = node.ledger_mut().state_mut();
    let key = account_key(&address);
    let value = state.get(&key).map(<[u8]>::to_vec);
    let proof = state.prove(&key);
    let verdict = match proof.verify(&head.state_root.0, &key, value.as_deref()) {
        Ok(()) => "valid",
        Err(_) => "INVALID",
    };
    let account = node.ledger().account(&address);
    println!("account     {address}");
    println!("balance     {}", account.balance);
    println!("nonce       {}", account.nonce);
    println!(
        "proof       {} ({} bytes, {verdict} against the state root)",
        if value.is_some() {
            "inclusion"
        } else {
            "exclusion"
        },
        proof.to_bytes().len()
    );
    println!("proof hex   {}", hex(&proof.to_bytes()));
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
