//! The Redis state store against the real Redis on 127.0.0.1:6379 and a local
//! Redis Cluster (each test runs on both); every test
//! uses a key prefix of its own.

use std::sync::Arc;
use std::time::Duration;

use bff_auth::oauth::{
    CallbackParams, OAuthClient, OAuthError, ProviderConfig, ProviderKind, RedisStateStore,
    StateStore,
};
use bff_core::redis_client::RedisConnection;
use bff_core::redis_client::testing::Backend;
use redis::AsyncCommands;
use url::Url;

const BINDING: [u8; 32] = [3; 32];

fn prefix() -> String {
    format!("test:{}:oauth:", uuid::Uuid::now_v7().simple())
}

/// A client whose provider is never called: these tests stop at the state.
async fn client(conn: RedisConnection, prefix: &str) -> OAuthClient {
    let mut yandex = ProviderConfig::new(ProviderKind::Yandex, "app");
    yandex.client_secret = Some("secret".into());
    let vk = ProviderConfig::new(ProviderKind::Vk, "app");
    OAuthClient::new(
        vec![yandex, vk],
        Arc::new(RedisStateStore::new(conn, prefix)),
        Url::parse("https://bff.example.com").expect("url"),
    )
    .expect("valid")
}

fn callback(url: &Url) -> CallbackParams {
    CallbackParams {
        state: url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned()),
        code: Some("code".into()),
        ..Default::default()
    }
}

async fn the_store_takes_once_and_expires(redis: Backend) {
    let store = RedisStateStore::new(redis.connect().await, prefix());
    store
        .put("k", b"v".to_vec(), Duration::from_secs(60))
        .await
        .expect("put");
    assert_eq!(store.take("k").await.expect("take"), Some(b"v".to_vec()));
    assert_eq!(store.take("k").await.expect("take"), None);
    store
        .put("short", b"v".to_vec(), Duration::from_millis(50))
        .await
        .expect("put");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(store.take("short").await.expect("take"), None);
}

async fn concurrent_callbacks_exactly_one_wins(redis: Backend) {
    let prefix = prefix();
    let client = client(redis.connect().await, &prefix).await;
    let url = client
        .start(ProviderKind::Vk, BINDING, serde_json::json!({"user": 1}))
        .await
        .expect("started");
    let params = callback(&url);
    let takes = (0..8).map(|_| {
        let client = client.clone();
        let params = params.clone();
        tokio::spawn(async move { client.take_state(ProviderKind::Vk, &params, BINDING).await })
    });
    let mut won = 0;
    for take in takes {
        match take.await.expect("joined") {
            Ok(pending) => {
                won += 1;
                assert_eq!(pending.data["user"], 1);
            }
            Err(error) => assert_eq!(error, OAuthError::InvalidState),
        }
    }
    assert_eq!(won, 1);
}

async fn redis_holds_only_a_hash_of_the_state(redis: Backend) {
    let prefix = prefix();
    let mut conn = redis.connect().await;
    let client = client(conn.clone(), &prefix).await;
    let url = client
        .start(ProviderKind::Yandex, BINDING, serde_json::json!({}))
        .await
        .expect("started");
    let state = callback(&url).state.expect("state");
    let keys: Vec<String> = conn.keys(format!("{prefix}*")).await.expect("keys");
    assert_eq!(keys.len(), 1);
    assert!(!keys[0].contains(&state));
    let value: Vec<u8> = conn.get(&keys[0]).await.expect("get");
    assert!(!String::from_utf8_lossy(&value).contains(&state));
    let ttl: i64 = conn.pttl(&keys[0]).await.expect("pttl");
    assert!(ttl > 0 && ttl <= 600_000, "{ttl}");
}

async fn state_checks_hold_with_redis(redis: Backend) {
    let prefix = prefix();
    let client = client(redis.connect().await, &prefix).await;
    let invalid = |r: Result<_, OAuthError>| matches!(r, Err(OAuthError::InvalidState));

    let params = callback(
        &client
            .start(ProviderKind::Vk, BINDING, serde_json::json!({}))
            .await
            .expect("started"),
    );
    assert!(invalid(
        client
            .take_state(ProviderKind::Yandex, &params, BINDING)
            .await
    ));
    assert!(
        invalid(client.take_state(ProviderKind::Vk, &params, BINDING).await),
        "gone"
    );

    let params = callback(
        &client
            .start(ProviderKind::Vk, BINDING, serde_json::json!({}))
            .await
            .expect("started"),
    );
    assert!(invalid(
        client.take_state(ProviderKind::Vk, &params, [4; 32]).await
    ));

    let params = callback(
        &client
            .start(ProviderKind::Vk, BINDING, serde_json::json!({}))
            .await
            .expect("started"),
    );
    client
        .take_state(ProviderKind::Vk, &params, BINDING)
        .await
        .expect("first");
    assert!(
        invalid(client.take_state(ProviderKind::Vk, &params, BINDING).await),
        "replay"
    );

    let short = client.clone().with_state_ttl(Duration::from_millis(50));
    let params = callback(
        &short
            .start(ProviderKind::Vk, BINDING, serde_json::json!({}))
            .await
            .expect("started"),
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        invalid(short.take_state(ProviderKind::Vk, &params, BINDING).await),
        "expired"
    );
}

bff_core::redis_tests!(
    the_store_takes_once_and_expires,
    concurrent_callbacks_exactly_one_wins,
    redis_holds_only_a_hash_of_the_state,
    state_checks_hold_with_redis,
);
