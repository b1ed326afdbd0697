//! What the users feature fails with, and its one mapping to problem+json.

use bff_core::Problem;

use crate::http::ApiError;

/// Why a user operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// No such live user.
    #[error("no such user")]
    NotFound,
    /// The caller's own account is gone or blocked since its token was issued.
    #[error("the caller's account no longer exists or is blocked")]
    AccountGone,
    /// Admins do not act on their own account.
    #[error("an action on one's own account")]
    OwnAccount,
    /// The caller's current role (not the token's) does not allow it.
    #[error("the caller's role does not allow this")]
    RoleForbids,
    /// The target's role is above the caller's.
    #[error("the target's role is above the caller's")]
    TargetAbove,
    /// The new role is above the caller's.
    #[error("a grant above the caller's role")]
    GrantAbove,
    /// The session store could not end the user's sessions.
    #[error(transparent)]
    Sessions(#[from] bff_auth::session::SessionError),
    /// The login guard's store failed.
    #[error(transparent)]
    Guard(#[from] crate::limits::LimitError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        let forbidden = |detail: &str| Problem::forbidden().with_detail(detail).into();
        match error {
            UserError::NotFound => Problem::not_found().into(),
            UserError::AccountGone => Problem::unauthorized().into(),
            UserError::OwnAccount => forbidden("You cannot do this to your own account."),
            UserError::RoleForbids => forbidden("Your role does not allow this."),
            UserError::TargetAbove => {
                forbidden("You cannot act on someone whose role is above yours.")
            }
            UserError::GrantAbove => forbidden("Nobody grants a role above their own."),
            UserError::Sessions(error) => error.into(),
            UserError::Guard(error) => error.into(),
            UserError::Database(error) => error.into(),
        }
    }
}
