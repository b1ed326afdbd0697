//! Social login with `bff_auth::oauth`, with no infrastructure:
//!
//! ```text
//! cargo run --example oauth_flow
//! ```
//!
//! A fake OpenID Connect provider runs in-process on a loopback port: it serves
//! discovery and a JWKS, "logs the user in" at its authorization endpoint (a
//! 302 back to the callback with a code), and at its token endpoint checks the
//! client secret, the PKCE verifier and the `redirect_uri` before it answers
//! with an RS256-signed ID token. The service side is the three calls of
//! `OAuthClient`: `start`, `take_state` and `finish`. Replaying the callback
//! then fails, as the `state` is single use.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_auth::keys::{Algorithm, SigningKey};
use bff_auth::oauth::{
    CallbackParams, MemoryStateStore, OAuthClient, ProviderConfig, ProviderKind, pkce_challenge,
};
use serde_json::json;

const CLIENT_ID: &str = "example-client";
const CLIENT_SECRET: &str = "example-secret";

fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// What the fake provider remembers of a code it issued.
struct Grant {
    challenge: String,
    redirect_uri: String,
    nonce: String,
}

#[derive(Clone)]
struct Provider {
    issuer: String,
    key: SigningKey,
    codes: Arc<Mutex<HashMap<String, Grant>>>,
}

fn provider_app(provider: Provider) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(provider)
}

async fn discovery(State(p): State<Provider>) -> Response {
    axum::Json(json!({
        "issuer": p.issuer,
        "authorization_endpoint": format!("{}/authorize", p.issuer),
        "token_endpoint": format!("{}/token", p.issuer),
        "jwks_uri": format!("{}/jwks", p.issuer),
    }))
    .into_response()
}

async fn jwks(State(p): State<Provider>) -> Response {
    let jwk = serde_json::Value::Object(p.key.public_key().jwk().as_ref().clone());
    axum::Json(json!({ "keys": [jwk] })).into_response()
}

/// The user signs in and consents: back to the callback with a code.
async fn authorize(
    State(p): State<Provider>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (Some(redirect_uri), Some(state), Some(challenge), Some(nonce)) = (
        q.get("redirect_uri"),
        q.get("state"),
        q.get("code_challenge"),
        q.get("nonce"),
    ) else {
        return (StatusCode::BAD_REQUEST, "incomplete authorization request").into_response();
    };
    let Ok(code) = bff_auth::random::base64url(32) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Ok(mut codes) = p.codes.lock() {
        codes.insert(
            code.clone(),
            Grant {
                challenge: challenge.clone(),
                redirect_uri: redirect_uri.clone(),
                nonce: nonce.clone(),
            },
        );
    }
    let Ok(mut location) = url::Url::parse(redirect_uri) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    location
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", state);
    (
        StatusCode::FOUND,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}

/// The checks a real token endpoint makes, then an ID token.
async fn token(State(p): State<Provider>, body: axum::body::Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let refuse = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant", "error_description": why})),
        )
            .into_response()
    };
    if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        return refuse("bad client");
    }
    // Single use: the code is removed whatever happens next.
    let Some(grant) = p
        .codes
        .lock()
        .ok()
        .and_then(|mut c| c.remove(field("code")))
    else {
        return refuse("unknown or used code");
    };
    if pkce_challenge(field("code_verifier")) != grant.challenge {
        return refuse("PKCE verifier mismatch");
    }
    if field("redirect_uri") != grant.redirect_uri {
        return refuse("redirect_uri mismatch");
    }
    let now = bff_auth::token::unix_now();
    let header = json!({"alg": "RS256", "kid": p.key.kid(), "typ": "JWT"});
    let claims = json!({
        "iss": p.issuer, "aud": CLIENT_ID, "sub": "user-42", "iat": now, "exp": now + 300,
        "nonce": grant.nonce, "email": "Ada@Example.com", "email_verified": true,
        "name": "Ada Lovelace",
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let Ok(signature) = p.key.sign(input.as_bytes()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let id_token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
    axum::Json(json!({"access_token": "opaque", "token_type": "Bearer", "id_token": id_token}))
        .into_response()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The provider, on a loopback port of its own.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let issuer = format!("http://{}", listener.local_addr()?);
    let provider = Provider {
        issuer: issuer.clone(),
        key: SigningKey::generate(Algorithm::Rs256)?.signing_key()?,
        codes: Arc::default(),
    };
    tokio::spawn(async move { axum::serve(listener, provider_app(provider)).await });
    say(&format!("fake OpenID provider at {issuer}"));

    // The service: one OIDC provider found by discovery, states in memory.
    let mut config = ProviderConfig::new(ProviderKind::Oidc, CLIENT_ID);
    config.client_secret = Some(CLIENT_SECRET.into());
    config.issuer = Some(issuer.parse()?);
    let client = OAuthClient::new(
        vec![config],
        Arc::new(MemoryStateStore::new()),
        "https://bff.example.com".parse()?,
    )?;

    // 1. start: the browser's binding hash would be SHA-256 of a random
    //    `__Host-` cookie; here, a fixed value.
    let binding = [42u8; 32];
    let authorize_url = client
        .start(
            ProviderKind::Oidc,
            binding,
            json!({"redirect_uri": "https://app.example.com/"}),
        )
        .await?;
    say(&format!(
        "1. redirect the browser to {}?...",
        authorize_url.as_str().split('?').next().unwrap_or_default()
    ));

    // The browser at the provider: it redirects back to the callback.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let answer = http.get(authorize_url).send().await?;
    let location = answer
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or("the provider did not redirect")?;
    let callback = url::Url::parse(location)?;
    say(&format!(
        "   the provider sends the user back to {}",
        callback.path()
    ));
    let params = CallbackParams {
        code: callback
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned()),
        state: callback
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned()),
        ..Default::default()
    };

    // 2. take_state: the state is consumed and checked against the browser.
    let pending = client
        .take_state(ProviderKind::Oidc, &params, binding)
        .await?;
    say(&format!("2. state valid; the app's data: {}", pending.data));

    // 3. finish: code exchange, ID-token verification, profile.
    let profile = client.finish(&pending, &params).await?;
    say(&format!(
        "3. signed in: {} user {} <{}> (verified: {})",
        profile.provider,
        profile.subject,
        profile.email.as_deref().unwrap_or("no email"),
        profile.email_verified
    ));

    // The same callback again: the state is gone.
    let replay = client
        .take_state(ProviderKind::Oidc, &params, binding)
        .await;
    say(&format!("   replaying the callback: {:?}", replay.err()));
    Ok(())
}
