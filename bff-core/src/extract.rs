//! Extractors whose rejections are problems with per-field errors.
//!
//! [`Json`] reads a JSON body: a wrong content type is 415, a body over the limit
//! 413, malformed JSON 400 `malformed_json`, and JSON of the wrong shape (a
//! missing, unknown or mistyped field) 422 `validation_failed` naming the field.
//! Request types reject unknown fields with `#[serde(deny_unknown_fields)]`.
//! [`Query`] does the same for query strings. Both document these statuses in
//! the OpenAPI operations that use them (with the `openapi` feature, for types
//! that implement `schemars::JsonSchema`).
//!
//! ```
//! use axum::{Router, routing::post};
//! use bff_core::extract::Json;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Rename { name: String }
//!
//! async fn rename(Json(body): Json<Rename>) -> String {
//!     body.name
//! }
//!
//! let app: Router = Router::new().route("/rename", post(rename));
//! # let _ = app;
//! ```

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http::header::CONTENT_TYPE;
use http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::{FieldError, Problem};

/// A JSON request body (or response), with problem rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(Problem::from_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
                .with_detail("Expected a request body with `Content-Type: application/json`."));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::from_status(StatusCode::PAYLOAD_TOO_LARGE)
                    .with_detail("The request body is too large.")
            } else {
                Problem::bad_request("The request body could not be read.")
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Deserialises a JSON document, mapping errors as [`Json`] does.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                Problem::validation(vec![field_error(&path, &inner.to_string())])
            }
            _ => Problem::new(StatusCode::BAD_REQUEST, "malformed_json", "Malformed JSON")
                .with_detail(format!(
                    "The request body is not valid JSON: {}",
                    strip_position(&inner.to_string())
                )),
        }
    })?;
    // Trailing characters after the document are malformed JSON too.
    de.end().map_err(|_| {
        Problem::new(StatusCode::BAD_REQUEST, "malformed_json", "Malformed JSON")
            .with_detail("The request body has characters after the JSON document.")
    })?;
    Ok(value)
}

/// Builds a field error from a serde path and message. Serde reports a missing
/// field at its parent's path, naming the field in backticks; the field itself is
/// what a client needs.
fn field_error(path: &str, message: &str) -> FieldError {
    let message = strip_position(message);
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let field = match (path, missing) {
        (".", Some(name)) => name.to_owned(),
        (parent, Some(name)) => format!("{parent}.{name}"),
        (path, None) => path.to_owned(),
    };
    // For an unknown field serde lists every expected one; the OpenAPI document says
    // that better, so the message keeps only what is wrong.
    let message = match message.split_once(", expected") {
        Some((head, _)) if head.starts_with("unknown field") => head,
        _ => message,
    };
    FieldError::new(field, message)
}

fn strip_position(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A query string, with problem rejections (422 naming the parameter).
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|error| {
                let path = error.path().to_string();
                Problem::validation(vec![field_error(&path, &error.into_inner().to_string())])
            })
    }
}

#[cfg(feature = "openapi")]
mod openapi {
    //! How [`Json`] and [`Query`] appear in OpenAPI operations.

    use aide::generate::GenContext;
    use aide::openapi::{Operation, Response as OpenApiResponse, StatusCode as OpenApiStatus};
    use aide::operation::{OperationInput, OperationOutput};
    use schemars::JsonSchema;

    use super::{Json, Query};
    use crate::problem::problem_response;

    #[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
    impl<T: JsonSchema> OperationInput for Json<T> {
        fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
            axum::Json::<T>::operation_input(ctx, operation);
        }

        /// `Json`'s rejections, as problems: a route that documents one of these
        /// statuses itself keeps its own, more specific, description.
        fn inferred_early_responses(
            ctx: &mut GenContext,
            _operation: &mut Operation,
        ) -> Vec<(Option<OpenApiStatus>, OpenApiResponse)> {
            [
                (
                    400,
                    "`malformed_json`: the body is not JSON, or not only JSON.",
                ),
                (413, "`payload_too_large`: the body is over the size limit."),
                (
                    415,
                    "`unsupported_media_type`: the body is not sent as `application/json`.",
                ),
                (
                    422,
                    "`validation_failed`: a field is missing, unknown or invalid; `errors` names each.",
                ),
            ]
            .into_iter()
            .map(|(status, description)| {
                (
                    Some(OpenApiStatus::Code(status)),
                    problem_response(ctx, description),
                )
            })
            .collect()
        }
    }

    #[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
    impl<T: JsonSchema> OperationOutput for Json<T> {
        type Inner = T;

        fn operation_response(
            ctx: &mut GenContext,
            operation: &mut Operation,
        ) -> Option<OpenApiResponse> {
            axum::Json::<T>::operation_response(ctx, operation)
        }

        fn inferred_responses(
            ctx: &mut GenContext,
            operation: &mut Operation,
        ) -> Vec<(Option<OpenApiStatus>, OpenApiResponse)> {
            axum::Json::<T>::inferred_responses(ctx, operation)
        }
    }

    #[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
    impl<T: JsonSchema> OperationInput for Query<T> {
        fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
            axum::extract::Query::<T>::operation_input(ctx, operation);
        }

        /// `Query`'s rejection, as a problem.
        fn inferred_early_responses(
            ctx: &mut GenContext,
            _operation: &mut Operation,
        ) -> Vec<(Option<OpenApiStatus>, OpenApiResponse)> {
            vec![(
                Some(OpenApiStatus::Code(422)),
                problem_response(
                    ctx,
                    "`validation_failed`: a query parameter is unknown or invalid; `errors` names it.",
                ),
            )]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        #[allow(dead_code)]
        sku: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[allow(dead_code)]
        name: String,
        #[serde(default)]
        #[allow(dead_code)]
        items: Vec<Item>,
    }

    fn fields(problem: &Problem) -> Vec<(&str, &str)> {
        problem
            .errors
            .iter()
            .map(|e| (e.field.as_str(), e.message.as_str()))
            .collect()
    }

    #[test]
    fn unknown_field_is_named() {
        let problem =
            parse_json::<Body>(br#"{"name":"a","admin":true}"#).expect_err("unknown field");
        assert_eq!(problem.status, 422);
        assert_eq!(fields(&problem), vec![("admin", "unknown field `admin`")]);
    }

    #[test]
    fn nested_and_missing_fields_are_named() {
        let problem =
            parse_json::<Body>(br#"{"name":"a","items":[{"sku":1}]}"#).expect_err("bad type");
        assert_eq!(problem.errors[0].field, "items[0].sku");
        let problem = parse_json::<Body>(br#"{}"#).expect_err("missing");
        assert_eq!(fields(&problem), vec![("name", "missing field `name`")]);
    }

    #[test]
    fn malformed_json_is_400() {
        for body in [
            &br#"{"name": "#[..],
            b"not json",
            br#"{"name":"a"} trailing"#,
        ] {
            let problem = parse_json::<Body>(body).expect_err("malformed");
            assert_eq!(problem.status, 400);
            assert_eq!(problem.code, "malformed_json");
        }
    }

    #[test]
    fn json_content_types() {
        let mut headers = http::HeaderMap::new();
        assert!(!is_json(&headers));
        for (value, ok) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
        ] {
            headers.insert(CONTENT_TYPE, value.parse().expect("header"));
            assert_eq!(is_json(&headers), ok, "{value}");
        }
    }
}
