//! Wallets, transfers and deposits over a double-entry ledger.
//!
//! Every movement is a `transfers` row and two `ledger_entries` that sum to
//! zero, written in one transaction with both balances. Both wallets are locked
//! in id order (`SELECT … ORDER BY id FOR UPDATE`), so concurrent transfers in
//! opposite directions queue instead of deadlocking; should Postgres still
//! report a deadlock or a serialization failure, the transaction is retried,
//! and a client never sees one as a 500. Deposits move money out of the
//! currency's system wallet, so the sum over users' wallets changes only by
//! deposits.
//!
//! - [`routes`]: the HTTP endpoints; they parse and validate, then call one
//!   [`WalletService`] function.
//! - [`service`]: the rules of a movement, the transaction, its retries, the
//!   idempotency key, the audit record and the cache invalidation.
//! - [`store`]: the SQL.

pub mod config;
mod error;
pub mod routes;
pub mod service;
pub mod store;

use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

pub use self::error::WalletError;
pub use self::service::{Deposit, Transfer, WalletService};

/// A wallet.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct WalletView {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Owner.
    pub user_id: Option<Uuid>,
    /// ISO 4217 code.
    pub currency: String,
    /// Balance, a decimal string at the currency's scale.
    pub balance: String,
    /// Creation time (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
}

/// One ledger entry of a wallet.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TransactionView {
    /// Entry id (UUID v7).
    pub id: Uuid,
    /// The transfer it belongs to.
    pub transfer_id: Uuid,
    /// `transfer` or `deposit`.
    pub kind: String,
    /// Signed amount: negative for money out.
    pub amount: String,
    /// The wallet's balance after it.
    pub balance_after: String,
    /// The other wallet of the transfer.
    pub counterparty_wallet_id: Uuid,
    /// The transfer's note.
    pub note: Option<String>,
    /// When (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
}

/// A transfer or deposit.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TransferView {
    /// Id (UUID v7).
    pub id: Uuid,
    /// `transfer` or `deposit`.
    pub kind: String,
    /// The wallet debited (for a deposit, the currency's system wallet).
    pub from_wallet_id: Uuid,
    /// The wallet credited.
    pub to_wallet_id: Uuid,
    /// The amount, a decimal string at the currency's scale.
    pub amount: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Free text.
    pub note: Option<String>,
    /// When (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
}

/// The decimal places of a currency as stored (a small non-negative number).
fn minor_units(units: i16) -> u32 {
    u32::try_from(units).unwrap_or(0)
}

/// The amount as the API writes it: a string at the currency's scale.
fn amount_text(value: Decimal, units: i16) -> String {
    crate::money::format(value, minor_units(units))
}
