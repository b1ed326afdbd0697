//! Cookie sessions in JwtLayer, as a browser sees them, on the in-memory store
//! with a clock the tests move.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use bff_auth::keys::{Algorithm, KeySet, SigningKey};
use bff_auth::layer::{CookieSessions, Credential, JwtLayer, Principal, SessionCookie};
use bff_auth::session::{
    BrowserPolicy, BrowserSessionStore, CookieValue, MemorySessionStore, NewSession, SessionPolicy,
    SessionStore, Touch,
};
use bff_auth::token::{TokenIssuer, TokenVerifier, ValidationPolicy};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

const MINUTE: i64 = 60_000;

struct Fixture {
    store: MemorySessionStore,
    clock: Arc<AtomicI64>,
    issuer: TokenIssuer,
    verifier: TokenVerifier,
    calls: Arc<AtomicUsize>,
}

impl Fixture {
    fn new() -> Self {
        let key = SigningKey::generate(Algorithm::EdDsa)
            .expect("gen")
            .signing_key()
            .expect("load");
        let keys = KeySet::new(key, Vec::new()).expect("keys");
        let clock = Arc::new(AtomicI64::new(1_700_000_000_000));
        let now = Arc::clone(&clock);
        let store = MemorySessionStore::new(SessionPolicy::default(), BrowserPolicy::default())
            .with_clock(move || now.load(Ordering::SeqCst));
        Self {
            store,
            clock,
            issuer: TokenIssuer::new(keys.clone(), "iss", "aud", Duration::from_secs(900)),
            verifier: TokenVerifier::new(
                keys.verification_keys(),
                ValidationPolicy::new("iss", "aud"),
            ),
            calls: Arc::default(),
        }
    }

    fn advance(&self, ms: i64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    fn app_with(&self, cookies: CookieSessions) -> Router {
        let calls = Arc::clone(&self.calls);
        let handler = move |principal: Principal| {
            let calls = Arc::clone(&calls);
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let via = match &principal.credential {
                    Credential::Cookie(session) => format!("cookie:{}", session.role),
                    _ => "bearer".to_owned(),
                };
                format!("{}/{}/{}", principal.user_id, principal.session_id, via)
            }
        };
        Router::new()
            .route("/", get(handler.clone()))
            .route("/change", post(handler))
            .layer(JwtLayer::new(self.verifier.clone()).with_cookie_sessions(cookies))
    }

    fn app(&self) -> Router {
        self.app_with(CookieSessions::new(self.store.clone()))
    }

    async fn login(&self, user: &str) -> (String, CookieValue) {
        let (session, cookie) = self
            .store
            .create_browser(
                NewSession {
                    user_id: user.to_owned(),
                    user_agent: Some("test".into()),
                    ip: None,
                },
                "customer",
            )
            .await
            .expect("create");
        (session.session.id, cookie)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn cookie_header(value: &CookieValue) -> String {
    format!("theme=dark; {}={}", SessionCookie::NAME, value.expose())
}

async fn send(app: &Router, request: http::request::Builder) -> (StatusCode, serde_json::Value) {
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body)
}

fn browser(method: &str, cookie: &CookieValue) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(if method == "GET" { "/" } else { "/change" })
        .header("cookie", cookie_header(cookie))
        .header("x-csrf", "1")
        .header("sec-fetch-site", "same-origin")
}

#[tokio::test]
async fn a_cookie_with_the_csrf_header_is_the_same_principal_as_a_token() {
    let f = Fixture::new();
    let app = f.app();
    let (sid, cookie) = f.login("alice").await;
    let (status, body) = send(&app, browser("GET", &cookie)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, format!("alice/{sid}/cookie:customer").as_str());
    // Without Sec-Fetch-Site (older browsers, non-browser clients) the header suffices.
    let request = Request::get("/")
        .header("cookie", cookie_header(&cookie))
        .header("x-csrf", "1");
    assert_eq!(send(&app, request).await.0, StatusCode::OK);
    // Bearer callers are unchanged on the same route.
    let token = f.issuer.issue("bob", "s-1", "admin").expect("issue");
    let request =
        Request::get("/").header("authorization", format!("Bearer {}", token.access_token));
    let (status, body) = send(&app, request).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, Some("bob/s-1/bearer"))
    );
}

#[tokio::test]
async fn without_the_csrf_header_any_method_is_403_and_nothing_runs() {
    let f = Fixture::new();
    let app = f.app();
    let (_, cookie) = f.login("alice").await;
    let before = f
        .store
        .lookup_browser(&cookie, Touch::Keep)
        .await
        .expect("store")
        .expect("live");
    f.advance(MINUTE);
    for method in ["GET", "POST"] {
        let request = Request::builder()
            .method(method)
            .uri(if method == "GET" { "/" } else { "/change" })
            .header("cookie", cookie_header(&cookie));
        let (status, body) = send(&app, request).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method}");
        assert_eq!(body["code"], "csrf_failed", "{method}");
        for bad in ["0", "true", ""] {
            let request = Request::builder()
                .method(method)
                .uri("/")
                .header("cookie", cookie_header(&cookie))
                .header("x-csrf", bad);
            assert_eq!(send(&app, request).await.0, StatusCode::FORBIDDEN);
        }
    }
    assert_eq!(f.calls(), 0, "the inner service never ran");
    let after = f
        .store
        .lookup_browser(&cookie, Touch::Keep)
        .await
        .expect("store")
        .expect("live");
    assert_eq!(
        before, after,
        "a refused request does not touch the session"
    );
}

#[tokio::test]
async fn a_fetch_from_another_site_or_a_sibling_is_403() {
    let f = Fixture::new();
    let app = f.app();
    let (_, cookie) = f.login("alice").await;
    for site in ["cross-site", "same-site", "none"] {
        for method in ["GET", "POST"] {
            let request = Request::builder()
                .method(method)
                .uri("/")
                .header("cookie", cookie_header(&cookie))
                .header("x-csrf", "1")
                .header("sec-fetch-site", site);
            let (status, body) = send(&app, request).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{site} {method}");
            assert_eq!(body["code"], "csrf_failed");
        }
    }
    assert_eq!(f.calls(), 0);
}

#[tokio::test]
async fn a_cookie_and_a_bearer_token_together_are_400() {
    let f = Fixture::new();
    let app = f.app();
    let (_, cookie) = f.login("alice").await;
    let token = f.issuer.issue("alice", "s-1", "customer").expect("issue");
    let request =
        browser("GET", &cookie).header("authorization", format!("Bearer {}", token.access_token));
    let (status, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "bad_request");
    assert_eq!(f.calls(), 0);
}

#[tokio::test]
async fn two_session_cookies_are_refused_whichever_is_valid() {
    let f = Fixture::new();
    let app = f.app();
    let (_, good) = f.login("alice").await;
    let planted = CookieValue::generate("alice").expect("random");
    for header in [
        format!(
            "{}={}; {}={}",
            SessionCookie::NAME,
            good.expose(),
            SessionCookie::NAME,
            planted.expose()
        ),
        format!(
            "{}={}; {}={}",
            SessionCookie::NAME,
            planted.expose(),
            SessionCookie::NAME,
            good.expose()
        ),
    ] {
        let request = Request::get("/")
            .header("cookie", header)
            .header("x-csrf", "1");
        assert_eq!(send(&app, request).await.0, StatusCode::BAD_REQUEST);
    }
    // Across two Cookie headers as well.
    let request = Request::get("/")
        .header("cookie", cookie_header(&good))
        .header("cookie", cookie_header(&planted))
        .header("x-csrf", "1");
    assert_eq!(send(&app, request).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(f.calls(), 0);
}

#[tokio::test]
async fn an_unknown_or_malformed_cookie_is_401() {
    let f = Fixture::new();
    let app = f.app();
    let unknown = CookieValue::generate("alice").expect("random");
    let (status, body) = send(&app, browser("GET", &unknown)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "unauthorized");
    let request = Request::get("/")
        .header("cookie", format!("{}=short", SessionCookie::NAME))
        .header("x-csrf", "1");
    assert_eq!(send(&app, request).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn idle_sessions_end_and_requests_keep_them_alive() {
    let f = Fixture::new();
    let app = f.app();
    let (_, cookie) = f.login("alice").await;
    for _ in 0..4 {
        f.advance(29 * MINUTE);
        assert_eq!(send(&app, browser("GET", &cookie)).await.0, StatusCode::OK);
    }
    f.advance(30 * MINUTE);
    assert_eq!(
        send(&app, browser("GET", &cookie)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(f.store.list("alice").await.expect("list").is_empty());
}

#[tokio::test]
async fn the_absolute_lifetime_ends_even_an_active_session() {
    let f = Fixture::new();
    let app = f.app();
    let (_, cookie) = f.login("alice").await;
    let mut elapsed = 0;
    while elapsed + 20 * MINUTE < 12 * 60 * MINUTE {
        f.advance(20 * MINUTE);
        elapsed += 20 * MINUTE;
        assert_eq!(send(&app, browser("GET", &cookie)).await.0, StatusCode::OK);
    }
    f.advance(12 * 60 * MINUTE - elapsed);
    assert_eq!(
        send(&app, browser("GET", &cookie)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_keep_layer_or_a_keep_extension_does_not_extend_idle() {
    let f = Fixture::new();
    let peek = f.app_with(CookieSessions::new(f.store.clone()).touch(Touch::Keep));
    let (_, cookie) = f.login("alice").await;
    f.advance(20 * MINUTE);
    assert_eq!(send(&peek, browser("GET", &cookie)).await.0, StatusCode::OK);
    f.advance(11 * MINUTE);
    assert_eq!(
        send(&peek, browser("GET", &cookie)).await.0,
        StatusCode::UNAUTHORIZED,
        "31 minutes after login with only non-touching reads"
    );

    // The extension, set by an outer layer, wins over the layer's default.
    let app = f.app().layer(axum::Extension(Touch::Keep));
    let (_, cookie) = f.login("bob").await;
    f.advance(20 * MINUTE);
    assert_eq!(send(&app, browser("GET", &cookie)).await.0, StatusCode::OK);
    f.advance(11 * MINUTE);
    assert_eq!(
        send(&app, browser("GET", &cookie)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn browser_sessions_are_listed_and_revocation_ends_them() {
    let f = Fixture::new();
    let app = f.app();
    let (sid, cookie) = f.login("alice").await;
    let (token_session, _) = f
        .store
        .create(NewSession {
            user_id: "alice".into(),
            ..NewSession::default()
        })
        .await
        .expect("create");
    let listed: Vec<String> = f
        .store
        .list("alice")
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(listed.contains(&sid) && listed.contains(&token_session.id));
    assert!(f.store.is_active("alice", &sid).await.expect("store"));

    assert!(f.store.revoke("alice", &sid).await.expect("revoke"));
    assert_eq!(
        send(&app, browser("GET", &cookie)).await.0,
        StatusCode::UNAUTHORIZED
    );

    let (_, second) = f.login("alice").await;
    assert_eq!(f.store.revoke_all("alice", None).await.expect("all"), 2);
    assert_eq!(
        send(&app, browser("GET", &second)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn rotation_retires_the_old_cookie_and_records_the_new_role() {
    let f = Fixture::new();
    let app = f.app();
    let (sid, old) = f.login("alice").await;
    let (session, new) = f
        .store
        .rotate_browser(&old, Some("manager"))
        .await
        .expect("store")
        .expect("live");
    assert_eq!(session.session.id, sid);
    assert_eq!(
        send(&app, browser("GET", &old)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = send(&app, browser("GET", &new)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, format!("alice/{sid}/cookie:manager").as_str());
    assert!(
        f.store
            .rotate_browser(&old, None)
            .await
            .expect("store")
            .is_none()
    );
}
