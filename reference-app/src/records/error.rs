//! What the records feature fails with, and its one mapping to problem+json.

use bff_core::Problem;
use http::StatusCode;

use crate::http::ApiError;
use crate::users::UserError;

/// Why a record operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// No such live record of the caller's (someone else's included).
    #[error("no such record")]
    NotFound,
    /// `If-Match` names a version the record has moved on from.
    #[error("the record changed since the version in If-Match")]
    PreconditionFailed,
    /// A live record holds the unique value; the detail says which.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The user whose records were asked for.
    #[error(transparent)]
    User(#[from] UserError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl RecordError {
    /// A unique violation (a partial index of live rows) is the client's
    /// conflict, worded by `detail`; anything else stays a database error.
    pub(crate) fn on_unique(detail: &'static str) -> impl Fn(sqlx::Error) -> Self {
        move |error| match &error {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
                Self::Conflict(detail)
            }
            _ => Self::Database(error),
        }
    }
}

impl From<RecordError> for ApiError {
    fn from(error: RecordError) -> Self {
        match error {
            RecordError::NotFound => Problem::not_found().into(),
            RecordError::PreconditionFailed => {
                Problem::from_status(StatusCode::PRECONDITION_FAILED)
                    .with_detail(
                        "The record changed since the version in `If-Match`; read it again.",
                    )
                    .into()
            }
            RecordError::Conflict(detail) => Problem::conflict(detail).into(),
            RecordError::User(error) => error.into(),
            RecordError::Database(error) => error.into(),
        }
    }
}
