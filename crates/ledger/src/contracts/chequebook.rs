//! The `chequebook` contract: deposits that back off-chain [cheques](crate::cheque), cashing,
//! and withdrawal after a notice period.
//!
//! A payer deposits tokens into its *book*; the tokens sit in the contract's escrow account.
//! It then pays peers off-chain with cumulative cheques. Anyone may submit a cheque to `cash`:
//! the contract verifies it against the key stored in the book (a verification, not a
//! recovery), and pays the beneficiary the part of the cheque not yet paid on its lane, as far
//! as the book's balance goes. A cheque for more than the balance pays what is there and stays
//! good for the rest.
//!
//! To take money back, the payer announces a withdrawal and waits the chain's notice period
//! ([`Params::notice_period_ms`](crate::engine::Params::notice_period_ms)); meanwhile the
//! beneficiaries it owes can cash what they hold. A payer cannot cash cheques written to
//! itself (that would skip the notice period).
//!
//! A book is shared by all the payer's lanes: a beneficiary's cheque is only as good as the
//! balance left when it is cashed, so beneficiaries should cash once their uncashed total
//! reaches the risk they accept (as in Swarm's chequebook), and check the book's balance
//! ([`book`]) before extending credit.
//!
//! # Storage (slots of contract `chequebook`)
//!
//! | key | value |
//! |---|---|
//! | `b ‖ payer` (20 bytes) | [`Book`] |
//! | `p ‖ payer ‖ beneficiary ‖ content hash` (content: 0, 20 or 32 bytes) | [`Lane`]: amount already paid |
//!
//! The escrow account ([`Address::of_contract`]`("chequebook")`) holds exactly the sum of all
//! book balances.
//!
//! # Methods
//! * `deposit` ([`DepositArgs`]): 2 account reads + 2 writes, 1 read + 1 write, 1 event.
//! * `cash` ([`CashArgs`]): 1 book read, 1 signature verification, 1 lane read, 1 registry
//!   read if the cheque names content, 1 or 2 transfers, 2 writes, 1 event.
//! * `announce_withdrawal` ([`AnnounceWithdrawalArgs`]): 1 read, 1 write, 1 event.
//! * `withdraw` ([`WithdrawArgs`]): 1 read, 1 transfer, 1 write, 1 event.
//! * `cancel_withdrawal` ([`CancelWithdrawalArgs`]): 1 read, 1 write, 1 event.

use serde::{Deserialize, Serialize};

use super::registry::{record_key, Registration};
use super::{add_amount, positive, CHEQUEBOOK, REGISTRY};
use crate::cheque::{cheque_domain, ContentId, SignedCheque};
use crate::codec::decode_canonical;
use crate::crypto::{Address, PublicKey};
use crate::engine::{decode_args, encode_output, Context, Contract, SignatureCheck};
use crate::error::ContractError;
use crate::state::{storage_key, State};

/// Arguments of `chequebook.deposit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositArgs {
    /// How much to move from the caller into its book (positive).
    pub amount: u64,
}

/// Arguments of `chequebook.cash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashArgs {
    /// A [`SignedCheque::encode`]d cheque.
    #[serde(with = "serde_bytes")]
    pub cheque: Vec<u8>,
}

impl CashArgs {
    /// The arguments that cash `cheque`.
    ///
    /// # Errors
    /// [`crate::error::DecodeError`] if the cheque cannot be encoded.
    pub fn new(cheque: &SignedCheque) -> Result<CashArgs, crate::error::DecodeError> {
        Ok(CashArgs {
            cheque: cheque.encode()?,
        })
    }
}

/// Arguments of `chequebook.announce_withdrawal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceWithdrawalArgs {
    /// How much the caller means to withdraw (positive, at most its book's balance).
    pub amount: u64,
}

/// Arguments of `chequebook.withdraw` (none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawArgs {}

/// Arguments of `chequebook.cancel_withdrawal` (none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelWithdrawalArgs {}

/// A payer's chequebook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Book {
    /// The payer's public key, recorded at the first deposit: cheques are verified against it.
    pub key: PublicKey,
    /// Tokens held for cheques (and withdrawal).
    pub balance: u64,
    /// A pending withdrawal, if one was announced.
    pub withdrawal: Option<Withdrawal>,
}

/// An announced withdrawal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    /// How much was announced (what is paid is at most the balance at the time).
    pub amount: u64,
    /// Block time from which `withdraw` succeeds.
    pub ready_at_ms: u64,
}

/// What one lane has been paid so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lane {
    /// The total paid on the lane: the largest cheque cumulative cashed, or less if the book
    /// ran short.
    pub paid: u64,
}

/// Data of the `deposited` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deposited {
    /// The book's owner.
    pub payer: Address,
    /// How much was added.
    pub amount: u64,
    /// The book's balance after.
    pub balance: u64,
}

/// Data of the `cashed` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cashed {
    /// The book drawn on.
    pub payer: Address,
    /// Who was paid.
    pub beneficiary: Address,
    /// The cheque's content, if any.
    pub content: Option<ContentId>,
    /// Total taken from the book (royalty included).
    pub amount: u64,
    /// The part of `amount` paid to the content's owner.
    pub royalty: u64,
    /// The content's owner, if a royalty was paid.
    pub owner: Option<Address>,
    /// The lane's paid total after.
    pub paid: u64,
}

/// Data of the `withdrawal_announced` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawalAnnounced {
    /// The book's owner.
    pub payer: Address,
    /// Amount announced.
    pub amount: u64,
    /// When it can be withdrawn.
    pub ready_at_ms: u64,
}

/// Data of the `withdrawn` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawn {
    /// The book's owner.
    pub payer: Address,
    /// Amount paid back.
    pub amount: u64,
    /// The book's balance after.
    pub balance: u64,
}

/// Data of the `withdrawal_cancelled` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawalCancelled {
    /// The book's owner.
    pub payer: Address,
}

/// The storage slot (within the chequebook) of `payer`'s book: `b ‖ payer`.
pub fn book_key(payer: &Address) -> Vec<u8> {
    let mut key = Vec::with_capacity(21);
    key.push(b'b');
    key.extend_from_slice(&payer.0);
    key
}

/// The storage slot (within the chequebook) of a lane's paid total:
/// `p ‖ payer ‖ beneficiary ‖ content hash` (the lengths, 41, 61 or 73 bytes in all, keep
/// the three kinds of lane apart).
pub fn lane_key(payer: &Address, beneficiary: &Address, content: Option<&ContentId>) -> Vec<u8> {
    let mut key = Vec::with_capacity(73);
    key.push(b'p');
    key.extend_from_slice(&payer.0);
    key.extend_from_slice(&beneficiary.0);
    if let Some(id) = content {
        key.extend_from_slice(id.as_bytes());
    }
    key
}

/// Reads `payer`'s book from a state (no gas; for queries and tools).
pub fn book(state: &State, payer: &Address) -> Option<Book> {
    let bytes = state.get(&storage_key(CHEQUEBOOK, &book_key(payer)))?;
    decode_canonical("chequebook", bytes, usize::MAX).ok()
}

/// How much has been paid on a lane, from a state (no gas; for queries and tools).
pub fn paid(
    state: &State,
    payer: &Address,
    beneficiary: &Address,
    content: Option<&ContentId>,
) -> u64 {
    state
        .get(&storage_key(
            CHEQUEBOOK,
            &lane_key(payer, beneficiary, content),
        ))
        .and_then(|bytes| decode_canonical::<Lane>("lane", bytes, usize::MAX).ok())
        .map_or(0, |lane| lane.paid)
}

/// The chequebook contract.
#[derive(Clone, Copy, Debug, Default)]
pub struct Chequebook;

impl Contract for Chequebook {
    fn name(&self) -> &'static str {
        CHEQUEBOOK
    }

    fn call(
        &self,
        ctx: &mut Context<'_>,
        method: &str,
        args: &[u8],
    ) -> Result<Vec<u8>, ContractError> {
        match method {
            "deposit" => deposit(ctx, decode_args(args)?),
            "cash" => cash(ctx, &decode_args::<CashArgs>(args)?),
            "announce_withdrawal" => announce_withdrawal(ctx, decode_args(args)?),
            "withdraw" => withdraw(ctx, decode_args(args)?),
            "cancel_withdrawal" => cancel_withdrawal(ctx, decode_args(args)?),
            other => Err(ContractError::UnknownMethod(other.to_owned())),
        }
    }

    fn signature_checks(
        &self,
        state: &State,
        chain_id: u64,
        method: &str,
        args: &[u8],
    ) -> Vec<SignatureCheck> {
        let check = || -> Option<SignatureCheck> {
            if method != "cash" {
                return None;
            }
            let args: CashArgs = decode_args(args).ok()?;
            let signed = SignedCheque::decode(&args.cheque).ok()?;
            let book = book(state, &signed.cheque.payer)?;
            let body = signed.cheque.signing_bytes().ok()?;
            Some(SignatureCheck {
                key: book.key,
                digest: cheque_domain(chain_id).digest(&body),
                signature: signed.signature,
            })
        };
        check().into_iter().collect()
    }
}

fn load_book(ctx: &mut Context<'_>, payer: &Address) -> Result<Book, ContractError> {
    ctx.get_decoded(&book_key(payer))?
        .ok_or(ContractError::NoChequebook)
}

fn deposit(ctx: &mut Context<'_>, args: DepositArgs) -> Result<Vec<u8>, ContractError> {
    let amount = positive(args.amount)?;
    let payer = ctx.caller();
    let escrow = ctx.contract_address();
    let mut book = ctx.get_decoded(&book_key(&payer))?.unwrap_or(Book {
        key: *ctx.caller_key(),
        balance: 0,
        withdrawal: None,
    });
    book.balance = add_amount(book.balance, amount)?;
    ctx.transfer(&payer, &escrow, amount)?;
    ctx.set_encoded(&book_key(&payer), &book)?;
    ctx.emit(
        "deposited",
        &Deposited {
            payer,
            amount,
            balance: book.balance,
        },
    )?;
    encode_output(&book.balance)
}

fn cash(ctx: &mut Context<'_>, args: &CashArgs) -> Result<Vec<u8>, ContractError> {
    let signed = SignedCheque::decode(&args.cheque)?;
    let cheque = signed.cheque;
    let chain_id = ctx.env().chain_id;
    if cheque.chain_id != chain_id {
        return Err(ContractError::InvalidArgument(
            "cheque is for another chain",
        ));
    }
    if cheque.payer == cheque.beneficiary {
        return Err(ContractError::InvalidArgument(
            "a payer cannot cash a cheque to itself",
        ));
    }
    let mut book = load_book(ctx, &cheque.payer)?;
    let body = cheque.signing_bytes()?;
    ctx.verify(
        &book.key,
        &cheque_domain(chain_id),
        &body,
        &signed.signature,
    )?;

    let key = lane_key(&cheque.payer, &cheque.beneficiary, cheque.content.as_ref());
    let mut lane: Lane = ctx.get_decoded(&key)?.unwrap_or_default();
    if cheque.cumulative <= lane.paid {
        return Err(ContractError::NothingToCash {
            cumulative: cheque.cumulative,
            paid: lane.paid,
        });
    }
    if book.balance == 0 {
        return Err(ContractError::ChequebookEmpty);
    }
    let amount = (cheque.cumulative - lane.paid).min(book.balance);

    let registration: Option<Registration> = match &cheque.content {
        Some(id) => ctx.get_decoded_of(REGISTRY, &record_key(id))?,
        None => None,
    };
    let (royalty, owner) = match registration {
        Some(r) if r.owner != cheque.beneficiary => {
            (r.royalty_on(amount)?.min(amount), Some(r.owner))
        }
        _ => (0, None),
    };

    book.balance -= amount;
    lane.paid = add_amount(lane.paid, amount)?;
    let escrow = ctx.contract_address();
    ctx.transfer(&escrow, &cheque.beneficiary, amount - royalty)?;
    let owner = match owner {
        Some(owner) if royalty > 0 => {
            ctx.transfer(&escrow, &owner, royalty)?;
            Some(owner)
        }
        _ => None,
    };
    ctx.set_encoded(&book_key(&cheque.payer), &book)?;
    ctx.set_encoded(&key, &lane)?;
    ctx.emit(
        "cashed",
        &Cashed {
            payer: cheque.payer,
            beneficiary: cheque.beneficiary,
            content: cheque.content,
            amount,
            royalty,
            owner,
            paid: lane.paid,
        },
    )?;
    encode_output(&amount)
}

fn announce_withdrawal(
    ctx: &mut Context<'_>,
    args: AnnounceWithdrawalArgs,
) -> Result<Vec<u8>, ContractError> {
    let amount = positive(args.amount)?;
    let payer = ctx.caller();
    let mut book = load_book(ctx, &payer)?;
    if amount > book.balance {
        return Err(ContractError::InsufficientBalance {
            needed: amount,
            available: book.balance,
        });
    }
    let env = *ctx.env();
    let ready_at_ms = add_amount(env.time_ms, ctx.params().notice_period_ms)?;
    // A new announcement replaces the old one and restarts the notice period.
    book.withdrawal = Some(Withdrawal {
        amount,
        ready_at_ms,
    });
    ctx.set_encoded(&book_key(&payer), &book)?;
    ctx.emit(
        "withdrawal_announced",
        &WithdrawalAnnounced {
            payer,
            amount,
            ready_at_ms,
        },
    )?;
    encode_output(&ready_at_ms)
}

fn withdraw(ctx: &mut Context<'_>, _args: WithdrawArgs) -> Result<Vec<u8>, ContractError> {
    let payer = ctx.caller();
    let mut book = load_book(ctx, &payer)?;
    let now_ms = ctx.env().time_ms;
    let pending = book.withdrawal.ok_or(ContractError::NoticePeriod {
        ready_at_ms: 0,
        now_ms,
    })?;
    if now_ms < pending.ready_at_ms {
        return Err(ContractError::NoticePeriod {
            ready_at_ms: pending.ready_at_ms,
            now_ms,
        });
    }
    // Cheques cashed during the notice period may have left less than announced.
    let amount = pending.amount.min(book.balance);
    book.balance -= amount;
    book.withdrawal = None;
    let escrow = ctx.contract_address();
    ctx.transfer(&escrow, &payer, amount)?;
    ctx.set_encoded(&book_key(&payer), &book)?;
    ctx.emit(
        "withdrawn",
        &Withdrawn {
            payer,
            amount,
            balance: book.balance,
        },
    )?;
    encode_output(&amount)
}

fn cancel_withdrawal(
    ctx: &mut Context<'_>,
    _args: CancelWithdrawalArgs,
) -> Result<Vec<u8>, ContractError> {
    let payer = ctx.caller();
    let mut book = load_book(ctx, &payer)?;
    if book.withdrawal.take().is_none() {
        return Err(ContractError::InvalidArgument("no withdrawal announced"));
    }
    ctx.set_encoded(&book_key(&payer), &book)?;
    ctx.emit("withdrawal_cancelled", &WithdrawalCancelled { payer })?;
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
    use crate::cheque::{Cheque, ChequeIssuer};
    use crate::codec::{decode_canonical, encode};
    use crate::contracts::registry::{RegisterArgs, Registry};
    use crate::contracts::testkit::{addr, Kit, CHAIN};
    use crate::crypto::SecretKey;

    const PAYER: u64 = 1;
    const SEEDER: u64 = 2;
    const CREATOR: u64 = 3;

    fn enc<T: Serialize>(v: &T) -> Vec<u8> {
        encode("t", v).unwrap()
    }

    fn deposit(kit: &mut Kit, who: u64, amount: u64) -> Result<u64, ContractError> {
        let (out, _) = kit.call(&Chequebook, who, "deposit", &enc(&DepositArgs { amount }))?;
        Ok(decode_canonical("o", &out, 100).unwrap())
    }

    fn cash(kit: &mut Kit, submitter: u64, c: &SignedCheque) -> Result<u64, ContractError> {
        let (out, _) = kit.call(
            &Chequebook,
            submitter,
            "cash",
            &enc(&CashArgs::new(c).unwrap()),
        )?;
        Ok(decode_canonical("o", &out, 100).unwrap())
    }

    fn escrow(kit: &Kit) -> u64 {
        kit.state.account(&Address::of_contract(CHEQUEBOOK)).balance
    }

    #[test]
    fn deposit_cash_partial_then_rest() {
        let mut kit = Kit::new(&[(PAYER, 1_000)]);
        assert_eq!(deposit(&mut kit, PAYER, 100), Ok(100));
        assert_eq!(kit.balance(PAYER), 900);
        assert_eq!(escrow(&kit), 100);
        let stored = book(&kit.state, &addr(PAYER)).unwrap();
        assert_eq!(stored.key, SecretKey::test_account(PAYER).public_key());

        let mut issuer = ChequeIssuer::new(SecretKey::test_account(PAYER), CHAIN);
        let c = issuer.pay(addr(SEEDER), None, 150).unwrap();
        // Anyone may submit; the money goes to the beneficiary.
        assert_eq!(cash(&mut kit, 9, &c), Ok(100));
        assert_eq!(kit.balance(SEEDER), 100);
        assert_eq!(escrow(&kit), 0);
        assert_eq!(paid(&kit.state, &addr(PAYER), &addr(SEEDER), None), 100);
        assert_eq!(
            cash(&mut kit, SEEDER, &c),
            Err(ContractError::ChequebookEmpty)
        );
        assert_eq!(deposit(&mut kit, PAYER, 500), Ok(500));
        assert_eq!(cash(&mut kit, SEEDER, &c), Ok(50));
        assert_eq!(kit.balance(SEEDER), 150);
        assert_eq!(
            cash(&mut kit, SEEDER, &c),
            Err(ContractError::NothingToCash {
                cumulative: 150,
                paid: 150
            })
        );
        assert_eq!(escrow(&kit), 450);
        assert_eq!(book(&kit.state, &addr(PAYER)).unwrap().balance, 450);
    }

    #[test]
    fn bad_cheques() {
        let mut kit = Kit::new(&[(PAYER, 1_000)]);
        let mut issuer = ChequeIssuer::new(SecretKey::test_account(PAYER), CHAIN);
        let c = issuer.pay(addr(SEEDER), None, 10).unwrap();
        assert_eq!(cash(&mut kit, SEEDER, &c), Err(ContractError::NoChequebook));
        deposit(&mut kit, PAYER, 100).unwrap();

        let forged = c.cheque.sign(&SecretKey::test_account(SEEDER)).unwrap();
        assert!(matches!(
            cash(&mut kit, SEEDER, &forged),
            Err(ContractError::Signature(_))
        ));
        let mut tampered = c;
        tampered.cheque.cumulative = 90;
        assert!(matches!(
            cash(&mut kit, SEEDER, &tampered),
            Err(ContractError::Signature(_))
        ));
        let other_chain = Cheque {
            chain_id: CHAIN + 1,
            ..c.cheque
        }
        .sign(&SecretKey::test_account(PAYER))
        .unwrap();
        assert!(matches!(
            cash(&mut kit, SEEDER, &other_chain),
            Err(ContractError::InvalidArgument(_))
        ));
        let to_self = issuer.pay(addr(PAYER), None, 10).unwrap();
        assert!(matches!(
            cash(&mut kit, PAYER, &to_self),
            Err(ContractError::InvalidArgument(_))
        ));
        assert!(matches!(
            kit.call(
                &Chequebook,
                SEEDER,
                "cash",
                &enc(&CashArgs {
                    cheque: b"junk".to_vec()
                })
            ),
            Err(ContractError::BadArguments(_))
        ));
        assert_eq!(escrow(&kit), 100);
        assert_eq!(kit.balance(SEEDER), 0);
        assert_eq!(cash(&mut kit, SEEDER, &c), Ok(10));
    }

    #[test]
    fn royalty_split() {
        let mut kit = Kit::new(&[(PAYER, 1_000)]);
        let v1 = [4; 20];
        kit.call(
            &Registry,
            CREATOR,
            "register",
            &enc(&RegisterArgs {
                v1: Some(v1),
                v2: None,
                price_per_byte: 1,
                royalty_bps: 2_500,
            }),
        )
        .unwrap();
        deposit(&mut kit, PAYER, 1_000).unwrap();
        let mut issuer = ChequeIssuer::new(SecretKey::test_account(PAYER), CHAIN);
        let c = issuer
            .pay(addr(SEEDER), Some(ContentId::V1(v1)), 401)
            .unwrap();
        let (_, events) = kit
            .call(&Chequebook, 9, "cash", &enc(&CashArgs::new(&c).unwrap()))
            .unwrap();
        // 401 × 25 % = 100.25, rounded down.
        assert_eq!(kit.balance(CREATOR), 100);
        assert_eq!(kit.balance(SEEDER), 301);
        assert_eq!(escrow(&kit), 599);
        let ev: Cashed = decode_canonical("e", &events[0].data, 1000).unwrap();
        assert_eq!(ev.royalty, 100);
        assert_eq!(ev.amount, 401);
        assert_eq!(ev.owner, Some(addr(CREATOR)));

        // Unregistered content pays no royalty.
        let c = issuer
            .pay(addr(SEEDER), Some(ContentId::V1([5; 20])), 100)
            .unwrap();
        assert_eq!(cash(&mut kit, SEEDER, &c), Ok(100));
        assert_eq!(kit.balance(SEEDER), 401);
        assert_eq!(kit.balance(CREATOR), 100);
    }

    #[test]
    fn withdrawal_notice_period() {
        let mut kit = Kit::new(&[(PAYER, 1_000)]);
        deposit(&mut kit, PAYER, 300).unwrap();
        let now = kit.env.time_ms;
        let notice = kit.params.notice_period_ms;
        assert_eq!(
            kit.call(&Chequebook, PAYER, "withdraw", &enc(&WithdrawArgs {})),
            Err(ContractError::NoticePeriod {
                ready_at_ms: 0,
                now_ms: now
            })
        );
        assert!(matches!(
            kit.call(
                &Chequebook,
                PAYER,
                "announce_withdrawal",
                &enc(&AnnounceWithdrawalArgs { amount: 301 })
            ),
            Err(ContractError::InsufficientBalance { .. })
        ));
        assert_eq!(
            kit.call(
                &Chequebook,
                SEEDER,
                "announce_withdrawal",
                &enc(&AnnounceWithdrawalArgs { amount: 1 })
            ),
            Err(ContractError::NoChequebook)
        );
        kit.call(
            &Chequebook,
            PAYER,
            "announce_withdrawal",
            &enc(&AnnounceWithdrawalArgs { amount: 250 }),
        )
        .unwrap();
        kit.env.time_ms = now + notice - 1;
        assert_eq!(
            kit.call(&Chequebook, PAYER, "withdraw", &enc(&WithdrawArgs {})),
            Err(ContractError::NoticePeriod {
                ready_at_ms: now + notice,
                now_ms: now + notice - 1
            })
        );
        // Cashing during the notice period still works and shrinks what is withdrawn.
        let mut issuer = ChequeIssuer::new(SecretKey::test_account(PAYER), CHAIN);
        let c = issuer.pay(addr(SEEDER), None, 100).unwrap();
        assert_eq!(cash(&mut kit, SEEDER, &c), Ok(100));
        kit.env.time_ms = now + notice;
        let (out, _) = kit
            .call(&Chequebook, PAYER, "withdraw", &enc(&WithdrawArgs {}))
            .unwrap();
        assert_eq!(decode_canonical::<u64>("o", &out, 100).unwrap(), 200);
        assert_eq!(kit.balance(PAYER), 900);
        assert_eq!(kit.balance(SEEDER), 100);
        assert_eq!(escrow(&kit), 0);
        let b = book(&kit.state, &addr(PAYER)).unwrap();
        assert_eq!((b.balance, b.withdrawal), (0, None));
        // The announcement is used up.
        assert!(matches!(
            kit.call(&Chequebook, PAYER, "withdraw", &enc(&WithdrawArgs {})),
            Err(ContractError::NoticePeriod { ready_at_ms: 0, .. })
        ));
    }

    #[test]
    fn cancel_withdrawal() {
        let mut kit = Kit::new(&[(PAYER, 1_000)]);
        deposit(&mut kit, PAYER, 300).unwrap();
        assert!(matches!(
            kit.call(
                &Chequebook,
                PAYER,
                "cancel_withdrawal",
                &enc(&CancelWithdrawalArgs {})
            ),
            Err(ContractError::InvalidArgument(_))
        ));
        kit.call(
            &Chequebook,
            PAYER,
            "announce_withdrawal",
            &enc(&AnnounceWithdrawalArgs { amount: 10 }),
        )
        .unwrap();
        kit.call(
            &Chequebook,
            PAYER,
            "cancel_withdrawal",
            &enc(&CancelWithdrawalArgs {}),
        )
        .unwrap();
        kit.env.time_ms += kit.params.notice_period_ms;
        assert!(matches!(
            kit.call(&Chequebook, PAYER, "withdraw", &enc(&WithdrawArgs {})),
            Err(ContractError::NoticePeriod { ready_at_ms: 0, .. })
        ));
        assert_eq!(escrow(&kit), 300);
    }
}
