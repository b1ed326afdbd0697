//! What the wallets feature fails with, and its one mapping to problem+json.

use bff_core::Problem;
use http::StatusCode;

use crate::http::ApiError;
use crate::idempotency::IdempotencyError;

/// Why a wallet operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// No such wallet the caller may see.
    #[error("no such wallet")]
    NotFound,
    /// A movement names a wallet that does not exist or is not the caller's.
    #[error("a wallet of the movement does not exist")]
    UnknownWallet,
    /// A movement from a wallet to itself.
    #[error("the source and target wallets are the same")]
    SameWallet,
    /// The two wallets hold different currencies.
    #[error("the wallets' currencies differ")]
    CurrencyMismatch,
    /// The source's balance is below the amount.
    #[error("insufficient funds")]
    InsufficientFunds,
    /// The amount does not fit the currency (too many decimal places).
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    /// The currency is not in the table of supported ones.
    #[error("unsupported currency")]
    UnsupportedCurrency,
    /// A manager or admin depositing into a wallet of their own.
    #[error("a deposit into the actor's own wallet")]
    DepositToSelf,
    /// A deposit above the configured cap.
    #[error("the deposit is above the cap")]
    DepositAboveCap(rust_decimal::Decimal),
    /// The owner already has a wallet in this currency.
    #[error("a wallet in this currency exists")]
    AlreadyExists,
    /// The idempotency key was used with another request, or its answer is unreadable.
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl WalletError {
    /// Postgres gave up on the transaction for a reason a retry cures.
    pub(crate) fn is_retryable(&self) -> bool {
        let database = match self {
            Self::Database(error) | Self::Idempotency(IdempotencyError::Database(error)) => error,
            _ => return false,
        };
        matches!(database, sqlx::Error::Database(db)
            if matches!(db.code().as_deref(), Some("40001" | "40P01")))
    }
}

impl From<WalletError> for ApiError {
    fn from(error: WalletError) -> Self {
        let unprocessable = |code: &'static str, title: &'static str, detail: &'static str| {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, title)
                .with_detail(detail)
                .into()
        };
        match error {
            WalletError::NotFound => Problem::not_found().into(),
            WalletError::UnknownWallet => {
                Problem::not_found().with_detail("No such wallet.").into()
            }
            WalletError::SameWallet => {
                Problem::invalid_field("to_wallet_id", "must differ from from_wallet_id").into()
            }
            WalletError::CurrencyMismatch => unprocessable(
                "currency_mismatch",
                "Currencies differ",
                "Both wallets must hold the same currency.",
            ),
            WalletError::InsufficientFunds => unprocessable(
                "insufficient_funds",
                "Insufficient funds",
                "The source wallet's balance is lower than the amount.",
            ),
            WalletError::InvalidAmount(message) => Problem::invalid_field("amount", message).into(),
            WalletError::DepositToSelf => Problem::forbidden()
                .with_detail("You cannot deposit into a wallet of your own.")
                .into(),
            WalletError::DepositAboveCap(max) => {
                Problem::invalid_field("amount", format!("must be at most {max}")).into()
            }
            WalletError::UnsupportedCurrency => {
                Problem::invalid_field("currency", "is not a supported ISO 4217 currency").into()
            }
            WalletError::AlreadyExists => {
                Problem::conflict("You already have a wallet in this currency.").into()
            }
            WalletError::Idempotency(IdempotencyError::Mismatch) => Problem::conflict(
                "This Idempotency-Key was used with a different request; use a new key.",
            )
            .into(),
            WalletError::Idempotency(IdempotencyError::Database(error))
            | WalletError::Database(error) => error.into(),
            WalletError::Idempotency(error) => ApiError::internal(error),
        }
    }
}
