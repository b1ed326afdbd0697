//! The response cache in front of a slow route, in memory, with no infrastructure:
//!
//! ```text
//! cargo run --example response_cache
//! ```
//!
//! A per-user cache over a handler that takes 200 ms. Alice's first read is a
//! MISS, her second a HIT (no wait); Bob gets his own entry, never Alice's; an
//! `If-None-Match` with the `ETag` is a 304; invalidating Alice's tag after a
//! write makes her next read fresh.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bff_cache::key::RequestInfo;
use bff_cache::response::{CacheLayer, MemoryStore};
use http::{HeaderMap, Request};
use http_body_util::BodyExt;
use tower::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let version = Arc::new(AtomicUsize::new(1));
    let handler_version = Arc::clone(&version);
    let cache = CacheLayer::new("profile", MemoryStore::new(16 * 1024 * 1024))
        .ttl(Duration::from_secs(30))
        .per_user(|r: &RequestInfo<'_>| {
            r.headers
                .get("x-user")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .tags(|_, user| user.map(|u| vec![format!("user:{u}")]).unwrap_or_default());
    let invalidator = cache.invalidator();
    let app = Router::new()
        .route(
            "/profile",
            get(move |headers: HeaderMap| {
                let version = Arc::clone(&handler_version);
                async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let user = headers
                        .get("x-user")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("?")
                        .to_owned();
                    format!("{user}'s profile, v{}", version.load(Ordering::SeqCst))
                }
            }),
        )
        .layer(cache);

    let send = |user: &'static str, if_none_match: Option<String>| {
        let app = app.clone();
        async move {
            let mut request = Request::get("/profile").header("x-user", user);
            if let Some(etag) = if_none_match {
                request = request.header("if-none-match", etag);
            }
            let started = Instant::now();
            let response = app.oneshot(request.body(Body::empty())?).await?;
            let status = response.status();
            let x_cache = response.headers()["x-cache"].to_str()?.to_owned();
            let etag = response.headers()["etag"].to_str()?.to_owned();
            let body = response.into_body().collect().await?.to_bytes();
            println_line(&format!(
                "{user:6} {status:15} X-Cache: {x_cache:5} {:>4} ms  {}",
                started.elapsed().as_millis(),
                String::from_utf8_lossy(&body)
            ));
            Ok::<_, Box<dyn std::error::Error>>(etag)
        }
    };
    let etag = send("alice", None).await?;
    send("alice", None).await?;
    send("bob", None).await?;
    send("alice", Some(etag)).await?;
    version.store(2, Ordering::SeqCst);
    invalidator.invalidate("user:alice").await?;
    send("alice", None).await?;
    send("alice", None).await?;
    Ok(())
}

fn println_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}
