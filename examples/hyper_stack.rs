//! The JWT layer, the RBAC guard and the rate limiter on a bare hyper service,
//! with no axum and no infrastructure:
//!
//! ```text
//! cargo run --example hyper_stack
//! ```
//!
//! A `tower::ServiceBuilder` stacks `JwtLayer`, `RequirePermissionLayer` and
//! `RateLimitLayer` (in memory, two requests a minute per user) on a plain
//! `service_fn` over hyper's `Request<Incoming>`; hyper serves it on a
//! loopback port through `TowerToHyperService`. The example then calls itself:
//! no token (401), a customer's token (403), a manager's token (200, 200, then
//! 429), and a gRPC caller without a token, who gets HTTP 200 with
//! `grpc-status: 16` (UNAUTHENTICATED) instead of a problem.

use std::convert::Infallible;
use std::time::Duration;

use bff_auth::keys::{Algorithm, KeySet, SigningKey};
use bff_auth::layer::{JwtLayer, Principal};
use bff_auth::token::{TokenIssuer, TokenVerifier, ValidationPolicy};
use bff_cache::key::UserId;
use bff_cache::ratelimit::{MemoryBackend, Quota, RateLimitLayer};
use bff_rbac::RequirePermissionLayer;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;

/// The protected resource: it only runs once every layer let the request in.
async fn report(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let caller = request
        .extensions()
        .get::<Principal>()
        .map_or("nobody", |p| p.user_id.as_str());
    Ok(Response::new(Full::new(Bytes::from(format!(
        "the report, for {caller}"
    )))))
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
    let policy = bff_rbac::Policy::builder()
        .role("customer", [], [])
        .role("manager", ["customer"], ["reports:read"])
        .build()?;

    // Outermost first: who is calling, may they, and how often. Limiting
    // inside the guard counts only requests that were allowed in.
    let service = ServiceBuilder::new()
        .layer(JwtLayer::new(verifier))
        .layer(RequirePermissionLayer::<Principal>::new(
            policy,
            "reports:read",
        ))
        .layer(RateLimitLayer::new(MemoryBackend::default()).policy(
            bff_cache::ratelimit::Policy::new("per_user", Quota::per_minute(2), UserId),
        ))
        .service_fn(report);

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    println_line(&format!("serving on http://{addr}/report"));

    let customer = issuer.issue("ada", "s1", "customer")?.access_token;
    let manager = issuer.issue("max", "s2", "manager")?.access_token;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/report");
    for (label, token, content_type) in [
        ("no token", None, "application/json"),
        ("customer", Some(&customer), "application/json"),
        ("manager", Some(&manager), "application/json"),
        ("manager again", Some(&manager), "application/json"),
        ("manager, third", Some(&manager), "application/json"),
        ("gRPC, no token", None, "application/grpc"),
    ] {
        let mut request = client.get(&url).header("content-type", content_type);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        let grpc_status = response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .map(|code| format!("grpc-status {code}"));
        let body = response.text().await?;
        let summary = match grpc_status {
            Some(grpc_status) => grpc_status,
            None if body.starts_with('{') => "(problem+json)".to_owned(),
            None => body,
        };
        println_line(&format!("{label:16} {status}  {summary}"));
    }
    Ok(())
}

fn println_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}
