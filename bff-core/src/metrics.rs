//! HTTP server metrics, in Prometheus format with the `prometheus` feature.
//!
//! [`MetricsLayer`] records through the [`metrics`](https://docs.rs/metrics)
//! facade, to whichever recorder the process installed. With the `prometheus`
//! feature, `install_recorder` installs the Prometheus exporter's, and (with
//! `openapi` too) `routes` serves it at `/metrics`:
//!
//! ```
//! # #[cfg(all(feature = "prometheus", feature = "openapi"))] {
//! use aide::axum::ApiRouter;
//! use axum::{Router, routing::get};
//! use bff_core::metrics::{MetricsLayer, install_recorder, routes};
//! use tower::ServiceBuilder;
//!
//! let app: Router = ApiRouter::new()
//!     .route("/users/{id}", get(|| async { "user" }))
//!     .merge(routes(install_recorder()))
//!     .into()
//!     ;
//! let app = app.layer(ServiceBuilder::new().layer(MetricsLayer::new()));
//! # let _ = app;
//! # }
//! ```
//!
//! [`MetricsLayer`] records, per request:
//! - `http_server_requests_total{method, route, status}` (counter),
//! - `http_server_request_duration_seconds{method, route, status}` (histogram, time to
//!   the response head),
//! - `http_server_requests_in_flight` (gauge).
//!
//! `method` is one of the standard methods or `_OTHER`; `route` is the route **template** (`/api/v1/users/{id}`) from axum's
//! [`MatchedPath`], never the raw path, so ids cannot explode the label set;
//! requests that matched no route are labelled `unmatched`. Apply the layer with
//! `Router::layer` (not around the router), which is where axum has set the
//! matched path.
//!
//! `install_recorder` installs the process-wide Prometheus recorder once and
//! returns a handle whose `render` output `/metrics` serves.

use std::future::Future;
use std::pin::Pin;
#[cfg(feature = "prometheus")]
use std::sync::OnceLock;
use std::task::{Context, Poll};
#[cfg(feature = "prometheus")]
use std::time::Duration;
use std::time::Instant;

#[cfg(all(feature = "prometheus", feature = "openapi"))]
use aide::axum::ApiRouter;
#[cfg(all(feature = "prometheus", feature = "openapi"))]
use aide::axum::routing::get_with;
use axum::extract::MatchedPath;
#[cfg(all(feature = "prometheus", feature = "openapi"))]
use axum::response::IntoResponse;
use http::{Method, Request, Response};
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub use metrics_exporter_prometheus::PrometheusHandle;
#[cfg(feature = "prometheus")]
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::macros::define_inner_service_accessors;

/// Name of the request counter.
pub const REQUESTS_TOTAL: &str = "http_server_requests_total";
/// Name of the request duration histogram.
pub const REQUEST_DURATION: &str = "http_server_request_duration_seconds";
/// Name of the in-flight gauge.
pub const REQUESTS_IN_FLIGHT: &str = "http_server_requests_in_flight";
/// `route` label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Histogram buckets in seconds, from 1 ms (a cached answer) to 10 s (a timeout).
#[cfg(feature = "prometheus")]
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram data is compacted (the exporter needs it run periodically).
#[cfg(feature = "prometheus")]
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

#[cfg(feature = "prometheus")]
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global Prometheus recorder, once per process, and returns its handle.
///
/// Later calls return the same handle, so several servers in one process (tests, for
/// one) share one registry. If another recorder was installed first, the handle still
/// renders, but only this crate's own recorder sees the metrics.
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub fn install_recorder() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics shows only this crate's recorder");
            }
            let upkeep = handle.clone();
            // A plain thread keeps upkeep independent of whichever runtime installed it.
            let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            });
            if let Err(error) = spawned {
                tracing::warn!(%error, "could not start the metrics upkeep thread");
            }
            handle
        })
        .clone()
}

/// Content type of the Prometheus text exposition format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`: every metric of the process in Prometheus text format.
#[cfg(all(feature = "prometheus", feature = "openapi"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "prometheus", feature = "openapi"))))]
pub fn routes<S>(handle: PrometheusHandle) -> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    ApiRouter::new().api_route(
        "/metrics",
        get_with(
            move || {
                let body = handle.render();
                async move { crate::openapi::Documented(([(http::header::CONTENT_TYPE, PROMETHEUS_TEXT)], body).into_response()) }
            },
            |op| {
                op.tag("operations")
                    .summary("Metrics")
                    .description("Prometheus text format: request counts and durations by method, route template and status, and requests in flight.")
                    .response::<200, String>()
            },
        ),
    )
}

/// Layer that applies [`Metrics`].
#[derive(Debug, Clone, Default)]
pub struct MetricsLayer {
    _priv: (),
}

impl MetricsLayer {
    /// A new layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics { inner }
    }
}

/// Records request metrics; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
}

impl<S> Metrics<S> {
    define_inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Metrics<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or(UNMATCHED, MatchedPath::as_str)
            .to_owned();
        let guard = InFlight::enter(req.method().clone(), route);
        ResponseFuture {
            inner: self.inner.call(req),
            guard: Some(guard),
        }
    }
}

/// Counts a request in flight from creation to drop, so a request whose future is
/// dropped (client gone) is not left counted.
struct InFlight {
    method: Method,
    route: String,
    start: Instant,
}

impl InFlight {
    fn enter(method: Method, route: String) -> Self {
        metrics::gauge!(REQUESTS_IN_FLIGHT).increment(1.0);
        Self {
            method,
            route,
            start: Instant::now(),
        }
    }

    fn finish(self, status: u16) {
        let labels = [
            ("method", method_label(&self.method).to_owned()),
            ("route", self.route.clone()),
            ("status", status.to_string()),
        ];
        metrics::counter!(REQUESTS_TOTAL, &labels).increment(1);
        metrics::histogram!(REQUEST_DURATION, &labels).record(self.start.elapsed().as_secs_f64());
    }
}

/// The `method` label: the standard methods by name, anything else `_OTHER`, so
/// clients inventing methods cannot grow the label set without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(REQUESTS_IN_FLIGHT).decrement(1.0);
    }
}

pin_project! {
    /// Response future of [`Metrics`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        guard: Option<InFlight>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Some(guard) = this.guard.take() {
            // An `Err` from the inner service means no response was produced; hyper
            // closes the connection, which clients see as a 500-class failure.
            guard.finish(result.as_ref().map_or(500, |r| r.status().as_u16()));
        }
        Poll::Ready(result)
    }
}
