//! What every backend call carries on behalf of the frontend request.

use std::fmt;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};

/// The `x-request-id` header name.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What is propagated to backends: the request id, so one request can be
/// followed through every log, and an `Authorization` for the backend, so it
/// decides for itself what the user may see.
///
/// The authorization is never the caller's own token: that one is for the
/// BFF, and a backend (or a bus between them) that saw it could replay it
/// against the BFF. Set one minted for the backend's audience
/// (`bff_auth::mint`) with [`Forward::with_authorization`].
///
/// The protocol helpers (modules `grpc`, `nats` and `http`, behind features
/// of the same names) put both on every call. `Debug` never shows the
/// authorization value, so a `Forward` can sit in a logged struct.
///
/// ```
/// use bff_aggregate::Forward;
/// use http::{HeaderMap, HeaderValue};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("authorization", HeaderValue::from_static("Bearer users-own"));
/// headers.insert("x-request-id", HeaderValue::from_static("req-1"));
/// let forward = Forward::from_headers(&headers)
///     .with_authorization(HeaderValue::from_static("Bearer minted-for-orders"));
///
/// assert_eq!(forward.request_id().map(|v| v.as_bytes()), Some(&b"req-1"[..]));
/// assert_eq!(forward.authorization().map(|v| v.as_bytes()), Some(&b"Bearer minted-for-orders"[..]));
/// assert!(!format!("{forward:?}").contains("minted"));
/// ```
#[derive(Clone, Default)]
pub struct Forward {
    request_id: Option<HeaderValue>,
    authorization: Option<HeaderValue>,
}

impl Forward {
    /// Nothing to forward.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `x-request-id` from the incoming request's headers; the
    /// request id should already be the one the BFF validated or generated
    /// (bff-core's request-id layer puts it in the headers). The caller's
    /// `Authorization` is deliberately not taken: see the [type docs](Self).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        match headers.get(X_REQUEST_ID) {
            Some(id) => Self::new().with_request_id(id.clone()),
            None => Self::new(),
        }
    }

    /// Sets the request id.
    #[must_use]
    pub fn with_request_id(mut self, id: HeaderValue) -> Self {
        self.request_id = Some(id);
        self
    }

    /// Sets the authorization, marked sensitive so that HTTP/2 never puts it
    /// in its header compression tables.
    #[must_use]
    pub fn with_authorization(mut self, mut authorization: HeaderValue) -> Self {
        authorization.set_sensitive(true);
        self.authorization = Some(authorization);
        self
    }

    /// The request id, if any.
    pub fn request_id(&self) -> Option<&HeaderValue> {
        self.request_id.as_ref()
    }

    /// The authorization, if any.
    pub fn authorization(&self) -> Option<&HeaderValue> {
        self.authorization.as_ref()
    }

    /// Adds `x-request-id` and `authorization` to `headers`, and (feature
    /// `otel`) the current span's `traceparent` and `tracestate`, leaving any
    /// value already there: a caller that set its own (a service token for
    /// one backend, say) keeps it.
    pub fn apply_to(&self, headers: &mut HeaderMap) {
        if let Some(id) = &self.request_id {
            headers.entry(X_REQUEST_ID).or_insert_with(|| id.clone());
        }
        if let Some(authorization) = &self.authorization {
            headers
                .entry(AUTHORIZATION)
                .or_insert_with(|| authorization.clone());
        }
        // The calling span's trace context (feature `otel`), unless the
        // request names one of its own.
        for (name, value) in &trace_context() {
            headers.entry(name).or_insert_with(|| value.clone());
        }
    }
}

impl fmt::Debug for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forward")
            .field("request_id", &self.request_id)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// The W3C trace context of the current span (`traceparent`, and `tracestate`
/// when there is one), for a call to carry; empty when the span is not traced
/// or the `otel` feature is off.
pub(crate) fn trace_context() -> HeaderMap {
    #[allow(unused_mut)]
    let mut headers = HeaderMap::new();
    #[cfg(feature = "otel")]
    bff_core::telemetry::otel::inject(&tracing::Span::current(), &mut headers);
    headers
}
