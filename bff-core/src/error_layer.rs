//! Guarantees that every error response is `application/problem+json`, and that a
//! panic becomes a 500 problem instead of a dropped connection.
//!
//! ```
//! use axum::{Router, routing::get};
//! use bff_core::error_layer::{NormalizeErrorsLayer, panic_response};
//! use bff_core::request_id::SetRequestIdLayer;
//! use tower::ServiceBuilder;
//! use tower_http::catch_panic::CatchPanicLayer;
//!
//! let app: Router = Router::new().route("/", get(|| async { "hi" })).layer(
//!     ServiceBuilder::new()
//!         .layer(SetRequestIdLayer::new())
//!         .layer(NormalizeErrorsLayer::new())
//!         .layer(CatchPanicLayer::custom(panic_response)),
//! );
//! # let _ = app;
//! ```
//!
//! Lower layers and frameworks answer some errors on their own: axum's 405 and
//! extractor rejections, tower-http's 413 and timeouts. [`NormalizeErrorsLayer`] replaces
//! any error response (status 400 or above) that is not already a problem with
//! [`Problem::from_status`], keeping its headers (`Allow`, `Retry-After`, ...) and
//! dropping its body, so nothing a lower layer wrote (a driver message, a stack
//! trace) can reach a client. [`panic_response`] is the handler to give
//! tower-http's [`CatchPanicLayer::custom`](https://docs.rs/tower-http/0.6/tower_http/catch_panic/struct.CatchPanicLayer.html#method.custom).
//!
//! Place both inside [`SetRequestIdLayer`](crate::request_id::SetRequestIdLayer) so the
//! problems carry the request id.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::IntoResponse;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::macros::define_inner_service_accessors;
use crate::problem::{PROBLEM_JSON, Problem};
use crate::request_id::RequestId;

/// Layer that applies [`NormalizeErrors`].
#[derive(Debug, Clone, Default)]
pub struct NormalizeErrorsLayer {
    _priv: (),
}

impl NormalizeErrorsLayer {
    /// A new layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for NormalizeErrorsLayer {
    type Service = NormalizeErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NormalizeErrors { inner }
    }
}

/// Turns every non-problem error response into a problem; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct NormalizeErrors<S> {
    inner: S,
}

impl<S> NormalizeErrors<S> {
    define_inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for NormalizeErrors<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// Response future of [`NormalizeErrors`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = std::task::ready!(self.project().inner.poll(cx))?;
        Poll::Ready(Ok(normalize(response)))
    }
}

fn is_problem(response: &Response<impl Sized>) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(PROBLEM_JSON))
        })
}

fn normalize<B>(response: Response<B>) -> Response<Body>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let status = response.status();
    if status.as_u16() < 400 || is_problem(&response) {
        return response.map(Body::new);
    }
    if status.is_server_error() {
        // The original body is dropped unread: it may be internal detail. The status
        // is enough for operators to find the cause in the logs of the layer below.
        tracing::error!(
            status = status.as_u16(),
            "server error without a problem body"
        );
    }
    let (mut parts, _body) = response.into_parts();
    parts.headers.remove(CONTENT_TYPE);
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.remove(TRANSFER_ENCODING);
    let mut problem = Problem::from_status(status).into_response();
    for (name, value) in parts.headers.drain().filter_map(|(n, v)| n.map(|n| (n, v))) {
        problem.headers_mut().append(name, value);
    }
    problem
}

/// The response for a handler panic: a 500 problem carrying the request id.
///
/// The panic message is logged, never sent.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    tracing::error!(
        request_id = RequestId::current().as_ref().map(RequestId::as_str),
        panic = %message,
        "handler panicked"
    );
    Problem::from_status(StatusCode::INTERNAL_SERVER_ERROR)
        .with_detail("An internal error occurred. Quote the request id when reporting it.")
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_id::SetRequestIdLayer;
    use axum::Router;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::{ServiceBuilder, ServiceExt};
    use tower_http::catch_panic::CatchPanicLayer;

    async fn panics() -> &'static str {
        panic!("database password is hunter2")
    }

    fn app() -> Router {
        Router::new()
            .route("/ok", get(|| async { "fine" }))
            .route(
                "/teapot",
                get(|| async { (StatusCode::IM_A_TEAPOT, "secret internals") }),
            )
            .route(
                "/boom",
                get(|| async {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "SELECT * FROM users failed",
                    )
                }),
            )
            .route("/panic", get(panics))
            .layer(
                ServiceBuilder::new()
                    .layer(SetRequestIdLayer::new())
                    .layer(NormalizeErrorsLayer::new())
                    .layer(CatchPanicLayer::custom(panic_response)),
            )
    }

    async fn get_json(path: &str) -> (StatusCode, http::HeaderMap, String) {
        let res = app()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    #[tokio::test]
    async fn success_passes_through() {
        let (status, _, body) = get_json("/ok").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "fine");
    }

    #[tokio::test]
    async fn plain_errors_become_problems_without_their_body() {
        for path in ["/teapot", "/boom"] {
            let (status, headers, body) = get_json(path).await;
            assert!(status.as_u16() >= 400);
            assert_eq!(headers[CONTENT_TYPE], PROBLEM_JSON);
            assert!(
                !body.contains("secret") && !body.contains("SELECT"),
                "{body}"
            );
            let json: serde_json::Value = serde_json::from_str(&body).expect("json");
            assert_eq!(json["status"], status.as_u16());
            assert_eq!(
                json["request_id"],
                headers["x-request-id"].to_str().expect("ascii")
            );
        }
    }

    #[tokio::test]
    async fn panic_is_a_500_problem_with_the_request_id() {
        let (status, headers, body) = get_json("/panic").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(headers[CONTENT_TYPE], PROBLEM_JSON);
        assert!(!body.contains("hunter2"), "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(json["code"], "internal");
        assert_eq!(
            json["request_id"],
            headers["x-request-id"].to_str().expect("ascii")
        );
    }

    #[tokio::test]
    async fn method_not_allowed_keeps_allow() {
        let res = app()
            .oneshot(Request::post("/ok").body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()[CONTENT_TYPE], PROBLEM_JSON);
        assert!(res.headers().contains_key(http::header::ALLOW));
    }
}
