//! `GET /api/v1/dashboard`: one payload from Postgres, gRPC and NATS, honest
//! about the parts it could not get.

use std::time::{Duration, Instant};

use bff_app::identity::Role;
use futures_util::StreamExt;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::backends::{Proxy, SplitStack};
use crate::helpers::{TestApp, TestUser, assert_problem, token_claims};

async fn dashboard(app: &TestApp, user: &TestUser) -> (reqwest::Response, Duration) {
    let started = Instant::now();
    let response = app
        .call(Method::GET, "/api/v1/dashboard", Some(&user.token), None)
        .await;
    (response, started.elapsed())
}

/// The body, after checking that the header mirrors `meta.complete`.
async fn read(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    let header = response
        .headers()
        .get("x-bff-complete")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.json().await.expect("JSON");
    let complete = body["meta"]["complete"].as_bool().expect("complete");
    assert_eq!(
        header.as_deref(),
        Some(if complete { "true" } else { "false" })
    );
    body
}

fn source<'a>(body: &'a Value, name: &str) -> &'a Value {
    &body["meta"]["sources"][name]
}

async fn place_order(app: &TestApp, user: &TestUser) -> Value {
    let response = app
        .call(
            Method::POST,
            "/api/v1/orders",
            Some(&user.token),
            Some(&json!({"currency": "EUR", "items": [{"sku": "A", "quantity": 2, "unit_price": "300.00"}]})),
        )
        .await;
    assert_eq!(response.status(), 201);
    response.json().await.expect("order")
}

#[tokio::test]
async fn loyalty_points_are_counted_per_currency_at_its_rate() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com", Role::Customer).await;
    place_order(&app, &alice).await;
    // 45,000 yen is about 300 euros: 300 points, not 45,000.
    let yen = app
        .call(
            Method::POST,
            "/api/v1/orders",
            Some(&alice.token),
            Some(&json!({"currency": "JPY", "items": [{"sku": "A", "quantity": 1, "unit_price": "45000"}]})),
        )
        .await;
    assert_eq!(yen.status(), 201);
    let (response, _) = dashboard(&app, &alice).await;
    let body = read(response).await;
    assert_eq!(body["loyalty"], json!({"points": 900, "tier": "silver"}));
}

#[tokio::test]
async fn with_every_source_up_the_dashboard_is_complete_and_cached_until_a_write() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com", Role::Customer).await;
    let wallet = app
        .call(
            Method::POST,
            "/api/v1/wallets",
            Some(&alice.token),
            Some(&json!({"currency": "EUR"})),
        )
        .await;
    assert_eq!(wallet.status(), 201);
    let order = place_order(&app, &alice).await;

    let (response, _) = dashboard(&app, &alice).await;
    assert_eq!(response.headers()["x-cache"], "MISS");
    let body = read(response).await;
    assert_eq!(body["meta"]["complete"], true);
    assert_eq!(body["profile"]["id"], alice.id.as_str());
    assert_eq!(body["wallets"][0]["currency"], "EUR");
    assert_eq!(body["recent_orders"][0]["id"], order["id"]);
    // 600.00 of orders: 600 points, silver.
    assert_eq!(body["loyalty"], json!({"points": 600, "tier": "silver"}));
    for name in ["profile", "wallets", "recent_orders", "loyalty"] {
        assert_eq!(source(&body, name)["status"], "ok", "{name}");
        assert!(source(&body, name)["duration_ms"].is_u64(), "{name}");
    }

    // Cached per user...
    let (again, _) = dashboard(&app, &alice).await;
    assert_eq!(again.headers()["x-cache"], "HIT");
    // ...until a write changes it.
    let cancel = format!(
        "/api/v1/orders/{}/cancel",
        order["id"].as_str().expect("id")
    );
    let cancelled = app
        .call(Method::POST, &cancel, Some(&alice.token), None)
        .await;
    assert_eq!(cancelled.status(), 200);
    let (fresh, _) = dashboard(&app, &alice).await;
    assert_eq!(fresh.headers()["x-cache"], "MISS");
    let fresh = read(fresh).await;
    assert_eq!(fresh["recent_orders"][0]["status"], "cancelled");
    assert_eq!(fresh["loyalty"], json!({"points": 0, "tier": "bronze"}));

    // A deposit changes the balance shown: the cached dashboard goes too.
    let again = read(dashboard(&app, &alice).await.0).await;
    assert_eq!(again["wallets"][0]["balance"], "0.00");
    let manager = app.user("boss@example.com", Role::Manager).await;
    let wallet_id = again["wallets"][0]["id"].as_str().expect("id");
    let deposit = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/wallets/{wallet_id}/deposit"),
            Some(&manager.token),
            Some(&json!({"amount": "10.00", "note": "test"})),
        )
        .await;
    assert_eq!(deposit.status(), 201);
    let (after, _) = dashboard(&app, &alice).await;
    assert_eq!(after.headers()["x-cache"], "MISS");
    assert_eq!(read(after).await["wallets"][0]["balance"], "10.00");

    // Another user sees their own.
    let bob = app.user("bob@example.com", Role::Customer).await;
    let theirs = read(dashboard(&app, &bob).await.0).await;
    assert_eq!(theirs["profile"]["id"], bob.id.as_str());
    assert_eq!(theirs["recent_orders"], json!([]));
    assert_eq!(theirs["wallets"], json!([]));

    let response = app.call(Method::GET, "/api/v1/dashboard", None, None).await;
    assert_problem(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_stopped_orders_service_leaves_recent_orders_null_and_is_never_cached() {
    let stack = SplitStack::spawn(true, |config| {
        config.backends.dashboard_cache_ttl = Duration::from_secs(30);
    })
    .await;
    let alice = stack.app.user("alice@example.com", Role::Customer).await;
    let up = read(dashboard(&stack.app, &alice).await.0).await;
    assert_eq!(up["meta"]["complete"], true);

    stack.proxy.down();
    // A write that changes the dashboard invalidates the cached one.
    let wallet = stack
        .app
        .call(
            Method::POST,
            "/api/v1/wallets",
            Some(&alice.token),
            Some(&json!({"currency": "EUR"})),
        )
        .await;
    assert_eq!(wallet.status(), 201);
    for _ in 0..2 {
        let (response, _) = dashboard(&stack.app, &alice).await;
        assert_ne!(
            response.headers()["x-cache"],
            "HIT",
            "a partial result is not cached"
        );
        let body = read(response).await;
        assert_eq!(body["meta"]["complete"], false);
        assert!(body["recent_orders"].is_null());
        assert_eq!(source(&body, "recent_orders")["status"], "error");
        assert_eq!(body["profile"]["id"], alice.id.as_str());
        assert_eq!(source(&body, "loyalty")["status"], "ok");
    }

    // Back up: complete again (the channel reconnects on demand).
    stack.proxy.up();
    let back = read(dashboard(&stack.app, &alice).await.0).await;
    assert_eq!(back["meta"]["complete"], true, "{back}");
    assert_eq!(back["wallets"][0]["currency"], "EUR");
}

#[tokio::test]
async fn a_slow_orders_service_times_out_at_its_deadline() {
    let deadline = Duration::from_millis(300);
    let stack = SplitStack::spawn(true, |config| {
        config.backends.dashboard_orders_deadline = deadline;
    })
    .await;
    let alice = stack.app.user("alice@example.com", Role::Customer).await;
    read(dashboard(&stack.app, &alice).await.0).await;

    stack.proxy.set_delay(Duration::from_secs(2));
    let (response, elapsed) = dashboard(&stack.app, &alice).await;
    let body = read(response).await;
    assert_eq!(source(&body, "recent_orders")["status"], "timeout");
    assert!(body["recent_orders"].is_null());
    assert_eq!(body["meta"]["complete"], false);
    // The deadline plus a margin for the rest of the request, far from the 2 s.
    assert!(elapsed >= deadline, "{elapsed:?}");
    assert!(
        elapsed < deadline + Duration::from_millis(400),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn without_a_loyalty_responder_loyalty_fails_fast() {
    let stack = SplitStack::spawn(false, |config| {
        config.backends.dashboard_loyalty_deadline = Duration::from_secs(3);
        config.backends.dashboard_deadline = Duration::from_secs(4);
    })
    .await;
    let alice = stack.app.user("alice@example.com", Role::Customer).await;
    let (response, elapsed) = dashboard(&stack.app, &alice).await;
    let body = read(response).await;
    assert_eq!(source(&body, "loyalty")["status"], "error");
    assert!(body["loyalty"].is_null());
    assert_eq!(source(&body, "recent_orders")["status"], "ok");
    // NATS says at once that nobody listens: no wait for the 3 s deadline.
    assert!(
        source(&body, "loyalty")["duration_ms"]
            .as_u64()
            .expect("ms")
            < 1000
    );
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn sources_run_concurrently() {
    // Postgres 50 ms away, the orders service 80 ms, loyalty 120 ms.
    let postgres = Proxy::to("127.0.0.1:5432".parse().expect("addr")).await;
    let postgres_port = postgres.addr().port();
    let stack = SplitStack::spawn(false, |config| {
        let url = config
            .database
            .database_url
            .expose_secret()
            .replace(":5432/", &format!(":{postgres_port}/"));
        config.database.database_url = url.into();
        config.backends.dashboard_deadline = Duration::from_secs(3);
        config.backends.dashboard_database_deadline = Duration::from_secs(2);
        config.backends.dashboard_orders_deadline = Duration::from_secs(2);
        config.backends.dashboard_loyalty_deadline = Duration::from_secs(2);
    })
    .await;
    let app = &stack.app;
    let alice = app.user("alice@example.com", Role::Customer).await;
    let seen = Seen::default();
    let responder = slow_loyalty(app, Duration::from_millis(120), seen.clone()).await;
    // Warm connections and statements before measuring.
    read(dashboard(app, &alice).await.0).await;
    postgres.set_delay(Duration::from_millis(50));
    stack.proxy.set_delay(Duration::from_millis(80));

    let mut best = Duration::MAX;
    let mut sum = Duration::ZERO;
    for _ in 0..3 {
        let (response, elapsed) = dashboard(app, &alice).await;
        let body = read(response).await;
        assert_eq!(body["meta"]["complete"], true, "{body}");
        if elapsed < best {
            best = elapsed;
            sum = ["profile", "wallets", "recent_orders", "loyalty"]
                .iter()
                .map(|name| {
                    Duration::from_millis(source(&body, name)["duration_ms"].as_u64().expect("ms"))
                })
                .sum();
        }
    }
    let configured = Duration::from_millis(50 + 80 + 120);
    assert!(best >= Duration::from_millis(120), "{best:?}");
    assert!(
        best < configured,
        "{best:?} is not under the sum of the delays"
    );
    assert!(
        best * 2 < sum * 3 / 2,
        "{best:?} against {sum:?} of sources"
    );
    // Identity and the request id travelled as NATS headers.
    let response = app
        .authed(Method::GET, "/api/v1/dashboard", &alice.token)
        .header("x-request-id", "dashboard-test-7")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    responder.abort();
    let seen = seen.lock().expect("seen");
    // The caller's own token never reached the bus: each request carried one
    // minted for the loyalty responder, short-lived and reused while fresh.
    let own = format!("Bearer {}", alice.token);
    let tokens: std::collections::BTreeSet<&str> = seen
        .iter()
        .map(|(_, auth)| auth.as_deref().expect("a token"))
        .collect();
    assert!(!tokens.contains(own.as_str()), "{seen:?}");
    assert_eq!(tokens.len(), 1, "one minted token reused: {seen:?}");
    let minted = token_claims(
        tokens
            .iter()
            .next()
            .expect("one")
            .trim_start_matches("Bearer "),
    );
    let users = token_claims(&alice.token);
    assert_eq!(minted["aud"], "loyalty");
    assert_eq!(minted["sub"], users["sub"]);
    assert_eq!(minted["sid"], users["sid"]);
    assert!(minted["exp"].as_i64().expect("exp") - minted["iat"].as_i64().expect("iat") <= 60);
    assert!(
        seen.iter()
            .any(|(id, _)| id.as_deref() == Some("dashboard-test-7")),
        "{seen:?}"
    );
}

/// Headers of the requests a test's loyalty responder received.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(Option<String>, Option<String>)>>>;

/// A loyalty responder of the test's own on `app`'s subject that answers after
/// `delay` and records each request's `X-Request-Id` and `Authorization`.
async fn slow_loyalty(app: &TestApp, delay: Duration, seen: Seen) -> tokio::task::JoinHandle<()> {
    let nats = async_nats::connect(app.config.nats.nats_url.expose_secret())
        .await
        .expect("NATS");
    let mut requests = nats
        .subscribe(app.topology.subject("loyalty.points.get"))
        .await
        .expect("subscribe");
    nats.flush().await.expect("flush");
    tokio::spawn(async move {
        while let Some(message) = requests.next().await {
            let header = |name: &str| {
                message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .map(|v| v.as_str().to_owned())
            };
            seen.lock()
                .expect("seen")
                .push((header("X-Request-Id"), header("Authorization")));
            let nats = nats.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Some(reply) = message.reply {
                    let _ = nats
                        .publish(
                            reply,
                            br#"{"points": 7, "tier": "bronze"}"#.as_slice().into(),
                        )
                        .await;
                }
            });
        }
    })
}

#[tokio::test]
async fn the_breaker_stops_waiting_on_a_dead_source_and_closes_when_it_returns() {
    let stack = SplitStack::spawn(true, |config| {
        config.backends.dashboard_orders_deadline = Duration::from_millis(200);
        config.backends.breaker_failures = 3;
        config.backends.breaker_open_for = Duration::from_secs(1);
    })
    .await;
    let app = &stack.app;
    let alice = app.user("alice@example.com", Role::Customer).await;
    read(dashboard(app, &alice).await.0).await;

    // Slow beyond the deadline: each request waits it out until the breaker opens.
    stack.proxy.set_delay(Duration::from_secs(2));
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let body = read(dashboard(app, &alice).await.0).await;
        statuses.push(
            source(&body, "recent_orders")["status"]
                .as_str()
                .expect("status")
                .to_owned(),
        );
    }
    assert_eq!(
        statuses[..3],
        ["timeout", "timeout", "timeout"],
        "{statuses:?}"
    );
    assert!(statuses[3..].iter().all(|s| s == "skipped"), "{statuses:?}");
    let (response, elapsed) = dashboard(app, &alice).await;
    let skipped = read(response).await;
    assert_eq!(source(&skipped, "recent_orders")["status"], "skipped");
    assert!(
        source(&skipped, "recent_orders")["duration_ms"]
            .as_u64()
            .expect("ms")
            < 20
    );
    assert!(
        elapsed < Duration::from_millis(200),
        "no wait on an open breaker: {elapsed:?}"
    );

    // The backend recovers (restarted: the stuck connections are gone); after
    // the open period one probe closes the breaker.
    stack.proxy.down();
    stack.proxy.set_delay(Duration::ZERO);
    stack.proxy.up();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..3 {
        let body = read(dashboard(app, &alice).await.0).await;
        assert_eq!(source(&body, "recent_orders")["status"], "ok", "{body}");
        assert_eq!(body["meta"]["complete"], true);
    }
}

#[tokio::test]
async fn a_failing_required_source_is_503() {
    let postgres = Proxy::to("127.0.0.1:5432".parse().expect("addr")).await;
    let postgres_port = postgres.addr().port();
    let stack = SplitStack::spawn(true, |config| {
        let url = config
            .database
            .database_url
            .expose_secret()
            .replace(":5432/", &format!(":{postgres_port}/"));
        config.database.database_url = url.into();
        config.database.database_acquire_timeout = Duration::from_millis(300);
    })
    .await;
    let app = &stack.app;
    let alice = app.user("alice@example.com", Role::Customer).await;
    read(dashboard(app, &alice).await.0).await;

    postgres.down();
    let (response, elapsed) = dashboard(app, &alice).await;
    assert!(response.headers().get("retry-after").is_some());
    let problem = assert_problem(response, 503, "unavailable").await;
    assert!(
        problem["sources"]["profile"]["status"].is_string(),
        "{problem}"
    );
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    let text = problem.to_string();
    assert!(
        !text.contains("5432") && !text.to_lowercase().contains("sqlx"),
        "{text}"
    );
}
