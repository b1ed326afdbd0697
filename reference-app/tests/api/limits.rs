//! Rate limits in the app: login per identifier and per IP, the API per IP,
//! shared by instances, honest behind trusted proxies, alive without Redis.

use bff_app::config::OnRedisError;
use bff_cache::ratelimit::Quota;
use serde_json::json;

use crate::helpers::{PrivateRedis, SEED_PASSWORD, TestApp, assert_problem, retry_after};

async fn login(app: &TestApp, identifier: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/login",
        &json!({"identifier": identifier, "password": password}),
    )
    .await
}

#[tokio::test]
async fn logins_are_limited_per_identifier_known_or_not() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.rate_limit_login_per_identifier = Quota::per_hour(3);
    })
    .await;
    for identifier in ["customer@example.com", "nobody@example.com"] {
        for _ in 0..3 {
            let response = login(&app, identifier, "wrong password").await;
            assert_eq!(response.status(), 401, "{identifier}");
        }
        let response = login(&app, identifier, SEED_PASSWORD).await;
        assert!(retry_after(&response) > 1000);
        assert_eq!(
            response.headers()["ratelimit-policy"],
            "\"login_identifier\";q=3;w=3600"
        );
        assert_problem(response, 429, "rate_limited").await;
    }
    // Other accounts are not affected.
    assert_eq!(
        login(&app, "manager@example.com", SEED_PASSWORD)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn the_api_is_limited_per_ip_and_says_so_on_every_answer() {
    let app = TestApp::spawn_with(|c| c.rate_limit.rate_limit_per_ip = Quota::per_hour(3)).await;
    for remaining in [2, 1, 0] {
        let response = app.get("/api/v1/currencies").await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["ratelimit-policy"],
            "\"per_ip\";q=3;w=3600"
        );
        let state = response.headers()["ratelimit"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            state.starts_with(&format!("\"per_ip\";r={remaining};t=")),
            "{state}"
        );
    }
    let refused = app.get("/api/v1/currencies").await;
    assert!(retry_after(&refused) > 1000);
    assert_problem(refused, 429, "rate_limited").await;
    // Probes, metrics and documents are not limited.
    for _ in 0..5 {
        assert_eq!(app.get("/healthz/live").await.status(), 200);
    }
}

#[tokio::test]
async fn two_instances_share_one_limit() {
    let app = TestApp::spawn_with(|c| c.rate_limit.rate_limit_per_ip = Quota::per_hour(4)).await;
    let sibling = app.spawn_sibling().await;
    for instance in [&app, &sibling, &app, &sibling] {
        assert_eq!(instance.get("/api/v1/currencies").await.status(), 200);
    }
    assert_eq!(app.get("/api/v1/currencies").await.status(), 429);
    assert_eq!(sibling.get("/api/v1/currencies").await.status(), 429);
    sibling.stop().await;
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let get = |app: &TestApp, forwarded: &'static str| {
        let request = app
            .client
            .get(app.url("/api/v1/currencies"))
            .header("X-Forwarded-For", forwarded);
        async move { request.send().await.expect("sent").status().as_u16() }
    };
    // Not trusted: the header is ignored, every request is the same client.
    let app = TestApp::spawn_with(|c| c.rate_limit.rate_limit_per_ip = Quota::per_hour(1)).await;
    assert_eq!(get(&app, "198.51.100.1").await, 200);
    assert_eq!(get(&app, "198.51.100.2").await, 429);
    // Behind a trusted proxy (the test client on loopback): clients are told apart.
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.rate_limit_per_ip = Quota::per_hour(1);
        c.http.trusted_proxies = vec!["127.0.0.1".to_owned()];
    })
    .await;
    assert_eq!(get(&app, "198.51.100.1").await, 200);
    assert_eq!(get(&app, "198.51.100.2").await, 200);
    assert_eq!(get(&app, "198.51.100.1").await, 429);
}

#[tokio::test]
async fn without_redis_the_limiter_falls_back_or_refuses_as_configured() {
    let mut redis = PrivateRedis::start();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let fallback = TestApp::spawn_with(|c| {
        c.redis.redis_url = url.clone().into();
        c.rate_limit.rate_limit_per_ip = Quota::per_hour(2);
    })
    .await;
    let refuse = TestApp::spawn_with(|c| {
        c.redis.redis_url = url.clone().into();
        c.rate_limit.rate_limit_on_redis_error = OnRedisError::Refuse;
    })
    .await;
    redis.stop();
    // The default falls back to a local limiter: still answering, still limiting.
    assert_eq!(fallback.get("/api/v1/currencies").await.status(), 200);
    assert_eq!(fallback.get("/api/v1/currencies").await.status(), 200);
    assert_eq!(fallback.get("/api/v1/currencies").await.status(), 429);
    // The alternative fails closed.
    assert_problem(refuse.get("/api/v1/currencies").await, 503, "unavailable").await;
    redis.restart();
}
