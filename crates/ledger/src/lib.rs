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
//!
//! ```
//! use tessera_ledger::contracts::{native, token::TransferArgs, TOKEN};
//! use tessera_ledger::state::account_key;
//! use tessera_ledger::{
//!     Address, Call, Genesis, Ledger, Params, SecretKey, SignedTransaction, Signatures,
//!     Transaction,
//! };
//!
//! let alice = SecretKey::test_account(0); // test-only key: derived from the index
//! let bob = SecretKey::test_account(1).public_key().address();
//! let genesis = Genesis {
//!     chain_id: 1,
//!     time_ms: 0,
//!     params: Params::default(),
//!     accounts: vec![(alice.public_key().address(), 1_000_000)],
//! };
//! let mut ledger = Ledger::from_genesis(&genesis, native())?;
//! let tx = Transaction {
//!     chain_id: 1,
//!     sender: alice.public_key(),
//!     nonce: 0,
//!     gas_limit: 20_000,
//!     gas_price: 1,
//!     call: Call::new(TOKEN, "transfer", &TransferArgs { to: bob, amount: 250 })?,
//! };
//! let tx = SignedTransaction::sign(tx, &alice)?;
//! let proposal = ledger.propose(1_000, Address::default(), vec![tx], Signatures::Verify)?;
//! ledger.commit();
//! assert_eq!(ledger.account(&bob).balance, 250);
//!
//! // A light client checks Bob's balance against the block's state root.
//! let root = proposal.block.header.state_root;
//! let key = account_key(&bob);
//! let value = ledger.state().get(&key).map(<[u8]>::to_vec);
//! let proof = ledger.state_mut().prove(&key);
//! assert!(proof.verify(&root.0, &key, value.as_deref()).is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
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
    parallel_map, verify_parallel, verify_prepared, BlockInfo, Genesis, Ledger, Proposal,
    Signatures, Snapshot, TxOutcome, MAX_GENESIS_LEN,
};
pub use mempool::Mempool;
pub use node::{replay, Committed, Node, NodeConfig, NodeError, Replay};
pub use state::{Account, State};
pub use tx::{Call, SignedTransaction, Transaction};
pub mod log;
