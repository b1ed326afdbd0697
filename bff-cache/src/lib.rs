//! # bff-cache
//!
//! Two tower layers every BFF needs, both keyed state over the same backends,
//! which is why they live in one crate: a distributed token-bucket rate
//! limiter (`ratelimit`, feature `ratelimit`) and a response cache
//! (`response`, feature `response`). Each backend is in memory (single
//! instance, examples, the fallback) or, with the `redis` feature, in Redis,
//! shared by every instance. Both layers take their keys from [`key`].
//!
//! Features, one per middleware as in tower-http, both on by default; a team
//! that wants one layer takes `default-features = false` and names it:
//!
//! | feature | adds |
//! |---|---|
//! | `ratelimit` (default) | `ratelimit`: `RateLimitLayer`, `MemoryBackend` |
//! | `response` (default) | `response`: `CacheLayer`, `MemoryStore` |
//! | `redis` | the Redis backends of the enabled layers: `RedisBackend`, `RedisStore`, `TieredStore` |
//! | `auth` | `key::UserId`: keys from bff-auth's `Principal` |
//!
//! A limit per client, served the way `ClientIp` needs (the peer's address
//! comes from axum's `ConnectInfo`, so serve with connect info, or with
//! `bff_core::server::serve`, which provides it):
//!
//! ```no_run
//! # #[cfg(feature = "ratelimit")] {
//! use std::net::SocketAddr;
//!
//! use bff_cache::ratelimit::{ClientIp, MemoryBackend, Policy, Quota, RateLimitLayer};
//!
//! # async fn run() -> std::io::Result<()> {
//! let limit = RateLimitLayer::new(MemoryBackend::default())
//!     .policy(Policy::new("per_ip", Quota::per_second(10).with_burst(20), ClientIp::new()));
//! let app = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "hello" }))
//!     .layer(limit);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! // Plain `axum::serve(listener, app)` would give `ClientIp` no address: the
//! // policy would then refuse every request (500, logged at ERROR) rather
//! // than let them all through; see `ratelimit::MissingKey`.
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
//! # }
//! # }
//! ```
#![deny(missing_docs, unreachable_pub, unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod key;
#[cfg(any(feature = "ratelimit", feature = "response"))]
mod macros;
#[cfg(feature = "ratelimit")]
pub mod ratelimit;
#[cfg(feature = "response")]
pub mod response;

/// A boxed, sendable future, as backends and stores return.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;
