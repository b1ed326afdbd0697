//! # bff-core
//!
//! The foundation every service of the BFF framework stands on, usable by any
//! axum or tower service on its own:
//!
//! - [`problem`]: RFC 9457 problem+json errors, the one error shape of the API;
//! - [`error_layer`]: every error response a problem, panics a 500 problem;
//! - [`refusal`]: what a layer answers when it refuses a request itself
//!   (problem+json for HTTP callers, a `grpc-status` for gRPC ones), on any
//!   body type;
//! - [`request_id`]: `X-Request-Id`, echoed when sane and generated otherwise;
//! - [`metrics`]: Prometheus request metrics by route template;
//! - [`health`]: liveness and readiness with pluggable checks (Postgres, Redis and
//!   NATS behind the `postgres`, `redis` and `nats` features);
//! - [`security_headers`]: `nosniff`, a restrictive CSP, no referrer, no framing
//!   and `no-store` on every response that does not say otherwise;
//! - [`server`]: serving with bounded graceful shutdown on SIGINT/SIGTERM;
//! - [`stack`]: all of the above, plus body limit, timeout and CORS, in one call;
//! - [`extract`] and [`pagination`]: JSON and query extractors with per-field
//!   problems, and cursor pagination;
//! - [`openapi`]: the OpenAPI 3.1 document and an offline Swagger UI;
//! - [`telemetry`]: pretty or JSON logs filtered by `RUST_LOG`.
//!
//! ```
//! use aide::axum::ApiRouter;
//! use aide::openapi::OpenApi;
//! use bff_core::{health, openapi, stack};
//!
//! let docs = openapi::ApiDocs::new();
//! let mut api = OpenApi::default();
//! let router = ApiRouter::<()>::new()
//!     .merge(health::routes(health::Readiness::new()))
//!     .merge(openapi::routes(docs.clone()))
//!     .fallback(stack::not_found)
//!     .finish_api(&mut api);
//! docs.publish(&api).expect("serialisable");
//! let app = stack::apply(router, &stack::HttpConfig::default());
//! # let _ = app;
//! ```
#![deny(missing_docs, unreachable_pub, unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod macros;

pub mod error_layer;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod problem;
pub mod refusal;
pub mod request_id;
pub mod security_headers;
pub mod server;
pub mod stack;
pub mod telemetry;

pub use problem::{FieldError, Problem};
pub use request_id::RequestId;
