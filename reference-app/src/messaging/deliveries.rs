//! The record of notifications a sender accepted: what keeps a redelivered
//! message from being sent twice.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

/// Notifications sent, by message id, in Postgres (`notification_deliveries`).
#[derive(Debug, Clone)]
pub struct Deliveries {
    db: PgPool,
}

impl Deliveries {
    /// The record in `db`.
    pub fn new(db: PgPool) -> Self {
        Self { db }
    }

    /// Whether a sender already accepted message `id`.
    pub async fn was_sent(&self, id: Uuid) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM notification_deliveries WHERE id = $1)")
            .bind(id)
            .fetch_one(&self.db)
            .await
    }

    /// Records that a sender accepted message `id`.
    pub async fn record(&self, id: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO notification_deliveries (id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(id)
            .execute(&self.db)
            .await
            .map(drop)
    }

    /// Deletes records older than `retention` (at most 10,000 at a time);
    /// returns how many went.
    pub async fn purge(&self, retention: Duration) -> Result<u64, sqlx::Error> {
        sqlx::query(
            "DELETE FROM notification_deliveries WHERE id IN (
                 SELECT id FROM notification_deliveries
                 WHERE sent_at < now() - $1 * interval '1 millisecond'
                 LIMIT 10000)",
        )
        .bind(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX))
        .execute(&self.db)
        .await
        .map(|done| done.rows_affected())
    }
}
