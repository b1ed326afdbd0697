use std::time::{Duration, Instant};

use serde_json::Value;

use secrecy::SecretString;

use crate::helpers::{PrivateNats, PrivateRedis, SEED_PASSWORD, TestApp, assert_problem};

#[tokio::test]
async fn live_and_ready_with_every_dependency_up() {
    let app = TestApp::spawn().await;
    let live = app.get("/healthz/live").await;
    assert_eq!(live.status(), 200);

    let ready = app.get("/healthz/ready").await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    for dependency in ["postgres", "redis", "nats"] {
        assert_eq!(body["checks"][dependency]["status"], "up", "{body}");
    }
    app.stop().await;
}

async fn ready_status(app: &TestApp) -> (u16, Value) {
    let response = app.get("/healthz/ready").await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Polls readiness until it answers `status`, for at most `within`.
async fn wait_for_ready_status(app: &TestApp, status: u16, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (got, body) = ready_status(app).await;
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "readiness stayed {got} (wanted {status}): {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn readiness_names_redis_while_it_is_down_and_recovers_without_a_restart() {
    let mut redis = PrivateRedis::start();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let app = TestApp::spawn_with(|c| c.redis.redis_url = url.into()).await;
    wait_for_ready_status(&app, 200, Duration::from_secs(5)).await;

    redis.stop();
    let body = wait_for_ready_status(&app, 503, Duration::from_secs(10)).await;
    assert_eq!(body["code"], "unavailable");
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("redis")),
        "{body}"
    );
    assert_ne!(body["checks"]["redis"]["status"], "up", "{body}");
    assert_eq!(body["checks"]["postgres"]["status"], "up", "{body}");
    // No driver message reaches the client.
    assert!(
        !body.to_string().to_lowercase().contains("refused"),
        "{body}"
    );
    // Redis stays down, so the next answer is the same problem, checked whole.
    assert_problem(app.get("/healthz/ready").await, 503, "unavailable").await;

    redis.restart();
    wait_for_ready_status(&app, 200, Duration::from_secs(20)).await;
}

/// Polls readiness until its body's `status` is `wanted`, for at most 15 s.
async fn wait_for_report(app: &TestApp, wanted: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, body) = ready_status(app).await;
        if body["status"] == wanted {
            assert_eq!(code, 200, "{body}");
            return body;
        }
        assert!(Instant::now() < deadline, "readiness stayed {code}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_nats_outage_degrades_readiness_without_failing_it() {
    let mut nats = PrivateNats::start();
    let url = nats.url();
    let app = TestApp::spawn_with(|c| {
        c.nats.nats_url = SecretString::from(url);
        c.http.readiness_timeout = Duration::from_millis(500);
    })
    .await;
    let body = wait_for_report(&app, "ready").await;
    assert_eq!(body["checks"]["nats"]["required"], false, "{body}");

    // A hung server still holds the socket: only a round trip shows it.
    nats.pause();
    let body = wait_for_report(&app, "degraded").await;
    assert_eq!(body["checks"]["nats"]["status"], "timeout", "{body}");
    assert_eq!(body["checks"]["postgres"]["status"], "up", "{body}");
    // The API works meanwhile.
    app.login("customer@example.com", SEED_PASSWORD).await;
    nats.resume();
    wait_for_report(&app, "ready").await;

    // A stopped server: the same, `down`.
    nats.stop();
    let body = wait_for_report(&app, "degraded").await;
    assert_eq!(body["checks"]["nats"]["status"], "down", "{body}");
    nats.restart();
    wait_for_report(&app, "ready").await;
}

#[tokio::test]
async fn readiness_can_be_told_to_require_nats() {
    let mut nats = PrivateNats::start();
    let url = nats.url();
    let app = TestApp::spawn_with(|c| {
        c.nats.nats_url = SecretString::from(url);
        c.http.readiness_timeout = Duration::from_millis(500);
        c.http.readiness_requires_nats = true;
    })
    .await;
    wait_for_ready_status(&app, 200, Duration::from_secs(5)).await;
    nats.stop();
    let body = wait_for_ready_status(&app, 503, Duration::from_secs(10)).await;
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("nats")),
        "{body}"
    );
}
