//! The Redis limiter against the real Redis on 127.0.0.1:6379; each test uses
//! a key prefix of its own.

use std::sync::Arc;
use std::time::Duration;

use bff_cache::ratelimit::{Backend, OnRedisError, Quota, RedisBackend};
use redis::aio::ConnectionManager;

async fn backend(prefix: &str) -> RedisBackend {
    let url =
        std::env::var("BFF_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let client = redis::Client::open(url).expect("redis url");
    let conn = ConnectionManager::new(client)
        .await
        .expect("redis is running");
    RedisBackend::new(conn, prefix, OnRedisError::FallBackToMemory)
}

fn prefix() -> String {
    format!("test:{}:rl:", uuid::Uuid::now_v7().simple())
}

#[tokio::test]
async fn of_many_concurrent_requests_exactly_the_limit_pass() {
    let backend = Arc::new(backend(&prefix()).await);
    let quota = Quota::per_hour(50);
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let backend = Arc::clone(&backend);
            tokio::spawn(async move { backend.check("shared", &quota).await })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        if task.await.expect("joins").expect("decides").allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 50);
}

#[tokio::test]
async fn two_instances_on_one_redis_share_the_limit() {
    let prefix = prefix();
    let (one, two) = (backend(&prefix).await, backend(&prefix).await);
    let quota = Quota::per_hour(4);
    for _ in 0..2 {
        assert!(one.check("k", &quota).await.expect("decides").allowed);
        assert!(two.check("k", &quota).await.expect("decides").allowed);
    }
    let refused = one.check("k", &quota).await.expect("decides");
    assert!(!refused.allowed);
    assert!(
        refused.retry_after > Duration::from_secs(890),
        "{refused:?}"
    );
    assert!(!two.check("k", &quota).await.expect("decides").allowed);
}

#[tokio::test]
async fn tokens_refill_at_the_rate() {
    let backend = backend(&prefix()).await;
    let quota = Quota::new(2, Duration::from_millis(200)).with_burst(2);
    assert_eq!(
        backend.check("k", &quota).await.expect("decides").remaining,
        1
    );
    assert_eq!(
        backend.check("k", &quota).await.expect("decides").remaining,
        0
    );
    let refused = backend.check("k", &quota).await.expect("decides");
    assert!(!refused.allowed);
    assert!(refused.retry_after <= Duration::from_millis(100));
    tokio::time::sleep(refused.retry_after + Duration::from_millis(5)).await;
    assert!(backend.check("k", &quota).await.expect("decides").allowed);
}
