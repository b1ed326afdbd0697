//! The rate-limit layer in front of a router, on tokio's paused clock.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use bff_cache::ratelimit::{ClientIp, MemoryBackend, Policy, Quota, RateLimitLayer, from_fn};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

fn app() -> Router {
    let limit = RateLimitLayer::new(MemoryBackend::default().with_tokio_clock())
        .policy(Policy::new(
            "per_ip",
            Quota::per_second(2).with_burst(3),
            ClientIp::new(),
        ))
        .policy(Policy::new(
            "per_user",
            Quota::per_minute(100),
            from_fn(|r| {
                r.headers
                    .get("x-user")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            }),
        ));
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(limit)
}

fn request(ip: &str, user: Option<&str>) -> Request<Body> {
    let mut builder = Request::get("/");
    if let Some(user) = user {
        builder = builder.header("x-user", user);
    }
    let mut request = builder.body(Body::empty()).expect("request");
    let addr: SocketAddr = format!("{ip}:5000").parse().expect("addr");
    request.extensions_mut().insert(ConnectInfo(addr));
    request
}

fn header(response: &http::Response<Body>, name: &str) -> String {
    response.headers()[name].to_str().expect("ascii").to_owned()
}

#[tokio::test(start_paused = true)]
async fn burst_exact_accounting_and_refill() {
    let app = app();
    for remaining in [2, 1, 0] {
        let response = app
            .clone()
            .oneshot(request("203.0.113.1", None))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "ratelimit-policy"), "\"per_ip\";q=3;w=1");
        assert!(
            header(&response, "ratelimit").starts_with(&format!("\"per_ip\";r={remaining};t="))
        );
    }
    let refused = app
        .clone()
        .oneshot(request("203.0.113.1", None))
        .await
        .expect("infallible");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "retry-after"), "1");
    assert_eq!(header(&refused, "content-type"), "application/problem+json");
    assert_eq!(header(&refused, "ratelimit"), "\"per_ip\";r=0;t=2");
    let body = refused
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let problem: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(problem["code"], "rate_limited");

    // Another client is not affected.
    let other = app
        .clone()
        .oneshot(request("203.0.113.2", None))
        .await
        .expect("infallible");
    assert_eq!(other.status(), StatusCode::OK);

    // Half a second refills exactly one token.
    tokio::time::advance(Duration::from_millis(499)).await;
    let early = app
        .clone()
        .oneshot(request("203.0.113.1", None))
        .await
        .expect("infallible");
    assert_eq!(early.status(), StatusCode::TOO_MANY_REQUESTS);
    tokio::time::advance(Duration::from_millis(1)).await;
    let refilled = app
        .clone()
        .oneshot(request("203.0.113.1", None))
        .await
        .expect("infallible");
    assert_eq!(refilled.status(), StatusCode::OK);
    let again = app
        .clone()
        .oneshot(request("203.0.113.1", None))
        .await
        .expect("infallible");
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(start_paused = true)]
async fn every_applicable_policy_is_reported() {
    let app = app();
    let response = app
        .clone()
        .oneshot(request("198.51.100.7", Some("ada")))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "ratelimit-policy"),
        "\"per_ip\";q=3;w=1, \"per_user\";q=100;w=60"
    );
    let state = header(&response, "ratelimit");
    assert!(
        state.contains("\"per_ip\";r=2;") && state.contains("\"per_user\";r=99;"),
        "{state}"
    );
}
