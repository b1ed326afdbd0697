//! The auth endpoints of the contract, including their bad paths.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_auth::keys::{Algorithm, SigningKey};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{SEED_PASSWORD, TestApp, assert_problem, forge};

const CUSTOMER: &str = "customer@example.com";
const MANAGER: &str = "manager@example.com";

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().expect("access token")
}

fn refresh_token(tokens: &Value) -> &str {
    tokens["refresh_token"].as_str().expect("refresh token")
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/api/v1/auth/refresh", &json!({ "refresh_token": token }))
        .await
}

#[tokio::test]
async fn login_answers_the_contract_token_response() {
    let app = TestApp::spawn().await;
    let tokens = app.login("  Customer@Example.com ", SEED_PASSWORD).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    assert!(
        refresh_token(&tokens).len() >= 43,
        "at least 256 bits, base64url"
    );
    let user = &tokens["user"];
    assert_eq!(user["email"], CUSTOMER);
    assert_eq!(user["role"], "customer");
    for field in [
        "id",
        "email",
        "phone",
        "name",
        "role",
        "email_verified_at",
        "phone_verified_at",
        "created_at",
    ] {
        assert!(user.get(field).is_some(), "user.{field}");
    }
    assert!(user["email_verified_at"].is_string());

    let me: Value = app.get_json_authed("/api/v1/me", access(&tokens)).await;
    assert_eq!(&me, user);
}

#[tokio::test]
async fn unknown_identifier_and_wrong_password_answer_identically() {
    let app = TestApp::spawn().await;
    let strip = |mut body: Value| {
        body.as_object_mut().expect("object").remove("request_id");
        body
    };
    let unknown = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"identifier": "nobody@example.com", "password": SEED_PASSWORD}),
        )
        .await;
    let unknown = strip(assert_problem(unknown, 401, "invalid_credentials").await);
    let wrong = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"identifier": CUSTOMER, "password": "not the password"}),
        )
        .await;
    let wrong = strip(assert_problem(wrong, 401, "invalid_credentials").await);
    assert_eq!(unknown, wrong);
}

#[tokio::test]
async fn login_refuses_bad_input_with_named_fields() {
    let app = TestApp::spawn().await;
    for (body, field) in [
        (
            json!({"identifier": "not an identifier", "password": "x"}),
            "identifier",
        ),
        (
            json!({"identifier": "89991234567", "password": "x"}),
            "identifier",
        ),
        (
            json!({"identifier": CUSTOMER, "password": "x", "remember": true}),
            "remember",
        ),
        (json!({"identifier": CUSTOMER}), "password"),
        (
            json!({"identifier": CUSTOMER, "password": 12345678}),
            "password",
        ),
    ] {
        let response = app.post_json("/api/v1/auth/login", &body).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
}

#[tokio::test]
async fn refresh_rotates_and_a_replayed_token_ends_the_session() {
    let app =
        TestApp::spawn_with(|c| c.auth.refresh_reuse_grace = Duration::from_millis(300)).await;
    let first = app.login(CUSTOMER, SEED_PASSWORD).await;
    let second: Value = refresh(&app, refresh_token(&first))
        .await
        .json()
        .await
        .expect("json");
    assert_ne!(refresh_token(&second), refresh_token(&first));
    assert_eq!(second["user"]["email"], CUSTOMER);
    assert_eq!(app.me_status(access(&second)).await, 200);

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_problem(
        refresh(&app, refresh_token(&first)).await,
        401,
        "refresh_token_reused",
    )
    .await;
    // The whole session is gone: the newer refresh token and its access token too.
    assert_problem(
        refresh(&app, refresh_token(&second)).await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(app.me_status(access(&second)).await, 401);
    assert_eq!(app.me_status(access(&first)).await, 401);
}

#[tokio::test]
async fn concurrent_refreshes_keep_the_user_logged_in() {
    let app = TestApp::spawn().await;
    let tokens = app.login(CUSTOMER, SEED_PASSWORD).await;
    let (a, b) = tokio::join!(
        refresh(&app, refresh_token(&tokens)),
        refresh(&app, refresh_token(&tokens))
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let (a, b): (Value, Value) = (a.json().await.expect("json"), b.json().await.expect("json"));
    for tab in [&a, &b] {
        assert_eq!(
            refresh(&app, refresh_token(tab)).await.status(),
            200,
            "each tab goes on"
        );
    }
}

#[tokio::test]
async fn bad_refresh_tokens_are_401() {
    let app = TestApp::spawn().await;
    for token in ["", "garbage", &"x".repeat(5000)] {
        assert_problem(refresh(&app, token).await, 401, "unauthorized").await;
    }
    let response = app
        .post_json("/api/v1/auth/refresh", &json!({"token": "x"}))
        .await;
    assert_problem(response, 422, "validation_failed").await;
}

#[tokio::test]
async fn logout_ends_this_session_only_and_at_once() {
    let app = TestApp::spawn().await;
    let one = app.login(CUSTOMER, SEED_PASSWORD).await;
    let two = app.login(CUSTOMER, SEED_PASSWORD).await;
    let response = app
        .authed(Method::POST, "/api/v1/auth/logout", access(&one))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    assert_eq!(app.me_status(access(&one)).await, 401);
    assert_problem(
        refresh(&app, refresh_token(&one)).await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(app.me_status(access(&two)).await, 200);
}

#[tokio::test]
async fn logout_all_ends_every_session_also_on_another_instance() {
    let a = TestApp::spawn().await;
    let b = a.spawn_sibling().await;
    let one = a.login(CUSTOMER, SEED_PASSWORD).await;
    let two = b.login(CUSTOMER, SEED_PASSWORD).await;
    let other_user = a.login(MANAGER, SEED_PASSWORD).await;
    // Each instance accepts the other's tokens (and caches them).
    assert_eq!(b.me_status(access(&one)).await, 200);
    assert_eq!(a.me_status(access(&two)).await, 200);

    let response = a
        .authed(Method::POST, "/api/v1/auth/logout-all", access(&one))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    for app in [&a, &b] {
        assert_eq!(app.me_status(access(&one)).await, 401);
        assert_eq!(app.me_status(access(&two)).await, 401);
        assert_eq!(
            app.me_status(access(&other_user)).await,
            200,
            "other users are untouched"
        );
    }
}

#[tokio::test]
async fn logout_on_one_instance_stops_the_token_on_another_at_once() {
    let a = TestApp::spawn().await;
    let b = a.spawn_sibling().await;
    let tokens = a.login(CUSTOMER, SEED_PASSWORD).await;
    assert_eq!(b.me_status(access(&tokens)).await, 200);
    assert_eq!(
        b.authed(Method::POST, "/api/v1/auth/logout", access(&tokens))
            .send()
            .await
            .expect("sent")
            .status(),
        204
    );
    assert_eq!(a.me_status(access(&tokens)).await, 401);
}

#[tokio::test]
async fn sessions_are_listed_and_ended_by_their_owner_only() {
    let app = TestApp::spawn().await;
    let mine = app.login(CUSTOMER, SEED_PASSWORD).await;
    let other_device = app.login(CUSTOMER, SEED_PASSWORD).await;
    let theirs = app.login(MANAGER, SEED_PASSWORD).await;

    let list: Value = app
        .get_json_authed("/api/v1/auth/sessions", access(&mine))
        .await;
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);
    for field in [
        "id",
        "created_at",
        "last_used_at",
        "user_agent",
        "ip",
        "current",
    ] {
        assert!(items[0].get(field).is_some(), "{field}");
    }
    assert_eq!(items[0]["ip"], "127.0.0.1");
    let other_id = items
        .iter()
        .find(|s| s["current"] == false)
        .and_then(|s| s["id"].as_str())
        .expect("other session");

    let their_list: Value = app
        .get_json_authed("/api/v1/auth/sessions", access(&theirs))
        .await;
    let their_id = their_list["items"][0]["id"].as_str().expect("id");
    let response = app
        .authed(
            Method::DELETE,
            &format!("/api/v1/auth/sessions/{their_id}"),
            access(&mine),
        )
        .send()
        .await
        .expect("sent");
    assert_problem(response, 404, "not_found").await;
    assert_eq!(app.me_status(access(&theirs)).await, 200);

    let response = app
        .authed(
            Method::DELETE,
            "/api/v1/auth/sessions/not-a-uuid",
            access(&mine),
        )
        .send()
        .await
        .expect("sent");
    assert_problem(response, 404, "not_found").await;

    let response = app
        .authed(
            Method::DELETE,
            &format!("/api/v1/auth/sessions/{other_id}"),
            access(&mine),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    assert_eq!(app.me_status(access(&other_device)).await, 401);
    assert_eq!(app.me_status(access(&mine)).await, 200);
}

#[tokio::test]
async fn update_password_checks_owner_old_password_and_policy_then_ends_other_sessions() {
    let app = TestApp::spawn().await;
    let current = app.login(CUSTOMER, SEED_PASSWORD).await;
    let other = app.login(CUSTOMER, SEED_PASSWORD).await;
    let me = current["user"]["id"].as_str().expect("id").to_owned();
    let manager_id = app.login(MANAGER, SEED_PASSWORD).await["user"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let change = |body: Value| {
        app.authed(
            Method::POST,
            "/api/v1/auth/update-password",
            access(&current),
        )
        .json(&body)
        .send()
    };

    let response = change(json!({"user_id": manager_id, "old_password": SEED_PASSWORD, "new_password": "a brand new secret"})).await.expect("sent");
    assert_problem(response, 403, "forbidden").await;
    let response = change(json!({"user_id": me, "old_password": "wrong old password", "new_password": "a brand new secret"})).await.expect("sent");
    assert_problem(response, 401, "invalid_credentials").await;
    for weak in ["short", "password1", "qwertyuiop"] {
        let response =
            change(json!({"user_id": me, "old_password": SEED_PASSWORD, "new_password": weak}))
                .await
                .expect("sent");
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "new_password");
    }
    // Nothing changed so far.
    assert_eq!(app.me_status(access(&other)).await, 200);

    let response = change(
        json!({"user_id": me, "old_password": SEED_PASSWORD, "new_password": "a brand new secret"}),
    )
    .await
    .expect("sent");
    assert_eq!(response.status(), 204);
    assert_eq!(
        app.me_status(access(&other)).await,
        401,
        "other sessions end"
    );
    assert_eq!(
        app.me_status(access(&current)).await,
        200,
        "the current one lives"
    );
    app.login(CUSTOMER, "a brand new secret").await;
    let old = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"identifier": CUSTOMER, "password": SEED_PASSWORD}),
        )
        .await;
    assert_problem(old, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn patch_me_renames_with_validation() {
    let app = TestApp::spawn().await;
    let tokens = app.login(CUSTOMER, SEED_PASSWORD).await;
    let patch = |body: Value| {
        app.authed(Method::PATCH, "/api/v1/me", access(&tokens))
            .json(&body)
            .send()
    };
    let renamed: Value = patch(json!({"name": "  Ada Lovelace "}))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(renamed["name"], "Ada Lovelace");
    for bad in [
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({"name": "a\u{0}b"}),
        json!({"name": "ok", "role": "admin"}),
    ] {
        assert_problem(patch(bad).await.expect("sent"), 422, "validation_failed").await;
    }
    let me: Value = app.get_json_authed("/api/v1/me", access(&tokens)).await;
    assert_eq!(me["name"], "Ada Lovelace");
    assert_eq!(me["role"], "customer");
}

#[tokio::test]
async fn hostile_tokens_are_all_401() {
    let app = TestApp::spawn().await;
    let tokens = app.login(CUSTOMER, SEED_PASSWORD).await;
    let real = access(&tokens);
    let mut parts = real.split('.');
    let decode = |p: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("b64")).expect("json")
    };
    let header = decode(parts.next().expect("header"));
    let claims = decode(parts.next().expect("claims"));
    let key = SigningKey::from_pem(app.signing_key_pem.as_bytes()).expect("the app's key");
    let stranger = SigningKey::generate(Algorithm::EdDsa)
        .expect("gen")
        .signing_key()
        .expect("load");

    let mut expired = claims.clone();
    expired["exp"] = json!(claims["iat"].as_i64().expect("iat") - 3600);
    let mut escalated = claims.clone();
    escalated["role"] = json!("admin");
    let mut no_kid = header.clone();
    no_kid.as_object_mut().expect("object").remove("kid");
    let mut none = header.clone();
    none["alg"] = json!("none");
    let mut hs256 = header.clone();
    hs256["alg"] = json!("HS256");

    let encode = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"));
    let jwks_text = app
        .get("/.well-known/jwks.json")
        .await
        .text()
        .await
        .expect("jwks");
    let hmac_input = format!("{}.{}", encode(&hs256), encode(&escalated));
    let hmac = josekit::jws::HS256
        .signer_from_bytes(jwks_text.as_bytes())
        .expect("hmac");
    let hmac_sig = josekit::jws::JwsSigner::sign(&hmac, hmac_input.as_bytes()).expect("sign");
    let signature = real.rsplit('.').next().expect("signature");

    let hostile = [
        ("expired", forge(&key, &header, &expired)),
        (
            "unknown key",
            forge(
                &stranger,
                &json!({"alg": "EdDSA", "typ": "JWT", "kid": stranger.kid()}),
                &claims,
            ),
        ),
        (
            "alg none",
            format!("{}.{}.", encode(&none), encode(&escalated)),
        ),
        (
            "HMAC keyed with the public JWKS",
            format!("{hmac_input}.{}", URL_SAFE_NO_PAD.encode(hmac_sig)),
        ),
        (
            "tampered payload",
            format!("{}.{}.{signature}", encode(&header), encode(&escalated)),
        ),
        ("missing kid", forge(&key, &no_kid, &claims)),
    ];
    for (what, token) in hostile {
        let response = app
            .authed(Method::GET, "/api/v1/me", &token)
            .send()
            .await
            .expect("sent");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .is_ok_and(|v| v.starts_with("Bearer")),
            "{what}"
        );
        assert_problem(response, 401, "unauthorized").await;
    }
    let response = app.get("/api/v1/me").await;
    assert_problem(response, 401, "unauthorized").await;
    assert_eq!(
        app.me_status(real).await,
        200,
        "the genuine token still works"
    );
}

#[tokio::test]
async fn the_jwks_is_public_cacheable_and_verifies_tokens_elsewhere() {
    let app = TestApp::spawn().await;
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let jwks: jsonwebtoken::jwk::JwkSet = response.json().await.expect("a JWKS");
    let tokens = app.login(CUSTOMER, SEED_PASSWORD).await;
    let token = access(&tokens);
    let kid = jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid");
    let key =
        jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).expect("published")).expect("key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&["bff"]);
    validation.set_audience(&["bff"]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("verifies with the JWKS alone")
        .claims;
    assert_eq!(claims["sub"], tokens["user"]["id"]);
    for claim in [
        "iss", "aud", "sub", "sid", "role", "iat", "nbf", "exp", "jti",
    ] {
        assert!(claims.get(claim).is_some(), "{claim}");
    }
}

#[tokio::test]
async fn prod_refuses_to_start_without_a_signing_key() {
    let app = TestApp::spawn().await;
    let mut config = app.config.clone();
    config.common.profile = bff_app::config::Profile::Prod;
    config.auth.jwt_signing_key = None;
    let error = bff_app::startup::Application::build(&config)
        .await
        .expect_err("no key in prod");
    assert!(
        matches!(
            error,
            bff_app::startup::StartupError::Auth(bff_app::auth::AuthSetupError::NoSigningKey)
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn another_service_authenticates_with_the_running_apps_jwks_alone() {
    use bff_auth::jwks::JwksClient;
    use bff_auth::layer::JwtLayer;
    use bff_auth::token::{TokenVerifier, ValidationPolicy};

    let app = TestApp::spawn().await;
    let jwks = JwksClient::connect(&app.url("/.well-known/jwks.json"))
        .await
        .expect("the app's JWKS");
    let verifier = TokenVerifier::new(
        jwks.verification_keys(),
        ValidationPolicy::new("bff", "bff"),
    );
    let layer = JwtLayer::new(verifier).with_jwks(jwks);

    let tokens = app.login(MANAGER, SEED_PASSWORD).await;
    let principal = layer
        .authenticate(access(&tokens))
        .await
        .expect("verified with public keys only");
    assert_eq!(principal.role, "manager");
    assert_eq!(
        principal.user_id,
        tokens["user"]["id"].as_str().expect("id")
    );
    let stranger = SigningKey::generate(Algorithm::EdDsa)
        .expect("gen")
        .signing_key()
        .expect("load");
    let forged = forge(
        &stranger,
        &json!({"alg": "EdDSA", "kid": stranger.kid()}),
        &json!({}),
    );
    assert!(layer.authenticate(&forged).await.is_err());
}

#[tokio::test]
async fn a_blocked_account_can_neither_log_in_nor_refresh() {
    let app = TestApp::spawn().await;
    let tokens = app.login(CUSTOMER, SEED_PASSWORD).await;
    sqlx::query("UPDATE users SET blocked_at = now() WHERE email = $1")
        .bind(CUSTOMER)
        .execute(&app.db)
        .await
        .expect("block");

    let response = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"identifier": CUSTOMER, "password": SEED_PASSWORD}),
        )
        .await;
    assert_problem(response, 403, "account_blocked").await;
    // A wrong password still answers like any other: blocking reveals nothing to guessers.
    let response = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"identifier": CUSTOMER, "password": "a wrong password"}),
        )
        .await;
    assert_problem(response, 401, "invalid_credentials").await;
    assert_problem(
        refresh(&app, refresh_token(&tokens)).await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(
        app.me_status(access(&tokens)).await,
        401,
        "the refused refresh ended the session"
    );
}

#[tokio::test]
async fn a_redis_outage_at_login_is_a_503_not_a_500() {
    let mut redis = crate::helpers::PrivateRedis::start();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let app = TestApp::spawn_with(|c| c.redis.redis_url = url.into()).await;
    redis.stop();
    let response = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"identifier": CUSTOMER, "password": SEED_PASSWORD}),
        )
        .await;
    assert_problem(response, 503, "unavailable").await;
}

#[tokio::test]
async fn token_responses_and_profiles_are_never_cached_or_sniffed() {
    let app = TestApp::spawn().await;
    let login = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"identifier": "customer@example.com", "password": SEED_PASSWORD}),
        )
        .await;
    assert_eq!(login.status(), 200);
    let tokens: Value = {
        let headers = login.headers().clone();
        assert_eq!(headers["cache-control"], "no-store");
        login.json().await.expect("json")
    };
    let access = tokens["access_token"].as_str().expect("token");
    let me = app
        .authed(reqwest::Method::GET, "/api/v1/me", access)
        .send()
        .await
        .expect("sent");
    let refused = app.get("/api/v1/me").await;
    for response in [&me, &refused] {
        let headers = response.headers();
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(
            headers["content-security-policy"],
            "default-src 'none'; frame-ancestors 'none'"
        );
    }
    // What is meant to be cached says so, and the docs page keeps its own policy.
    let jwks = app.get("/.well-known/jwks.json").await;
    assert!(
        jwks.headers()["cache-control"]
            .to_str()
            .expect("ascii")
            .starts_with("public")
    );
    let docs = app.get("/docs").await;
    assert_ne!(
        docs.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
}

#[tokio::test]
async fn look_alike_identifiers_are_the_account_they_look_like_or_refused() {
    let app = TestApp::spawn().await;
    // Fullwidth letters are the ASCII ones: the same account.
    let fullwidth = "\u{ff43}\u{ff55}\u{ff53}\u{ff54}\u{ff4f}\u{ff4d}\u{ff45}\u{ff52}@example.com";
    let tokens = app.login(fullwidth, SEED_PASSWORD).await;
    assert_eq!(tokens["user"]["email"], "customer@example.com");
    // A Latin name with a Cyrillic letter in it is no new account: refused.
    let cyrillic = "\u{441}ustomer@example.com";
    for (path, body) in [
        (
            "/api/v1/auth/login",
            json!({"identifier": cyrillic, "password": SEED_PASSWORD}),
        ),
        (
            "/api/v1/auth/verify-code",
            json!({"identifier": cyrillic, "purpose": "register"}),
        ),
    ] {
        let response = app.post_json(path, &body).await;
        let problem: Value = response.json().await.expect("json");
        assert_eq!(problem["status"], 422, "{path}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "identifier", "{path}");
    }
}
