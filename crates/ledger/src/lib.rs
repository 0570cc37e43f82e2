//! # tessera-ledger
//!
//! The incentive ledger of Tessera: downloaders pay seeders for verified pieces with signed
//! off-chain cheques, creators register content and take royalties, and every settled
//! transfer is recorded in an append-only chain of blocks.
//!
//! It is a deterministic state machine: no clock (time comes in with each block), no
//! randomness, no I/O but its own block log. Its interface follows the shape of ABCI++
//! (`check_tx`, `prepare_proposal`, `process_proposal`, `finalize_block`, `commit`) so that a
//! BFT consensus engine can replicate it; the embedded default is a single-node sequencer on a
//! local directory.
//!
//! ```text
//!  bytes ──decode──▶ SignedTransaction ──check_tx──▶ Mempool ──prepare_proposal──▶ Block
//!                                                                                  │
//!   Receipts, state root ◀──finalize_block (verify sigs in parallel, apply in order)┘
//!                                   │
//!                          commit ──▶ block log (fsync) + snapshots
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod app;
pub mod block;
pub mod cheque;
mod codec;
pub mod contracts;
pub mod crypto;
pub mod engine;
pub mod error;
pub mod fuzzing;
pub mod gas;
mod ledger;
pub mod mempool;
pub mod node;
pub mod smt;
pub mod state;
pub mod tx;

pub use app::{Application, FinalizeResponse};
pub use block::{Block, BlockHeader, Event, Receipt, Status};
pub use cheque::{Cheque, ChequeError, ChequeIssuer, ChequeReceiver, ContentId, SignedCheque};
pub use contracts::{native, CHEQUEBOOK, REGISTRY, TOKEN};
pub use crypto::{Address, Domain, Hash, PublicKey, SecretKey, Signature};
pub use engine::{Context, Contract, Env, Params, SignatureCheck};
pub use error::{BlockError, ContractError, DecodeError, SignatureError, TxError};
pub use ledger::{
    verify_parallel, BlockInfo, Genesis, Ledger, Proposal, Signatures, Snapshot, TxOutcome,
    MAX_GENESIS_LEN,
};
pub use mempool::Mempool;
pub use node::{replay, Committed, Node, NodeConfig, NodeError, Replay};
pub use state::{Account, State};
pub use tx::{Call, SignedTransaction, Transaction};
pub mod log;
