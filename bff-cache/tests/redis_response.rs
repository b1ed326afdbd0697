//! The response cache on the real Redis: shared by instances and invalidated
//! everywhere at once. (With Redis unreachable the app's own test shows the
//! origin answering.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bff_cache::response::{CacheLayer, MemoryStore, RedisStore, TieredStore};
use http::Request;
use http_body_util::BodyExt;
use redis::aio::ConnectionManager;
use tower::ServiceExt;

async fn conn(url: &str) -> ConnectionManager {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(500)))
        .set_number_of_retries(0);
    ConnectionManager::new_with_config(redis::Client::open(url).expect("url"), config)
        .await
        .expect("redis is running")
}

fn url() -> String {
    std::env::var("BFF_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// One instance: a counter of origin calls and a router whose answer is that count.
fn instance(cache: CacheLayer) -> (Router, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let router = Router::new()
        .route(
            "/list",
            get(move || {
                let counter = Arc::clone(&counter);
                async move { format!("call {}", counter.fetch_add(1, Ordering::SeqCst) + 1) }
            }),
        )
        .layer(cache);
    (router, calls)
}

async fn fetch(app: &Router) -> (String, String) {
    let response = app
        .clone()
        .oneshot(Request::get("/list").body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let cache = response.headers()["x-cache"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (cache, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn instances_share_entries_and_invalidations() {
    let prefix = format!("test:{}:cache:", uuid::Uuid::now_v7().simple());
    let layer = |store| CacheLayer::new("list", store).tags(|_, _| vec!["list".to_owned()]);
    let one = layer(TieredStore::new(
        MemoryStore::new(1 << 20),
        RedisStore::new(conn(&url()).await, prefix.clone()),
    ));
    let invalidator = one.invalidator();
    let (one, one_calls) = instance(one);
    let (two, two_calls) = instance(layer(TieredStore::new(
        MemoryStore::new(1 << 20),
        RedisStore::new(conn(&url()).await, prefix.clone()),
    )));

    assert_eq!(fetch(&one).await, ("MISS".to_owned(), "call 1".to_owned()));
    assert_eq!(fetch(&two).await, ("HIT".to_owned(), "call 1".to_owned()));
    assert_eq!(fetch(&two).await.0, "HIT", "now from its memory tier");
    invalidator.invalidate("list").await.expect("invalidated");
    // Instance two's memory tier holds the old entry, but the tag says stale.
    assert_eq!(fetch(&two).await, ("MISS".to_owned(), "call 1".to_owned()));
    assert_eq!(two_calls.load(Ordering::SeqCst), 1);
    // Instance one's memory tier is stale too; it takes the entry two stored.
    assert_eq!(fetch(&one).await, ("HIT".to_owned(), "call 1".to_owned()));
    assert_eq!(one_calls.load(Ordering::SeqCst), 1);
    assert_eq!(two_calls.load(Ordering::SeqCst), 1);
}
