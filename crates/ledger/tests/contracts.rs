#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! The native contracts driven through the executor: every call is a signed transaction in a
//! block, fees are charged, and a follower ledger replays each block and must agree on the
//! state root.

use std::collections::HashMap;

use serde::Deserialize;
use tessera_ledger::cheque::{Cheque, ChequeIssuer, ChequeReceiver, ContentId, SignedCheque};
use tessera_ledger::contracts::{
    self, chequebook, registry, AnnounceWithdrawalArgs, CashArgs, Cashed, DepositArgs,
    RegisterArgs, TransferArgs, TransferEvent, TransferOwnershipArgs, WithdrawArgs, CHEQUEBOOK,
    REGISTRY, TOKEN,
};
use tessera_ledger::{
    Address, Call, ContractError, Genesis, Ledger, Params, Receipt, SecretKey, Signatures,
    SignedTransaction, Status, Transaction,
};

const CHAIN: u64 = 77;
const START_MS: u64 = 1_700_000_000_000;
const GAS_LIMIT: u64 = 200_000;
const INITIAL: u64 = 10_000_000;

const ALICE: u64 = 1; // payer
const BOB: u64 = 2; // seeder
const CAROL: u64 = 3; // content creator
const DAVE: u64 = 4; // bystander who submits cheques
const PROPOSER: u64 = 99;

fn addr(index: u64) -> Address {
    SecretKey::test_account(index).public_key().address()
}

fn escrow() -> Address {
    Address::of_contract(CHEQUEBOOK)
}

/// A sequencer and a follower that replays every block.
struct Chain {
    ledger: Ledger,
    follower: Ledger,
    time_ms: u64,
    nonces: HashMap<u64, u64>,
    /// Fees paid so far, per account index.
    fees: HashMap<u64, u64>,
}

impl Chain {
    fn new() -> Chain {
        let genesis = Genesis {
            chain_id: CHAIN,
            time_ms: START_MS,
            params: Params::default(),
            accounts: [ALICE, BOB, CAROL, DAVE]
                .iter()
                .map(|i| (addr(*i), INITIAL))
                .collect(),
        };
        Chain {
            ledger: Ledger::from_genesis(&genesis, contracts::native()).unwrap(),
            follower: Ledger::from_genesis(&genesis, contracts::native()).unwrap(),
            time_ms: START_MS,
            nonces: HashMap::new(),
            fees: HashMap::new(),
        }
    }

    fn sign(&mut self, who: u64, call: Call) -> SignedTransaction {
        let key = SecretKey::test_account(who);
        let nonce = self.nonces.entry(who).or_insert(0);
        let tx = Transaction {
            chain_id: CHAIN,
            sender: key.public_key(),
            nonce: *nonce,
            gas_limit: GAS_LIMIT,
            gas_price: 1,
            call,
        };
        *nonce += 1;
        SignedTransaction::sign(tx, &key).unwrap()
    }

    /// Runs one call in a block of its own, `advance_ms` after the previous block.
    fn run_at(&mut self, advance_ms: u64, who: u64, call: Call) -> Receipt {
        self.time_ms += advance_ms;
        let stx = self.sign(who, call);
        let proposal = self
            .ledger
            .propose(self.time_ms, addr(PROPOSER), vec![stx], Signatures::Verify)
            .unwrap();
        assert!(proposal.rejected.is_empty(), "{:?}", proposal.rejected);
        self.ledger.commit().unwrap();
        let replayed = self
            .follower
            .apply_block(&proposal.block, Signatures::Verify)
            .unwrap();
        self.follower.commit().unwrap();
        assert_eq!(replayed, proposal.receipts);
        assert_eq!(
            self.follower.head().state_root,
            self.ledger.head().state_root
        );
        // No mint anywhere: the supply is conserved, fees included.
        assert_eq!(self.ledger.state().total_balance(), self.ledger.supply());
        let receipt = proposal.receipts.into_iter().next().unwrap();
        *self.fees.entry(who).or_insert(0) += receipt.gas_used;
        receipt
    }

    fn run(&mut self, who: u64, call: Call) -> Receipt {
        self.run_at(1_000, who, call)
    }

    fn balance(&self, who: &Address) -> u64 {
        self.ledger.account(who).balance
    }

    /// Balance of a test account plus the fees it paid: what its balance would be with free
    /// transactions.
    fn gross(&self, index: u64) -> u64 {
        self.balance(&addr(index)) + self.fees.get(&index).copied().unwrap_or(0)
    }

    fn deposit(&mut self, who: u64, amount: u64) -> Receipt {
        self.run(
            who,
            Call::new(CHEQUEBOOK, "deposit", &DepositArgs { amount }).unwrap(),
        )
    }

    fn cash(&mut self, submitter: u64, cheque: &SignedCheque) -> Receipt {
        self.cash_at(1_000, submitter, cheque)
    }

    fn cash_at(&mut self, advance_ms: u64, submitter: u64, cheque: &SignedCheque) -> Receipt {
        let args = CashArgs::new(cheque).unwrap();
        self.run_at(
            advance_ms,
            submitter,
            Call::new(CHEQUEBOOK, "cash", &args).unwrap(),
        )
    }
}

fn ok(receipt: &Receipt) {
    assert_eq!(receipt.status, Status::Success, "{:?}", receipt.error);
    assert_eq!(receipt.error, None);
}

fn failed(receipt: &Receipt, error: &ContractError) {
    assert_eq!(receipt.status, Status::Reverted);
    assert_eq!(receipt.error.as_deref(), Some(error.to_string().as_str()));
    assert!(receipt.events.is_empty());
    assert!(receipt.output.is_empty());
    assert!(receipt.gas_used > 0, "a failed call still pays");
}

fn output_u64(receipt: &Receipt) -> u64 {
    tessera_bencode::from_bytes(&receipt.output).unwrap()
}

fn event<'a, T: Deserialize<'a>>(receipt: &'a Receipt, name: &str) -> T {
    let ev = receipt
        .events
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no {name} event in {:?}", receipt.events));
    tessera_bencode::from_bytes(&ev.data).unwrap()
}

fn issuer(chain_id: u64) -> ChequeIssuer {
    ChequeIssuer::new(SecretKey::test_account(ALICE), chain_id)
}

#[test]
fn token_transfer_and_overdraft() {
    let mut chain = Chain::new();
    let r = chain.run(
        ALICE,
        Call::new(
            TOKEN,
            "transfer",
            &TransferArgs {
                to: addr(BOB),
                amount: 1_234,
            },
        )
        .unwrap(),
    );
    ok(&r);
    assert_eq!(
        event::<TransferEvent>(&r, "transfer"),
        TransferEvent {
            from: addr(ALICE),
            to: addr(BOB),
            amount: 1_234
        }
    );
    assert_eq!(chain.balance(&addr(ALICE)), INITIAL - 1_234 - r.gas_used);
    assert_eq!(chain.balance(&addr(BOB)), INITIAL + 1_234);
    assert_eq!(chain.balance(&addr(PROPOSER)), r.gas_used);

    // Overdraft: reverted, fee charged, nonce consumed, nothing moved.
    let before = chain.balance(&addr(BOB));
    let alice_before = chain.balance(&addr(ALICE));
    let r = chain.run(
        BOB,
        Call::new(
            TOKEN,
            "transfer",
            &TransferArgs {
                to: addr(ALICE),
                amount: before,
            },
        )
        .unwrap(),
    );
    failed(
        &r,
        &ContractError::InsufficientBalance {
            needed: before,
            // The fee for the whole gas limit was bought before the call ran.
            available: before - GAS_LIMIT,
        },
    );
    assert_eq!(chain.balance(&addr(BOB)), before - r.gas_used);
    assert_eq!(chain.ledger.account(&addr(BOB)).nonce, 1);
    assert_eq!(chain.balance(&addr(ALICE)), alice_before);

    // Unknown method: reverted too.
    let r = chain.run(
        ALICE,
        Call::new(TOKEN, "mint", &DepositArgs { amount: 5 }).unwrap(),
    );
    failed(&r, &ContractError::UnknownMethod("mint".into()));
    assert_eq!(chain.ledger.account(&addr(ALICE)).nonce, 2);
}

#[test]
fn deposit_cash_partial_then_rest_after_top_up() {
    let mut chain = Chain::new();
    let r = chain.deposit(ALICE, 1_000);
    ok(&r);
    assert_eq!(output_u64(&r), 1_000);
    assert_eq!(chain.balance(&escrow()), 1_000);
    assert_eq!(chain.gross(ALICE), INITIAL - 1_000);

    let mut alice = issuer(CHAIN);
    let mut bob = ChequeReceiver::new(CHAIN, addr(BOB));
    let alice_key = SecretKey::test_account(ALICE).public_key();
    // Many small per-piece payments; only the last cheque matters.
    for _ in 0..15 {
        let c = alice.pay(addr(BOB), None, 100).unwrap();
        assert_eq!(bob.receive(&c, &alice_key).unwrap(), 100);
    }
    let best = *bob.best(&addr(ALICE), None).unwrap();
    assert_eq!(best.cheque.cumulative, 1_500);

    // The book holds only 1 000: that is paid, the cheque stays good for the rest.
    let r = chain.cash(DAVE, &best);
    ok(&r);
    assert_eq!(output_u64(&r), 1_000);
    let cashed: Cashed = event(&r, "cashed");
    assert_eq!(
        (
            cashed.payer,
            cashed.beneficiary,
            cashed.amount,
            cashed.royalty,
            cashed.paid
        ),
        (addr(ALICE), addr(BOB), 1_000, 0, 1_000)
    );
    assert_eq!(chain.gross(BOB), INITIAL + 1_000);
    assert_eq!(
        chain.gross(DAVE),
        INITIAL,
        "the submitter only pays the fee"
    );
    assert_eq!(chain.balance(&escrow()), 0);

    // Empty book.
    let r = chain.cash(BOB, &best);
    failed(&r, &ContractError::ChequebookEmpty);

    // Top up; the same cheque now pays the remaining 500.
    ok(&chain.deposit(ALICE, 2_000));
    let r = chain.cash(BOB, &best);
    ok(&r);
    assert_eq!(output_u64(&r), 500);
    assert_eq!(chain.gross(BOB), INITIAL + 1_500);
    assert_eq!(chain.balance(&escrow()), 1_500);
    let book = chequebook::book(chain.ledger.state(), &addr(ALICE)).unwrap();
    assert_eq!(book.balance, 1_500);
    assert_eq!(book.key, alice_key);
    assert_eq!(
        chequebook::paid(chain.ledger.state(), &addr(ALICE), &addr(BOB), None),
        1_500
    );
    assert_eq!(chain.gross(ALICE), INITIAL - 3_000);
}

#[test]
fn old_cheque_cashed_again_pays_nothing() {
    let mut chain = Chain::new();
    ok(&chain.deposit(ALICE, 5_000));
    let mut alice = issuer(CHAIN);
    let old = alice.pay(addr(BOB), None, 300).unwrap();
    let new = alice.pay(addr(BOB), None, 200).unwrap();
    ok(&chain.cash(BOB, &new));
    assert_eq!(chain.gross(BOB), INITIAL + 500);

    let r = chain.cash(BOB, &old);
    failed(
        &r,
        &ContractError::NothingToCash {
            cumulative: 300,
            paid: 500,
        },
    );
    let r = chain.cash(DAVE, &new);
    failed(
        &r,
        &ContractError::NothingToCash {
            cumulative: 500,
            paid: 500,
        },
    );
    assert_eq!(chain.gross(BOB), INITIAL + 500);
    assert_eq!(chain.balance(&escrow()), 4_500);

    // Lanes are separate: a cheque for content is not limited by the plain lane's total.
    let c = alice
        .pay(addr(BOB), Some(ContentId::V2([8; 32])), 50)
        .unwrap();
    let r = chain.cash(BOB, &c);
    ok(&r);
    assert_eq!(output_u64(&r), 50);
}

#[test]
fn forged_and_foreign_cheques_are_refused() {
    let mut chain = Chain::new();
    let mut alice = issuer(CHAIN);
    let genuine = alice.pay(addr(BOB), None, 100).unwrap();

    // No chequebook yet.
    failed(&chain.cash(BOB, &genuine), &ContractError::NoChequebook);
    ok(&chain.deposit(ALICE, 1_000));

    // Bob writes himself a cheque on Alice's book.
    let forged = genuine.cheque.sign(&SecretKey::test_account(BOB)).unwrap();
    let r = chain.cash(BOB, &forged);
    assert_eq!(r.status, Status::Reverted);
    assert!(
        r.error.as_deref().unwrap().starts_with("bad signature"),
        "{:?}",
        r.error
    );
    failed(
        &r,
        &ContractError::Signature(tessera_ledger::SignatureError::Invalid),
    );

    // Alice's signature, but Bob raised the amount.
    let mut tampered = genuine;
    tampered.cheque.cumulative = 900;
    failed(
        &chain.cash(BOB, &tampered),
        &ContractError::Signature(tessera_ledger::SignatureError::Invalid),
    );

    // A genuine cheque for another chain.
    let other = issuer(CHAIN + 1).pay(addr(BOB), None, 100).unwrap();
    failed(
        &chain.cash(BOB, &other),
        &ContractError::InvalidArgument("cheque is for another chain"),
    );
    // The same body re-labelled for this chain no longer matches the signature.
    let relabelled = SignedCheque {
        cheque: Cheque {
            chain_id: CHAIN,
            ..other.cheque
        },
        signature: other.signature,
    };
    failed(
        &chain.cash(BOB, &relabelled),
        &ContractError::Signature(tessera_ledger::SignatureError::Invalid),
    );

    // A cheque Alice writes to herself would skip the notice period.
    let to_self = alice.pay(addr(ALICE), None, 1_000).unwrap();
    failed(
        &chain.cash(ALICE, &to_self),
        &ContractError::InvalidArgument("a payer cannot cash a cheque to itself"),
    );

    assert_eq!(chain.balance(&escrow()), 1_000);
    assert_eq!(chain.gross(BOB), INITIAL);
    ok(&chain.cash(BOB, &genuine));
    assert_eq!(chain.gross(BOB), INITIAL + 100);
}

#[test]
fn royalty_split_with_registered_content() {
    let mut chain = Chain::new();
    let v1 = [0x11; 20];
    let v2 = [0x22; 32];
    let r = chain.run(
        CAROL,
        Call::new(
            REGISTRY,
            "register",
            &RegisterArgs {
                v1: Some(v1),
                v2: Some(v2),
                price_per_byte: 2,
                royalty_bps: 1_000,
            },
        )
        .unwrap(),
    );
    ok(&r);
    let record = registry::lookup(chain.ledger.state(), &ContentId::V1(v1)).unwrap();
    assert_eq!(record.owner, addr(CAROL));
    assert_eq!(record.registered_height, 1);
    assert_eq!(
        registry::lookup(chain.ledger.state(), &ContentId::V2(v2)),
        Some(record)
    );

    ok(&chain.deposit(ALICE, 10_000));
    let mut alice = issuer(CHAIN);
    // A cheque naming the v2 hash finds the registration too.
    let c = alice
        .pay(addr(BOB), Some(ContentId::V2(v2)), 4_321)
        .unwrap();
    let r = chain.cash(DAVE, &c);
    ok(&r);
    assert_eq!(output_u64(&r), 4_321);
    let cashed: Cashed = event(&r, "cashed");
    assert_eq!(cashed.royalty, 432); // 10 % of 4 321, rounded down
    assert_eq!(cashed.owner, Some(addr(CAROL)));
    assert_eq!(cashed.content, Some(ContentId::V2(v2)));
    assert_eq!(chain.gross(CAROL), INITIAL + 432);
    assert_eq!(chain.gross(BOB), INITIAL + 4_321 - 432);
    assert_eq!(chain.gross(ALICE), INITIAL - 10_000);
    assert_eq!(chain.gross(DAVE), INITIAL);
    assert_eq!(chain.balance(&escrow()), 10_000 - 4_321);

    // Unregistered content: everything to the beneficiary.
    let c = alice
        .pay(addr(BOB), Some(ContentId::V1([0x33; 20])), 1_000)
        .unwrap();
    let r = chain.cash(BOB, &c);
    ok(&r);
    assert_eq!(event::<Cashed>(&r, "cashed").royalty, 0);
    assert_eq!(chain.gross(BOB), INITIAL + 4_321 - 432 + 1_000);
    assert_eq!(chain.gross(CAROL), INITIAL + 432);

    // After an ownership transfer the royalty follows the new owner.
    ok(&chain.run(
        CAROL,
        Call::new(
            REGISTRY,
            "transfer",
            &TransferOwnershipArgs {
                content: ContentId::V1(v1),
                new_owner: addr(DAVE),
            },
        )
        .unwrap(),
    ));
    let c = alice.pay(addr(BOB), Some(ContentId::V1(v1)), 100).unwrap();
    ok(&chain.cash(BOB, &c));
    assert_eq!(chain.gross(DAVE), INITIAL + 10);
    assert_eq!(chain.gross(CAROL), INITIAL + 432);
    assert_eq!(chain.balance(&escrow()), 10_000 - 4_321 - 1_000 - 100);
}

#[test]
fn withdrawal_waits_for_the_notice_period() {
    let mut chain = Chain::new();
    let notice = chain.ledger.params().notice_period_ms;
    ok(&chain.deposit(ALICE, 1_000));

    let withdraw = || Call::new(CHEQUEBOOK, "withdraw", &WithdrawArgs {}).unwrap();
    let r = chain.run(ALICE, withdraw());
    failed(
        &r,
        &ContractError::NoticePeriod {
            ready_at_ms: 0,
            now_ms: chain.time_ms,
        },
    );

    let r = chain.run(
        ALICE,
        Call::new(
            CHEQUEBOOK,
            "announce_withdrawal",
            &AnnounceWithdrawalArgs { amount: 800 },
        )
        .unwrap(),
    );
    ok(&r);
    let ready_at_ms = chain.time_ms + notice;
    assert_eq!(output_u64(&r), ready_at_ms);

    // Too early.
    let r = chain.run_at(notice - 1_000, ALICE, withdraw());
    failed(
        &r,
        &ContractError::NoticePeriod {
            ready_at_ms,
            now_ms: ready_at_ms - 1_000,
        },
    );

    // Bob cashes during the notice period.
    let c = issuer(CHAIN).pay(addr(BOB), None, 300).unwrap();
    let r = chain.cash_at(500, BOB, &c);
    ok(&r);
    assert_eq!(output_u64(&r), 300);
    assert_eq!(chain.balance(&escrow()), 700);

    // Exactly at ready_at_ms: what is left of the announced amount comes back.
    let r = chain.run_at(500, ALICE, withdraw());
    ok(&r);
    assert_eq!(chain.time_ms, ready_at_ms);
    assert_eq!(output_u64(&r), 700);
    assert_eq!(chain.balance(&escrow()), 0);
    assert_eq!(chain.gross(ALICE), INITIAL - 300);
    assert_eq!(chain.gross(BOB), INITIAL + 300);
    let book = chequebook::book(chain.ledger.state(), &addr(ALICE)).unwrap();
    assert_eq!((book.balance, book.withdrawal), (0, None));

    // The announcement is spent.
    let r = chain.run(ALICE, withdraw());
    failed(
        &r,
        &ContractError::NoticePeriod {
            ready_at_ms: 0,
            now_ms: chain.time_ms,
        },
    );
    // Only the owner announces for its own book; Bob has none.
    let r = chain.run(
        BOB,
        Call::new(
            CHEQUEBOOK,
            "announce_withdrawal",
            &AnnounceWithdrawalArgs { amount: 1 },
        )
        .unwrap(),
    );
    failed(&r, &ContractError::NoChequebook);
}

#[test]
fn registry_duplicates_and_unauthorised_transfers() {
    let mut chain = Chain::new();
    let v1 = [0x44; 20];
    let register = |v1: Option<[u8; 20]>, v2: Option<[u8; 32]>| {
        Call::new(
            REGISTRY,
            "register",
            &RegisterArgs {
                v1,
                v2,
                price_per_byte: 1,
                royalty_bps: 500,
            },
        )
        .unwrap()
    };
    ok(&chain.run(CAROL, register(Some(v1), None)));
    failed(
        &chain.run(DAVE, register(Some(v1), None)),
        &ContractError::AlreadyRegistered,
    );
    // Adding a v2 hash to someone else's v1 is a duplicate too, and writes nothing.
    failed(
        &chain.run(DAVE, register(Some(v1), Some([0x55; 32]))),
        &ContractError::AlreadyRegistered,
    );
    assert_eq!(
        registry::lookup(chain.ledger.state(), &ContentId::V2([0x55; 32])),
        None
    );
    failed(
        &chain.run(CAROL, register(None, None)),
        &ContractError::InvalidArgument("register needs a v1 or a v2 info hash"),
    );

    let transfer = |to: u64| {
        Call::new(
            REGISTRY,
            "transfer",
            &TransferOwnershipArgs {
                content: ContentId::V1(v1),
                new_owner: addr(to),
            },
        )
        .unwrap()
    };
    failed(
        &chain.run(DAVE, transfer(DAVE)),
        &ContractError::Unauthorized("only the owner can transfer content"),
    );
    assert_eq!(
        registry::lookup(chain.ledger.state(), &ContentId::V1(v1))
            .unwrap()
            .owner,
        addr(CAROL)
    );
    let r = chain.run(CAROL, transfer(DAVE));
    ok(&r);
    let ev: registry::Transferred = event(&r, "transferred");
    assert_eq!((ev.from, ev.to, ev.seq), (addr(CAROL), addr(DAVE), 1));
    let record = registry::lookup(chain.ledger.state(), &ContentId::V1(v1)).unwrap();
    assert_eq!((record.owner, record.transfers), (addr(DAVE), 1));
    let history = registry::history(chain.ledger.state(), &ContentId::V1(v1));
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].height, chain.ledger.head().height);
    // Carol no longer owns it.
    failed(
        &chain.run(CAROL, transfer(CAROL)),
        &ContractError::Unauthorized("only the owner can transfer content"),
    );
}

#[test]
fn cash_out_of_gas_changes_nothing_but_the_fee() {
    let mut chain = Chain::new();
    ok(&chain.deposit(ALICE, 1_000));
    let c = issuer(CHAIN).pay(addr(BOB), None, 100).unwrap();
    let call = Call::new(CHEQUEBOOK, "cash", &CashArgs::new(&c).unwrap()).unwrap();
    let key = SecretKey::test_account(BOB);
    let sign = |gas_limit: u64| {
        SignedTransaction::sign(
            Transaction {
                chain_id: CHAIN,
                sender: key.public_key(),
                nonce: 0,
                gas_limit,
                gas_price: 1,
                call: call.clone(),
            },
            &key,
        )
        .unwrap()
    };
    // Enough for the transaction itself and the book read, not for the signature check.
    let limit = chain.ledger.intrinsic_gas(&sign(9_000)) + 1_000;
    assert!((1_000..10_000).contains(&limit));
    let stx = sign(limit);
    let proposal = chain
        .ledger
        .propose(
            chain.time_ms + 1,
            addr(PROPOSER),
            vec![stx],
            Signatures::Verify,
        )
        .unwrap();
    chain.ledger.commit().unwrap();
    let r = &proposal.receipts[0];
    assert_eq!(r.status, Status::OutOfGas);
    assert_eq!(r.gas_used, limit);
    assert!(r.events.is_empty());
    assert_eq!(chain.balance(&addr(BOB)), INITIAL - limit);
    assert_eq!(chain.balance(&escrow()), 1_000);
    assert_eq!(
        chequebook::paid(chain.ledger.state(), &addr(ALICE), &addr(BOB), None),
        0
    );
}

#[test]
fn gas_costs_stay_modest() {
    let mut chain = Chain::new();
    let mut gas = Vec::new();
    let r = chain.run(
        ALICE,
        Call::new(
            TOKEN,
            "transfer",
            &TransferArgs {
                to: addr(BOB),
                amount: 1,
            },
        )
        .unwrap(),
    );
    gas.push(("token.transfer", r.gas_used, 10_000));
    let r = chain.deposit(ALICE, 5_000);
    gas.push(("chequebook.deposit (new book)", r.gas_used, 10_000));
    let r = chain.deposit(ALICE, 5_000);
    gas.push(("chequebook.deposit (top-up)", r.gas_used, 10_000));
    let v2 = [0x66; 32];
    let r = chain.run(
        CAROL,
        Call::new(
            REGISTRY,
            "register",
            &RegisterArgs {
                v1: Some([0x66; 20]),
                v2: Some(v2),
                price_per_byte: 1,
                royalty_bps: 300,
            },
        )
        .unwrap(),
    );
    gas.push(("registry.register (hybrid)", r.gas_used, 15_000));
    let mut alice = issuer(CHAIN);
    let r = chain.cash(BOB, &alice.pay(addr(BOB), None, 10).unwrap());
    gas.push(("chequebook.cash (first, no content)", r.gas_used, 20_000));
    let r = chain.cash(BOB, &alice.pay(addr(BOB), None, 10).unwrap());
    gas.push(("chequebook.cash (again, no content)", r.gas_used, 20_000));
    let c = alice
        .pay(addr(BOB), Some(ContentId::V2(v2)), 1_000)
        .unwrap();
    let r = chain.cash(BOB, &c);
    assert_eq!(event::<Cashed>(&r, "cashed").royalty, 30);
    gas.push(("chequebook.cash (royalty)", r.gas_used, 25_000));
    let r = chain.cash(BOB, &c);
    gas.push(("chequebook.cash (replayed, reverted)", r.gas_used, 20_000));
    let r = chain.run(
        ALICE,
        Call::new(
            CHEQUEBOOK,
            "announce_withdrawal",
            &AnnounceWithdrawalArgs { amount: 10 },
        )
        .unwrap(),
    );
    gas.push(("chequebook.announce_withdrawal", r.gas_used, 10_000));
    let notice = chain.ledger.params().notice_period_ms;
    let r = chain.run_at(
        notice,
        ALICE,
        Call::new(CHEQUEBOOK, "withdraw", &WithdrawArgs {}).unwrap(),
    );
    ok(&r);
    gas.push(("chequebook.withdraw", r.gas_used, 10_000));
    let r = chain.run(
        CAROL,
        Call::new(
            REGISTRY,
            "transfer",
            &TransferOwnershipArgs {
                content: ContentId::V2(v2),
                new_owner: addr(DAVE),
            },
        )
        .unwrap(),
    );
    ok(&r);
    gas.push(("registry.transfer (hybrid)", r.gas_used, 15_000));
    for (what, used, bound) in gas {
        println!("{what}: {used}");
        assert!(
            used < bound,
            "{what} used {used} gas, expected under {bound}"
        );
    }
}
