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

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing::Metadata;
use tracing::dispatcher::WeakDispatch;
use tracing::subscriber::Interest;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Filter, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

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
///
/// A span that is not traced itself (inside a trace that is not sampled,
/// whose spans are not built, see [`layer`]; or a span only the log layer
/// takes) is spoken for by the nearest traced span above it, so the callee
/// learns that the trace is not sampled and does not sample it either.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    let context = traced_context(span);
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
    }
}

/// `span`'s OpenTelemetry context, or that of the nearest traced span above it
/// (the current span's, for a disabled one); empty when there is none.
fn traced_context(span: &tracing::Span) -> opentelemetry::Context {
    let context = span.context();
    if context.span().span_context().is_valid() {
        return context;
    }
    let id = if span.is_disabled() {
        tracing::Span::current().id()
    } else {
        span.id()
    };
    let Some(id) = id else {
        return context;
    };
    tracing::dispatcher::get_default(|dispatch| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        registry.span(&id)?.scope().find_map(|ancestor| {
            tracing_opentelemetry::get_otel_context(&ancestor.id(), dispatch)
                .filter(|context| context.span().span_context().is_valid())
        })
    })
    .unwrap_or(context)
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

/// The `tracing` layer that turns spans into OpenTelemetry spans recorded by
/// `tracer`: every span at `info` and above and, as span events, warnings
/// and errors; nothing of aide (it spans each step of building the OpenAPI
/// document at start: a thousand one-span traces, meaning nothing).
///
/// The children of a span whose trace is not sampled are not built at all:
/// a ratio sampler then saves the cost of those spans, not only their
/// export. [`inject`] still carries the trace (marked not sampled) from
/// inside them, so the callee does not sample it either.
///
/// [`init_with_tracing`](super::init_with_tracing) installs it; a subscriber
/// of one's own can take it beside its other layers.
pub fn layer<S>(tracer: opentelemetry_sdk::trace::SdkTracer) -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let dispatch = Arc::new(OnceLock::new());
    // No source locations, targets or thread attributes: a span is found by
    // its name and fields, and each attribute costs every span. No
    // OpenTelemetry context activation on every entry (each poll of an
    // instrumented future): propagation reads the `tracing` span's context
    // ([`inject`]), not OpenTelemetry's current context.
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_context_activation(false)
        // Under the filter too: a layer of no filter would want every span
        // and event of the process.
        .and_then(DispatchCell(Arc::clone(&dispatch)))
        .with_filter(TraceFilter { dispatch })
}

/// Which spans and events become OpenTelemetry data (see [`layer`]).
struct TraceFilter {
    /// The dispatcher the layer runs in, to read a parent's trace context.
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

/// Whether a span's trace is sampled, kept on the span once asked.
struct Sampled(bool);

impl TraceFilter {
    fn wanted(metadata: &Metadata<'_>) -> bool {
        let level = *metadata.level();
        !metadata.target().starts_with("aide")
            && (level <= tracing::Level::WARN
                || (metadata.is_span() && level <= tracing::Level::INFO))
    }

    /// Whether the trace `span` belongs to is sampled (`true` when unknown).
    fn sampled<S>(&self, span: &SpanRef<'_, S>) -> bool
    where
        S: for<'a> LookupSpan<'a>,
    {
        if let Some(Sampled(sampled)) = span.extensions().get::<Sampled>() {
            return *sampled;
        }
        let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) else {
            return true;
        };
        // Starts the span in the SDK when it was not yet: that is where the
        // sampler decides. No lock of the span's is held here.
        let sampled =
            tracing_opentelemetry::get_otel_context(&span.id(), &dispatch).is_none_or(|context| {
                let span_context = context.span().span_context().clone();
                !span_context.is_valid() || span_context.is_sampled()
            });
        // Two children made at once may both get here: the later one replaces.
        span.extensions_mut().replace(Sampled(sampled));
        sampled
    }
}

impl<S> Filter<S> for TraceFilter
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(
        &self,
        metadata: &Metadata<'_>,
        cx: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        Self::wanted(metadata)
            && cx
                .lookup_current()
                .is_none_or(|parent| self.sampled(&parent))
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if Self::wanted(metadata) {
            // Whether it is wanted depends on the current trace.
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    // Without a hint, every `debug!` and `trace!` of every crate would be
    // asked about at each call instead of disabled once.
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::INFO)
    }
}

/// Keeps the dispatcher the layer is installed in for [`TraceFilter`].
struct DispatchCell(Arc<OnceLock<WeakDispatch>>);

impl<S: tracing::Subscriber> Layer<S> for DispatchCell {
    fn on_register_dispatch(&self, dispatch: &tracing::Dispatch) {
        let _ = self.0.set(dispatch.downgrade());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use opentelemetry_sdk::trace::Sampler;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Keeps every span it is given.
    #[derive(Debug, Clone, Default)]
    struct Collect(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Collect {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().expect("not poisoned").extend(batch);
            Ok(())
        }
    }

    /// Runs `work` under [`layer`] with `sampler`; the names of the spans
    /// exported.
    fn traced(sampler: Sampler, work: impl FnOnce()) -> Vec<String> {
        let spans = Collect::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .with_sampler(sampler)
            .build();
        let subscriber = tracing_subscriber::registry().with(layer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, work);
        spans
            .0
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|span| span.name.to_string())
            .collect()
    }

    /// A request span, a child under it and a client span in the child, the
    /// client injecting its context: whether the child was built as an
    /// OpenTelemetry span, and the `traceparent` sent.
    fn a_call() -> (bool, String) {
        let root = tracing::info_span!("root");
        let _root = root.enter();
        let child = tracing::info_span!("child");
        // A span the OpenTelemetry layer did not take has no context of its own.
        let built = child.context().span().span_context().is_valid();
        let _child = child.enter();
        let mut headers = http::HeaderMap::new();
        inject(&tracing::info_span!("client"), &mut headers);
        let traceparent = headers
            .get("traceparent")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_default();
        (built, traceparent)
    }

    #[test]
    fn a_sampled_trace_builds_and_exports_every_span() {
        let mut call = None;
        let mut exported = traced(Sampler::AlwaysOn, || call = Some(a_call()));
        let (built, traceparent) = call.expect("the call ran");
        assert!(built);
        assert!(traceparent.ends_with("-01"), "{traceparent}");
        exported.sort();
        assert_eq!(exported, ["child", "client", "root"]);
    }

    #[test]
    fn an_unsampled_trace_builds_no_children_yet_tells_the_callee() {
        let mut call = None;
        let exported = traced(Sampler::AlwaysOff, || call = Some(a_call()));
        let (built, traceparent) = call.expect("the call ran");
        assert!(!built, "a child of an unsampled span is not built");
        assert!(exported.is_empty(), "{exported:?}");
        // The callee continues the trace as not sampled, rather than starting
        // one of its own that its sampler might keep.
        assert!(traceparent.starts_with("00-"), "{traceparent:?}");
        assert!(traceparent.ends_with("-00"), "{traceparent}");
    }
}
