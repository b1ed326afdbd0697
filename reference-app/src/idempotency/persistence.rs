//! Keys and their answers in the `idempotency_keys` table.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use tracing::instrument;
use uuid::Uuid;

use super::IdempotencyKey;

/// What an idempotency key says about a request.
#[derive(Debug)]
pub enum Claim<T> {
    /// First use: go ahead, and remember the answer.
    Fresh,
    /// Seen with the same request: this was the answer.
    Replay(T),
}

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdempotencyError {
    /// The key was used with another request.
    #[error("the idempotency key was used with a different request")]
    Mismatch,
    /// The stored answer could not be read or written (a bug).
    #[error("the stored answer is unreadable")]
    Answer(#[source] serde_json::Error),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A user's key for one kind of request (`scope`), with the hash of the
/// request it came with.
#[derive(Debug)]
pub struct KeyClaim<'a> {
    /// Keys are per user.
    pub user: Uuid,
    /// The kind of request, e.g. `transfer`.
    pub scope: &'static str,
    /// The client's key.
    pub key: &'a IdempotencyKey,
    /// [`request_hash`] of the request's content.
    pub hash: String,
}

impl KeyClaim<'_> {
    /// Claims the key inside the transaction. A concurrent request with the
    /// same key waits here until the first one commits or rolls back.
    #[instrument(name = "idempotency.claim", skip_all, fields(db.system.name = "postgresql"))]
    pub async fn claim<T: DeserializeOwned>(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Claim<T>, IdempotencyError> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (user_id, scope, key, request_hash, status, response)
             VALUES ($1, $2, $3, $4, 0, 'null') ON CONFLICT DO NOTHING",
        )
        .bind(self.user)
        .bind(self.scope)
        .bind(self.key.as_str())
        .bind(&self.hash)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Claim::Fresh);
        }
        let (hash, response): (String, serde_json::Value) = sqlx::query_as(
            "SELECT request_hash, response FROM idempotency_keys WHERE user_id = $1 AND scope = $2 AND key = $3",
        )
        .bind(self.user)
        .bind(self.scope)
        .bind(self.key.as_str())
        .fetch_one(&mut *conn)
        .await?;
        if hash != self.hash {
            return Err(IdempotencyError::Mismatch);
        }
        let first = serde_json::from_value(response).map_err(IdempotencyError::Answer)?;
        Ok(Claim::Replay(first))
    }

    /// Stores `answer` (given with HTTP `status`) as the key's, in the
    /// transaction that claimed it.
    #[instrument(name = "idempotency.remember", skip_all, fields(db.system.name = "postgresql"))]
    pub async fn remember<T: Serialize>(
        &self,
        conn: &mut PgConnection,
        status: i16,
        answer: &T,
    ) -> Result<(), IdempotencyError> {
        let response = serde_json::to_value(answer).map_err(IdempotencyError::Answer)?;
        sqlx::query(
            "UPDATE idempotency_keys SET status = $4, response = $5
             WHERE user_id = $1 AND scope = $2 AND key = $3",
        )
        .bind(self.user)
        .bind(self.scope)
        .bind(self.key.as_str())
        .bind(status)
        .bind(response)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// A hash of a request's parts, each length-prefixed so that no two different
/// splits of the same text hash alike.
pub fn request_hash(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_hashes_separate_their_parts() {
        assert_ne!(request_hash(&["ab", "c"]), request_hash(&["a", "bc"]));
        assert_eq!(request_hash(&["a", "b"]), request_hash(&["a", "b"]));
    }
}
