//! The SQL of wallets, transfers and ledger entries.

use rust_decimal::Decimal;
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use tracing::instrument;
use uuid::Uuid;

use super::{TransactionView, WalletView, amount_text};

/// A wallet with its currency's scale.
#[derive(Debug, sqlx::FromRow)]
pub struct WalletRow {
    /// Id.
    pub id: Uuid,
    /// Owner; `None` for a currency's system wallet.
    pub user_id: Option<Uuid>,
    /// ISO 4217 code.
    pub currency: String,
    /// Balance.
    pub balance: Decimal,
    /// The currency's decimal places.
    pub minor_units: i16,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

impl From<WalletRow> for WalletView {
    fn from(row: WalletRow) -> Self {
        Self {
            balance: amount_text(row.balance, row.minor_units),
            id: row.id,
            user_id: row.user_id,
            currency: row.currency,
            created_at: row.created_at,
        }
    }
}

const WALLET_COLUMNS: &str = "w.id, w.user_id, w.currency, w.balance, c.minor_units, w.created_at";

/// Up to `limit` of `owner`'s wallets in id order, after `after`.
#[instrument(name = "wallets.list_for", skip_all, fields(db.system.name = "postgresql"))]
pub async fn list_for(
    db: impl PgExecutor<'_>,
    owner: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<WalletRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {WALLET_COLUMNS} FROM wallets w JOIN currencies c ON c.code = w.currency
         WHERE w.user_id = $1 AND ($2::uuid IS NULL OR w.id > $2) ORDER BY w.id LIMIT $3"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(owner)
        .bind(after)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// Opens `owner`'s wallet in `currency`; `None` when the currency is not a
/// supported one. A second wallet in one currency is a unique violation.
#[instrument(name = "wallets.insert", skip_all, fields(db.system.name = "postgresql"))]
pub async fn insert(
    db: impl PgExecutor<'_>,
    owner: Uuid,
    currency: &str,
) -> Result<Option<WalletRow>, sqlx::Error> {
    let sql = format!(
        "WITH inserted AS (
             INSERT INTO wallets (id, user_id, currency)
             SELECT $1, $2, code FROM currencies WHERE code = $3
             RETURNING *)
         SELECT {WALLET_COLUMNS} FROM inserted w JOIN currencies c ON c.code = w.currency"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::now_v7())
        .bind(owner)
        .bind(currency)
        .fetch_optional(db)
        .await
}

/// A user's wallet `id`, only if `owner` owns it when given. System wallets
/// are never found.
#[instrument(name = "wallets.find_visible", skip_all, fields(db.system.name = "postgresql"))]
pub async fn find_visible(
    db: impl PgExecutor<'_>,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<Option<WalletRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {WALLET_COLUMNS} FROM wallets w JOIN currencies c ON c.code = w.currency
         WHERE w.id = $1 AND w.user_id IS NOT NULL AND ($2::uuid IS NULL OR w.user_id = $2)"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(owner)
        .fetch_optional(db)
        .await
}

/// The wallets among `ids`, locked for update in id order.
#[instrument(name = "wallets.lock", skip_all, fields(db.system.name = "postgresql"))]
pub async fn lock(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<WalletRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {WALLET_COLUMNS} FROM wallets w JOIN currencies c ON c.code = w.currency
         WHERE w.id = ANY($1) ORDER BY w.id FOR UPDATE OF w"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(ids)
        .fetch_all(conn)
        .await
}

/// The system wallet of `wallet`'s currency, created on first use; `None`
/// when `wallet` is not a user's wallet.
#[instrument(name = "wallets.system_wallet_for", skip_all, fields(db.system.name = "postgresql"))]
pub async fn system_wallet_for(
    conn: &mut PgConnection,
    wallet: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query(
        "INSERT INTO wallets (id, user_id, currency)
         SELECT $1, NULL, currency FROM wallets WHERE id = $2 AND user_id IS NOT NULL
         ON CONFLICT DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(wallet)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar(
        "SELECT s.id FROM wallets s JOIN wallets w ON w.currency = s.currency
         WHERE w.id = $1 AND w.user_id IS NOT NULL AND s.user_id IS NULL",
    )
    .bind(wallet)
    .fetch_optional(&mut *conn)
    .await
}

/// A movement to write: both wallets' new balances, the transfer and its
/// two ledger entries.
#[derive(Debug)]
pub struct NewTransfer<'a> {
    /// The transfer's id.
    pub id: Uuid,
    /// `transfer` or `deposit`.
    pub kind: &'a str,
    /// The wallet debited and its balance after.
    pub from: (Uuid, Decimal),
    /// The wallet credited and its balance after.
    pub to: (Uuid, Decimal),
    /// The amount moved.
    pub amount: Decimal,
    /// ISO 4217 code.
    pub currency: &'a str,
    /// Free text.
    pub note: Option<&'a str>,
    /// Who made it.
    pub created_by: Uuid,
}

/// Writes `transfer` (balances, the transfer row, both ledger entries) and
/// returns its creation time.
#[instrument(name = "wallets.write_transfer", skip_all, fields(db.system.name = "postgresql"))]
pub async fn write_transfer(
    conn: &mut PgConnection,
    transfer: &NewTransfer<'_>,
) -> Result<OffsetDateTime, sqlx::Error> {
    let (from, from_after) = transfer.from;
    let (to, to_after) = transfer.to;
    let created_at: OffsetDateTime = sqlx::query_scalar(
        "WITH debit AS (UPDATE wallets SET balance = $2 WHERE id = $1),
              credit AS (UPDATE wallets SET balance = $4 WHERE id = $3)
         INSERT INTO transfers (id, kind, from_wallet_id, to_wallet_id, amount, currency, note, created_by)
         VALUES ($5, $6, $1, $3, $7, $8, $9, $10) RETURNING created_at",
    )
    .bind(from)
    .bind(from_after)
    .bind(to)
    .bind(to_after)
    .bind(transfer.id)
    .bind(transfer.kind)
    .bind(transfer.amount)
    .bind(transfer.currency)
    .bind(transfer.note)
    .bind(transfer.created_by)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO ledger_entries (id, transfer_id, wallet_id, amount, balance_after)
         VALUES ($1, $3, $4, $5, $6), ($2, $3, $7, $8, $9)",
    )
    .bind(Uuid::now_v7())
    .bind(Uuid::now_v7())
    .bind(transfer.id)
    .bind(from)
    .bind(-transfer.amount)
    .bind(from_after)
    .bind(to)
    .bind(transfer.amount)
    .bind(to_after)
    .execute(&mut *conn)
    .await?;
    Ok(created_at)
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: Uuid,
    transfer_id: Uuid,
    kind: String,
    amount: Decimal,
    balance_after: Decimal,
    counterparty_wallet_id: Uuid,
    note: Option<String>,
    created_at: OffsetDateTime,
}

/// `wallet`'s ledger entries, newest first, before `before`, at most
/// `limit`, written at the currency's scale `units`.
#[instrument(name = "wallets.entries", skip_all, fields(db.system.name = "postgresql"))]
pub async fn entries(
    db: impl PgExecutor<'_>,
    wallet: Uuid,
    units: i16,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<TransactionView>, sqlx::Error> {
    let rows: Vec<EntryRow> = sqlx::query_as(
        "SELECT e.id, e.transfer_id, t.kind, e.amount, e.balance_after,
                CASE WHEN t.from_wallet_id = e.wallet_id THEN t.to_wallet_id ELSE t.from_wallet_id END
                    AS counterparty_wallet_id,
                t.note, e.created_at
         FROM ledger_entries e JOIN transfers t ON t.id = e.transfer_id
         WHERE e.wallet_id = $1 AND ($2::uuid IS NULL OR e.id < $2)
         ORDER BY e.id DESC LIMIT $3",
    )
    .bind(wallet)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| TransactionView {
            id: row.id,
            transfer_id: row.transfer_id,
            kind: row.kind,
            amount: amount_text(row.amount, units),
            balance_after: amount_text(row.balance_after, units),
            counterparty_wallet_id: row.counterparty_wallet_id,
            note: row.note,
            created_at: row.created_at,
        })
        .collect())
}
