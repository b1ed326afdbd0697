//! HTTP sources: the call's deadline as the request's timeout, the
//! forwarded headers, and statuses mapped to [`SourceError`]s, either with
//! [`Backend`], a lean pool of HTTP/1.1 connections to one backend (the
//! faster path for the few known backends a BFF calls), or with [`send`]
//! through hyper-util's general client (any origin, and a connector of your
//! choice such as TLS).
//!
//! ```no_run
//! use std::time::Duration;
//! use bff_aggregate::{Aggregate, Forward, Source, http::send};
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Empty};
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//!
//! # async fn handler(headers: http::HeaderMap) -> Result<(), Box<dyn std::error::Error>> {
//! // One client per process, made at startup and cloned into each request.
//! let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
//! let forward = Forward::from_headers(&headers);
//!
//! let stock = Source::optional("stock", Duration::from_millis(150), move |call| {
//!     let (client, forward) = (client.clone(), forward.clone());
//!     async move {
//!         let request = http::Request::get("http://127.0.0.1:8081/stock/42")
//!             .body(Empty::new())
//!             .map_err(bff_aggregate::SourceError::permanent)?;
//!         let response = send(&client, request, &forward, &call).await?;
//!         let body = response
//!             .into_body()
//!             .collect()
//!             .await
//!             .map_err(bff_aggregate::SourceError::transient)?;
//!         Ok(body.to_bytes())
//!     }
//! });
//! let assembled = Aggregate::new(Duration::from_millis(300)).run((stock,)).await?;
//! # Ok(())
//! # }
//! ```
//!
//! [`send`] bounds the time to the response's head. Reading the body happens
//! after it returns, inside the source's future, so the source's deadline
//! still bounds it.

use std::error::Error as StdError;

use ::http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::Connect;

use crate::error::SourceError;
use crate::forward::Forward;
use crate::source::Call;

mod backend;

pub use backend::{Backend, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_IDLE, InvalidOrigin, PooledBody};

/// Sends `request` through `client`, waiting at most the call's remaining
/// time for the response.
///
/// Adds `x-request-id` and `authorization` from `forward` unless the request
/// already has them. Connection errors, 5xx and 429 are transient (the
/// timeout as [`SourceError::timeout`]); other 4xx are permanent; 2xx and
/// 3xx return the response.
pub async fn send<C, B>(
    client: &Client<C, B>,
    mut request: Request<B>,
    forward: &Forward,
    call: &Call,
) -> Result<Response<Incoming>, SourceError>
where
    C: Connect + Clone + Send + Sync + 'static,
    B: http_body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    forward.apply_to(request.headers_mut());
    let response = tokio::time::timeout(call.remaining(), client.request(request))
        .await
        .map_err(|_elapsed| SourceError::timeout("HTTP request timed out"))?
        .map_err(SourceError::transient)?;
    check_status(response.status())?;
    Ok(response)
}

/// 5xx and 429 are transient, other 4xx permanent, the rest fine.
fn check_status(status: StatusCode) -> Result<(), SourceError> {
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Err(SourceError::transient(status_message(status)))
    } else if status.is_client_error() {
        Err(SourceError::permanent(status_message(status)))
    } else {
        Ok(())
    }
}

fn status_message(status: StatusCode) -> String {
    format!("HTTP {status}")
}
