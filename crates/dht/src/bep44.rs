//! BEP 44 storage items: immutable items stored under the SHA-1 of their value, and mutable items
//! signed with ed25519 and stored under the SHA-1 of the public key and an optional salt.
//!
//! Values are always handled in their raw bencoded form (`v` exactly as it appeared on the
//! wire): hashing and signing use those bytes, never a re-encoding.

use ed25519_dalek::hazmat::{raw_sign, ExpandedSecretKey};
use ed25519_dalek::{Sha512, Signature, Signer, SigningKey, VerifyingKey};
use sha1::{Digest, Sha1};
use tessera_bencode::Irregularity;

use crate::id::Id;

/// Largest bencoded value (`v`) accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 1000;
/// Longest salt accepted, in bytes.
pub const MAX_SALT_LEN: usize = 64;

/// Why an item was refused. [`ItemError::krpc_error`] gives the KRPC error to answer a `put`
/// with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// The bencoded value is longer than [`MAX_VALUE_LEN`] (the length it had).
    #[error("value is {0} bytes, more than {MAX_VALUE_LEN}")]
    ValueTooLarge(usize),
    /// The salt is longer than [`MAX_SALT_LEN`] (the length it had).
    #[error("salt is {0} bytes, more than {MAX_SALT_LEN}")]
    SaltTooLarge(usize),
    /// The value is not exactly one bencoded value.
    #[error("value is not valid bencode")]
    InvalidValue,
    /// The public key is malformed or weak, or the signature does not verify.
    #[error("invalid signature")]
    InvalidSignature,
    /// The item does not hash to the target it is stored or looked up under (or another item
    /// with a different key or salt already occupies that target).
    #[error("item does not match its target")]
    TargetMismatch,
    /// The `cas` of a mutable put is not the sequence number stored.
    #[error("cas {cas} does not match stored sequence number {current}")]
    CasMismatch {
        /// The `cas` the put carried.
        cas: i64,
        /// The sequence number stored.
        current: i64,
    },
    /// The sequence number of a mutable put is lower than the one stored.
    #[error("sequence number {seq} is lower than stored {current}")]
    SeqTooLow {
        /// The put's sequence number.
        seq: i64,
        /// The sequence number stored.
        current: i64,
    },
    /// A mutable put repeats the stored sequence number with a different value.
    #[error("sequence number {0} is already stored with a different value")]
    SeqConflict(i64),
}

impl ItemError {
    /// The KRPC error (`[code, message]` of a `y = e` reply) for this refusal: BEP 44's codes
    /// 205, 206, 207, 301 and 302, and BEP 5's 203 (protocol error) for the rest.
    pub fn krpc_error(&self) -> (i64, &'static str) {
        match self {
            ItemError::ValueTooLarge(_) => (205, "message (v field) too big"),
            ItemError::InvalidSignature => (206, "invalid signature"),
            ItemError::SaltTooLarge(_) => (207, "salt (salt field) too big"),
            ItemError::CasMismatch { .. } => {
                (301, "the CAS hash mismatched, re-read value and try again")
            }
            ItemError::SeqTooLow { .. } => (302, "sequence number less than current"),
            ItemError::SeqConflict(_) => (302, "sequence number not newer than current"),
            ItemError::InvalidValue => (203, "invalid value (not bencode)"),
            ItemError::TargetMismatch => (203, "item does not match target"),
        }
    }
}

/// The target of an immutable item: SHA-1 of its raw bencoded value.
pub fn immutable_target(value: &[u8]) -> Id {
    Id(Sha1::digest(value).into())
}

/// The target of a mutable item: SHA-1 of the public key followed by the salt (which may be
/// empty).
pub fn mutable_target(key: &[u8; 32], salt: &[u8]) -> Id {
    let mut hasher = Sha1::new();
    hasher.update(key);
    hasher.update(salt);
    Id(hasher.finalize().into())
}

/// The buffer a mutable item's signature covers: `4:salt<len>:<salt>` if `salt` is non-empty,
/// then `3:seqi<seq>e1:v` and the raw bencoded `value`.
///
/// ```
/// let buf = tessera_dht::bep44::signable(b"foobar", 4, b"12:Hello world!");
/// assert_eq!(buf, b"4:salt6:foobar3:seqi4e1:v12:Hello world!");
/// ```
pub fn signable(salt: &[u8], seq: i64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(salt.len() + value.len() + 40);
    if !salt.is_empty() {
        tessera_bencode::put_bytes(&mut out, b"salt");
        tessera_bencode::put_bytes(&mut out, salt);
    }
    tessera_bencode::put_bytes(&mut out, b"seq");
    tessera_bencode::put_int(&mut out, seq);
    tessera_bencode::put_bytes(&mut out, b"v");
    out.extend_from_slice(value);
    out
}

/// Checks a raw value: at most [`MAX_VALUE_LEN`] bytes and exactly one bencoded value
/// (non-canonical encodings are accepted, since the bytes are stored and signed verbatim).
///
/// # Errors
/// [`ItemError::ValueTooLarge`] or [`ItemError::InvalidValue`].
pub fn check_value(value: &[u8]) -> Result<(), ItemError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(ItemError::ValueTooLarge(value.len()));
    }
    let doc = tessera_bencode::decode_lenient(value).map_err(|_| ItemError::InvalidValue)?;
    if doc
        .warnings()
        .iter()
        .any(|w| w.kind == Irregularity::TrailingData)
    {
        return Err(ItemError::InvalidValue);
    }
    Ok(())
}

/// Checks a salt's length.
///
/// # Errors
/// [`ItemError::SaltTooLarge`].
pub fn check_salt(salt: &[u8]) -> Result<(), ItemError> {
    if salt.len() > MAX_SALT_LEN {
        return Err(ItemError::SaltTooLarge(salt.len()));
    }
    Ok(())
}

/// An immutable item: a bencoded value stored under its own SHA-1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImmutableItem {
    /// The raw bencoded value.
    pub value: Vec<u8>,
}

impl ImmutableItem {
    /// Wraps a raw bencoded value after checking it ([`check_value`]).
    ///
    /// # Errors
    /// [`ItemError::ValueTooLarge`] or [`ItemError::InvalidValue`].
    pub fn new(value: Vec<u8>) -> Result<ImmutableItem, ItemError> {
        check_value(&value)?;
        Ok(ImmutableItem { value })
    }

    /// The item's target, [`immutable_target`] of its value.
    pub fn target(&self) -> Id {
        immutable_target(&self.value)
    }
}

/// A mutable item: a bencoded value with a sequence number, signed by an ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutableItem {
    /// The ed25519 public key (`k`).
    pub key: [u8; 32],
    /// The salt (`salt`; empty if absent).
    pub salt: Vec<u8>,
    /// The sequence number (`seq`).
    pub seq: i64,
    /// The raw bencoded value (`v`).
    pub value: Vec<u8>,
    /// The ed25519 signature (`sig`) over [`signable`]`(salt, seq, value)`.
    pub signature: [u8; 64],
}

impl MutableItem {
    /// Signs an item with an RFC 8032 ed25519 secret key (the 32-byte seed). Deterministic.
    ///
    /// This does not check the value or salt limits; [`verify`](Self::verify) does.
    pub fn sign(secret_seed: &[u8; 32], salt: &[u8], seq: i64, value: &[u8]) -> MutableItem {
        let signing = SigningKey::from_bytes(secret_seed);
        let signature = signing.sign(&signable(salt, seq, value));
        MutableItem {
            key: signing.verifying_key().to_bytes(),
            salt: salt.to_vec(),
            seq,
            value: value.to_vec(),
            signature: signature.to_bytes(),
        }
    }

    /// Signs an item with a 64-byte *expanded* ed25519 secret key: the clamped scalar followed
    /// by the nonce prefix, i.e. SHA-512 of a seed. This is the "private key" format of
    /// libtorrent and of ref10-style libraries, and the one BEP 44's test vectors list.
    ///
    /// This does not check the value or salt limits; [`verify`](Self::verify) does.
    pub fn sign_expanded(
        expanded_secret: &[u8; 64],
        salt: &[u8],
        seq: i64,
        value: &[u8],
    ) -> MutableItem {
        let esk = ExpandedSecretKey::from_bytes(expanded_secret);
        let public = VerifyingKey::from(&esk);
        let signature = raw_sign::<Sha512>(&esk, &signable(salt, seq, value), &public);
        MutableItem {
            key: public.to_bytes(),
            salt: salt.to_vec(),
            seq,
            value: value.to_vec(),
            signature: signature.to_bytes(),
        }
    }

    /// The item's target, [`mutable_target`] of its key and salt.
    pub fn target(&self) -> Id {
        mutable_target(&self.key, &self.salt)
    }

    /// Checks the limits and the value ([`check_value`], [`check_salt`]) and the signature.
    ///
    /// Verification is strict: weak (small-order) public keys and non-canonical signatures are
    /// refused, so no one can make one signature valid for several values.
    ///
    /// # Errors
    /// [`ItemError::ValueTooLarge`], [`ItemError::SaltTooLarge`], [`ItemError::InvalidValue`] or
    /// [`ItemError::InvalidSignature`].
    pub fn verify(&self) -> Result<(), ItemError> {
        check_value(&self.value)?;
        check_salt(&self.salt)?;
        let key = VerifyingKey::from_bytes(&self.key).map_err(|_| ItemError::InvalidSignature)?;
        let signature = Signature::from_bytes(&self.signature);
        key.verify_strict(&signable(&self.salt, self.seq, &self.value), &signature)
            .map_err(|_| ItemError::InvalidSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_checks() {
        assert_eq!(check_value(b"12:Hello World!"), Ok(()));
        assert_eq!(check_value(b"i-0e"), Ok(()), "non-canonical is accepted");
        assert_eq!(
            check_value(b"12:Hello World!x"),
            Err(ItemError::InvalidValue)
        );
        assert_eq!(check_value(b"5:abc"), Err(ItemError::InvalidValue));
        assert_eq!(check_value(b""), Err(ItemError::InvalidValue));
        let mut big = b"996:".to_vec();
        big.resize(1000, b'x');
        assert_eq!(check_value(&big), Ok(()));
        let mut bigger = b"997:".to_vec();
        bigger.resize(1001, b'x');
        assert_eq!(check_value(&bigger), Err(ItemError::ValueTooLarge(1001)));
        assert_eq!(check_salt(&[0; 64]), Ok(()));
        assert_eq!(check_salt(&[0; 65]), Err(ItemError::SaltTooLarge(65)));
    }

    #[test]
    fn seed_signing_roundtrip() {
        let item = MutableItem::sign(&[7; 32], b"s", 3, b"i42e");
        assert_eq!(item.verify(), Ok(()));
        let mut other = item.clone();
        other.seq = 4;
        assert_eq!(other.verify(), Err(ItemError::InvalidSignature));
        let mut other = item.clone();
        other.salt = b"t".to_vec();
        assert_eq!(other.verify(), Err(ItemError::InvalidSignature));
        let mut other = item;
        other.salt = vec![0; 65];
        assert_eq!(other.verify(), Err(ItemError::SaltTooLarge(65)));
    }

    #[test]
    fn error_codes() {
        assert_eq!(ItemError::ValueTooLarge(1001).krpc_error().0, 205);
        assert_eq!(ItemError::InvalidSignature.krpc_error().0, 206);
        assert_eq!(ItemError::SaltTooLarge(65).krpc_error().0, 207);
        assert_eq!(
            ItemError::CasMismatch { cas: 1, current: 2 }.krpc_error().0,
            301
        );
        assert_eq!(
            ItemError::SeqTooLow { seq: 1, current: 2 }.krpc_error().0,
            302
        );
    }
}
