//! The Redis limiter against the real Redis on 127.0.0.1:6379 and a local
//! Redis Cluster (each test runs on both); each test uses a key prefix of its
//! own.

use std::sync::Arc;
use std::time::Duration;

use bff_cache::ratelimit::{Backend, OnRedisError, Quota, RedisBackend};
use bff_core::redis_client::testing::Backend as Redis;

async fn backend(redis: Redis, prefix: &str) -> RedisBackend {
    let conn = redis.connect().await;
    RedisBackend::new(conn, prefix, OnRedisError::FallBackToMemory)
}

fn prefix() -> String {
    format!("test:{}:rl:", uuid::Uuid::now_v7().simple())
}

async fn of_many_concurrent_requests_exactly_the_limit_pass(redis: Redis) {
    let backend = Arc::new(backend(redis, &prefix()).await);
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

async fn two_instances_on_one_redis_share_the_limit(redis: Redis) {
    let prefix = prefix();
    let (one, two) = (backend(redis, &prefix).await, backend(redis, &prefix).await);
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

async fn tokens_refill_at_the_rate(redis: Redis) {
    let backend = backend(redis, &prefix()).await;
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

bff_core::redis_tests!(
    of_many_concurrent_requests_exactly_the_limit_pass,
    two_instances_on_one_redis_share_the_limit,
    tokens_refill_at_the_rate,
);
