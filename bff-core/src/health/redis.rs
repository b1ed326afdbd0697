use super::{BoxFuture, CheckError, ReadinessCheck};
use crate::redis_client::RedisConnection;

/// Readiness of Redis: a `PING` through a [`RedisConnection`], which reconnects
/// on its own, so the check turns green again once Redis is back. On a cluster
/// the `PING` goes to every node the client knows, so a node that is down
/// fails the check until the cluster has replaced it (and the client has
/// re-read the slot map).
#[derive(Clone)]
pub struct RedisCheck {
    conn: RedisConnection,
}

impl std::fmt::Debug for RedisCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCheck").finish_non_exhaustive()
    }
}

impl RedisCheck {
    /// Checks through `conn`.
    pub fn new(conn: impl Into<RedisConnection>) -> Self {
        Self { conn: conn.into() }
    }
}

impl ReadinessCheck for RedisCheck {
    fn name(&self) -> &str {
        "redis"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), CheckError>> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let pong: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(CheckError::new)?;
            if pong == "PONG" {
                Ok(())
            } else {
                Err(CheckError::new(format!("unexpected PING answer {pong:?}")))
            }
        })
    }
}
