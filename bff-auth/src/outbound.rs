//! Requests to other parties (OAuth providers, a JWKS URL) as trace spans.

use tracing::Instrument;

/// Sends `request` with `client` under a client span named `what` ("Google
/// token endpoint", "JWKS"): the span carries the method, the host and the
/// answer's status (never the URL, which may hold a secret), and with the
/// `otel` feature the request carries the span's W3C trace context, so the
/// provider's side of the call can join the trace.
pub(crate) async fn send(
    client: &reqwest::Client,
    what: &str,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    #[cfg_attr(not(feature = "otel"), allow(unused_mut))]
    let mut request = request.build()?;
    let span = tracing::info_span!(
        "outbound",
        otel.name = what,
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        http.request.method = %request.method(),
        server.address = request.url().host_str().unwrap_or_default(),
        http.response.status_code = tracing::field::Empty,
    );
    #[cfg(feature = "otel")]
    bff_core::telemetry::otel::inject(&span, request.headers_mut());
    let result = client.execute(request).instrument(span.clone()).await;
    match &result {
        Ok(response) => {
            span.record("http.response.status_code", response.status().as_u16());
            if response.status().is_server_error() {
                span.record("otel.status_code", "error");
            }
        }
        Err(_) => {
            span.record("otel.status_code", "error");
        }
    }
    result
}
