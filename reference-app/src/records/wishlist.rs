//! `/wishlist`: products a user wants, each SKU once.

use bff_core::problem::FieldError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Collection, store};
use crate::http::validation::{Fields, LINES, text};

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
    #[schemars(regex(pattern = SKU))]
    sku: String,
    /// Up to 500 characters (default empty).
    #[serde(default)]
    #[schemars(length(max = 500), regex(pattern = LINES))]
    note: String,
    /// 1 to 5 (default 3).
    #[serde(default = "default_priority")]
    #[schemars(range(min = 1, max = 5))]
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
    #[schemars(regex(pattern = SKU))]
    sku: Option<String>,
    /// New note.
    #[schemars(length(max = 500), regex(pattern = LINES))]
    note: Option<String>,
    /// New priority, 1 to 5.
    #[schemars(range(min = 1, max = 5))]
    priority: Option<i64>,
}

/// JSON Schema pattern of what [`sku`] accepts.
const SKU: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";

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

/// The validated fields of a create or patch: what is `Some` is set.
#[derive(Debug)]
pub struct CheckedItem {
    pub(super) sku: Option<String>,
    pub(super) note: Option<String>,
    pub(super) priority: Option<i16>,
}

fn check(patch: WishlistPatch) -> Result<CheckedItem, Vec<FieldError>> {
    let mut fields = Fields::default();
    let checked = CheckedItem {
        sku: fields.check_opt("sku", patch.sku, sku),
        note: fields.check_opt("note", patch.note, |v| text(&v, 0, 500, true)),
        priority: fields.check_opt("priority", patch.priority, priority),
    };
    fields.errors()?;
    Ok(checked)
}

impl Collection for WishlistItem {
    const TABLE: &'static str = "wishlist_items";
    const COLUMNS: &'static str = store::WISHLIST_COLUMNS;
    const PATH: &'static str = "wishlist";
    const KIND: &'static str = "wishlist";
    const CONFLICT: &'static str = "This SKU is already on your wishlist.";
    type Create = NewWishlistItem;
    type Patch = WishlistPatch;
    type Checked = CheckedItem;

    fn id(&self) -> Uuid {
        self.id
    }

    fn version(&self) -> i32 {
        self.version
    }

    fn check_create(body: NewWishlistItem) -> Result<CheckedItem, Vec<FieldError>> {
        check(WishlistPatch {
            sku: Some(body.sku),
            note: Some(body.note),
            priority: Some(body.priority),
        })
    }

    fn check_patch(body: WishlistPatch) -> Result<CheckedItem, Vec<FieldError>> {
        check(body)
    }

    async fn insert(
        conn: &mut PgConnection,
        owner: Uuid,
        checked: &CheckedItem,
    ) -> Result<Self, sqlx::Error> {
        store::insert_wishlist_item(conn, owner, checked).await
    }

    async fn update(
        conn: &mut PgConnection,
        id: Uuid,
        owner: Uuid,
        expected: Option<&[i32]>,
        checked: &CheckedItem,
    ) -> Result<Option<Self>, sqlx::Error> {
        store::update_wishlist_item(conn, id, owner, expected, checked).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::validation::patterns::admitted_are_accepted;

    #[test]
    fn the_sku_pattern_admits_only_accepted_skus() {
        admitted_are_accepted(SKU, 64, |s| sku(s.to_owned()).is_ok());
    }
}
