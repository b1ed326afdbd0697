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
