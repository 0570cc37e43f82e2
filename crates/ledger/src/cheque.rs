//! Off-chain cheques: how a downloader pays a seeder per verified piece without a transaction
//! per piece.
//!
//! A [`Cheque`] states the **cumulative** amount a payer owes a beneficiary on one *lane*
//! `(payer, beneficiary, content)`. Each new cheque on a lane replaces the previous one: the
//! beneficiary only ever keeps the latest (largest) cheque, and cashes it when it likes through
//! the `chequebook` contract, which pays the difference between the cheque and what the lane
//! was already paid. Replaying an old cheque therefore pays nothing, and losing intermediate
//! cheques costs nothing.
//!
//! Cheques are signed by the payer in the [`cheque_domain`] of their chain over the cheque's
//! canonical bencode, so a cheque cannot pose as a transaction nor be cashed on another chain.
//!
//! * [`ChequeIssuer`] is the payer's side: it keeps the running totals and signs.
//! * [`ChequeReceiver`] is the beneficiary's side: it checks each cheque it is handed and keeps
//!   the best one per lane, within a bounded number of lanes.
//!
//! Both are plain in-memory structures with no I/O; issuing costs one signature, receiving one
//! verification (and nothing at all for a stale cheque, which is rejected before the signature
//! is checked).

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::{decode_canonical, encode};
use crate::crypto::{hex, Address, Domain, Hash, PublicKey, SecretKey, Signature};
use crate::error::{DecodeError, SignatureError};

/// Largest encoded [`SignedCheque`] accepted by [`SignedCheque::decode`], in bytes. A real one
/// is under 300 bytes.
pub const MAX_CHEQUE_LEN: usize = 512;

/// Largest amount a cheque may state: bencode integers are signed 64-bit.
pub const MAX_AMOUNT: u64 = i64::MAX as u64;

/// Default number of lanes a [`ChequeReceiver`] tracks before refusing new ones.
pub const DEFAULT_MAX_LANES: usize = 65_536;

/// The signing domain of cheques on chain `chain_id`: contract `"chequebook"`, purpose
/// `"cheque"`.
pub fn cheque_domain(chain_id: u64) -> Domain<'static> {
    Domain {
        chain_id,
        contract: "chequebook",
        purpose: "cheque",
    }
}

/// A BitTorrent info hash: what a cheque pays for and what the registry records.
///
/// Serialized as a byte string of 20 bytes (v1) or 32 bytes (v2); the length tells them apart.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContentId {
    /// A BitTorrent v1 info hash (SHA-1 of the info dictionary).
    V1([u8; 20]),
    /// A BitTorrent v2 info hash (SHA-256 of the info dictionary).
    V2([u8; 32]),
}

impl ContentId {
    /// The hash bytes (20 or 32 of them).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            ContentId::V1(h) => h,
            ContentId::V2(h) => h,
        }
    }

    /// The id of a 20-byte (v1) or 32-byte (v2) hash; `None` for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Option<ContentId> {
        if let Ok(h) = <[u8; 20]>::try_from(bytes) {
            Some(ContentId::V1(h))
        } else if let Ok(h) = <[u8; 32]>::try_from(bytes) {
            Some(ContentId::V2(h))
        } else {
            None
        }
    }

    /// Lower-case hex (40 digits for v1, 64 for v2).
    pub fn to_hex(&self) -> String {
        hex(self.as_bytes())
    }

    /// Parses 40 (v1) or 64 (v2) hex digits.
    ///
    /// # Errors
    /// `None` if `s` is not 40 or 64 hex digits.
    pub fn from_hex(s: &str) -> Option<ContentId> {
        match s.len() {
            40 => Address::from_hex(s).map(|a| ContentId::V1(a.0)),
            64 => Hash::from_hex(s).map(|h| ContentId::V2(h.0)),
            _ => None,
        }
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentId::V1(_) => write!(f, "V1({})", self.to_hex()),
            ContentId::V2(_) => write!(f, "V2({})", self.to_hex()),
        }
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for ContentId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.as_bytes())
    }
}

impl<'de> Deserialize<'de> for ContentId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes: &[u8] = serde_bytes::Deserialize::deserialize(deserializer)?;
        ContentId::from_bytes(bytes)
            .ok_or_else(|| serde::de::Error::invalid_length(bytes.len(), &"20 or 32 bytes"))
    }
}

/// A promise by `payer` that it owes `beneficiary` a total of `cumulative` tokens for
/// `content` (or for nothing in particular when `content` is `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cheque {
    /// The chain the cheque can be cashed on.
    pub chain_id: u64,
    /// Who pays: the owner of the chequebook the cheque draws on.
    pub payer: Address,
    /// Who is paid.
    pub beneficiary: Address,
    /// What is paid for; registered content pays its owner a royalty when cashed.
    pub content: Option<ContentId>,
    /// Everything owed on this lane so far (at most [`MAX_AMOUNT`]).
    pub cumulative: u64,
}

impl Cheque {
    /// The canonical encoding the payer signs.
    ///
    /// # Errors
    /// [`DecodeError::Invalid`] if `chain_id` or `cumulative` is above [`MAX_AMOUNT`].
    pub fn signing_bytes(&self) -> Result<Vec<u8>, DecodeError> {
        encode("cheque", self)
    }

    /// Signs the cheque with `key` (which should be the payer's).
    ///
    /// # Errors
    /// As [`Cheque::signing_bytes`].
    pub fn sign(self, key: &SecretKey) -> Result<SignedCheque, DecodeError> {
        let body = self.signing_bytes()?;
        let signature = key.sign(&cheque_domain(self.chain_id), &body);
        Ok(SignedCheque {
            cheque: self,
            signature,
        })
    }

    /// The lane this cheque is on, as seen by its beneficiary: `(payer, content)`.
    fn lane(&self) -> (Address, Option<ContentId>) {
        (self.payer, self.content)
    }
}

/// A cheque and the payer's signature over it.
///
/// Encoded as the bencoded dictionary `{cheque: {...}, sig: 65 bytes}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheque {
    /// The cheque.
    pub cheque: Cheque,
    /// The payer's signature over [`Cheque::signing_bytes`] in [`cheque_domain`].
    #[serde(rename = "sig")]
    pub signature: Signature,
}

impl SignedCheque {
    /// The canonical encoding (what the `chequebook` contract's `cash` method takes).
    ///
    /// # Errors
    /// [`DecodeError::Invalid`] if an integer is above [`MAX_AMOUNT`].
    pub fn encode(&self) -> Result<Vec<u8>, DecodeError> {
        encode("cheque", self)
    }

    /// Decodes a signed cheque from untrusted bytes. The signature is not checked here.
    ///
    /// # Errors
    /// [`DecodeError`] for anything but the canonical encoding of a signed cheque of at most
    /// [`MAX_CHEQUE_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<SignedCheque, DecodeError> {
        decode_canonical("cheque", bytes, MAX_CHEQUE_LEN)
    }

    /// Checks that `payer_key` is the cheque's payer and that it signed the cheque.
    ///
    /// # Errors
    /// [`SignatureError::Invalid`] if the key is not the payer's, the signature does not
    /// verify, or the cheque cannot be encoded (an integer above [`MAX_AMOUNT`]);
    /// [`SignatureError::HighS`] or [`SignatureError::Malformed`] for a non-canonical signature.
    pub fn verify(&self, payer_key: &PublicKey) -> Result<(), SignatureError> {
        if payer_key.address() != self.cheque.payer {
            return Err(SignatureError::Invalid);
        }
        let body = self
            .cheque
            .signing_bytes()
            .map_err(|_| SignatureError::Invalid)?;
        payer_key.verify(&cheque_domain(self.cheque.chain_id), &body, &self.signature)
    }

    /// Recovers the payer's public key from the signature, and checks that it is the key of
    /// the cheque's payer. Costs about as much as a verification; prefer
    /// [`SignedCheque::verify`] when the key is known.
    ///
    /// # Errors
    /// As [`SignedCheque::verify`].
    pub fn recover_payer(&self) -> Result<PublicKey, SignatureError> {
        let body = self
            .cheque
            .signing_bytes()
            .map_err(|_| SignatureError::Invalid)?;
        let key = self
            .signature
            .recover(&cheque_domain(self.cheque.chain_id), &body)?;
        if key.address() != self.cheque.payer {
            return Err(SignatureError::Invalid);
        }
        Ok(key)
    }
}

/// Why a cheque could not be issued or was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChequeError {
    /// The cheque is for another chain.
    #[error("cheque for chain {got}, expected chain {expected}")]
    WrongChain {
        /// Our chain.
        expected: u64,
        /// The cheque's.
        got: u64,
    },
    /// The cheque pays someone else.
    #[error("cheque pays {beneficiary}, not us")]
    NotForUs {
        /// The cheque's beneficiary.
        beneficiary: Address,
    },
    /// The signature does not verify, or is not by the cheque's payer.
    #[error("bad cheque signature: {0}")]
    Signature(#[from] SignatureError),
    /// The cheque is not for more than the best one already held on its lane.
    #[error("cheque total {got} is not above the last one, {last}")]
    NotNewer {
        /// The best total held on the lane.
        last: u64,
        /// The cheque's total.
        got: u64,
    },
    /// A zero payment was asked for: it would produce a cheque no receiver accepts.
    #[error("payment amount is zero")]
    ZeroAmount,
    /// The lane's total would exceed [`MAX_AMOUNT`].
    #[error("cheque total would exceed the largest encodable amount")]
    Overflow,
    /// The receiver already tracks its maximum number of lanes.
    #[error("already tracking {max} cheque lanes")]
    TooManyLanes {
        /// The configured cap.
        max: usize,
    },
    /// The bytes are not a signed cheque.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// The payer's side: signs cheques and keeps the running total of every lane it pays on.
#[derive(Debug)]
pub struct ChequeIssuer {
    key: SecretKey,
    payer: Address,
    chain_id: u64,
    totals: HashMap<(Address, Option<ContentId>), u64>,
}

impl ChequeIssuer {
    /// An issuer for `key` on chain `chain_id`, with every lane at zero.
    pub fn new(key: SecretKey, chain_id: u64) -> ChequeIssuer {
        let payer = key.public_key().address();
        ChequeIssuer {
            key,
            payer,
            chain_id,
            totals: HashMap::new(),
        }
    }

    /// An issuer resuming from known lane totals `((beneficiary, content), cumulative)`, as
    /// saved from [`ChequeIssuer::lanes`]. Totals must never go backwards across restarts, or
    /// new cheques would be worth nothing to their beneficiaries until they pass the old ones.
    ///
    /// # Errors
    /// [`ChequeError::Overflow`] if a total is above [`MAX_AMOUNT`].
    pub fn restore(
        key: SecretKey,
        chain_id: u64,
        totals: impl IntoIterator<Item = ((Address, Option<ContentId>), u64)>,
    ) -> Result<ChequeIssuer, ChequeError> {
        let mut issuer = ChequeIssuer::new(key, chain_id);
        for (lane, total) in totals {
            if total > MAX_AMOUNT {
                return Err(ChequeError::Overflow);
            }
            issuer.totals.insert(lane, total);
        }
        Ok(issuer)
    }

    /// The payer's address.
    pub fn payer(&self) -> Address {
        self.payer
    }

    /// The chain the cheques are for.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The total promised so far to `beneficiary` for `content`.
    pub fn cumulative(&self, beneficiary: &Address, content: Option<ContentId>) -> u64 {
        self.totals
            .get(&(*beneficiary, content))
            .copied()
            .unwrap_or(0)
    }

    /// Every lane with its total, in no particular order (to save and later
    /// [`ChequeIssuer::restore`]).
    pub fn lanes(&self) -> impl Iterator<Item = ((Address, Option<ContentId>), u64)> + '_ {
        self.totals.iter().map(|(lane, total)| (*lane, *total))
    }

    /// Adds `amount` to the lane `(beneficiary, content)` and signs a cheque for the new total.
    /// The total is updated only if the cheque could be made.
    ///
    /// # Errors
    /// [`ChequeError::ZeroAmount`]; [`ChequeError::Overflow`] if the total would exceed
    /// [`MAX_AMOUNT`].
    pub fn pay(
        &mut self,
        beneficiary: Address,
        content: Option<ContentId>,
        amount: u64,
    ) -> Result<SignedCheque, ChequeError> {
        if amount == 0 {
            return Err(ChequeError::ZeroAmount);
        }
        let lane = (beneficiary, content);
        let cumulative = self
            .cumulative(&beneficiary, content)
            .checked_add(amount)
            .filter(|total| *total <= MAX_AMOUNT)
            .ok_or(ChequeError::Overflow)?;
        let signed = Cheque {
            chain_id: self.chain_id,
            payer: self.payer,
            beneficiary,
            content,
            cumulative,
        }
        .sign(&self.key)?;
        self.totals.insert(lane, cumulative);
        Ok(signed)
    }
}

#[derive(Debug)]
struct Payer {
    key: PublicKey,
    best: HashMap<Option<ContentId>, SignedCheque>,
}

/// The beneficiary's side: checks incoming cheques and keeps the best one per lane, ready to
/// be cashed.
#[derive(Debug)]
pub struct ChequeReceiver {
    chain_id: u64,
    us: Address,
    payers: HashMap<Address, Payer>,
    lanes: usize,
    max_lanes: usize,
}

impl ChequeReceiver {
    /// A receiver for cheques paying `us` on chain `chain_id`, tracking at most
    /// [`DEFAULT_MAX_LANES`] lanes.
    pub fn new(chain_id: u64, us: Address) -> ChequeReceiver {
        ChequeReceiver::with_max_lanes(chain_id, us, DEFAULT_MAX_LANES)
    }

    /// As [`ChequeReceiver::new`] with a cap of `max_lanes` lanes (`(payer, content)` pairs).
    pub fn with_max_lanes(chain_id: u64, us: Address, max_lanes: usize) -> ChequeReceiver {
        ChequeReceiver {
            chain_id,
            us,
            payers: HashMap::new(),
            lanes: 0,
            max_lanes,
        }
    }

    /// Our address: the beneficiary every accepted cheque names.
    pub fn beneficiary(&self) -> Address {
        self.us
    }

    /// Number of lanes tracked.
    pub fn lane_count(&self) -> usize {
        self.lanes
    }

    /// Checks `signed` as a payment from the holder of `payer_key` and, if it is for more than
    /// the best cheque held on its lane, keeps it. Returns by how much the lane's total grew.
    ///
    /// A stale cheque is rejected before its signature is checked, so replaying old cheques
    /// at a receiver costs it next to nothing.
    ///
    /// # Errors
    /// [`ChequeError::WrongChain`], [`ChequeError::NotForUs`], [`ChequeError::NotNewer`] (an
    /// old or repeated cheque), [`ChequeError::Signature`] (not signed by `payer_key`, or
    /// `payer_key` is not the payer's), [`ChequeError::TooManyLanes`] for a new lane beyond the
    /// cap. A rejected cheque changes nothing.
    pub fn receive(
        &mut self,
        signed: &SignedCheque,
        payer_key: &PublicKey,
    ) -> Result<u64, ChequeError> {
        let cheque = &signed.cheque;
        if cheque.chain_id != self.chain_id {
            return Err(ChequeError::WrongChain {
                expected: self.chain_id,
                got: cheque.chain_id,
            });
        }
        if cheque.beneficiary != self.us {
            return Err(ChequeError::NotForUs {
                beneficiary: cheque.beneficiary,
            });
        }
        let (payer, content) = cheque.lane();
        let last = self
            .payers
            .get(&payer)
            .and_then(|p| p.best.get(&content))
            .map(|best| best.cheque.cumulative);
        match last {
            Some(last) if cheque.cumulative <= last => {
                return Err(ChequeError::NotNewer {
                    last,
                    got: cheque.cumulative,
                })
            }
            None if self.lanes >= self.max_lanes => {
                return Err(ChequeError::TooManyLanes {
                    max: self.max_lanes,
                })
            }
            _ => {}
        }
        signed.verify(payer_key)?;
        let increase = cheque.cumulative.saturating_sub(last.unwrap_or(0));
        let entry = self.payers.entry(payer).or_insert_with(|| Payer {
            key: *payer_key,
            best: HashMap::new(),
        });
        if entry.best.insert(content, *signed).is_none() {
            self.lanes = self.lanes.saturating_add(1);
        }
        Ok(increase)
    }

    /// The best cheque held from `payer` for `content`: the one to cash.
    pub fn best(&self, payer: &Address, content: Option<ContentId>) -> Option<&SignedCheque> {
        self.payers.get(payer)?.best.get(&content)
    }

    /// The public key of `payer`, if a cheque from it was ever accepted.
    pub fn payer_key(&self, payer: &Address) -> Option<&PublicKey> {
        self.payers.get(payer).map(|p| &p.key)
    }

    /// Every best cheque held, in no particular order.
    pub fn cheques(&self) -> impl Iterator<Item = &SignedCheque> + '_ {
        self.payers.values().flat_map(|p| p.best.values())
    }

    /// Stops tracking `payer` (e.g. after cashing everything and disconnecting), freeing its
    /// lanes. Returns the best cheques that were held from it.
    pub fn forget(&mut self, payer: &Address) -> Vec<SignedCheque> {
        match self.payers.remove(payer) {
            Some(p) => {
                self.lanes = self.lanes.saturating_sub(p.best.len());
                p.best.into_values().collect()
            }
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )]
    use super::*;
    use proptest::prelude::*;

    const CHAIN: u64 = 9;

    fn content() -> Option<ContentId> {
        Some(ContentId::V2([7; 32]))
    }

    fn parties() -> (SecretKey, SecretKey) {
        (SecretKey::test_account(1), SecretKey::test_account(2))
    }

    #[test]
    fn issuer_totals_are_monotone_and_receiver_counts_increases() {
        let (payer, seeder) = parties();
        let seeder_addr = seeder.public_key().address();
        let mut issuer = ChequeIssuer::new(payer.clone(), CHAIN);
        let mut receiver = ChequeReceiver::new(CHAIN, seeder_addr);
        let a = issuer.pay(seeder_addr, content(), 10).unwrap();
        let b = issuer.pay(seeder_addr, content(), 5).unwrap();
        let other_lane = issuer.pay(seeder_addr, None, 3).unwrap();
        assert_eq!(a.cheque.cumulative, 10);
        assert_eq!(b.cheque.cumulative, 15);
        assert_eq!(other_lane.cheque.cumulative, 3);
        assert_eq!(issuer.cumulative(&seeder_addr, content()), 15);
        assert_eq!(issuer.cumulative(&seeder_addr, None), 3);

        let key = payer.public_key();
        assert_eq!(receiver.receive(&a, &key), Ok(10));
        assert_eq!(receiver.receive(&b, &key), Ok(5));
        assert_eq!(receiver.receive(&other_lane, &key), Ok(3));
        assert_eq!(receiver.best(&issuer.payer(), content()), Some(&b));
        assert_eq!(receiver.lane_count(), 2);
        // The old cheque and a repeat are both refused, and the best one stays.
        assert_eq!(
            receiver.receive(&a, &key),
            Err(ChequeError::NotNewer { last: 15, got: 10 })
        );
        assert_eq!(
            receiver.receive(&b, &key),
            Err(ChequeError::NotNewer { last: 15, got: 15 })
        );
        assert_eq!(receiver.best(&issuer.payer(), content()), Some(&b));
    }

    #[test]
    fn out_of_order_delivery_keeps_the_best() {
        let (payer, seeder) = parties();
        let seeder_addr = seeder.public_key().address();
        let mut issuer = ChequeIssuer::new(payer.clone(), CHAIN);
        let first = issuer.pay(seeder_addr, None, 1).unwrap();
        let second = issuer.pay(seeder_addr, None, 1).unwrap();
        let mut receiver = ChequeReceiver::new(CHAIN, seeder_addr);
        assert_eq!(receiver.receive(&second, &payer.public_key()), Ok(2));
        assert!(matches!(
            receiver.receive(&first, &payer.public_key()),
            Err(ChequeError::NotNewer { last: 2, got: 1 })
        ));
        assert_eq!(receiver.best(&issuer.payer(), None), Some(&second));
    }

    #[test]
    fn restore_continues_from_saved_totals() {
        let (payer, seeder) = parties();
        let seeder_addr = seeder.public_key().address();
        let mut issuer = ChequeIssuer::new(payer.clone(), CHAIN);
        issuer.pay(seeder_addr, content(), 40).unwrap();
        let saved: Vec<_> = issuer.lanes().collect();
        let mut again = ChequeIssuer::restore(payer, CHAIN, saved).unwrap();
        assert_eq!(
            again
                .pay(seeder_addr, content(), 2)
                .unwrap()
                .cheque
                .cumulative,
            42
        );
        let bad = ChequeIssuer::restore(
            SecretKey::test_account(1),
            CHAIN,
            [((seeder_addr, None), MAX_AMOUNT + 1)],
        );
        assert_eq!(bad.unwrap_err(), ChequeError::Overflow);
    }

    #[test]
    fn issuer_refuses_overflow_and_zero() {
        let (payer, seeder) = parties();
        let to = seeder.public_key().address();
        let mut issuer = ChequeIssuer::new(payer, CHAIN);
        assert_eq!(issuer.pay(to, None, 0), Err(ChequeError::ZeroAmount));
        issuer.pay(to, None, MAX_AMOUNT).unwrap();
        assert_eq!(issuer.pay(to, None, 1), Err(ChequeError::Overflow));
        assert_eq!(
            issuer.cumulative(&to, None),
            MAX_AMOUNT,
            "unchanged by a failure"
        );
    }

    #[test]
    fn wrong_beneficiary_and_wrong_chain_rejected() {
        let (payer, seeder) = parties();
        let seeder_addr = seeder.public_key().address();
        let stranger = SecretKey::test_account(3).public_key().address();
        let mut issuer = ChequeIssuer::new(payer.clone(), CHAIN);
        let to_stranger = issuer.pay(stranger, None, 5).unwrap();
        let mut receiver = ChequeReceiver::new(CHAIN, seeder_addr);
        assert_eq!(
            receiver.receive(&to_stranger, &payer.public_key()),
            Err(ChequeError::NotForUs {
                beneficiary: stranger
            })
        );
        let mut other_chain = ChequeIssuer::new(payer.clone(), CHAIN + 1);
        let cheque = other_chain.pay(seeder_addr, None, 5).unwrap();
        assert_eq!(
            receiver.receive(&cheque, &payer.public_key()),
            Err(ChequeError::WrongChain {
                expected: CHAIN,
                got: CHAIN + 1
            })
        );
        assert_eq!(receiver.lane_count(), 0);
    }

    #[test]
    fn tampered_or_foreign_cheques_fail_verification() {
        let (payer, seeder) = parties();
        let seeder_addr = seeder.public_key().address();
        let mut issuer = ChequeIssuer::new(payer.clone(), CHAIN);
        let good = issuer.pay(seeder_addr, content(), 10).unwrap();
        good.verify(&payer.public_key()).unwrap();
        assert_eq!(good.recover_payer(), Ok(payer.public_key()));

        let mut tampered = good;
        tampered.cheque.cumulative = 1_000;
        assert_eq!(
            tampered.verify(&payer.public_key()),
            Err(SignatureError::Invalid)
        );
        let mut receiver = ChequeReceiver::new(CHAIN, seeder_addr);
        assert_eq!(
            receiver.receive(&tampered, &payer.public_key()),
            Err(ChequeError::Signature(SignatureError::Invalid))
        );
        // Recovery yields some key, but not the payer's.
        assert!(tampered.recover_payer().is_err());

        // Signed by someone else in the payer's name.
        let forged = good.cheque.sign(&SecretKey::test_account(3)).unwrap();
        assert_eq!(
            forged.verify(&payer.public_key()),
            Err(SignatureError::Invalid)
        );
        assert!(forged.recover_payer().is_err());
        // A key that is not the payer's, even with its own valid signature.
        assert_eq!(
            receiver.receive(&forged, &SecretKey::test_account(3).public_key()),
            Err(ChequeError::Signature(SignatureError::Invalid))
        );
        // High-S twin of a valid signature.
        let mut malleated = good;
        malleated.signature = good.signature.malleate();
        assert_eq!(
            malleated.verify(&payer.public_key()),
            Err(SignatureError::HighS)
        );
        assert_eq!(receiver.lane_count(), 0);
        assert_eq!(receiver.receive(&good, &payer.public_key()), Ok(10));
    }

    #[test]
    fn lane_cap_is_enforced_and_forget_frees() {
        let (payer, seeder) = parties();
        let seeder_addr = seeder.public_key().address();
        let mut issuer = ChequeIssuer::new(payer.clone(), CHAIN);
        let mut receiver = ChequeReceiver::with_max_lanes(CHAIN, seeder_addr, 2);
        let key = payer.public_key();
        receiver
            .receive(&issuer.pay(seeder_addr, None, 1).unwrap(), &key)
            .unwrap();
        receiver
            .receive(
                &issuer
                    .pay(seeder_addr, Some(ContentId::V1([1; 20])), 1)
                    .unwrap(),
                &key,
            )
            .unwrap();
        let third = issuer
            .pay(seeder_addr, Some(ContentId::V1([2; 20])), 1)
            .unwrap();
        assert_eq!(
            receiver.receive(&third, &key),
            Err(ChequeError::TooManyLanes { max: 2 })
        );
        // Existing lanes still advance at the cap.
        let more = issuer.pay(seeder_addr, None, 4).unwrap();
        assert_eq!(receiver.receive(&more, &key), Ok(4));
        assert_eq!(receiver.forget(&issuer.payer()).len(), 2);
        assert_eq!(receiver.lane_count(), 0);
        assert_eq!(receiver.receive(&third, &key), Ok(1));
    }

    #[test]
    fn encoding_is_canonical_and_bounded() {
        let (payer, seeder) = parties();
        let mut issuer = ChequeIssuer::new(payer, CHAIN);
        let c = issuer
            .pay(seeder.public_key().address(), content(), 77)
            .unwrap();
        let bytes = c.encode().unwrap();
        assert!(bytes.len() < 300, "{} bytes", bytes.len());
        assert_eq!(SignedCheque::decode(&bytes).unwrap(), c);
        // An extra key is a second encoding of the same value.
        let mut extra = bytes.clone();
        extra.pop();
        extra.extend_from_slice(b"1:zi0ee");
        assert!(SignedCheque::decode(&extra).is_err());
        assert!(matches!(
            SignedCheque::decode(&vec![b'x'; MAX_CHEQUE_LEN + 1]),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn content_id_hex_and_bytes() {
        let v1 = ContentId::V1([0xab; 20]);
        let v2 = ContentId::V2([0x01; 32]);
        assert_eq!(ContentId::from_hex(&v1.to_hex()), Some(v1));
        assert_eq!(ContentId::from_hex(&v2.to_string()), Some(v2));
        assert_eq!(ContentId::from_hex("abc"), None);
        assert_eq!(ContentId::from_bytes(&[0; 21]), None);
        assert_eq!(ContentId::from_bytes(v2.as_bytes()), Some(v2));
        assert_eq!(encode("t", &v1).unwrap()[..3], *b"20:");
    }

    fn arb_content() -> impl Strategy<Value = Option<ContentId>> {
        prop_oneof![
            Just(None),
            any::<[u8; 20]>().prop_map(|h| Some(ContentId::V1(h))),
            any::<[u8; 32]>().prop_map(|h| Some(ContentId::V2(h))),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(
            chain_id in 0..=MAX_AMOUNT,
            payer in any::<[u8; 20]>(),
            beneficiary in any::<[u8; 20]>(),
            content in arb_content(),
            cumulative in 0..=MAX_AMOUNT,
            key in 1u64..50,
        ) {
            let signed = Cheque {
                chain_id,
                payer: Address(payer),
                beneficiary: Address(beneficiary),
                content,
                cumulative,
            }
            .sign(&SecretKey::test_account(key))
            .unwrap();
            let bytes = signed.encode().unwrap();
            prop_assert!(bytes.len() <= MAX_CHEQUE_LEN);
            prop_assert_eq!(SignedCheque::decode(&bytes).unwrap(), signed);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(c) = SignedCheque::decode(&bytes) {
                prop_assert_eq!(c.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn decode_of_mutated_cheques_never_panics(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        ) {
            let (payer, seeder) = parties();
            let mut issuer = ChequeIssuer::new(payer.clone(), CHAIN);
            let c = issuer.pay(seeder.public_key().address(), content(), 5).unwrap();
            let mut bytes = c.encode().unwrap();
            for (at, b) in flips {
                let at = at % bytes.len();
                bytes[at] = b;
            }
            if let Ok(d) = SignedCheque::decode(&bytes) {
                prop_assert_eq!(d.encode().unwrap(), bytes);
                if d.cheque != c.cheque {
                    prop_assert!(d.verify(&payer.public_key()).is_err());
                }
            }
        }
    }
}
