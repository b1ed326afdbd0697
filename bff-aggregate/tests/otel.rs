//! With the `otel` feature, calls carry the calling span's W3C trace context:
//! gRPC metadata, HTTP headers (through `Forward::apply_to`) and the proxy's
//! allow-listed headers all get a `traceparent` naming the current span.

use bff_aggregate::Call;
use bff_aggregate::Forward;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

/// Runs `check` inside a traced span, with the span's `trace_id-span_id`.
fn in_traced_span(check: impl FnOnce(&str)) {
    let provider = SdkTracerProvider::builder().build();
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "test");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("source");
        let _entered = span.enter();
        let context = span.context();
        let span_context = opentelemetry::trace::TraceContextExt::span(&context)
            .span_context()
            .clone();
        check(&format!(
            "{}-{}",
            span_context.trace_id(),
            span_context.span_id()
        ));
    });
}

fn call() -> Call {
    Call::new(tokio::time::Instant::now() + std::time::Duration::from_secs(1))
}

#[test]
fn grpc_metadata_and_http_headers_name_the_calling_span() {
    in_traced_span(|ids| {
        let expected = format!("00-{ids}-01");
        let request = bff_aggregate::grpc::request((), &Forward::default(), &call());
        assert_eq!(
            request
                .metadata()
                .get("traceparent")
                .map(|v| v.to_str().unwrap_or_default()),
            Some(expected.as_str())
        );
        let mut headers = http::HeaderMap::new();
        Forward::default().apply_to(&mut headers);
        assert_eq!(headers["traceparent"], expected.as_str());
        // A request that names its own trace context keeps it.
        let mut own = http::HeaderMap::new();
        own.insert("traceparent", http::HeaderValue::from_static("00-mine"));
        Forward::default().apply_to(&mut own);
        assert_eq!(own["traceparent"], "00-mine");
    });
}

#[test]
fn outside_a_traced_span_nothing_is_added() {
    let request = bff_aggregate::grpc::request((), &Forward::default(), &call());
    assert!(request.metadata().get("traceparent").is_none());
    let mut headers = http::HeaderMap::new();
    Forward::default().apply_to(&mut headers);
    assert!(headers.get("traceparent").is_none());
}
