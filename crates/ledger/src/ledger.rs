//! The ledger state machine: genesis, transaction execution and blocks. The ABCI++-shaped
//! interface over it is [`crate::Application`].

use std::collections::HashSet;
use std::thread;

use serde::{Deserialize, Serialize};

use crate::block::{receipts_root, tx_root, Block, BlockHeader, Receipt, Status};
use crate::codec::{decode_canonical, encode};
use crate::crypto::{Address, Hash};
use crate::engine::{Context, Contract, Env, Params, SignatureCheck};
use crate::error::{BlockError, ContractError, DecodeError, SignatureError, TxError};
use crate::gas::GasMeter;
use crate::state::{account_key, Account, Journal, State};
use crate::tx::SignedTransaction;

/// Largest encoded genesis, in bytes.
pub const MAX_GENESIS_LEN: usize = 256 * 1024 * 1024;

/// The first state of a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// The chain id every transaction and cheque must carry.
    pub chain_id: u64,
    /// Time of the genesis block (ms since the Unix epoch).
    pub time_ms: u64,
    /// Chain parameters.
    pub params: Params,
    /// Initial balances. Their sum is the total supply, fixed for ever.
    pub accounts: Vec<(Address, u64)>,
}

impl Genesis {
    /// Canonical encoding.
    ///
    /// # Errors
    /// [`DecodeError::Invalid`] if a number is out of range.
    pub fn encode(&self) -> Result<Vec<u8>, DecodeError> {
        encode("genesis", self)
    }

    /// Decodes a genesis.
    ///
    /// # Errors
    /// [`DecodeError`] for anything but a canonical genesis.
    pub fn decode(bytes: &[u8]) -> Result<Genesis, DecodeError> {
        decode_canonical("genesis", bytes, MAX_GENESIS_LEN)
    }

    /// The total supply.
    pub fn supply(&self) -> u128 {
        self.accounts.iter().map(|(_, b)| u128::from(*b)).sum()
    }
}

/// The block a consensus engine decided to run next (what ABCI's `FinalizeBlock` request
/// carries besides the transactions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Its height: the head's plus one.
    pub height: u64,
    /// Its time (ms since the Unix epoch), never before the head's.
    pub time_ms: u64,
    /// Its proposer, who receives the fees.
    pub proposer: Address,
}

/// Whether a block's signatures were already checked (by the mempool that supplied them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signatures {
    /// Check every signature (in parallel) before applying: blocks from elsewhere, replay.
    Verify,
    /// The caller verified them all already.
    AlreadyVerified,
}

/// A block built by [`Ledger::propose`].
#[derive(Clone, Debug)]
pub struct Proposal {
    /// The block, executed and awaiting [`Ledger::commit`].
    pub block: Block,
    /// One receipt per transaction in the block.
    pub receipts: Vec<Receipt>,
    /// Candidates left out: their hash, sender, and why.
    pub rejected: Vec<(Hash, Address, TxError)>,
}

/// The outcome of executing one transaction.
#[derive(Clone, Debug)]
pub struct TxOutcome {
    /// The receipt.
    pub receipt: Receipt,
    /// The typed error of a failed call (the receipt carries its text).
    pub error: Option<ContractError>,
}

struct Pending {
    header: BlockHeader,
    undo: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// The ledger: state, head and contracts.
pub struct Ledger {
    chain_id: u64,
    params: Params,
    supply: u128,
    contracts: Vec<Box<dyn Contract>>,
    state: State,
    head: BlockHeader,
    pending: Option<Pending>,
    undo: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Tags of signatures inside calls (cheques) already verified in parallel; see
    /// [`Contract::signature_checks`]. Affects speed only, never results.
    verified: HashSet<[u8; 32]>,
    /// What `check_tx` admitted since the last commit.
    pub(crate) check_state: crate::app::Pending,
}

/// Bound on remembered pre-verified call signatures.
const MAX_VERIFIED: usize = 1 << 20;

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("chain_id", &self.chain_id)
            .field("height", &self.head.height)
            .field("state_root", &self.head.state_root)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// The ledger at genesis, running `contracts` (usually [`crate::contracts::native`]).
    ///
    /// # Errors
    /// [`BlockError::Header`] if the supply exceeds `i64::MAX` or an account appears twice.
    pub fn from_genesis(
        genesis: &Genesis,
        contracts: Vec<Box<dyn Contract>>,
    ) -> Result<Ledger, BlockError> {
        let supply = genesis.supply();
        if supply > i64::MAX as u128 {
            return Err(BlockError::Header("genesis supply above 2^63 - 1"));
        }
        let mut entries = Vec::with_capacity(genesis.accounts.len());
        for (address, balance) in &genesis.accounts {
            let account = Account {
                balance: *balance,
                nonce: 0,
            };
            entries.push((account_key(address).to_vec(), account.encode().to_vec()));
        }
        entries.sort();
        if entries
            .windows(2)
            .any(|w| matches!(w, [a, b] if a.0 == b.0))
        {
            return Err(BlockError::Header("genesis lists an account twice"));
        }
        let mut state = State::from_entries(entries);
        let head = BlockHeader {
            chain_id: genesis.chain_id,
            height: 0,
            parent: Hash::ZERO,
            time_ms: genesis.time_ms,
            proposer: Address::default(),
            tx_root: Hash::ZERO,
            receipts_root: Hash::ZERO,
            state_root: state.root(),
        };
        Ok(Ledger {
            chain_id: genesis.chain_id,
            params: genesis.params.clone(),
            supply,
            contracts,
            state,
            head,
            pending: None,
            undo: Vec::new(),
            verified: HashSet::new(),
            check_state: Default::default(),
        })
    }

    /// The ledger restored from a snapshot of `state` taken at `head` (see
    /// [`Ledger::snapshot`]); the state root is recomputed and must match the header.
    ///
    /// # Errors
    /// [`BlockError::RootMismatch`] if the snapshot's state does not hash to the header's root.
    pub fn restore(
        genesis: &Genesis,
        contracts: Vec<Box<dyn Contract>>,
        snapshot: Snapshot,
    ) -> Result<Ledger, BlockError> {
        let mut state = State::from_entries(snapshot.entries);
        let computed = state.root();
        if computed != snapshot.head.state_root {
            return Err(BlockError::RootMismatch {
                which: "snapshot state",
                header: snapshot.head.state_root,
                computed,
            });
        }
        Ok(Ledger {
            chain_id: genesis.chain_id,
            params: genesis.params.clone(),
            supply: genesis.supply(),
            contracts,
            state,
            head: snapshot.head,
            pending: None,
            undo: Vec::new(),
            verified: HashSet::new(),
            check_state: Default::default(),
        })
    }

    /// A snapshot of the committed state and head.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            head: self.head.clone(),
            entries: self
                .state
                .entries()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect(),
        }
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The chain parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The total supply fixed at genesis.
    pub fn supply(&self) -> u128 {
        self.supply
    }

    /// The last committed (or, between finalize and commit, finalized) header.
    pub fn head(&self) -> &BlockHeader {
        self.pending.as_ref().map_or(&self.head, |p| &p.header)
    }

    /// The state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The state, mutably (to compute proofs, which caches hashes).
    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// An account.
    pub fn account(&self, address: &Address) -> Account {
        self.state.account(address)
    }

    /// The gas a transaction needs before its call runs (base plus bytes).
    pub fn intrinsic_gas(&self, stx: &SignedTransaction) -> u64 {
        let len = u64::try_from(stx.as_bytes().len()).unwrap_or(u64::MAX);
        self.params
            .gas
            .tx_base
            .saturating_add(self.params.gas.tx_byte.saturating_mul(len))
    }

    /// Checks that need no state: chain id, gas bounds, contract name. (Signatures are
    /// checked separately, in parallel.)
    ///
    /// # Errors
    /// The [`TxError`] that refuses it.
    pub fn check_stateless(&self, stx: &SignedTransaction) -> Result<(), TxError> {
        let tx = stx.tx();
        if tx.chain_id != self.chain_id {
            return Err(TxError::WrongChain {
                expected: self.chain_id,
                got: tx.chain_id,
            });
        }
        if tx.gas_price < self.params.min_gas_price {
            return Err(TxError::GasPriceTooLow {
                min: self.params.min_gas_price,
                got: tx.gas_price,
            });
        }
        let min = self.intrinsic_gas(stx);
        let max = self.params.block_gas_limit;
        if tx.gas_limit < min || tx.gas_limit > max {
            return Err(TxError::GasLimit {
                min,
                max,
                got: tx.gas_limit,
            });
        }
        if !self.contracts.iter().any(|c| c.name() == tx.call.contract) {
            return Err(TxError::UnknownContract(tx.call.contract.clone()));
        }
        Ok(())
    }

    /// Whether `stx` could run now as the sender's next transaction
    /// (`pending` of the sender's transactions already queued ahead of it).
    ///
    /// # Errors
    /// The [`TxError`] that refuses it.
    pub fn check_signed(&self, stx: &SignedTransaction, pending: u64) -> Result<(), TxError> {
        self.check_stateless(stx)?;
        stx.verify()?;
        self.check_account(stx, pending)
    }

    /// `check_tx` for a transaction whose signature the caller has already verified.
    ///
    /// # Errors
    /// The [`TxError`] that refuses it.
    pub fn check_tx_verified(&self, stx: &SignedTransaction, pending: u64) -> Result<(), TxError> {
        self.check_stateless(stx)?;
        self.check_account(stx, pending)
    }

    fn check_account(&self, stx: &SignedTransaction, pending: u64) -> Result<(), TxError> {
        let account = self.state.account(&stx.sender());
        let expected = account.nonce.saturating_add(pending);
        let got = stx.tx().nonce;
        if got < expected {
            return Err(TxError::NonceTooLow { expected, got });
        }
        if got > expected {
            return Err(TxError::NonceTooHigh { expected, got });
        }
        if u128::from(account.balance) < stx.max_fee() {
            return Err(TxError::CannotPayFee {
                fee: stx.max_fee(),
                balance: account.balance,
            });
        }
        Ok(())
    }

    /// Executes one transaction against the state (its signature must already be checked).
    /// On `Err` nothing changed; on `Ok` the fee was charged and the nonce consumed whatever
    /// the call did.
    ///
    /// # Errors
    /// The [`TxError`] that makes the transaction inadmissible in this block.
    pub fn apply_tx(&mut self, env: &Env, stx: &SignedTransaction) -> Result<TxOutcome, TxError> {
        self.check_stateless(stx)?;
        self.check_account(stx, 0)?;
        let tx = stx.tx();
        let sender = stx.sender();
        // Buy the whole gas limit up front; the unused part is refunded below.
        let max_fee = u64::try_from(stx.max_fee()).map_err(|_| TxError::CannotPayFee {
            fee: stx.max_fee(),
            balance: 0,
        })?;
        let mut account = self.state.account(&sender);
        account.balance -= max_fee; // checked by check_account
        account.nonce = account.nonce.saturating_add(1);
        self.write_account(&sender, account);

        let mut gas = GasMeter::new(tx.gas_limit);
        let mut events = Vec::new();
        let mut journal = Journal::default();
        let result = gas.charge(self.intrinsic_gas(stx)).and_then(|()| {
            let contract = self
                .contracts
                .iter()
                .find(|c| c.name() == tx.call.contract)
                .ok_or_else(|| ContractError::UnknownMethod(tx.call.contract.clone()))?;
            let mut ctx = Context {
                state: &self.state,
                journal: &mut journal,
                gas: &mut gas,
                events: &mut events,
                env,
                params: &self.params,
                caller_key: &tx.sender,
                verified: &self.verified,
                caller: sender,
                contract: contract.name(),
            };
            contract.call(&mut ctx, &tx.call.method, &tx.call.args)
        });
        let (status, output, error) = match result {
            Ok(output) => {
                for (key, value) in journal.into_writes() {
                    self.write(key, value);
                }
                (Status::Success, output, None)
            }
            Err(ContractError::OutOfGas) => {
                events.clear();
                (Status::OutOfGas, Vec::new(), Some(ContractError::OutOfGas))
            }
            Err(e) => {
                events.clear();
                (Status::Reverted, Vec::new(), Some(e))
            }
        };
        let used = gas.used();
        let fee = used.saturating_mul(tx.gas_price);
        let refund = max_fee.saturating_sub(fee);
        let mut account = self.state.account(&sender);
        account.balance = account.balance.saturating_add(refund);
        self.write_account(&sender, account);
        let mut proposer = self.state.account(&env.proposer);
        proposer.balance = proposer.balance.saturating_add(fee);
        self.write_account(&env.proposer, proposer);
        Ok(TxOutcome {
            receipt: Receipt {
                tx: stx.hash(),
                status,
                gas_used: used,
                error: error.as_ref().map(ToString::to_string),
                output,
                events,
            },
            error,
        })
    }

    /// Verifies, on all cores, the signatures of `txs` and the signatures their calls will
    /// check (cheques, as far as [`Contract::signature_checks`] can tell from the current
    /// state), remembering the latter so that execution finds them done. Returns each
    /// transaction's own signature check, in order.
    pub fn preverify(&mut self, txs: &[SignedTransaction]) -> Vec<Result<(), SignatureError>> {
        let (results, tags) = self.verify_batch(txs);
        self.remember_verified(tags);
        results
    }

    /// The signatures the calls of `txs` will check, as far as the current state tells
    /// (sequential and cheap: decoding, no curve arithmetic). With [`verify_prepared`] this is
    /// [`Ledger::preverify`] split in two, so that the curve work can run on other threads
    /// while this ledger executes a block.
    pub fn signature_checks(&self, txs: &[SignedTransaction]) -> Vec<Vec<SignatureCheck>> {
        txs.iter().map(|stx| self.checks_of(stx)).collect()
    }

    /// Remembers call signatures that [`verify_prepared`] found valid.
    pub fn remember_verified(&mut self, tags: Vec<[u8; 32]>) {
        if self.verified.len().saturating_add(tags.len()) > MAX_VERIFIED {
            self.verified.clear();
        }
        self.verified.extend(tags);
    }

    fn checks_of(&self, stx: &SignedTransaction) -> Vec<SignatureCheck> {
        let call = &stx.tx().call;
        match self.contracts.iter().find(|c| c.name() == call.contract) {
            Some(c) => c.signature_checks(&self.state, self.chain_id, &call.method, &call.args),
            None => Vec::new(),
        }
    }

    fn verify_batch(
        &self,
        txs: &[SignedTransaction],
    ) -> (Vec<Result<(), SignatureError>>, Vec<[u8; 32]>) {
        let work = |stx: &SignedTransaction| -> (Result<(), SignatureError>, Vec<[u8; 32]>) {
            let own = stx.verify();
            let checks = if own.is_ok() {
                self.checks_of(stx)
            } else {
                Vec::new()
            };
            (own, valid_tags(&checks))
        };
        split_outcomes(parallel_map(txs, &work), txs.len())
    }

    fn write_account(&mut self, address: &Address, account: Account) {
        self.write(
            account_key(address).to_vec(),
            Some(account.encode().to_vec()),
        );
    }

    fn write(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let old = self.state.get(&key).map(<[u8]>::to_vec);
        self.state.put(&key, value.as_deref());
        self.undo.push((key, old));
    }

    fn next_env(&self, time_ms: u64, proposer: Address) -> Env {
        Env {
            chain_id: self.chain_id,
            height: self.head.height.saturating_add(1),
            time_ms,
            proposer,
        }
    }

    /// `prepare_proposal` and `finalize_block` in one step, for a single-node sequencer: builds the next
    /// block from `candidates` (in order), executing each; candidates that are inadmissible
    /// (nonce, fee, block gas) are left out. The block stays pending until [`Ledger::commit`]
    /// or [`Ledger::abort`].
    ///
    /// # Errors
    /// [`BlockError::Header`] if a block is already pending, [`BlockError::Time`] if `time_ms`
    /// is before the head's time.
    pub fn propose(
        &mut self,
        time_ms: u64,
        proposer: Address,
        candidates: Vec<SignedTransaction>,
        signatures: Signatures,
    ) -> Result<Proposal, BlockError> {
        self.start_block(time_ms)?;
        let env = self.next_env(time_ms, proposer);
        let checks = match signatures {
            Signatures::Verify => self.preverify(&candidates),
            Signatures::AlreadyVerified => vec![Ok(()); candidates.len()],
        };
        let mut txs = Vec::new();
        let mut receipts = Vec::new();
        let mut rejected = Vec::new();
        let mut gas_budget = self.params.block_gas_limit;
        for (stx, check) in candidates.into_iter().zip(checks) {
            if txs.len() >= crate::block::MAX_BLOCK_TXS {
                rejected.push((stx.hash(), stx.sender(), TxError::MempoolFull));
                continue;
            }
            if let Err(e) = check {
                rejected.push((stx.hash(), stx.sender(), TxError::Signature(e)));
                continue;
            }
            if stx.tx().gas_limit > gas_budget {
                rejected.push((
                    stx.hash(),
                    stx.sender(),
                    TxError::GasLimit {
                        min: 0,
                        max: gas_budget,
                        got: stx.tx().gas_limit,
                    },
                ));
                continue;
            }
            match self.apply_tx(&env, &stx) {
                Ok(outcome) => {
                    gas_budget -= stx.tx().gas_limit;
                    receipts.push(outcome.receipt);
                    txs.push(stx);
                }
                Err(e) => rejected.push((stx.hash(), stx.sender(), e)),
            }
        }
        let header = BlockHeader {
            chain_id: self.chain_id,
            height: env.height,
            parent: self.head.hash(),
            time_ms,
            proposer,
            tx_root: tx_root(&txs),
            receipts_root: receipts_root(&receipts),
            state_root: self.state.root(),
        };
        self.pending = Some(Pending {
            header: header.clone(),
            undo: std::mem::take(&mut self.undo),
        });
        Ok(Proposal {
            block: Block { header, txs },
            receipts,
            rejected,
        })
    }

    fn start_block(&mut self, time_ms: u64) -> Result<(), BlockError> {
        if self.pending.is_some() {
            return Err(BlockError::Header("a block is pending commit"));
        }
        if time_ms < self.head.time_ms {
            return Err(BlockError::Time {
                parent: self.head.time_ms,
                got: time_ms,
            });
        }
        self.undo.clear();
        Ok(())
    }

    /// The checks on a whole block that need no execution — chain, height, parent,
    /// time, transaction root, limits, and every signature (in parallel).
    ///
    /// # Errors
    /// The first [`BlockError`] found.
    pub fn check_block(&self, block: &Block) -> Result<(), BlockError> {
        self.check_header(block)?;
        for (index, check) in verify_parallel(&block.txs).into_iter().enumerate() {
            check.map_err(|e| BlockError::Tx {
                index,
                error: TxError::Signature(e),
            })?;
        }
        Ok(())
    }

    pub(crate) fn check_header(&self, block: &Block) -> Result<(), BlockError> {
        let h = &block.header;
        if h.chain_id != self.chain_id {
            return Err(BlockError::Header("chain id"));
        }
        let expected = self.head.height.saturating_add(1);
        if h.height != expected {
            return Err(BlockError::Height {
                expected,
                got: h.height,
            });
        }
        let parent = self.head.hash();
        if h.parent != parent {
            return Err(BlockError::Parent {
                expected: parent,
                got: h.parent,
            });
        }
        if h.time_ms < self.head.time_ms {
            return Err(BlockError::Time {
                parent: self.head.time_ms,
                got: h.time_ms,
            });
        }
        block.check_tx_root()?;
        self.check_txs(&block.txs)
    }

    /// A block's transactions within the block limits (count, total gas), each well-formed
    /// on its own ([`Ledger::check_stateless`]).
    pub(crate) fn check_txs(&self, txs: &[SignedTransaction]) -> Result<(), BlockError> {
        if txs.len() > crate::block::MAX_BLOCK_TXS {
            return Err(BlockError::TooLarge("transactions"));
        }
        let gas: u128 = txs.iter().map(|t| u128::from(t.tx().gas_limit)).sum();
        if gas > u128::from(self.params.block_gas_limit) {
            return Err(BlockError::TooLarge("gas"));
        }
        for (index, stx) in txs.iter().enumerate() {
            self.check_stateless(stx)
                .map_err(|error| BlockError::Tx { index, error })?;
        }
        Ok(())
    }

    /// Executes `txs` as the next block described by `info` (signatures verified in parallel
    /// unless `signatures` says they were), leaving it pending until [`Ledger::commit`].
    /// A transaction that is not admissible at its turn (nonce, fee) gets a
    /// [`Status::Rejected`] receipt and changes nothing; a bad signature makes the whole block
    /// invalid, as `process_proposal` would have said.
    ///
    /// # Errors
    /// [`BlockError::Tx`] for a bad signature, [`BlockError::Time`] or
    /// [`BlockError::Header`] if the block cannot follow the head. Nothing changed then.
    pub fn execute(
        &mut self,
        info: &BlockInfo,
        txs: &[SignedTransaction],
        signatures: Signatures,
    ) -> Result<(BlockHeader, Vec<Receipt>), BlockError> {
        if signatures == Signatures::Verify {
            for (index, check) in self.preverify(txs).into_iter().enumerate() {
                check.map_err(|e| BlockError::Tx {
                    index,
                    error: TxError::Signature(e),
                })?;
            }
        }
        self.start_block(info.time_ms)?;
        let env = self.next_env(info.time_ms, info.proposer);
        let mut receipts = Vec::with_capacity(txs.len());
        for stx in txs {
            match self.apply_tx(&env, stx) {
                Ok(outcome) => receipts.push(outcome.receipt),
                Err(error) => receipts.push(Receipt {
                    tx: stx.hash(),
                    status: Status::Rejected,
                    gas_used: 0,
                    error: Some(error.to_string()),
                    output: Vec::new(),
                    events: Vec::new(),
                }),
            }
        }
        let header = BlockHeader {
            chain_id: self.chain_id,
            height: env.height,
            parent: self.head.hash(),
            time_ms: info.time_ms,
            proposer: info.proposer,
            tx_root: tx_root(txs),
            receipts_root: receipts_root(&receipts),
            state_root: self.state.root(),
        };
        self.pending = Some(Pending {
            header: header.clone(),
            undo: std::mem::take(&mut self.undo),
        });
        Ok((header, receipts))
    }

    /// Executes a block proposed elsewhere (or read back from the log) and checks that its
    /// header is exactly what executing it produced: link, roots of transactions, receipts and
    /// state. Returns the receipts; the block stays pending until [`Ledger::commit`]; on error
    /// nothing changed.
    ///
    /// # Errors
    /// Any [`BlockError`]: bad header or signature, or a root that does not match.
    pub fn apply_block(
        &mut self,
        block: &Block,
        signatures: Signatures,
    ) -> Result<Vec<Receipt>, BlockError> {
        self.check_header(block)?;
        let info = BlockInfo {
            height: block.header.height,
            time_ms: block.header.time_ms,
            proposer: block.header.proposer,
        };
        let (header, receipts) = self.execute(&info, &block.txs, signatures)?;
        let mismatch = [
            ("receipts", block.header.receipts_root, header.receipts_root),
            ("state", block.header.state_root, header.state_root),
        ]
        .into_iter()
        .find(|(_, claimed, computed)| claimed != computed);
        if let Some((which, claimed, computed)) = mismatch {
            self.abort();
            return Err(BlockError::RootMismatch {
                which,
                header: claimed,
                computed,
            });
        }
        Ok(receipts)
    }

    fn rollback(&mut self) {
        for (key, old) in std::mem::take(&mut self.undo).into_iter().rev() {
            self.state.put(&key, old.as_deref());
        }
    }

    /// The pending block becomes the head. (Durability is the caller's: the
    /// node appends the block to its log and syncs before calling this.) Returns the new head.
    pub fn commit(&mut self) -> Option<&BlockHeader> {
        let pending = self.pending.take()?;
        self.head = pending.header;
        Some(&self.head)
    }

    /// Drops the pending block, restoring the state to the head's.
    pub fn abort(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.undo = pending.undo;
            self.rollback();
        }
    }
}

/// Applies `f` to every item, spread over all cores (in one thread for fewer than 64 items);
/// results in input order. `f` should not panic: the results of a thread that dies are left
/// out, so the output is then shorter than the input.
pub fn parallel_map<T: Sync, U: Send>(items: &[T], f: &(impl Fn(&T) -> U + Sync)) -> Vec<U> {
    let threads = thread::available_parallelism().map_or(1, |n| n.get());
    if threads <= 1 || items.len() < 64 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for handle in handles {
            // `f` does not panic on any input (no unwrap, no indexing); should a thread die
            // anyway, its results are missing and the caller sees fewer results than items.
            if let Ok(part) = handle.join() {
                out.extend(part);
            }
        }
        out
    })
}

fn valid_tags(checks: &[SignatureCheck]) -> Vec<[u8; 32]> {
    checks
        .iter()
        .filter(|c| c.verify().is_ok())
        .map(SignatureCheck::tag)
        .collect()
}

type Outcome = (Result<(), SignatureError>, Vec<[u8; 32]>);

fn split_outcomes(
    mut outcomes: Vec<Outcome>,
    len: usize,
) -> (Vec<Result<(), SignatureError>>, Vec<[u8; 32]>) {
    // Results lost to a dead thread count as failures, never as verified.
    outcomes.resize_with(len, || (Err(SignatureError::Invalid), Vec::new()));
    let mut results = Vec::with_capacity(len);
    let mut tags = Vec::new();
    for (own, t) in outcomes {
        results.push(own);
        tags.extend(t);
    }
    (results, tags)
}

/// Verifies, on all cores and without the ledger, the signatures of `txs` and the call
/// signatures [`Ledger::signature_checks`] listed for them. Returns each transaction's own
/// result, in order, and the tags of the call signatures that verified (for
/// [`Ledger::remember_verified`]).
pub fn verify_prepared(
    txs: &[SignedTransaction],
    checks: &[Vec<SignatureCheck>],
) -> (Vec<Result<(), SignatureError>>, Vec<[u8; 32]>) {
    let pairs: Vec<(&SignedTransaction, Option<&Vec<SignatureCheck>>)> = txs
        .iter()
        .enumerate()
        .map(|(i, stx)| (stx, checks.get(i)))
        .collect();
    let work = |(stx, checks): &(&SignedTransaction, Option<&Vec<SignatureCheck>>)| -> Outcome {
        let own = stx.verify();
        let tags = match checks {
            Some(checks) if own.is_ok() => valid_tags(checks),
            _ => Vec::new(),
        };
        (own, tags)
    };
    split_outcomes(parallel_map(&pairs, &work), txs.len())
}

/// Verifies every transaction's signature, spread over all cores. Results are in input order.
pub fn verify_parallel(txs: &[SignedTransaction]) -> Vec<Result<(), SignatureError>> {
    let mut out = parallel_map(txs, &SignedTransaction::verify);
    // Results lost to a dead thread count as failures, never as verified.
    out.resize(txs.len(), Err(SignatureError::Invalid));
    out
}

/// The committed state at a height, for fast restarts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The head it was taken at.
    pub head: BlockHeader,
    /// Every state entry.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Snapshot {
    /// Encoding: the bencoded header, then each entry as `u32 len ‖ key ‖ u32 len ‖ value`
    /// (little-endian), all length-prefixed.
    ///
    /// # Errors
    /// [`DecodeError::Invalid`] if the header cannot be encoded.
    pub fn encode(&self) -> Result<Vec<u8>, DecodeError> {
        let header = encode("snapshot", &self.head)?;
        let mut out = Vec::with_capacity(
            header.len()
                + 8
                + self
                    .entries
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 8)
                    .sum::<usize>(),
        );
        put_chunk(&mut out, &header);
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for (k, v) in &self.entries {
            put_chunk(&mut out, k);
            put_chunk(&mut out, v);
        }
        Ok(out)
    }

    /// Decodes [`Snapshot::encode`]'s output from untrusted bytes.
    ///
    /// # Errors
    /// [`DecodeError`] if the bytes are truncated or malformed.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
        let mut rest = bytes;
        let header = take_chunk(&mut rest)?;
        let head: BlockHeader = decode_canonical("snapshot", header, 4096)?;
        let count = take(&mut rest, 8)?;
        let count = u64::from_le_bytes(count.try_into().map_err(|_| truncated())?);
        // Each entry takes at least 8 bytes, which bounds what a hostile count can reserve.
        let cap = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(rest.len() / 8);
        let mut entries = Vec::with_capacity(cap);
        for _ in 0..count {
            let k = take_chunk(&mut rest)?.to_vec();
            let v = take_chunk(&mut rest)?.to_vec();
            entries.push((k, v));
        }
        if !rest.is_empty() {
            return Err(DecodeError::Invalid {
                what: "snapshot",
                reason: "trailing bytes",
            });
        }
        Ok(Snapshot { head, entries })
    }
}

fn put_chunk(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(data);
}

fn truncated() -> DecodeError {
    DecodeError::Invalid {
        what: "snapshot",
        reason: "truncated",
    }
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
    if rest.len() < n {
        return Err(truncated());
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn take_chunk<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let len = take(rest, 4)?;
    let len = u32::from_le_bytes(len.try_into().map_err(|_| truncated())?);
    take(rest, usize::try_from(len).map_err(|_| truncated())?)
}
