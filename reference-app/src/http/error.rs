//! The app's one error type and its one mapping to problem+json.

use aide::generate::GenContext;
use aide::openapi::{Operation, Response as OpenApiResponse, StatusCode as OpenApiStatus};
use aide::operation::OperationOutput;
use axum::response::{IntoResponse, Response};
use bff_core::Problem;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A problem the client can act on, already worded for it.
    #[error(transparent)]
    Problem(#[from] Problem),
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Anything else that is a bug on our side.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A backend (the session store) is down: the client may retry.
    #[error("backend unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<bff_auth::session::SessionError> for ApiError {
    fn from(error: bff_auth::session::SessionError) -> Self {
        Self::Unavailable(Box::new(error))
    }
}

impl ApiError {
    /// Wraps an internal failure (logged with the request id, answered as a bare 500).
    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Problem(problem) => problem.into_response(),
            // An outage, a restart or an exhausted server, not a bug: the
            // client may retry.
            Self::Database(error) if crate::db::is_unavailable(&error) => unavailable(&error),
            Self::Unavailable(error) => unavailable(error.as_ref()),
            // Text Postgres cannot store (a NUL character) that a field check
            // let through: the client's input, never a 500.
            Self::Database(sqlx::Error::Database(db))
                if matches!(db.code().as_deref(), Some("22021" | "22P05")) =>
            {
                Problem::validation(Vec::new())
                    .with_detail(
                        "The request contains characters that cannot be stored, such as NUL.",
                    )
                    .into_response()
            }
            Self::Database(error) => Problem::internal(&error).into_response(),
            Self::Internal(error) => Problem::internal(error.as_ref()).into_response(),
        }
    }
}

/// An outage, not a bug: logged, and answered 503 with `Retry-After`.
fn unavailable(error: &(dyn std::error::Error + 'static)) -> Response {
    tracing::error!(
        request_id = bff_core::RequestId::current().as_ref().map(bff_core::RequestId::as_str),
        error = %bff_core::problem::ErrorChain(error),
        "backend unavailable"
    );
    Problem::unavailable("The service is temporarily unavailable; try again shortly.")
        .with_header(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        )
        .into_response()
}

impl OperationOutput for ApiError {
    type Inner = Problem;

    fn operation_response(
        ctx: &mut GenContext,
        operation: &mut Operation,
    ) -> Option<OpenApiResponse> {
        Problem::operation_response(ctx, operation)
    }

    fn inferred_responses(
        ctx: &mut GenContext,
        operation: &mut Operation,
    ) -> Vec<(Option<OpenApiStatus>, OpenApiResponse)> {
        Problem::inferred_responses(ctx, operation)
    }
}

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
