//! A single-node sequencer on a local directory: mempool, block production, durable commits,
//! snapshots and crash recovery.
//!
//! Directory layout: `genesis.bin` (the canonical genesis), `blocks.log` (every block after
//! genesis, one checksummed record each, in height order) and `snapshot-*.bin` (the state at
//! some heights). A block is reported committed only after its record is synced to disk, so a
//! crash loses at most blocks that were never acknowledged; on restart a torn tail is dropped
//! and the state rebuilt from the newest snapshot plus the blocks after it.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::block::{Block, BlockHeader, Receipt};
use crate::contracts;
use crate::crypto::{Address, Hash};
use crate::error::{BlockError, DecodeError, TxError};
use crate::ledger::{verify_prepared, Genesis, Ledger, Signatures, Snapshot};
use crate::log::{latest_snapshot, write_snapshot, BlockLog, LogError, Recovery};
use crate::mempool::{Mempool, DEFAULT_MEMPOOL_CAP};
use crate::tx::SignedTransaction;

const GENESIS_FILE: &str = "genesis.bin";
const LOG_FILE: &str = "blocks.log";

/// How the node produces blocks.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Most transactions per block; a full mempool batch triggers a block at once.
    pub max_block_txs: usize,
    /// A block is produced this long after the oldest pending transaction arrived.
    pub block_interval_ms: u64,
    /// Bound on pending transactions.
    pub mempool_cap: usize,
    /// Take a state snapshot every this many blocks (0: never).
    pub snapshot_every: u64,
    /// How many snapshots to keep.
    pub snapshots_kept: usize,
    /// Who receives the fees of the blocks this node proposes.
    pub proposer: Address,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            max_block_txs: 5_000,
            block_interval_ms: 1_000,
            mempool_cap: DEFAULT_MEMPOOL_CAP,
            snapshot_every: 1_000,
            snapshots_kept: 2,
            proposer: Address::default(),
        }
    }
}

/// What can stop the node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The block log or a snapshot could not be read or written.
    #[error("block log: {0}")]
    Log(#[from] LogError),
    /// A file other than the log could not be read or written.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A stored genesis, snapshot or block does not decode.
    #[error("stored data: {0}")]
    Decode(#[from] DecodeError),
    /// A stored block does not apply: the directory is corrupt or was written by other code.
    #[error("block {height}: {error}")]
    BadBlock {
        /// Its height.
        height: u64,
        /// Why.
        error: BlockError,
    },
    /// `init` on a directory that already holds a chain.
    #[error("{} already holds a chain", .0.display())]
    AlreadyInitialised(PathBuf),
    /// `open` on a directory without a genesis.
    #[error("{} holds no chain (no {GENESIS_FILE})", .0.display())]
    NotInitialised(PathBuf),
}

/// A block that is durably committed.
#[derive(Clone, Debug)]
pub struct Committed {
    /// Its header.
    pub header: BlockHeader,
    /// Number of transactions in it.
    pub txs: usize,
    /// Their receipts.
    pub receipts: Vec<Receipt>,
    /// Transactions taken from the mempool but left out: hash, sender, and why.
    pub rejected: Vec<(Hash, Address, TxError)>,
}

/// What [`replay`] found.
#[derive(Clone, Debug)]
pub struct Replay {
    /// The last good header.
    pub head: BlockHeader,
    /// The state root at that head.
    pub state_root: Hash,
    /// Sum of all balances at that head.
    pub total_balance: u128,
    /// The supply fixed at genesis.
    pub supply: u128,
    /// What opening the log had to drop (a torn tail).
    pub recovery: Recovery,
    /// The first block that failed, if one did.
    pub failure: Option<(u64, BlockError)>,
}

/// The sequencer node.
#[derive(Debug)]
pub struct Node {
    dir: PathBuf,
    config: NodeConfig,
    ledger: Ledger,
    mempool: Mempool,
    log: BlockLog,
    recovery: Recovery,
    oldest_pending_ms: Option<u64>,
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> NodeError + 'a {
    move |source| NodeError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

impl Node {
    /// Creates a chain in `dir` (created if absent) from `genesis`, then opens it.
    ///
    /// # Errors
    /// [`NodeError::AlreadyInitialised`] if `dir` holds a chain; I/O errors.
    pub fn init(dir: &Path, genesis: &Genesis, config: NodeConfig) -> Result<Node, NodeError> {
        fs::create_dir_all(dir).map_err(io_err(dir, "create directory"))?;
        let path = dir.join(GENESIS_FILE);
        if path.exists() {
            return Err(NodeError::AlreadyInitialised(dir.to_path_buf()));
        }
        let bytes = genesis.encode()?;
        let tmp = dir.join("genesis.bin.tmp");
        let mut file = fs::File::create(&tmp).map_err(io_err(&tmp, "create"))?;
        file.write_all(&bytes).map_err(io_err(&tmp, "write"))?;
        file.sync_all().map_err(io_err(&tmp, "sync"))?;
        fs::rename(&tmp, &path).map_err(io_err(&path, "rename"))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir, "sync directory"))?;
        Node::open(dir, config)
    }

    /// The genesis stored in `dir`.
    ///
    /// # Errors
    /// [`NodeError::NotInitialised`], I/O and decode errors.
    pub fn read_genesis(dir: &Path) -> Result<Genesis, NodeError> {
        let path = dir.join(GENESIS_FILE);
        if !path.exists() {
            return Err(NodeError::NotInitialised(dir.to_path_buf()));
        }
        let bytes = fs::read(&path).map_err(io_err(&path, "read"))?;
        Ok(Genesis::decode(&bytes)?)
    }

    /// Opens the chain in `dir`: the newest snapshot, then every later block from the log
    /// (signatures verified in parallel, roots checked), dropping a torn tail.
    ///
    /// # Errors
    /// [`NodeError::BadBlock`] if a stored block does not apply; I/O and decode errors.
    pub fn open(dir: &Path, config: NodeConfig) -> Result<Node, NodeError> {
        let genesis = Node::read_genesis(dir)?;
        let mut ledger = match latest_snapshot(dir)? {
            Some((_, bytes)) => {
                let snapshot = Snapshot::decode(&bytes)?;
                let height = snapshot.head.height;
                Ledger::restore(&genesis, contracts::native(), snapshot)
                    .map_err(|error| NodeError::BadBlock { height, error })?
            }
            None => Ledger::from_genesis(&genesis, contracts::native())
                .map_err(|error| NodeError::BadBlock { height: 0, error })?,
        };
        let start = ledger.head().height;
        let path = dir.join(LOG_FILE);
        let opened = BlockLog::open(&path, |index, record| {
            let height = index.saturating_add(1);
            if height <= start {
                return Ok(());
            }
            let block = Block::decode(record).map_err(|e| NodeError::BadBlock {
                height,
                error: BlockError::Decode(e),
            })?;
            ledger
                .apply_block(&block, Signatures::Verify)
                .map_err(|error| NodeError::BadBlock { height, error })?;
            ledger.commit();
            Ok(())
        });
        let (log, recovery) = match opened {
            Ok(x) => x,
            Err(LogError::Visitor { source, .. }) => return Err(source),
            Err(other) => return Err(NodeError::Log(widen_back(other))),
        };
        if log.len() < start {
            // The snapshot is ahead of the log, which cannot happen with this code (a snapshot
            // is written only after its block is synced).
            return Err(NodeError::BadBlock {
                height: log.len().saturating_add(1),
                error: BlockError::Header("log ends before the newest snapshot"),
            });
        }
        Ok(Node {
            dir: dir.to_path_buf(),
            mempool: Mempool::new(config.mempool_cap),
            config,
            ledger,
            log,
            recovery,
            oldest_pending_ms: None,
        })
    }

    /// What opening the log had to repair.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The ledger, mutably (for proofs).
    pub fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// The mempool.
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// Submits transactions: cheap checks, then every signature verified in parallel on all
    /// cores, then nonce and fee checks in order. `now_ms` starts the block timer.
    pub fn submit(&mut self, now_ms: u64, txs: Vec<SignedTransaction>) -> Vec<Result<(), TxError>> {
        let checks = self.ledger.preverify(&txs);
        let mut out = Vec::with_capacity(txs.len());
        for (stx, check) in txs.into_iter().zip(checks) {
            let result = match check {
                Ok(()) => self.mempool.insert_verified(&self.ledger, stx),
                Err(e) => Err(TxError::Signature(e)),
            };
            if result.is_ok() && self.oldest_pending_ms.is_none() {
                self.oldest_pending_ms = Some(now_ms);
            }
            out.push(result);
        }
        out
    }

    /// Admits and commits `batches`, one block per batch, verifying the signatures of the
    /// next batch on all cores while the current one executes and is written to disk. This is
    /// [`Node::submit`] then [`Node::produce`] per batch, overlapped. After each block,
    /// `on_block` receives the batch's admission results and the committed block (durable by
    /// then); returning `false` stops.
    ///
    /// # Errors
    /// As [`Node::produce`].
    pub fn run_batches(
        &mut self,
        batches: impl IntoIterator<Item = Vec<SignedTransaction>>,
        now_ms: impl Fn() -> u64,
        mut on_block: impl FnMut(&[Result<(), TxError>], &Committed) -> bool,
    ) -> Result<(), NodeError> {
        let mut batches = batches.into_iter();
        let Some(mut current) = batches.next() else {
            return Ok(());
        };
        let checks = self.ledger.signature_checks(&current);
        let (mut results, mut tags) = verify_prepared(&current, &checks);
        loop {
            self.ledger.remember_verified(std::mem::take(&mut tags));
            let now = now_ms();
            let admitted: Vec<Result<(), TxError>> = current
                .into_iter()
                .zip(std::mem::take(&mut results))
                .map(|(stx, check)| match check {
                    Ok(()) => self.mempool.insert_verified(&self.ledger, stx),
                    Err(e) => Err(TxError::Signature(e)),
                })
                .collect();
            if self.oldest_pending_ms.is_none() && !self.mempool.is_empty() {
                self.oldest_pending_ms = Some(now);
            }
            let next = batches.next();
            let next_checks = next
                .as_ref()
                .map(|b| self.ledger.signature_checks(b))
                .unwrap_or_default();
            let (committed, verified) = std::thread::scope(|scope| {
                let worker = next
                    .as_ref()
                    .map(|b| scope.spawn(|| verify_prepared(b, &next_checks)));
                let committed = self.produce(now);
                let verified = worker.map(|w| w.join());
                (committed, verified)
            });
            let committed = committed?;
            if !on_block(&admitted, &committed) {
                return Ok(());
            }
            let Some(next) = next else {
                return Ok(());
            };
            (results, tags) = match verified {
                Some(Ok(v)) => v,
                // The worker died: verify again here rather than trust anything.
                _ => verify_prepared(&next, &next_checks),
            };
            current = next;
        }
    }

    /// When the next block is due (ms), if anything is pending.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.mempool.len() >= self.config.max_block_txs {
            return self.oldest_pending_ms.or(Some(0));
        }
        self.oldest_pending_ms
            .map(|t| t.saturating_add(self.config.block_interval_ms))
    }

    /// Produces and commits a block if one is due at `now_ms` (a full batch is pending, or
    /// the oldest pending transaction has waited a block interval).
    ///
    /// # Errors
    /// As [`Node::produce`].
    pub fn handle_timeout(&mut self, now_ms: u64) -> Result<Option<Committed>, NodeError> {
        match self.poll_timeout() {
            Some(due) if due <= now_ms => self.produce(now_ms).map(Some),
            _ => Ok(None),
        }
    }

    /// Produces a block now from the oldest pending transactions, appends it to the log,
    /// syncs, commits, and snapshots when due. The block is durable when this returns.
    ///
    /// # Errors
    /// I/O errors writing the log (the block is then not committed and the node should be
    /// reopened).
    pub fn produce(&mut self, now_ms: u64) -> Result<Committed, NodeError> {
        let txs = self.mempool.take(self.config.max_block_txs);
        let time_ms = now_ms.max(self.ledger.head().time_ms);
        let height = self.ledger.head().height.saturating_add(1);
        let proposal = self
            .ledger
            .propose(
                time_ms,
                self.config.proposer,
                txs,
                Signatures::AlreadyVerified,
            )
            .map_err(|error| NodeError::BadBlock { height, error })?;
        let record = match proposal.block.encode() {
            Ok(r) => r,
            Err(e) => {
                self.ledger.abort();
                return Err(e.into());
            }
        };
        if let Err(e) = self.log.append(&record).and_then(|_| self.log.sync()) {
            self.ledger.abort();
            return Err(e.into());
        }
        self.ledger.commit();
        // A sender with a transaction left out has a nonce gap now: its later ones cannot run.
        let senders: HashSet<Address> = proposal.rejected.iter().map(|(_, s, _)| *s).collect();
        self.mempool.evict_senders(&senders);
        self.oldest_pending_ms = if self.mempool.is_empty() {
            None
        } else {
            Some(now_ms)
        };
        let header = proposal.block.header.clone();
        if self.config.snapshot_every > 0 && header.height % self.config.snapshot_every == 0 {
            self.snapshot()?;
        }
        Ok(Committed {
            txs: proposal.block.txs.len(),
            header,
            receipts: proposal.receipts,
            rejected: proposal.rejected,
        })
    }

    /// Writes a snapshot of the committed state now.
    ///
    /// # Errors
    /// I/O errors.
    pub fn snapshot(&mut self) -> Result<(), NodeError> {
        let snapshot = self.ledger.snapshot();
        let bytes = snapshot.encode()?;
        write_snapshot(
            &self.dir,
            snapshot.head.height,
            &bytes,
            self.config.snapshots_kept,
        )?;
        Ok(())
    }
}

fn widen_back(error: LogError<NodeError>) -> LogError {
    match error {
        LogError::Io { path, op, source } => LogError::Io { path, op, source },
        LogError::BadMagic { path } => LogError::BadMagic { path },
        LogError::UnsupportedVersion { path, version } => {
            LogError::UnsupportedVersion { path, version }
        }
        LogError::RecordTooLarge { len, max } => LogError::RecordTooLarge { len, max },
        LogError::TruncateBeyondEnd { requested, len } => {
            LogError::TruncateBeyondEnd { requested, len }
        }
        LogError::Poisoned { path } => LogError::Poisoned { path },
        LogError::Inconsistent { path, offset } => LogError::Inconsistent { path, offset },
        LogError::Visitor { index, .. } => LogError::Inconsistent {
            path: PathBuf::from(LOG_FILE),
            offset: index,
        },
    }
}

/// Replays the chain in `dir` from genesis, ignoring snapshots, checking every block's link,
/// signatures, transaction, receipts and state roots, and the token supply. Stops at the first
/// bad block and reports it.
///
/// # Errors
/// I/O and decode errors on the genesis or the log file itself.
pub fn replay(dir: &Path) -> Result<Replay, NodeError> {
    let genesis = Node::read_genesis(dir)?;
    let mut ledger = Ledger::from_genesis(&genesis, contracts::native())
        .map_err(|error| NodeError::BadBlock { height: 0, error })?;
    let mut failure: Option<(u64, BlockError)> = None;
    let path = dir.join(LOG_FILE);
    let opened = BlockLog::open(&path, |index, record| -> Result<(), NodeError> {
        if failure.is_some() {
            return Ok(());
        }
        let height = index.saturating_add(1);
        let result = Block::decode(record)
            .map_err(BlockError::Decode)
            .and_then(|block| ledger.apply_block(&block, Signatures::Verify));
        match result {
            Ok(_) => {
                ledger.commit();
            }
            Err(error) => failure = Some((height, error)),
        }
        Ok(())
    });
    let recovery = match opened {
        Ok((_, recovery)) => recovery,
        Err(LogError::Visitor { source, .. }) => return Err(source),
        Err(other) => return Err(NodeError::Log(widen_back(other))),
    };
    let head = ledger.head().clone();
    Ok(Replay {
        state_root: head.state_root,
        head,
        total_balance: ledger.state().total_balance(),
        supply: ledger.supply(),
        recovery,
        failure,
    })
}
