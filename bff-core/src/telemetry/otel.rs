//! OpenTelemetry traces over OTLP (feature `otel`).
//!
//! [`Tracing::from_env`] builds a tracer provider from the standard variables:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) | the collector | `http://localhost:4317` (gRPC), `http://localhost:4318` (HTTP) |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` (or `..._TRACES_PROTOCOL`) | `grpc` or `http/protobuf` | `grpc` |
//! | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | the resource | the service name passed in |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | the sampler | `parentbased_always_on` |
//! | `OTEL_BSP_*` | the batch processor's queue, batch size and delay | 2,048 spans, 512 a batch, 5 s |
//!
//! Spans are exported in batches from a thread of the SDK's own: a request
//! never waits for the collector. A full queue drops the newest spans; an
//! export that fails (the collector is down or slow) drops its batch, and
//! each dropped span is counted in `bff_trace_spans_dropped_total` (exported
//! ones in `bff_trace_spans_exported_total`).
//!
//! [`init_with_tracing`](super::init_with_tracing) installs the provider's
//! layer beside the log layer, so every `tracing` span becomes an OpenTelemetry
//! span; [`extract`] and [`inject`] carry the W3C trace context (`traceparent`,
//! `tracestate`) across HTTP headers.

use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (port 4317).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318, path `/v1/traces`).
    HttpProtobuf,
}

impl Protocol {
    /// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`,
    /// else gRPC.
    pub fn from_env() -> Result<Self, TracingError> {
        let value = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"));
        match value.as_deref().map(str::trim) {
            Err(_) | Ok("grpc") => Ok(Self::Grpc),
            Ok("http/protobuf") => Ok(Self::HttpProtobuf),
            Ok(other) => Err(TracingError::Settings(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL {other:?}: expected grpc or http/protobuf"
            ))),
        }
    }
}

/// Tracing could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TracingError {
    /// A variable holds something unusable.
    #[error("tracing settings: {0}")]
    Settings(String),
    /// The exporter could not be built (a malformed endpoint).
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
}

/// A tracer provider exporting over OTLP. Keep it for the life of the
/// process and call [`Tracing::shutdown`] at the end to flush what is queued.
#[derive(Debug, Clone)]
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// Builds the provider from the standard variables (see the [module
    /// docs](self)); `service_name` names the service when
    /// `OTEL_SERVICE_NAME` does not.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime: exports run on the runtime it is called on,
    /// which must outlive the returned value.
    pub fn from_env(service_name: &str) -> Result<Self, TracingError> {
        let protocol = Protocol::from_env()?;
        let exporter = match protocol {
            Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_timeout(Duration::from_secs(5))
                .build(),
            Protocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(
                    opentelemetry_http::hyper::HyperClient::with_default_connector(
                        Duration::from_secs(5),
                        None,
                    ),
                )
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_timeout(Duration::from_secs(5))
                .build(),
        }
        .map_err(|e| TracingError::Exporter(e.to_string()))?;
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name(service_name.to_owned());
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(Counted::new(exporter))
            .with_resource(resource.build())
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        Ok(Self { provider })
    }

    /// The tracer that the `tracing` layer records into.
    pub fn tracer(&self, name: &'static str) -> opentelemetry_sdk::trace::SdkTracer {
        self.provider.tracer(name)
    }

    /// Flushes the spans still queued (waiting at most the export timeout)
    /// and stops the exporter.
    pub fn shutdown(&self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "tracing: the last spans could not be exported");
        }
    }
}

/// An exporter that runs each export on the Tokio runtime it was built on,
/// and counts what it exports and what it drops.
///
/// The SDK's batch processor exports from a thread of its own, outside any
/// runtime, while both OTLP transports need one (tonic's channel, hyper's
/// client and its timeout): each export is spawned onto the runtime and its
/// end awaited from the processor's thread. An export that fails, or panics,
/// drops its batch.
#[derive(Debug)]
struct Counted<E> {
    exporter: std::sync::Arc<E>,
    runtime: tokio::runtime::Handle,
}

impl<E> Counted<E> {
    /// `exporter` on the current runtime.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (as [`Tracing::from_env`] documents).
    fn new(exporter: E) -> Self {
        Self {
            exporter: std::sync::Arc::new(exporter),
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl<E: SpanExporter + 'static> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        let exporter = std::sync::Arc::clone(&self.exporter);
        let result = match self
            .runtime
            .spawn(async move { exporter.export(batch).await })
            .await
        {
            Ok(result) => result,
            Err(error) => Err(OTelSdkError::InternalFailure(format!(
                "the span export task failed: {error}"
            ))),
        };
        match &result {
            Ok(()) => metrics::counter!("bff_trace_spans_exported_total").increment(spans),
            Err(_) => metrics::counter!("bff_trace_spans_dropped_total").increment(spans),
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.exporter.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.exporter.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called while the provider is built, before any export shares it.
        if let Some(exporter) = std::sync::Arc::get_mut(&mut self.exporter) {
            exporter.set_resource(resource);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // An empty `tracestate` says nothing: W3C Trace Context leaves it out.
        if value.is_empty() {
            return;
        }
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Makes `span` a child of the W3C trace context in `headers`, when they carry
/// a valid `traceparent`; otherwise `span` starts a trace of its own.
pub fn extract(headers: &http::HeaderMap, span: &tracing::Span) {
    let context = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// Writes `span`'s trace context into `headers` (`traceparent`, and
/// `tracestate` when there is one), so the callee continues the trace.
/// Nothing is written for a span that is not being traced.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    let context = span.context();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
    }
}

/// As [`extract`], for carriers that are not HTTP headers (NATS headers, a
/// stored row): `get` answers the values of `traceparent` and `tracestate`.
pub fn extract_with(get: impl Fn(&str) -> Option<String>, span: &tracing::Span) {
    let mut headers = http::HeaderMap::new();
    for name in ["traceparent", "tracestate"] {
        if let Some(value) = get(name).and_then(|v| http::HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    extract(&headers, span);
}

/// As [`inject`], as name/value pairs (`traceparent`, and `tracestate` when
/// there is one) for carriers that are not HTTP headers; empty for a span that
/// is not being traced.
pub fn context_of(span: &tracing::Span) -> Vec<(&'static str, String)> {
    let mut headers = http::HeaderMap::new();
    inject(span, &mut headers);
    ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|name| Some((name, headers.get(name)?.to_str().ok()?.to_owned())))
        .collect()
}

/// The trace and span ids of `span` (lower-case hex), when it is traced.
pub fn ids(span: &tracing::Span) -> Option<(String, String)> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| {
        (
            span_context.trace_id().to_string(),
            span_context.span_id().to_string(),
        )
    })
}
