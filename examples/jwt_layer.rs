//! `JwtLayer` in front of a route, with no infrastructure:
//!
//! ```text
//! cargo run --example jwt_layer
//! ```
//!
//! It generates an Ed25519 key, issues a token, and sends requests through the
//! layer in-process: without a token (401), with the token (200, twice: the
//! second is served from the verified-token cache), and with a forged one (401).

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bff_auth::keys::{Algorithm, KeySet, SigningKey};
use bff_auth::layer::{JwtLayer, Principal};
use bff_auth::token::{TokenIssuer, TokenVerifier, ValidationPolicy};
use http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn hello(principal: Principal) -> String {
    format!(
        "hello {} (role {}, session {})",
        principal.user_id, principal.role, principal.session_id
    )
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

    let app = Router::new()
        .route("/hello", get(hello))
        .layer(JwtLayer::new(verifier));
    let token = issuer.issue("ada", "session-1", "customer")?.access_token;
    let forged = format!("{}x", token);

    for (label, authorization) in [
        ("no token", None),
        ("valid token", Some(format!("Bearer {token}"))),
        ("same token (cached)", Some(format!("Bearer {token}"))),
        ("forged token", Some(format!("Bearer {forged}"))),
    ] {
        let mut request = Request::get("/hello");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = app.clone().oneshot(request.body(Body::empty())?).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        println_line(&format!(
            "{label:22} {status}  {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(())
}

fn println_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}
