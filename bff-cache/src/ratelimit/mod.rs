//! Token-bucket rate limiting with GCRA (the generic cell rate algorithm), as
//! a tower layer.
//!
//! ```no_run
//! use std::net::SocketAddr;
//!
//! use bff_cache::ratelimit::{ClientIp, MemoryBackend, Policy, Quota, RateLimitLayer};
//!
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! let limit = RateLimitLayer::new(MemoryBackend::default())
//!     .policy(Policy::new("per_ip", Quota::per_minute(100), ClientIp::new()));
//! let app: axum::Router = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "hello" }))
//!     .layer(limit);
//!
//! // `ClientIp` reads the peer's address from axum's `ConnectInfo`, which
//! // only a server started with connect info provides (so does
//! // `bff_core::server::serve`). Without it every request has no key, and
//! // the policy refuses it (a 500, logged at ERROR): see `MissingKey`.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
//! # }
//! ```
//!
//! A request none of whose keys a policy finds is refused by default
//! ([`MissingKey::Refuse`]): a limit that silently let such requests through
//! would protect nothing. A policy meant for some requests only (a per-user
//! limit where anonymous callers exist) says so with
//! [`Policy::on_missing_key`]`(`[`MissingKey::Skip`]`)`.
//!
//! [`RateLimitLayer`] counts each request against its [`Policy`]s, each a
//! [`Quota`] per key (a client's address, a user, a route: see
//! [`crate::key`]), in a [`Backend`]: [`MemoryBackend`] in this process or,
//! with the `redis` feature, `RedisBackend` shared by every instance. It works
//! on any `http::Request<B>` and any response body (axum, tonic, bare hyper):
//! its refusals are [`ResponseBody`]s of its own, 429 (or 503 when the backend
//! cannot decide) as problem+json for HTTP callers, `RESOURCE_EXHAUSTED` (or
//! `UNAVAILABLE`) as a `grpc-status` for gRPC ones (see [`bff_core::refusal`]).
//!
//! The parts, as in tower-http: [`RateLimitLayer`] and [`Policy`] (`layer.rs`),
//! the [`RateLimit`] service (`service.rs`), its [`ResponseFuture`]
//! (`future.rs`), and the headers and 429 a decision becomes (`headers.rs`).
//!
//! GCRA keeps one number per key: the theoretical arrival time (TAT) of the
//! next request if requests came exactly at the allowed rate. A request is
//! allowed while the TAT is less than `burst` emission intervals ahead of now;
//! allowing it moves the TAT one interval further. That is a token bucket of
//! `burst` tokens refilled at the quota's rate, kept in a single value, so a
//! decision is one compare and one write: in memory under a shard lock, in
//! Redis as one atomic script.
//!
//! ```
//! use std::time::Duration;
//! use bff_cache::ratelimit::{Quota, gcra};
//!
//! // 10 requests per second, bursts of up to 10.
//! let quota = Quota::per_second(10);
//! let mut tat = 0;
//! let now = 1_000_000_000; // ns
//! for _ in 0..10 {
//!     let (decision, next) = gcra(&quota, tat, now);
//!     assert!(decision.allowed);
//!     tat = next;
//! }
//! let (decision, _) = gcra(&quota, tat, now);
//! assert!(!decision.allowed);
//! assert_eq!(decision.retry_after, Duration::from_millis(100));
//! ```

mod future;
mod headers;
mod layer;
mod memory;
#[cfg(feature = "redis")]
mod redis_backend;
mod service;

use std::sync::Arc;
use std::time::Duration;

pub use bff_core::refusal::ResponseBody;

// What a limit counts: re-exported from `crate::key`, which the response cache
// shares.
#[cfg(feature = "auth")]
pub use crate::key::UserId;
pub use crate::key::{ClientIp, KeyExtractor, RequestInfo, Route, from_fn, ip_key};

pub use self::future::{Decisions, ResponseFuture};
pub use self::headers::rejection;
pub use self::layer::{MissingKey, Policy, RateLimitLayer};
pub use self::memory::MemoryBackend;
#[cfg(feature = "redis")]
pub use self::redis_backend::{OnRedisError, RedisBackend};
pub use self::service::RateLimit;
use crate::BoxFuture;

/// How many requests a key may make: `count` per `period`, with bursts of up
/// to `burst` (by default `count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    count: u32,
    period: Duration,
    burst: u32,
}

impl Quota {
    /// `count` requests per `period` (at least 1 and a positive period).
    pub fn new(count: u32, period: Duration) -> Self {
        let count = count.max(1);
        Self {
            count,
            period: period.max(Duration::from_nanos(1)),
            burst: count,
        }
    }

    /// `count` per second.
    pub fn per_second(count: u32) -> Self {
        Self::new(count, Duration::from_secs(1))
    }

    /// `count` per minute.
    pub fn per_minute(count: u32) -> Self {
        Self::new(count, Duration::from_secs(60))
    }

    /// `count` per hour.
    pub fn per_hour(count: u32) -> Self {
        Self::new(count, Duration::from_secs(3600))
    }

    /// Allows bursts of `burst` requests (at least 1).
    #[must_use]
    pub fn with_burst(mut self, burst: u32) -> Self {
        self.burst = burst.max(1);
        self
    }

    /// Requests per period.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The largest burst.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Time between two requests at the steady rate, in nanoseconds (at least 1).
    pub fn emission_interval_ns(&self) -> u64 {
        let period = u64::try_from(self.period.as_nanos()).unwrap_or(u64::MAX);
        (period / u64::from(self.count)).max(1)
    }
}

/// The outcome of one request against one quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go ahead.
    pub allowed: bool,
    /// Requests still allowed right now.
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset: Duration,
    /// When a refused request may succeed (zero when allowed).
    pub retry_after: Duration,
}

/// One GCRA decision: the quota, the key's stored TAT and the time, all in
/// nanoseconds on one clock. Returns the decision and the TAT to store (the
/// unchanged one when refused).
pub fn gcra(quota: &Quota, tat: u64, now: u64) -> (Decision, u64) {
    let interval = quota.emission_interval_ns();
    let capacity = interval.saturating_mul(u64::from(quota.burst));
    let tat = tat.max(now);
    let new_tat = tat.saturating_add(interval);
    let ahead = new_tat - now;
    if ahead > capacity {
        let decision = Decision {
            allowed: false,
            remaining: 0,
            reset: Duration::from_nanos(tat - now),
            retry_after: Duration::from_nanos(ahead - capacity),
        };
        return (decision, tat);
    }
    let remaining = u32::try_from((capacity - ahead) / interval).unwrap_or(u32::MAX);
    let decision = Decision {
        allowed: true,
        remaining,
        reset: Duration::from_nanos(ahead),
        retry_after: Duration::ZERO,
    };
    (decision, new_tat)
}

/// Why a backend could not decide.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// The shared store failed.
    #[error("rate-limit store unavailable")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where the limiter keeps its state.
pub trait Backend: Send + Sync + 'static {
    /// Decides one request of `key` against `quota`.
    fn check<'a>(
        &'a self,
        key: &'a str,
        quota: &'a Quota,
    ) -> BoxFuture<'a, Result<Decision, RateLimitError>>;
}

impl<B: Backend + ?Sized> Backend for Arc<B> {
    fn check<'a>(
        &'a self,
        key: &'a str,
        quota: &'a Quota,
    ) -> BoxFuture<'a, Result<Decision, RateLimitError>> {
        (**self).check(key, quota)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn exact_token_accounting() {
        let quota = Quota::per_second(5).with_burst(3);
        let now = 10 * SECOND;
        let mut tat = 0;
        for remaining in [2, 1, 0] {
            let (decision, next) = gcra(&quota, tat, now);
            assert!(decision.allowed);
            assert_eq!(decision.remaining, remaining);
            tat = next;
        }
        let (refused, unchanged) = gcra(&quota, tat, now);
        assert!(!refused.allowed);
        assert_eq!(unchanged, tat, "a refusal costs nothing");
        assert_eq!(refused.retry_after, Duration::from_millis(200));
        // One interval later, exactly one more.
        let later = now + SECOND / 5;
        let (decision, next) = gcra(&quota, tat, later);
        assert!(decision.allowed);
        assert_eq!(decision.remaining, 0);
        assert!(!gcra(&quota, next, later).0.allowed);
    }

    #[test]
    fn an_idle_key_refills_to_the_burst_and_no_further() {
        let quota = Quota::per_minute(60).with_burst(10);
        let (decision, _) = gcra(&quota, 5 * SECOND, 1_000 * SECOND);
        assert!(decision.allowed);
        assert_eq!(decision.remaining, 9);
        assert_eq!(decision.reset, Duration::from_secs(1));
    }
}
