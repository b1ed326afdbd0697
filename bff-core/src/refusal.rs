//! Refusals that a layer answers on its own (401, 403, 429, 503), in the
//! caller's protocol and on any body type.
//!
//! An authentication, authorization or rate-limit layer stands in front of
//! axum routers, tonic servers and bare hyper services alike. It refuses
//! before the inner service runs, so it writes the answer itself:
//!
//! - an HTTP caller gets the [`Problem`] as problem+json, as everywhere else;
//! - a gRPC caller (`content-type: application/grpc*`, see [`Protocol::of`])
//!   gets what a gRPC client reads: HTTP 200 with `grpc-status` and
//!   `grpc-message` headers and no body (a trailers-only response), the code
//!   from [`grpc_code`] (401 `UNAUTHENTICATED`, 403 `PERMISSION_DENIED`, 429
//!   `RESOURCE_EXHAUSTED`, 503 `UNAVAILABLE`). The problem's extra headers
//!   (`Retry-After`, `WWW-Authenticate`, ...) go along as metadata.
//!
//! The layer's response body is then a [`ResponseBody`]: the inner service's
//! body, whatever it is, or the refusal's own few bytes; its response future a
//! [`GuardFuture`]: the layer's check when it has to wait, then the inner
//! service or the refusal.
//!
//! ```
//! use bff_core::Problem;
//! use bff_core::refusal::{self, Protocol, ResponseBody};
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use bytes::Bytes;
//!
//! let request = Request::post("/orders.v1.Orders/List")
//!     .header("content-type", "application/grpc")
//!     .body(())
//!     .unwrap();
//! let refused: Response<ResponseBody<Full<Bytes>>> =
//!     refusal::response(Protocol::of(request.headers()), Problem::unauthorized());
//! assert_eq!(refused.status(), 200);
//! assert_eq!(refused.headers()["grpc-status"], "16");
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower::Service;

use crate::problem::Problem;

/// How the caller speaks, as far as a refusal is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Plain HTTP: refusals are problem+json.
    Http,
    /// gRPC (and gRPC-Web): refusals are a `grpc-status`.
    Grpc,
}

impl Protocol {
    /// gRPC when the request's `content-type` starts with `application/grpc`,
    /// HTTP otherwise.
    pub fn of(headers: &HeaderMap) -> Self {
        let grpc = headers
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        if grpc { Self::Grpc } else { Self::Http }
    }
}

/// The gRPC status code for a refusal's HTTP status: 401 `UNAUTHENTICATED`
/// (16), 403 `PERMISSION_DENIED` (7), 429 `RESOURCE_EXHAUSTED` (8), 502, 503
/// and 504 `UNAVAILABLE` (14), other server errors `INTERNAL` (13), anything
/// else `UNKNOWN` (2).
pub fn grpc_code(status: StatusCode) -> u8 {
    match status {
        StatusCode::UNAUTHORIZED => 16,
        StatusCode::FORBIDDEN => 7,
        StatusCode::TOO_MANY_REQUESTS => 8,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            14
        }
        s if s.is_server_error() => 13,
        _ => 2,
    }
}

/// The response refusing a request with `problem`, in `protocol`.
pub fn response<B>(protocol: Protocol, problem: Problem) -> Response<ResponseBody<B>> {
    match protocol {
        Protocol::Http => problem.into_http_response().map(ResponseBody::full),
        Protocol::Grpc => {
            let mut response = Response::new(ResponseBody::full(Bytes::new()));
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            headers.insert(
                "grpc-status",
                HeaderValue::from(u16::from(grpc_code(problem.status()))),
            );
            let message = problem.detail.as_deref().unwrap_or(&problem.title);
            if let Ok(message) = HeaderValue::try_from(percent_encode(message)) {
                headers.insert("grpc-message", message);
            }
            for (name, value) in problem.headers() {
                headers.append(name, value.clone());
            }
            response
        }
    }
}

/// `grpc-message` is percent-encoded: every byte outside printable ASCII, and
/// `%` itself (the gRPC over HTTP/2 spec).
fn percent_encode(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

pin_project! {
    /// The body of a refusing layer's responses: the inner service's body `B`,
    /// or the layer's own refusal (a few bytes, or none for gRPC).
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Full { data: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    /// The inner service's body, passed through.
    pub fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A body of the layer's own: `data`, in one frame.
    pub fn full(data: Bytes) -> Self {
        Self {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f.write_str("ResponseBody::Inner"),
            Kind::Full { data } => f
                .debug_struct("ResponseBody::Full")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Full { data } => {
                Poll::Ready(data.take().map(|data| Ok(Frame::data(data.into()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

/// What a guarding layer's check hands on when it lets a request in: to the
/// request before the inner service sees it (the authenticated caller), and
/// to the inner service's response (rate-limit headers). Both do nothing by
/// default.
pub trait Pass {
    /// Runs on the request, before the inner service is called with it.
    fn enter<B>(&mut self, request: &mut Request<B>) {
        let _ = request;
    }

    /// Runs on the inner service's response.
    fn leave<B>(self, response: &mut Response<B>)
    where
        Self: Sized,
    {
        let _ = response;
    }
}

/// Nothing to hand on.
impl Pass for () {}

/// A guarding layer's check that has to wait (a session store, a rate-limit
/// backend): what it lets through, or the problem to refuse with.
pub type Check<P> = Pin<Box<dyn Future<Output = Result<P, Problem>> + Send>>;

pin_project! {
    /// The response future of a layer that checks requests before its inner
    /// service sees them: the check, when it has to wait, then the inner
    /// service, or the refusal (in the caller's [`Protocol`]). `P` is what a
    /// passed check hands on (see [`Pass`]).
    pub struct GuardFuture<S, ReqBody, P>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, P>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, P>
    where
        S: Service<Request<ReqBody>>,
    {
        Checking {
            check: Check<P>,
            call: Option<(S, Request<ReqBody>)>,
            protocol: Protocol,
        },
        Inner {
            #[pin]
            future: S::Future,
            pass: Option<P>,
        },
        Refused { refusal: Option<(Protocol, Problem)> },
    }
}

impl<S, ReqBody, P> GuardFuture<S, ReqBody, P>
where
    S: Service<Request<ReqBody>>,
{
    /// Waits for `check`, then calls `inner` (the service that was polled
    /// ready) with `request`, or refuses in `protocol`.
    pub fn check(check: Check<P>, inner: S, request: Request<ReqBody>, protocol: Protocol) -> Self {
        Self {
            state: State::Checking {
                check,
                call: Some((inner, request)),
                protocol,
            },
        }
    }

    /// The inner service's future, the request let in without waiting;
    /// `pass`, if any, [leaves](Pass::leave) its mark on the response.
    pub fn inner(future: S::Future, pass: Option<P>) -> Self {
        Self {
            state: State::Inner { future, pass },
        }
    }

    /// Refuses with `problem` in `protocol`, without calling the inner service.
    pub fn refused(protocol: Protocol, problem: Problem) -> Self {
        Self {
            state: State::Refused {
                refusal: Some((protocol, problem)),
            },
        }
    }
}

impl<S, ReqBody, ResBody, P> Future for GuardFuture<S, ReqBody, P>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    P: Pass,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Checking {
                    check,
                    call,
                    protocol,
                } => match ready!(check.as_mut().poll(cx)) {
                    Ok(mut pass) => {
                        let (mut inner, mut request) =
                            call.take().expect("GuardFuture polled after completion");
                        pass.enter(&mut request);
                        let future = inner.call(request);
                        state.set(State::Inner {
                            future,
                            pass: Some(pass),
                        });
                    }
                    Err(problem) => {
                        let protocol = *protocol;
                        state.set(State::Refused {
                            refusal: Some((protocol, problem)),
                        });
                    }
                },
                StateProj::Inner { future, pass } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some(pass) = pass.take() {
                        pass.leave(&mut response);
                    }
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Refused { refusal } => {
                    let (protocol, problem) =
                        refusal.take().expect("GuardFuture polled after completion");
                    return Poll::Ready(Ok(response(protocol, problem)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    fn headers(content_type: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_str(value).expect("value"));
        }
        headers
    }

    #[test]
    fn grpc_is_told_by_its_content_type() {
        assert_eq!(Protocol::of(&headers(None)), Protocol::Http);
        assert_eq!(
            Protocol::of(&headers(Some("application/json"))),
            Protocol::Http
        );
        for grpc in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc-web",
        ] {
            assert_eq!(Protocol::of(&headers(Some(grpc))), Protocol::Grpc, "{grpc}");
        }
    }

    #[tokio::test]
    async fn http_callers_get_the_problem() {
        let refused: Response<ResponseBody<Full<Bytes>>> =
            response(Protocol::Http, Problem::unauthorized().with_detail("no"));
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(refused.headers()[CONTENT_TYPE], "application/problem+json");
        assert_eq!(refused.headers()["www-authenticate"], "Bearer");
        let body = refused
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["code"], "unauthorized");
    }

    #[tokio::test]
    async fn grpc_callers_get_a_status() {
        for (problem, code) in [
            (Problem::unauthorized(), "16"),
            (Problem::forbidden(), "7"),
            (Problem::from_status(StatusCode::TOO_MANY_REQUESTS), "8"),
            (Problem::unavailable("down 100%"), "14"),
        ] {
            let refused: Response<ResponseBody<Full<Bytes>>> = response(Protocol::Grpc, problem);
            assert_eq!(refused.status(), StatusCode::OK);
            assert_eq!(refused.headers()[CONTENT_TYPE], "application/grpc");
            assert_eq!(refused.headers()["grpc-status"], code);
            assert!(refused.body().is_end_stream());
            let body = refused
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            assert!(body.is_empty());
        }
        let refused: Response<ResponseBody<Full<Bytes>>> =
            response(Protocol::Grpc, Problem::unavailable("down 100% é"));
        assert_eq!(refused.headers()["grpc-message"], "down 100%25 %C3%A9");
    }

    #[tokio::test]
    async fn the_inner_body_passes_through() {
        let body = ResponseBody::inner(Full::new(Bytes::from_static(b"hello")));
        assert_eq!(body.size_hint().exact(), Some(5));
        let bytes = body.collect().await.expect("body").to_bytes();
        assert_eq!(&bytes[..], b"hello");
    }
}
