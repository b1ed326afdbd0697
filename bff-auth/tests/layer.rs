//! JwtLayer behaviour as a client sees it.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bff_auth::keys::{Algorithm, KeySet, SigningKey};
use bff_auth::layer::{
    BoxFuture, JwtLayer, Principal, ResponseBody, SessionCheck, SessionCheckError,
};
use bff_auth::token::{TokenIssuer, TokenVerifier, ValidationPolicy};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};

fn keys() -> KeySet {
    let key = SigningKey::generate(Algorithm::EdDsa)
        .expect("gen")
        .signing_key()
        .expect("load");
    KeySet::new(key, Vec::new()).expect("keys")
}

fn issuer(keys: &KeySet) -> TokenIssuer {
    TokenIssuer::new(keys.clone(), "iss", "aud", Duration::from_secs(900))
}

fn verifier(keys: &KeySet) -> TokenVerifier {
    TokenVerifier::new(
        keys.verification_keys(),
        ValidationPolicy::new("iss", "aud"),
    )
}

async fn whoami(principal: Option<Principal>) -> String {
    principal.map_or_else(
        || "anonymous".to_owned(),
        |p| format!("{}/{}/{}", p.user_id, p.session_id, p.role),
    )
}

fn app(layer: JwtLayer) -> Router {
    Router::new().route("/", get(whoami)).layer(layer)
}

async fn call(app: &Router, authorization: Option<&str>) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::get("/");
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let (parts, body) = res.into_parts();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body.collect().await.expect("body").to_bytes()).into_owned(),
    )
}

#[tokio::test]
async fn a_valid_token_yields_the_principal() {
    let keys = keys();
    let token = issuer(&keys)
        .issue("user-1", "sess-1", "admin")
        .expect("issue")
        .access_token;
    let app = app(JwtLayer::new(verifier(&keys)));
    let (status, _, body) = call(&app, Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "user-1/sess-1/admin");
    // The scheme is case-insensitive.
    assert_eq!(
        call(&app, Some(&format!("bearer {token}"))).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn missing_and_invalid_tokens_are_401_problems_with_www_authenticate() {
    let keys = keys();
    let app = app(JwtLayer::new(verifier(&keys)));
    for authorization in [
        None,
        Some("Bearer not.a.token"),
        Some("Basic dXNlcjpwYXNz"),
        Some("Bearer "),
        Some("Bearer"),
    ] {
        let (status, headers, body) = call(&app, authorization).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert!(
            headers["www-authenticate"]
                .to_str()
                .is_ok_and(|v| v.starts_with("Bearer")),
            "{authorization:?}"
        );
        assert_eq!(headers["content-type"], "application/problem+json");
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(json["code"], "unauthorized");
    }
}

#[tokio::test]
async fn optional_mode_lets_anonymous_requests_through_but_not_bad_tokens() {
    let keys = keys();
    let app = app(JwtLayer::new(verifier(&keys)).optional());
    let (status, _, body) = call(&app, None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "anonymous"));
    assert_eq!(
        call(&app, Some("Bearer garbage")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let token = issuer(&keys)
        .issue("u", "s", "customer")
        .expect("issue")
        .access_token;
    assert_eq!(
        call(&app, Some(&format!("Bearer {token}"))).await.2,
        "u/s/customer"
    );
}

/// A session store stand-in: sessions are alive until `ended` is set.
#[derive(Clone, Default)]
struct Sessions {
    ended: Arc<AtomicBool>,
    failing: Arc<AtomicBool>,
    checks: Arc<AtomicUsize>,
}

impl SessionCheck for Sessions {
    fn is_active<'a>(
        &'a self,
        _principal: &'a Principal,
    ) -> BoxFuture<'a, Result<bool, SessionCheckError>> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if self.failing.load(Ordering::SeqCst) {
                return Err(SessionCheckError("store down".into()));
            }
            Ok(!self.ended.load(Ordering::SeqCst))
        })
    }
}

#[tokio::test]
async fn an_ended_session_is_refused_at_once_even_from_the_cache() {
    let keys = keys();
    let sessions = Sessions::default();
    let app = app(JwtLayer::new(verifier(&keys)).with_session_check(sessions.clone()));
    let token = issuer(&keys)
        .issue("u", "s", "customer")
        .expect("issue")
        .access_token;
    let bearer = format!("Bearer {token}");
    assert_eq!(call(&app, Some(&bearer)).await.0, StatusCode::OK);
    assert_eq!(
        call(&app, Some(&bearer)).await.0,
        StatusCode::OK,
        "a cache hit"
    );
    assert_eq!(
        sessions.checks.load(Ordering::SeqCst),
        2,
        "the session is checked on every request"
    );

    sessions.ended.store(true, Ordering::SeqCst);
    let (status, headers, _) = call(&app, Some(&bearer)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .is_ok_and(|v| v.contains("invalid_token"))
    );

    sessions.failing.store(true, Ordering::SeqCst);
    assert_eq!(
        call(&app, Some(&bearer)).await.0,
        StatusCode::SERVICE_UNAVAILABLE,
        "fails closed"
    );
}

#[tokio::test]
async fn retiring_a_key_stops_its_cached_tokens() {
    let old = SigningKey::generate(Algorithm::EdDsa)
        .expect("gen")
        .signing_key()
        .expect("load");
    let next = SigningKey::generate(Algorithm::Es256)
        .expect("gen")
        .signing_key()
        .expect("load");
    let keys = KeySet::new(old.clone(), vec![next.public_key().clone()]).expect("keys");
    let published = keys.verification_keys();
    let app = app(JwtLayer::new(verifier(&keys)));
    let token = issuer(&keys)
        .issue("u", "s", "customer")
        .expect("issue")
        .access_token;
    let bearer = format!("Bearer {token}");
    assert_eq!(call(&app, Some(&bearer)).await.0, StatusCode::OK);
    assert_eq!(call(&app, Some(&bearer)).await.0, StatusCode::OK);

    published
        .replace(vec![next.public_key().clone()])
        .expect("retire the old key");
    assert_eq!(call(&app, Some(&bearer)).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn authenticate_works_outside_http() {
    let keys = keys();
    let layer = JwtLayer::new(verifier(&keys));
    let token = issuer(&keys)
        .issue("u", "s", "manager")
        .expect("issue")
        .access_token;
    assert_eq!(
        layer.authenticate(&token).await.expect("valid").role,
        "manager"
    );
    assert!(layer.authenticate("x.y.z").await.is_err());
}

/// The layer on a bare tower service with `http_body_util::Full` bodies both
/// ways (no axum), as tonic and hyper services use it.
fn bare(
    layer: JwtLayer,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = http::Response<ResponseBody<Full<Bytes>>>,
    Error = Infallible,
> + Clone {
    ServiceBuilder::new()
        .layer(layer)
        .service_fn(|request: Request<Full<Bytes>>| async move {
            let caller = request
                .extensions()
                .get::<Principal>()
                .map_or_else(|| "anonymous".to_owned(), |p| p.user_id.clone());
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(caller))))
        })
}

async fn call_bare(
    service: impl Service<
        Request<Full<Bytes>>,
        Response = http::Response<ResponseBody<Full<Bytes>>>,
        Error = Infallible,
    >,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, Bytes) {
    let mut request = Request::post("/orders.v1.Orders/ListOrders");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = service
        .oneshot(request.body(Full::new(Bytes::new())).expect("request"))
        .await
        .expect("infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, body)
}

#[tokio::test]
async fn works_on_any_body_type() {
    let keys = keys();
    let token = issuer(&keys)
        .issue("user-9", "s", "customer")
        .expect("issue")
        .access_token;
    let bearer = format!("Bearer {token}");
    for layer in [
        JwtLayer::new(verifier(&keys)),
        // A session check makes authentication wait: the other path.
        JwtLayer::new(verifier(&keys)).with_session_check(Sessions::default()),
    ] {
        let service = bare(layer);
        let (status, _, body) = call_bare(service.clone(), &[("authorization", &bearer)]).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"user-9"[..]));
        let (status, headers, body) = call_bare(service, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers["content-type"], "application/problem+json");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["code"], "unauthorized");
    }
}

#[tokio::test]
async fn grpc_callers_are_refused_with_a_grpc_status() {
    let keys = keys();
    let grpc = ("content-type", "application/grpc");
    let service = bare(JwtLayer::new(verifier(&keys)));
    for authorization in [None, Some("Bearer not.a.token"), Some("Basic dXNlcjpwYXNz")] {
        let mut headers = vec![grpc];
        headers.extend(authorization.map(|value| ("authorization", value)));
        let (status, headers, body) = call_bare(service.clone(), &headers).await;
        assert_eq!(status, StatusCode::OK, "{authorization:?}");
        assert_eq!(headers["grpc-status"], "16", "UNAUTHENTICATED");
        assert_eq!(headers["content-type"], "application/grpc");
        assert!(body.is_empty());
    }

    let sessions = Sessions::default();
    sessions.failing.store(true, Ordering::SeqCst);
    let token = issuer(&keys)
        .issue("u", "s", "customer")
        .expect("issue")
        .access_token;
    let service = bare(JwtLayer::new(verifier(&keys)).with_session_check(sessions));
    let bearer = format!("Bearer {token}");
    let (status, headers, _) = call_bare(service, &[grpc, ("authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["grpc-status"], "14", "UNAVAILABLE: fails closed");

    // Optional mode passes gRPC calls without a token (health, reflection).
    let service = bare(JwtLayer::new(verifier(&keys)).optional());
    let (status, headers, body) = call_bare(service, &[grpc]).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"anonymous"[..]));
    assert!(!headers.contains_key("grpc-status"));
}
