//! The response cache on the real Redis (a node and a local cluster): shared
//! by instances and invalidated everywhere at once. (With Redis unreachable the app's own test shows the
//! origin answering.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bff_cache::response::{CacheLayer, CacheStore, MemoryStore, RedisStore, TieredStore};
use bff_core::redis_client::testing::Backend;
use http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

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

async fn instances_share_entries_and_invalidations(redis: Backend) {
    let prefix = format!("test:{}:cache:", uuid::Uuid::now_v7().simple());
    let layer = |store| CacheLayer::new("list", store).tags(|_, _| vec!["list".to_owned()]);
    let one = layer(TieredStore::new(
        MemoryStore::new(1 << 20),
        RedisStore::new(redis.connect().await, prefix.clone()),
    ));
    let invalidator = one.invalidator();
    let (one, one_calls) = instance(one);
    let (two, two_calls) = instance(layer(TieredStore::new(
        MemoryStore::new(1 << 20),
        RedisStore::new(redis.connect().await, prefix.clone()),
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

/// Tags land in different hash slots of a cluster; their versions are still
/// read in one call, in order.
async fn tag_versions_are_read_across_hash_slots(redis: Backend) {
    let prefix = format!("test:{}:cache:", uuid::Uuid::now_v7().simple());
    let store = RedisStore::new(redis.connect().await, prefix);
    let tags: Vec<String> = (0..20).map(|i| format!("tag-{i}")).collect();
    for tag in tags.iter().step_by(3) {
        store.invalidate(tag).await.expect("invalidated");
    }
    store.invalidate(&tags[3]).await.expect("invalidated");
    let versions = store.tag_versions(&tags).await.expect("read");
    let expected: Vec<u64> = (0..20)
        .map(|i| match i {
            3 => 2,
            i if i % 3 == 0 => 1,
            _ => 0,
        })
        .collect();
    assert_eq!(versions, expected);
}

bff_core::redis_tests!(
    instances_share_entries_and_invalidations,
    tag_versions_are_read_across_hash_slots,
);
