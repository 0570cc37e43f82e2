//! The `registry` contract: who owns which content, at what price, for what royalty.
//!
//! A registration names a BitTorrent v1 info hash, a v2 info hash, or both (a hybrid torrent),
//! and is stored once under each of them, so a cheque naming either finds it. The first to
//! register a hash owns it; ownership can be handed on, and every hand-over is kept in a
//! permanent history. Nothing is ever deleted.
//!
//! When the `chequebook` cashes a cheque naming registered content, it pays the owner
//! `royalty_bps / 10 000` of the amount. `price_per_byte` is the owner's asking price, for
//! clients to read; the chain does not enforce it.
//!
//! # Storage (slots of contract `registry`)
//!
//! | key | value |
//! |---|---|
//! | `c ‖ hash` (20 or 32 bytes) | [`Registration`] |
//! | `h ‖ primary hash ‖ seq` (seq: u64 big-endian, from 1) | [`OwnershipChange`] number `seq` |
//!
//! The *primary* hash of a registration is its v2 hash if it has one, else its v1 hash
//! ([`Registration::primary`]); `transfers` in the record is the number of history entries.
//!
//! # Methods
//! * `register` ([`RegisterArgs`]): 1 read per hash, 1 write per hash, 1 event.
//! * `transfer` ([`TransferOwnershipArgs`]): 1 read, 1 write per hash, 1 history write,
//!   1 event.

use serde::{Deserialize, Serialize};

use super::REGISTRY;
use crate::cheque::ContentId;
use crate::codec::decode_canonical;
use crate::crypto::Address;
use crate::engine::{decode_args, Context, Contract};
use crate::error::ContractError;
use crate::state::{storage_key, State};

/// Largest royalty: 10 000 basis points, everything.
pub const MAX_ROYALTY_BPS: u16 = 10_000;

/// Arguments of `registry.register`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterArgs {
    /// The v1 info hash, if any.
    #[serde(with = "serde_bytes", default, skip_serializing_if = "Option::is_none")]
    pub v1: Option<[u8; 20]>,
    /// The v2 info hash, if any. At least one of `v1` and `v2` must be given.
    #[serde(with = "serde_bytes", default, skip_serializing_if = "Option::is_none")]
    pub v2: Option<[u8; 32]>,
    /// Asking price per byte (informative).
    pub price_per_byte: u64,
    /// Share of every cheque cashed for this content that goes to its owner, in basis points
    /// (at most [`MAX_ROYALTY_BPS`]).
    pub royalty_bps: u16,
}

/// Arguments of `registry.transfer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferOwnershipArgs {
    /// Either hash of the content.
    pub content: ContentId,
    /// The next owner.
    pub new_owner: Address,
}

/// A registration, as stored under each of its hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// Current owner: receives the royalties.
    pub owner: Address,
    /// Asking price per byte.
    pub price_per_byte: u64,
    /// Royalty in basis points.
    pub royalty_bps: u16,
    /// The v1 info hash, if any.
    #[serde(with = "serde_bytes", default, skip_serializing_if = "Option::is_none")]
    pub v1: Option<[u8; 20]>,
    /// The v2 info hash, if any.
    #[serde(with = "serde_bytes", default, skip_serializing_if = "Option::is_none")]
    pub v2: Option<[u8; 32]>,
    /// Height of the block that registered it.
    pub registered_height: u64,
    /// Number of ownership changes so far (entries in the history).
    pub transfers: u64,
}

impl Registration {
    /// The hashes it is registered under: v1 first, then v2.
    pub fn ids(&self) -> impl Iterator<Item = ContentId> {
        self.v1
            .map(ContentId::V1)
            .into_iter()
            .chain(self.v2.map(ContentId::V2))
    }

    /// The hash its history is kept under: v2 if present, else v1. `None` only for a record
    /// with no hash at all, which `register` never writes.
    pub fn primary(&self) -> Option<ContentId> {
        self.v2.map(ContentId::V2).or(self.v1.map(ContentId::V1))
    }

    /// The royalty on `amount`: `amount × royalty_bps / 10 000`, rounded down.
    ///
    /// # Errors
    /// [`ContractError::Overflow`] only if `royalty_bps` is above [`MAX_ROYALTY_BPS`] (which
    /// `register` refuses) and the product does not fit.
    pub fn royalty_on(&self, amount: u64) -> Result<u64, ContractError> {
        let royalty = u128::from(amount) * u128::from(self.royalty_bps) / 10_000;
        u64::try_from(royalty).map_err(|_| ContractError::Overflow)
    }
}

/// One ownership change in a registration's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnershipChange {
    /// The owner before.
    pub from: Address,
    /// The owner after.
    pub to: Address,
    /// Height of the block it happened in.
    pub height: u64,
    /// Time of that block (ms).
    pub time_ms: u64,
}

/// Data of the `registered` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    /// The owner (the caller).
    pub owner: Address,
    /// The v1 info hash, if any.
    #[serde(with = "serde_bytes", default, skip_serializing_if = "Option::is_none")]
    pub v1: Option<[u8; 20]>,
    /// The v2 info hash, if any.
    #[serde(with = "serde_bytes", default, skip_serializing_if = "Option::is_none")]
    pub v2: Option<[u8; 32]>,
    /// Asking price per byte.
    pub price_per_byte: u64,
    /// Royalty in basis points.
    pub royalty_bps: u16,
}

/// Data of the `transferred` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transferred {
    /// The registration's primary hash.
    pub content: ContentId,
    /// The owner before.
    pub from: Address,
    /// The owner after.
    pub to: Address,
    /// The history entry's number (1 for the first transfer).
    pub seq: u64,
}

/// The storage slot (within the registry) of the record for `id`: `c ‖ hash`.
pub fn record_key(id: &ContentId) -> Vec<u8> {
    let mut key = Vec::with_capacity(33);
    key.push(b'c');
    key.extend_from_slice(id.as_bytes());
    key
}

/// The storage slot (within the registry) of history entry `seq` of the registration whose
/// primary hash is `primary`: `h ‖ hash ‖ seq` (big-endian).
pub fn history_key(primary: &ContentId, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(41);
    key.push(b'h');
    key.extend_from_slice(primary.as_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Reads the registration of `id` from a state (no gas; for queries and tools).
pub fn lookup(state: &State, id: &ContentId) -> Option<Registration> {
    let bytes = state.get(&storage_key(REGISTRY, &record_key(id)))?;
    decode_canonical("registration", bytes, usize::MAX).ok()
}

/// The ownership history of `id`, oldest first (empty if it is not registered or was never
/// transferred).
pub fn history(state: &State, id: &ContentId) -> Vec<OwnershipChange> {
    let Some(record) = lookup(state, id) else {
        return Vec::new();
    };
    let Some(primary) = record.primary() else {
        return Vec::new();
    };
    (1..=record.transfers)
        .map_while(|seq| {
            let bytes = state.get(&storage_key(REGISTRY, &history_key(&primary, seq)))?;
            decode_canonical("ownership change", bytes, usize::MAX).ok()
        })
        .collect()
}

/// The registry contract.
#[derive(Clone, Copy, Debug, Default)]
pub struct Registry;

impl Contract for Registry {
    fn name(&self) -> &'static str {
        REGISTRY
    }

    fn call(
        &self,
        ctx: &mut Context<'_>,
        method: &str,
        args: &[u8],
    ) -> Result<Vec<u8>, ContractError> {
        match method {
            "register" => register(ctx, decode_args(args)?),
            "transfer" => transfer(ctx, decode_args(args)?),
            other => Err(ContractError::UnknownMethod(other.to_owned())),
        }
    }
}

fn register(ctx: &mut Context<'_>, args: RegisterArgs) -> Result<Vec<u8>, ContractError> {
    if args.v1.is_none() && args.v2.is_none() {
        return Err(ContractError::InvalidArgument(
            "register needs a v1 or a v2 info hash",
        ));
    }
    if args.royalty_bps > MAX_ROYALTY_BPS {
        return Err(ContractError::InvalidArgument(
            "royalty_bps must be at most 10000",
        ));
    }
    let record = Registration {
        owner: ctx.caller(),
        price_per_byte: args.price_per_byte,
        royalty_bps: args.royalty_bps,
        v1: args.v1,
        v2: args.v2,
        registered_height: ctx.env().height,
        transfers: 0,
    };
    let ids: Vec<ContentId> = record.ids().collect();
    for id in &ids {
        if ctx.get(&record_key(id))?.is_some() {
            return Err(ContractError::AlreadyRegistered);
        }
    }
    for id in &ids {
        ctx.set_encoded(&record_key(id), &record)?;
    }
    ctx.emit(
        "registered",
        &Registered {
            owner: record.owner,
            v1: record.v1,
            v2: record.v2,
            price_per_byte: record.price_per_byte,
            royalty_bps: record.royalty_bps,
        },
    )?;
    Ok(Vec::new())
}

fn transfer(ctx: &mut Context<'_>, args: TransferOwnershipArgs) -> Result<Vec<u8>, ContractError> {
    let mut record: Registration = ctx
        .get_decoded(&record_key(&args.content))?
        .ok_or(ContractError::NotRegistered)?;
    let from = record.owner;
    if ctx.caller() != from {
        return Err(ContractError::Unauthorized(
            "only the owner can transfer content",
        ));
    }
    if args.new_owner == from {
        return Err(ContractError::InvalidArgument(
            "the new owner is already the owner",
        ));
    }
    let primary = record.primary().ok_or(ContractError::NotRegistered)?;
    let seq = record
        .transfers
        .checked_add(1)
        .ok_or(ContractError::Overflow)?;
    record.owner = args.new_owner;
    record.transfers = seq;
    for id in record.ids() {
        ctx.set_encoded(&record_key(&id), &record)?;
    }
    let env = *ctx.env();
    ctx.set_encoded(
        &history_key(&primary, seq),
        &OwnershipChange {
            from,
            to: args.new_owner,
            height: env.height,
            time_ms: env.time_ms,
        },
    )?;
    ctx.emit(
        "transferred",
        &Transferred {
            content: primary,
            from,
            to: args.new_owner,
            seq,
        },
    )?;
    Ok(Vec::new())
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
    use crate::codec::{decode_canonical, encode};
    use crate::contracts::testkit::{addr, Kit};

    fn reg(v1: Option<[u8; 20]>, v2: Option<[u8; 32]>, bps: u16) -> Vec<u8> {
        encode(
            "t",
            &RegisterArgs {
                v1,
                v2,
                price_per_byte: 3,
                royalty_bps: bps,
            },
        )
        .unwrap()
    }

    fn xfer(content: ContentId, to: Address) -> Vec<u8> {
        encode(
            "t",
            &TransferOwnershipArgs {
                content,
                new_owner: to,
            },
        )
        .unwrap()
    }

    #[test]
    fn hybrid_registration_is_found_under_both_hashes() {
        let mut kit = Kit::new(&[]);
        let (_, events) = kit
            .call(
                &Registry,
                1,
                "register",
                &reg(Some([1; 20]), Some([2; 32]), 500),
            )
            .unwrap();
        assert_eq!(events[0].name, "registered");
        let a = lookup(&kit.state, &ContentId::V1([1; 20])).unwrap();
        let b = lookup(&kit.state, &ContentId::V2([2; 32])).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.owner, addr(1));
        assert_eq!(a.royalty_bps, 500);
        assert_eq!(a.registered_height, 1);
        assert_eq!(a.primary(), Some(ContentId::V2([2; 32])));
        assert_eq!(lookup(&kit.state, &ContentId::V1([2; 20])), None);

        // Any overlap is a duplicate, and nothing of the failed call is written.
        assert_eq!(
            kit.call(
                &Registry,
                2,
                "register",
                &reg(Some([9; 20]), Some([2; 32]), 0)
            ),
            Err(ContractError::AlreadyRegistered)
        );
        assert_eq!(lookup(&kit.state, &ContentId::V1([9; 20])), None);
        assert_eq!(
            kit.call(&Registry, 2, "register", &reg(Some([1; 20]), None, 0)),
            Err(ContractError::AlreadyRegistered)
        );
    }

    #[test]
    fn bad_registrations() {
        let mut kit = Kit::new(&[]);
        assert!(matches!(
            kit.call(&Registry, 1, "register", &reg(None, None, 0)),
            Err(ContractError::InvalidArgument(_))
        ));
        assert!(matches!(
            kit.call(&Registry, 1, "register", &reg(Some([1; 20]), None, 10_001)),
            Err(ContractError::InvalidArgument(_))
        ));
        kit.call(&Registry, 1, "register", &reg(Some([1; 20]), None, 10_000))
            .unwrap();
    }

    #[test]
    fn ownership_transfer_and_history() {
        let mut kit = Kit::new(&[]);
        kit.call(
            &Registry,
            1,
            "register",
            &reg(Some([1; 20]), Some([2; 32]), 100),
        )
        .unwrap();
        let v1 = ContentId::V1([1; 20]);
        let v2 = ContentId::V2([2; 32]);
        assert_eq!(
            kit.call(&Registry, 2, "transfer", &xfer(v1, addr(2))),
            Err(ContractError::Unauthorized(
                "only the owner can transfer content"
            ))
        );
        assert_eq!(
            kit.call(
                &Registry,
                1,
                "transfer",
                &xfer(ContentId::V1([5; 20]), addr(2))
            ),
            Err(ContractError::NotRegistered)
        );
        let (_, events) = kit
            .call(&Registry, 1, "transfer", &xfer(v1, addr(2)))
            .unwrap();
        let ev: Transferred = decode_canonical("e", &events[0].data, 1000).unwrap();
        assert_eq!(
            ev,
            Transferred {
                content: v2,
                from: addr(1),
                to: addr(2),
                seq: 1
            }
        );
        assert_eq!(lookup(&kit.state, &v1).unwrap().owner, addr(2));
        assert_eq!(lookup(&kit.state, &v2).unwrap().owner, addr(2));
        // The old owner lost control, the new one has it.
        assert!(matches!(
            kit.call(&Registry, 1, "transfer", &xfer(v2, addr(3))),
            Err(ContractError::Unauthorized(_))
        ));
        kit.env.height = 7;
        kit.call(&Registry, 2, "transfer", &xfer(v2, addr(3)))
            .unwrap();
        let record = lookup(&kit.state, &v1).unwrap();
        assert_eq!(record.owner, addr(3));
        assert_eq!(record.transfers, 2);
        let changes = history(&kit.state, &v1);
        assert_eq!(changes.len(), 2);
        assert_eq!((changes[0].from, changes[0].to), (addr(1), addr(2)));
        assert_eq!((changes[1].from, changes[1].to), (addr(2), addr(3)));
        assert_eq!(changes[1].height, 7);
        assert_eq!(changes, history(&kit.state, &v2));
    }
}
