//! The remote-API proxy of browser mode, with no infrastructure:
//!
//! ```text
//! cargo run --example proxy
//! ```
//!
//! A "catalog" upstream runs on loopback and checks the token it gets with
//! the BFF's public keys, for its own audience. The BFF serves
//! `/bff/api/{name}/{path}` with bff-aggregate's proxy and bff-auth's minter,
//! and maps the proxy's refusals to problem+json with bff-core. A browser's
//! call (cookie, `X-CSRF`) reaches the upstream with a token minted for
//! `catalog` and none of the browser's headers; an encoded separator and an
//! unknown upstream are refused before anything is sent.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bff_aggregate::proxy::{Proxy, ProxyError, ProxyUpstreams};
use bff_auth::keys::{Algorithm, KeySet, SigningKey, VerificationKeys};
use bff_auth::mint::{Minter, Subject};
use bff_auth::token::{TokenIssuer, TokenVerifier, ValidationPolicy};
use bff_core::problem::Problem;
use http::HeaderMap;
use tokio::net::TcpListener;

#[derive(Clone)]
struct Bff {
    proxy: Proxy,
    minter: Minter,
}

/// `/bff/api/{name}/{path}`: the name and the raw (still percent-encoded)
/// path are read from the URI, not from decoded path parameters.
async fn proxied(State(bff): State<Bff>, request: Request) -> Result<Response, Problem> {
    let rest = request
        .uri()
        .path()
        .strip_prefix("/bff/api/")
        .unwrap_or_default();
    let (name, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (name, path) = (name.to_owned(), path.to_owned());
    // In the app, the subject is the cookie session's verified principal.
    let subject = Subject {
        user_id: "u-42",
        session_id: "s-7",
        role: "customer",
    };
    let response = bff
        .proxy
        .forward(&name, &path, request, |audience| {
            bff.minter.token(audience, &subject)
        })
        .await
        .map_err(problem)?;
    Ok(response.map(Body::new))
}

/// The proxy's refusals as problem+json; a 5xx's cause goes to the log only.
fn problem(error: ProxyError) -> Problem {
    if error.status().is_server_error() {
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        tracing::warn!(%error, ?cause, "proxy call failed");
    }
    Problem::new(error.status(), error.code(), error.title()).with_detail(error.to_string())
}

/// The upstream: checks the bearer token for its own audience and tells
/// what it received.
async fn catalog(State(keys): State<VerificationKeys>, headers: HeaderMap) -> Response {
    let verifier = TokenVerifier::new(keys, ValidationPolicy::new("bff", "catalog"));
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    match verifier.verify(token) {
        Ok(claims) => axum::Json(serde_json::json!({
            "sub": claims.sub,
            "sid": claims.sid,
            "role": claims.role,
            "token_lifetime_s": claims.exp - claims.iat,
            "saw_cookie": headers.contains_key("cookie"),
            "saw_x_csrf": headers.contains_key("x-csrf"),
        }))
        .into_response(),
        Err(_) => http::StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn spawn(router: Router) -> Result<std::net::SocketAddr, std::io::Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(addr)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keys = KeySet::new(
        SigningKey::generate(Algorithm::EdDsa)?.signing_key()?,
        vec![],
    )?;
    let upstream = spawn(
        Router::new()
            .route("/api/{*rest}", get(catalog))
            .with_state(keys.verification_keys()),
    )
    .await?;

    let issuer = TokenIssuer::new(keys, "bff", "bff", Duration::from_secs(900));
    let bff = Bff {
        proxy: Proxy::new(ProxyUpstreams::parse(&format!(
            "catalog=http://{upstream}/api"
        ))?),
        minter: Minter::new(issuer, Duration::from_secs(60))?,
    };
    let app = spawn(
        Router::new()
            .route("/bff/api/{*rest}", any(proxied))
            .with_state(bff),
    )
    .await?;

    let client = reqwest::Client::new();
    for path in [
        "catalog/items/42?lang=fr",
        "catalog/files/a%2Fb",
        "admin/users",
    ] {
        let response = client
            .get(format!("http://{app}/bff/api/{path}"))
            .header("cookie", "__Host-bff=browser-session")
            .header("x-csrf", "1")
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        println_line(&format!("GET /bff/api/{path}\n  {status}\n  {body}\n"));
    }
    Ok(())
}

fn println_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}
