//! [`CacheLayer`]: the settings, and the state its services share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::Response;
use http::header::{HeaderName, HeaderValue};
use tower::Layer;

use super::Cache;
use super::rules::respond;
use super::store::{CacheError, CacheStore, Entry};
use crate::key::{KeyExtractor, RequestInfo};

/// Tags of a request: from the request and the per-user key, if any.
type TagFn = dyn Fn(&RequestInfo<'_>, Option<&str>) -> Vec<String> + Send + Sync;

/// How long one instance's fill lock holds other instances off.
pub(super) const LOCK_TTL: Duration = Duration::from_secs(5);
/// How long a miss waits, by default, for another request's fill of the same
/// key before calling the origin itself.
const LOCK_WAIT: Duration = Duration::from_secs(2);

pub(super) struct Shared {
    pub(super) name: String,
    pub(super) store: Arc<dyn CacheStore>,
    pub(super) ttl: Duration,
    pub(super) vary: Vec<HeaderName>,
    pub(super) user: Option<Arc<dyn KeyExtractor>>,
    pub(super) tags: Option<Arc<TagFn>>,
    pub(super) max_body: usize,
    pub(super) lock_wait: Duration,
    pub(super) fills: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub(super) failing: AtomicBool,
}

/// Caches `GET` and `HEAD` responses; see the [module docs](super).
#[derive(Clone)]
pub struct CacheLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLayer")
            .field("name", &self.shared.name)
            .field("ttl", &self.shared.ttl)
            .finish_non_exhaustive()
    }
}

impl CacheLayer {
    /// A cache named `name` (part of every key, and the metrics label) in
    /// `store`, with a TTL of 30 s.
    pub fn new(name: &str, store: impl CacheStore) -> Self {
        Self {
            shared: Arc::new(Shared {
                name: name.to_owned(),
                store: Arc::new(store),
                ttl: Duration::from_secs(30),
                vary: Vec::new(),
                user: None,
                tags: None,
                max_body: 1024 * 1024,
                lock_wait: LOCK_WAIT,
                fills: Mutex::new(HashMap::new()),
                failing: AtomicBool::new(false),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            f(shared);
        }
        self
    }

    /// How long entries live.
    #[must_use]
    pub fn ttl(self, ttl: Duration) -> Self {
        self.edit(|s| s.ttl = ttl)
    }

    /// A request header whose value selects the representation (`Accept-Language`).
    #[must_use]
    pub fn vary(self, header: HeaderName) -> Self {
        self.edit(|s| s.vary.push(header))
    }

    /// Caches per user, the user being what `key` extracts; requests it finds
    /// no user in bypass the cache.
    #[must_use]
    pub fn per_user(self, key: impl KeyExtractor) -> Self {
        self.edit(|s| s.user = Some(Arc::new(key)))
    }

    /// The tags of an entry, from the request and the user.
    #[must_use]
    pub fn tags<F>(self, tags: F) -> Self
    where
        F: Fn(&RequestInfo<'_>, Option<&str>) -> Vec<String> + Send + Sync + 'static,
    {
        self.edit(|s| s.tags = Some(Arc::new(tags)))
    }

    /// Largest body stored (default 1 MiB); larger ones are served, not kept.
    #[must_use]
    pub fn max_body(self, bytes: usize) -> Self {
        self.edit(|s| s.max_body = bytes)
    }

    /// How long a miss waits for a fill of the same key already under way (in
    /// this process, or on another instance through a shared store) before it
    /// calls the origin itself; 2 s by default. Waiting saves origin calls when
    /// the answer will be stored; for answers that are often not stored (a
    /// partial aggregate) or that have a deadline of their own, a short wait or
    /// none keeps a duplicate request from taking twice as long.
    #[must_use]
    pub fn lock_wait(self, wait: Duration) -> Self {
        self.edit(|s| s.lock_wait = wait)
    }

    /// Invalidates this cache's tags (and those of any cache on the same store).
    pub fn invalidator(&self) -> Invalidator {
        Invalidator {
            store: Arc::clone(&self.shared.store),
        }
    }
}

/// Makes tagged entries stale.
#[derive(Clone)]
pub struct Invalidator {
    store: Arc<dyn CacheStore>,
}

impl std::fmt::Debug for Invalidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Invalidator")
    }
}

impl Invalidator {
    /// An invalidator of `store`'s tags.
    pub fn new(store: Arc<dyn CacheStore>) -> Self {
        Self { store }
    }

    /// Makes every entry tagged `tag` stale; the next read of it misses.
    pub async fn invalidate(&self, tag: &str) -> Result<(), CacheError> {
        self.store.invalidate(tag).await
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cache::new(inner, Arc::clone(&self.shared))
    }
}

impl Shared {
    pub(super) fn count(&self, outcome: &'static str) {
        metrics::counter!("bff_cache_requests_total", "cache" => self.name.clone(), "outcome" => outcome).increment(1);
    }

    pub(super) fn store_failed(&self, error: &CacheError) {
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, cache = %self.name, "response cache store unavailable; serving from the origin");
        }
    }

    pub(super) fn store_ok(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(cache = %self.name, "response cache store is back");
        }
    }

    /// Serves `entry`, counted as a hit.
    pub(super) fn hit(
        &self,
        entry: &Entry,
        if_none_match: Option<&HeaderValue>,
        head: bool,
    ) -> Response {
        self.count("hit");
        respond(entry, "HIT", if_none_match, head)
    }

    /// Passes the origin's `response` on, counted and marked as `MISS` or `BYPASS`.
    pub(super) fn passed(&self, mut response: Response, outcome: &'static str) -> Response {
        self.count(if outcome == "BYPASS" {
            "bypass"
        } else {
            "miss"
        });
        response
            .headers_mut()
            .insert("x-cache", HeaderValue::from_static(outcome));
        response
    }

    /// A fresh, current entry for `key`, or `None`.
    pub(super) async fn lookup(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        self.store.lookup(key).await
    }

    pub(super) fn fill_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut fills = self
            .fills
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Locks nobody holds or waits for are dropped as we go.
        fills.retain(|_, lock| Arc::strong_count(lock) > 1);
        Arc::clone(fills.entry(key.to_owned()).or_default())
    }
}
