//! The mempool: admitted transactions waiting for a block, in arrival order.
//!
//! A transaction is admitted only if its signature verifies, it could run as its sender's next
//! transaction (nonce exactly one past the sender's last pending or committed one: no replays,
//! no gaps) and the sender can pay its maximum fee. The pool is bounded.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::crypto::{Address, Hash};
use crate::error::TxError;
use crate::ledger::Ledger;
use crate::tx::SignedTransaction;

/// Default bound on pending transactions.
pub const DEFAULT_MEMPOOL_CAP: usize = 200_000;

/// Pending transactions. Every transaction in it has had its signature verified.
#[derive(Debug)]
pub struct Mempool {
    queue: VecDeque<SignedTransaction>,
    hashes: HashSet<Hash>,
    /// Per sender: number of its transactions in the queue.
    pending: HashMap<Address, u64>,
    cap: usize,
}

impl Mempool {
    /// An empty pool holding at most `cap` transactions.
    pub fn new(cap: usize) -> Mempool {
        Mempool {
            queue: VecDeque::new(),
            hashes: HashSet::new(),
            pending: HashMap::new(),
            cap,
        }
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True if nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Pre-admission checks that need neither the signature nor the account: duplicates,
    /// capacity, chain id, gas bounds.
    ///
    /// # Errors
    /// The [`TxError`] that refuses it.
    pub fn precheck(&self, ledger: &Ledger, stx: &SignedTransaction) -> Result<(), TxError> {
        if self.hashes.contains(&stx.hash()) {
            return Err(TxError::Duplicate(stx.hash()));
        }
        if self.queue.len() >= self.cap {
            return Err(TxError::MempoolFull);
        }
        ledger.check_stateless(stx)
    }

    /// Admits a transaction whose signature the caller has verified.
    ///
    /// # Errors
    /// The [`TxError`] that refuses it (duplicate, full, nonce, fee...).
    pub fn insert_verified(
        &mut self,
        ledger: &Ledger,
        stx: SignedTransaction,
    ) -> Result<(), TxError> {
        self.precheck(ledger, &stx)?;
        let sender = stx.sender();
        let ahead = self.pending.get(&sender).copied().unwrap_or(0);
        ledger.check_tx_verified(&stx, ahead)?;
        *self.pending.entry(sender).or_insert(0) += 1;
        self.hashes.insert(stx.hash());
        self.queue.push_back(stx);
        Ok(())
    }

    /// Takes up to `max` transactions, oldest first, for the next block.
    pub fn take(&mut self, max: usize) -> Vec<SignedTransaction> {
        let n = max.min(self.queue.len());
        let out: Vec<_> = self.queue.drain(..n).collect();
        for stx in &out {
            self.hashes.remove(&stx.hash());
            let sender = stx.sender();
            if let Some(count) = self.pending.get_mut(&sender) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.pending.remove(&sender);
                }
            }
        }
        out
    }

    /// After a block: drops every pending transaction of a sender one of whose transactions
    /// was left out of the block (its later nonces can no longer run).
    pub fn evict_senders(&mut self, senders: &HashSet<Address>) {
        if senders.is_empty() {
            return;
        }
        let hashes = &mut self.hashes;
        let pending = &mut self.pending;
        self.queue.retain(|stx| {
            let sender = stx.sender();
            if senders.contains(&sender) {
                hashes.remove(&stx.hash());
                pending.remove(&sender);
                false
            } else {
                true
            }
        });
    }
}
