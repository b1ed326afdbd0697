//! gRPC sources with tonic: the call's deadline as `grpc-timeout`, the
//! forwarded headers as metadata, and tonic's [`Status`](tonic::Status)
//! mapped to a [`SourceError`].
//!
//! ```no_run
//! use std::time::Duration;
//! use bff_aggregate::{Aggregate, Forward, Source, grpc};
//! use tonic_health::pb::HealthCheckRequest;
//! use tonic_health::pb::health_client::HealthClient;
//!
//! # async fn handler(headers: http::HeaderMap) -> Result<(), Box<dyn std::error::Error>> {
//! // One channel per backend, made at startup and cloned into each request.
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect_lazy();
//! let forward = Forward::from_headers(&headers);
//!
//! let health = Source::required("health", Duration::from_millis(200), move |call| {
//!     let mut client = HealthClient::new(channel.clone());
//!     let request = grpc::request(HealthCheckRequest::default(), &forward, &call);
//!     async move { Ok(client.check(request).await?.into_inner().status) }
//! });
//! let assembled = Aggregate::new(Duration::from_millis(300)).run((health,)).await?;
//! # Ok(())
//! # }
//! ```

use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::{Code, Request};

use crate::error::SourceError;
use crate::forward::Forward;
use crate::source::Call;

/// A tonic request for `message` that carries the call's remaining time as
/// `grpc-timeout` (the server cancels the handler when it passes), the
/// forwarded `authorization` and `x-request-id` as metadata, and (feature
/// `otel`) the current span's `traceparent`.
pub fn request<T>(message: T, forward: &Forward, call: &Call) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(call.remaining());
    let metadata = request.metadata_mut();
    if let Some(authorization) = forward.authorization() {
        insert(metadata, "authorization", authorization);
    }
    if let Some(id) = forward.request_id() {
        insert(metadata, "x-request-id", id);
    }
    for (name, value) in &crate::forward::trace_context() {
        insert(metadata, name.as_str(), value);
    }
    request
}

// Header values that are not visible ASCII cannot be ASCII metadata; such a
// value is left out rather than sent mangled.
fn insert(metadata: &mut MetadataMap, key: &str, value: &http::HeaderValue) {
    let value = value
        .to_str()
        .ok()
        .and_then(|v| AsciiMetadataValue::try_from(v).ok());
    let key = tonic::metadata::AsciiMetadataKey::from_bytes(key.as_bytes()).ok();
    if let (Some(key), Some(value)) = (key, value) {
        metadata.insert(key, value);
    }
}

/// Maps a gRPC status to a source error.
///
/// Transient (retried, counted by the breaker): `Unavailable` (includes
/// connection failures), `Unknown`, `ResourceExhausted`, `Aborted`,
/// `Internal` (also what tonic reports for a broken HTTP/2 stream) and
/// `DeadlineExceeded` (a [timeout](SourceError::timeout)). The `Cancelled`
/// that tonic's channel reports when the request's own `grpc-timeout` runs
/// out on the client side is a timeout too. Everything else (`NotFound`,
/// `InvalidArgument`, `PermissionDenied`, ...) is a definite answer and
/// permanent.
pub fn status_error(status: tonic::Status) -> SourceError {
    match status.code() {
        Code::DeadlineExceeded => SourceError::timeout(status),
        // tonic turns its client-side `TimeoutExpired` into this status and
        // keeps only the error's text, so the text is what tells them apart.
        Code::Cancelled if status.message() == tonic::TimeoutExpired(()).to_string() => {
            SourceError::timeout(status)
        }
        Code::Unavailable
        | Code::Unknown
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Internal => SourceError::transient(status),
        _ => SourceError::permanent(status),
    }
}

impl From<tonic::Status> for SourceError {
    /// See [`status_error`].
    fn from(status: tonic::Status) -> Self {
        status_error(status)
    }
}
