//! What authentication fails with, and its one mapping to problem+json.

use bff_auth::code::CodeError;
use bff_auth::session::SessionError;
use bff_core::Problem;
use http::StatusCode;

use crate::http::ApiError;
use crate::limits::LimitError;

/// Why an auth operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Unknown identifier or wrong password: one answer for both.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The old password of a password change is wrong.
    #[error("the old password is wrong")]
    WrongOldPassword,
    /// Too many wrong old passwords: the session that sent them was ended.
    #[error("the session was ended after wrong passwords")]
    SessionEnded,
    /// The account is blocked.
    #[error("the account is blocked")]
    AccountBlocked,
    /// The refresh token is unknown, expired or malformed.
    #[error("invalid refresh token")]
    InvalidRefresh,
    /// An already rotated refresh token: the session was ended.
    #[error("refresh token reused")]
    RefreshReused,
    /// A password change for someone else's account.
    #[error("not the caller's own password")]
    NotOwnPassword,
    /// No such session of the caller's.
    #[error("no such session")]
    SessionNotFound,
    /// The caller's account no longer exists.
    #[error("the account no longer exists")]
    AccountGone,
    /// A wrong, expired, used or burnt code.
    #[error("invalid code")]
    CodeInvalid,
    /// Sign-up for an identifier that has an account.
    #[error("the identifier has an account")]
    AccountExists,
    /// Too many attempts, or the limiter is down.
    #[error(transparent)]
    Limited(#[from] LimitError),
    /// The session store failed.
    #[error(transparent)]
    Sessions(#[from] SessionError),
    /// The code store failed.
    #[error(transparent)]
    Codes(#[from] CodeError),
    /// Password hashing failed, or is at capacity.
    #[error(transparent)]
    Password(#[from] bff_auth::password::PasswordError),
    /// Hashing or signing failed (a bug or a broken key).
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl AuthError {
    /// Wraps a failure that is a bug on our side.
    pub(crate) fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }
}

fn invalid_credentials() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "Invalid credentials",
    )
    .with_detail("The identifier or the password is wrong.")
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::InvalidCredentials => invalid_credentials().into(),
            AuthError::WrongOldPassword => invalid_credentials()
                .with_detail("The old password is wrong.")
                .into(),
            AuthError::SessionEnded => Problem::unauthorized()
                .with_detail("Too many wrong passwords: this session has been ended. Log in again.")
                .into(),
            AuthError::AccountBlocked => {
                Problem::new(StatusCode::FORBIDDEN, "account_blocked", "Account blocked")
                    .with_detail("This account is blocked.")
                    .into()
            }
            AuthError::InvalidRefresh => Problem::unauthorized()
                .with_detail("The refresh token is invalid or expired.")
                .into(),
            AuthError::RefreshReused => Problem::new(
                StatusCode::UNAUTHORIZED,
                "refresh_token_reused",
                "Refresh token reused",
            )
            .with_detail(
                "This refresh token was already used; the session has been ended. Log in again.",
            )
            .into(),
            AuthError::NotOwnPassword => Problem::forbidden()
                .with_detail("You can only change your own password.")
                .into(),
            AuthError::SessionNotFound => Problem::not_found().into(),
            AuthError::AccountGone => Problem::unauthorized().into(),
            AuthError::CodeInvalid => {
                Problem::new(StatusCode::BAD_REQUEST, "code_invalid", "Invalid code")
                    .with_detail("The code is wrong, expired or already used. Ask for a new one.")
                    .into()
            }
            AuthError::AccountExists => {
                Problem::conflict("An account with this identifier already exists; log in instead.")
                    .into()
            }
            AuthError::Limited(error) => error.into(),
            AuthError::Sessions(error) => error.into(),
            AuthError::Codes(error @ CodeError::Backend(_)) => {
                ApiError::Unavailable(Box::new(error))
            }
            AuthError::Codes(error) => ApiError::internal(error),
            // A full hashing queue: a login flood is refused at once, as an
            // outage would be, instead of waiting without bound.
            AuthError::Password(error @ bff_auth::password::PasswordError::Busy) => {
                ApiError::Unavailable(Box::new(error))
            }
            AuthError::Password(error) => ApiError::internal(error),
            AuthError::Internal(error) => ApiError::Internal(error),
            AuthError::Database(error) => error.into(),
        }
    }
}
