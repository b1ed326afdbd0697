//! JwksClient against an issuer served on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bff_auth::jwks::JwksClient;
use bff_auth::keys::{Algorithm, KeySet, SigningKey};
use bff_auth::layer::{AuthError, JwtLayer};
use bff_auth::token::{TokenError, TokenIssuer, TokenVerifier, ValidationPolicy};

fn key(algorithm: Algorithm) -> SigningKey {
    SigningKey::generate(algorithm)
        .expect("gen")
        .signing_key()
        .expect("load")
}

/// An issuer whose JWKS can be swapped, counting how often it is fetched.
#[derive(Clone)]
struct Issuer {
    keys: Arc<RwLock<KeySet>>,
    fetches: Arc<AtomicUsize>,
    url: String,
}

async fn issuer(keys: KeySet) -> Issuer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    issuer_on(keys, listener)
}

fn issuer_on(keys: KeySet, listener: tokio::net::TcpListener) -> Issuer {
    let shared = Arc::new(RwLock::new(keys));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (s, f) = (Arc::clone(&shared), Arc::clone(&fetches));
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            f.fetch_add(1, Ordering::SeqCst);
            let jwks = s.read().expect("lock").jwks();
            async move { ([("cache-control", "public, max-age=300")], axum::Json(jwks)) }
        }),
    );
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Issuer {
        keys: shared,
        fetches,
        url,
    }
}

fn token(keys: &KeySet, sub: &str) -> String {
    TokenIssuer::new(keys.clone(), "iss", "aud", Duration::from_secs(60))
        .issue(sub, "s", "customer")
        .expect("issue")
        .access_token
}

#[tokio::test]
async fn verifies_tokens_with_the_fetched_keys_only() {
    let keys = KeySet::new(key(Algorithm::Es256), Vec::new()).expect("keys");
    let issuer = issuer(keys.clone()).await;
    let client = JwksClient::connect(&issuer.url).await.expect("connect");
    let verifier = TokenVerifier::new(
        client.verification_keys(),
        ValidationPolicy::new("iss", "aud"),
    );
    let claims = client
        .verify(&verifier, &token(&keys, "user-7"))
        .await
        .expect("verifies");
    assert_eq!(claims.sub, "user-7");
    let stranger = KeySet::new(key(Algorithm::Es256), Vec::new()).expect("keys");
    assert_eq!(
        client.verify(&verifier, &token(&stranger, "x")).await,
        Err(TokenError::UnknownKey)
    );
}

#[tokio::test]
async fn an_unknown_kid_refetches_so_rotation_needs_no_restart() {
    let old = key(Algorithm::EdDsa);
    let issuer = issuer(KeySet::new(old.clone(), Vec::new()).expect("keys")).await;
    let http = reqwest::Client::new();
    let client = JwksClient::with_client(&issuer.url, http, Duration::ZERO)
        .await
        .expect("connect");
    let verifier = TokenVerifier::new(
        client.verification_keys(),
        ValidationPolicy::new("iss", "aud"),
    );

    let rotated = KeySet::new(key(Algorithm::EdDsa), vec![old.public_key().clone()]).expect("keys");
    *issuer.keys.write().expect("lock") = rotated.clone();
    let claims = client
        .verify(&verifier, &token(&rotated, "after-rotation"))
        .await
        .expect("refetched");
    assert_eq!(claims.sub, "after-rotation");
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn garbage_kids_cannot_make_it_hammer_the_issuer() {
    let keys = KeySet::new(key(Algorithm::EdDsa), Vec::new()).expect("keys");
    let issuer = issuer(keys).await;
    let client = JwksClient::with_client(
        &issuer.url,
        reqwest::Client::new(),
        Duration::from_secs(3600),
    )
    .await
    .expect("connect");
    let verifier = TokenVerifier::new(
        client.verification_keys(),
        ValidationPolicy::new("iss", "aud"),
    );
    for _ in 0..200 {
        let stranger = KeySet::new(key(Algorithm::EdDsa), Vec::new()).expect("keys");
        assert!(
            client
                .verify(&verifier, &token(&stranger, "x"))
                .await
                .is_err()
        );
    }
    assert_eq!(
        issuer.fetches.load(Ordering::SeqCst),
        1,
        "only the initial fetch"
    );
}

#[tokio::test]
async fn an_unreachable_issuer_is_an_error_at_connect() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().expect("addr")
    );
    drop(listener);
    assert!(JwksClient::connect(&url).await.is_err());
}

#[tokio::test]
async fn a_lazy_client_fetches_at_first_use_and_fails_closed_until_it_can() {
    let keys = KeySet::new(key(Algorithm::EdDsa), Vec::new()).expect("keys");
    // The issuer's address, with nobody serving there yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("addr");
    let jwks = JwksClient::lazy(&format!("http://{addr}/.well-known/jwks.json"));
    let verifier = TokenVerifier::new(
        jwks.verification_keys(),
        ValidationPolicy::new("iss", "aud"),
    );
    let layer = JwtLayer::new(verifier).with_jwks(jwks);
    let early = token(&keys, "early");
    assert!(matches!(
        layer.authenticate(&early).await,
        Err(AuthError::KeysUnavailable(_))
    ));

    let service = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(
            |_request: http::Request<http_body_util::Full<bytes::Bytes>>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                    bytes::Bytes::new(),
                )))
            },
        );
    for (content_type, status, grpc_status) in [
        ("application/json", 503, None),
        ("application/grpc", 200, Some("14")),
    ] {
        let request = http::Request::get("/")
            .header("authorization", format!("Bearer {early}"))
            .header("content-type", content_type)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        let response = tower::ServiceExt::oneshot(service.clone(), request)
            .await
            .expect("infallible");
        assert_eq!(response.status(), status, "fails closed");
        assert_eq!(
            response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok()),
            grpc_status
        );
    }

    // The issuer comes up: the next request fetches its keys.
    let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    let issuer = issuer_on(keys.clone(), listener);
    let principal = layer.authenticate(&early).await.expect("verified");
    assert_eq!(principal.user_id, "early");
    layer
        .authenticate(&token(&keys, "later"))
        .await
        .expect("verified");
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1, "fetched once");
}
