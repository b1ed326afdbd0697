//! `/wishlist`: products a user wants, each SKU once.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Collection, conflict_on_unique};
use crate::error::ApiResult;
use crate::validation::{Fields, text};

/// A wishlist item.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct WishlistItem {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Product SKU.
    pub sku: String,
    /// Free text, up to 500 characters.
    pub note: String,
    /// 1 (lowest) to 5 (highest).
    pub priority: i16,
    /// Grows with each write; the `ETag`.
    pub version: i32,
    /// Creation time (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
    /// Last change (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub updated_at: OffsetDateTime,
}

/// `POST /wishlist` body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWishlistItem {
    /// 1 to 64 letters, digits, dots, dashes and underscores, starting with a
    /// letter or digit.
    sku: String,
    /// Up to 500 characters (default empty).
    #[serde(default)]
    note: String,
    /// 1 to 5 (default 3).
    #[serde(default = "default_priority")]
    priority: i64,
}

fn default_priority() -> i64 {
    3
}

/// `PATCH /wishlist/{id}` body: what is given changes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WishlistPatch {
    /// New SKU.
    sku: Option<String>,
    /// New note.
    note: Option<String>,
    /// New priority, 1 to 5.
    priority: Option<i64>,
}

fn sku(value: String) -> Result<String, &'static str> {
    let sku = value.trim();
    let mut chars = sku.chars();
    let valid = (1..=64).contains(&sku.len())
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(sku.to_owned())
    } else {
        Err(
            "must be 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit",
        )
    }
}

fn priority(value: i64) -> Result<i16, &'static str> {
    match i16::try_from(value) {
        Ok(p @ 1..=5) => Ok(p),
        _ => Err("must be 1 to 5"),
    }
}

struct Checked {
    sku: Option<String>,
    note: Option<String>,
    priority: Option<i16>,
}

fn check(patch: WishlistPatch) -> Result<Checked, crate::error::ApiError> {
    let mut fields = Fields::default();
    let checked = Checked {
        sku: fields.check_opt("sku", patch.sku, sku),
        note: fields.check_opt("note", patch.note, |v| text(&v, 0, 500, true)),
        priority: fields.check_opt("priority", patch.priority, priority),
    };
    fields.finish()?;
    Ok(checked)
}

const COLUMNS: &str = "id, user_id, sku, note, priority, version, created_at, updated_at";

const CONFLICT: &str = "This SKU is already on your wishlist.";

impl Collection for WishlistItem {
    const TABLE: &'static str = "wishlist_items";
    const COLUMNS: &'static str = COLUMNS;
    const PATH: &'static str = "wishlist";
    const KIND: &'static str = "wishlist";
    type Create = NewWishlistItem;
    type Patch = WishlistPatch;

    fn id(&self) -> Uuid {
        self.id
    }

    fn version(&self) -> i32 {
        self.version
    }

    async fn insert(
        conn: &mut PgConnection,
        owner: Uuid,
        body: NewWishlistItem,
    ) -> ApiResult<Self> {
        let checked = check(WishlistPatch {
            sku: Some(body.sku),
            note: Some(body.note),
            priority: Some(body.priority),
        })?;
        let sql = format!(
            "INSERT INTO wishlist_items (id, user_id, sku, note, priority)
             VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        );
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(Uuid::now_v7())
            .bind(owner)
            .bind(checked.sku)
            .bind(checked.note)
            .bind(checked.priority)
            .fetch_one(conn)
            .await
            .map_err(|e| conflict_on_unique(e, CONFLICT))
    }

    async fn update(
        conn: &mut PgConnection,
        id: Uuid,
        owner: Uuid,
        expected: Option<Vec<i32>>,
        body: WishlistPatch,
    ) -> ApiResult<Option<Self>> {
        let checked = check(body)?;
        let sql = format!(
            "UPDATE wishlist_items SET
                 sku = coalesce($4, sku), note = coalesce($5, note), priority = coalesce($6, priority),
                 version = version + 1, updated_at = now()
             WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL AND ($3::int[] IS NULL OR version = ANY($3))
             RETURNING {COLUMNS}"
        );
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(owner)
            .bind(expected)
            .bind(checked.sku)
            .bind(checked.note)
            .bind(checked.priority)
            .fetch_optional(conn)
            .await
            .map_err(|e| conflict_on_unique(e, CONFLICT))
    }
}
