//! Keys, addresses, hashes and domain-separated signatures.
//!
//! Signatures are secp256k1 ECDSA (k256) over a 32-byte blake3 digest of the message and its
//! [`Domain`]. Signing is deterministic (RFC 6979) and always yields a low-S signature; a high-S
//! signature is rejected on verification, so a signature has exactly one valid encoding and a
//! transaction hash cannot be changed by a third party (no malleability).

use std::fmt;

use k256::ecdsa::{RecoveryId, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::SignatureError;

/// A 32-byte blake3 digest: block, transaction and state roots, content ids.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The all-zero hash: the parent of the genesis block and the root of an empty tree.
    pub const ZERO: Hash = Hash([0; 32]);

    /// blake3 of `data` under a derive-key `context`, so hashes of different kinds never collide.
    pub fn of(context: &str, data: &[u8]) -> Hash {
        let mut hasher = blake3::Hasher::new_derive_key(context);
        hasher.update(data);
        Hash(*hasher.finalize().as_bytes())
    }

    /// The digest as bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses 64 hex digits.
    ///
    /// # Errors
    /// `None` if `s` is not exactly 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Hash> {
        unhex::<32>(s).map(Hash)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// An account address: the first 20 bytes of a domain-separated blake3 hash of the account's
/// compressed public key, or of a contract's name for contract-owned accounts.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// The address of the account controlled by `key`.
    pub fn of_key(key: &PublicKey) -> Address {
        Address::derive("tessera-ledger address v1", &key.bytes)
    }

    /// The address of the escrow account owned by the native contract `name`.
    pub fn of_contract(name: &str) -> Address {
        Address::derive("tessera-ledger contract address v1", name.as_bytes())
    }

    fn derive(context: &str, data: &[u8]) -> Address {
        let mut hasher = blake3::Hasher::new_derive_key(context);
        hasher.update(data);
        let mut out = [0; 20];
        hasher.finalize_xof().fill(&mut out);
        Address(out)
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses 40 hex digits.
    ///
    /// # Errors
    /// `None` if `s` is not exactly 40 hex digits.
    pub fn from_hex(s: &str) -> Option<Address> {
        unhex::<20>(s).map(Address)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.to_hex())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// What a signature is for. The digest that is signed commits to the chain, the contract and the
/// purpose, so a signature made for one of them is worthless for any other: a cheque cannot be
/// replayed as a transaction, nor a transaction on another chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Domain<'a> {
    /// The chain the signature is valid on.
    pub chain_id: u64,
    /// The contract the message is addressed to (`"tx"` for transactions themselves).
    pub contract: &'a str,
    /// What the message means (e.g. `"transaction"`, `"cheque"`).
    pub purpose: &'a str,
}

impl Domain<'_> {
    /// The 32-byte digest that is actually signed for `message` in this domain.
    pub fn digest(&self, message: &[u8]) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_derive_key("tessera-ledger signed message v1");
        hasher.update(&self.chain_id.to_be_bytes());
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        for part in [self.contract.as_bytes(), self.purpose.as_bytes()] {
            hasher.update(&(part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        hasher.update(message);
        *hasher.finalize().as_bytes()
    }
}

/// A secp256k1 secret key.
#[derive(Clone)]
pub struct SecretKey {
    inner: SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A key from 32 secret bytes.
    ///
    /// # Errors
    /// [`SignatureError::BadSecretKey`] if the bytes are zero or not below the curve order.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<SecretKey, SignatureError> {
        SigningKey::from_slice(bytes)
            .map(|inner| SecretKey { inner })
            .map_err(|_| SignatureError::BadSecretKey)
    }

    /// The key of test account `index`, derived from the index alone.
    ///
    /// **Test only**: anyone can compute these keys. They exist so that examples, tests and
    /// benchmarks can sign for genesis accounts without key files.
    pub fn test_account(index: u64) -> SecretKey {
        let mut counter = 0u64;
        loop {
            let mut hasher = blake3::Hasher::new_derive_key("tessera-ledger test account key v1");
            hasher.update(&index.to_be_bytes());
            hasher.update(&counter.to_be_bytes());
            if let Ok(key) = SecretKey::from_bytes(hasher.finalize().as_bytes()) {
                return key;
            }
            // Probability about 2^-128 per try; the loop is for correctness, not for speed.
            counter = counter.wrapping_add(1);
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_verifying_key(*self.inner.verifying_key())
    }

    /// Signs `message` in `domain` (RFC 6979, low-S).
    pub fn sign(&self, domain: &Domain<'_>, message: &[u8]) -> Signature {
        self.sign_digest(&domain.digest(message))
    }

    /// Signs a precomputed [`Domain::digest`].
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Signature {
        // Signing a 32-byte prehash with a valid key cannot fail; fall back to an invalid
        // signature rather than panicking should the library ever report otherwise.
        match self.inner.sign_prehash_recoverable(digest) {
            Ok((sig, recid)) => {
                let mut bytes = [0; 65];
                bytes[..64].copy_from_slice(&sig.to_bytes());
                bytes[64] = recid.to_byte();
                Signature(bytes)
            }
            Err(_) => Signature([0; 65]),
        }
    }
}

/// A secp256k1 public key, kept both parsed (for verification) and as its 33-byte compressed
/// encoding (for addresses and transactions).
#[derive(Clone, Copy)]
pub struct PublicKey {
    key: VerifyingKey,
    bytes: [u8; 33],
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex(&self.bytes))
    }
}

impl PublicKey {
    fn from_verifying_key(key: VerifyingKey) -> PublicKey {
        let point = key.to_encoded_point(true);
        let mut bytes = [0; 33];
        if point.as_bytes().len() == 33 {
            bytes.copy_from_slice(point.as_bytes());
        }
        PublicKey { key, bytes }
    }

    /// Parses a 33-byte compressed SEC1 key.
    ///
    /// # Errors
    /// [`SignatureError::BadPublicKey`] if the bytes are not a point on the curve.
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey, SignatureError> {
        let array: [u8; 33] = bytes.try_into().map_err(|_| SignatureError::BadPublicKey)?;
        let key =
            VerifyingKey::from_sec1_bytes(&array).map_err(|_| SignatureError::BadPublicKey)?;
        Ok(PublicKey { key, bytes: array })
    }

    /// The 33-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; 33] {
        self.bytes
    }

    /// The account address of this key.
    pub fn address(&self) -> Address {
        Address::of_key(self)
    }

    /// Verifies `signature` over `message` in `domain`.
    ///
    /// # Errors
    /// [`SignatureError::HighS`] for a malleated signature, [`SignatureError::Invalid`] if it
    /// does not verify.
    pub fn verify(
        &self,
        domain: &Domain<'_>,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), SignatureError> {
        self.verify_digest(&domain.digest(message), signature)
    }

    /// Verifies `signature` over a precomputed [`Domain::digest`].
    ///
    /// # Errors
    /// As [`PublicKey::verify`].
    pub fn verify_digest(
        &self,
        digest: &[u8; 32],
        signature: &Signature,
    ) -> Result<(), SignatureError> {
        use k256::ecdsa::signature::hazmat::PrehashVerifier;
        let sig = signature.parse()?;
        self.key
            .verify_prehash(digest, &sig)
            .map_err(|_| SignatureError::Invalid)
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.bytes)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes: &[u8] = serde_bytes::Deserialize::deserialize(deserializer)?;
        PublicKey::from_bytes(bytes).map_err(serde::de::Error::custom)
    }
}

/// A recoverable ECDSA signature: `r ‖ s ‖ recovery id`, 65 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 65]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex(&self.0))
    }
}

impl Signature {
    fn parse(&self) -> Result<k256::ecdsa::Signature, SignatureError> {
        let sig = k256::ecdsa::Signature::from_slice(self.0.get(..64).unwrap_or_default())
            .map_err(|_| SignatureError::Malformed)?;
        if sig.normalize_s().is_some() {
            return Err(SignatureError::HighS);
        }
        Ok(sig)
    }

    /// The same signature with `s` replaced by `n - s`: valid for ECDSA in general but rejected
    /// here. Exists so that tests can show malleated signatures are refused.
    pub fn malleate(&self) -> Signature {
        let mut out = *self;
        if let Ok(sig) = k256::ecdsa::Signature::from_slice(self.0.get(..64).unwrap_or_default()) {
            let (r, s) = sig.split_scalars();
            let high = -*s;
            if let Ok(flipped) = k256::ecdsa::Signature::from_scalars(r, high) {
                out.0[..64].copy_from_slice(&flipped.to_bytes());
                out.0[64] ^= 1;
            }
        }
        out
    }

    /// Recovers the public key that made this signature over `message` in `domain`.
    ///
    /// # Errors
    /// [`SignatureError::HighS`], [`SignatureError::Malformed`] or [`SignatureError::Invalid`]
    /// if no key can be recovered.
    pub fn recover(
        &self,
        domain: &Domain<'_>,
        message: &[u8],
    ) -> Result<PublicKey, SignatureError> {
        let sig = self.parse()?;
        let recid = RecoveryId::from_byte(self.0[64]).ok_or(SignatureError::Malformed)?;
        VerifyingKey::recover_from_prehash(&domain.digest(message), &sig, recid)
            .map(PublicKey::from_verifying_key)
            .map_err(|_| SignatureError::Invalid)
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes: &[u8] = serde_bytes::Deserialize::deserialize(deserializer)?;
        bytes
            .try_into()
            .map(Signature)
            .map_err(|_| serde::de::Error::invalid_length(bytes.len(), &"65 bytes"))
    }
}

macro_rules! bytes_serde {
    ($ty:ident, $n:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_bytes(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let bytes: &[u8] = serde_bytes::Deserialize::deserialize(deserializer)?;
                bytes.try_into().map($ty).map_err(|_| {
                    serde::de::Error::invalid_length(bytes.len(), &concat!($n, " bytes"))
                })
            }
        }
    };
}
bytes_serde!(Hash, "32");
bytes_serde!(Address, "20");

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 15] {
            out.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    out
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let digit = |c: u8| char::from(c).to_digit(16);
        let hi = digit(*pair.first()?)?;
        let lo = digit(*pair.get(1)?)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const D: Domain<'static> = Domain {
        chain_id: 7,
        contract: "tx",
        purpose: "transaction",
    };

    #[test]
    fn sign_verify_recover() {
        let key = SecretKey::test_account(1);
        let public = key.public_key();
        let sig = key.sign(&D, b"hello");
        assert_eq!(sig, key.sign(&D, b"hello"), "RFC 6979 is deterministic");
        public.verify(&D, b"hello", &sig).unwrap();
        assert_eq!(sig.recover(&D, b"hello").unwrap(), public);
        assert_eq!(
            public.verify(&D, b"hellO", &sig),
            Err(SignatureError::Invalid)
        );
        let other = Domain { chain_id: 8, ..D };
        assert_eq!(
            public.verify(&other, b"hello", &sig),
            Err(SignatureError::Invalid)
        );
        let other = Domain {
            purpose: "cheque",
            ..D
        };
        assert_eq!(
            public.verify(&other, b"hello", &sig),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn high_s_rejected() {
        let key = SecretKey::test_account(2);
        let sig = key.sign(&D, b"m");
        let high = sig.malleate();
        assert_ne!(high, sig);
        assert_eq!(
            key.public_key().verify(&D, b"m", &high),
            Err(SignatureError::HighS)
        );
        assert_eq!(high.recover(&D, b"m"), Err(SignatureError::HighS));
    }

    #[test]
    fn hex_round_trip() {
        let a = SecretKey::test_account(3).public_key().address();
        assert_eq!(Address::from_hex(&a.to_hex()), Some(a));
        assert_eq!(Address::from_hex("zz"), None);
        let h = Hash::of("x", b"y");
        assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
    }
}
