//! The response cache in the app: public currencies, per-user `/me`,
//! invalidated by writes on every instance, out of the way without Redis.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{PrivateRedis, SEED_PASSWORD, TestApp};

fn x_cache(response: &reqwest::Response) -> String {
    response.headers()["x-cache"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

#[tokio::test]
async fn currencies_are_served_from_the_cache() {
    let app = TestApp::spawn().await;
    let first = app.get("/api/v1/currencies").await;
    assert_eq!(x_cache(&first), "MISS");
    let etag = first.headers()["etag"].to_str().expect("ascii").to_owned();
    let body: Value = first.json().await.expect("json");
    let second = app.get("/api/v1/currencies").await;
    assert_eq!(x_cache(&second), "HIT");
    assert_eq!(second.json::<Value>().await.expect("json"), body);
    let revalidated = app
        .client
        .get(app.url("/api/v1/currencies"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("sent");
    assert_eq!(revalidated.status(), 304);
}

#[tokio::test]
async fn junk_and_padded_queries_make_no_new_shared_entries() {
    let app = TestApp::spawn().await;
    assert_eq!(x_cache(&app.get("/api/v1/currencies").await), "MISS");
    // The same first page, however it is spelled, is the same entry.
    for same in ["?limit=20", "?limit=00020", "?limit=020&cursor="] {
        let response = app.get(&format!("/api/v1/currencies{same}")).await;
        assert_eq!(response.status(), 200, "{same}");
        assert_eq!(x_cache(&response), "HIT", "{same}");
    }
    assert_eq!(
        x_cache(&app.get("/api/v1/currencies?limit=5").await),
        "MISS"
    );
    assert_eq!(
        x_cache(&app.get("/api/v1/currencies?limit=005").await),
        "HIT"
    );
    // A parameter a list does not take is refused, and so never cached.
    for junk in ["?junk=1", "?limit=5&junk=2"] {
        let response = app.get(&format!("/api/v1/currencies{junk}")).await;
        let problem = response.json::<Value>().await.expect("json");
        assert_eq!(problem["status"], 422, "{junk}");
        assert_eq!(problem["errors"][0]["field"], "junk", "{junk}");
    }
}

#[tokio::test]
async fn me_is_cached_per_user_and_a_write_is_seen_by_the_next_read_everywhere() {
    let app = TestApp::spawn().await;
    let sibling = app.spawn_sibling().await;
    let alice = app.login("customer@example.com", SEED_PASSWORD).await;
    let bob = app.login("manager@example.com", SEED_PASSWORD).await;
    let alice = alice["access_token"].as_str().expect("token");
    let bob = bob["access_token"].as_str().expect("token");

    let me = |app: &TestApp, token: &str| {
        let request = app.authed(Method::GET, "/api/v1/me", token);
        async move {
            let response = request.send().await.expect("sent");
            let cache = x_cache(&response);
            let body: Value = response.json().await.expect("json");
            (cache, body)
        }
    };
    assert_eq!(me(&app, alice).await.0, "MISS");
    let (cache, body) = me(&app, alice).await;
    assert_eq!(
        (cache.as_str(), &body["email"]),
        ("HIT", &json!("customer@example.com"))
    );
    // Bob never gets Alice's entry.
    let (_, body) = me(&app, bob).await;
    assert_eq!(body["email"], "manager@example.com");
    // The sibling shares the Redis tier.
    assert_eq!(me(&sibling, alice).await.0, "HIT");

    let response = app
        .authed(Method::PATCH, "/api/v1/me", alice)
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    for instance in [&app, &sibling] {
        let (cache, body) = me(instance, alice).await;
        assert_eq!(body["name"], "Renamed", "fresh after the write ({cache})");
    }
    sibling.stop().await;
}

#[tokio::test]
async fn with_redis_stopped_the_app_still_answers() {
    let mut redis = PrivateRedis::start();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let app = TestApp::spawn_with(|c| c.redis.redis_url = url.into()).await;
    assert_eq!(app.get("/api/v1/currencies").await.status(), 200);
    redis.stop();
    for _ in 0..3 {
        let response = app.get("/api/v1/currencies").await;
        assert_eq!(response.status(), 200);
    }
    redis.restart();
}
