//! The ledger state: accounts and contract storage in one authenticated map, and the journal
//! that makes one transaction's changes all-or-nothing.

use std::collections::HashMap;

use crate::crypto::{Address, Hash};
use crate::smt::{AuthMap, Proof};

/// An account: its balance and the nonce its next transaction must carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    /// Tokens held.
    pub balance: u64,
    /// Number of transactions this account has sent.
    pub nonce: u64,
}

impl Account {
    /// The 16-byte encoding kept in the state: balance then nonce, big-endian.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.balance.to_be_bytes());
        out[8..].copy_from_slice(&self.nonce.to_be_bytes());
        out
    }

    /// Decodes [`Account::encode`]'s output; `None` for any other length.
    pub fn decode(bytes: &[u8]) -> Option<Account> {
        let bytes: &[u8; 16] = bytes.try_into().ok()?;
        let (balance, nonce) = bytes.split_at(8);
        Some(Account {
            balance: u64::from_be_bytes(balance.try_into().ok()?),
            nonce: u64::from_be_bytes(nonce.try_into().ok()?),
        })
    }
}

/// The state key of an account: `a ‖ address`.
pub fn account_key(address: &Address) -> [u8; 21] {
    let mut key = [0; 21];
    key[0] = b'a';
    key[1..].copy_from_slice(&address.0);
    key
}

/// The state key of slot `key` of contract `contract`: `s ‖ len(contract) ‖ contract ‖ key`.
pub fn storage_key(contract: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + contract.len() + key.len());
    out.push(b's');
    out.push(u8::try_from(contract.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(contract.as_bytes());
    out.extend_from_slice(key);
    out
}

/// The whole state, authenticated.
#[derive(Clone, Debug, Default)]
pub struct State {
    map: AuthMap,
}

impl State {
    /// An empty state.
    pub fn new() -> State {
        State::default()
    }

    /// A state holding exactly `entries` (raw keys and values, as [`State::entries`] gives).
    pub fn from_entries(entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> State {
        State {
            map: AuthMap::from_entries(entries),
        }
    }

    /// An account (the default, empty account if it was never written).
    pub fn account(&self, address: &Address) -> Account {
        self.map
            .get(&account_key(address))
            .and_then(Account::decode)
            .unwrap_or_default()
    }

    /// Writes an account.
    pub fn set_account(&mut self, address: &Address, account: Account) {
        self.map.insert(&account_key(address), &account.encode());
    }

    /// A raw read.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map.get(key)
    }

    /// A raw write (`None` deletes).
    pub fn put(&mut self, key: &[u8], value: Option<&[u8]>) {
        match value {
            Some(v) => self.map.insert(key, v),
            None => {
                self.map.remove(key);
            }
        }
    }

    /// The root over everything, rehashing only what changed since the last call.
    pub fn root(&mut self) -> Hash {
        Hash(self.map.root())
    }

    /// A proof for `key` (inclusion if present, exclusion if not) against [`State::root`].
    pub fn prove(&mut self, key: &[u8]) -> Proof {
        self.map.prove(key)
    }

    /// Number of entries (accounts plus storage slots).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every entry, in a deterministic order (for snapshots).
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.map.iter()
    }

    /// Sum of all account balances (contract escrow accounts included): the token supply.
    pub fn total_balance(&self) -> u128 {
        self.map
            .iter()
            .filter(|(k, _)| k.len() == 21 && k.first() == Some(&b'a'))
            .filter_map(|(_, v)| Account::decode(v))
            .map(|a| u128::from(a.balance))
            .sum()
    }
}

/// The uncommitted writes of one transaction, read through to the state beneath. Dropped on
/// failure, applied on success.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    writes: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Journal {
    pub(crate) fn get<'a>(&'a self, state: &'a State, key: &[u8]) -> Option<&'a [u8]> {
        match self.writes.get(key) {
            Some(v) => v.as_deref(),
            None => state.get(key),
        }
    }

    pub(crate) fn put(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.writes.insert(key, value);
    }

    pub(crate) fn into_writes(self) -> impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> {
        self.writes.into_iter()
    }
}
