//! The `currencies` table.

use sqlx::PgExecutor;
use tracing::instrument;

use super::{Currency, CurrencyCode};

/// Currencies in code order, after `after` if given, at most `limit` rows.
#[instrument(name = "currencies.list", skip_all, fields(db.system.name = "postgresql"))]
pub async fn list(
    db: impl PgExecutor<'_>,
    after: Option<&CurrencyCode>,
    limit: i64,
) -> Result<Vec<Currency>, sqlx::Error> {
    sqlx::query_as(
        "SELECT code, name, minor_units FROM currencies WHERE ($1::text IS NULL OR code > $1) ORDER BY code LIMIT $2",
    )
    .bind(after.map(CurrencyCode::as_str))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// One currency by code.
#[instrument(name = "currencies.find", skip_all, fields(db.system.name = "postgresql"))]
pub async fn find(
    db: impl PgExecutor<'_>,
    code: &CurrencyCode,
) -> Result<Option<Currency>, sqlx::Error> {
    sqlx::query_as("SELECT code, name, minor_units FROM currencies WHERE code = $1")
        .bind(code.as_str())
        .fetch_optional(db)
        .await
}
