//! Verifying another service's tokens with its JWKS alone, with no infrastructure:
//!
//! ```text
//! cargo run --example jwks_client
//! ```
//!
//! An "issuer" serves its JWKS on a loopback port; a "consumer" that knows only
//! that URL verifies the issuer's tokens with `JwksClient`. The issuer then
//! rotates its key, and the consumer picks the new key up on its own.

use std::io::Write;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bff_auth::jwks::JwksClient;
use bff_auth::keys::{Algorithm, KeySet, SigningKey};
use bff_auth::token::{TokenIssuer, TokenVerifier, ValidationPolicy};

fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let first = SigningKey::generate(Algorithm::EdDsa)?.signing_key()?;
    let keys = Arc::new(RwLock::new(KeySet::new(first.clone(), Vec::new())?));

    // The issuer: only public keys leave it.
    let served = Arc::clone(&keys);
    let issuer_app = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let jwks = served.read().map(|k| k.jwks()).unwrap_or_default();
            async move { ([("cache-control", "public, max-age=300")], axum::Json(jwks)) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, issuer_app).await });

    // The consumer: knows the URL, the issuer's name and its own audience.
    let jwks =
        JwksClient::with_client(&url, reqwest::Client::new(), Duration::from_secs(1)).await?;
    let verifier = TokenVerifier::new(
        jwks.verification_keys(),
        ValidationPolicy::new("issuer", "orders"),
    );

    let issue = |keys: &KeySet| {
        TokenIssuer::new(keys.clone(), "issuer", "orders", Duration::from_secs(900))
            .issue("ada", "s1", "customer")
    };
    let current = keys.read().map_err(|_| "lock")?.clone();
    let token = issue(&current)?.access_token;
    let claims = jwks.verify(&verifier, &token).await?;
    say(&format!(
        "verified a token of {} signed by {}",
        claims.sub,
        first.kid()
    ));

    // Rotation: a new key signs, the old one stays published.
    let next = SigningKey::generate(Algorithm::EdDsa)?.signing_key()?;
    let rotated = KeySet::new(next.clone(), vec![first.public_key().clone()])?;
    *keys.write().map_err(|_| "lock")? = rotated.clone();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let claims = jwks
        .verify(&verifier, &issue(&rotated)?.access_token)
        .await?;
    say(&format!(
        "after rotation, verified a token of {} signed by {}",
        claims.sub,
        next.kid()
    ));

    let stranger = KeySet::new(
        SigningKey::generate(Algorithm::EdDsa)?.signing_key()?,
        Vec::new(),
    )?;
    let refused = jwks
        .verify(&verifier, &issue(&stranger)?.access_token)
        .await;
    say(&format!(
        "a token from a key the issuer never published: {refused:?}"
    ));
    Ok(())
}
