//! What the dashboard fails with, and its one mapping to problem+json.

use bff_aggregate::{AggregateError, Meta};
use bff_core::Problem;
use http::{HeaderValue, header};

use crate::http::ApiError;

/// Why there is no dashboard.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DashboardError {
    /// The required profile could not be read; `meta` says how each source fared.
    #[error("the profile could not be read")]
    ProfileUnavailable(Box<Meta>),
    /// The caller's account no longer exists.
    #[error("the account no longer exists")]
    AccountGone,
    /// The aggregation failed otherwise (a bug).
    #[error(transparent)]
    Aggregate(AggregateError),
}

impl From<DashboardError> for ApiError {
    fn from(error: DashboardError) -> Self {
        match error {
            DashboardError::ProfileUnavailable(meta) => {
                Problem::unavailable("Your profile could not be read; try again shortly.")
                    .with_extension(
                        "sources",
                        serde_json::to_value(&meta.sources).unwrap_or_default(),
                    )
                    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
                    .into()
            }
            DashboardError::AccountGone => Problem::unauthorized()
                .with_detail("The account no longer exists.")
                .into(),
            DashboardError::Aggregate(error) => ApiError::internal(error),
        }
    }
}
