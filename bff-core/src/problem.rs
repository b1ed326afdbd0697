//! RFC 9457 problem details: the one error shape every response of a BFF uses.
//!
//! A [`Problem`] is built from public facts only (a status, a stable snake_case
//! `code`, a title and an optional detail). Internal errors never travel in it:
//! [`Problem::internal`] logs the cause with the request id and answers with a
//! generic 500, so SQL, driver messages and stack traces stay in the logs.
//!
//! ```
//! use axum::{Router, routing::get};
//! use bff_core::problem::{FieldError, Problem};
//!
//! async fn handler() -> Result<&'static str, Problem> {
//!     Err(Problem::validation(vec![FieldError::new("password", "must be at least 8 characters")]))
//! }
//!
//! let app: Router = Router::new().route("/", get(handler));
//! # let _ = app;
//! ```

use std::borrow::Cow;
use std::fmt;

#[cfg(feature = "openapi")]
use aide::generate::GenContext;
#[cfg(feature = "openapi")]
use aide::openapi::{
    MediaType, Operation, Response as OpenApiResponse, SchemaObject, StatusCode as OpenApiStatus,
};
#[cfg(feature = "openapi")]
use aide::operation::OperationOutput;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::request_id::RequestId;

/// The media type of problem responses.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Prefix of the `type` member: `urn:bff:problem:<code>`.
///
/// A URN names the problem kind stably without promising a page that resolves
/// (RFC 9457 section 3.1.1 allows non-resolvable type URIs).
pub const TYPE_PREFIX: &str = "urn:bff:problem:";

/// One invalid field of a request, reported in a problem's `errors` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct FieldError {
    /// Path of the offending field, dotted for nested members (`items[0].sku`).
    pub field: String,
    /// What is wrong with it, in words a user can act on.
    pub message: String,
}

impl FieldError {
    /// A field error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem details object, and the response it becomes.
///
/// Serialised as `{"type", "title", "status", "detail", "code", "request_id"}`,
/// plus `errors` for validation failures and any extension members.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "openapi",
    schemars(title = "Problem", description = "An RFC 9457 problem details object.")
)]
pub struct Problem {
    /// URI reference naming the problem kind (`urn:bff:problem:<code>`).
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short, human-readable summary of the problem kind.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Human-readable explanation of this occurrence, when there is more to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable snake_case machine-readable code (`validation_failed`, `not_found`, ...).
    pub code: String,
    /// The request id (also sent as `X-Request-Id`), to quote when reporting the problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Per-field errors, for validation failures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Extension members specific to a problem kind.
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
    /// Extra response headers such as `Retry-After` or `WWW-Authenticate`.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schemars(skip))]
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Problem {
    /// A problem with the given status, stable `code` and `title`.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        title: impl Into<Cow<'static, str>>,
    ) -> Self {
        let code = code.into();
        Self {
            type_uri: format!("{TYPE_PREFIX}{code}"),
            title: title.into().into_owned(),
            status: status.as_u16(),
            detail: None,
            code: code.into_owned(),
            request_id: None,
            errors: Vec::new(),
            extensions: serde_json::Map::new(),
            headers: Vec::new(),
        }
    }

    /// The generic problem for a status code, used when nothing more specific is known
    /// (for example to give a bare 405 or 413 from a lower layer a problem body).
    pub fn from_status(status: StatusCode) -> Self {
        let code = match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::NOT_ACCEPTABLE => "not_acceptable",
            StatusCode::REQUEST_TIMEOUT => "request_timeout",
            StatusCode::CONFLICT => "conflict",
            StatusCode::GONE => "gone",
            StatusCode::PRECONDITION_FAILED => "precondition_failed",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "validation_failed",
            StatusCode::PRECONDITION_REQUIRED => "precondition_required",
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::BAD_GATEWAY
            | StatusCode::GATEWAY_TIMEOUT => "unavailable",
            s if s.is_server_error() => "internal",
            _ => "error",
        };
        let title = status.canonical_reason().unwrap_or("Error");
        Self::new(status, code, title)
    }

    /// 400 `bad_request`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::from_status(StatusCode::BAD_REQUEST).with_detail(detail)
    }

    /// 422 `validation_failed` with per-field errors.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut problem = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Validation failed",
        );
        problem.detail = Some(match errors.as_slice() {
            [] => "The request is not valid.".to_owned(),
            [one] => format!("`{}`: {}", one.field, one.message),
            many => format!("{} fields are not valid.", many.len()),
        });
        problem.errors = errors;
        problem
    }

    /// 422 `validation_failed` for a single field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    /// 401 `unauthorized` with `WWW-Authenticate: Bearer`.
    pub fn unauthorized() -> Self {
        Self::from_status(StatusCode::UNAUTHORIZED).with_header(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        )
    }

    /// 403 `forbidden`.
    pub fn forbidden() -> Self {
        Self::from_status(StatusCode::FORBIDDEN)
    }

    /// 404 `not_found`.
    pub fn not_found() -> Self {
        Self::from_status(StatusCode::NOT_FOUND)
            .with_detail("The requested resource does not exist.")
    }

    /// 409 `conflict`.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::from_status(StatusCode::CONFLICT).with_detail(detail)
    }

    /// 503 `unavailable`.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::from_status(StatusCode::SERVICE_UNAVAILABLE).with_detail(detail)
    }

    /// 500 `internal`: logs `error` (with the request id of the current request) and
    /// answers with a body that says nothing about it.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(
            request_id = RequestId::current().as_ref().map(RequestId::as_str),
            error = %ErrorChain(error),
            "internal error"
        );
        Self::from_status(StatusCode::INTERNAL_SERVER_ERROR)
            .with_detail("An internal error occurred. Quote the request id when reporting it.")
    }

    /// Sets the detail member.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds an extension member (`name` must not be one of the standard members).
    pub fn with_extension(mut self, name: impl Into<String>, value: serde_json::Value) -> Self {
        self.extensions.insert(name.into(), value);
        self
    }

    /// Adds a response header, such as `Retry-After`.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.code)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl Problem {
    /// The response this problem answers with, its body as bytes: the same as
    /// its axum [`IntoResponse`], for services on another body type (tonic,
    /// bare hyper). The current request's id is filled in if none is set.
    pub fn into_http_response(mut self) -> http::Response<Bytes> {
        if self.request_id.is_none() {
            self.request_id = RequestId::current().map(|id| id.as_str().to_owned());
        }
        let status = self.status();
        let headers = std::mem::take(&mut self.headers);
        // Serialising a struct of strings and a JSON map cannot fail; the fallback
        // keeps the promise of a problem body even if it somehow did.
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| {
            br#"{"type":"urn:bff:problem:internal","title":"Internal Server Error","status":500,"code":"internal"}"#.to_vec()
        });
        let mut response = http::Response::new(Bytes::from(body));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in headers {
            response.headers_mut().append(name, value);
        }
        response
    }

    /// Its extra headers (`Retry-After`, `WWW-Authenticate`, ...).
    pub(crate) fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        self.into_http_response().map(axum::body::Body::from)
    }
}

#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
impl OperationOutput for Problem {
    type Inner = Self;

    fn operation_response(
        ctx: &mut GenContext,
        _operation: &mut Operation,
    ) -> Option<OpenApiResponse> {
        Some(problem_response(ctx, "Error, as RFC 9457 problem details."))
    }

    fn inferred_responses(
        ctx: &mut GenContext,
        operation: &mut Operation,
    ) -> Vec<(Option<OpenApiStatus>, OpenApiResponse)> {
        Self::operation_response(ctx, operation)
            .map(|r| vec![(None, r)])
            .unwrap_or_default()
    }
}

/// An OpenAPI response whose body is a [`Problem`], for documenting specific statuses.
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub fn problem_response(ctx: &mut GenContext, description: &str) -> OpenApiResponse {
    let json_schema = ctx.schema.subschema_for::<Problem>();
    OpenApiResponse {
        description: description.to_owned(),
        content: [(
            PROBLEM_JSON.to_owned(),
            MediaType {
                schema: Some(SchemaObject {
                    json_schema,
                    example: None,
                    external_docs: None,
                }),
                ..Default::default()
            },
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    }
}

/// Displays an error with its whole `source()` chain, for logs.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(problem: Problem) -> (StatusCode, http::HeaderMap, serde_json::Value) {
        let response = problem.into_response();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or_default(),
        )
    }

    #[tokio::test]
    async fn validation_problem_has_the_contract_shape() {
        let (status, headers, body) = body_json(Problem::validation(vec![FieldError::new(
            "password",
            "too short",
        )]))
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(headers[CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(body["type"], "urn:bff:problem:validation_failed");
        assert_eq!(body["code"], "validation_failed");
        assert_eq!(body["status"], 422);
        assert_eq!(body["errors"][0]["field"], "password");
        assert_eq!(body["errors"][0]["message"], "too short");
    }

    #[tokio::test]
    async fn unauthorized_carries_www_authenticate() {
        let (status, headers, body) = body_json(Problem::unauthorized()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[http::header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(body["code"], "unauthorized");
    }

    #[tokio::test]
    async fn internal_hides_the_cause() {
        let cause = std::io::Error::other("relation \"users\" does not exist");
        let (status, _, body) = body_json(Problem::internal(&cause)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["code"], "internal");
        assert!(!body.to_string().contains("relation"), "{body}");
    }
}
