//! The `token` contract: moves tokens between accounts.
//!
//! There is no mint: the supply is fixed by the genesis accounts, and only fees (paid to block
//! proposers) and contract escrows move it around. The contract keeps no storage of its own;
//! balances live in the accounts.
//!
//! Methods:
//! * `transfer` ([`TransferArgs`]): moves `amount` from the caller to `to` and emits a
//!   `transfer` event ([`TransferEvent`]). A zero amount is refused; a transfer to oneself
//!   checks the balance and changes nothing (no event).

use serde::{Deserialize, Serialize};

use super::{positive, TOKEN};
use crate::crypto::Address;
use crate::engine::{decode_args, Context, Contract};
use crate::error::ContractError;

/// Arguments of `token.transfer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferArgs {
    /// The recipient.
    pub to: Address,
    /// How much to send (positive).
    pub amount: u64,
}

/// Data of the `transfer` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferEvent {
    /// The sender.
    pub from: Address,
    /// The recipient.
    pub to: Address,
    /// How much moved.
    pub amount: u64,
}

/// The token contract.
#[derive(Clone, Copy, Debug, Default)]
pub struct Token;

impl Contract for Token {
    fn name(&self) -> &'static str {
        TOKEN
    }

    fn call(
        &self,
        ctx: &mut Context<'_>,
        method: &str,
        args: &[u8],
    ) -> Result<Vec<u8>, ContractError> {
        match method {
            "transfer" => transfer(ctx, decode_args(args)?),
            other => Err(ContractError::UnknownMethod(other.to_owned())),
        }
    }
}

fn transfer(ctx: &mut Context<'_>, args: TransferArgs) -> Result<Vec<u8>, ContractError> {
    let amount = positive(args.amount)?;
    let from = ctx.caller();
    ctx.transfer(&from, &args.to, amount)?;
    if from != args.to {
        ctx.emit(
            "transfer",
            &TransferEvent {
                from,
                to: args.to,
                amount,
            },
        )?;
    }
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

    fn args(to: Address, amount: u64) -> Vec<u8> {
        encode("t", &TransferArgs { to, amount }).unwrap()
    }

    #[test]
    fn transfer_moves_and_emits() {
        let mut kit = Kit::new(&[(1, 100)]);
        let (_, events) = kit.call(&Token, 1, "transfer", &args(addr(2), 30)).unwrap();
        assert_eq!(kit.balance(1), 70);
        assert_eq!(kit.balance(2), 30);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].name, "transfer");
        let ev: TransferEvent = decode_canonical("e", &events[0].data, 1000).unwrap();
        assert_eq!(
            ev,
            TransferEvent {
                from: addr(1),
                to: addr(2),
                amount: 30
            }
        );
        assert!(kit.gas_used > 0);
    }

    #[test]
    fn overdraft_zero_self_and_unknown() {
        let mut kit = Kit::new(&[(1, 100)]);
        assert_eq!(
            kit.call(&Token, 1, "transfer", &args(addr(2), 101)),
            Err(ContractError::InsufficientBalance {
                needed: 101,
                available: 100
            })
        );
        assert!(matches!(
            kit.call(&Token, 1, "transfer", &args(addr(2), 0)),
            Err(ContractError::InvalidArgument(_))
        ));
        let (_, events) = kit
            .call(&Token, 1, "transfer", &args(addr(1), 100))
            .unwrap();
        assert!(events.is_empty());
        assert_eq!(kit.balance(1), 100);
        assert!(matches!(
            kit.call(&Token, 1, "transfer", &args(addr(1), 101)),
            Err(ContractError::InsufficientBalance { .. })
        ));
        assert!(matches!(
            kit.call(&Token, 1, "mint", b"de"),
            Err(ContractError::UnknownMethod(m)) if m == "mint"
        ));
        assert!(matches!(
            kit.call(&Token, 1, "transfer", b"de"),
            Err(ContractError::BadArguments(_))
        ));
        assert_eq!(kit.balance(2), 0);
    }
}
