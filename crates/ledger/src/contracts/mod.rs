//! The native contracts: [`token`], [`chequebook`] and [`registry`].
//!
//! Each is a unit struct implementing [`Contract`]; [`native`] returns all three, ready for the
//! executor. Methods take a canonically bencoded argument struct (exported here, so a call is
//! built with [`Call::new`](crate::tx::Call::new)`(contract, method, &args)`) and report what
//! they did as events whose data types are exported too.
//!
//! | contract | method | arguments | output |
//! |---|---|---|---|
//! | `token` | `transfer` | [`TransferArgs`] | nothing |
//! | `chequebook` | `deposit` | [`DepositArgs`] | new book balance (integer) |
//! | `chequebook` | `cash` | [`CashArgs`] | amount paid out (integer) |
//! | `chequebook` | `announce_withdrawal` | [`AnnounceWithdrawalArgs`] | `ready_at_ms` (integer) |
//! | `chequebook` | `withdraw` | [`WithdrawArgs`] | amount withdrawn (integer) |
//! | `chequebook` | `cancel_withdrawal` | [`CancelWithdrawalArgs`] | nothing |
//! | `registry` | `register` | [`RegisterArgs`] | nothing |
//! | `registry` | `transfer` | [`TransferOwnershipArgs`] | nothing |

use crate::engine::Contract;
use crate::error::ContractError;

pub mod chequebook;
pub mod registry;
pub mod token;

pub use chequebook::{
    AnnounceWithdrawalArgs, Book, CancelWithdrawalArgs, CashArgs, Cashed, Chequebook, DepositArgs,
    Deposited, WithdrawArgs, Withdrawal, WithdrawalAnnounced, WithdrawalCancelled, Withdrawn,
};
pub use registry::{
    OwnershipChange, RegisterArgs, Registered, Registration, Registry, TransferOwnershipArgs,
    Transferred,
};
pub use token::{Token, TransferArgs, TransferEvent};

/// Name of the token contract.
pub const TOKEN: &str = "token";
/// Name of the chequebook contract.
pub const CHEQUEBOOK: &str = "chequebook";
/// Name of the content registry contract.
pub const REGISTRY: &str = "registry";

/// All native contracts: token, chequebook, registry.
pub fn native() -> Vec<Box<dyn Contract>> {
    vec![Box::new(Token), Box::new(Chequebook), Box::new(Registry)]
}

/// Checks that an amount is positive (and, as every decoded integer, at most `i64::MAX`).
fn positive(amount: u64) -> Result<u64, ContractError> {
    if amount == 0 {
        return Err(ContractError::InvalidArgument("amount must be positive"));
    }
    Ok(amount)
}

/// `a + b`, refusing anything above `i64::MAX` (the largest bencode integer).
fn add_amount(a: u64, b: u64) -> Result<u64, ContractError> {
    a.checked_add(b)
        .filter(|sum| *sum <= crate::cheque::MAX_AMOUNT)
        .ok_or(ContractError::Overflow)
}

#[cfg(test)]
pub(crate) mod testkit {
    //! Runs contract calls against a bare [`State`] without the executor: each call gets a
    //! fresh journal and gas meter, and its journal is applied only on success.
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )]

    use crate::block::Event;
    use crate::crypto::{Address, SecretKey};
    use crate::engine::{Context, Contract, Env, Params};
    use crate::error::ContractError;
    use crate::gas::GasMeter;
    use crate::state::{Account, Journal, State};

    pub(crate) struct Kit {
        pub(crate) state: State,
        pub(crate) env: Env,
        pub(crate) params: Params,
        pub(crate) gas_used: u64,
    }

    pub(crate) const CHAIN: u64 = 5;

    impl Kit {
        pub(crate) fn new(accounts: &[(u64, u64)]) -> Kit {
            let mut state = State::new();
            for (index, balance) in accounts {
                state.set_account(
                    &SecretKey::test_account(*index).public_key().address(),
                    Account {
                        balance: *balance,
                        nonce: 0,
                    },
                );
            }
            Kit {
                state,
                env: Env {
                    chain_id: CHAIN,
                    height: 1,
                    time_ms: 1_000_000,
                    proposer: Address::default(),
                },
                params: Params::default(),
                gas_used: 0,
            }
        }

        pub(crate) fn call(
            &mut self,
            contract: &dyn Contract,
            signer: u64,
            method: &str,
            args: &[u8],
        ) -> Result<(Vec<u8>, Vec<Event>), ContractError> {
            let key = SecretKey::test_account(signer).public_key();
            let mut journal = Journal::default();
            let mut gas = GasMeter::new(1_000_000);
            let mut events = Vec::new();
            let result = {
                let mut ctx = Context {
                    state: &self.state,
                    journal: &mut journal,
                    gas: &mut gas,
                    events: &mut events,
                    env: &self.env,
                    params: &self.params,
                    caller_key: &key,
                    verified: &std::collections::HashSet::new(),
                    caller: key.address(),
                    contract: contract.name(),
                };
                contract.call(&mut ctx, method, args)
            };
            self.gas_used = gas.used();
            let output = result?;
            for (key, value) in journal.into_writes() {
                self.state.put(&key, value.as_deref());
            }
            Ok((output, events))
        }

        pub(crate) fn balance(&self, index: u64) -> u64 {
            self.state
                .account(&SecretKey::test_account(index).public_key().address())
                .balance
        }
    }

    pub(crate) fn addr(index: u64) -> Address {
        SecretKey::test_account(index).public_key().address()
    }
}
