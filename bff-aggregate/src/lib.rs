//! # bff-aggregate
//!
//! The reason a BFF exists: one frontend request, several backends asked at
//! once, one honest payload back, fast, even when a backend is slow or dead.
//!
//! An [`Aggregate`] runs a tuple of [`Source`]s concurrently under one
//! deadline. Each source is a closure that makes one backend call (gRPC,
//! NATS, HTTP or any future) and is either [required](Source::required) (its
//! value is `T`; if it fails, the whole run fails) or
//! [optional](Source::optional) (its value is `Option<T>`; if it fails, the
//! payload goes out without it). Every run returns a [`Meta`] telling the
//! frontend which sources answered, so partial data is shown as partial:
//!
//! ```
//! use std::time::Duration;
//! use bff_aggregate::{Aggregate, Source, SourceError, Status};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), bff_aggregate::AggregateError> {
//! let profile = Source::required("profile", Duration::from_millis(200), |_call| async {
//!     Ok::<_, SourceError>("Ada")
//! });
//! let offers = Source::optional("offers", Duration::from_millis(50), |_call| async {
//!     // A backend slower than the source's deadline.
//!     tokio::time::sleep(Duration::from_secs(1)).await;
//!     Ok::<_, SourceError>(vec!["10% off"])
//! });
//!
//! let assembled = Aggregate::new(Duration::from_millis(300))
//!     .run((profile, offers))
//!     .await?;
//! let (name, offers) = assembled.parts;
//! assert_eq!(name, "Ada");
//! assert_eq!(offers, None);
//! assert!(!assembled.meta.complete);
//! assert_eq!(assembled.meta.sources["offers"].status, Status::Timeout);
//! # Ok(())
//! # }
//! ```
//!
//! Serialised with serde, the meta is what the frontend contract expects
//! next to the data:
//!
//! ```json
//! {"complete": false,
//!  "sources": {"offers": {"status": "timeout", "duration_ms": 50},
//!              "profile": {"status": "ok", "duration_ms": 0}}}
//! ```
//!
//! ## Deadlines
//!
//! [`Aggregate::new`] takes the whole request's budget; each source has its
//! own, capped by the whole one. A source that has not answered by its
//! deadline is dropped and reported `timeout`, so the run never takes longer
//! than the aggregate's deadline. Each call gets a [`Call`] whose
//! [`remaining`](Call::remaining) time the protocol helpers send to the
//! backend (`grpc-timeout`, the NATS request timeout), so the backend can
//! give up too.
//!
//! ## Failures
//!
//! An optional source that fails, times out or is skipped leaves `None` and
//! its status in the meta (`error`, `timeout`, `skipped`), and a `warn` log
//! with the error. A required one ends the run at once with
//! [`AggregateError::Required`], without waiting for slower sources. The
//! error's meta has the reports of the sources that had ended, and `skipped`
//! for the ones cancelled.
//!
//! ## Cancellation
//!
//! Sources run on the caller's task (as with `tokio::join!`); nothing is
//! spawned. Dropping the future of [`Aggregate::run`] (the client
//! disconnected and the server dropped the handler, or an outer timeout
//! fired) drops every call still in flight, which closes its HTTP/2 stream or
//! connection, so backends stop working for nobody.
//!
//! ## Retries, hedging and breakers
//!
//! - [`Source::retry`] retries [transient](ErrorKind::Transient) errors with
//!   exponential backoff and full jitter while the deadline leaves room.
//! - [`Source::hedge`] starts a second call when the first is slow; the first
//!   success wins.
//! - [`Source::breaker`] puts the source behind a shared [`CircuitBreaker`]
//!   that stops calling a backend after consecutive failures and probes it
//!   again later; meanwhile the source is `skipped` at once.
//!
//! Retries and hedges repeat calls, so use them only for idempotent calls.
//!
//! ## Telemetry
//!
//! Each source runs in an `aggregate.source` span (fields `source`,
//! `required`, `status`, `attempts`), and records the metrics listed in
//! [`describe_metrics`].
//!
//! ## Features
//!
//! - `grpc`: `grpc::request` builds a tonic request carrying the deadline
//!   and the [`Forward`]ed headers; tonic's `Status` maps to [`SourceError`].
//! - `nats`: `nats::request`, a request-reply with the deadline as its
//!   timeout.
//! - `http`: `http::Backend`, a lean pool of HTTP/1.1 connections to one
//!   backend on hyper's connection API, and `http::send` through hyper-util's
//!   general client; both with the deadline and the forwarded headers.
//! - `proxy`: `proxy::Proxy`, a remote-API proxy for browser apps
//!   (`/bff/api/{name}/{path}` to a static table of upstreams, with path
//!   checks, a header allow-list, a token minted per upstream, timeouts and
//!   body limits). It is here rather than in bff-core because this crate
//!   owns the BFF's outbound HTTP; see the module's docs.
//! - `schemars`: JSON schemas for [`Meta`] and its parts.
#![deny(missing_docs, unreachable_pub, unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod aggregate;
mod breaker;
mod error;
mod forward;
mod report;
mod retry;
mod source;

#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "proxy")]
pub mod proxy;

pub use aggregate::{Aggregate, AggregateError, Assembled, Sources};
pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use error::{ErrorKind, SourceError};
pub use forward::Forward;
pub use report::{Meta, SourceReport, Status};
pub use retry::Retry;
pub use source::{Call, Kind, MakeCall, Optional, Required, Source};

/// The metric names, in one place for the code and [`describe_metrics`].
mod metric_names {
    pub(crate) const SOURCE_DURATION: &str = "bff_aggregate_source_duration_seconds";
    pub(crate) const SOURCE_TOTAL: &str = "bff_aggregate_source_total";
    pub(crate) const RETRIES_TOTAL: &str = "bff_aggregate_source_retries_total";
    pub(crate) const HEDGES_TOTAL: &str = "bff_aggregate_source_hedges_total";
    pub(crate) const BREAKER_OPEN: &str = "bff_aggregate_breaker_open";
}

/// Describes this crate's metrics to the installed `metrics` recorder, so
/// exporters can show help text and units. Call it once at startup, after
/// installing the recorder.
///
/// | Metric | Kind | Labels |
/// |---|---|---|
/// | `bff_aggregate_source_duration_seconds` | histogram | `source`, `status` |
/// | `bff_aggregate_source_total` | counter | `source`, `status` |
/// | `bff_aggregate_source_retries_total` | counter | `source` |
/// | `bff_aggregate_source_hedges_total` | counter | `source` |
/// | `bff_aggregate_breaker_open` | gauge (1 open or half-open, 0 closed) | `source` |
pub fn describe_metrics() {
    use metric_names::*;
    metrics::describe_histogram!(
        SOURCE_DURATION,
        metrics::Unit::Seconds,
        "Time each aggregate source took, retries included, by source and final status."
    );
    metrics::describe_counter!(
        SOURCE_TOTAL,
        "Aggregate sources run, by source and final status (ok, timeout, error, skipped)."
    );
    metrics::describe_counter!(
        RETRIES_TOTAL,
        "Retries of aggregate sources after transient errors."
    );
    metrics::describe_counter!(
        HEDGES_TOTAL,
        "Hedge calls started because an aggregate source's first call was slow."
    );
    metrics::describe_gauge!(
        BREAKER_OPEN,
        "Whether the source's circuit breaker is open or half-open (1) or closed (0)."
    );
}
