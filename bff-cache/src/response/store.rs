//! Where cached responses live.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::BoxFuture;

/// A stored response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// Status code.
    pub status: u16,
    /// Headers worth replaying (not hop-by-hop ones), as name and value.
    pub headers: Vec<(String, String)>,
    /// The body, base64 in the serialised form.
    #[serde(with = "body_base64")]
    pub body: Bytes,
    /// The strong `ETag` of the body.
    pub etag: String,
    /// The tags and their versions when the entry was made; a newer version
    /// of any of them makes the entry stale.
    pub tags: Vec<(String, u64)>,
    /// When it expires, milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
}

mod body_base64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(body: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(body))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Entry {
    /// Whether it is still within its TTL.
    pub fn is_fresh(&self) -> bool {
        now_ms() < self.expires_at_ms
    }

    fn weight(&self) -> u32 {
        let headers: usize = self.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        u32::try_from(self.body.len() + headers + 128).unwrap_or(u32::MAX)
    }
}

/// Why a store operation failed; the layer then serves from the origin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The store failed.
    #[error("cache store unavailable")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where entries, tag versions and fill locks live.
pub trait CacheStore: Send + Sync + 'static {
    /// The entry under `key`, if any (possibly stale: the caller checks).
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, CacheError>>;
    /// Stores `entry` under `key` until it expires.
    fn put<'a>(&'a self, key: &'a str, entry: Entry) -> BoxFuture<'a, Result<(), CacheError>>;
    /// The current version of each tag (0 for a tag never invalidated).
    fn tag_versions<'a>(
        &'a self,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<u64>, CacheError>>;
    /// Makes every entry carrying `tag` stale, everywhere the store is shared.
    fn invalidate<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Result<(), CacheError>>;
    /// Tries to become the one filler of `key` for `ttl` (across instances,
    /// for shared stores); `Some(token)` when this caller should fill it.
    fn lock<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<String>, CacheError>>;
    /// Gives up the fill lock of `key`, if `token` still holds it.
    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> BoxFuture<'a, Result<(), CacheError>>;

    /// The entry under `key` if it is fresh and its tags are current: what the
    /// layer serves. A store with tiers overrides it to check each tier once.
    fn lookup<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, CacheError>> {
        Box::pin(async move {
            let entry = self.get(key).await?;
            current(self, entry).await
        })
    }
}

/// `entry` if it is fresh and `store` has its tags at the versions it recorded.
pub(crate) async fn current<S: CacheStore + ?Sized>(
    store: &S,
    entry: Option<Entry>,
) -> Result<Option<Entry>, CacheError> {
    let Some(entry) = entry.filter(Entry::is_fresh) else {
        return Ok(None);
    };
    if entry.tags.is_empty() {
        return Ok(Some(entry));
    }
    let names: Vec<String> = entry.tags.iter().map(|(t, _)| t.clone()).collect();
    let versions = store.tag_versions(&names).await?;
    let unchanged = entry.tags.iter().zip(versions).all(|((_, v), c)| *v == c);
    Ok(unchanged.then_some(entry))
}

impl<S: CacheStore + ?Sized> CacheStore for Arc<S> {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, CacheError>> {
        (**self).get(key)
    }
    fn put<'a>(&'a self, key: &'a str, entry: Entry) -> BoxFuture<'a, Result<(), CacheError>> {
        (**self).put(key, entry)
    }
    fn tag_versions<'a>(
        &'a self,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<u64>, CacheError>> {
        (**self).tag_versions(tags)
    }
    fn invalidate<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Result<(), CacheError>> {
        (**self).invalidate(tag)
    }
    fn lock<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<String>, CacheError>> {
        (**self).lock(key, ttl)
    }
    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> BoxFuture<'a, Result<(), CacheError>> {
        (**self).unlock(key, token)
    }
    fn lookup<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, CacheError>> {
        (**self).lookup(key)
    }
}

/// Entries in this process, in moka bounded by total size (bodies and
/// headers), least recently used evicted first.
pub struct MemoryStore {
    entries: moka::sync::Cache<String, Arc<Entry>>,
    tags: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A store of at most `max_bytes` of responses.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_key: &String, entry: &Arc<Entry>| entry.weight())
                .build(),
            tags: Mutex::new(HashMap::new()),
        }
    }

    fn tags(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.tags
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl CacheStore for MemoryStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, CacheError>> {
        let entry = self.entries.get(key).map(|e| (*e).clone());
        Box::pin(std::future::ready(Ok(entry)))
    }

    fn put<'a>(&'a self, key: &'a str, entry: Entry) -> BoxFuture<'a, Result<(), CacheError>> {
        self.entries.insert(key.to_owned(), Arc::new(entry));
        Box::pin(std::future::ready(Ok(())))
    }

    fn tag_versions<'a>(
        &'a self,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<u64>, CacheError>> {
        let map = self.tags();
        let versions = tags
            .iter()
            .map(|t| map.get(t).copied().unwrap_or(0))
            .collect();
        Box::pin(std::future::ready(Ok(versions)))
    }

    fn invalidate<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Result<(), CacheError>> {
        *self.tags().entry(tag.to_owned()).or_insert(0) += 1;
        Box::pin(std::future::ready(Ok(())))
    }

    fn lock<'a>(
        &'a self,
        _key: &'a str,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<String>, CacheError>> {
        // One process: the layer's own per-key lock already makes one filler.
        Box::pin(std::future::ready(Ok(Some(String::new()))))
    }

    fn unlock<'a>(
        &'a self,
        _key: &'a str,
        _token: &'a str,
    ) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}
