//! Pending authorizations in Redis.

use std::time::Duration;
use tracing::Instrument;

use bff_core::redis_client::RedisConnection;

use super::{OAuthError, StateStore};
use crate::layer::BoxFuture;

/// Pending authorizations in Redis, shared by every instance.
///
/// Each is one string key `{prefix}oauth:state:{key}` (the key being a hash of
/// the `state`, so Redis never holds a usable `state`) set with `PX`, and taken
/// with `GETDEL` (Redis 6.2 or newer): one atomic command, so of two concurrent
/// callbacks with one `state` exactly one gets it.
#[derive(Clone)]
pub struct RedisStateStore {
    conn: RedisConnection,
    prefix: String,
}

impl std::fmt::Debug for RedisStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStateStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStateStore {
    /// A store on `conn` whose keys start with `prefix`.
    pub fn new(conn: impl Into<RedisConnection>, prefix: impl Into<String>) -> Self {
        Self {
            conn: conn.into(),
            prefix: prefix.into(),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}oauth:state:{key}", self.prefix)
    }
}

fn unavailable(error: redis::RedisError) -> OAuthError {
    tracing::warn!(%error, "the OAuth state store failed");
    OAuthError::Unavailable("the OAuth state store failed".to_owned())
}

impl StateStore for RedisStateStore {
    fn put<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), OAuthError>> {
        Box::pin(async move {
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let mut conn = self.conn.clone();
            redis::cmd("SET")
                .arg(self.key(key))
                .arg(value)
                .arg("PX")
                .arg(millis)
                .query_async::<()>(&mut conn)
                .instrument(bff_core::redis_client::span("oauth.state_put"))
                .await
                .map_err(unavailable)
        })
    }

    fn take<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, OAuthError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            redis::cmd("GETDEL")
                .arg(self.key(key))
                .query_async::<Option<Vec<u8>>>(&mut conn)
                .instrument(bff_core::redis_client::span("oauth.state_take"))
                .await
                .map_err(unavailable)
        })
    }
}
