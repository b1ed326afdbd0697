//! The `users` table.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use tracing::instrument;
use uuid::Uuid;

use crate::identity::{Identifier, Role};

/// A live (not soft-deleted) account as stored. Its `Debug` output leaves the
/// password hash out.
#[derive(Clone, sqlx::FromRow)]
pub struct UserRecord {
    /// Id.
    pub id: Uuid,
    /// Email, lower-cased.
    pub email: Option<String>,
    /// Phone, E.164.
    pub phone: Option<String>,
    /// Display name.
    pub name: String,
    /// Role, as stored.
    pub role: String,
    /// PHC string; `None` for an account made by social login that has not
    /// set a password.
    pub password_hash: Option<String>,
    /// When the email was verified.
    pub email_verified_at: Option<OffsetDateTime>,
    /// When the phone was verified.
    pub phone_verified_at: Option<OffsetDateTime>,
    /// When the account was blocked, if it is.
    pub blocked_at: Option<OffsetDateTime>,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("blocked", &self.blocked_at.is_some())
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, email, phone, name, role, password_hash, email_verified_at, phone_verified_at, blocked_at, created_at";

/// The live account with this identifier.
#[instrument(name = "users.find_by_identifier", skip_all, fields(db.system.name = "postgresql"))]
pub async fn find_by_identifier(
    db: impl PgExecutor<'_>,
    identifier: &Identifier,
) -> Result<Option<UserRecord>, sqlx::Error> {
    let (column, value) = match identifier {
        Identifier::Email(email) => ("email", email.as_str()),
        Identifier::Phone(phone) => ("phone", phone.as_str()),
    };
    let sql = format!("SELECT {COLUMNS} FROM users WHERE {column} = $1 AND deleted_at IS NULL");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(value)
        .fetch_optional(db)
        .await
}

/// The live account with this id.
#[instrument(name = "users.find_by_id", skip_all, fields(db.system.name = "postgresql"))]
pub async fn find_by_id(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<UserRecord>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The live account with this email, locked for update (so two sign-ins
/// deciding about the same address queue).
#[instrument(name = "users.lock_by_email", skip_all, fields(db.system.name = "postgresql"))]
pub async fn lock_by_email(
    db: impl PgExecutor<'_>,
    email: &str,
) -> Result<Option<UserRecord>, sqlx::Error> {
    let sql =
        format!("SELECT {COLUMNS} FROM users WHERE email = $1 AND deleted_at IS NULL FOR UPDATE");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(email)
        .fetch_optional(db)
        .await
}

/// The live accounts among `ids`, locked for update in id order (so two
/// transactions locking the same accounts queue instead of deadlocking).
#[instrument(name = "users.lock_for_update", skip_all, fields(db.system.name = "postgresql"))]
pub async fn lock_for_update(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
) -> Result<Vec<UserRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM users WHERE id = ANY($1) AND deleted_at IS NULL ORDER BY id FOR UPDATE"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(ids)
        .fetch_all(db)
        .await
}

/// Replaces the password hash.
#[instrument(name = "users.set_password_hash", skip_all, fields(db.system.name = "postgresql"))]
pub async fn set_password_hash(
    db: impl PgExecutor<'_>,
    id: Uuid,
    hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .bind(hash)
        .execute(db)
        .await
        .map(drop)
}

/// Renames the account; `None` when it no longer exists.
#[instrument(name = "users.set_name", skip_all, fields(db.system.name = "postgresql"))]
pub async fn set_name(
    db: impl PgExecutor<'_>,
    id: Uuid,
    name: &str,
) -> Result<Option<UserRecord>, sqlx::Error> {
    let sql = format!(
        "UPDATE users SET name = $2, updated_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(name)
        .fetch_optional(db)
        .await
}

/// An account to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Email, already normalised.
    pub email: Option<String>,
    /// Phone, already normalised.
    pub phone: Option<String>,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// PHC string; `None` for an account without a password.
    pub password_hash: Option<String>,
    /// Whether the identifier it was created with is verified.
    pub verified: bool,
}

/// Creates the account unless a live one has its email or phone; returns it if created.
#[instrument(name = "users.insert_if_absent", skip_all, fields(db.system.name = "postgresql"))]
pub async fn insert_if_absent(
    db: impl PgExecutor<'_>,
    user: &NewUser,
) -> Result<Option<UserRecord>, sqlx::Error> {
    let sql = format!(
        "INSERT INTO users (id, email, phone, name, role, password_hash, email_verified_at, phone_verified_at)
         VALUES ($1, $2, $3, $4, $5, $6,
                 CASE WHEN $7 AND $2::text IS NOT NULL THEN now() END,
                 CASE WHEN $7 AND $3::text IS NOT NULL THEN now() END)
         ON CONFLICT DO NOTHING
         RETURNING {COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::now_v7())
        .bind(&user.email)
        .bind(&user.phone)
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(user.verified)
        .fetch_optional(db)
        .await
}

/// Live users, newest id first after `after`, optionally of one role and
/// matching `q` (a case-insensitive substring of email, phone or name).
#[instrument(name = "users.search", skip_all, fields(db.system.name = "postgresql"))]
pub async fn search(
    db: impl PgExecutor<'_>,
    role: Option<Role>,
    q: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<UserRecord>, sqlx::Error> {
    // LIKE wildcards in the search text are matched literally.
    let pattern = q.map(|q| {
        let escaped = q
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    let sql = format!(
        "SELECT {COLUMNS} FROM users
         WHERE deleted_at IS NULL
           AND ($1::uuid IS NULL OR id < $1)
           AND ($2::text IS NULL OR role = $2)
           AND ($3::text IS NULL OR email ILIKE $3 OR phone ILIKE $3 OR name ILIKE $3)
         ORDER BY id DESC
         LIMIT $4"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(after)
        .bind(role.map(Role::as_str))
        .bind(pattern)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// Sets the role; `None` when the account no longer exists.
#[instrument(name = "users.set_role", skip_all, fields(db.system.name = "postgresql"))]
pub async fn set_role(
    db: impl PgExecutor<'_>,
    id: Uuid,
    role: Role,
) -> Result<Option<UserRecord>, sqlx::Error> {
    let sql = format!(
        "UPDATE users SET role = $2, updated_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(role.as_str())
        .fetch_optional(db)
        .await
}

/// Blocks (keeping the first block time) or unblocks; `None` when the account
/// no longer exists.
#[instrument(name = "users.set_blocked", skip_all, fields(db.system.name = "postgresql"))]
pub async fn set_blocked(
    db: impl PgExecutor<'_>,
    id: Uuid,
    blocked: bool,
) -> Result<Option<UserRecord>, sqlx::Error> {
    let sql = format!(
        "UPDATE users SET blocked_at = CASE WHEN $2 THEN coalesce(blocked_at, now()) END, updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(blocked)
        .fetch_optional(db)
        .await
}
