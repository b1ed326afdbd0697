//! The rules of money: who may move what, the transaction that moves it, its
//! retries and idempotency, the audit record, and the cached views it changes.

use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::store::{self, NewTransfer, WalletRow};
use super::{TransactionView, TransferView, WalletError, WalletView, amount_text, minor_units};
use crate::audit::{self, Entry};
use crate::currencies::CurrencyCode;
use crate::idempotency::{Claim, IdempotencyKey, KeyClaim, request_hash};
use crate::money::Amount;
use crate::users::ViewCache;

/// How often a money transaction is tried when Postgres reports a deadlock
/// or a serialization failure.
const ATTEMPTS: u32 = 4;

/// Wallets and the movements between them.
#[derive(Debug, Clone)]
pub struct WalletService {
    db: PgPool,
    views: ViewCache,
    deposit_max: Decimal,
}

/// A transfer a user asks for, its fields already parsed.
#[derive(Debug)]
pub struct Transfer<'a> {
    /// The caller, who must own the source.
    pub user: Uuid,
    /// The source wallet.
    pub from: Uuid,
    /// The target wallet.
    pub to: Uuid,
    /// The amount.
    pub amount: Amount,
    /// The amount as sent, part of what the idempotency key stands for.
    pub amount_text: &'a str,
    /// The required idempotency key.
    pub key: &'a IdempotencyKey,
    /// The caller's address, for the audit log.
    pub ip: Option<&'a str>,
}

/// A deposit a manager or admin asks for, its fields already parsed.
#[derive(Debug)]
pub struct Deposit<'a> {
    /// The caller.
    pub actor: Uuid,
    /// The wallet credited.
    pub to: Uuid,
    /// The amount.
    pub amount: Amount,
    /// The amount as sent, part of what the idempotency key stands for.
    pub amount_text: &'a str,
    /// Why (already checked); empty is none.
    pub note: Option<String>,
    /// The note as sent, part of what the idempotency key stands for.
    pub note_text: Option<&'a str>,
    /// The optional idempotency key.
    pub key: Option<&'a IdempotencyKey>,
    /// The caller's address, for the audit log.
    pub ip: Option<&'a str>,
}

/// A movement of money to make.
struct Movement<'a> {
    kind: &'static str,
    /// `None`: the currency's system wallet (a deposit).
    from: Option<Uuid>,
    to: Uuid,
    /// The source must belong to this user (transfers).
    from_owner: Option<Uuid>,
    amount: Amount,
    note: Option<String>,
    actor: Uuid,
    ip: Option<&'a str>,
}

/// A movement made: its view, and the users whose balances it changed.
struct Moved {
    view: TransferView,
    owners: Vec<Uuid>,
}

impl WalletService {
    /// The service over `db`, invalidating `views` when balances change;
    /// one deposit moves at most `deposit_max`.
    pub fn new(db: PgPool, views: ViewCache, deposit_max: Decimal) -> Self {
        Self {
            db,
            views,
            deposit_max,
        }
    }

    /// Up to `limit` of `owner`'s wallets in id order, after `after`.
    pub async fn list(
        &self,
        owner: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<WalletView>, WalletError> {
        let rows = store::list_for(&self.db, owner, after, limit).await?;
        Ok(rows.into_iter().map(WalletView::from).collect())
    }

    /// Opens `owner`'s wallet in `currency`.
    pub async fn open(
        &self,
        owner: Uuid,
        currency: &CurrencyCode,
    ) -> Result<WalletView, WalletError> {
        let row = store::insert(&self.db, owner, currency.as_str())
            .await
            .map_err(|error| match &error {
                sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
                    WalletError::AlreadyExists
                }
                _ => error.into(),
            })?
            .ok_or(WalletError::UnsupportedCurrency)?;
        self.views.user_changed(owner).await;
        Ok(row.into())
    }

    /// A user's wallet `id`, if `owner` owns it (any owner when `None`).
    pub async fn get(&self, id: Uuid, owner: Option<Uuid>) -> Result<WalletView, WalletError> {
        Ok(self.visible(id, owner).await?.into())
    }

    /// The ledger entries of the wallet `id` that `owner` may see (any when
    /// `None`), newest first, before `before`, at most `limit`.
    pub async fn transactions(
        &self,
        id: Uuid,
        owner: Option<Uuid>,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<TransactionView>, WalletError> {
        let wallet = self.visible(id, owner).await?;
        Ok(store::entries(&self.db, wallet.id, wallet.minor_units, before, limit).await?)
    }

    async fn visible(&self, id: Uuid, owner: Option<Uuid>) -> Result<WalletRow, WalletError> {
        store::find_visible(&self.db, id, owner)
            .await?
            .ok_or(WalletError::NotFound)
    }

    /// Moves money between two wallets of one currency, from one of the
    /// caller's; a repeat with the same key and request replays the first answer.
    pub async fn transfer(&self, transfer: Transfer<'_>) -> Result<TransferView, WalletError> {
        let (from, to) = (transfer.from.to_string(), transfer.to.to_string());
        let claim = KeyClaim {
            user: transfer.user,
            scope: "transfer",
            key: transfer.key,
            hash: request_hash(&[&from, &to, transfer.amount_text]),
        };
        let movement = Movement {
            kind: "transfer",
            from: Some(transfer.from),
            to: transfer.to,
            from_owner: Some(transfer.user),
            amount: transfer.amount,
            note: None,
            actor: transfer.user,
            ip: transfer.ip,
        };
        self.run(&movement, Some(&claim)).await
    }

    /// Deposits money into a user's wallet from its currency's system wallet;
    /// never into the actor's own, and never more than the cap.
    pub async fn deposit(&self, deposit: Deposit<'_>) -> Result<TransferView, WalletError> {
        if deposit.amount.value() > self.deposit_max {
            return Err(WalletError::DepositAboveCap(self.deposit_max));
        }
        let to = deposit.to.to_string();
        let claim = deposit.key.map(|key| KeyClaim {
            user: deposit.actor,
            scope: "deposit",
            key,
            hash: request_hash(&[&to, deposit.amount_text, deposit.note_text.unwrap_or("")]),
        });
        let movement = Movement {
            kind: "deposit",
            from: None,
            to: deposit.to,
            from_owner: None,
            amount: deposit.amount,
            note: deposit.note.filter(|n| !n.is_empty()),
            actor: deposit.actor,
            ip: deposit.ip,
        };
        self.run(&movement, claim.as_ref()).await
    }

    /// Runs a movement (with its idempotency key, if any) in a transaction,
    /// retrying it a few times when Postgres reports a deadlock or a
    /// serialization failure.
    async fn run(
        &self,
        movement: &Movement<'_>,
        claim: Option<&KeyClaim<'_>>,
    ) -> Result<TransferView, WalletError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(movement, claim).await {
                Err(error) if attempt < ATTEMPTS && error.is_retryable() => {
                    tracing::warn!(
                        attempt,
                        "money transaction retried after a deadlock or serialization failure"
                    );
                }
                Ok(moved) => {
                    // Their cached dashboards show the old balances.
                    for owner in moved.owners {
                        self.views.user_changed(owner).await;
                    }
                    return Ok(moved.view);
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn attempt(
        &self,
        movement: &Movement<'_>,
        claim: Option<&KeyClaim<'_>>,
    ) -> Result<Moved, WalletError> {
        let mut tx = crate::db::begin(&self.db).await?;
        if let Some(claim) = claim
            && let Claim::Replay(first) = claim.claim(&mut tx).await?
        {
            // A replay changes no balance.
            return Ok(Moved {
                view: first,
                owners: Vec::new(),
            });
        }
        let moved = move_money(&mut tx, movement).await?;
        if let Some(claim) = claim {
            claim.remember(&mut tx, 201, &moved.view).await?;
        }
        tx.commit().await?;
        Ok(moved)
    }
}

/// Moves money inside the transaction: locks both wallets in id order, checks
/// ownership, currency, scale and funds, then writes balances, the transfer,
/// two ledger entries and the audit record.
async fn move_money(conn: &mut PgConnection, m: &Movement<'_>) -> Result<Moved, WalletError> {
    let from = match m.from {
        Some(from) => from,
        None => store::system_wallet_for(conn, m.to)
            .await?
            .ok_or(WalletError::UnknownWallet)?,
    };
    if from == m.to {
        return Err(WalletError::SameWallet);
    }
    let wallets = store::lock(conn, &[from, m.to]).await?;
    let source = wallets.iter().find(|w| w.id == from);
    let target = wallets.iter().find(|w| w.id == m.to && w.user_id.is_some());
    let (Some(source), Some(target)) = (source, target) else {
        return Err(WalletError::UnknownWallet);
    };
    if m.from_owner.is_some() && source.user_id != m.from_owner {
        // Someone else's wallet is as absent as a wallet that does not exist.
        return Err(WalletError::UnknownWallet);
    }
    if m.kind == "deposit" && target.user_id == Some(m.actor) {
        // Managers would otherwise mint money for themselves and move it out.
        return Err(WalletError::DepositToSelf);
    }
    if source.currency != target.currency {
        // Only between one's own wallets is the mismatch worth saying: for
        // someone else's wallet it would tell that the wallet exists.
        return Err(if target.user_id == m.from_owner {
            WalletError::CurrencyMismatch
        } else {
            WalletError::UnknownWallet
        });
    }
    let amount = m
        .amount
        .for_currency(&target.currency, minor_units(target.minor_units))
        .map_err(|e| WalletError::InvalidAmount(e.to_string()))?;
    if source.user_id.is_some() && source.balance < amount {
        return Err(WalletError::InsufficientFunds);
    }
    let transfer = NewTransfer {
        id: Uuid::now_v7(),
        kind: m.kind,
        from: (source.id, source.balance - amount),
        to: (target.id, target.balance + amount),
        amount,
        currency: &target.currency,
        note: m.note.as_deref(),
        created_by: m.actor,
    };
    let created_at = store::write_transfer(conn, &transfer).await?;
    let view = TransferView {
        id: transfer.id,
        kind: m.kind.to_owned(),
        from_wallet_id: source.id,
        to_wallet_id: target.id,
        amount: amount_text(amount, target.minor_units),
        currency: target.currency.clone(),
        note: m.note.clone(),
        created_at,
    };
    audit::record(
        &mut *conn,
        Entry {
            ip: m.ip,
            ..Entry::new(
                Some(m.actor),
                &format!("wallet.{}", m.kind),
                "transfer",
                transfer.id,
            )
            .details(serde_json::json!({
                "from_wallet_id": source.id,
                "to_wallet_id": target.id,
                "amount": view.amount,
                "currency": view.currency,
            }))
        },
    )
    .await?;
    let owners = [source.user_id, target.user_id]
        .into_iter()
        .flatten()
        .collect();
    Ok(Moved { view, owners })
}
