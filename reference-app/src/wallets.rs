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

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use aide::transform::TransformOperation;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bff_auth::layer::Principal;
use bff_core::Problem;
use bff_core::extract::{Json, Query};
use bff_core::pagination::{Page, PageParams};
use bff_rbac::Authz;
use http::{HeaderMap, StatusCode};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{self, Entry};
use crate::auth::bearer;
use crate::error::{ApiError, ApiResult};
use crate::ids::{caller_id as caller, path_id};
use crate::money::{Amount, format};
use crate::ops::{self, invalid};
use crate::rbac;
use crate::records::conflict_on_unique;
use crate::startup::AppState;
use crate::validation::{Fields, text};

fn doc(op: TransformOperation<'_>) -> TransformOperation<'_> {
    bearer(op.tag("money"))
}

fn missing(op: TransformOperation<'_>) -> TransformOperation<'_> {
    ops::not_found(op, "No such wallet of yours.")
}

/// The wallet, transfer and deposit endpoints.
pub fn routes() -> ApiRouter<AppState> {
    ApiRouter::new()
        .api_route(
            "/api/v1/wallets",
            get_with(list_wallets, |op| doc(op.summary("List my wallets"))).post_with(
                create_wallet,
                |op| {
                    invalid(doc(op.summary("Open a wallet")))
                        .response::<201, axum::Json<WalletView>>()
                        .response_with::<409, Problem, _>(|r| {
                            r.description("You already have a wallet in this currency.")
                        })
                },
            ),
        )
        .api_route(
            "/api/v1/wallets/{id}",
            get_with(get_wallet, |op| {
                missing(doc(op.summary("Get a wallet").description(
                    "Your own; managers and admins read anyone's.",
                )))
            }),
        )
        .api_route(
            "/api/v1/wallets/{id}/transactions",
            get_with(list_transactions, |op| {
                missing(doc(op.summary("A wallet's ledger entries").description(
                    "Newest first. Your own wallet's; managers and admins read anyone's.",
                )))
            }),
        )
        .api_route(
            "/api/v1/transfers",
            post_with(transfer, |op| {
                invalid(missing(doc(op.summary("Transfer money").description(
                    "Between two wallets of one currency, from one of yours. Requires `Idempotency-Key`: a repeat with the same key and body replays the first answer; with another body it is 409.",
                ))))
                .response::<201, axum::Json<TransferView>>()
                .response_with::<409, Problem, _>(|r| r.description("The `Idempotency-Key` was used with another body."))
            }),
        )
        .api_route(
            "/api/v1/admin/wallets/{id}/deposit",
            post_with(deposit, |op| {
                invalid(missing(doc(op.summary("Deposit into a wallet").description(
                    "Managers and admins. `Idempotency-Key` is optional and works as for transfers.",
                ))))
                .response::<201, axum::Json<TransferView>>()
                .response_with::<403, Problem, _>(|r| r.description("Not a manager or admin."))
            }),
        )
}

#[derive(Debug, sqlx::FromRow)]
struct WalletRow {
    id: Uuid,
    user_id: Option<Uuid>,
    currency: String,
    balance: Decimal,
    minor_units: i16,
    created_at: OffsetDateTime,
}

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

fn minor_units(units: i16) -> u32 {
    u32::try_from(units).unwrap_or(0)
}

impl From<WalletRow> for WalletView {
    fn from(row: WalletRow) -> Self {
        Self {
            balance: format(row.balance, minor_units(row.minor_units)),
            id: row.id,
            user_id: row.user_id,
            currency: row.currency,
            created_at: row.created_at,
        }
    }
}

const WALLET_COLUMNS: &str = "w.id, w.user_id, w.currency, w.balance, c.minor_units, w.created_at";

/// Path of one wallet.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct WalletPath {
    /// Wallet id.
    id: String,
}

fn wallet_id(path: &WalletPath) -> Result<Uuid, Problem> {
    path_id(&path.id)
}

async fn list_wallets(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Page<WalletView>>> {
    let page = params.validate::<Uuid>()?;
    let rows = list_for(
        &state.db,
        caller(&principal)?,
        page.after,
        page.fetch_limit(),
    )
    .await?;
    Ok(Json(Page::from_rows(rows, page.limit, |last| last.id)))
}

/// Up to `limit` of `owner`'s wallets in id order, after `after`.
pub async fn list_for(
    db: &sqlx::PgPool,
    owner: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<WalletView>, sqlx::Error> {
    let sql = format!(
        "SELECT {WALLET_COLUMNS} FROM wallets w JOIN currencies c ON c.code = w.currency
         WHERE w.user_id = $1 AND ($2::uuid IS NULL OR w.id > $2) ORDER BY w.id LIMIT $3"
    );
    let rows: Vec<WalletRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(owner)
        .bind(after)
        .bind(limit)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(WalletView::from).collect())
}

/// `POST /wallets` body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWallet {
    /// ISO 4217 code of a supported currency.
    currency: String,
}

async fn create_wallet(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<NewWallet>,
) -> ApiResult<(StatusCode, Json<WalletView>)> {
    let owner = caller(&principal)?;
    let currency = crate::currencies::CurrencyCode::parse(body.currency.trim())
        .map_err(|e| Problem::invalid_field("currency", e.to_string()))?;
    let sql = format!(
        "WITH inserted AS (
             INSERT INTO wallets (id, user_id, currency)
             SELECT $1, $2, code FROM currencies WHERE code = $3
             RETURNING *)
         SELECT {WALLET_COLUMNS} FROM inserted w JOIN currencies c ON c.code = w.currency"
    );
    let row: Option<WalletRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::now_v7())
        .bind(owner)
        .bind(currency.as_str())
        .fetch_optional(&state.db)
        .await
        .map_err(|e| conflict_on_unique(e, "You already have a wallet in this currency."))?;
    let row = row.ok_or_else(|| {
        Problem::invalid_field("currency", "is not a supported ISO 4217 currency")
    })?;
    state.user_changed(owner).await;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// A user's wallet `id` as `authz` may see it: the caller's own, or anyone's
/// for managers and admins. System wallets are never visible.
async fn visible_wallet(
    state: &AppState,
    authz: &Authz<Principal>,
    id: Uuid,
) -> ApiResult<WalletRow> {
    let scope = authz.scope(rbac::WALLETS_READ_ANY);
    let owner = scope
        .owner()
        .map(Uuid::parse_str)
        .transpose()
        .map_err(|_| Problem::unauthorized())?;
    let sql = format!(
        "SELECT {WALLET_COLUMNS} FROM wallets w JOIN currencies c ON c.code = w.currency
         WHERE w.id = $1 AND w.user_id IS NOT NULL AND ($2::uuid IS NULL OR w.user_id = $2)"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(owner)
        .fetch_optional(&state.db)
        .await?
        .ok_or_else(Problem::not_found)?)
}

async fn get_wallet(
    State(state): State<AppState>,
    authz: Authz<Principal>,
    Path(path): Path<WalletPath>,
) -> ApiResult<Json<WalletView>> {
    Ok(Json(
        visible_wallet(&state, &authz, wallet_id(&path)?)
            .await?
            .into(),
    ))
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

async fn list_transactions(
    State(state): State<AppState>,
    authz: Authz<Principal>,
    Path(path): Path<WalletPath>,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Page<TransactionView>>> {
    let wallet = visible_wallet(&state, &authz, wallet_id(&path)?).await?;
    let page = params.validate::<Uuid>()?;
    let rows: Vec<EntryRow> = sqlx::query_as(
        "SELECT e.id, e.transfer_id, t.kind, e.amount, e.balance_after,
                CASE WHEN t.from_wallet_id = e.wallet_id THEN t.to_wallet_id ELSE t.from_wallet_id END
                    AS counterparty_wallet_id,
                t.note, e.created_at
         FROM ledger_entries e JOIN transfers t ON t.id = e.transfer_id
         WHERE e.wallet_id = $1 AND ($2::uuid IS NULL OR e.id < $2)
         ORDER BY e.id DESC LIMIT $3",
    )
    .bind(wallet.id)
    .bind(page.after)
    .bind(page.fetch_limit())
    .fetch_all(&state.db)
    .await?;
    let units = minor_units(wallet.minor_units);
    Ok(Json(Page::from_rows(rows, page.limit, |last| last.id).map(
        |row| TransactionView {
            id: row.id,
            transfer_id: row.transfer_id,
            kind: row.kind,
            amount: format(row.amount, units),
            balance_after: format(row.balance_after, units),
            counterparty_wallet_id: row.counterparty_wallet_id,
            note: row.note,
            created_at: row.created_at,
        },
    )))
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

/// `POST /transfers` body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// One of your wallets.
    from_wallet_id: Uuid,
    /// Any wallet of the same currency.
    to_wallet_id: Uuid,
    /// A decimal string such as `"10.50"`, more than zero, with at most the
    /// currency's decimal places.
    amount: String,
}

/// `POST /admin/wallets/{id}/deposit` body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DepositRequest {
    /// A decimal string, more than zero, at most the currency's decimal places.
    amount: String,
    /// Why, up to 200 characters.
    #[serde(default)]
    note: Option<String>,
}

/// The `Idempotency-Key` header, if any: 1 to 255 visible ASCII characters.
/// The optional `Idempotency-Key` header: 1 to 255 visible ASCII characters.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, &'static str> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| "must be 1 to 255 visible ASCII characters")?;
    crate::ids::idempotency_key(key).map(|key| Some(key.to_owned()))
}

/// What an idempotency key says about a request.
enum Claim {
    /// First use: go ahead, and remember the answer.
    Fresh,
    /// Seen with the same body: this was the answer.
    Replay(TransferView),
}

struct Idempotency<'a> {
    user: Uuid,
    scope: &'static str,
    key: &'a str,
    hash: String,
}

impl Idempotency<'_> {
    /// Claims the key inside the transaction. A concurrent request with the
    /// same key waits here until the first one commits or rolls back.
    async fn claim(&self, conn: &mut PgConnection) -> ApiResult<Claim> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (user_id, scope, key, request_hash, status, response)
             VALUES ($1, $2, $3, $4, 0, 'null') ON CONFLICT DO NOTHING",
        )
        .bind(self.user)
        .bind(self.scope)
        .bind(self.key)
        .bind(&self.hash)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Claim::Fresh);
        }
        let (hash, response): (String, serde_json::Value) = sqlx::query_as(
            "SELECT request_hash, response FROM idempotency_keys WHERE user_id = $1 AND scope = $2 AND key = $3",
        )
        .bind(self.user)
        .bind(self.scope)
        .bind(self.key)
        .fetch_one(&mut *conn)
        .await?;
        if hash != self.hash {
            return Err(Problem::conflict(
                "This Idempotency-Key was used with a different request; use a new key.",
            )
            .into());
        }
        let first: TransferView = serde_json::from_value(response).map_err(ApiError::internal)?;
        Ok(Claim::Replay(first))
    }

    async fn remember(&self, conn: &mut PgConnection, answer: &TransferView) -> ApiResult<()> {
        let response = serde_json::to_value(answer).map_err(ApiError::internal)?;
        sqlx::query(
            "UPDATE idempotency_keys SET status = 201, response = $4
             WHERE user_id = $1 AND scope = $2 AND key = $3",
        )
        .bind(self.user)
        .bind(self.scope)
        .bind(self.key)
        .bind(response)
        .execute(conn)
        .await?;
        Ok(())
    }
}

fn request_hash(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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

/// Moves money inside the transaction: locks both wallets in id order, checks
/// ownership, currency, scale and funds, then writes balances, the transfer,
/// two ledger entries and the audit record.
/// A movement made: its view, and the users whose balances it changed.
struct Moved {
    view: TransferView,
    owners: Vec<Uuid>,
}

async fn move_money(conn: &mut PgConnection, m: &Movement<'_>) -> ApiResult<Moved> {
    let from = match m.from {
        Some(from) => from,
        None => system_wallet_for(conn, m.to).await?,
    };
    if from == m.to {
        return Err(
            Problem::invalid_field("to_wallet_id", "must differ from from_wallet_id").into(),
        );
    }
    let sql = format!(
        "SELECT {WALLET_COLUMNS} FROM wallets w JOIN currencies c ON c.code = w.currency
         WHERE w.id = ANY($1) ORDER BY w.id FOR UPDATE OF w"
    );
    let wallets: Vec<WalletRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(vec![from, m.to])
        .fetch_all(&mut *conn)
        .await?;
    let source = wallets.iter().find(|w| w.id == from);
    let target = wallets.iter().find(|w| w.id == m.to && w.user_id.is_some());
    let (Some(source), Some(target)) = (source, target) else {
        return Err(Problem::not_found().with_detail("No such wallet.").into());
    };
    if m.from_owner.is_some() && source.user_id != m.from_owner {
        // Someone else's wallet is as absent as a wallet that does not exist.
        return Err(Problem::not_found().with_detail("No such wallet.").into());
    }
    if source.currency != target.currency {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency_mismatch",
            "Currencies differ",
        )
        .with_detail("Both wallets must hold the same currency.")
        .into());
    }
    let units = minor_units(target.minor_units);
    let amount = m
        .amount
        .for_currency(&target.currency, units)
        .map_err(|e| Problem::invalid_field("amount", e.to_string()))?;
    if source.user_id.is_some() && source.balance < amount {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "insufficient_funds",
            "Insufficient funds",
        )
        .with_detail("The source wallet's balance is lower than the amount.")
        .into());
    }
    let (source_after, target_after) = (source.balance - amount, target.balance + amount);
    let transfer_id = Uuid::now_v7();
    let created_at: OffsetDateTime = sqlx::query_scalar(
        "WITH debit AS (UPDATE wallets SET balance = $2 WHERE id = $1),
              credit AS (UPDATE wallets SET balance = $4 WHERE id = $3)
         INSERT INTO transfers (id, kind, from_wallet_id, to_wallet_id, amount, currency, note, created_by)
         VALUES ($5, $6, $1, $3, $7, $8, $9, $10) RETURNING created_at",
    )
    .bind(source.id)
    .bind(source_after)
    .bind(target.id)
    .bind(target_after)
    .bind(transfer_id)
    .bind(m.kind)
    .bind(amount)
    .bind(&target.currency)
    .bind(&m.note)
    .bind(m.actor)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO ledger_entries (id, transfer_id, wallet_id, amount, balance_after)
         VALUES ($1, $3, $4, $5, $6), ($2, $3, $7, $8, $9)",
    )
    .bind(Uuid::now_v7())
    .bind(Uuid::now_v7())
    .bind(transfer_id)
    .bind(source.id)
    .bind(-amount)
    .bind(source_after)
    .bind(target.id)
    .bind(amount)
    .bind(target_after)
    .execute(&mut *conn)
    .await?;
    let view = TransferView {
        id: transfer_id,
        kind: m.kind.to_owned(),
        from_wallet_id: source.id,
        to_wallet_id: target.id,
        amount: format(amount, units),
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
                transfer_id,
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

/// The system wallet of `wallet`'s currency, created on first use.
async fn system_wallet_for(conn: &mut PgConnection, wallet: Uuid) -> ApiResult<Uuid> {
    sqlx::query(
        "INSERT INTO wallets (id, user_id, currency)
         SELECT $1, NULL, currency FROM wallets WHERE id = $2 AND user_id IS NOT NULL
         ON CONFLICT DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(wallet)
    .execute(&mut *conn)
    .await?;
    let system: Option<Uuid> = sqlx::query_scalar(
        "SELECT s.id FROM wallets s JOIN wallets w ON w.currency = s.currency
         WHERE w.id = $1 AND w.user_id IS NOT NULL AND s.user_id IS NULL",
    )
    .bind(wallet)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(system.ok_or_else(|| Problem::not_found().with_detail("No such wallet."))?)
}

/// Postgres gave up on the transaction for a reason a retry cures.
fn retryable(error: &ApiError) -> bool {
    matches!(error, ApiError::Database(sqlx::Error::Database(db))
        if matches!(db.code().as_deref(), Some("40001" | "40P01")))
}

/// Runs a movement (with its idempotency key, if any) in a transaction,
/// retrying it a few times when Postgres reports a deadlock or a
/// serialization failure.
async fn run(
    state: &AppState,
    movement: &Movement<'_>,
    idempotency: Option<&Idempotency<'_>>,
) -> ApiResult<TransferView> {
    const ATTEMPTS: u32 = 4;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = async {
            let mut tx = state.db.begin().await?;
            if let Some(idempotency) = idempotency
                && let Claim::Replay(first) = idempotency.claim(&mut tx).await?
            {
                // A replay changes no balance.
                return Ok(Moved {
                    view: first,
                    owners: Vec::new(),
                });
            }
            let moved = move_money(&mut tx, movement).await?;
            if let Some(idempotency) = idempotency {
                idempotency.remember(&mut tx, &moved.view).await?;
            }
            tx.commit().await?;
            Ok(moved)
        }
        .await;
        match result {
            Err(error) if attempt < ATTEMPTS && retryable(&error) => {
                tracing::warn!(
                    attempt,
                    "money transaction retried after a deadlock or serialization failure"
                );
            }
            Ok(moved) => {
                // Their cached dashboards show the old balances.
                for owner in moved.owners {
                    state.user_changed(owner).await;
                }
                return Ok(moved.view);
            }
            Err(error) => return Err(error),
        }
    }
}

fn amount_field(fields: &mut Fields, amount: &str) -> Option<Amount> {
    fields.check("amount", Amount::parse(amount))
}

async fn transfer(
    State(state): State<AppState>,
    principal: Principal,
    meta: crate::auth::ClientMeta,
    headers: HeaderMap,
    Json(body): Json<TransferRequest>,
) -> ApiResult<Response> {
    let user = caller(&principal)?;
    let mut fields = Fields::default();
    let key = fields.check("Idempotency-Key", idempotency_key(&headers));
    if matches!(key, Some(None)) {
        fields.0.push(bff_core::problem::FieldError::new(
            "Idempotency-Key",
            "is required: a unique value per transfer, reused only to retry it",
        ));
    }
    let amount = amount_field(&mut fields, &body.amount);
    if body.from_wallet_id == body.to_wallet_id {
        fields.0.push(bff_core::problem::FieldError::new(
            "to_wallet_id",
            "must differ from from_wallet_id",
        ));
    }
    let (Some(Some(key)), Some(amount)) = (key, amount) else {
        return Err(fields.problem().into());
    };
    fields.finish()?;
    let idempotency = Idempotency {
        user,
        scope: "transfer",
        key: &key,
        hash: request_hash(&[
            &body.from_wallet_id.to_string(),
            &body.to_wallet_id.to_string(),
            &body.amount,
        ]),
    };
    let movement = Movement {
        kind: "transfer",
        from: Some(body.from_wallet_id),
        to: body.to_wallet_id,
        from_owner: Some(user),
        amount,
        note: None,
        actor: user,
        ip: meta.ip.as_deref(),
    };
    let view = run(&state, &movement, Some(&idempotency)).await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

async fn deposit(
    State(state): State<AppState>,
    authz: Authz<Principal>,
    meta: crate::auth::ClientMeta,
    headers: HeaderMap,
    Path(path): Path<WalletPath>,
    Json(body): Json<DepositRequest>,
) -> ApiResult<Response> {
    authz.require(rbac::WALLETS_DEPOSIT)?;
    let actor = caller(&authz.subject)?;
    let to = wallet_id(&path)?;
    let mut fields = Fields::default();
    let key = fields.check("Idempotency-Key", idempotency_key(&headers));
    let amount = amount_field(&mut fields, &body.amount);
    let note = fields.check_opt("note", body.note.clone(), |n| text(&n, 0, 200, false));
    let (Some(key), Some(amount)) = (key, amount) else {
        return Err(fields.problem().into());
    };
    fields.finish()?;
    let hash = request_hash(&[
        &to.to_string(),
        &body.amount,
        body.note.as_deref().unwrap_or(""),
    ]);
    let idempotency = key.as_deref().map(|key| Idempotency {
        user: actor,
        scope: "deposit",
        key,
        hash: hash.clone(),
    });
    let movement = Movement {
        kind: "deposit",
        from: None,
        to,
        from_owner: None,
        amount,
        note: note.filter(|n| !n.is_empty()),
        actor,
        ip: meta.ip.as_deref(),
    };
    let view = run(&state, &movement, idempotency.as_ref()).await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_hashes_separate_their_parts() {
        assert_ne!(request_hash(&["ab", "c"]), request_hash(&["a", "bc"]));
        assert_eq!(request_hash(&["a", "b"]), request_hash(&["a", "b"]));
    }
}
