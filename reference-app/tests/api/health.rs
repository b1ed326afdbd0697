use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{PrivateRedis, TestApp, assert_problem};

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
