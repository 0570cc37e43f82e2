//! The contract engine: the [`Contract`] trait and the [`Context`] a call runs in.
//!
//! A call sees the state through a journal: every read and write is metered, writes land in the
//! journal, and only a call that returns `Ok` has its journal applied. A failed call leaves no
//! trace but its receipt and its fee.

use serde::{Deserialize, Serialize};

use crate::block::Event;
use crate::codec::{decode_canonical, encode};
use crate::crypto::{Address, Domain, Hash, PublicKey, Signature};
use crate::error::ContractError;
use crate::gas::{GasMeter, GasSchedule};
use crate::state::{account_key, storage_key, Account, Journal, State};
use crate::tx::MAX_ARGS_LEN;

/// A native contract: deterministic code that runs a method against its own storage, account
/// balances and the block environment, and nothing else.
pub trait Contract: Send + Sync {
    /// The name transactions call it by.
    fn name(&self) -> &'static str;

    /// Runs `method` with canonically encoded `args`; returns canonically encoded output.
    ///
    /// # Errors
    /// Any [`ContractError`]: the call's changes and events are reverted, its fee charged.
    fn call(
        &self,
        ctx: &mut Context<'_>,
        method: &str,
        args: &[u8],
    ) -> Result<Vec<u8>, ContractError>;

    /// The signatures a call will check with [`Context::verify`], as far as they can be known
    /// from `state` before the block runs (the state at the start of the block). The ledger
    /// verifies them in parallel with the transactions' own signatures, so that the call's
    /// `verify` finds them already checked. Only speed depends on this: a check that is
    /// missing, or made against a key that changes during the block, is simply done again
    /// in order, and gas is charged the same either way. Default: none.
    fn signature_checks(
        &self,
        state: &State,
        chain_id: u64,
        method: &str,
        args: &[u8],
    ) -> Vec<SignatureCheck> {
        let _ = (state, chain_id, method, args);
        Vec::new()
    }
}

/// A signature a call will check: the key, the [`Domain::digest`] of the message, and the
/// signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignatureCheck {
    /// Who must have signed.
    pub key: PublicKey,
    /// The digest signed.
    pub digest: [u8; 32],
    /// The signature.
    pub signature: Signature,
}

impl SignatureCheck {
    /// Verifies it.
    ///
    /// # Errors
    /// As [`PublicKey::verify_digest`].
    pub fn verify(&self) -> Result<(), crate::error::SignatureError> {
        self.key.verify_digest(&self.digest, &self.signature)
    }

    /// A 32-byte tag naming this exact (key, digest, signature) triple.
    pub fn tag(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("tessera-ledger verified signature v1");
        h.update(&self.key.to_bytes());
        h.update(&self.digest);
        h.update(&self.signature.0);
        *h.finalize().as_bytes()
    }
}

/// Chain parameters fixed at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Lowest accepted gas price.
    pub min_gas_price: u64,
    /// Most gas all transactions in a block may be given (sum of gas limits).
    pub block_gas_limit: u64,
    /// How long a chequebook owner must wait between announcing and making a withdrawal.
    pub notice_period_ms: u64,
    /// What operations cost.
    pub gas: GasSchedule,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_gas_price: 1,
            block_gas_limit: 500_000_000,
            notice_period_ms: 24 * 60 * 60 * 1000,
            gas: GasSchedule::default(),
        }
    }
}

/// The block a call runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Env {
    /// The chain.
    pub chain_id: u64,
    /// The block's height.
    pub height: u64,
    /// The block's time (ms since the Unix epoch): the only clock contracts have.
    pub time_ms: u64,
    /// The block's proposer.
    pub proposer: Address,
}

/// What a running call can do. Every operation is charged to the transaction's gas meter.
pub struct Context<'a> {
    pub(crate) state: &'a State,
    pub(crate) journal: &'a mut Journal,
    pub(crate) gas: &'a mut GasMeter,
    pub(crate) events: &'a mut Vec<Event>,
    pub(crate) env: &'a Env,
    pub(crate) params: &'a Params,
    pub(crate) caller_key: &'a PublicKey,
    pub(crate) verified: &'a std::collections::HashSet<[u8; 32]>,
    pub(crate) caller: Address,
    pub(crate) contract: &'static str,
}

impl Context<'_> {
    /// The account that signed the transaction.
    pub fn caller(&self) -> Address {
        self.caller
    }

    /// The public key that signed the transaction.
    pub fn caller_key(&self) -> &PublicKey {
        self.caller_key
    }

    /// The block environment.
    pub fn env(&self) -> &Env {
        self.env
    }

    /// The chain parameters.
    pub fn params(&self) -> &Params {
        self.params
    }

    /// The escrow account of the running contract.
    pub fn contract_address(&self) -> Address {
        Address::of_contract(self.contract)
    }

    /// Charges `amount` gas.
    ///
    /// # Errors
    /// [`ContractError::OutOfGas`].
    pub fn charge(&mut self, amount: u64) -> Result<(), ContractError> {
        self.gas.charge(amount)
    }

    /// Gas left.
    pub fn gas_remaining(&self) -> u64 {
        self.gas.remaining()
    }

    fn charge_per_byte(
        &mut self,
        base: u64,
        per_byte: u64,
        len: usize,
    ) -> Result<(), ContractError> {
        let bytes = u64::try_from(len).unwrap_or(u64::MAX);
        self.charge(base.saturating_add(per_byte.saturating_mul(bytes)))
    }

    /// Reads slot `key` of the running contract's storage.
    ///
    /// # Errors
    /// [`ContractError::OutOfGas`].
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, ContractError> {
        self.get_of(self.contract, key)
    }

    /// Reads slot `key` of another contract's storage (read-only access, e.g. the registry's
    /// records from the chequebook).
    ///
    /// # Errors
    /// [`ContractError::OutOfGas`].
    pub fn get_of(&mut self, contract: &str, key: &[u8]) -> Result<Option<Vec<u8>>, ContractError> {
        let full = storage_key(contract, key);
        let value = self.journal.get(self.state, &full).map(<[u8]>::to_vec);
        let len = value.as_ref().map_or(0, Vec::len);
        let gas = &self.params.gas;
        self.charge_per_byte(gas.read, gas.read_byte, len)?;
        Ok(value)
    }

    /// Reads and decodes slot `key` of the running contract.
    ///
    /// # Errors
    /// [`ContractError::OutOfGas`]; [`ContractError::BadArguments`] if the slot does not hold
    /// a `T` (which only a bug in the contract could cause).
    pub fn get_decoded<T: for<'de> Deserialize<'de> + Serialize>(
        &mut self,
        key: &[u8],
    ) -> Result<Option<T>, ContractError> {
        self.get_decoded_of(self.contract, key)
    }

    /// Reads and decodes slot `key` of `contract`.
    ///
    /// # Errors
    /// As [`Context::get_decoded`].
    pub fn get_decoded_of<T: for<'de> Deserialize<'de> + Serialize>(
        &mut self,
        contract: &str,
        key: &[u8],
    ) -> Result<Option<T>, ContractError> {
        match self.get_of(contract, key)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(decode_canonical("storage slot", &bytes, usize::MAX)?)),
        }
    }

    /// Writes slot `key` of the running contract.
    ///
    /// # Errors
    /// [`ContractError::OutOfGas`].
    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), ContractError> {
        let gas = &self.params.gas;
        self.charge_per_byte(gas.write, gas.write_byte, key.len() + value.len())?;
        self.journal
            .put(storage_key(self.contract, key), Some(value.to_vec()));
        Ok(())
    }

    /// Encodes `value` canonically and writes it to slot `key`.
    ///
    /// # Errors
    /// [`ContractError::OutOfGas`]; [`ContractError::Overflow`] if it cannot be encoded.
    pub fn set_encoded<T: Serialize>(
        &mut self,
        key: &[u8],
        value: &T,
    ) -> Result<(), ContractError> {
        let bytes = encode("storage slot", value).map_err(|_| ContractError::Overflow)?;
        self.set(key, &bytes)
    }

    /// Deletes slot `key` of the running contract.
    ///
    /// # Errors
    /// [`ContractError::OutOfGas`].
    pub fn remove(&mut self, key: &[u8]) -> Result<(), ContractError> {
        self.charge(self.params.gas.write)?;
        self.journal.put(storage_key(self.contract, key), None);
        Ok(())
    }

    /// An account's balance.
    ///
    /// # Errors
    /// [`ContractError::OutOfGas`].
    pub fn balance(&mut self, address: &Address) -> Result<u64, ContractError> {
        Ok(self.account(address)?.balance)
    }

    fn account(&mut self, address: &Address) -> Result<Account, ContractError> {
        self.charge(self.params.gas.read)?;
        Ok(self
            .journal
            .get(self.state, &account_key(address))
            .and_then(Account::decode)
            .unwrap_or_default())
    }

    fn set_account(&mut self, address: &Address, account: Account) -> Result<(), ContractError> {
        self.charge(self.params.gas.write)?;
        self.journal.put(
            account_key(address).to_vec(),
            Some(account.encode().to_vec()),
        );
        Ok(())
    }

    /// Moves `amount` tokens from `from` to `to`. `from` must be the caller or the running
    /// contract's own escrow account: a contract can spend only what it holds or what the
    /// signer of the transaction holds.
    ///
    /// # Errors
    /// [`ContractError::Unauthorized`], [`ContractError::InsufficientBalance`],
    /// [`ContractError::Overflow`], [`ContractError::OutOfGas`].
    pub fn transfer(
        &mut self,
        from: &Address,
        to: &Address,
        amount: u64,
    ) -> Result<(), ContractError> {
        if *from != self.caller && *from != self.contract_address() {
            return Err(ContractError::Unauthorized(
                "transfers must come from the caller or the contract's own account",
            ));
        }
        let mut source = self.account(from)?;
        if source.balance < amount {
            return Err(ContractError::InsufficientBalance {
                needed: amount,
                available: source.balance,
            });
        }
        if from == to || amount == 0 {
            return Ok(());
        }
        source.balance -= amount;
        let mut dest = self.account(to)?;
        dest.balance = dest
            .balance
            .checked_add(amount)
            .ok_or(ContractError::Overflow)?;
        self.set_account(from, source)?;
        self.set_account(to, dest)
    }

    /// Verifies `signature` over `message` in `domain` by `key`, charging for it.
    ///
    /// # Errors
    /// [`ContractError::OutOfGas`]; [`ContractError::Signature`] if it does not verify.
    pub fn verify(
        &mut self,
        key: &PublicKey,
        domain: &Domain<'_>,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), ContractError> {
        self.charge(self.params.gas.verify_signature)?;
        let gas = &self.params.gas;
        self.charge_per_byte(0, gas.hash_block, message.len() / 64 + 1)?;
        let check = SignatureCheck {
            key: *key,
            digest: domain.digest(message),
            signature: *signature,
        };
        if self.verified.contains(&check.tag()) {
            return Ok(());
        }
        check.verify().map_err(ContractError::Signature)
    }

    /// blake3 of `data` under `context`, charging for it.
    ///
    /// # Errors
    /// [`ContractError::OutOfGas`].
    pub fn hash(&mut self, context: &str, data: &[u8]) -> Result<Hash, ContractError> {
        let gas = &self.params.gas;
        self.charge_per_byte(gas.hash, gas.hash_block, data.len() / 64 + 1)?;
        Ok(Hash::of(context, data))
    }

    /// Emits an event with canonically encoded `data`. It reaches the receipt only if the call
    /// succeeds.
    ///
    /// # Errors
    /// [`ContractError::OutOfGas`]; [`ContractError::Overflow`] if `data` cannot be encoded.
    pub fn emit<T: Serialize>(&mut self, name: &str, data: &T) -> Result<(), ContractError> {
        let data = encode("event", data).map_err(|_| ContractError::Overflow)?;
        let gas = &self.params.gas;
        self.charge_per_byte(gas.event, gas.event_byte, data.len() + name.len())?;
        self.events.push(Event {
            contract: self.contract.to_owned(),
            name: name.to_owned(),
            data,
        });
        Ok(())
    }
}

/// Decodes a method's canonically encoded arguments.
///
/// # Errors
/// [`ContractError::BadArguments`].
pub fn decode_args<'a, T: Deserialize<'a> + Serialize>(args: &'a [u8]) -> Result<T, ContractError> {
    Ok(decode_canonical("call arguments", args, MAX_ARGS_LEN)?)
}

/// Encodes a method's output.
///
/// # Errors
/// [`ContractError::Overflow`] if it cannot be encoded.
pub fn encode_output<T: Serialize>(value: &T) -> Result<Vec<u8>, ContractError> {
    encode("call output", value).map_err(|_| ContractError::Overflow)
}
