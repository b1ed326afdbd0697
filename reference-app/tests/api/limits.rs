//! Rate limits in the app: login per identifier and per IP, the API per IP,
//! shared by instances, honest behind trusted proxies, alive without Redis.

use bff_app::config::OnRedisError;
use bff_cache::ratelimit::Quota;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::helpers::{
    PrivateRedis, SEED_PASSWORD, TestApp, assert_problem, default_config, retry_after,
};

async fn login(app: &TestApp, identifier: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/login",
        &json!({"identifier": identifier, "password": password}),
    )
    .await
}

/// A login of `identifier` from the client `from`, with an optional `Cookie`.
async fn login_from(
    app: &TestApp,
    from: &reqwest::Client,
    identifier: &str,
    password: &str,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut request = from
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"identifier": identifier, "password": password}));
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    request.send().await.expect("sent")
}

/// The `name=value` of the device cookie a login set.
fn device_cookie(response: &reqwest::Response) -> String {
    let set = response.headers()["set-cookie"].to_str().expect("ascii");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/api/v1/auth"] {
        assert!(set.contains(attribute), "{set}");
    }
    set.split(';').next().expect("name=value").to_owned()
}

#[tokio::test]
async fn guessing_from_one_address_locks_that_address_out_known_or_not() {
    let app = TestApp::spawn_with(|c| c.rate_limit.login_lock_after = 3).await;
    for identifier in ["customer@example.com", "nobody@example.com"] {
        for _ in 0..3 {
            let response = login(&app, identifier, "wrong password").await;
            assert_eq!(response.status(), 401, "{identifier}");
        }
        // Locked for 15 minutes: even the right password waits.
        let response = login(&app, identifier, SEED_PASSWORD).await;
        assert!(retry_after(&response) > 800, "{identifier}");
        assert_eq!(
            response.headers()["ratelimit-policy"],
            "\"login_lock\";q=3;w=900"
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
async fn a_lockout_attack_leaves_the_owner_free_to_log_in_from_elsewhere() {
    // The default limits, as in production.
    let app = TestApp::spawn_with(|c| {
        let defaults = default_config().rate_limit;
        c.rate_limit.login_lock_after = defaults.login_lock_after;
        c.rate_limit.login_failures_per_identifier = defaults.login_failures_per_identifier;
    })
    .await;
    let attacker = app.client_from("127.0.0.2");
    let owner = app.client_from("127.0.0.3");
    for _ in 0..10 {
        let response = login_from(&app, &attacker, "customer@example.com", "guess", None).await;
        assert_problem(response, 401, "invalid_credentials").await;
    }
    let response = login_from(&app, &attacker, "customer@example.com", SEED_PASSWORD, None).await;
    assert!(retry_after(&response) >= 899);
    assert_problem(response, 429, "rate_limited").await;
    // The owner, on another network, is not locked out.
    let response = login_from(&app, &owner, "customer@example.com", SEED_PASSWORD, None).await;
    assert_eq!(response.status(), 200);

    // The failures and the lock are in the audit log, under a keyed hash of the
    // identifier and with the attacker's address.
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT action, target_id, ip FROM audit_log WHERE action IN ('auth.login_failed', 'auth.locked') ORDER BY created_at",
    )
    .fetch_all(&app.db)
    .await
    .expect("audit");
    assert_eq!(rows.len(), 11, "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r.0 == "auth.locked").count(), 1);
    for (_, target, ip) in &rows {
        let target = target.as_deref().expect("hashed identifier");
        assert_eq!(target.len(), 32);
        assert!(!target.contains("example"));
        assert_eq!(ip.as_deref(), Some("127.0.0.2"));
    }
}

#[tokio::test]
async fn successful_logins_are_never_limited() {
    // The production defaults for logins: only failures count.
    let app = TestApp::spawn_with(|c| {
        let defaults = default_config().rate_limit;
        c.rate_limit.login_lock_after = defaults.login_lock_after;
        c.rate_limit.login_failures_per_identifier = defaults.login_failures_per_identifier;
        c.rate_limit.rate_limit_login_per_ip = defaults.rate_limit_login_per_ip;
    })
    .await;
    for _ in 0..40 {
        assert_eq!(
            login(&app, "customer@example.com", SEED_PASSWORD)
                .await
                .status(),
            200
        );
    }
    // A success clears the count: nine failures, a success, nine more, and the
    // right password still works.
    for round in 0..2 {
        for _ in 0..9 {
            assert_eq!(
                login(&app, "manager@example.com", "guess").await.status(),
                401
            );
        }
        let response = login(&app, "manager@example.com", SEED_PASSWORD).await;
        assert_eq!(response.status(), 200, "round {round}");
    }
}

#[tokio::test]
async fn past_the_identifier_ceiling_only_a_known_device_may_try() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.login_failures_per_identifier = Quota::per_hour(3);
    })
    .await;
    let laptop = app.client_from("127.0.0.5");
    let response = login_from(&app, &laptop, "customer@example.com", SEED_PASSWORD, None).await;
    assert_eq!(response.status(), 200);
    let device = device_cookie(&response);
    // A botnet guesses once from each of three addresses.
    for ip in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        let bot = app.client_from(ip);
        let response = login_from(&app, &bot, "customer@example.com", "guess", None).await;
        assert_eq!(response.status(), 401);
    }
    // Now a client without the owner's device cookie is refused, even with the
    // right password, wherever it comes from.
    let stranger = app.client_from("127.0.0.6");
    let response = login_from(&app, &stranger, "customer@example.com", SEED_PASSWORD, None).await;
    assert_eq!(
        response.headers()["ratelimit-policy"],
        "\"login_identifier\";q=3;w=3600"
    );
    assert_problem(response, 429, "rate_limited").await;
    let forged = format!("{}0", device);
    let response = login_from(
        &app,
        &stranger,
        "customer@example.com",
        SEED_PASSWORD,
        Some(&forged),
    )
    .await;
    assert_eq!(response.status(), 429);
    // Another account's cookie is no key to this one.
    let response = login_from(&app, &laptop, "manager@example.com", SEED_PASSWORD, None).await;
    let managers = device_cookie(&response);
    let response = login_from(
        &app,
        &stranger,
        "customer@example.com",
        SEED_PASSWORD,
        Some(&managers),
    )
    .await;
    assert_eq!(response.status(), 429);
    // The owner's device gets in, from anywhere.
    for client in [&laptop, &stranger] {
        let response = login_from(
            &app,
            client,
            "customer@example.com",
            SEED_PASSWORD,
            Some(&device),
        )
        .await;
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn an_admin_clears_a_users_login_locks() {
    let app = TestApp::spawn_with(|c| c.rate_limit.login_lock_after = 2).await;
    let victim = app
        .user("victim@example.com", bff_app::identity::Role::Customer)
        .await;
    let customer = app.login("customer@example.com", SEED_PASSWORD).await;
    let customer = customer["access_token"].as_str().expect("token").to_owned();
    let admin = app.login("admin@example.com", SEED_PASSWORD).await;
    let admin = admin["access_token"].as_str().expect("token").to_owned();
    for _ in 0..2 {
        assert_eq!(
            login(&app, "victim@example.com", "guess").await.status(),
            401
        );
    }
    assert_eq!(
        login(&app, "victim@example.com", SEED_PASSWORD)
            .await
            .status(),
        429
    );
    let path = format!("/api/v1/admin/users/{}/unlock-login", victim.id);
    let response = app
        .authed(reqwest::Method::POST, &path, &customer)
        .send()
        .await
        .expect("sent");
    assert_problem(response, 403, "forbidden").await;
    assert_eq!(
        login(&app, "victim@example.com", SEED_PASSWORD)
            .await
            .status(),
        429
    );
    let unknown = format!("/api/v1/admin/users/{}/unlock-login", uuid::Uuid::now_v7());
    let response = app
        .authed(reqwest::Method::POST, &unknown, &admin)
        .send()
        .await
        .expect("sent");
    assert_problem(response, 404, "not_found").await;
    let response = app
        .authed(reqwest::Method::POST, &path, &admin)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    assert_eq!(
        login(&app, "victim@example.com", SEED_PASSWORD)
            .await
            .status(),
        200
    );
    let unlocked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'auth.unlocked'")
            .fetch_one(&app.db)
            .await
            .expect("audit");
    assert_eq!(unlocked, 1);
}

#[tokio::test]
async fn wrong_old_passwords_count_as_failed_logins_and_end_the_session() {
    let app = TestApp::spawn().await;
    let tokens = app.login("customer@example.com", SEED_PASSWORD).await;
    let access = tokens["access_token"].as_str().expect("token");
    let id = tokens["user"]["id"].as_str().expect("id");
    let change = |old: &'static str| {
        app.authed(
            reqwest::Method::POST,
            "/api/v1/auth/update-password",
            access,
        )
        .json(
            &json!({"user_id": id, "old_password": old, "new_password": "a brand new passphrase"}),
        )
        .send()
    };
    for _ in 0..4 {
        let response = change("guess").await.expect("sent");
        assert_problem(response, 401, "invalid_credentials").await;
        assert_eq!(app.me_status(access).await, 200);
    }
    // The fifth wrong guess ends the session it came with.
    let response = change("guess").await.expect("sent");
    assert_problem(response, 401, "unauthorized").await;
    assert_eq!(app.me_status(access).await, 401);
    let failures: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'auth.login_failed'")
            .fetch_one(&app.db)
            .await
            .expect("audit");
    assert_eq!(failures, 5);
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

#[tokio::test]
async fn limiter_keys_name_no_email_or_phone() {
    let app = TestApp::spawn().await;
    for identifier in ["customer@example.com", "nobody@example.com", "+14155550123"] {
        assert_eq!(login(&app, identifier, "guess").await.status(), 401);
    }
    let client = redis::Client::open(app.config.redis.redis_url.expose_secret()).expect("url");
    let mut redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", app.config.redis.redis_prefix))
        .query_async(&mut redis)
        .await
        .expect("keys");
    assert!(keys.iter().any(|k| k.contains(":login:")), "{keys:?}");
    for key in &keys {
        assert!(
            !key.contains("example") && !key.contains("4155550123"),
            "{key}"
        );
    }
}
