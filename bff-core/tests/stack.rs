//! The standard stack end to end, driven without a socket.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use bff_core::extract::Json;
use bff_core::stack::{HttpConfig, apply, not_found};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use tower::ServiceExt;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    name: String,
}

async fn panics() -> &'static str {
    panic!("connection string postgres://app:hunter2@db")
}

fn app() -> Router {
    app_with_limit(64)
}

fn app_with_limit(body_limit: usize) -> Router {
    let router = Router::new()
        .route(
            "/rename",
            post(|Json(body): Json<Rename>| async move { body.name }),
        )
        .route("/panic", get(panics))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .fallback(not_found);
    apply(
        router,
        &HttpConfig {
            body_limit,
            request_timeout: Duration::from_millis(100),
            ..HttpConfig::default()
        },
    )
}

async fn send(req: Request<Body>) -> (StatusCode, http::HeaderMap, serde_json::Value) {
    let res = app().oneshot(req).await.expect("infallible");
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// A JSON `POST /rename` with `body`.
fn rename(body: Body) -> Request<Body> {
    Request::post("/rename")
        .header("content-type", "application/json")
        .body(body)
        .expect("request")
}

/// Sends `req` and asserts a problem with `status` and `code`; returns its body.
async fn expect_problem(req: Request<Body>, status: StatusCode, code: &str) -> serde_json::Value {
    let (got, headers, body) = send(req).await;
    assert_problem(got, &headers, &body, status, code);
    body
}

fn assert_problem(
    status: StatusCode,
    headers: &http::HeaderMap,
    body: &serde_json::Value,
    want: StatusCode,
    code: &str,
) {
    assert_eq!(status, want, "{body}");
    assert_eq!(
        headers[http::header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(
        body["request_id"],
        headers["x-request-id"].to_str().expect("ascii"),
        "{body}"
    );
}

#[tokio::test]
async fn a_panic_is_a_500_problem_that_leaks_nothing() {
    let (status, headers, body) =
        send(Request::get("/panic").body(Body::empty()).expect("request")).await;
    assert_problem(
        status,
        &headers,
        &body,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
    );
    assert!(!body.to_string().contains("hunter2"), "{body}");
}

#[tokio::test]
async fn an_oversized_body_is_a_413_problem() {
    let req = rename(Body::from(vec![b' '; 65]));
    expect_problem(req, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

#[tokio::test]
async fn a_streamed_oversized_body_is_a_413_problem_too() {
    // No Content-Length: the limit is enforced while reading.
    let chunks =
        futures_util::stream::iter([Ok::<_, std::io::Error>(vec![b' '; 40]), Ok(vec![b' '; 40])]);
    let req = rename(Body::from_stream(chunks));
    expect_problem(req, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

#[tokio::test]
async fn a_configured_limit_above_axums_default_is_the_one_that_counts() {
    // axum's extractors default to 2 MiB; a 3 MiB limit must admit 2.5 MiB.
    let name = "x".repeat(2_621_440);
    let body = format!(r#"{{"name":"{name}"}}"#);
    let req = rename(Body::from(body));
    let res = app_with_limit(3 * 1024 * 1024)
        .oneshot(req)
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    let echoed = res.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(echoed.len(), name.len());
}

#[tokio::test]
async fn unknown_fields_and_bad_json_are_named_problems() {
    let json = |body: &'static str| rename(Body::from(body));
    let body = expect_problem(
        json(r#"{"name":"x","role":"admin"}"#),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "role");

    expect_problem(
        json(r#"{"name":"#),
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;

    let req = Request::post("/rename")
        .header("content-type", "text/plain")
        .body(Body::from("x"))
        .expect("request");
    expect_problem(
        req,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
}

#[tokio::test]
async fn a_slow_request_times_out_as_a_503_problem() {
    let (status, headers, body) =
        send(Request::get("/slow").body(Body::empty()).expect("request")).await;
    assert_problem(
        status,
        &headers,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );
}

#[tokio::test]
async fn unknown_routes_are_404_problems() {
    let (status, headers, body) =
        send(Request::get("/nope").body(Body::empty()).expect("request")).await;
    assert_problem(status, &headers, &body, StatusCode::NOT_FOUND, "not_found");
}
