use redis::aio::ConnectionManager;

use super::{BoxFuture, CheckError, ReadinessCheck};

/// Readiness of Redis: a `PING` through a connection manager, which reconnects on
/// its own, so the check turns green again once Redis is back.
#[derive(Clone)]
pub struct RedisCheck {
    conn: ConnectionManager,
}

impl std::fmt::Debug for RedisCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCheck").finish_non_exhaustive()
    }
}

impl RedisCheck {
    /// Checks through `conn`.
    pub fn new(conn: ConnectionManager) -> Self {
        Self { conn }
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
