//! Entries in Redis, shared by every instance, optionally behind a local tier.

use std::time::Duration;
use tracing::Instrument;

use bff_core::redis_client::RedisConnection;
use redis::AsyncCommands;

use super::store::{CacheError, CacheStore, Entry, MemoryStore, current, now_ms};
use crate::BoxFuture;

/// Entries in Redis (`{prefix}e:{key}`, JSON, expiring with the entry), tag
/// versions (`{prefix}t:{tag}`, counters) and fill locks (`{prefix}l:{key}`).
/// An invalidation is one `INCR`, seen by every instance at its next read.
#[derive(Clone)]
pub struct RedisStore {
    conn: RedisConnection,
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn backend(error: impl std::error::Error + Send + Sync + 'static) -> CacheError {
    CacheError::Backend(Box::new(error))
}

impl RedisStore {
    /// A store on `conn` under `prefix` (e.g. `bff:cache:`).
    pub fn new(conn: impl Into<RedisConnection>, prefix: impl Into<String>) -> Self {
        Self {
            conn: conn.into(),
            prefix: prefix.into(),
        }
    }
}

impl CacheStore for RedisStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, CacheError>> {
        Box::pin(async move {
            let raw: Option<String> = self
                .conn
                .clone()
                .get(format!("{}e:{key}", self.prefix))
                .instrument(bff_core::redis_client::span("cache.get"))
                .await
                .map_err(backend)?;
            // An entry that does not parse (another version wrote it) is a miss.
            Ok(raw.and_then(|raw| serde_json::from_str(&raw).ok()))
        })
    }

    fn put<'a>(&'a self, key: &'a str, entry: Entry) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            let ttl = entry.expires_at_ms.saturating_sub(now_ms()).max(1);
            let raw = serde_json::to_string(&entry).map_err(backend)?;
            let () = self
                .conn
                .clone()
                .pset_ex(format!("{}e:{key}", self.prefix), raw, ttl)
                .instrument(bff_core::redis_client::span("cache.put"))
                .await
                .map_err(backend)?;
            Ok(())
        })
    }

    fn tag_versions<'a>(
        &'a self,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<u64>, CacheError>> {
        Box::pin(async move {
            if tags.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = tags
                .iter()
                .map(|t| format!("{}t:{t}", self.prefix))
                .collect();
            let versions: Vec<Option<u64>> = redis::cmd("MGET")
                .arg(keys)
                .query_async(&mut self.conn.clone())
                .instrument(bff_core::redis_client::span("cache.versions"))
                .await
                .map_err(backend)?;
            Ok(versions
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect())
        })
    }

    fn invalidate<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            let _: u64 = self
                .conn
                .clone()
                .incr(format!("{}t:{tag}", self.prefix), 1)
                .instrument(bff_core::redis_client::span("cache.invalidate"))
                .await
                .map_err(backend)?;
            Ok(())
        })
    }

    fn lock<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<String>, CacheError>> {
        Box::pin(async move {
            let token = lock_token();
            let set: Option<String> = redis::cmd("SET")
                .arg(format!("{}l:{key}", self.prefix))
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
                .query_async(&mut self.conn.clone())
                .instrument(bff_core::redis_client::span("cache.lock"))
                .await
                .map_err(backend)?;
            Ok(set.map(|_| token))
        })
    }

    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            // Only the holder's token deletes: a lock that expired and was
            // taken by another instance stays theirs.
            let _: u8 = UNLOCK_SCRIPT
                .key(format!("{}l:{key}", self.prefix))
                .arg(token)
                .invoke_async(&mut self.conn.clone())
                .instrument(bff_core::redis_client::span("cache.unlock"))
                .await
                .map_err(backend)?;
            Ok(())
        })
    }
}

static UNLOCK_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
    )
});

/// A token unique to one fill: the process, a counter and the time.
fn lock_token() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}-{}", std::process::id(), now_ms())
}

/// Two tiers: this process's memory in front of Redis. Entries are read from
/// memory first, but tag versions and fill locks always come from Redis, so
/// an invalidation on any instance reaches this one's memory tier too.
#[derive(Debug)]
pub struct TieredStore {
    local: MemoryStore,
    shared: RedisStore,
}

impl TieredStore {
    /// `local` in front of `shared`.
    pub fn new(local: MemoryStore, shared: RedisStore) -> Self {
        Self { local, shared }
    }
}

impl CacheStore for TieredStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, CacheError>> {
        Box::pin(async move {
            if let Ok(Some(entry)) = self.local.get(key).await {
                return Ok(Some(entry));
            }
            self.shared.get(key).await
        })
    }

    fn lookup<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, CacheError>> {
        Box::pin(async move {
            // The local copy serves while its tags are current (one round trip
            // for their versions); when one moved on, another instance may have
            // stored a newer entry, so Redis is asked.
            let local = self.local.get(key).await.unwrap_or(None);
            if let Some(entry) = current(&self.shared, local).await? {
                return Ok(Some(entry));
            }
            let shared = current(&self.shared, self.shared.get(key).await?).await?;
            if let Some(entry) = &shared {
                let _ = self.local.put(key, entry.clone()).await;
            }
            Ok(shared)
        })
    }

    fn put<'a>(&'a self, key: &'a str, entry: Entry) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            let _ = self.local.put(key, entry.clone()).await;
            self.shared.put(key, entry).await
        })
    }

    fn tag_versions<'a>(
        &'a self,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<u64>, CacheError>> {
        self.shared.tag_versions(tags)
    }

    fn invalidate<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Result<(), CacheError>> {
        self.shared.invalidate(tag)
    }

    fn lock<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<String>, CacheError>> {
        self.shared.lock(key, ttl)
    }

    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> BoxFuture<'a, Result<(), CacheError>> {
        self.shared.unlock(key, token)
    }
}
