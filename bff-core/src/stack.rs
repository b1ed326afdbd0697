//! The standard middleware stack of a BFF, in one call.
//!
//! [`apply`] wraps every route (and the fallback) of a router, outermost first, in:
//! request id, tracing span, metrics, security headers, CORS, error
//! normalisation, panic catching, request timeout and body limit. The order
//! matters: the request id is set before anything logs, metrics see the final status (a panic counts as a 500), and the
//! error normalisation sits inside the request id so problem bodies carry it.
//!
//! ```
//! use axum::{Router, routing::get};
//! use bff_core::stack::{HttpConfig, apply};
//!
//! let app: Router = apply(Router::new().route("/", get(|| async { "hi" })), &HttpConfig::default());
//! # let _ = app;
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath};
use axum::response::IntoResponse;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use tower::ServiceBuilder;
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, MakeSpan, OnResponse, TraceLayer};
use tracing::{Level, Span};

use crate::error_layer::{NormalizeErrorsLayer, panic_response};
use crate::metrics::{MetricsLayer, UNMATCHED};
use crate::problem::Problem;
use crate::request_id::{RequestId, SetRequestIdLayer, X_REQUEST_ID};
use crate::security_headers::SecurityHeadersLayer;

/// Settings of the HTTP stack.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest accepted request body, in bytes; larger is 413.
    pub body_limit: usize,
    /// Longest a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// Origins allowed to call the API from a browser; empty disables CORS.
    pub cors_origins: Vec<HeaderValue>,
    /// How long browsers may cache a CORS preflight answer.
    pub cors_max_age: Duration,
    /// Whose W3C trace context (`traceparent`) a request's span continues.
    pub trace_parent: TraceParent,
}

/// Whose W3C trace context (`traceparent`, `tracestate`) a request's span
/// continues; from anyone else the headers are ignored and the request starts
/// a trace of its own. Continuing a caller's trace also takes its sampling
/// decision, so trusting everyone lets any client decide what is traced.
#[derive(Clone, Default)]
pub enum TraceParent {
    /// Nobody's (the default).
    #[default]
    Ignore,
    /// Everyone's: for a BFF that only its own proxies can reach.
    Trust,
    /// Only from peers for which the function answers `true` (your proxies).
    TrustPeers(Arc<dyn Fn(IpAddr) -> bool + Send + Sync>),
}

impl std::fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ignore => "Ignore",
            Self::Trust => "Trust",
            Self::TrustPeers(_) => "TrustPeers(..)",
        })
    }
}

impl TraceParent {
    /// Whether the trace context of `request` is to be continued.
    fn trusts<B>(&self, request: &Request<B>) -> bool {
        match self {
            Self::Ignore => false,
            Self::Trust => true,
            Self::TrustPeers(trusted) => request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .is_some_and(|ConnectInfo(peer)| trusted(peer.ip())),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            cors_max_age: Duration::from_secs(600),
            trace_parent: TraceParent::Ignore,
        }
    }
}

impl HttpConfig {
    /// The CORS layer for these settings, if any origin is allowed.
    ///
    /// Credentials are not allowed: the API authenticates with bearer tokens, not
    /// cookies, so browsers never need to send ambient credentials.
    pub fn cors(&self) -> Option<CorsLayer> {
        if self.cors_origins.is_empty() {
            return None;
        }
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(self.cors_origins.iter().cloned()))
                .allow_methods([
                    Method::GET,
                    Method::HEAD,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                ])
                .allow_headers([
                    http::header::AUTHORIZATION,
                    http::header::CONTENT_TYPE,
                    http::header::IF_MATCH,
                    http::header::IF_NONE_MATCH,
                    HeaderName::from_static("idempotency-key"),
                    X_REQUEST_ID.clone(),
                ])
                .expose_headers([
                    X_REQUEST_ID.clone(),
                    http::header::ETAG,
                    http::header::RETRY_AFTER,
                    HeaderName::from_static("ratelimit"),
                    HeaderName::from_static("ratelimit-policy"),
                ])
                .max_age(self.cors_max_age),
        )
    }
}

/// Wraps `router` in the standard stack; see the [module docs](self).
///
/// Call it last, after every route and the fallback are in place: `Router::layer`
/// applies to the routes the router has when it is called.
pub fn apply<S>(router: Router<S>, config: &HttpConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let router = router
        .layer(RequestBodyLimitLayer::new(config.body_limit))
        // axum's extractors apply their own 2 MiB default on top; the configured
        // limit is the one that counts, in both directions.
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(NormalizeErrorsLayer::new());
    let router = match config.cors() {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new())
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(RequestSpan {
                        trace_parent: config.trace_parent.clone(),
                    })
                    .on_request(())
                    .on_response(RecordStatus(
                        DefaultOnResponse::new()
                            .level(Level::INFO)
                            .latency_unit(LatencyUnit::Millis),
                    )),
            )
            .layer(MetricsLayer::new())
            .layer(SecurityHeadersLayer::new()),
    )
}

/// The tracing span of one request: method, route template and request id, so
/// every log line inside a request can be found by its id. Its fields follow
/// OpenTelemetry's HTTP server conventions (`http.request.method`,
/// `http.route`, `http.response.status_code`, recorded when the response
/// starts), so with tracing on (feature `otel`) it is the request's server
/// span, named `METHOD route`, and its `trace_id` and `span_id` fields put
/// the trace on every log line of the request. It declares `user.id` for an
/// authenticator to record (bff-auth's `JwtLayer::with_user_id_on_span`).
pub fn request_span<B>(req: &Request<B>) -> Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str);
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(RequestId::as_str)
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        otel.name = format!("{} {route}", req.method()),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %req.method(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        request_id,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        user.id = tracing::field::Empty,
    )
}

/// [`request_span`], continuing the caller's trace when [`TraceParent`]
/// trusts it.
#[derive(Debug, Clone)]
struct RequestSpan {
    trace_parent: TraceParent,
}

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let span = request_span(request);
        #[cfg(feature = "otel")]
        {
            if self.trace_parent.trusts(request) {
                crate::telemetry::otel::extract(request.headers(), &span);
            }
            // Every log line of the request then leads to its trace.
            if let Some((trace_id, span_id)) = crate::telemetry::otel::ids(&span) {
                span.record("trace_id", trace_id);
                span.record("span_id", span_id);
            }
        }
        #[cfg(not(feature = "otel"))]
        let _ = self.trace_parent.trusts(request);
        span
    }
}

/// Records the response's status on the request's span (a 5xx marks the span
/// as an error), then logs as `DefaultOnResponse` does.
#[derive(Debug, Clone)]
struct RecordStatus(DefaultOnResponse);

impl<B> OnResponse<B> for RecordStatus {
    fn on_response(self, response: &http::Response<B>, latency: Duration, span: &Span) {
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "error");
        }
        self.0.on_response(response, latency, span);
    }
}

/// A fallback handler answering 404 problem+json, for `Router::fallback`.
pub async fn not_found() -> impl IntoResponse {
    Problem::not_found()
}
