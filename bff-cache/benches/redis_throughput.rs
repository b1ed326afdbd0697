//! Decisions per second of the Redis limiter from 64 concurrent tasks sharing
//! one multiplexed connection (which pipelines their scripts):
//!
//! ```text
//! cargo bench -p bff-cache --features redis --bench redis_throughput
//! ```
//!
//! Needs Redis on `BFF_REDIS_URL` (default `redis://127.0.0.1:6379`); keys go
//! under a fresh prefix and expire on their own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bff_cache::ratelimit::{Backend, OnRedisError, Quota, RedisBackend};

const TASKS: usize = 64;
const KEYS: usize = 1_000;
const RUN: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; any other argument is a filter this
    // measurement has no use for.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let url = std::env::var("BFF_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let conn = redis::aio::ConnectionManager::new(redis::Client::open(url)?).await?;
        let prefix = format!("bench:{}:rl:", std::process::id());
        let backend = Arc::new(RedisBackend::new(conn, prefix, OnRedisError::Refuse));
        let quota = Quota::per_second(1_000_000_000);
        let done = Arc::new(AtomicU64::new(0));
        // Warm up: load the script and open the connection.
        backend.check("warm-up", &quota).await?;
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let (backend, done) = (Arc::clone(&backend), Arc::clone(&done));
                tokio::spawn(async move {
                    let mut i = t;
                    while start.elapsed() < RUN {
                        let key = format!("client-{}", i % KEYS);
                        if backend.check(&key, &quota).await.is_ok() {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        i += TASKS;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await?;
        }
        let elapsed = start.elapsed().as_secs_f64();
        let total = done.load(Ordering::Relaxed);
        let line = format!(
            "redis limiter: {total} decisions in {elapsed:.1} s from {TASKS} tasks = {:.0} decisions/s",
            total as f64 / elapsed
        );
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "{line}");
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
