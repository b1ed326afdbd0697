//! [`Cache`]: the service of [`CacheLayer`](super::CacheLayer).

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bff_core::Problem;
use http::header;
use http::{Method, Request};
use http_body_util::BodyExt;
use tower::Service;

use super::ResponseFuture;
use super::layer::{LOCK_TTL, Shared};
use super::rules::{cache_key, etag_of, replayable, respond, storable};
use super::store::{self, Entry};
use crate::key::RequestInfo;
use crate::macros::define_inner_service_accessors;

/// Caches responses; the service of [`CacheLayer`](super::CacheLayer), see
/// the [module docs](super).
#[derive(Clone)]
pub struct Cache<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Cache<S> {
    pub(super) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    define_inner_service_accessors!();
}

impl<S: std::fmt::Debug> std::fmt::Debug for Cache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .finish()
    }
}

impl<S> Service<Request<Body>> for Cache<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        ResponseFuture::new(Box::pin(serve(shared, inner, req)))
    }
}

/// Answers `req` from the cache, or from `inner` and stores the answer if it
/// may: the whole of the layer's work, as one future.
async fn serve<S>(
    shared: Arc<Shared>,
    mut inner: S,
    req: Request<Body>,
) -> Result<Response, S::Error>
where
    S: Service<Request<Body>, Response = Response>,
{
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
}
