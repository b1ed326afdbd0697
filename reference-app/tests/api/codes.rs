//! Sign-up and password reset with codes, read off the NOTIFICATIONS stream the
//! way a consumer would.

use std::time::Duration;

use serde_json::{Value, json};

use secrecy::ExposeSecret;

use crate::backends::Proxy;
use crate::helpers::{Received, SEED_PASSWORD, StreamReader, TestApp, assert_problem, retry_after};

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn verify_code(app: &TestApp, identifier: &str, purpose: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/verify-code",
        &json!({"identifier": identifier, "purpose": purpose}),
    )
    .await
}

/// Asks for a code and reads it off the stream.
async fn code_for(
    app: &TestApp,
    inbox: &mut StreamReader,
    identifier: &str,
    purpose: &str,
) -> String {
    let response = verify_code(app, identifier, purpose).await;
    assert_eq!(response.status(), 202);
    let message = inbox.next().await;
    app.code_in(&message.payload)
}

async fn register(app: &TestApp, identifier: &str, code: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/register",
        &json!({"identifier": identifier, "code": code, "password": NEW_PASSWORD, "name": "New User"}),
    )
    .await
}

fn assert_code_message(message: &Received, app: &TestApp, channel: &str, to: &str) {
    assert_eq!(
        message.subject,
        app.topology.subject(&format!("notifications.{channel}"))
    );
    let payload = &message.payload;
    assert_eq!(payload["channel"], channel);
    assert_eq!(payload["to"], to);
    assert_eq!(payload["template"], "verify_code");
    // A reader of the stream sees no code: it is sealed for the notifier.
    let sealed = payload["code"].as_str().expect("code");
    assert!(sealed.starts_with("v1.") && !sealed.bytes().all(|b| b.is_ascii_digit()));
    let code = app.code_in(payload);
    assert!(!sealed.contains(&code));
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        message.msg_id.as_deref(),
        payload["id"].as_str(),
        "Nats-Msg-Id is the message id"
    );
    assert!(
        payload["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
}

#[tokio::test]
async fn register_by_email_end_to_end() {
    let app = TestApp::spawn().await;
    let mut inbox = app.notifications().await;
    let mut events = app.events().await;

    let response = app
        .client
        .post(app.url("/api/v1/auth/verify-code"))
        .header("Accept-Language", "ru-RU,ru;q=0.9,en;q=0.8")
        .json(&json!({"identifier": "  New.User@Example.COM ", "purpose": "register"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, json!({"resend_after": 60, "expires_in": 600}));

    let message = inbox.next().await;
    assert_code_message(&message, &app, "email", "new.user@example.com");
    assert_eq!(message.payload["locale"], "ru");
    assert_eq!(message.request_id.as_deref(), Some(request_id.as_str()));
    let code = app.code_in(&message.payload);

    let response = register(&app, "new.user@example.com", &code).await;
    assert_eq!(response.status(), 201);
    let tokens: Value = response.json().await.expect("json");
    assert_eq!(tokens["token_type"], "Bearer");
    let user = &tokens["user"];
    assert_eq!(user["email"], "new.user@example.com");
    assert_eq!(user["name"], "New User");
    assert_eq!(user["role"], "customer");
    assert!(user["email_verified_at"].is_string());
    assert!(user["phone_verified_at"].is_null());
    let access = tokens["access_token"].as_str().expect("token");
    assert_eq!(app.me_status(access).await, 200);
    app.login("NEW.USER@example.com", NEW_PASSWORD).await;

    let event = events.next().await;
    assert_eq!(
        event.subject,
        app.topology.subject("events.user.registered")
    );
    assert_eq!(event.payload["type"], "user.registered");
    assert_eq!(event.payload["data"]["user_id"], user["id"]);
    assert_eq!(event.msg_id.as_deref(), event.payload["id"].as_str());

    // The code is used up.
    assert_problem(
        register(&app, "new.user@example.com", &code).await,
        400,
        "code_invalid",
    )
    .await;
}

#[tokio::test]
async fn register_by_phone_end_to_end() {
    let app = TestApp::spawn().await;
    let mut inbox = app.notifications().await;
    assert_eq!(
        verify_code(&app, "+7 (999) 123-45-67", "register")
            .await
            .status(),
        202
    );
    let message = inbox.next().await;
    assert_code_message(&message, &app, "sms", "+79991234567");
    assert_eq!(message.payload["locale"], "en");
    let code = app.code_in(&message.payload);

    let response = register(&app, "+79991234567", &code).await;
    assert_eq!(response.status(), 201);
    let tokens: Value = response.json().await.expect("json");
    assert_eq!(tokens["user"]["phone"], "+79991234567");
    assert!(tokens["user"]["email"].is_null());
    assert!(tokens["user"]["phone_verified_at"].is_string());
    assert!(tokens["user"]["email_verified_at"].is_null());
    app.login("+7 999 123 45 67", NEW_PASSWORD).await;
}

#[tokio::test]
async fn five_wrong_codes_burn_the_code() {
    let app = TestApp::spawn().await;
    let mut inbox = app.notifications().await;
    let code = code_for(&app, &mut inbox, "burn@example.com", "register").await;
    let wrong = format!("{}{}", (code.as_bytes()[0] - b'0' + 1) % 10, &code[1..]);
    for _ in 0..5 {
        assert_problem(
            register(&app, "burn@example.com", &wrong).await,
            400,
            "code_invalid",
        )
        .await;
    }
    assert_problem(
        register(&app, "burn@example.com", &code).await,
        400,
        "code_invalid",
    )
    .await;
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = $1")
        .bind("burn@example.com")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(accounts, 0);
}

#[tokio::test]
async fn an_expired_code_is_invalid() {
    let app = TestApp::spawn_with(|c| c.codes.code_ttl = Duration::from_secs(1)).await;
    let mut inbox = app.notifications().await;
    let code = code_for(&app, &mut inbox, "late@example.com", "register").await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_problem(
        register(&app, "late@example.com", &code).await,
        400,
        "code_invalid",
    )
    .await;
}

#[tokio::test]
async fn a_resend_inside_the_cooldown_is_429_with_retry_after() {
    let app = TestApp::spawn().await;
    let mut inbox = app.notifications().await;
    assert_eq!(
        verify_code(&app, "eager@example.com", "register")
            .await
            .status(),
        202
    );
    inbox.next().await;
    let response = verify_code(&app, "EAGER@example.com", "register").await;
    let retry_after = retry_after(&response);
    assert!((58..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        response.headers()["ratelimit-policy"],
        "\"code_cooldown\";q=1;w=60"
    );
    assert_eq!(
        response.headers()["ratelimit"],
        format!("\"code_cooldown\";r=0;t={retry_after}").as_str()
    );
    assert_problem(response, 429, "rate_limited").await;
    assert!(
        inbox
            .next_within(Duration::from_millis(500))
            .await
            .is_none(),
        "nothing more was sent"
    );
}

#[tokio::test]
async fn hourly_caps_hold_per_identifier_and_per_ip() {
    let app = TestApp::spawn_with(|c| {
        c.codes.code_cooldown = Duration::from_secs(1);
        c.codes.code_hourly_limit_per_identifier = 2;
        c.codes.code_hourly_limit_per_ip = 4;
    })
    .await;
    // Two purposes dodge the cooldown and meet the identifier's cap.
    assert_eq!(
        verify_code(&app, "cap@example.com", "register")
            .await
            .status(),
        202
    );
    assert_eq!(
        verify_code(&app, "cap@example.com", "reset_password")
            .await
            .status(),
        202
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = verify_code(&app, "cap@example.com", "register").await;
    let retry_after = retry_after(&response);
    assert!(retry_after > 3500, "{retry_after}");
    assert_problem(response, 429, "rate_limited").await;

    // Two more identifiers from the same address, then the address's cap.
    for who in ["cap2@example.com", "cap3@example.com"] {
        assert_eq!(verify_code(&app, who, "register").await.status(), 202);
    }
    assert_problem(
        verify_code(&app, "cap4@example.com", "register").await,
        429,
        "rate_limited",
    )
    .await;
}

#[tokio::test]
async fn known_and_unknown_identifiers_get_identical_answers() {
    let app = TestApp::spawn().await;
    let mut inbox = app.notifications().await;

    let strip = |mut v: Value| {
        v.as_object_mut().map(|o| o.remove("request_id"));
        v
    };
    let known = verify_code(&app, "customer@example.com", "register").await;
    let unknown = verify_code(&app, "nobody@example.com", "register").await;
    assert_eq!(known.status(), unknown.status());
    assert_eq!(
        strip(known.json().await.expect("json")),
        strip(unknown.json().await.expect("json"))
    );
    // The existing account is told, without a code; the new one gets a code.
    let first = inbox.next().await;
    let second = inbox.next().await;
    let (exists, code) = if first.payload["to"] == "customer@example.com" {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(exists.payload["template"], "account_exists");
    assert!(exists.payload.get("code").is_none());
    assert_eq!(code.payload["template"], "verify_code");

    let known = app
        .post_json(
            "/api/v1/auth/reset-password",
            &json!({"identifier": "manager@example.com", "reason": "forgot it"}),
        )
        .await;
    let unknown = app
        .post_json(
            "/api/v1/auth/reset-password",
            &json!({"identifier": "ghost@example.com"}),
        )
        .await;
    assert_eq!(known.status(), 202);
    assert_eq!(known.status(), unknown.status());
    assert_eq!(
        strip(known.json().await.expect("json")),
        strip(unknown.json().await.expect("json"))
    );
    // Both wrote one message: a code for the account, and for the unknown
    // address a `nothing` the notifier drops, so the same work was done.
    let (first, second) = (inbox.next().await, inbox.next().await);
    let (sent, nothing) = if first.payload["to"] == "manager@example.com" {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(sent.payload["template"], "reset_password");
    assert_eq!(nothing.payload["to"], "ghost@example.com");
    assert_eq!(nothing.payload["template"], "nothing");
    assert!(nothing.payload.get("code").is_none());
    // Both requests are audited; only the account's names a target.
    let audited: Vec<(Option<String>, serde_json::Value)> = sqlx::query_as(
        "SELECT target_id, details FROM audit_log
         WHERE action = 'auth.password_reset_requested' ORDER BY details->>'reason' NULLS LAST",
    )
    .fetch_all(&app.db)
    .await
    .expect("audit");
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert!(audited[0].0.is_some());
    assert_eq!(audited[0].1, json!({"reason": "forgot it"}));
    assert_eq!(audited[1], (None, json!({"reason": null})));
    // Throttled alike, too.
    let known = app
        .post_json(
            "/api/v1/auth/reset-password",
            &json!({"identifier": "manager@example.com"}),
        )
        .await;
    let unknown = app
        .post_json(
            "/api/v1/auth/reset-password",
            &json!({"identifier": "ghost@example.com"}),
        )
        .await;
    assert_eq!(known.status(), 429);
    assert_eq!(unknown.status(), 429);
}

#[tokio::test]
async fn a_reset_ends_every_session_and_says_so() {
    let app = TestApp::spawn().await;
    let mut inbox = app.notifications().await;
    let mut events = app.events().await;
    let first = app.login("customer@example.com", SEED_PASSWORD).await;
    let second = app.login("customer@example.com", SEED_PASSWORD).await;

    let response = app
        .post_json(
            "/api/v1/auth/reset-password",
            &json!({"identifier": "customer@example.com"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let message = inbox.next().await;
    assert_eq!(message.payload["template"], "reset_password");
    let code = app.code_in(&message.payload);

    let response = app
        .post_json(
            "/api/v1/auth/confirm-reset-password",
            &json!({"identifier": "Customer@Example.com", "code": code, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 204);
    for tokens in [&first, &second] {
        let access = tokens["access_token"].as_str().expect("token");
        assert_eq!(app.me_status(access).await, 401);
        let refreshed = app
            .post_json(
                "/api/v1/auth/refresh",
                &json!({"refresh_token": tokens["refresh_token"]}),
            )
            .await;
        assert_eq!(refreshed.status(), 401);
    }
    assert_problem(
        app.post_json(
            "/api/v1/auth/login",
            &json!({"identifier": "customer@example.com", "password": SEED_PASSWORD}),
        )
        .await,
        401,
        "invalid_credentials",
    )
    .await;
    app.login("customer@example.com", NEW_PASSWORD).await;

    let notice = inbox.next().await;
    assert_eq!(notice.payload["template"], "password_changed");
    assert_eq!(notice.payload["to"], "customer@example.com");
    assert!(notice.payload.get("code").is_none());
    let event = events.next().await;
    assert_eq!(event.payload["type"], "user.password_changed");
    assert_eq!(event.payload["data"]["how"], "reset");

    // The code was single use.
    assert_problem(
        app.post_json(
            "/api/v1/auth/confirm-reset-password",
            &json!({"identifier": "customer@example.com", "code": code, "new_password": "yet another passphrase"}),
        )
        .await,
        400,
        "code_invalid",
    )
    .await;
}

#[tokio::test]
async fn a_password_change_notifies_through_the_outbox() {
    let app = TestApp::spawn().await;
    let mut inbox = app.notifications().await;
    let tokens = app.login("customer@example.com", SEED_PASSWORD).await;
    let response = app
        .authed(
            reqwest::Method::POST,
            "/api/v1/auth/update-password",
            tokens["access_token"].as_str().expect("token"),
        )
        .header("Accept-Language", "ru")
        .json(&json!({
            "user_id": tokens["user"]["id"],
            "old_password": SEED_PASSWORD,
            "new_password": NEW_PASSWORD,
        }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let notice = inbox.next().await;
    assert_eq!(notice.payload["template"], "password_changed");
    assert_eq!(notice.payload["locale"], "ru");
    assert_eq!(notice.payload["to"], "customer@example.com");
}

#[tokio::test]
async fn bad_input_is_422_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let mut inbox = app.notifications().await;
    let long = "x".repeat(10_000);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "verify-code",
            json!({"identifier": "not-an-identifier", "purpose": "register"}),
            "identifier",
        ),
        (
            "verify-code",
            json!({"identifier": "89991234567", "purpose": "register"}),
            "identifier",
        ),
        (
            "verify-code",
            json!({"identifier": "+7999123", "purpose": "register"}),
            "identifier",
        ),
        (
            "verify-code",
            json!({"identifier": long.clone(), "purpose": "register"}),
            "identifier",
        ),
        (
            "verify-code",
            json!({"identifier": "a@example.com", "purpose": "login"}),
            "purpose",
        ),
        (
            "verify-code",
            json!({"identifier": "a@example.com"}),
            "purpose",
        ),
        (
            "verify-code",
            json!({"identifier": "a@example.com", "purpose": "register", "extra": 1}),
            "extra",
        ),
        (
            "register",
            json!({"identifier": "a@example.com", "code": "12345", "password": NEW_PASSWORD}),
            "code",
        ),
        (
            "register",
            json!({"identifier": "a@example.com", "code": "12a456", "password": NEW_PASSWORD}),
            "code",
        ),
        (
            "register",
            json!({"identifier": "a@example.com", "code": "1234567", "password": NEW_PASSWORD}),
            "code",
        ),
        (
            "register",
            json!({"identifier": "a@example.com", "code": "123456", "password": "short"}),
            "password",
        ),
        (
            "register",
            json!({"identifier": "a@example.com", "code": "123456", "password": "password123"}),
            "password",
        ),
        (
            "register",
            json!({"identifier": "a@example.com", "code": "123456", "password": NEW_PASSWORD, "name": "n".repeat(101)}),
            "name",
        ),
        (
            "register",
            json!({"identifier": "a@example.com", "code": 123456, "password": NEW_PASSWORD}),
            "code",
        ),
        (
            "reset-password",
            json!({"identifier": "a@example.com", "reason": "r".repeat(201)}),
            "reason",
        ),
        (
            "reset-password",
            json!({"identifier": "nope"}),
            "identifier",
        ),
        (
            "confirm-reset-password",
            json!({"identifier": "a@example.com", "code": "", "new_password": NEW_PASSWORD}),
            "code",
        ),
        (
            "confirm-reset-password",
            json!({"identifier": "a@example.com", "code": "123456", "new_password": "qwertyuiop"}),
            "new_password",
        ),
        (
            "confirm-reset-password",
            json!({"identifier": "a@example.com", "code": "123456", "new_password": long}),
            "new_password",
        ),
    ];
    for (endpoint, body, field) in cases {
        let response = app
            .post_json(&format!("/api/v1/auth/{endpoint}"), &body)
            .await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        let named = problem["errors"]
            .as_array()
            .is_some_and(|errors| errors.iter().any(|e| e["field"] == field));
        assert!(named, "{endpoint} {body}: {problem}");
    }
    // Every field's error is reported at once.
    let response = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"identifier": "x", "code": "1", "password": "y"}),
        )
        .await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(
        problem["errors"].as_array().map(Vec::len),
        Some(3),
        "{problem}"
    );

    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(written, 0, "nothing stored");
    assert!(
        inbox
            .next_within(Duration::from_millis(300))
            .await
            .is_none(),
        "nothing sent"
    );
    // Nothing was throttled either: a good request still goes through.
    assert_eq!(
        verify_code(&app, "a@example.com", "register")
            .await
            .status(),
        202
    );
}

#[tokio::test]
async fn a_reset_clears_every_login_lock_of_the_account() {
    let app = TestApp::spawn_with(|c| c.rate_limit.login_lock_after = 2).await;
    let mut inbox = app.notifications().await;
    let login = |password: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"identifier": "customer@example.com", "password": password}))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(login("guess").await.expect("sent").status(), 401);
    }
    assert_eq!(login(SEED_PASSWORD).await.expect("sent").status(), 429);
    let code = code_for(&app, &mut inbox, "customer@example.com", "reset_password").await;
    let response = app
        .post_json(
            "/api/v1/auth/confirm-reset-password",
            &json!({"identifier": "customer@example.com", "code": code, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(login(NEW_PASSWORD).await.expect("sent").status(), 200);
}

/// `POST path` with `body` from the client `from`.
async fn post_from(
    app: &TestApp,
    from: &reqwest::Client,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    from.post(app.url(path))
        .json(body)
        .send()
        .await
        .expect("sent")
}

#[tokio::test]
async fn one_client_spending_the_codes_does_not_starve_the_owner() {
    let app = TestApp::spawn_with(|c| {
        c.codes.code_cooldown = Duration::from_secs(1);
        c.codes.code_hourly_limit_per_identifier = 2;
        c.codes.code_hourly_limit_per_identifier_all = 3;
    })
    .await;
    let reset = |from: &reqwest::Client| {
        let body = json!({"identifier": "customer@example.com"});
        let (app, from) = (&app, from.clone());
        async move { post_from(app, &from, "/api/v1/auth/reset-password", &body).await }
    };
    let (attacker, owner, third) = (
        app.client_from("127.0.0.2"),
        app.client_from("127.0.0.3"),
        app.client_from("127.0.0.4"),
    );
    for _ in 0..2 {
        assert_eq!(reset(&attacker).await.status(), 202);
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let response = reset(&attacker).await;
    assert_eq!(
        response.headers()["ratelimit-policy"],
        "\"code_identifier\";q=2;w=3600"
    );
    assert_problem(response, 429, "rate_limited").await;
    // The owner, on another network, still gets a code.
    assert_eq!(reset(&owner).await.status(), 202);
    // All clients together meet the looser identifier-wide cap.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = reset(&third).await;
    assert_eq!(
        response.headers()["ratelimit-policy"],
        "\"code_identifier_all\";q=3;w=3600"
    );
    assert_problem(response, 429, "rate_limited").await;
}

#[tokio::test]
async fn wrong_codes_are_limited_per_client_and_budgeted_per_identifier() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.rate_limit_code_failures_per_ip = bff_cache::ratelimit::Quota::per_hour(3);
        c.codes.code_daily_failures_per_identifier = 4;
    })
    .await;
    let mut inbox = app.notifications().await;
    let code = code_for(&app, &mut inbox, "customer@example.com", "reset_password").await;
    let wrong = format!("{}", (code.parse::<u32>().expect("digits") + 1) % 1_000_000);
    let wrong = format!("{wrong:0>6}");
    let confirm = |from: &reqwest::Client, code: &str| {
        let body = json!({"identifier": "customer@example.com", "code": code, "new_password": NEW_PASSWORD});
        let (app, from) = (&app, from.clone());
        async move { post_from(app, &from, "/api/v1/auth/confirm-reset-password", &body).await }
    };
    let guesser = app.client_from("127.0.0.2");
    for _ in 0..3 {
        assert_problem(confirm(&guesser, &wrong).await, 400, "code_invalid").await;
    }
    // The guessing address is stopped, whatever the identifier or the code.
    let response = confirm(&guesser, &code).await;
    assert_eq!(
        response.headers()["ratelimit-policy"],
        "\"code_checks\";q=3;w=3600"
    );
    assert_problem(response, 429, "rate_limited").await;
    // One more wrong guess from elsewhere spends the identifier's daily budget:
    // the right code no longer passes, and no new code is sent.
    let other = app.client_from("127.0.0.3");
    assert_problem(confirm(&other, &wrong).await, 400, "code_invalid").await;
    assert_problem(confirm(&other, &code).await, 400, "code_invalid").await;
    let response = verify_code(&app, "customer@example.com", "reset_password").await;
    assert!(retry_after(&response) > 23 * 3600, "a day");
    assert_problem(response, 429, "rate_limited").await;
    // The password is unchanged.
    app.login("customer@example.com", SEED_PASSWORD).await;
}

#[tokio::test]
async fn text_messages_have_a_global_and_a_per_country_budget() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.rate_limit_sms_per_country = bff_cache::ratelimit::Quota::per_hour(2);
        c.rate_limit.rate_limit_sms = bff_cache::ratelimit::Quota::per_hour(3);
    })
    .await;
    for number in ["+79990001101", "+79990001102"] {
        assert_eq!(verify_code(&app, number, "register").await.status(), 202);
    }
    let response = verify_code(&app, "+79990001103", "register").await;
    assert_eq!(
        response.headers()["ratelimit-policy"],
        "\"sms_country\";q=2;w=3600"
    );
    assert_problem(response, 429, "rate_limited").await;
    // Another country has its own budget, until the global one is spent.
    assert_eq!(
        verify_code(&app, "+442079460958", "register")
            .await
            .status(),
        202
    );
    let response = verify_code(&app, "+442079460959", "register").await;
    assert_eq!(response.headers()["ratelimit-policy"], "\"sms\";q=3;w=3600");
    assert_problem(response, 429, "rate_limited").await;
    // Email is not a text message.
    assert_eq!(
        verify_code(&app, "mail@example.com", "register")
            .await
            .status(),
        202
    );
}

#[tokio::test]
async fn a_code_asked_for_during_a_postgres_outage_is_refused_and_costs_nothing() {
    let postgres = Proxy::to("127.0.0.1:5432".parse().expect("addr")).await;
    let port = postgres.addr().port();
    let app = TestApp::spawn_with(|config| {
        let url = config
            .database
            .database_url
            .expose_secret()
            .replace(":5432/", &format!(":{port}/"));
        config.database.database_url = url.into();
        config.database.database_acquire_timeout = Duration::from_millis(500);
        config.codes.code_cooldown = Duration::from_secs(60);
    })
    .await;
    let mut inbox = app.notifications().await;

    postgres.down();
    for (path, purpose) in [
        ("/api/v1/auth/verify-code", Some("register")),
        ("/api/v1/auth/verify-code", Some("reset_password")),
        ("/api/v1/auth/reset-password", None),
    ] {
        for identifier in ["new.user@example.com", "customer@example.com"] {
            let mut body = json!({"identifier": identifier});
            if let Some(purpose) = purpose {
                body["purpose"] = json!(purpose);
            }
            let response = app.post_json(path, &body).await;
            assert_eq!(retry_after(&response), 1, "{path} {identifier}");
            assert_problem(response, 503, "unavailable").await;
        }
    }
    postgres.up();

    // The refused request did not start the cooldown: the code comes at once.
    let code = code_for(&app, &mut inbox, "new.user@example.com", "register").await;
    assert_eq!(
        register(&app, "new.user@example.com", &code).await.status(),
        201
    );
    let response = app
        .post_json(
            "/api/v1/auth/reset-password",
            &json!({"identifier": "customer@example.com"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    assert_eq!(inbox.next().await.payload["template"], "reset_password");
    assert!(
        inbox
            .next_within(Duration::from_millis(300))
            .await
            .is_none(),
        "nothing from the outage was sent later"
    );
}
