//! Blocks, receipts, events and the binary Merkle root over an ordered list.

use serde::{Deserialize, Serialize};

use crate::codec::{decode_canonical, encode};
use crate::crypto::{Address, Hash};
use crate::error::{BlockError, DecodeError};
use crate::tx::SignedTransaction;

/// Most transactions in one block.
pub const MAX_BLOCK_TXS: usize = 20_000;
/// Largest encoded block, in bytes.
pub const MAX_BLOCK_LEN: usize = 64 * 1024 * 1024;

/// A block header: everything a light client needs to check a proof against `state_root`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    /// The chain.
    pub chain_id: u64,
    /// Genesis is height 0; each block is its parent's height plus one.
    pub height: u64,
    /// Hash of the parent's header ([`Hash::ZERO`] for genesis).
    pub parent: Hash,
    /// Block time in milliseconds since the Unix epoch, chosen by the proposer, never going
    /// backwards. Contracts see this time, never a clock.
    pub time_ms: u64,
    /// Who proposed the block; transaction fees go to this account.
    pub proposer: Address,
    /// Merkle root of the transaction hashes, in order.
    pub tx_root: Hash,
    /// Merkle root of the receipt hashes, in order.
    pub receipts_root: Hash,
    /// Root of the authenticated state after applying this block.
    pub state_root: Hash,
}

impl BlockHeader {
    /// blake3 of the canonical encoding: the block's identity and its child's `parent`.
    pub fn hash(&self) -> Hash {
        match encode("block header", self) {
            Ok(bytes) => Hash::of("tessera-ledger block header v1", &bytes),
            // Only a header with an out-of-range integer fails to encode; such a header cannot
            // come from a decode, and gets a hash no valid header can have.
            Err(_) => Hash::ZERO,
        }
    }
}

/// A block: a header and its transactions, in execution order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions.
    pub txs: Vec<SignedTransaction>,
}

#[derive(Serialize, Deserialize)]
struct BlockWire<'a> {
    header: BlockHeader,
    #[serde(borrow)]
    txs: Vec<&'a serde_bytes::Bytes>,
}

impl Block {
    /// Canonical encoding: `{header: {...}, txs: [tx bytes, ...]}`.
    ///
    /// # Errors
    /// [`DecodeError::Invalid`] if a header integer is out of range.
    pub fn encode(&self) -> Result<Vec<u8>, DecodeError> {
        let wire = BlockWire {
            header: self.header.clone(),
            txs: self
                .txs
                .iter()
                .map(|tx| serde_bytes::Bytes::new(tx.as_bytes()))
                .collect(),
        };
        encode("block", &wire)
    }

    /// Decodes a block from untrusted bytes (signatures and roots are not checked here).
    ///
    /// # Errors
    /// [`DecodeError`] for anything but a canonical block within limits.
    pub fn decode(bytes: &[u8]) -> Result<Block, DecodeError> {
        let wire: BlockWire<'_> = decode_canonical("block", bytes, MAX_BLOCK_LEN)?;
        if wire.txs.len() > MAX_BLOCK_TXS {
            return Err(DecodeError::Invalid {
                what: "block",
                reason: "too many transactions",
            });
        }
        let txs = wire
            .txs
            .iter()
            .map(|b| SignedTransaction::decode(b))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Block {
            header: wire.header,
            txs,
        })
    }

    /// The Merkle root of this block's transaction hashes.
    pub fn compute_tx_root(&self) -> Hash {
        tx_root(&self.txs)
    }

    /// Checks the header's transaction root against the transactions.
    ///
    /// # Errors
    /// [`BlockError::RootMismatch`].
    pub fn check_tx_root(&self) -> Result<(), BlockError> {
        let computed = self.compute_tx_root();
        if computed != self.header.tx_root {
            return Err(BlockError::RootMismatch {
                which: "transaction",
                header: self.header.tx_root,
                computed,
            });
        }
        Ok(())
    }
}

/// The Merkle root of a list of transactions.
pub fn tx_root(txs: &[SignedTransaction]) -> Hash {
    merkle_root(txs.iter().map(SignedTransaction::hash))
}

/// Binary Merkle root over an ordered list of leaf hashes, with distinct prefixes for leaves
/// and inner nodes (so a leaf can never pose as an inner node) and an odd node promoted
/// unchanged. The empty list has root [`Hash::ZERO`].
pub fn merkle_root(leaves: impl IntoIterator<Item = Hash>) -> Hash {
    let mut level: Vec<Hash> = leaves
        .into_iter()
        .map(|leaf| {
            let mut h = blake3::Hasher::new();
            h.update(&[0]);
            h.update(&leaf.0);
            Hash(*h.finalize().as_bytes())
        })
        .collect();
    if level.is_empty() {
        return Hash::ZERO;
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => {
                    let mut h = blake3::Hasher::new();
                    h.update(&[1]);
                    h.update(&a.0);
                    h.update(&b.0);
                    Hash(*h.finalize().as_bytes())
                }
                [a] => *a,
                _ => Hash::ZERO,
            })
            .collect();
    }
    level.first().copied().unwrap_or(Hash::ZERO)
}

/// Something a contract reports: a name and its canonically encoded data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The contract that emitted it.
    pub contract: String,
    /// What happened (e.g. `"transfer"`, `"cashed"`).
    pub name: String,
    /// Details, canonical bencode.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The call succeeded; its changes and events are in the state.
    Success,
    /// The call failed; its changes and events were reverted, the fee charged.
    Reverted,
    /// The call ran out of gas; reverted, the whole gas limit charged.
    OutOfGas,
    /// The transaction was not admissible at its turn in the block (nonce, fee): nothing
    /// changed and no fee was charged. A sequencer leaves such transactions out; a block
    /// agreed by consensus may carry them.
    Rejected,
}

/// The outcome of one transaction in a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The transaction's hash.
    pub tx: Hash,
    /// How it ended.
    pub status: Status,
    /// Gas used (and paid for).
    pub gas_used: u64,
    /// The error, for a failed call.
    pub error: Option<String>,
    /// What the call returned (canonical bencode, possibly empty).
    #[serde(with = "serde_bytes")]
    pub output: Vec<u8>,
    /// Events, in order; empty unless the call succeeded.
    pub events: Vec<Event>,
}

impl Receipt {
    /// blake3 of the canonical encoding.
    pub fn hash(&self) -> Hash {
        match encode("receipt", self) {
            Ok(bytes) => Hash::of("tessera-ledger receipt v1", &bytes),
            Err(_) => Hash::ZERO,
        }
    }
}

/// The Merkle root of a list of receipts.
pub fn receipts_root(receipts: &[Receipt]) -> Hash {
    merkle_root(receipts.iter().map(Receipt::hash))
}
