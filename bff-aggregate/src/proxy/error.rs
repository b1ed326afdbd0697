//! What the proxy answers instead of the upstream's response.

use ::http::{Method, StatusCode};

use super::path::PathError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request was not proxied, or the upstream's answer not passed back.
///
/// Each variant has the [`status`](Self::status) and stable
/// [`code`](Self::code) of the problem the client should get. The
/// `Display` message is safe to show the client as the problem's detail: it
/// names no host, address or internal error; those are in
/// [`source`](std::error::Error::source), for the log of a 5xx. With
/// bff-core's `Problem`:
///
/// ```text
/// let problem = Problem::new(error.status(), error.code(), error.title()).with_detail(error.to_string());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The name is not in the table of upstreams. 404 `not_found`.
    #[error("there is no such upstream")]
    UnknownUpstream,
    /// The path was refused. 400 `bad_request`.
    #[error("the path is refused: {0}")]
    Path(#[from] PathError),
    /// `CONNECT`, `TRACE` or an extension method. 405 `method_not_allowed`.
    #[error("the method is not proxied")]
    Method(Method),
    /// The request body is over the upstream's limit. 413 `payload_too_large`.
    #[error("the request body is larger than {limit} bytes")]
    RequestTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The client's body could not be read. 400 `bad_request`.
    #[error("the request body could not be read")]
    RequestBody(#[source] BoxError),
    /// The token source failed, or gave a token that is not a header value.
    /// 500 `internal`.
    #[error("no token could be had for the upstream")]
    Token(#[source] BoxError),
    /// The upstream did not answer with a response's head within its
    /// timeout. 504 `gateway_timeout`.
    #[error("the upstream did not answer in time")]
    Timeout,
    /// The upstream could not be reached (connection refused, DNS, TLS) or
    /// broke the exchange. 502 `bad_gateway`.
    #[error("the upstream could not be reached")]
    Unreachable(#[source] BoxError),
    /// The upstream's response declares a body over the limit. 502
    /// `bad_gateway`.
    #[error("the upstream's response is larger than {limit} bytes")]
    ResponseTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

impl ProxyError {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownUpstream => StatusCode::NOT_FOUND,
            Self::Path(_) | Self::RequestBody(_) => StatusCode::BAD_REQUEST,
            Self::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Token(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Unreachable(_) | Self::ResponseTooLarge { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// The stable snake_case code of the problem.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownUpstream => "not_found",
            Self::Path(_) | Self::RequestBody(_) => "bad_request",
            Self::Method(_) => "method_not_allowed",
            Self::RequestTooLarge { .. } => "payload_too_large",
            Self::Token(_) => "internal",
            Self::Timeout => "gateway_timeout",
            Self::Unreachable(_) | Self::ResponseTooLarge { .. } => "bad_gateway",
        }
    }

    /// The problem's title: the status's reason phrase.
    pub fn title(&self) -> &'static str {
        self.status().canonical_reason().unwrap_or("Error")
    }
}
