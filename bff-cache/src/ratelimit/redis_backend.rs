//! The Redis backend: one atomic script per decision, Redis's clock.

use std::sync::LazyLock;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::Instrument;

use bff_core::redis_client::RedisConnection;
use redis::Script;

use super::{Backend, BoxFuture, Decision, MemoryBackend, Quota, RateLimitError};

/// What to do when Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnRedisError {
    /// Decide with a local in-memory limiter (each instance then limits on its
    /// own) and log once per outage. The default: an outage of the limiter's
    /// store should not become an outage of the service.
    #[default]
    FallBackToMemory,
    /// Refuse the request (503): for limits that protect something costlier
    /// than an outage.
    Refuse,
}

/// GCRA state in Redis, shared by every instance: one key per limited key
/// (`{prefix}{policy}:{key}`, holding the TAT in microseconds and expiring
/// when the bucket is full again), one script and one round trip per decision,
/// and Redis's `TIME` as the clock so instances never disagree.
pub struct RedisBackend {
    conn: RedisConnection,
    prefix: String,
    on_error: OnRedisError,
    fallback: MemoryBackend,
    /// While set and in the future, Redis is not tried: after a failure the
    /// backend waits a second before trying again rather than paying a failed
    /// round trip on every request.
    retry_at: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("prefix", &self.prefix)
            .field("on_error", &self.on_error)
            .finish_non_exhaustive()
    }
}

const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local ahead = tat + interval - now
if ahead > capacity then
  return {0, 0, tat - now, ahead - capacity}
end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.floor(ahead / 1000) + 1)
return {1, math.floor((capacity - ahead) / interval), ahead, 0}
";

static GCRA_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(GCRA));

/// How long after a failure Redis is left alone.
const BACKOFF: Duration = Duration::from_secs(1);

impl RedisBackend {
    /// A backend on `conn` writing keys under `prefix` (e.g. `bff:rl:`).
    pub fn new(
        conn: impl Into<RedisConnection>,
        prefix: impl Into<String>,
        on_error: OnRedisError,
    ) -> Self {
        Self {
            conn: conn.into(),
            prefix: prefix.into(),
            on_error,
            fallback: MemoryBackend::default(),
            retry_at: Mutex::new(None),
        }
    }

    fn resting(&self) -> bool {
        let guard = self
            .retry_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.is_some_and(|at| Instant::now() < at)
    }

    fn failed(&self, error: &redis::RedisError) {
        let mut guard = self
            .retry_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            match self.on_error {
                OnRedisError::FallBackToMemory => {
                    tracing::warn!(%error, "rate limiter: Redis unavailable; limiting with local memory until it returns")
                }
                OnRedisError::Refuse => {
                    tracing::error!(%error, "rate limiter: Redis unavailable; refusing limited requests until it returns")
                }
            }
        }
        *guard = Some(Instant::now() + BACKOFF);
    }

    fn recovered(&self) {
        let mut guard = self
            .retry_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.take().is_some() {
            tracing::info!("rate limiter: Redis is back");
        }
    }

    fn unavailable(&self, key: &str, quota: &Quota) -> Result<Decision, RateLimitError> {
        metrics::counter!("bff_ratelimit_backend_errors_total").increment(1);
        match self.on_error {
            OnRedisError::FallBackToMemory => Ok(self.fallback.decide(key, quota)),
            OnRedisError::Refuse => Err(RateLimitError::Backend("Redis is unavailable".into())),
        }
    }
}

fn micros(ns: u64) -> u64 {
    (ns / 1_000).max(1)
}

impl Backend for RedisBackend {
    fn check<'a>(
        &'a self,
        key: &'a str,
        quota: &'a Quota,
    ) -> BoxFuture<'a, Result<Decision, RateLimitError>> {
        Box::pin(async move {
            if self.resting() {
                return self.unavailable(key, quota);
            }
            let interval = micros(quota.emission_interval_ns());
            let capacity = interval.saturating_mul(u64::from(quota.burst()));
            let reply: Result<(u8, u64, u64, u64), _> = GCRA_SCRIPT
                .key(format!("{}{key}", self.prefix))
                .arg(interval)
                .arg(capacity)
                .invoke_async(&mut self.conn.clone())
                .instrument(bff_core::redis_client::span("ratelimit.gcra"))
                .await;
            match reply {
                Ok((allowed, remaining, reset_us, retry_us)) => {
                    self.recovered();
                    Ok(Decision {
                        allowed: allowed == 1,
                        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
                        reset: Duration::from_micros(reset_us),
                        retry_after: Duration::from_micros(retry_us),
                    })
                }
                Err(error) => {
                    self.failed(&error);
                    self.unavailable(key, quota)
                }
            }
        })
    }
}
