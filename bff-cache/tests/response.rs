//! The response cache in front of a router, with the in-memory store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use bff_cache::response::{CacheLayer, Invalidator, MemoryStore};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

#[derive(Clone, Default)]
struct Origin {
    calls: Arc<AtomicUsize>,
    version: Arc<AtomicUsize>,
}

async fn profile(State(origin): State<Origin>, headers: HeaderMap) -> String {
    origin.calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let user = headers
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("anonymous");
    format!("{user} v{}", origin.version.load(Ordering::SeqCst))
}

fn app(origin: &Origin) -> (Router, Invalidator) {
    let cache = CacheLayer::new("profile", MemoryStore::new(1 << 20))
        .ttl(Duration::from_secs(60))
        .per_user(|r: &bff_cache::key::RequestInfo<'_>| {
            r.headers
                .get("x-user")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .tags(|_, user| user.map(|u| vec![format!("user:{u}")]).unwrap_or_default());
    let invalidator = cache.invalidator();
    let router = Router::new()
        .route("/me", get(profile))
        .route(
            "/private",
            get(|| async { ([("cache-control", "no-store")], "secret") }),
        )
        .layer(cache)
        .with_state(origin.clone());
    (router, invalidator)
}

async fn get_as(
    app: &Router,
    path: &str,
    user: &str,
    extra: Option<(&str, &str)>,
) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::get(path).header("x-user", user);
    if let Some((name, value)) = extra {
        request = request.header(name, value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_users_entry_is_never_served_to_another() {
    let origin = Origin::default();
    let (app, _) = app(&origin);
    let (_, headers, body) = get_as(&app, "/me", "alice", None).await;
    assert_eq!(
        (headers["x-cache"].to_str().ok(), body.as_str()),
        (Some("MISS"), "alice v0")
    );
    let (_, headers, body) = get_as(&app, "/me", "alice", None).await;
    assert_eq!(
        (headers["x-cache"].to_str().ok(), body.as_str()),
        (Some("HIT"), "alice v0")
    );
    let (_, headers, body) = get_as(&app, "/me", "bob", None).await;
    assert_eq!(
        (headers["x-cache"].to_str().ok(), body.as_str()),
        (Some("MISS"), "bob v0")
    );
    assert_eq!(origin.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_invalidated_tag_makes_the_next_read_fresh() {
    let origin = Origin::default();
    let (app, invalidator) = app(&origin);
    get_as(&app, "/me", "alice", None).await;
    get_as(&app, "/me", "bob", None).await;
    origin.version.store(1, Ordering::SeqCst);
    invalidator
        .invalidate("user:alice")
        .await
        .expect("invalidated");
    let (_, headers, body) = get_as(&app, "/me", "alice", None).await;
    assert_eq!(
        (headers["x-cache"].to_str().ok(), body.as_str()),
        (Some("MISS"), "alice v1")
    );
    // Bob's entry carries another tag and stays.
    let (_, headers, body) = get_as(&app, "/me", "bob", None).await;
    assert_eq!(
        (headers["x-cache"].to_str().ok(), body.as_str()),
        (Some("HIT"), "bob v0")
    );
}

#[tokio::test]
async fn a_hundred_concurrent_misses_make_one_origin_call() {
    let origin = Origin::default();
    let (app, _) = app(&origin);
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { get_as(&app, "/me", "carol", None).await })
        })
        .collect();
    for request in requests {
        let (status, _, body) = request.await.expect("joins");
        assert_eq!((status, body.as_str()), (StatusCode::OK, "carol v0"));
    }
    assert_eq!(origin.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn etags_answer_if_none_match_with_304() {
    let origin = Origin::default();
    let (app, _) = app(&origin);
    let (_, headers, _) = get_as(&app, "/me", "dave", None).await;
    let etag = headers["etag"].to_str().expect("ascii").to_owned();
    let (status, headers, body) = get_as(&app, "/me", "dave", Some(("if-none-match", &etag))).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(headers["etag"].to_str().ok(), Some(etag.as_str()));
    assert!(body.is_empty());
    let (status, _, _) = get_as(&app, "/me", "dave", Some(("if-none-match", "\"other\""))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn no_store_is_honoured_and_credentials_bypass_a_shared_cache() {
    let origin = Origin::default();
    let (app, _) = app(&origin);
    for _ in 0..2 {
        let (_, headers, _) = get_as(&app, "/private", "erin", None).await;
        assert_eq!(headers["x-cache"], "MISS");
    }
    // A shared (not per-user) cache and a request with credentials.
    let shared = Router::new()
        .route("/", get(|| async { "shared" }))
        .layer(CacheLayer::new("shared", MemoryStore::new(1 << 20)));
    let request = Request::get("/")
        .header("authorization", "Bearer x")
        .body(Body::empty())
        .expect("request");
    let response = shared.oneshot(request).await.expect("infallible");
    assert_eq!(response.headers()["x-cache"], "BYPASS");
}

#[tokio::test]
async fn query_order_does_not_split_the_cache() {
    let origin = Origin::default();
    let (app, _) = app(&origin);
    get_as(&app, "/me?a=1&b=2", "fay", None).await;
    let (_, headers, _) = get_as(&app, "/me?b=2&a=1", "fay", None).await;
    assert_eq!(headers["x-cache"], "HIT");
}

#[tokio::test]
async fn head_is_served_from_a_get_but_never_fills() {
    let origin = Origin::default();
    let (app, _) = app(&origin);
    let head = |user: &'static str| {
        let app = app.clone();
        async move {
            let request = Request::head("/me")
                .header("x-user", user)
                .body(Body::empty())
                .expect("request");
            app.oneshot(request).await.expect("infallible")
        }
    };
    assert_eq!(head("gil").await.headers()["x-cache"], "MISS");
    let (_, headers, body) = get_as(&app, "/me", "gil", None).await;
    assert_eq!(
        (headers["x-cache"].to_str().ok(), body.as_str()),
        (Some("MISS"), "gil v0")
    );
    let response = head("gil").await;
    assert_eq!(response.headers()["x-cache"], "HIT");
    assert_eq!(response.headers()["content-length"], "6");
}

#[tokio::test]
async fn waiters_of_an_uncacheable_fill_go_to_the_origin_side_by_side() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (now, peak) = (Arc::clone(&in_flight), Arc::clone(&most));
    let app = Router::new()
        .route(
            "/live",
            get(move || {
                let (now, peak) = (Arc::clone(&now), Arc::clone(&peak));
                async move {
                    let current = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(current, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    ([("cache-control", "no-store")], "live")
                }
            }),
        )
        .layer(CacheLayer::new("live", MemoryStore::new(1 << 20)));
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                app.oneshot(Request::get("/live").body(Body::empty()).expect("request"))
                    .await
                    .expect("infallible")
                    .status()
            })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.expect("joins"), StatusCode::OK);
    }
    assert!(most.load(Ordering::SeqCst) >= 2, "not one after another");
}

#[tokio::test]
async fn an_unannounced_vary_is_not_stored() {
    let app = Router::new()
        .route(
            "/",
            get(|| async { ([("vary", "accept-encoding")], "maybe compressed") }),
        )
        .layer(CacheLayer::new("vary", MemoryStore::new(1 << 20)));
    for _ in 0..2 {
        let response = app
            .clone()
            .oneshot(Request::get("/").body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(response.headers()["x-cache"], "MISS");
    }
}

#[tokio::test]
async fn without_a_lock_wait_a_miss_never_waits_on_another_fill() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (now, peak) = (Arc::clone(&in_flight), Arc::clone(&most));
    let app = Router::new()
        .route(
            "/slow",
            get(move || {
                let (now, peak) = (Arc::clone(&now), Arc::clone(&peak));
                async move {
                    let current = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(current, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    ([("cache-control", "no-store")], "partial")
                }
            }),
        )
        .layer(CacheLayer::new("slow", MemoryStore::new(1 << 20)).lock_wait(Duration::ZERO));
    let send = || {
        let app = app.clone();
        tokio::spawn(async move {
            app.oneshot(Request::get("/slow").body(Body::empty()).expect("request"))
                .await
                .expect("infallible")
                .status()
        })
    };
    let first = send();
    // The first request holds the fill when the second arrives.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = send();
    assert_eq!(first.await.expect("joins"), StatusCode::OK);
    assert_eq!(second.await.expect("joins"), StatusCode::OK);
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "the second did not queue behind the first"
    );
}
