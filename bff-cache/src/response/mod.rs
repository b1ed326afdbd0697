//! A response cache for `GET` and `HEAD`, as a tower layer.
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
//! ```
//! use std::time::Duration;
//! use bff_cache::response::{CacheLayer, MemoryStore};
//!
//! let cache = CacheLayer::new("currencies", MemoryStore::new(16 * 1024 * 1024))
//!     .ttl(Duration::from_secs(60))
//!     .tags(|_request, _user| vec!["currencies".to_owned()]);
//! let app: axum::Router = axum::Router::new()
//!     .route("/currencies", axum::routing::get(|| async { "[\"EUR\"]" }))
//!     .layer(cache);
//! ```

#[cfg(feature = "redis")]
mod redis_store;
mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bff_core::Problem;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tower::{Layer, Service};

#[cfg(feature = "redis")]
pub use redis_store::{RedisStore, TieredStore};
pub use store::{CacheError, CacheStore, Entry, MemoryStore};

use crate::ratelimit::{BoxFuture, KeyExtractor, RequestInfo};

/// Tags of a request: from the request and the per-user key, if any.
type TagFn = dyn Fn(&RequestInfo<'_>, Option<&str>) -> Vec<String> + Send + Sync;

/// How long one instance's fill lock holds other instances off.
const LOCK_TTL: Duration = Duration::from_secs(5);
/// How long a miss waits, by default, for another request's fill of the same
/// key before calling the origin itself.
const LOCK_WAIT: Duration = Duration::from_secs(2);

struct Shared {
    name: String,
    store: Arc<dyn CacheStore>,
    ttl: Duration,
    vary: Vec<HeaderName>,
    user: Option<Arc<dyn KeyExtractor>>,
    tags: Option<Arc<TagFn>>,
    max_body: usize,
    lock_wait: Duration,
    fills: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    failing: AtomicBool,
}

/// Caches `GET` and `HEAD` responses; see the [module docs](self).
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
    type Service = CacheService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CacheService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service of [`CacheLayer`].
#[derive(Clone)]
pub struct CacheService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> CacheService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for CacheService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheService")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .finish()
    }
}

/// Headers that describe one exchange rather than the representation.
fn replayable(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "content-length"
            | "date"
            | "etag"
            | "x-cache"
            | "x-request-id"
            | "ratelimit"
            | "ratelimit-policy"
            | "retry-after"
            | "set-cookie"
    )
}

fn cache_key(shared: &Shared, info: &RequestInfo<'_>, user: Option<&str>) -> String {
    let mut params: Vec<&str> = info
        .uri
        .query()
        .map(|q| q.split('&').filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    // By name only, and stably: repeated parameters keep their order, which
    // a handler may depend on.
    params.sort_by_key(|p| p.split('=').next().unwrap_or(""));
    let mut key = format!(
        "{}|{}?{}",
        escape(&shared.name),
        escape(info.uri.path()),
        escape(&params.join("&"))
    );
    for header in &shared.vary {
        let value = info
            .headers
            .get(header)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        key.push('|');
        key.push_str(&escape(value));
    }
    if let Some(user) = user {
        key.push_str("|u=");
        key.push_str(&escape(user));
    }
    // Long keys (big queries) are hashed so stores see bounded keys.
    if key.len() > 200 {
        format!("{}|{}", shared.name, hex(&Sha256::digest(key.as_bytes())))
    } else {
        key
    }
}

/// Parts of a key with the separator escaped, so no two requests share a key.
fn escape(part: &str) -> std::borrow::Cow<'_, str> {
    if part.contains(['|', '%']) {
        part.replace('%', "%25").replace('|', "%7C").into()
    } else {
        part.into()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", hex(&Sha256::digest(body)[..16]))
}

fn matches_etag(if_none_match: Option<&HeaderValue>, etag: &str) -> bool {
    if_none_match
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t == etag)
        })
}

fn respond(
    entry: &Entry,
    outcome: &'static str,
    if_none_match: Option<&HeaderValue>,
    head: bool,
) -> Response {
    let not_modified = matches_etag(if_none_match, &entry.etag);
    let body = if not_modified || head {
        Body::empty()
    } else {
        Body::from(entry.body.clone())
    };
    let mut response = Response::new(body);
    *response.status_mut() = if not_modified {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::from_u16(entry.status).unwrap_or(StatusCode::OK)
    };
    for (name, value) in &entry.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    if let Ok(etag) = HeaderValue::from_str(&entry.etag) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    if head && !not_modified {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(entry.body.len()));
    }
    response
        .headers_mut()
        .insert("x-cache", HeaderValue::from_static(outcome));
    response
}

impl Shared {
    fn count(&self, outcome: &'static str) {
        metrics::counter!("bff_cache_requests_total", "cache" => self.name.clone(), "outcome" => outcome).increment(1);
    }

    fn store_failed(&self, error: &CacheError) {
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, cache = %self.name, "response cache store unavailable; serving from the origin");
        }
    }

    fn store_ok(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(cache = %self.name, "response cache store is back");
        }
    }

    /// Serves `entry`, counted as a hit.
    fn hit(&self, entry: &Entry, if_none_match: Option<&HeaderValue>, head: bool) -> Response {
        self.count("hit");
        respond(entry, "HIT", if_none_match, head)
    }

    /// Passes the origin's `response` on, counted and marked as `MISS` or `BYPASS`.
    fn passed(&self, mut response: Response, outcome: &'static str) -> Response {
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
    async fn lookup(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        self.store.lookup(key).await
    }

    fn fill_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut fills = self
            .fills
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Locks nobody holds or waits for are dropped as we go.
        fills.retain(|_, lock| Arc::strong_count(lock) > 1);
        Arc::clone(fills.entry(key.to_owned()).or_default())
    }
}

/// Whether the handler allows storing its response here.
fn storable(response: &Response, per_user: bool, vary: &[HeaderName]) -> bool {
    if response.status() != StatusCode::OK || response.headers().contains_key(header::SET_COOKIE) {
        return false;
    }
    // A variation the cache was not told about would be served to the wrong
    // requests.
    let unknown_vary = response
        .headers()
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .any(|v| v == "*" || !vary.iter().any(|h| h.as_str().eq_ignore_ascii_case(v)));
    if unknown_vary {
        return false;
    }
    let directives = response
        .headers()
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect::<Vec<_>>();
    !directives.iter().any(|d| d == "no-store")
        && (per_user || !directives.iter().any(|d| d == "private"))
}

impl<S> Service<Request<Body>> for CacheService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let head = req.method() == Method::HEAD;
            if req.method() != Method::GET && !head {
                return inner.call(req).await;
            }
            let info = RequestInfo {
                method: req.method(),
                uri: req.uri(),
                headers: req.headers(),
                extensions: req.extensions(),
            };
            let user = shared.user.as_ref().and_then(|u| u.key(&info));
            let bypass = match &shared.user {
                Some(_) => user.is_none(),
                // A shared cache never answers a request that carries credentials.
                None => req.headers().contains_key(header::AUTHORIZATION),
            };
            if bypass {
                return Ok(shared.passed(inner.call(req).await?, "BYPASS"));
            }
            let key = cache_key(&shared, &info, user.as_deref());
            let tags = shared
                .tags
                .as_ref()
                .map(|t| t(&info, user.as_deref()))
                .unwrap_or_default();
            let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();

            match shared.lookup(&key).await {
                Ok(Some(entry)) => {
                    shared.store_ok();
                    return Ok(shared.hit(&entry, if_none_match.as_ref(), head));
                }
                Ok(None) => shared.store_ok(),
                Err(error) => {
                    shared.store_failed(&error);
                    return Ok(shared.passed(inner.call(req).await?, "BYPASS"));
                }
            }

            // A HEAD that misses is answered by the origin and not stored: the
            // entry must hold a GET's body.
            if head {
                return Ok(shared.passed(inner.call(req).await?, "MISS"));
            }
            // One origin call per key in this process: the others wait here,
            // then find the entry the first one stored. If it stored none (the
            // answer was not cacheable) they go to the origin side by side
            // rather than one after another.
            let fill = shared.fill_lock(&key);
            let _filling = match fill.try_lock() {
                Ok(guard) => guard,
                Err(_) => {
                    if let Ok(guard) = tokio::time::timeout(shared.lock_wait, fill.lock()).await {
                        if let Ok(Some(entry)) = shared.lookup(&key).await {
                            return Ok(shared.hit(&entry, if_none_match.as_ref(), head));
                        }
                        drop(guard);
                    }
                    return Ok(shared.passed(inner.call(req).await?, "MISS"));
                }
            };
            // And, with a shared store, one across instances, for a while.
            let token = shared.store.lock(&key, LOCK_TTL).await.unwrap_or(None);
            if token.is_none() {
                let deadline = tokio::time::Instant::now() + shared.lock_wait;
                while tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if let Ok(Some(entry)) = shared.lookup(&key).await {
                        return Ok(shared.hit(&entry, if_none_match.as_ref(), head));
                    }
                }
            }
            let unlock = |shared: Arc<Shared>, key: String, token: Option<String>| async move {
                if let Some(token) = token {
                    let _ = shared.store.unlock(&key, &token).await;
                }
            };
            // Versions are read before the origin answers: an invalidation
            // during the call leaves the entry stale, never wrongly fresh.
            let versions = shared.store.tag_versions(&tags).await.unwrap_or_default();
            let response = inner.call(req).await?;
            // Bodies of unknown or excessive size (streams, downloads) pass
            // through unbuffered and are not stored.
            let bounded = http_body::Body::size_hint(response.body())
                .upper()
                .is_some_and(|n| n <= shared.max_body as u64);
            if !bounded
                || !storable(&response, shared.user.is_some(), &shared.vary)
                || versions.len() != tags.len()
            {
                unlock(Arc::clone(&shared), key, token).await;
                return Ok(shared.passed(response, "MISS"));
            }
            let (parts, body) = response.into_parts();
            let bytes = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(error) => {
                    unlock(Arc::clone(&shared), key, token).await;
                    return Ok(Problem::internal(&error).into_response());
                }
            };
            let entry = Entry {
                status: parts.status.as_u16(),
                headers: parts
                    .headers
                    .iter()
                    .filter(|(name, _)| replayable(name))
                    .filter_map(|(n, v)| {
                        v.to_str()
                            .ok()
                            .map(|v| (n.as_str().to_owned(), v.to_owned()))
                    })
                    .collect(),
                etag: etag_of(&bytes),
                body: bytes,
                tags: tags.into_iter().zip(versions).collect(),
                expires_at_ms: store::now_ms()
                    .saturating_add(u64::try_from(shared.ttl.as_millis()).unwrap_or(u64::MAX)),
            };
            if let Err(error) = shared.store.put(&key, entry.clone()).await {
                shared.store_failed(&error);
            }
            unlock(Arc::clone(&shared), key, token).await;
            shared.count("miss");
            Ok(respond(&entry, "MISS", if_none_match.as_ref(), head))
        })
    }
}
