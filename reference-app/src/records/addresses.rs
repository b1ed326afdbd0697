//! `/addresses`: postal addresses, at most one of them the default.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Collection, conflict_on_unique};
use crate::error::ApiResult;
use crate::validation::{Fields, text};

/// An address.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Address {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// A name for it, e.g. `Home`.
    pub label: String,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: String,
    /// City.
    pub city: String,
    /// Street and number.
    pub street: String,
    /// Postal code.
    pub postal_code: String,
    /// Whether it is the default address (at most one is).
    pub is_default: bool,
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

/// `POST /addresses` body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAddress {
    /// 1 to 50 characters.
    label: String,
    /// ISO 3166-1 alpha-2 code, e.g. `DE`.
    country: String,
    /// 1 to 100 characters.
    city: String,
    /// 1 to 200 characters.
    street: String,
    /// 1 to 20 letters, digits, spaces and dashes.
    postal_code: String,
    /// Make it the default (the previous default stops being one).
    #[serde(default)]
    is_default: bool,
}

/// `PATCH /addresses/{id}` body: what is given changes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressPatch {
    /// 1 to 50 characters.
    label: Option<String>,
    /// ISO 3166-1 alpha-2 code.
    country: Option<String>,
    /// 1 to 100 characters.
    city: Option<String>,
    /// 1 to 200 characters.
    street: Option<String>,
    /// 1 to 20 letters, digits, spaces and dashes.
    postal_code: Option<String>,
    /// Make it the default, or not.
    is_default: Option<bool>,
}

fn country(value: String) -> Result<String, &'static str> {
    let code = value.trim().to_ascii_uppercase();
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(code)
    } else {
        Err("must be an ISO 3166-1 alpha-2 code such as `DE`")
    }
}

fn postal_code(value: String) -> Result<String, &'static str> {
    let code = value.trim().to_owned();
    if (1..=20).contains(&code.len())
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
    {
        Ok(code)
    } else {
        Err("must be 1 to 20 letters, digits, spaces or dashes")
    }
}

/// The validated fields of a create or patch.
struct Checked {
    label: Option<String>,
    country: Option<String>,
    city: Option<String>,
    street: Option<String>,
    postal_code: Option<String>,
}

fn check(patch: AddressPatch) -> Result<(Checked, Option<bool>), crate::error::ApiError> {
    let mut fields = Fields::default();
    let checked = Checked {
        label: fields.check_opt("label", patch.label, |v| text(&v, 1, 50, false)),
        country: fields.check_opt("country", patch.country, country),
        city: fields.check_opt("city", patch.city, |v| text(&v, 1, 100, false)),
        street: fields.check_opt("street", patch.street, |v| text(&v, 1, 200, false)),
        postal_code: fields.check_opt("postal_code", patch.postal_code, postal_code),
    };
    fields.finish()?;
    Ok((checked, patch.is_default))
}

const COLUMNS: &str = "id, user_id, label, country, city, street, postal_code, is_default, version, created_at, updated_at";

const CONFLICT: &str = "You already have a default address.";

/// Makes room for a new default: the owner's current default stops being one.
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

impl Collection for Address {
    const TABLE: &'static str = "addresses";
    const COLUMNS: &'static str = COLUMNS;
    const PATH: &'static str = "addresses";
    const KIND: &'static str = "address";
    type Create = NewAddress;
    type Patch = AddressPatch;

    fn id(&self) -> Uuid {
        self.id
    }

    fn version(&self) -> i32 {
        self.version
    }

    async fn insert(conn: &mut PgConnection, owner: Uuid, body: NewAddress) -> ApiResult<Self> {
        let (checked, is_default) = check(AddressPatch {
            label: Some(body.label),
            country: Some(body.country),
            city: Some(body.city),
            street: Some(body.street),
            postal_code: Some(body.postal_code),
            is_default: Some(body.is_default),
        })?;
        let id = Uuid::now_v7();
        let is_default = is_default.unwrap_or(false);
        if is_default {
            clear_default(conn, owner, id).await?;
        }
        let sql = format!(
            "INSERT INTO addresses (id, user_id, label, country, city, street, postal_code, is_default)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
        );
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(owner)
            .bind(checked.label)
            .bind(checked.country)
            .bind(checked.city)
            .bind(checked.street)
            .bind(checked.postal_code)
            .bind(is_default)
            .fetch_one(conn)
            .await
            .map_err(|e| conflict_on_unique(e, CONFLICT))
    }

    async fn update(
        conn: &mut PgConnection,
        id: Uuid,
        owner: Uuid,
        expected: Option<Vec<i32>>,
        body: AddressPatch,
    ) -> ApiResult<Option<Self>> {
        let (checked, is_default) = check(body)?;
        if is_default == Some(true) {
            clear_default(conn, owner, id).await?;
        }
        let sql = format!(
            "UPDATE addresses SET
                 label = coalesce($4, label), country = coalesce($5, country),
                 city = coalesce($6, city), street = coalesce($7, street),
                 postal_code = coalesce($8, postal_code), is_default = coalesce($9, is_default),
                 version = version + 1, updated_at = now()
             WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL AND ($3::int[] IS NULL OR version = ANY($3))
             RETURNING {COLUMNS}"
        );
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(owner)
            .bind(expected)
            .bind(checked.label)
            .bind(checked.country)
            .bind(checked.city)
            .bind(checked.street)
            .bind(checked.postal_code)
            .bind(is_default)
            .fetch_optional(conn)
            .await
            .map_err(|e| conflict_on_unique(e, CONFLICT))
    }
}
