//! What the currencies feature fails with, and its one mapping to problem+json.

use bff_core::Problem;

use crate::http::ApiError;

/// Why a currency could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CurrencyError {
    /// No currency has this code.
    #[error("no such currency")]
    NotFound,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<CurrencyError> for ApiError {
    fn from(error: CurrencyError) -> Self {
        match error {
            CurrencyError::NotFound => Problem::not_found().into(),
            CurrencyError::Database(error) => error.into(),
        }
    }
}
