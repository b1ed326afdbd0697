//! Reading currencies.

use sqlx::PgPool;

use super::{Currency, CurrencyCode, CurrencyError, store};

/// The currencies the service accepts.
#[derive(Debug, Clone)]
pub struct CurrencyService {
    db: PgPool,
}

impl CurrencyService {
    /// The currencies in `db`.
    pub fn new(db: PgPool) -> Self {
        Self { db }
    }

    /// Currencies in code order, after `after` if given, at most `limit`.
    pub async fn list(
        &self,
        after: Option<&CurrencyCode>,
        limit: i64,
    ) -> Result<Vec<Currency>, CurrencyError> {
        Ok(store::list(&self.db, after, limit).await?)
    }

    /// The currency `code`.
    pub async fn get(&self, code: &CurrencyCode) -> Result<Currency, CurrencyError> {
        self.find(code).await?.ok_or(CurrencyError::NotFound)
    }

    /// The currency `code`, if it is a supported one.
    pub async fn find(&self, code: &CurrencyCode) -> Result<Option<Currency>, CurrencyError> {
        Ok(store::find(&self.db, code).await?)
    }
}
