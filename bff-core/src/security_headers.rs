//! Response headers that make an API's answers safe to reach a browser.
//!
//! [`SecurityHeadersLayer`] adds, to every response that does not set them
//! itself:
//!
//! - `X-Content-Type-Options: nosniff`: a JSON body is never run as a script
//!   or rendered as HTML;
//! - `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`: a
//!   response opened in a browser loads nothing and cannot be framed (a page
//!   such as the API docs sets a policy of its own, which is kept);
//! - `X-Frame-Options: DENY`, the same for older browsers;
//! - `Referrer-Policy: no-referrer`;
//! - `Cache-Control: no-store`: token responses, profiles and every other
//!   answer stay out of browser and proxy caches (RFC 6749 5.1) unless the
//!   handler says otherwise (a public list, say).
//!
//! `Strict-Transport-Security` belongs to whatever terminates TLS, so it is not
//! set here.
//!
//! ```
//! use bff_core::security_headers::SecurityHeadersLayer;
//! use http::{Request, Response};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio_test_block_on(async {
//! let service = ServiceBuilder::new()
//!     .layer(SecurityHeadersLayer::new())
//!     .service_fn(|_req: Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(String::from("{}")))
//!     });
//! let response = service.oneshot(Request::new(String::new())).await.unwrap();
//! assert_eq!(response.headers()["x-content-type-options"], "nosniff");
//! assert_eq!(response.headers()["cache-control"], "no-store");
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::macros::define_inner_service_accessors;

/// The headers and their values, in the order they are added.
type Headers = Arc<[(HeaderName, HeaderValue)]>;

/// Adds the security headers a response does not set itself; see the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct SecurityHeadersLayer {
    headers: Headers,
}

impl Default for SecurityHeadersLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl SecurityHeadersLayer {
    /// The standard set.
    pub fn new() -> Self {
        Self::with(&[])
    }

    /// The standard set with `overrides` replacing or adding headers (for a
    /// looser `Content-Security-Policy`, say).
    pub fn with(overrides: &[(HeaderName, HeaderValue)]) -> Self {
        let mut headers: Vec<(HeaderName, HeaderValue)> = vec![
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (
                CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
            ),
            (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ];
        for (name, value) in overrides {
            headers.retain(|(existing, _)| existing != name);
            headers.push((name.clone(), value.clone()));
        }
        Self {
            headers: headers.into(),
        }
    }
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders {
            inner,
            headers: Arc::clone(&self.headers),
        }
    }
}

/// The service of [`SecurityHeadersLayer`].
#[derive(Debug, Clone)]
pub struct SecurityHeaders<S> {
    inner: S,
    headers: Headers,
}

impl<S> SecurityHeaders<S> {
    define_inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SecurityHeaders<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(request),
            headers: Arc::clone(&self.headers),
        }
    }
}

pin_project! {
    /// The response future of [`SecurityHeaders`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        headers: Headers,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        let headers = response.headers_mut();
        for (name, value) in this.headers.iter() {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{ServiceBuilder, ServiceExt};

    use super::*;

    #[tokio::test]
    async fn a_handlers_own_headers_win() {
        let service = ServiceBuilder::new()
            .layer(SecurityHeadersLayer::with(&[(
                REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            )]))
            .service_fn(|_req: Request<()>| async {
                let response = Response::builder()
                    .header(CACHE_CONTROL, "public, max-age=300")
                    .header(CONTENT_SECURITY_POLICY, "default-src 'self'")
                    .body(())
                    .expect("response");
                Ok::<_, Infallible>(response)
            });
        let response = service.oneshot(Request::new(())).await.expect("response");
        let headers = response.headers();
        assert_eq!(headers[CACHE_CONTROL], "public, max-age=300");
        assert_eq!(headers[CONTENT_SECURITY_POLICY], "default-src 'self'");
        assert_eq!(headers[REFERRER_POLICY], "same-origin");
        assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers.get_all(CACHE_CONTROL).iter().count(), 1);
    }
}
