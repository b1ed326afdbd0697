//! Reading the audit log.

use sqlx::PgPool;
use uuid::Uuid;

use super::{AuditRecord, Filter, store};

/// The audit log's reading side.
#[derive(Debug, Clone)]
pub struct AuditLog {
    db: PgPool,
}

impl AuditLog {
    /// The log in `db`.
    pub fn new(db: PgPool) -> Self {
        Self { db }
    }

    /// Entries matching `filter`, newest first, after `after`, at most `limit`.
    pub async fn list(
        &self,
        filter: Filter,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, sqlx::Error> {
        store::list(&self.db, filter, after, limit).await
    }
}
