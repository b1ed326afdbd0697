//! A browser session through `JwtLayer`, with no infrastructure:
//!
//! ```text
//! cargo run --example browser_session
//! ```
//!
//! It logs a user in (a browser session in the in-memory store and the
//! `Set-Cookie` that carries it), then sends requests through the layer
//! in-process as a browser would: with the cookie and `X-CSRF: 1` (200), without
//! the header (403 `csrf_failed`), from a cross-site page (403), with a bearer
//! token as well (400), and after logout (the cookie cleared, 401).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bff_auth::keys::{Algorithm, KeySet, SigningKey};
use bff_auth::layer::{CookieSessions, JwtLayer, Principal, SessionCookie};
use bff_auth::session::{
    BrowserPolicy, BrowserSessionStore, MemorySessionStore, NewSession, SessionPolicy, SessionStore,
};
use bff_auth::token::{TokenIssuer, TokenVerifier, ValidationPolicy};
use http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn hello(principal: Principal) -> String {
    let how = match principal.credential.browser_session() {
        Some(session) => format!("cookie, idle end {}", session.idle_expires_at_ms),
        None => "bearer".to_owned(),
    };
    format!("hello {} ({how})", principal.user_id)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = SigningKey::generate(Algorithm::EdDsa)?.signing_key()?;
    let keys = KeySet::new(key, Vec::new())?;
    let issuer = TokenIssuer::new(keys.clone(), "example", "example", Duration::from_secs(900));
    let verifier = TokenVerifier::new(
        keys.verification_keys(),
        ValidationPolicy::new("example", "example"),
    );
    let store = MemorySessionStore::new(SessionPolicy::default(), BrowserPolicy::default());

    // One layer serves bearer and cookie callers; the CSRF rule comes with it.
    let app = Router::new()
        .route("/hello", get(hello))
        .layer(JwtLayer::new(verifier).with_cookie_sessions(CookieSessions::new(store.clone())));

    // Login: after the password check, a new browser session and its cookie.
    let (session, cookie) = store
        .create_browser(
            NewSession {
                user_id: "ada".into(),
                user_agent: Some("example".into()),
                ip: None,
            },
            "customer",
        )
        .await?;
    let now_ms = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let set_cookie = SessionCookie::set(&cookie, &session, now_ms);
    println_line(&format!(
        "login: Set-Cookie: {}=[{} chars]{}",
        SessionCookie::NAME,
        cookie.expose().len(),
        set_cookie
            .to_str()?
            .split_once(';')
            .map_or("", |(_, attributes)| attributes)
    ));
    let sent = format!("{}={}", SessionCookie::NAME, cookie.expose());
    let token = issuer
        .issue("ada", &session.session.id, "customer")?
        .access_token;

    let requests: [(&str, &[(&str, &str)]); 4] = [
        (
            "cookie + X-CSRF",
            &[("x-csrf", "1"), ("sec-fetch-site", "same-origin")],
        ),
        ("cookie, no X-CSRF", &[]),
        (
            "cookie from evil.test",
            &[("x-csrf", "1"), ("sec-fetch-site", "cross-site")],
        ),
        ("cookie + bearer", &[("x-csrf", "1"), ("authorization", "")]),
    ];
    for (label, headers) in requests {
        let mut request = Request::get("/hello").header("cookie", &sent);
        for (name, value) in headers {
            request = if *name == "authorization" {
                request.header(*name, format!("Bearer {token}"))
            } else {
                request.header(*name, *value)
            };
        }
        call(&app, label, request).await?;
    }

    // Logout: the session ends in the store, the browser is told to drop the cookie.
    store.revoke("ada", &session.session.id).await?;
    println_line(&format!(
        "logout: Set-Cookie: {}",
        SessionCookie::clear().to_str()?
    ));
    let request = Request::get("/hello")
        .header("cookie", &sent)
        .header("x-csrf", "1");
    call(&app, "cookie after logout", request).await
}

async fn call(
    app: &Router,
    label: &str,
    request: http::request::Builder,
) -> Result<(), Box<dyn std::error::Error>> {
    let response = app.clone().oneshot(request.body(Body::empty())?).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    println_line(&format!(
        "{label:22} {status}  {}",
        String::from_utf8_lossy(&body)
    ));
    Ok(())
}

fn println_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}
