//! Where pending authorizations wait for their callback.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::OAuthError;
use crate::layer::BoxFuture;

/// Stores pending authorizations for a while, each readable once.
///
/// Keys are hashes of the `state` (the [`OAuthClient`](super::OAuthClient)
/// never passes the `state` itself), values are opaque bytes.
pub trait StateStore: Send + Sync + std::fmt::Debug {
    /// Stores `value` under `key` for `ttl`.
    fn put<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), OAuthError>>;

    /// Removes and returns the value under `key`, atomically: of two
    /// concurrent takes of one key at most one gets the value. `None` when
    /// there is none or it has expired.
    fn take<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, OAuthError>>;
}

/// Pending authorizations in this process's memory: for a single instance,
/// tests and examples. Several instances behind a load balancer need a shared
/// store such as `RedisStateStore` (feature `redis`).
///
/// Holds at most [`MemoryStateStore::DEFAULT_CAPACITY`] entries (expired ones
/// are dropped first), so a flood of `start` requests cannot exhaust memory.
#[derive(Debug)]
pub struct MemoryStateStore {
    entries: Mutex<HashMap<String, (Instant, Vec<u8>)>>,
    capacity: usize,
}

impl Default for MemoryStateStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStateStore {
    /// How many pending authorizations [`new`](Self::new) holds at most.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// An empty store of [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY).
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// An empty store holding at most `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Vec<u8>)>> {
        // Every critical section is a single map operation that cannot leave the
        // map half-changed, so a poisoned lock still guards a consistent map.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl StateStore for MemoryStateStore {
    fn put<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), OAuthError>> {
        Box::pin(async move {
            let now = Instant::now();
            let mut entries = self.entries();
            if entries.len() >= self.capacity {
                entries.retain(|_, (expires, _)| *expires > now);
            }
            if entries.len() >= self.capacity {
                return Err(OAuthError::Unavailable(
                    "the OAuth state store is full".to_owned(),
                ));
            }
            entries.insert(key.to_owned(), (now + ttl, value));
            Ok(())
        })
    }

    fn take<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, OAuthError>> {
        Box::pin(async move {
            let taken = self.entries().remove(key);
            Ok(taken
                .filter(|(expires, _)| *expires > Instant::now())
                .map(|(_, value)| value))
        })
    }
}

/// What [`OAuthClient::start`](super::OAuthClient::start) stores.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredState {
    /// The provider, as [`ProviderKind::as_str`](super::ProviderKind::as_str).
    pub(crate) provider: String,
    /// The browser-binding hash, hex.
    pub(crate) binding: String,
    /// The PKCE verifier.
    pub(crate) verifier: String,
    /// The OpenID nonce.
    pub(crate) nonce: Option<String>,
    /// The caller's data.
    pub(crate) data: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_value_is_taken_once_and_expires() {
        let store = MemoryStateStore::new();
        store
            .put("k", b"v".to_vec(), Duration::from_secs(60))
            .await
            .expect("put");
        assert_eq!(store.take("k").await.expect("take"), Some(b"v".to_vec()));
        assert_eq!(store.take("k").await.expect("take"), None);
        store
            .put("short", b"v".to_vec(), Duration::from_millis(1))
            .await
            .expect("put");
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.take("short").await.expect("take"), None);
    }

    #[tokio::test]
    async fn a_full_store_refuses_rather_than_grows() {
        let store = MemoryStateStore::with_capacity(1);
        let ttl = Duration::from_secs(60);
        store.put("a", Vec::new(), ttl).await.expect("put");
        assert!(matches!(
            store.put("b", Vec::new(), ttl).await,
            Err(OAuthError::Unavailable(_))
        ));
    }
}
