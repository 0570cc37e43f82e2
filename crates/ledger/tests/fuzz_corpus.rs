//! Replays the checked-in fuzz seed corpora (`fuzz/corpus/ledger_*`) through the fuzz entry
//! points, so every test run covers them. `TESSERA_WRITE_CORPUS=1` regenerates the seeds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::PathBuf;

use tessera_ledger::cheque::{Cheque, ContentId};
use tessera_ledger::contracts::{token, TOKEN};
use tessera_ledger::{
    Address, Block, BlockHeader, Call, Hash, SecretKey, SignedTransaction, Transaction,
};

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(name)
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let key = SecretKey::test_account(5);
    let tx = |nonce| {
        let call = Call::new(
            TOKEN,
            "transfer",
            &token::TransferArgs {
                to: Address([3; 20]),
                amount: 42,
            },
        )
        .unwrap();
        SignedTransaction::sign(
            Transaction {
                chain_id: 1,
                sender: key.public_key(),
                nonce,
                gas_limit: 50_000,
                gas_price: 1,
                call,
            },
            &key,
        )
        .unwrap()
    };
    let txs = vec![tx(0), tx(1)];
    let mut block = Block {
        header: BlockHeader {
            chain_id: 1,
            height: 1,
            parent: Hash([1; 32]),
            time_ms: 1_700_000_000_000,
            proposer: Address([9; 20]),
            tx_root: Hash::ZERO,
            receipts_root: Hash([2; 32]),
            state_root: Hash([4; 32]),
        },
        txs: txs.clone(),
    };
    block.header.tx_root = block.compute_tx_root();
    let cheque = |content| {
        Cheque {
            chain_id: 1,
            payer: key.public_key().address(),
            beneficiary: Address([7; 20]),
            content,
            cumulative: 1_000,
        }
        .sign(&key)
        .unwrap()
        .encode()
        .unwrap()
    };
    vec![
        ("ledger_transaction", txs[0].as_bytes().to_vec()),
        ("ledger_block", block.encode().unwrap()),
        ("ledger_cheque", cheque(None)),
        ("ledger_cheque", cheque(Some(ContentId::V1([5; 20])))),
        ("ledger_cheque", cheque(Some(ContentId::V2([6; 32])))),
    ]
}

#[test]
fn replay_ledger_corpora() {
    if std::env::var_os("TESSERA_WRITE_CORPUS").is_some() {
        for (i, (name, bytes)) in seeds().into_iter().enumerate() {
            std::fs::create_dir_all(corpus(name)).unwrap();
            std::fs::write(corpus(name).join(format!("seed-{i}")), bytes).unwrap();
        }
    }
    type Target = (&'static str, fn(&[u8]));
    let targets: [Target; 3] = [
        ("ledger_transaction", tessera_ledger::fuzzing::transaction),
        ("ledger_block", tessera_ledger::fuzzing::block),
        ("ledger_cheque", tessera_ledger::fuzzing::cheque),
    ];
    for (name, run) in targets {
        let mut n = 0;
        for entry in std::fs::read_dir(corpus(name)).expect("fuzz corpus directory") {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            run(&bytes);
            // Every prefix too: truncated input must be refused, never trusted or panicked on.
            for cut in 0..bytes.len().min(600) {
                run(&bytes[..cut]);
            }
            n += 1;
        }
        assert!(n > 0, "no seeds for {name}");
    }
}

#[test]
fn seeds_decode() {
    // The generated seeds are valid inputs, so the corpus exercises the accepting paths.
    for (name, bytes) in seeds() {
        match name {
            "ledger_transaction" => assert!(SignedTransaction::decode(&bytes).is_ok()),
            "ledger_block" => assert!(Block::decode(&bytes).unwrap().check_tx_root().is_ok()),
            _ => assert!(tessera_ledger::cheque::SignedCheque::decode(&bytes).is_ok()),
        }
    }
}
