//! The SQL of owner-scoped records: generic over the [`Collection`], plus
//! each collection's own inserts and updates.
//!
//! Every query carries the owner check itself (`WHERE id = $1 AND user_id = $2
//! AND deleted_at IS NULL`), so someone else's id matches nothing, exactly
//! like an id that does not exist.

use sqlx::{PgConnection, PgExecutor};
use tracing::instrument;
use uuid::Uuid;

use super::addresses::CheckedAddress;
use super::wishlist::CheckedItem;
use super::{Address, Collection, WishlistItem};

/// The live record `id`, of `owner` when given.
#[instrument(name = "records.fetch", skip_all, fields(db.system.name = "postgresql"))]
pub async fn fetch<C: Collection>(
    db: impl PgExecutor<'_>,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<Option<C>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM {} WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2) AND deleted_at IS NULL",
        C::COLUMNS,
        C::TABLE
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(owner)
        .fetch_optional(db)
        .await
}

/// `owner`'s live records in id order, after `after`, at most `limit`.
#[instrument(name = "records.page", skip_all, fields(db.system.name = "postgresql"))]
pub async fn page<C: Collection>(
    db: impl PgExecutor<'_>,
    owner: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<C>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM {} WHERE user_id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR id > $2)
         ORDER BY id LIMIT $3",
        C::COLUMNS,
        C::TABLE
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(owner)
        .bind(after)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// Soft-deletes `owner`'s live record `id`; whether there was one.
#[instrument(name = "records.soft_delete", skip_all, fields(db.system.name = "postgresql"))]
pub async fn soft_delete<C: Collection>(
    db: impl PgExecutor<'_>,
    id: Uuid,
    owner: Uuid,
) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "UPDATE {} SET deleted_at = now(), updated_at = now(), version = version + 1
         WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL",
        C::TABLE
    );
    let deleted = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(owner)
        .execute(db)
        .await?
        .rows_affected();
    Ok(deleted == 1)
}

/// Brings the deleted record `id` back; `None` when no deleted record has
/// that id.
#[instrument(name = "records.restore", skip_all, fields(db.system.name = "postgresql"))]
pub async fn restore<C: Collection>(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<C>, sqlx::Error> {
    let sql = format!(
        "UPDATE {table} SET deleted_at = NULL, updated_at = now(), version = version + 1
         WHERE id = $1 AND deleted_at IS NOT NULL RETURNING {columns}",
        table = C::TABLE,
        columns = C::COLUMNS
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The columns an [`Address`] reads, in `FromRow` order.
pub const ADDRESS_COLUMNS: &str = "id, user_id, label, country, city, street, postal_code, is_default, version, created_at, updated_at";

/// Makes room for a new default: the owner's current default stops being one.
#[instrument(name = "records.clear_default", skip_all, fields(db.system.name = "postgresql"))]
async fn clear_default(
    conn: &mut PgConnection,
    owner: Uuid,
    except: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE addresses SET is_default = false, version = version + 1, updated_at = now()
         WHERE user_id = $1 AND id <> $2 AND is_default AND deleted_at IS NULL",
    )
    .bind(owner)
    .bind(except)
    .execute(conn)
    .await
    .map(drop)
}

/// Inserts an address (every field given); a new default replaces the old one.
#[instrument(name = "records.insert_address", skip_all, fields(db.system.name = "postgresql"))]
pub async fn insert_address(
    conn: &mut PgConnection,
    owner: Uuid,
    checked: &CheckedAddress,
) -> Result<Address, sqlx::Error> {
    let id = Uuid::now_v7();
    let is_default = checked.is_default.unwrap_or(false);
    if is_default {
        clear_default(conn, owner, id).await?;
    }
    let sql = format!(
        "INSERT INTO addresses (id, user_id, label, country, city, street, postal_code, is_default)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {ADDRESS_COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(owner)
        .bind(&checked.label)
        .bind(&checked.country)
        .bind(&checked.city)
        .bind(&checked.street)
        .bind(&checked.postal_code)
        .bind(is_default)
        .fetch_one(conn)
        .await
}

/// Applies an address patch to `owner`'s live address `id` whose version is
/// one of `expected` (any when `None`); `None` when no row matched.
#[instrument(name = "records.update_address", skip_all, fields(db.system.name = "postgresql"))]
pub async fn update_address(
    conn: &mut PgConnection,
    id: Uuid,
    owner: Uuid,
    expected: Option<&[i32]>,
    checked: &CheckedAddress,
) -> Result<Option<Address>, sqlx::Error> {
    if checked.is_default == Some(true) {
        clear_default(conn, owner, id).await?;
    }
    let sql = format!(
        "UPDATE addresses SET
             label = coalesce($4, label), country = coalesce($5, country),
             city = coalesce($6, city), street = coalesce($7, street),
             postal_code = coalesce($8, postal_code), is_default = coalesce($9, is_default),
             version = version + 1, updated_at = now()
         WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL AND ($3::int[] IS NULL OR version = ANY($3))
         RETURNING {ADDRESS_COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(owner)
        .bind(expected)
        .bind(&checked.label)
        .bind(&checked.country)
        .bind(&checked.city)
        .bind(&checked.street)
        .bind(&checked.postal_code)
        .bind(checked.is_default)
        .fetch_optional(conn)
        .await
}

/// The columns a [`WishlistItem`] reads, in `FromRow` order.
pub const WISHLIST_COLUMNS: &str =
    "id, user_id, sku, note, priority, version, created_at, updated_at";

/// Inserts a wishlist item (every field given).
#[instrument(name = "records.insert_wishlist_item", skip_all, fields(db.system.name = "postgresql"))]
pub async fn insert_wishlist_item(
    conn: &mut PgConnection,
    owner: Uuid,
    checked: &CheckedItem,
) -> Result<WishlistItem, sqlx::Error> {
    let sql = format!(
        "INSERT INTO wishlist_items (id, user_id, sku, note, priority)
         VALUES ($1, $2, $3, $4, $5) RETURNING {WISHLIST_COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::now_v7())
        .bind(owner)
        .bind(&checked.sku)
        .bind(&checked.note)
        .bind(checked.priority)
        .fetch_one(conn)
        .await
}

/// Applies a wishlist patch to `owner`'s live item `id` whose version is one
/// of `expected` (any when `None`); `None` when no row matched.
#[instrument(name = "records.update_wishlist_item", skip_all, fields(db.system.name = "postgresql"))]
pub async fn update_wishlist_item(
    conn: &mut PgConnection,
    id: Uuid,
    owner: Uuid,
    expected: Option<&[i32]>,
    checked: &CheckedItem,
) -> Result<Option<WishlistItem>, sqlx::Error> {
    let sql = format!(
        "UPDATE wishlist_items SET
             sku = coalesce($4, sku), note = coalesce($5, note), priority = coalesce($6, priority),
             version = version + 1, updated_at = now()
         WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL AND ($3::int[] IS NULL OR version = ANY($3))
         RETURNING {WISHLIST_COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(owner)
        .bind(expected)
        .bind(&checked.sku)
        .bind(&checked.note)
        .bind(checked.priority)
        .fetch_optional(conn)
        .await
}
