//! Browser mode over HTTP: the cookie session, its CSRF rule on every route,
//! its lifetimes and endings, and the remote-API proxy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::IntoResponse as _;
use axum::routing::any;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{SEED_PASSWORD, TestApp, assert_problem, token_claims};

const COOKIE: &str = "__Host-Http-bff";

/// Logs in through `/bff/login`: the answer and the `Cookie` header to send.
async fn browser_login(app: &TestApp, identifier: &str) -> (Value, String) {
    let response = app
        .client
        .post(app.url("/bff/login"))
        .header("x-csrf", "1")
        .json(&json!({"identifier": identifier, "password": SEED_PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let set = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(COOKIE))
        .expect("session cookie")
        .to_owned();
    for attribute in [
        "; Path=/",
        "; Secure",
        "; HttpOnly",
        "; SameSite=Strict",
        "; Max-Age=",
    ] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.to_ascii_lowercase().contains("domain"), "{set}");
    let pair = set.split(';').next().expect("pair").to_owned();
    assert!(pair.len() >= COOKIE.len() + 1 + 43, "{pair}");
    (response.json().await.expect("json"), pair)
}

/// A cookie request, with the CSRF header when `csrf`.
async fn with_cookie(
    app: &TestApp,
    method: Method,
    path: &str,
    cookie: &str,
    csrf: bool,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, app.url(path))
        .header("cookie", cookie);
    if csrf {
        request = request.header("x-csrf", "1");
    }
    request.send().await.expect("sent")
}

#[tokio::test]
async fn a_cookie_session_works_on_bff_and_api_routes_with_the_csrf_rule() {
    let app = TestApp::spawn().await;
    let (body, cookie) = browser_login(&app, "customer@example.com").await;
    assert_eq!(body["user"]["email"], "customer@example.com");
    assert!(body["session"]["idle_expires_at"].is_string(), "{body}");
    // No token is handed to the page.
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none());

    let me = with_cookie(&app, Method::GET, "/bff/user", &cookie, true).await;
    assert_eq!(me.status(), 200);
    assert_eq!(me.headers()["cache-control"], "no-store");
    let me: Value = me.json().await.expect("json");
    assert_eq!(me["user"]["email"], "customer@example.com");
    let api = with_cookie(&app, Method::GET, "/api/v1/me", &cookie, true).await;
    assert_eq!(api.status(), 200);

    // Without the header, a GET too; a cross-site or same-site fetch.
    for path in ["/bff/user", "/api/v1/me", "/api/v1/wallets"] {
        let response = with_cookie(&app, Method::GET, path, &cookie, false).await;
        assert_problem(response, 403, "csrf_failed").await;
    }
    for site in ["cross-site", "same-site", "none"] {
        let response = app
            .client
            .get(app.url("/api/v1/me"))
            .header("cookie", &cookie)
            .header("x-csrf", "1")
            .header("sec-fetch-site", site)
            .send()
            .await
            .expect("sent");
        assert_problem(response, 403, "csrf_failed").await;
    }
    // Cookie and bearer on one request.
    let tokens = app.login("customer@example.com", SEED_PASSWORD).await;
    let both = app
        .client
        .get(app.url("/api/v1/me"))
        .header("cookie", &cookie)
        .header("x-csrf", "1")
        .bearer_auth(tokens["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("sent");
    assert_eq!(both.status(), 400);
    // /bff/login itself needs the header.
    let login = app
        .post_json(
            "/bff/login",
            &json!({"identifier": "customer@example.com", "password": SEED_PASSWORD}),
        )
        .await;
    assert_problem(login, 403, "csrf_failed").await;
    // A bearer caller has no browser session to report.
    let bearer = app
        .authed(
            Method::GET,
            "/bff/user",
            tokens["access_token"].as_str().expect("token"),
        )
        .send()
        .await
        .expect("sent");
    assert_problem(bearer, 401, "unauthorized").await;
}

#[tokio::test]
async fn every_protected_operation_refuses_a_cookie_without_the_csrf_header() {
    let app = TestApp::spawn().await;
    let (_, cookie) = browser_login(&app, "admin@example.com").await;
    let document: Value = app.get("/openapi.json").await.json().await.expect("json");
    let mut checked = 0;
    for (path, operations) in document["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                continue;
            };
            if operation.get("security").is_none() {
                continue;
            }
            let concrete = path
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        "0190c6a4-7a4e-7c5e-9a3b-1a2b3c4d5e6f"
                    } else {
                        segment
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let response = with_cookie(&app, method.clone(), &concrete, &cookie, false).await;
            assert_eq!(response.status(), 403, "{method} {path}");
            let body: Value = response.json().await.expect("problem");
            assert_eq!(body["code"], "csrf_failed", "{method} {path}");
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} operations walked");
    // Nothing changed: the session still works.
    let me = with_cookie(&app, Method::GET, "/bff/user", &cookie, true).await;
    assert_eq!(me.status(), 200);
}

#[tokio::test]
async fn a_planted_cookie_is_never_reused_and_logout_ends_the_session_everywhere() {
    let app = TestApp::spawn().await;
    let sibling = app.spawn_sibling().await;
    let planted = format!("{COOKIE}=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let response = app
        .client
        .post(app.url("/bff/login"))
        .header("x-csrf", "1")
        .header("cookie", &planted)
        .json(&json!({"identifier": "customer@example.com", "password": SEED_PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let set: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let cookie = set
        .iter()
        .find(|v| v.starts_with(COOKIE))
        .and_then(|v| v.split(';').next())
        .expect("cookie")
        .to_owned();
    assert_ne!(cookie, planted);
    // The other instance knows the session.
    let there = with_cookie(&sibling, Method::GET, "/bff/user", &cookie, true).await;
    assert_eq!(there.status(), 200);

    let out = with_cookie(&app, Method::POST, "/bff/logout", &cookie, true).await;
    assert_eq!(out.status(), 204);
    assert_eq!(
        out.headers()["clear-site-data"],
        "\"cache\", \"cookies\", \"storage\""
    );
    let cleared = out.headers()["set-cookie"].to_str().expect("ascii");
    assert!(
        cleared.starts_with(&format!("{COOKIE}=;")) && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    for instance in [&app, &sibling] {
        let gone = with_cookie(instance, Method::GET, "/bff/user", &cookie, true).await;
        assert_eq!(gone.status(), 401);
    }
    // Two session cookies (cookie tossing from a sibling domain): refused.
    let (_, fresh) = browser_login(&app, "customer@example.com").await;
    let tossed = with_cookie(
        &app,
        Method::GET,
        "/bff/user",
        &format!("{fresh}; {planted}"),
        true,
    )
    .await;
    assert_eq!(tossed.status(), 400);
}

#[tokio::test]
async fn logout_all_a_password_change_blocking_and_a_role_change_end_browser_sessions() {
    let app = TestApp::spawn().await;
    // logout-all: the token sessions go too.
    let tokens = app.login("customer@example.com", SEED_PASSWORD).await;
    let access = tokens["access_token"].as_str().expect("token").to_owned();
    let (_, cookie) = browser_login(&app, "customer@example.com").await;
    let sessions = app.get_json_authed("/api/v1/auth/sessions", &access).await;
    assert_eq!(
        sessions["items"].as_array().map(Vec::len),
        Some(2),
        "{sessions}"
    );
    let out = with_cookie(&app, Method::POST, "/bff/logout-all", &cookie, true).await;
    assert_eq!(out.status(), 204);
    assert_eq!(
        with_cookie(&app, Method::GET, "/bff/user", &cookie, true)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.authed(Method::GET, "/api/v1/me", &access)
            .send()
            .await
            .expect("sent")
            .status(),
        401
    );

    // A password change from a token session ends the browser one.
    let tokens = app.login("customer@example.com", SEED_PASSWORD).await;
    let (_, cookie) = browser_login(&app, "customer@example.com").await;
    let changed = app
        .authed(
            Method::POST,
            "/api/v1/auth/update-password",
            tokens["access_token"].as_str().expect("token"),
        )
        .json(&json!({
            "user_id": tokens["user"]["id"],
            "old_password": SEED_PASSWORD,
            "new_password": "another long passphrase 42",
        }))
        .send()
        .await
        .expect("sent");
    assert_eq!(changed.status(), 204);
    assert_eq!(
        with_cookie(&app, Method::GET, "/bff/user", &cookie, true)
            .await
            .status(),
        401
    );

    // A role change ends the manager's cookie session; blocking ends another's.
    let admin = app.login("admin@example.com", SEED_PASSWORD).await;
    let admin_token = admin["access_token"].as_str().expect("token");
    let (manager, cookie) = browser_login(&app, "manager@example.com").await;
    let id = manager["user"]["id"].as_str().expect("id");
    let demoted = app
        .authed(
            Method::PUT,
            &format!("/api/v1/admin/users/{id}/role"),
            admin_token,
        )
        .json(&json!({"role": "customer"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(demoted.status(), 200);
    assert_eq!(
        with_cookie(&app, Method::GET, "/bff/user", &cookie, true)
            .await
            .status(),
        401
    );
    let (_, cookie) = browser_login(&app, "manager@example.com").await;
    let blocked = app
        .authed(
            Method::POST,
            &format!("/api/v1/admin/users/{id}/block"),
            admin_token,
        )
        .send()
        .await
        .expect("sent");
    assert!(blocked.status().is_success());
    assert_eq!(
        with_cookie(&app, Method::GET, "/bff/user", &cookie, true)
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn the_idle_timeout_and_the_lifetime_end_a_session_and_bff_user_does_not_extend_it() {
    let app = TestApp::spawn_with(|c| {
        c.auth.browser_session_idle = Duration::from_secs(2);
        c.auth.browser_session_lifetime = Duration::from_secs(5);
    })
    .await;
    let (_, cookie) = browser_login(&app, "customer@example.com").await;
    // Polling /bff/user keeps nothing alive.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let _ = with_cookie(&app, Method::GET, "/bff/user", &cookie, true).await;
    }
    assert_eq!(
        with_cookie(&app, Method::GET, "/bff/user", &cookie, true)
            .await
            .status(),
        401
    );

    // Activity extends idle, but not past the lifetime.
    let (_, cookie) = browser_login(&app, "customer@example.com").await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let me = with_cookie(&app, Method::GET, "/api/v1/me", &cookie, true).await;
        assert_eq!(me.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        with_cookie(&app, Method::GET, "/api/v1/me", &cookie, true)
            .await
            .status(),
        401
    );
}

/// The status of a GET of `path` sent byte for byte, with the cookie and the
/// CSRF header.
async fn raw_status(app: &TestApp, path: &str, cookie: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nX-CSRF: 1\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer.split(' ').nth(1).unwrap_or_default().to_owned()
}

/// A loopback upstream that records each request's path and headers.
async fn recording_upstream() -> (String, Arc<Mutex<Vec<(String, http::HeaderMap)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let router = axum::Router::new().fallback(any(move |request: axum::extract::Request| {
        let record = Arc::clone(&record);
        async move {
            let target = request.uri().to_string();
            record
                .lock()
                .expect("seen")
                .push((target, request.headers().clone()));
            (
                [
                    ("set-cookie", "upstream=1; Path=/"),
                    ("content-type", "application/json"),
                ],
                "{\"ok\":true}",
            )
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}/base"), seen)
}

#[tokio::test]
async fn the_proxy_sends_a_token_minted_for_the_upstream_and_nothing_of_the_browsers() {
    let (base, seen) = recording_upstream().await;
    let app = TestApp::spawn_with(|c| c.browser.proxy_upstreams = format!("catalog={base}")).await;
    let (body, cookie) = browser_login(&app, "customer@example.com").await;
    let response = app
        .client
        .get(app.url("/bff/api/catalog/v1/items?q=shoes"))
        .header("cookie", &cookie)
        .header("x-csrf", "1")
        .header("x-forwarded-for", "203.0.113.9")
        .header("accept", "application/json")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("set-cookie").is_none());
    let (target, headers) = seen.lock().expect("seen")[0].clone();
    assert_eq!(target, "/base/v1/items?q=shoes");
    for absent in ["cookie", "x-csrf", "x-forwarded-for"] {
        assert!(
            headers.get(absent).is_none(),
            "{absent} reached the upstream"
        );
    }
    let bearer = headers["authorization"].to_str().expect("ascii");
    let claims = token_claims(bearer.strip_prefix("Bearer ").expect("bearer"));
    assert_eq!(claims["aud"], "catalog");
    assert_eq!(claims["sub"], body["user"]["id"]);
    assert!(claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat") <= 60);

    // Sent raw: an HTTP client would resolve the dot segments itself.
    for path in [
        "/bff/api/catalog/v1/%2e%2e/admin",
        "/bff/api/catalog/v1%2Fadmin",
        "/bff/api/catalog/a/../b",
        "/bff/api/catalog/a/%5c/b",
        "/bff/api/catalog/./b",
    ] {
        assert_eq!(raw_status(&app, path, &cookie).await, "400", "{path}");
    }
    let unknown = with_cookie(&app, Method::GET, "/bff/api/nope/x", &cookie, true).await;
    assert_eq!(unknown.status(), 404);
    // Without the CSRF header the proxy is never reached either.
    let refused = with_cookie(
        &app,
        Method::GET,
        "/bff/api/catalog/v1/items",
        &cookie,
        false,
    )
    .await;
    assert_problem(refused, 403, "csrf_failed").await;
    assert_eq!(seen.lock().expect("seen").len(), 1);
}

/// A loopback upstream whose `/base/redirect` answers 302 into itself,
/// `/base/away` 303 to another origin and `/base/slow` after two seconds; it
/// counts the requests it gets.
async fn redirecting_upstream() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let inside = format!("{origin}/base/next?page=2");
    let router = axum::Router::new().fallback(any(move |request: axum::extract::Request| {
        let record = Arc::clone(&record);
        let inside = inside.clone();
        async move {
            let path = request.uri().path().to_owned();
            record.lock().expect("seen").push(path.clone());
            match path.as_str() {
                "/base/redirect" => {
                    (http::StatusCode::FOUND, [("location", inside)]).into_response()
                }
                "/base/away" => (
                    http::StatusCode::SEE_OTHER,
                    [("location", "https://login.example.com/authorize".to_owned())],
                )
                    .into_response(),
                "/base/slow" => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    "late".into_response()
                }
                _ => "ok".into_response(),
            }
        }
    }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("{origin}/base"), seen)
}

#[tokio::test]
async fn the_proxy_passes_redirects_back_and_answers_504_and_502_for_a_slow_or_absent_upstream() {
    let (base, seen) = redirecting_upstream().await;
    // A port nothing listens on: bound, then let go.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let app = TestApp::spawn_with(|c| {
        c.browser.proxy_upstreams = format!("catalog={base},gone=http://{closed}/api");
        c.browser.proxy_timeout = Duration::from_millis(300);
        c.browser.proxy_body_limit = 16;
    })
    .await;
    let (_, cookie) = browser_login(&app, "customer@example.com").await;

    // Into the upstream: back through the proxy, its address never shown.
    let redirect = with_cookie(
        &app,
        Method::GET,
        "/bff/api/catalog/redirect",
        &cookie,
        true,
    )
    .await;
    assert_eq!(redirect.status(), 302);
    assert_eq!(
        redirect.headers()["location"],
        "/bff/api/catalog/next?page=2"
    );
    // Elsewhere: passed on as it is.
    let away = with_cookie(&app, Method::GET, "/bff/api/catalog/away", &cookie, true).await;
    assert_eq!(away.status(), 303);
    assert_eq!(
        away.headers()["location"],
        "https://login.example.com/authorize"
    );
    assert_eq!(
        *seen.lock().expect("seen"),
        ["/base/redirect", "/base/away"],
        "a redirect was followed"
    );

    let slow = with_cookie(&app, Method::GET, "/bff/api/catalog/slow", &cookie, true).await;
    assert_problem(slow, 504, "gateway_timeout").await;
    let gone = with_cookie(&app, Method::GET, "/bff/api/gone/x", &cookie, true).await;
    let problem = assert_problem(gone, 502, "bad_gateway").await;
    assert!(
        !problem.to_string().contains(&closed.port().to_string()),
        "the upstream's address leaked: {problem}"
    );

    let big = app
        .client
        .post(app.url("/bff/api/catalog/upload"))
        .header("cookie", &cookie)
        .header("x-csrf", "1")
        .body(vec![b'x'; 17])
        .send()
        .await
        .expect("sent");
    assert_problem(big, 413, "payload_too_large").await;
    assert_eq!(
        seen.lock().expect("seen").len(),
        3,
        "only the slow call was added"
    );
}

#[tokio::test]
async fn the_demo_page_loads_only_its_own_assets_under_a_strict_policy() {
    let app = TestApp::spawn_with(|c| c.browser.demo = Some(true)).await;
    let page = app.get("/").await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(
        !policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"),
        "{policy}"
    );
    let html = page.text().await.expect("html");
    // Everything it loads is on this origin; no inline script.
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    assert!(html.contains(r#"<script src="/demo.js" defer></script>"#));
    assert_eq!(html.matches("<script").count(), 1);
    for asset in ["/demo.js", "/demo.css"] {
        assert_eq!(app.get(asset).await.status(), 200, "{asset}");
    }
    let script = app.get("/demo.js").await.text().await.expect("js");
    assert!(script.contains(r#"headers.set("X-CSRF", "1")"#));

    let off = TestApp::spawn_with(|c| c.browser.demo = Some(false)).await;
    assert_eq!(off.get("/").await.status(), 404);
}
