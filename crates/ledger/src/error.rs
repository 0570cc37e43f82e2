//! Error types, grouped by who is at fault.

use crate::crypto::Hash;

/// A key or signature that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The secret key is zero or not below the curve order.
    #[error("secret key out of range")]
    BadSecretKey,
    /// The public key is not a compressed point on secp256k1.
    #[error("public key is not a valid compressed secp256k1 point")]
    BadPublicKey,
    /// The signature bytes are not a valid `r ‖ s ‖ recovery id`.
    #[error("malformed signature")]
    Malformed,
    /// The signature has a high `s`; only the low-S form is accepted.
    #[error("signature is not in low-S form")]
    HighS,
    /// The signature does not verify for this key, message and domain.
    #[error("signature does not verify")]
    Invalid,
}

/// Bytes that are not a valid canonical encoding (transaction, block, cheque, arguments).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is longer than the limit for its kind.
    #[error("{what} is {len} bytes, limit {max}")]
    TooLarge {
        /// What was being decoded.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not bencode, or not the expected shape.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// What was wrong, from the bencode decoder.
        reason: String,
    },
    /// Valid bencode of the right shape, but not the one canonical encoding of its value
    /// (extra keys, for instance); accepting it would let two byte strings mean one thing.
    #[error("{what} is not canonically encoded")]
    NotCanonical {
        /// What was being decoded.
        what: &'static str,
    },
    /// A field is out of its allowed range.
    #[error("{what}: {reason}")]
    Invalid {
        /// What was being decoded.
        what: &'static str,
        /// Which rule it broke.
        reason: &'static str,
    },
}

/// Why a transaction was refused before execution. Nothing changes in the state, not even the
/// fee: the sender is not proven or cannot pay.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// The bytes are not a transaction.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The signature is bad, high-S, or by another key.
    #[error("bad signature: {0}")]
    Signature(#[from] SignatureError),
    /// Signed for another chain.
    #[error("wrong chain id {got}, this chain is {expected}")]
    WrongChain {
        /// This chain.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// The nonce was already used (a replay).
    #[error("nonce {got} already used; next is {expected}")]
    NonceTooLow {
        /// The sender's next nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// The nonce skips ahead of the sender's next nonce.
    #[error("nonce {got} skips ahead of {expected}")]
    NonceTooHigh {
        /// The sender's next nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// The sender cannot pay `gas_limit × gas_price`.
    #[error("sender balance {balance} cannot pay the maximum fee {fee}")]
    CannotPayFee {
        /// `gas_limit × gas_price`.
        fee: u128,
        /// The sender's balance.
        balance: u64,
    },
    /// Gas price under the chain's minimum.
    #[error("gas price {got} below the minimum {min}")]
    GasPriceTooLow {
        /// The minimum.
        min: u64,
        /// The transaction's.
        got: u64,
    },
    /// The gas limit is below the intrinsic cost of the transaction or above the block limit.
    #[error("gas limit {got} outside {min}..={max}")]
    GasLimit {
        /// Intrinsic cost.
        min: u64,
        /// Block gas limit.
        max: u64,
        /// The transaction's.
        got: u64,
    },
    /// The call names a contract that does not exist.
    #[error("unknown contract {0:?}")]
    UnknownContract(String),
    /// The mempool is full and the transaction does not pay more than what is there.
    #[error("mempool full")]
    MempoolFull,
    /// The transaction is already in the mempool.
    #[error("transaction {0} already pending")]
    Duplicate(Hash),
}

/// Why a contract call failed. The call's state changes and events are reverted; the fee for
/// the gas used is still charged and the nonce is still consumed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContractError {
    /// The call used up its gas limit.
    #[error("out of gas")]
    OutOfGas,
    /// The contract has no such method.
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
    /// The arguments do not decode.
    #[error("bad arguments: {0}")]
    BadArguments(DecodeError),
    /// A balance is too small for a transfer.
    #[error("insufficient balance: need {needed}, have {available}")]
    InsufficientBalance {
        /// Amount asked for.
        needed: u64,
        /// Amount there.
        available: u64,
    },
    /// A transfer from an account the caller does not control.
    #[error("not authorised: {0}")]
    Unauthorized(&'static str),
    /// A signature inside the call (a cheque's) does not verify.
    #[error("bad signature: {0}")]
    Signature(SignatureError),
    /// The payer has no chequebook.
    #[error("no chequebook for this payer")]
    NoChequebook,
    /// The cheque is not for more than what was already cashed: an old cheque replayed.
    #[error("nothing to cash: cheque total {cumulative}, already paid {paid}")]
    NothingToCash {
        /// The cheque's cumulative amount.
        cumulative: u64,
        /// Already paid on this lane.
        paid: u64,
    },
    /// The chequebook is empty.
    #[error("chequebook is empty")]
    ChequebookEmpty,
    /// A withdrawal was attempted before its notice period ended (or without notice).
    #[error("withdrawal not ready until {ready_at_ms} ms (now {now_ms} ms)")]
    NoticePeriod {
        /// When it becomes possible; 0 if no notice was given.
        ready_at_ms: u64,
        /// Block time.
        now_ms: u64,
    },
    /// This info hash is already registered.
    #[error("content already registered")]
    AlreadyRegistered,
    /// No registration for this info hash.
    #[error("content not registered")]
    NotRegistered,
    /// An argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// Arithmetic would overflow.
    #[error("amount overflow")]
    Overflow,
}

impl From<DecodeError> for ContractError {
    fn from(e: DecodeError) -> Self {
        ContractError::BadArguments(e)
    }
}

/// Why a block was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// The bytes are not a block.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Height is not the next one.
    #[error("height {got}, expected {expected}")]
    Height {
        /// The next height.
        expected: u64,
        /// The block's.
        got: u64,
    },
    /// Parent hash does not match the head.
    #[error("parent {got} is not the head {expected}")]
    Parent {
        /// The head's hash.
        expected: Hash,
        /// The block's parent field.
        got: Hash,
    },
    /// Block time went backwards.
    #[error("time {got} ms before the parent's {parent} ms")]
    Time {
        /// The parent's time.
        parent: u64,
        /// The block's.
        got: u64,
    },
    /// A transaction in the block is invalid.
    #[error("transaction {index}: {error}")]
    Tx {
        /// Its position.
        index: usize,
        /// Why.
        error: TxError,
    },
    /// The header's root does not match what executing the block produced.
    #[error("{which} root mismatch: header {header}, computed {computed}")]
    RootMismatch {
        /// `"transaction"`, `"receipts"` or `"state"`.
        which: &'static str,
        /// In the header.
        header: Hash,
        /// Computed.
        computed: Hash,
    },
    /// The block exceeds the transaction count or gas limit.
    #[error("block too large: {0}")]
    TooLarge(&'static str),
    /// A header field other than the roots does not match (chain id, proposer...).
    #[error("bad header: {0}")]
    Header(&'static str),
}
