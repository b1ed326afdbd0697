//! The `audit_log` table.

use sqlx::PgExecutor;
use tracing::instrument;
use uuid::Uuid;

use super::{AuditRecord, Entry, Filter};

/// Records `entry` with the current request id, inside the caller's transaction
/// when given one, so the record exists exactly when the action does.
#[instrument(name = "audit.record", skip_all, fields(db.system.name = "postgresql"))]
pub async fn record(db: impl PgExecutor<'_>, entry: Entry<'_>) -> Result<(), sqlx::Error> {
    let request_id = bff_core::RequestId::current().map(|id| id.as_str().to_owned());
    sqlx::query(
        "INSERT INTO audit_log (id, actor_id, action, target_type, target_id, request_id, ip, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(Uuid::now_v7())
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(entry.target_id)
    .bind(request_id)
    .bind(entry.ip)
    .bind(entry.details)
    .execute(db)
    .await
    .map(drop)
}

/// Entries matching `filter`, newest first, after `after`, at most `limit`.
#[instrument(name = "audit.list", skip_all, fields(db.system.name = "postgresql"))]
pub async fn list(
    db: impl PgExecutor<'_>,
    filter: Filter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AuditRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, actor_id, action, target_type, target_id, request_id, ip, details, created_at
         FROM audit_log
         WHERE ($1::uuid IS NULL OR id < $1)
           AND ($2::text IS NULL OR action = $2)
           AND ($3::uuid IS NULL OR actor_id = $3)
           AND ($4::text IS NULL OR target_id = $4)
         ORDER BY id DESC
         LIMIT $5",
    )
    .bind(after)
    .bind(filter.action)
    .bind(filter.actor_id)
    .bind(filter.target_id)
    .bind(limit)
    .fetch_all(db)
    .await
}
