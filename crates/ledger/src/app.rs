//! The application interface a BFT consensus engine drives, in the shape of ABCI++:
//! `check_tx` for the mempool, `prepare_proposal` on the proposer, `process_proposal` on every
//! validator, `finalize_block` returning the app hash, and `commit`.
//!
//! Transactions cross this interface as bytes, as they do in ABCI. The embedded
//! single-node sequencer ([`crate::Node`]) calls the same ledger through
//! [`Ledger::propose`](crate::Ledger::propose), which is `prepare_proposal` and
//! `finalize_block` in one step.

use std::collections::HashMap;

use crate::block::{BlockHeader, Receipt};
use crate::crypto::{Address, Hash};
use crate::error::{BlockError, TxError};
use crate::ledger::{BlockInfo, Ledger, Signatures};
use crate::tx::SignedTransaction;

/// What `finalize_block` returns.
#[derive(Clone, Debug)]
pub struct FinalizeResponse {
    /// One receipt per transaction, in order (rejected ones included).
    pub receipts: Vec<Receipt>,
    /// The state root after the block: ABCI's app hash.
    pub app_hash: Hash,
    /// The ledger's own header for the block (with its transaction and receipt roots).
    pub header: BlockHeader,
}

/// An ABCI++-shaped replicated application.
pub trait Application {
    /// Mempool admission: decodes and checks a transaction against the committed state plus
    /// the transactions this method already admitted since the last commit.
    ///
    /// # Errors
    /// The [`TxError`] that refuses it.
    fn check_tx(&mut self, tx: &[u8]) -> Result<Hash, TxError>;

    /// On the proposer: the transactions to propose, in order, from the mempool's candidates.
    /// Drops what does not decode, verify or fit (count, gas) and what cannot run in order.
    fn prepare_proposal(&mut self, info: &BlockInfo, txs: Vec<Vec<u8>>) -> Vec<Vec<u8>>;

    /// On every validator: whether a proposal is acceptable (decodes, limits, signatures).
    ///
    /// # Errors
    /// The [`BlockError`] that makes it unacceptable.
    fn process_proposal(&mut self, info: &BlockInfo, txs: &[Vec<u8>]) -> Result<(), BlockError>;

    /// Executes the decided block; its effects stay pending until [`Application::commit`].
    ///
    /// # Errors
    /// A [`BlockError`] if the block cannot be executed (it should not have been accepted).
    fn finalize_block(
        &mut self,
        info: &BlockInfo,
        txs: &[Vec<u8>],
    ) -> Result<FinalizeResponse, BlockError>;

    /// Makes the finalized block the head. Returns it, or `None` if nothing was finalized.
    fn commit(&mut self) -> Option<BlockHeader>;
}

fn decode_all(txs: &[Vec<u8>]) -> Result<Vec<SignedTransaction>, BlockError> {
    txs.iter()
        .enumerate()
        .map(|(index, bytes)| {
            SignedTransaction::decode(bytes).map_err(|e| BlockError::Tx {
                index,
                error: TxError::Decode(e),
            })
        })
        .collect()
}

/// Most distinct senders `check_tx` remembers between two commits.
const MAX_PENDING_SENDERS: usize = 1 << 20;

/// Simulated next nonces and spendable balances: what `check_tx` admitted since the last
/// commit, or what `prepare_proposal` has chosen so far.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    next: HashMap<Address, (u64, u128)>,
}

impl Pending {
    fn admit(&mut self, ledger: &Ledger, stx: &SignedTransaction) -> Result<(), TxError> {
        let sender = stx.sender();
        if self.next.len() >= MAX_PENDING_SENDERS && !self.next.contains_key(&sender) {
            return Err(TxError::MempoolFull);
        }
        // Looked up, not inserted: only an admitted transaction takes a slot, so senders that
        // cannot pay take none.
        let (nonce, balance) = self.next.get(&sender).copied().unwrap_or_else(|| {
            let account = ledger.account(&sender);
            (account.nonce, u128::from(account.balance))
        });
        let got = stx.tx().nonce;
        if got != nonce {
            return Err(if got < nonce {
                TxError::NonceTooLow {
                    expected: nonce,
                    got,
                }
            } else {
                TxError::NonceTooHigh {
                    expected: nonce,
                    got,
                }
            });
        }
        if balance < stx.max_fee() {
            return Err(TxError::CannotPayFee {
                fee: stx.max_fee(),
                balance: u64::try_from(balance).unwrap_or(u64::MAX),
            });
        }
        // Assume the worst: the whole fee is spent (calls may spend more; then the later
        // transaction is rejected at execution, which changes nothing).
        self.next
            .insert(sender, (nonce.saturating_add(1), balance - stx.max_fee()));
        Ok(())
    }
}

impl Application for Ledger {
    fn check_tx(&mut self, tx: &[u8]) -> Result<Hash, TxError> {
        let stx = SignedTransaction::decode(tx)?;
        self.check_stateless(&stx)?;
        stx.verify()?;
        let mut pending = std::mem::take(&mut self.check_state);
        let result = pending.admit(self, &stx);
        self.check_state = pending;
        result.map(|()| stx.hash())
    }

    fn prepare_proposal(&mut self, _info: &BlockInfo, txs: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let decoded: Vec<(Vec<u8>, SignedTransaction)> = txs
            .into_iter()
            .filter_map(|bytes| {
                let stx = SignedTransaction::decode(&bytes).ok()?;
                Some((bytes, stx))
            })
            .filter(|(_, stx)| self.check_stateless(stx).is_ok())
            .collect();
        let stxs: Vec<SignedTransaction> = decoded.iter().map(|(_, s)| s.clone()).collect();
        let checks = self.preverify(&stxs);
        let mut pending = Pending::default();
        let mut gas = self.params().block_gas_limit;
        let mut out = Vec::new();
        for ((bytes, stx), check) in decoded.into_iter().zip(checks) {
            if out.len() >= crate::block::MAX_BLOCK_TXS {
                break;
            }
            if check.is_err() || stx.tx().gas_limit > gas || pending.admit(self, &stx).is_err() {
                continue;
            }
            gas -= stx.tx().gas_limit;
            out.push(bytes);
        }
        out
    }

    fn process_proposal(&mut self, info: &BlockInfo, txs: &[Vec<u8>]) -> Result<(), BlockError> {
        let expected = self.head().height.saturating_add(1);
        if info.height != expected {
            return Err(BlockError::Height {
                expected,
                got: info.height,
            });
        }
        if info.time_ms < self.head().time_ms {
            return Err(BlockError::Time {
                parent: self.head().time_ms,
                got: info.time_ms,
            });
        }
        // Counted before anything is decoded.
        if txs.len() > crate::block::MAX_BLOCK_TXS {
            return Err(BlockError::TooLarge("transactions"));
        }
        let stxs = decode_all(txs)?;
        self.check_txs(&stxs)?;
        for (index, check) in self.preverify(&stxs).into_iter().enumerate() {
            check.map_err(|e| BlockError::Tx {
                index,
                error: TxError::Signature(e),
            })?;
        }
        Ok(())
    }

    fn finalize_block(
        &mut self,
        info: &BlockInfo,
        txs: &[Vec<u8>],
    ) -> Result<FinalizeResponse, BlockError> {
        if txs.len() > crate::block::MAX_BLOCK_TXS {
            return Err(BlockError::TooLarge("transactions"));
        }
        let stxs = decode_all(txs)?;
        self.check_txs(&stxs)?;
        let (header, receipts) = self.execute(info, &stxs, Signatures::Verify)?;
        Ok(FinalizeResponse {
            receipts,
            app_hash: header.state_root,
            header,
        })
    }

    fn commit(&mut self) -> Option<BlockHeader> {
        self.check_state = Default::default();
        Ledger::commit(self).cloned()
    }
}
