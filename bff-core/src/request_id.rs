//! `X-Request-Id`: one id per request, echoed when the client sent a sane one,
//! generated (UUID v7) otherwise.
//!
//! ```
//! use axum::{Router, routing::get};
//! use bff_core::request_id::{RequestId, SetRequestIdLayer};
//! use tower::ServiceBuilder;
//!
//! async fn handler(id: axum::Extension<RequestId>) -> String {
//!     format!("your request is {}", id.as_str())
//! }
//!
//! let app: Router = Router::new()
//!     .route("/", get(handler))
//!     .layer(ServiceBuilder::new().layer(SetRequestIdLayer::new()));
//! # let _ = app;
//! ```
//!
//! [`SetRequestIdLayer`] puts the [`RequestId`] in the request extensions, sets it on
//! the response, and makes it available to everything that runs inside the
//! request through [`RequestId::current`], which is how problem bodies and
//! error logs carry it without every handler passing it along.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

use crate::macros::define_inner_service_accessors;

/// The `X-Request-Id` header name.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-sent id that is echoed rather than replaced.
pub const MAX_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The id of one request.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// A fresh id (UUID v7: unique and roughly time-ordered, so logs sort).
    pub fn generate() -> Self {
        let id = uuid::Uuid::now_v7().to_string();
        // A hyphenated UUID is always a valid header value.
        Self(HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid")))
    }

    /// Accepts a client-sent id if it is sane: 1 to [`MAX_LEN`] characters of ASCII
    /// letters, digits and `-_.:`. Anything else (empty, long, spaces, control or
    /// non-ASCII bytes) could poison logs or downstream headers and is refused.
    pub fn parse(value: &HeaderValue) -> Option<Self> {
        let bytes = value.as_bytes();
        let sane = !bytes.is_empty()
            && bytes.len() <= MAX_LEN
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        sane.then(|| Self(value.clone()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // `parse` and `generate` only admit ASCII, so this never falls back.
        self.0.to_str().unwrap_or("")
    }

    /// The id as a header value, for propagating it to backends.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }

    /// The id of the request being served by the current task, if any.
    ///
    /// Set by [`SetRequestIdLayer`] for the whole time the inner service runs.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `future` with this id as the current one: for work a request hands
    /// to a spawned task, so its logs and messages still carry the id.
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Layer that applies [`SetRequestId`].
#[derive(Debug, Clone, Default)]
pub struct SetRequestIdLayer {
    _priv: (),
}

impl SetRequestIdLayer {
    /// A new layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for SetRequestIdLayer {
    type Service = SetRequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SetRequestId { inner }
    }
}

/// Assigns every request a [`RequestId`]; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct SetRequestId<S> {
    inner: S,
}

impl<S> SetRequestId<S> {
    define_inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SetRequestId<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let id = req
            .headers()
            .get(&X_REQUEST_ID)
            .and_then(RequestId::parse)
            .unwrap_or_else(RequestId::generate);
        // Downstream code reads the header too (propagation to backends), so it must
        // hold the id actually in use, not the refused one.
        req.headers_mut().insert(X_REQUEST_ID.clone(), id.0.clone());
        req.extensions_mut().insert(id.clone());
        let inner = CURRENT.sync_scope(id.clone(), || self.inner.call(req));
        ResponseFuture {
            inner: CURRENT.scope(id.clone(), inner),
            id: Some(id),
        }
    }
}

pin_project! {
    /// Response future of [`SetRequestId`].
    pub struct ResponseFuture<F: Future> {
        #[pin]
        inner: TaskLocalFuture<RequestId, F>,
        id: Option<RequestId>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            response.headers_mut().insert(X_REQUEST_ID.clone(), id.0);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::ServiceExt;

    async fn echo_current(req: Request<()>) -> Result<Response<String>, Infallible> {
        let seen = req
            .extensions()
            .get::<RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        let current = RequestId::current()
            .map(|id| id.to_string())
            .unwrap_or_default();
        assert_eq!(seen, current, "the extension and the task-local agree");
        Ok(Response::new(current))
    }

    async fn call(header: Option<&str>) -> (String, String) {
        let svc = SetRequestIdLayer::new().layer(tower::service_fn(echo_current));
        let mut req = Request::new(());
        if let Some(h) = header {
            req.headers_mut().insert(
                &X_REQUEST_ID,
                HeaderValue::from_str(h).expect("valid header"),
            );
        }
        let res = svc.oneshot(req).await.expect("infallible");
        let header = res.headers()[&X_REQUEST_ID]
            .to_str()
            .expect("ascii")
            .to_owned();
        (header, res.into_body())
    }

    #[tokio::test]
    async fn echoes_a_sane_id() {
        let (header, seen) = call(Some("abc-123_x.y:z")).await;
        assert_eq!(header, "abc-123_x.y:z");
        assert_eq!(seen, header);
    }

    #[tokio::test]
    async fn replaces_an_insane_id() {
        for bad in ["", "has space", "semi;colon", &"a".repeat(MAX_LEN + 1)] {
            let (header, seen) = call(Some(bad)).await;
            assert_ne!(header, bad);
            assert!(uuid::Uuid::parse_str(&header).is_ok(), "{header}");
            assert_eq!(seen, header);
        }
    }

    #[tokio::test]
    async fn generates_when_missing() {
        let (header, _) = call(None).await;
        assert_eq!(
            uuid::Uuid::parse_str(&header)
                .map(|u| u.get_version_num())
                .ok(),
            Some(7)
        );
    }
}
