//! The `user_identities` table.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use tracing::instrument;
use uuid::Uuid;

/// An external identity linked to an account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IdentityRecord {
    /// The account.
    pub user_id: Uuid,
    /// `google`, `facebook`, `vk`, `yandex` or `oidc`.
    pub provider: String,
    /// The email the provider gave when it was linked, if any.
    pub email: Option<String>,
    /// When it was linked.
    pub linked_at: OffsetDateTime,
}

/// The identity `(provider, subject)`, whoever holds it.
#[instrument(name = "oauth.find", skip_all, fields(db.system.name = "postgresql"))]
pub async fn find(
    db: impl PgExecutor<'_>,
    provider: &str,
    subject: &str,
) -> Result<Option<IdentityRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, provider, email, linked_at FROM user_identities
         WHERE provider = $1 AND subject = $2",
    )
    .bind(provider)
    .bind(subject)
    .fetch_optional(db)
    .await
}

/// Links `(provider, subject)` to `user_id`; `false` when the identity, or an
/// identity of this provider for this user, is already linked.
#[instrument(name = "oauth.link", skip_all, fields(db.system.name = "postgresql"))]
pub async fn link(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    provider: &str,
    subject: &str,
    email: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO user_identities (id, user_id, provider, subject, email)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(user_id)
    .bind(provider)
    .bind(subject)
    .bind(email)
    .execute(db)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The identities of `user_id`, oldest first.
#[instrument(name = "oauth.list", skip_all, fields(db.system.name = "postgresql"))]
pub async fn list(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> Result<Vec<IdentityRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, provider, email, linked_at FROM user_identities
         WHERE user_id = $1 ORDER BY linked_at, id",
    )
    .bind(user_id)
    .fetch_all(db)
    .await
}

/// Unlinks `user_id`'s identity of `provider`; `false` when there was none.
#[instrument(name = "oauth.unlink", skip_all, fields(db.system.name = "postgresql"))]
pub async fn unlink(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    provider: &str,
) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM user_identities WHERE user_id = $1 AND provider = $2")
        .bind(user_id)
        .bind(provider)
        .execute(db)
        .await?;
    Ok(deleted.rows_affected() == 1)
}

/// Unlinks an identity whose account was deleted, so it can sign up afresh.
#[instrument(name = "oauth.forget_if_orphaned", skip_all, fields(db.system.name = "postgresql"))]
pub async fn forget_if_orphaned(
    db: impl PgExecutor<'_>,
    provider: &str,
    subject: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM user_identities i USING users u
         WHERE i.provider = $1 AND i.subject = $2 AND u.id = i.user_id AND u.deleted_at IS NOT NULL",
    )
    .bind(provider)
    .bind(subject)
    .execute(db)
    .await
    .map(drop)
}

/// Locks the live account `user_id` and tells how it can sign in: whether it
/// has a password, and how many identities it has.
#[instrument(name = "oauth.lock_credentials", skip_all, fields(db.system.name = "postgresql"))]
pub async fn lock_credentials(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> Result<Option<(bool, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.password_hash IS NOT NULL,
                (SELECT count(*) FROM user_identities i WHERE i.user_id = u.id)
         FROM users u WHERE u.id = $1 AND u.deleted_at IS NULL FOR UPDATE",
    )
    .bind(user_id)
    .fetch_optional(db)
    .await
}
