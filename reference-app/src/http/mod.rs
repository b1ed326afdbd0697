//! HTTP plumbing every feature shares: the app's one error type and its
//! mapping to problem+json, the extractors of who is calling and from where,
//! OpenAPI helpers, and field validation.
//!
//! Features depend on this module and never on each other's routes; nothing
//! here knows about a feature.

pub(crate) mod canonical;
pub mod config;
pub mod docs;
pub mod error;
pub mod extract;
pub(crate) mod validation;

pub use self::error::{ApiError, ApiResult};
