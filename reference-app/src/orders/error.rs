//! What the BFF's orders endpoints fail with, and their one mapping to
//! problem+json: how a gRPC status of the orders service reads to an HTTP client.

use bff_core::Problem;
use bff_core::problem::FieldError;
use tonic::{Code, Status};

use super::client::MalformedOrder;
use super::service::FIELD_METADATA;
use crate::currencies::CurrencyError;
use crate::http::ApiError;

/// Why an orders call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrdersError {
    /// Fields of the order are invalid; each is named.
    #[error("invalid order")]
    Invalid(Vec<FieldError>),
    /// The currency is not a supported one.
    #[error("unsupported currency")]
    UnsupportedCurrency,
    /// The currencies could not be read.
    #[error(transparent)]
    Currency(#[from] CurrencyError),
    /// The orders service answered with an error status.
    #[error("the orders service answered {}", .0.code())]
    Status(#[from] Status),
    /// The orders service answered something unreadable.
    #[error(transparent)]
    Malformed(#[from] MalformedOrder),
    /// A bug or a broken key on our side.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl OrdersError {
    /// Wraps a failure that is a bug or a broken key on our side.
    pub(crate) fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }
}

impl From<OrdersError> for ApiError {
    fn from(error: OrdersError) -> Self {
        match error {
            OrdersError::Invalid(errors) => Problem::validation(errors).into(),
            OrdersError::UnsupportedCurrency => {
                Problem::invalid_field("currency", "is not a supported ISO 4217 currency").into()
            }
            OrdersError::Currency(error) => error.into(),
            OrdersError::Status(status) => from_status(status),
            OrdersError::Malformed(error) => ApiError::internal(error),
            OrdersError::Internal(error) => ApiError::Internal(error),
        }
    }
}

/// What a gRPC status from the orders service means to an HTTP client.
fn from_status(status: Status) -> ApiError {
    match status.code() {
        Code::NotFound => Problem::not_found().into(),
        Code::InvalidArgument => {
            let field = status
                .metadata()
                .get(FIELD_METADATA)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("body");
            Problem::invalid_field(field, status.message()).into()
        }
        Code::AlreadyExists => {
            Problem::conflict("The `Idempotency-Key` was used for another order.").into()
        }
        // The BFF verified the token with the same keys a moment ago, so a
        // refusal means the two disagree on issuer, audience or keys: a
        // misconfiguration to log, not a reason for the client to log in again.
        Code::Unauthenticated => ApiError::internal(OrdersFailed(status)),
        Code::PermissionDenied => Problem::forbidden().into(),
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Cancelled
        | Code::Aborted => ApiError::Unavailable(Box::new(OrdersUnavailable(status))),
        _ => ApiError::internal(OrdersFailed(status)),
    }
}

/// The orders service could not be reached or did not answer in time.
#[derive(Debug, thiserror::Error)]
#[error("the orders service is unavailable: {0}")]
struct OrdersUnavailable(Status);

/// The orders service failed.
#[derive(Debug, thiserror::Error)]
#[error("the orders service failed: {0}")]
struct OrdersFailed(Status);
