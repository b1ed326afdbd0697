//! The two servers of the cache load test (`scripts/load/cache.sh`): a bare
//! hyper hello-world, and the same answer through bff-cache's rate limiter and
//! response cache (in memory), so the layers' cost is measured against nothing.
//!
//! ```text
//! cargo run --release --example load_target -- bare 127.0.0.1:18101
//! cargo run --release --example load_target -- layered 127.0.0.1:18102
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bff_cache::ratelimit::{ClientIp, MemoryBackend, Policy, Quota, RateLimitLayer};
use bff_cache::response::{CacheLayer, MemoryStore};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

const HELLO: &str = "hello, world";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18100".to_owned())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    match mode.as_str() {
        "bare" => loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(HELLO.to_owned()))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        },
        "layered" => {
            // A quota no load test exhausts: every request takes the full
            // decision path and passes.
            let limit = RateLimitLayer::new(MemoryBackend::default()).policy(Policy::new(
                "per_ip",
                Quota::per_second(1_000_000_000),
                ClientIp::new(),
            ));
            let cache =
                CacheLayer::new("hello", MemoryStore::new(1 << 20)).ttl(Duration::from_secs(3600));
            let app = Router::new()
                .route("/", get(|| async { HELLO }))
                .layer(cache)
                .layer(limit);
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await?;
            Ok(())
        }
        other => Err(format!("mode must be `bare` or `layered`, not {other:?}").into()),
    }
}
