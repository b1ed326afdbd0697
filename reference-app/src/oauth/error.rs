//! Social login's domain error and its problem+json mapping.

use bff_core::Problem;

use crate::auth::AuthError;
use crate::http::ApiError;
use crate::limits::LimitError;

/// What a social-login request can fail with before (or instead of) a
/// redirect to the frontend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthFlowError {
    /// An unknown or disabled provider.
    #[error("no such provider")]
    UnknownProvider,
    /// `redirect_uri` is not on the allow-list.
    #[error("redirect_uri is not allowed")]
    RedirectNotAllowed,
    /// A browser-mode `return_to` that is not a path on this origin.
    #[error("return_to is not allowed")]
    ReturnToNotAllowed,
    /// The callback's `state` is missing, unknown, expired, used, foreign, or
    /// without its binding cookie.
    #[error("invalid state")]
    InvalidState,
    /// A login code that is unknown, used, expired or whose session ended.
    #[error("invalid login code")]
    CodeInvalid,
    /// The identity is not linked to the caller.
    #[error("identity not linked")]
    NotLinked,
    /// Unlinking would leave the account no way to sign in.
    #[error("last credential")]
    LastCredential,
    /// A limit refused the request.
    #[error(transparent)]
    Limited(#[from] LimitError),
    /// A store or the provider's discovery is unreachable: retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Postgres failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Sessions or tokens failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A bug.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<OAuthFlowError> for ApiError {
    fn from(error: OAuthFlowError) -> Self {
        match error {
            OAuthFlowError::UnknownProvider | OAuthFlowError::NotLinked => {
                Problem::not_found().into()
            }
            OAuthFlowError::RedirectNotAllowed => Problem::bad_request(
                "redirect_uri is not one of the frontend URLs this service may return to.",
            )
            .into(),
            OAuthFlowError::ReturnToNotAllowed => Problem::bad_request(
                "return_to must be a path on this origin, such as /account.",
            )
            .into(),
            OAuthFlowError::InvalidState => Problem::bad_request(
                "The sign-in link is invalid, expired or already used, or was opened in another browser; start again.",
            )
            .into(),
            OAuthFlowError::CodeInvalid => Problem::new(
                http::StatusCode::BAD_REQUEST,
                "code_invalid",
                "Invalid code",
            )
            .with_detail("The login code is unknown, used or expired.")
            .into(),
            OAuthFlowError::LastCredential => Problem::conflict(
                "This is the account's last way to sign in: set a password or link another provider first.",
            )
            .into(),
            OAuthFlowError::Limited(limit) => limit.into(),
            OAuthFlowError::Unavailable(reason) => {
                ApiError::Unavailable(reason.into())
            }
            OAuthFlowError::Database(error) => error.into(),
            OAuthFlowError::Auth(error) => error.into(),
            OAuthFlowError::Internal(reason) => ApiError::Internal(reason.into()),
        }
    }
}
