//! NATS sources: a request-reply whose timeout is the call's deadline, with
//! the forwarded headers.
//!
//! NATS answers at once when no one subscribes to a subject ("no
//! responders"), so a backend that is down costs a round trip, not the whole
//! deadline. Both that and a timeout are transient errors.
//!
//! ```no_run
//! use std::time::Duration;
//! use bff_aggregate::{Aggregate, Forward, Source, nats};
//!
//! # async fn handler(headers: http::HeaderMap) -> Result<(), Box<dyn std::error::Error>> {
//! // One client per process, made at startup and cloned into each request.
//! let client = async_nats::connect("127.0.0.1:4222").await?;
//! let forward = Forward::from_headers(&headers);
//!
//! let prices = Source::optional("prices", Duration::from_millis(150), move |call| {
//!     let (client, forward) = (client.clone(), forward.clone());
//!     async move {
//!         let reply = nats::request(&client, "prices.quote", "EUR".into(), &forward, &call).await?;
//!         Ok(reply.payload)
//!     }
//! });
//! let assembled = Aggregate::new(Duration::from_millis(300)).run((prices,)).await?;
//! let (prices,) = assembled.parts;
//! # Ok(())
//! # }
//! ```

use async_nats::subject::ToSubject;
use async_nats::{Client, HeaderMap, Message, RequestErrorKind};
use bytes::Bytes;

use crate::error::{ErrorKind, SourceError};
use crate::forward::Forward;
use crate::source::Call;

/// The header a NATS micro service (`async_nats::service`) sets on an error
/// reply, with its message; the code is in [`SERVICE_ERROR_CODE`]. A
/// responder written by hand answers errors the same way, and [`request`]
/// turns them into errors.
pub const SERVICE_ERROR: &str = "Nats-Service-Error";
/// The header with a service error's HTTP-like code: 500 and above are
/// transient, below permanent.
pub const SERVICE_ERROR_CODE: &str = "Nats-Service-Error-Code";

/// The header carrying the requester's remaining time in whole milliseconds
/// (NATS has no deadline of its own, unlike gRPC's `grpc-timeout`), so a
/// responder can stop working on a request nobody waits for any more.
pub const TIMEOUT_HEADER: &str = "Bff-Timeout-Ms";

/// Sends `payload` to `subject` and waits for one reply, at most the call's
/// remaining time.
///
/// The request carries `X-Request-Id` and `Authorization` headers from
/// `forward`, the remaining time in [`TIMEOUT_HEADER`], and (feature `otel`)
/// the current span's `traceparent`. Errors: no responders and a timeout are transient (the timeout
/// reported as [`SourceError::timeout`]); an invalid subject or an oversized
/// payload is permanent. A reply from a NATS micro service with a
/// `Nats-Service-Error` header is an error too: transient for codes of 500
/// and above, permanent below.
pub async fn request(
    client: &Client,
    subject: impl ToSubject,
    payload: Bytes,
    forward: &Forward,
    call: &Call,
) -> Result<Message, SourceError> {
    let request = async_nats::Request::new()
        .payload(payload)
        .headers(headers(forward, call))
        .timeout(Some(call.remaining()));
    let reply = client
        .send_request(subject, request)
        .await
        .map_err(|error| match error.kind() {
            RequestErrorKind::TimedOut => SourceError::timeout(error),
            RequestErrorKind::NoResponders | RequestErrorKind::Other => {
                SourceError::transient(error)
            }
            _ => SourceError::permanent(error),
        })?;
    match service_error(&reply) {
        Some(error) => Err(error),
        None => Ok(reply),
    }
}

// NATS header values are text; a value that is not visible ASCII is left
// out rather than sent mangled.
fn headers(forward: &Forward, call: &Call) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        TIMEOUT_HEADER,
        call.remaining().as_millis().to_string().as_str(),
    );
    let forwarded = [
        ("X-Request-Id", forward.request_id()),
        ("Authorization", forward.authorization()),
    ];
    for (name, value) in forwarded {
        if let Some(value) = value.and_then(|v| v.to_str().ok()) {
            headers.insert(name, value);
        }
    }
    for (name, value) in &crate::forward::trace_context() {
        if let Ok(value) = value.to_str() {
            headers.insert(name.as_str(), value);
        }
    }
    headers
}

fn service_error(reply: &Message) -> Option<SourceError> {
    let headers = reply.headers.as_ref()?;
    let message = headers.get(SERVICE_ERROR)?.as_str();
    let code = headers
        .get(SERVICE_ERROR_CODE)
        .and_then(|code| code.as_str().parse::<u16>().ok())
        .unwrap_or(500);
    let kind = if code >= 500 {
        ErrorKind::Transient
    } else {
        ErrorKind::Permanent
    };
    Some(SourceError::msg(kind, format!("{code} {message}")))
}
