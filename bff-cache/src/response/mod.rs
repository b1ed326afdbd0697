//! A response cache for `GET` and `HEAD`, as a tower layer.
//!
//! ```
//! use std::time::Duration;
//! use bff_cache::response::{CacheLayer, MemoryStore};
//! use tower::ServiceBuilder;
//!
//! let cache = CacheLayer::new("currencies", MemoryStore::new(16 * 1024 * 1024))
//!     .ttl(Duration::from_secs(60))
//!     .tags(|_request, _user| vec!["currencies".to_owned()]);
//! let app: axum::Router = axum::Router::new()
//!     .route("/currencies", axum::routing::get(|| async { "[\"EUR\"]" }))
//!     .layer(ServiceBuilder::new().layer(cache));
//! ```
//!
//! - **Key**: the cache's name, the path, the query with its parameters sorted,
//!   the values of the `Vary` headers the cache is told about, and, for a
//!   per-user cache, the user. A request with `Authorization` is never served
//!   a shared entry: without a per-user key it bypasses the cache.
//! - **Honours the handler**: only 200s are stored; `Cache-Control: no-store`
//!   is never stored, `private` only in a per-user cache, and a response that
//!   sets a cookie never.
//! - **Stampedes**: concurrent misses for one key wait for a single origin call
//!   in this process, and, with a shared store, for a short lock across
//!   instances.
//! - **Validation**: every entry has a strong `ETag`; `If-None-Match` with it
//!   is answered 304.
//! - **Tags**: an entry records the versions of its tags (say `user:42`);
//!   [`Invalidator::invalidate`] bumps a tag's version, so the next read of
//!   every entry carrying it, on every instance sharing the store, misses.
//! - `X-Cache: HIT`, `MISS` or `BYPASS` on every answer, and
//!   `bff_cache_requests_total{cache,outcome}` for the hit ratio.
//! - A failing store is logged (once per outage) and the origin answers.
//!
//! The parts, as in tower-http: [`CacheLayer`] (`layer.rs`) holds the
//! settings and the state shared by its services, [`Cache`] (`service.rs`) is
//! the service and [`ResponseFuture`] (`future.rs`) its future; what is stored
//! and how it is replayed is in `rules.rs`, the stores in `store.rs` and
//! `redis_store.rs`.

mod future;
#[allow(clippy::module_inception)]
mod layer;
#[cfg(feature = "redis")]
mod redis_store;
mod rules;
mod service;
mod store;

pub use self::future::ResponseFuture;
pub use self::layer::{CacheLayer, Invalidator};
#[cfg(feature = "redis")]
pub use self::redis_store::{RedisStore, TieredStore};
pub use self::service::Cache;
pub use self::store::{CacheError, CacheStore, Entry, MemoryStore};
