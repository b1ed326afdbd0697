//! OpenAPI 3.1 with aide: the document at `/openapi.json` and Swagger UI at `/docs`.
//!
//! The Swagger UI assets (swagger-ui-dist, Apache-2.0, see
//! `assets/swagger-ui/`) are compiled into the binary and served by the app,
//! and the page is sent with a Content-Security-Policy that only allows its own
//! origin, so loading `/docs` makes no request anywhere else.
//!
//! Routes are registered before `finish_api` (so they document themselves) and
//! the finished document is handed over afterwards with [`ApiDocs::publish`]:
//!
//! ```
//! use aide::axum::ApiRouter;
//! use aide::openapi::OpenApi;
//! use bff_core::openapi::ApiDocs;
//!
//! let docs = ApiDocs::new();
//! let mut api = OpenApi::default();
//! let app: axum::Router = ApiRouter::new().merge(bff_core::openapi::routes(docs.clone())).finish_api(&mut api);
//! docs.publish(&api).expect("the document serialises");
//! # let _ = app;
//! ```
//!
//! [`problem`], [`header`] and [`require_header`] document what a route
//! enforces beyond its types: the error statuses it can answer and the request
//! headers it reads, so a generated client (or a fuzzer) can make valid requests.
//!
//! ```
//! use aide::axum::{ApiRouter, routing::post_with};
//! use bff_core::openapi;
//!
//! let app: ApiRouter = ApiRouter::new().api_route(
//!     "/jobs",
//!     post_with(|| async { "queued" }, |op| {
//!         openapi::problem(op, 429, "`rate_limited`: see `Retry-After`.")
//!     }),
//! );
//! # let _ = app;
//! ```

use std::sync::{Arc, OnceLock};

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use aide::generate::GenContext;
use aide::openapi::{
    HeaderStyle, OpenApi, Operation, Parameter, ParameterData, ParameterSchemaOrContent,
    ReferenceOr, SchemaObject, StatusCode as OpenApiStatus,
};
use aide::operation::{OperationOutput, add_parameters};
use aide::transform::TransformOperation;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};

use crate::problem::{Problem, problem_response};

/// Path of the OpenAPI document.
pub const SPEC_PATH: &str = "/openapi.json";
/// Path of the Swagger UI page.
pub const DOCS_PATH: &str = "/docs";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "swagger-ui-bundle.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js"),
    },
    Asset {
        name: "swagger-ui.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/swagger-ui/swagger-ui.css"),
    },
    Asset {
        name: "swagger-initializer.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/swagger-ui/swagger-initializer.js"),
    },
    Asset {
        name: "favicon-32x32.png",
        content_type: "image/png",
        bytes: include_bytes!("../assets/swagger-ui/favicon-32x32.png"),
    },
];

/// The finished OpenAPI document, serialised once and shared by the routes.
#[derive(Debug, Clone, Default)]
pub struct ApiDocs {
    json: Arc<OnceLock<Bytes>>,
}

/// The document could not be serialised, or was published twice.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// Serialisation failed.
    #[error("cannot serialise the OpenAPI document: {0}")]
    Serialize(#[from] serde_json::Error),
    /// [`ApiDocs::publish`] was already called.
    #[error("the OpenAPI document was already published")]
    AlreadyPublished,
}

impl ApiDocs {
    /// Empty until [`publish`](Self::publish) is called.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `api` from now on.
    pub fn publish(&self, api: &OpenApi) -> Result<(), PublishError> {
        let json = serde_json::to_vec(api)?;
        self.json
            .set(Bytes::from(json))
            .map_err(|_| PublishError::AlreadyPublished)
    }

    /// The published document, if any.
    pub fn json(&self) -> Option<Bytes> {
        self.json.get().cloned()
    }
}

/// `GET /openapi.json`, `GET /docs` and `GET /docs/{asset}`.
pub fn routes<S>(docs: ApiDocs) -> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    ApiRouter::new()
        .api_route(
            SPEC_PATH,
            get_with(
                move || {
                    let docs = docs.clone();
                    async move {
                        match docs.json() {
                            Some(json) => Documented(
                                ([(CONTENT_TYPE, "application/json")], json).into_response(),
                            ),
                            None => Documented(
                                Problem::unavailable("The API document is not published yet.")
                                    .into_response(),
                            ),
                        }
                    }
                },
                |op| {
                    op.tag("operations")
                        .summary("OpenAPI document")
                        .description("This document (OpenAPI 3.1).")
                        .response::<200, axum::Json<serde_json::Value>>()
                },
            ),
        )
        .api_route(
            DOCS_PATH,
            get_with(
                || async { Documented(docs_page()) },
                |op| {
                    op.tag("operations")
                        .summary("API documentation")
                        .description("Swagger UI, served with its assets by this service.")
                        .response::<200, axum::response::Html<String>>()
                },
            ),
        )
        .api_route(
            "/docs/{asset}",
            get_with(
                |Path(AssetPath { asset }): Path<AssetPath>| async move {
                    Documented(asset_response(&asset))
                },
                |op| {
                    op.tag("operations")
                        .summary("Swagger UI asset")
                        .description("Static files of the documentation page.")
                        .response::<200, Bytes>()
                        .response_with::<404, Problem, _>(|r| r.description("No such asset."))
                },
            ),
        )
}

/// Path of a documentation asset.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct AssetPath {
    /// File name, such as `swagger-ui-bundle.js`.
    asset: String,
}

fn docs_page() -> Response {
    let html = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>API documentation</title>
  <link rel="stylesheet" href="{DOCS_PATH}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{DOCS_PATH}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui" data-spec-url="{SPEC_PATH}"></div>
  <script src="{DOCS_PATH}/swagger-ui-bundle.js"></script>
  <script src="{DOCS_PATH}/swagger-initializer.js"></script>
</body>
</html>
"#
    );
    let mut response = ([(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    response
        .headers_mut()
        .insert("content-security-policy", HeaderValue::from_static(CSP));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn asset_response(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return Problem::not_found().into_response();
    };
    let mut response = (
        StatusCode::OK,
        [(CONTENT_TYPE, asset.content_type)],
        asset.bytes,
    )
        .into_response();
    // Assets change only with the binary; a day is short enough for upgrades.
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    response
}

/// A finished response whose OpenAPI description is given on its route (with
/// `response::<STATUS, T>()`), for handlers that build responses by hand.
#[derive(Debug)]
pub struct Documented(pub Response);

impl IntoResponse for Documented {
    fn into_response(self) -> Response {
        self.0
    }
}

impl OperationOutput for Documented {
    type Inner = ();
}

/// Documents `status` as a problem+json answer of `op` with `description`,
/// unless `op` already documents that status: a route's own description is
/// the more specific one, so shared helpers never overwrite it.
pub fn problem<'a>(
    mut op: TransformOperation<'a>,
    status: u16,
    description: &str,
) -> TransformOperation<'a> {
    let operation = op.inner_mut();
    aide::generate::in_context(|ctx| {
        let responses = operation.responses.get_or_insert_with(Default::default);
        responses
            .responses
            .entry(OpenApiStatus::Code(status))
            .or_insert_with(|| ReferenceOr::Item(problem_response(ctx, description)));
    });
    op
}

/// Adds the request header `name` to `operation`, with `schema` and
/// `description`; for the `OperationInput` of an extractor that reads it.
pub fn header(
    ctx: &mut GenContext,
    operation: &mut Operation,
    name: &str,
    description: &str,
    required: bool,
    schema: schemars::Schema,
) {
    add_parameters(
        ctx,
        operation,
        [Parameter::Header {
            parameter_data: ParameterData {
                name: name.to_owned(),
                description: Some(description.to_owned()),
                required,
                format: ParameterSchemaOrContent::Schema(SchemaObject {
                    json_schema: schema,
                    example: None,
                    external_docs: None,
                }),
                extensions: Default::default(),
                deprecated: None,
                example: None,
                examples: Default::default(),
                explode: None,
            },
            style: HeaderStyle::Simple,
        }],
    );
}

/// Marks the header parameter `name` of `op` as required: for a route that
/// refuses a request without a header its extractor documents as optional.
pub fn require_header<'a>(mut op: TransformOperation<'a>, name: &str) -> TransformOperation<'a> {
    for parameter in &mut op.inner_mut().parameters {
        if let ReferenceOr::Item(parameter @ Parameter::Header { .. }) = parameter {
            let data = parameter.parameter_data_mut();
            if data.name.eq_ignore_ascii_case(name) {
                data.required = true;
            }
        }
    }
    op
}
