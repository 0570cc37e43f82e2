//! The ledger core: admission and rejection of transactions, fees, determinism, conservation
//! of tokens, state proofs, and the node's durability and crash recovery.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use proptest::prelude::*;
use serde::Serialize;
use tessera_ledger::{
    Address, Block, BlockError, Call, ContractError, Genesis, Ledger, Node, NodeConfig, Params,
    SecretKey, SignatureError, Signatures, SignedTransaction, Status, Transaction, TxError,
};

const CHAIN: u64 = 9;
const PROPOSER: Address = Address([0xee; 20]);

#[derive(Serialize)]
struct Transfer {
    amount: u64,
    to: Address,
}

fn genesis(n: u64, balance: u64) -> Genesis {
    Genesis {
        chain_id: CHAIN,
        time_ms: 1_000,
        params: Params::default(),
        accounts: (0..n)
            .map(|i| (SecretKey::test_account(i).public_key().address(), balance))
            .collect(),
    }
}

fn ledger(n: u64, balance: u64) -> Ledger {
    Ledger::from_genesis(&genesis(n, balance), tessera_ledger::contracts::native()).unwrap()
}

fn addr(i: u64) -> Address {
    SecretKey::test_account(i).public_key().address()
}

fn transfer_tx(from: u64, nonce: u64, to: Address, amount: u64) -> SignedTransaction {
    transfer_tx_with(from, nonce, to, amount, |_| {})
}

fn transfer_tx_with(
    from: u64,
    nonce: u64,
    to: Address,
    amount: u64,
    edit: impl FnOnce(&mut Transaction),
) -> SignedTransaction {
    let key = SecretKey::test_account(from);
    let mut tx = Transaction {
        chain_id: CHAIN,
        sender: key.public_key(),
        nonce,
        gas_limit: 20_000,
        gas_price: 2,
        call: Call::new("token", "transfer", &Transfer { amount, to }).unwrap(),
    };
    edit(&mut tx);
    SignedTransaction::sign(tx, &key).unwrap()
}

/// Proposes and commits one block, returning the receipts and the rejections.
fn block(
    ledger: &mut Ledger,
    txs: Vec<SignedTransaction>,
) -> (Vec<tessera_ledger::Receipt>, Vec<TxError>, Block) {
    let time = ledger.head().time_ms + 1_000;
    let p = ledger
        .propose(time, PROPOSER, txs, Signatures::Verify)
        .unwrap();
    ledger.commit();
    (
        p.receipts,
        p.rejected.into_iter().map(|(_, _, e)| e).collect(),
        p.block,
    )
}

#[test]
fn transfer_moves_tokens_and_charges_the_fee() {
    let mut l = ledger(3, 1_000_000);
    let (receipts, rejected, _) = block(&mut l, vec![transfer_tx(0, 0, addr(1), 500)]);
    assert!(rejected.is_empty());
    let r = &receipts[0];
    assert_eq!(r.status, Status::Success, "{r:?}");
    assert!(r.gas_used > 1_000 && r.gas_used < 20_000);
    let fee = r.gas_used * 2;
    assert_eq!(l.account(&addr(0)).balance, 1_000_000 - 500 - fee);
    assert_eq!(l.account(&addr(0)).nonce, 1);
    assert_eq!(l.account(&addr(1)).balance, 1_000_500);
    assert_eq!(l.account(&PROPOSER).balance, fee);
    assert_eq!(l.state().total_balance(), l.supply());
    assert_eq!(r.events.len(), 1);
}

#[test]
fn rejected_before_execution_change_nothing() {
    let mut l = ledger(3, 1_000_000);
    let root = l.head().state_root;
    let good = transfer_tx(0, 0, addr(1), 5);
    // A signature by another key.
    let other = SecretKey::test_account(2);
    let forged = SignedTransaction::sign(good.tx().clone(), &other).unwrap();
    // The same signature in its high-S form.
    let high_s =
        SignedTransaction::with_signature(good.tx().clone(), good.signature().malleate()).unwrap();
    let wrong_chain = transfer_tx_with(0, 0, addr(1), 5, |tx| tx.chain_id = CHAIN + 1);
    let skipped = transfer_tx(0, 1, addr(1), 5);
    let cannot_pay = transfer_tx_with(0, 0, addr(1), 5, |tx| tx.gas_price = 1_000);
    let cheap = transfer_tx_with(0, 0, addr(1), 5, |tx| tx.gas_price = 0);

    assert_eq!(
        l.check_signed(&forged, 0),
        Err(TxError::Signature(SignatureError::Invalid))
    );
    assert_eq!(
        l.check_signed(&high_s, 0),
        Err(TxError::Signature(SignatureError::HighS))
    );
    assert!(matches!(
        l.check_signed(&wrong_chain, 0),
        Err(TxError::WrongChain {
            expected: CHAIN,
            ..
        })
    ));
    assert_eq!(
        l.check_signed(&skipped, 0),
        Err(TxError::NonceTooHigh {
            expected: 0,
            got: 1
        })
    );
    assert!(matches!(
        l.check_signed(&cannot_pay, 0),
        Err(TxError::CannotPayFee { .. })
    ));
    assert!(matches!(
        l.check_signed(&cheap, 0),
        Err(TxError::GasPriceTooLow { .. })
    ));

    let (receipts, rejected, blk) = block(
        &mut l,
        vec![forged, high_s, wrong_chain, skipped, cannot_pay, cheap],
    );
    assert!(receipts.is_empty());
    assert_eq!(rejected.len(), 6);
    assert!(blk.txs.is_empty());
    assert_eq!(l.head().state_root, root, "nothing changed, not even a fee");
    assert_eq!(l.account(&addr(0)).nonce, 0);

    // The good one still goes through; replaying it afterwards is refused.
    let (receipts, _, _) = block(&mut l, vec![good.clone()]);
    assert_eq!(receipts[0].status, Status::Success);
    assert_eq!(
        l.check_signed(&good, 0),
        Err(TxError::NonceTooLow {
            expected: 1,
            got: 0
        })
    );
    let (receipts, rejected, _) = block(&mut l, vec![good]);
    assert!(receipts.is_empty());
    assert!(matches!(rejected[0], TxError::NonceTooLow { .. }));
}

#[test]
fn failed_calls_revert_but_pay_the_fee() {
    let mut l = ledger(2, 100_000);
    // Overdraft: more than the balance left after buying gas.
    let overdraft = transfer_tx(0, 0, addr(1), 99_000);
    // Out of gas: just above the intrinsic cost, so the call itself cannot run.
    let probe = transfer_tx(0, 1, addr(1), 1);
    let intrinsic = l.intrinsic_gas(&probe);
    let oog = transfer_tx_with(0, 1, addr(1), 1, |tx| tx.gas_limit = intrinsic + 10);
    let (receipts, rejected, _) = block(&mut l, vec![overdraft, oog]);
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(receipts[0].status, Status::Reverted);
    assert!(receipts[0]
        .error
        .as_deref()
        .unwrap()
        .contains("insufficient"));
    assert!(receipts[0].events.is_empty());
    assert_eq!(receipts[1].status, Status::OutOfGas);
    assert_eq!(receipts[1].gas_used, intrinsic + 10);
    let fees = (receipts[0].gas_used + receipts[1].gas_used) * 2;
    assert_eq!(l.account(&addr(0)).balance, 100_000 - fees);
    assert_eq!(l.account(&addr(0)).nonce, 2);
    assert_eq!(l.account(&addr(1)).balance, 100_000);
    assert_eq!(l.account(&PROPOSER).balance, fees);
    assert_eq!(l.state().total_balance(), l.supply());
}

#[test]
fn apply_tx_reports_the_typed_error() {
    let mut l = ledger(2, 100_000);
    let env = tessera_ledger::Env {
        chain_id: CHAIN,
        height: 1,
        time_ms: 2_000,
        proposer: PROPOSER,
    };
    let outcome = l
        .apply_tx(&env, &transfer_tx(0, 0, addr(1), 1_000_000))
        .unwrap();
    assert!(matches!(
        outcome.error,
        Some(ContractError::InsufficientBalance { .. })
    ));
}

#[test]
fn blocks_replay_to_the_same_roots_and_bad_blocks_are_refused() {
    let mut a = ledger(4, 1_000_000);
    let mut b = ledger(4, 1_000_000);
    let mut blocks = Vec::new();
    for round in 0..3u64 {
        let txs = (0..4)
            .map(|i| transfer_tx(i, round, addr((i + 1) % 4), 10 + i))
            .collect();
        blocks.push(block(&mut a, txs).2);
    }
    for blk in &blocks {
        let bytes = blk.encode().unwrap();
        let decoded = Block::decode(&bytes).unwrap();
        assert_eq!(&decoded, blk);
        b.apply_block(&decoded, Signatures::Verify).unwrap();
        b.commit();
        assert_eq!(b.head(), &blk.header);
    }
    assert_eq!(a.head().state_root, b.head().state_root);

    // A block with a wrong state root, a wrong parent, or a forged transaction is refused,
    // leaving the state as it was.
    let mut c = ledger(4, 1_000_000);
    let root = c.head().state_root;
    let mut bad = blocks[0].clone();
    bad.header.state_root.0[0] ^= 1;
    assert!(matches!(
        c.apply_block(&bad, Signatures::Verify),
        Err(BlockError::RootMismatch { which: "state", .. })
    ));
    assert_eq!(c.state_mut().root(), root);
    let mut bad = blocks[0].clone();
    bad.header.parent.0[0] ^= 1;
    assert!(matches!(
        c.apply_block(&bad, Signatures::Verify),
        Err(BlockError::Parent { .. })
    ));
    let mut bad = blocks[0].clone();
    let forged =
        SignedTransaction::sign(bad.txs[0].tx().clone(), &SecretKey::test_account(3)).unwrap();
    bad.txs[0] = forged;
    bad.header.tx_root = bad.compute_tx_root();
    assert!(matches!(
        c.apply_block(&bad, Signatures::Verify),
        Err(BlockError::Tx { index: 0, .. })
    ));
    assert_eq!(c.state_mut().root(), root);
    c.apply_block(&blocks[0], Signatures::Verify).unwrap();
}

#[test]
fn account_proofs_verify_against_the_header() {
    let mut l = ledger(3, 1_000);
    block(&mut l, vec![transfer_tx(0, 0, addr(1), 7)]);
    let root = l.head().state_root;
    let key = tessera_ledger::state::account_key(&addr(1));
    let value = l.state().get(&key).unwrap().to_vec();
    let proof = l.state_mut().prove(&key);
    proof.verify(&root.0, &key, Some(&value)).unwrap();
    let mut wrong = value.clone();
    wrong[7] ^= 1;
    assert!(proof.verify(&root.0, &key, Some(&wrong)).is_err());
    assert!(proof.verify(&root.0, &key, None).is_err());
    // An account that does not exist has an exclusion proof.
    let absent = tessera_ledger::state::account_key(&Address([7; 20]));
    let proof = l.state_mut().prove(&absent);
    proof.verify(&root.0, &absent, None).unwrap();
    assert!(proof.verify(&root.0, &absent, Some(&value)).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Random transfers (many failing) never create or destroy tokens, never make a balance
    /// negative, and a second ledger replaying the blocks reaches the same roots.
    #[test]
    fn random_transfers_conserve_tokens(
        ops in proptest::collection::vec((0u64..4, 0u64..5, 0u64..60_000, 1u64..3), 1..24)
    ) {
        let mut a = ledger(4, 50_000);
        let mut b = ledger(4, 50_000);
        let mut nonces = [0u64; 4];
        let mut txs = Vec::new();
        for (from, to, amount, price) in ops {
            let to = if to == 4 { Address([1; 20]) } else { addr(to) };
            let n = nonces[from as usize];
            nonces[from as usize] += 1;
            txs.push(transfer_tx_with(from, n, to, amount, |tx| tx.gas_price = price));
        }
        for chunk in txs.chunks(5) {
            let (_, _, blk) = block(&mut a, chunk.to_vec());
            b.apply_block(&blk, Signatures::Verify).unwrap();
            b.commit();
            prop_assert_eq!(a.head(), b.head());
            prop_assert_eq!(a.state().total_balance(), a.supply());
        }
    }
}

fn node_config() -> NodeConfig {
    NodeConfig {
        max_block_txs: 4,
        snapshot_every: 3,
        proposer: PROPOSER,
        ..NodeConfig::default()
    }
}

#[test]
fn node_survives_restarts_and_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis(4, 1_000_000);
    let mut node = Node::init(dir.path(), &g, node_config()).unwrap();
    let mut heads = Vec::new();
    for round in 0..8u64 {
        let txs: Vec<_> = (0..4)
            .map(|i| transfer_tx(i, round, addr((i + 1) % 4), 1 + round))
            .collect();
        let results = node.submit(round * 1_000, txs);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(node.poll_timeout(), Some(round * 1_000));
        let committed = node.handle_timeout(round * 1_000).unwrap().unwrap();
        assert_eq!(committed.txs, 4);
        heads.push(committed.header);
    }
    drop(node);
    let node = Node::open(dir.path(), node_config()).unwrap();
    assert_eq!(node.ledger().head(), heads.last().unwrap());
    drop(node);

    // Cut the log in the middle of its last record: the last block is gone, the rest stays.
    let log = dir.path().join("blocks.log");
    let len = std::fs::metadata(&log).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(len - 10).unwrap();
    drop(f);
    // Remove the snapshots too so the state is rebuilt from genesis.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("snapshot")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    let node = Node::open(dir.path(), node_config()).unwrap();
    assert!(!node.recovery().is_clean());
    assert_eq!(node.ledger().head(), &heads[6]);
    let replay = tessera_ledger::replay(dir.path()).unwrap();
    assert!(replay.failure.is_none());
    assert_eq!(replay.head, heads[6]);
    assert_eq!(replay.total_balance, replay.supply);
}

#[test]
fn mempool_refuses_gaps_duplicates_and_bad_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::init(dir.path(), &genesis(2, 1_000_000), node_config()).unwrap();
    let t0 = transfer_tx(0, 0, addr(1), 1);
    let t1 = transfer_tx(0, 1, addr(1), 1);
    let t3 = transfer_tx(0, 3, addr(1), 1);
    let forged = SignedTransaction::sign(
        transfer_tx(1, 0, addr(0), 1).tx().clone(),
        &SecretKey::test_account(0),
    )
    .unwrap();
    let results = node.submit(0, vec![t0.clone(), t1, t0.clone(), t3, forged]);
    assert_eq!(results[0], Ok(()));
    assert_eq!(results[1], Ok(()));
    assert_eq!(results[2], Err(TxError::Duplicate(t0.hash())));
    assert!(matches!(
        results[3],
        Err(TxError::NonceTooHigh {
            expected: 2,
            got: 3
        })
    ));
    assert_eq!(results[4], Err(TxError::Signature(SignatureError::Invalid)));
    assert_eq!(node.mempool().len(), 2);
    assert_eq!(node.poll_timeout(), Some(1_000));
    assert!(node.handle_timeout(999).unwrap().is_none());
    let c = node.handle_timeout(1_000).unwrap().unwrap();
    assert_eq!(c.txs, 2);
    assert!(node.mempool().is_empty());
}

#[test]
fn cheque_signatures_checked_in_parallel_or_in_order_give_the_same_block() {
    use tessera_ledger::cheque::Cheque;
    use tessera_ledger::contracts::chequebook::{CashArgs, DepositArgs};
    let signed = |from: u64, nonce: u64, call: Call| {
        let key = SecretKey::test_account(from);
        let tx = Transaction {
            chain_id: CHAIN,
            sender: key.public_key(),
            nonce,
            gas_limit: 50_000,
            gas_price: 1,
            call,
        };
        SignedTransaction::sign(tx, &key).unwrap()
    };
    let deposit = Call::new("chequebook", "deposit", &DepositArgs { amount: 10_000 }).unwrap();
    let cash = |payer: u64, signer: u64, cumulative: u64| {
        let cheque = Cheque {
            chain_id: CHAIN,
            payer: addr(payer),
            beneficiary: addr(1),
            content: None,
            cumulative,
        }
        .sign(&SecretKey::test_account(signer))
        .unwrap();
        let args = CashArgs {
            cheque: cheque.encode().unwrap(),
        };
        Call::new("chequebook", "cash", &args).unwrap()
    };
    let mut a = ledger(3, 1_000_000);
    let mut b = ledger(3, 1_000_000);
    let (_, _, first) = block(
        &mut a,
        vec![signed(0, 0, deposit.clone()), signed(2, 0, deposit)],
    );
    b.apply_block(&first, Signatures::AlreadyVerified).unwrap();
    b.commit();
    // A good cheque, and one from payer 2's book signed by payer 0.
    let txs = vec![signed(1, 0, cash(0, 0, 700)), signed(1, 1, cash(2, 0, 500))];
    let (receipts, rejected, second) = block(&mut a, txs);
    assert!(rejected.is_empty());
    assert_eq!(receipts[0].status, Status::Success);
    assert_eq!(receipts[1].status, Status::Reverted);
    // `a` found the cheque signatures verified in parallel; `b` checks them in order.
    b.apply_block(&second, Signatures::AlreadyVerified).unwrap();
    b.commit();
    assert_eq!(a.head(), b.head());
    assert_eq!(
        a.account(&addr(1)).balance,
        1_000_000 + 700 - receipts[0].gas_used - receipts[1].gas_used
    );
}

#[test]
fn abci_shaped_interface_replicates_between_two_ledgers() {
    use tessera_ledger::{Application, BlockInfo};
    let mut proposer = ledger(3, 1_000_000);
    let mut validator = ledger(3, 1_000_000);
    let good: Vec<Vec<u8>> = (0..3)
        .map(|n| transfer_tx(0, n, addr(1), 10).as_bytes().to_vec())
        .collect();
    for tx in &good {
        proposer.check_tx(tx).unwrap();
    }
    // check_tx remembers what it admitted: a replay and a gap are refused.
    assert!(matches!(
        proposer.check_tx(&good[1]),
        Err(TxError::NonceTooLow {
            expected: 3,
            got: 1
        })
    ));
    let gap = transfer_tx(0, 5, addr(1), 10).as_bytes().to_vec();
    assert!(matches!(
        proposer.check_tx(&gap),
        Err(TxError::NonceTooHigh { .. })
    ));
    let forged = SignedTransaction::sign(
        transfer_tx(1, 0, addr(0), 1).tx().clone(),
        &SecretKey::test_account(2),
    )
    .unwrap()
    .as_bytes()
    .to_vec();
    let info = BlockInfo {
        height: 1,
        time_ms: 5_000,
        proposer: PROPOSER,
    };
    let mut candidates = good.clone();
    candidates.extend([gap, forged.clone(), b"junk".to_vec()]);
    let chosen = proposer.prepare_proposal(&info, candidates);
    assert_eq!(chosen, good, "only the good transactions are proposed");
    validator.process_proposal(&info, &chosen).unwrap();
    let mut with_forged = chosen.clone();
    with_forged.push(forged);
    assert!(matches!(
        validator.process_proposal(&info, &with_forged),
        Err(BlockError::Tx { index: 3, .. })
    ));
    let a = proposer.finalize_block(&info, &chosen).unwrap();
    let b = validator.finalize_block(&info, &chosen).unwrap();
    assert_eq!(a.app_hash, b.app_hash);
    assert_eq!(a.header, b.header);
    assert!(a.receipts.iter().all(|r| r.status == Status::Success));
    assert_eq!(Application::commit(&mut proposer), Some(a.header.clone()));
    Application::commit(&mut validator);

    // A decided block may carry a transaction that cannot run at its turn (here a replay):
    // both sides record it as rejected, charge nothing, and still agree.
    let info = BlockInfo {
        height: 2,
        time_ms: 6_000,
        proposer: PROPOSER,
    };
    let txs = vec![
        good[0].clone(),
        transfer_tx(1, 0, addr(2), 5).as_bytes().to_vec(),
    ];
    let a = proposer.finalize_block(&info, &txs).unwrap();
    let b = validator.finalize_block(&info, &txs).unwrap();
    assert_eq!(a.app_hash, b.app_hash);
    assert_eq!(a.receipts[0].status, Status::Rejected);
    assert_eq!(a.receipts[0].gas_used, 0);
    assert_eq!(a.receipts[1].status, Status::Success);
    Application::commit(&mut proposer);
    assert_eq!(proposer.account(&addr(0)).nonce, 3);
    assert_eq!(proposer.state().total_balance(), proposer.supply());
}

#[test]
fn pipelined_batches_commit_every_block_durably() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::init(dir.path(), &genesis(4, 1_000_000), node_config()).unwrap();
    let batches: Vec<Vec<SignedTransaction>> = (0..5u64)
        .map(|round| {
            (0..4)
                .map(|i| transfer_tx(i, round, addr((i + 1) % 4), 3))
                .collect()
        })
        .collect();
    // A forged transaction in the third batch is refused at admission, the rest go through.
    let mut batches = batches;
    batches[2][3] =
        SignedTransaction::sign(batches[2][3].tx().clone(), &SecretKey::test_account(0)).unwrap();
    let mut seen = Vec::new();
    node.run_batches(
        batches,
        || 5_000,
        |admitted, committed| {
            seen.push((
                admitted.iter().filter(|r| r.is_ok()).count(),
                committed.txs,
                committed.header.height,
            ));
            true
        },
    )
    .unwrap();
    // Sender 3 lost its round-2 transaction, so its later nonces leave a gap: rounds 3 and 4
    // of sender 3 are refused too.
    assert_eq!(
        seen,
        vec![(4, 4, 1), (4, 4, 2), (3, 3, 3), (3, 3, 4), (3, 3, 5)]
    );
    let head = node.ledger().head().clone();
    drop(node);
    let replay = tessera_ledger::replay(dir.path()).unwrap();
    assert!(replay.failure.is_none());
    assert_eq!(replay.head, head);
}
