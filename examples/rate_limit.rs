//! The GCRA rate limiter in front of a route, in memory, with no infrastructure:
//!
//! ```text
//! cargo run --example rate_limit
//! ```
//!
//! One policy allows each client 3 requests in a burst, refilled at 2 per
//! second. Five quick requests from one client: three pass, two get 429 with
//! `Retry-After`; another client is unaffected; after half a second one more
//! passes. Every answer carries `RateLimit-Policy` and `RateLimit`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use bff_cache::ratelimit::{ClientIp, MemoryBackend, Policy, Quota, RateLimitLayer};
use http::Request;
use tower::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let limit = RateLimitLayer::new(MemoryBackend::default()).policy(Policy::new(
        "per_ip",
        Quota::per_second(2).with_burst(3),
        ClientIp::new(),
    ));
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .layer(limit);

    let send = |client: &'static str| {
        let app = app.clone();
        async move {
            let mut request = Request::get("/").body(Body::empty())?;
            // `serve` puts the peer address here; the example plays the peer.
            let addr: SocketAddr = format!("{client}:40000").parse()?;
            request.extensions_mut().insert(ConnectInfo(addr));
            let response = app.oneshot(request).await?;
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned()
            };
            println_line(&format!(
                "client {client:12}  status {}  RateLimit: {:28}  Retry-After: {}",
                response.status(),
                header("ratelimit"),
                header("retry-after")
            ));
            Ok::<_, Box<dyn std::error::Error>>(())
        }
    };
    for _ in 0..5 {
        send("203.0.113.1").await?;
    }
    send("203.0.113.2").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    send("203.0.113.1").await?;
    Ok(())
}

fn println_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}
