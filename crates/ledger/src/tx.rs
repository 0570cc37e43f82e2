//! Transactions: a call to a native contract, signed by its sender.

use serde::{Deserialize, Serialize};

use crate::codec::{decode_canonical, encode};
use crate::crypto::{Address, Domain, Hash, PublicKey, SecretKey, Signature};
use crate::error::{DecodeError, SignatureError};

/// Largest encoded signed transaction, in bytes.
pub const MAX_TX_LEN: usize = 16 * 1024;
/// Largest encoded call arguments, in bytes.
pub const MAX_ARGS_LEN: usize = 8 * 1024;
/// Longest contract or method name, in bytes.
pub const MAX_NAME_LEN: usize = 32;

/// The unsigned body of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// The chain this transaction is for.
    pub chain_id: u64,
    /// The sender's public key; the sender's account is its [`Address`].
    pub sender: PublicKey,
    /// The sender's next nonce: transactions from one sender apply in nonce order, each once.
    pub nonce: u64,
    /// Most gas the call may use; the sender must be able to pay `gas_limit × gas_price`.
    pub gas_limit: u64,
    /// Tokens paid per unit of gas used.
    pub gas_price: u64,
    /// What to run.
    pub call: Call,
}

/// A call to a native contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The contract's name (e.g. `"token"`).
    pub contract: String,
    /// The method's name (e.g. `"transfer"`).
    pub method: String,
    /// The method's arguments, canonical bencode of the method's argument type.
    #[serde(with = "serde_bytes")]
    pub args: Vec<u8>,
}

impl Call {
    /// A call whose arguments are `args` encoded canonically.
    ///
    /// # Errors
    /// [`DecodeError::Invalid`] if the arguments cannot be encoded.
    pub fn new<A: Serialize>(contract: &str, method: &str, args: &A) -> Result<Call, DecodeError> {
        Ok(Call {
            contract: contract.to_owned(),
            method: method.to_owned(),
            args: encode("call arguments", args)?,
        })
    }
}

/// The signing domain of transactions on `chain_id`.
pub fn tx_domain(chain_id: u64) -> Domain<'static> {
    Domain {
        chain_id,
        contract: "tx",
        purpose: "transaction",
    }
}

#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    #[serde(with = "serde_bytes")]
    sig: &'a [u8],
    #[serde(with = "serde_bytes")]
    tx: &'a [u8],
}

/// A transaction with its signature, its canonical encoding and its hash.
///
/// The encoding is a bencoded dictionary `{sig: 65 bytes, tx: <encoded Transaction>}`; the
/// signature covers the `tx` bytes in the [`tx_domain`] of its chain; the hash is blake3 of
/// the whole encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTransaction {
    tx: Transaction,
    signature: Signature,
    bytes: Vec<u8>,
    digest: [u8; 32],
    hash: Hash,
    /// `tx.sender.address()`, kept because the mempool and the executor ask for it often.
    sender: Address,
}

impl SignedTransaction {
    /// Signs `tx` with `key`. The key should be the one named in `tx.sender`; if it is not,
    /// the result is a transaction that will be rejected for its signature.
    ///
    /// # Errors
    /// [`DecodeError`] if the transaction breaks a limit or cannot be encoded.
    pub fn sign(tx: Transaction, key: &SecretKey) -> Result<SignedTransaction, DecodeError> {
        let body = encode("transaction", &tx)?;
        let digest = tx_domain(tx.chain_id).digest(&body);
        let signature = key.sign_digest(&digest);
        Self::assemble(tx, signature, &body, digest)
    }

    /// Builds a signed transaction from parts with the given signature (valid or not).
    ///
    /// # Errors
    /// As [`SignedTransaction::sign`].
    pub fn with_signature(
        tx: Transaction,
        signature: Signature,
    ) -> Result<SignedTransaction, DecodeError> {
        let body = encode("transaction", &tx)?;
        let digest = tx_domain(tx.chain_id).digest(&body);
        Self::assemble(tx, signature, &body, digest)
    }

    fn assemble(
        tx: Transaction,
        signature: Signature,
        body: &[u8],
        digest: [u8; 32],
    ) -> Result<SignedTransaction, DecodeError> {
        check_limits(&tx)?;
        let bytes = encode(
            "transaction",
            &Wire {
                sig: &signature.0,
                tx: body,
            },
        )?;
        if bytes.len() > MAX_TX_LEN {
            return Err(DecodeError::TooLarge {
                what: "transaction",
                len: bytes.len(),
                max: MAX_TX_LEN,
            });
        }
        let hash = Hash::of("tessera-ledger transaction v1", &bytes);
        let sender = tx.sender.address();
        Ok(SignedTransaction {
            tx,
            signature,
            bytes,
            digest,
            hash,
            sender,
        })
    }

    /// Decodes a signed transaction from untrusted bytes. The signature is not checked here
    /// (see [`SignedTransaction::verify`]), so decoding stays cheap.
    ///
    /// # Errors
    /// [`DecodeError`] for anything but the canonical encoding of a transaction within limits.
    pub fn decode(bytes: &[u8]) -> Result<SignedTransaction, DecodeError> {
        let wire: Wire<'_> = decode_canonical("transaction", bytes, MAX_TX_LEN)?;
        let signature = Signature(wire.sig.try_into().map_err(|_| DecodeError::Invalid {
            what: "transaction",
            reason: "signature must be 65 bytes",
        })?);
        let tx: Transaction = decode_canonical("transaction", wire.tx, MAX_TX_LEN)?;
        check_limits(&tx)?;
        let digest = tx_domain(tx.chain_id).digest(wire.tx);
        let sender = tx.sender.address();
        Ok(SignedTransaction {
            tx,
            signature,
            bytes: bytes.to_vec(),
            digest,
            hash: Hash::of("tessera-ledger transaction v1", bytes),
            sender,
        })
    }

    /// Checks the signature against the sender's key (low-S only).
    ///
    /// # Errors
    /// [`SignatureError`] if it does not verify.
    pub fn verify(&self) -> Result<(), SignatureError> {
        self.tx.sender.verify_digest(&self.digest, &self.signature)
    }

    /// The transaction body.
    pub fn tx(&self) -> &Transaction {
        &self.tx
    }

    /// The sender's address.
    pub fn sender(&self) -> Address {
        self.sender
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The canonical encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// blake3 of the canonical encoding.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// `gas_limit × gas_price`, the most this transaction can cost its sender.
    pub fn max_fee(&self) -> u128 {
        u128::from(self.tx.gas_limit) * u128::from(self.tx.gas_price)
    }
}

fn check_limits(tx: &Transaction) -> Result<(), DecodeError> {
    let invalid = |reason| DecodeError::Invalid {
        what: "transaction",
        reason,
    };
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= MAX_NAME_LEN
            && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    };
    if !name_ok(&tx.call.contract) || !name_ok(&tx.call.method) {
        return Err(invalid(
            "contract and method names are 1-32 bytes of a-z and _",
        ));
    }
    if tx.call.args.len() > MAX_ARGS_LEN {
        return Err(DecodeError::TooLarge {
            what: "call arguments",
            len: tx.call.args.len(),
            max: MAX_ARGS_LEN,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> SignedTransaction {
        let key = SecretKey::test_account(0);
        let tx = Transaction {
            chain_id: 1,
            sender: key.public_key(),
            nonce: 0,
            gas_limit: 10_000,
            gas_price: 1,
            call: Call {
                contract: "token".into(),
                method: "transfer".into(),
                args: b"de".to_vec(),
            },
        };
        SignedTransaction::sign(tx, &key).unwrap()
    }

    #[test]
    fn round_trip_and_verify() {
        let stx = sample();
        stx.verify().unwrap();
        let back = SignedTransaction::decode(stx.as_bytes()).unwrap();
        assert_eq!(back, stx);
        back.verify().unwrap();
    }

    #[test]
    fn tampering_is_caught() {
        let stx = sample();
        let mut bytes = stx.as_bytes().to_vec();
        // Flip the last byte of the nonce field's neighbourhood: find "5:noncei0e".
        let at = bytes.windows(8).position(|w| w == b"noncei0e").unwrap();
        bytes[at + 6] = b'1';
        let back = SignedTransaction::decode(&bytes).unwrap();
        assert_eq!(back.tx().nonce, 1);
        assert_eq!(back.verify(), Err(SignatureError::Invalid));
    }

    #[test]
    fn non_canonical_rejected() {
        let stx = sample();
        let mut bytes = stx.as_bytes().to_vec();
        // An extra key makes it a different encoding of the same value.
        bytes.pop();
        bytes.extend_from_slice(b"1:zi0ee");
        assert!(SignedTransaction::decode(&bytes).is_err());
    }
}
