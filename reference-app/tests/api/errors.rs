use crate::helpers::{TestApp, assert_problem};

#[tokio::test]
async fn unknown_route_is_a_404_problem() {
    let app = TestApp::spawn().await;
    assert_problem(app.get("/api/v1/no-such-thing").await, 404, "not_found").await;
    // `/` is the demo page in the dev profile; any other unknown path is a 404.
    assert_problem(app.get("/no-such-page").await, 404, "not_found").await;
}

#[tokio::test]
async fn wrong_method_is_a_405_problem_with_allow() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .delete(app.url("/api/v1/currencies"))
        .send()
        .await
        .expect("sent");
    let allow = response
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(allow.contains("GET"), "Allow: {allow}");
    assert_problem(response, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn oversized_body_is_a_413_problem() {
    let app = TestApp::spawn_with(|c| c.http.body_limit = 1024).await;
    let response = app
        .client
        .post(app.url("/api/v1/currencies"))
        .header("content-type", "application/json")
        .body(vec![b' '; 4096])
        .send()
        .await
        .expect("sent");
    assert_problem(response, 413, "payload_too_large").await;
}

#[tokio::test]
async fn request_ids_are_echoed_when_sane_and_replaced_otherwise() {
    let app = TestApp::spawn().await;
    let sent = "client-trace-42";
    let response = app
        .client
        .get(app.url("/healthz/live"))
        .header("x-request-id", sent)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.headers()["x-request-id"], sent);

    let response = app
        .client
        .get(app.url("/api/v1/nothing"))
        .header("x-request-id", "bad id; drop table")
        .send()
        .await
        .expect("sent");
    let id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "replaced with a UUID: {id}"
    );
    let body = assert_problem(response, 404, "not_found").await;
    assert_eq!(body["request_id"], id);
}

#[tokio::test]
async fn cors_answers_allowed_origins_only() {
    let app = TestApp::spawn_with(|c| {
        c.http.cors_origins = vec![http::HeaderValue::from_static("https://app.example.com")]
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/currencies"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.expect("sent");
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let refused = preflight("https://evil.example.com").await.expect("sent");
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
