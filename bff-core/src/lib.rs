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
//! - [`metrics`]: request metrics by route template (the `metrics` facade), and
//!   the Prometheus exporter behind the `prometheus` feature;
//! - [`security_headers`]: `nosniff`, a restrictive CSP, no referrer, no framing
//!   and `no-store` on every response that does not say otherwise;
//! - [`extract`] and [`pagination`]: JSON and query extractors with per-field
//!   problems, and cursor pagination;
//! - `server` (feature `server`, default): serving with bounded graceful
//!   shutdown on SIGINT/SIGTERM;
//! - `stack` (feature `stack`, default): the layers above, plus body limit,
//!   timeout, CORS and tracing, in one call;
//! - `health` (feature `health`): liveness and readiness with pluggable checks
//!   (Postgres, Redis and NATS behind the `postgres`, `redis` and `nats`
//!   features);
//! - `openapi` (feature `openapi`): the OpenAPI 3.1 document and an offline
//!   Swagger UI, and the JSON schemas and aide documentation of the types
//!   above;
//! - `telemetry` (feature `telemetry`): pretty or JSON logs filtered by `RUST_LOG`.
//!
//! # Features
//!
//! A plain `bff-core` dependency builds the problem type, the layers, the
//! extractors, `server` and `stack`, and none of aide, schemars, the Prometheus
//! exporter or tracing-subscriber, so a crate that only needs the problem type
//! or one layer pays little for it (`default-features = false` drops the
//! server and the stack too).
//!
//! | feature | default | what it adds | dependencies |
//! | --- | --- | --- | --- |
//! | `server` | yes | `server::serve` | hyper, hyper-util |
//! | `stack` | yes | `stack::apply` | tower-http |
//! | `openapi` | | the `openapi` module; `JsonSchema` and aide impls of `Problem`, `extract` and `pagination`; `health::routes` and `metrics::routes` with the features below | aide, schemars |
//! | `prometheus` | | `metrics::install_recorder`, `metrics::PrometheusHandle`, `metrics::routes` (with `openapi`) | metrics-exporter-prometheus |
//! | `telemetry` | | `telemetry::init` | tracing-subscriber |
//! | `health` | | the `health` module | |
//! | `redis-client` | | `redis_client::RedisConnection`: a single Redis node or a cluster | redis |
//! | `redis-testing` | | `redis_client::testing` and `redis_tests!`: store tests on a node and on a local cluster | redis |
//! | `postgres`, `redis`, `nats` | | the drivers' readiness checks (and `health`; `redis` also `redis-client`) | sqlx, redis, async-nats |
//! | `full` | | all of the above but the drivers | |
//!
//! ```
//! use axum::{Router, routing::get};
//! use bff_core::{Problem, stack};
//!
//! async fn missing() -> Result<&'static str, Problem> {
//!     Err(Problem::not_found())
//! }
//!
//! let router: Router = Router::new()
//!     .route("/missing", get(missing))
//!     .fallback(stack::not_found);
//! let app = stack::apply(router, &stack::HttpConfig::default());
//! # let _ = app;
//! ```
//!
//! With `features = ["full"]` (here `openapi` and `health` are needed), the
//! routes document themselves in the OpenAPI document:
//!
//! ```
//! # #[cfg(all(feature = "openapi", feature = "health", feature = "stack"))] {
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
//! # }
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
#[cfg(feature = "health")]
#[cfg_attr(docsrs, doc(cfg(feature = "health")))]
pub mod health;
pub mod metrics;
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub mod openapi;
pub mod pagination;
pub mod problem;
#[cfg(feature = "redis-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis-client")))]
pub mod redis_client;
pub mod refusal;
pub mod request_id;
pub mod security_headers;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod server;
#[cfg(feature = "stack")]
#[cfg_attr(docsrs, doc(cfg(feature = "stack")))]
pub mod stack;
#[cfg(feature = "telemetry")]
#[cfg_attr(docsrs, doc(cfg(feature = "telemetry")))]
pub mod telemetry;

pub use problem::{FieldError, Problem};
pub use request_id::RequestId;
