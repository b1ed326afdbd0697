//! `/addresses`: postal addresses, at most one of them the default.

use bff_core::problem::FieldError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Collection, store};
use crate::http::validation::{Fields, LINE, text};

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
    #[schemars(length(max = 50), regex(pattern = LINE))]
    label: String,
    /// ISO 3166-1 alpha-2 code, e.g. `DE`.
    #[schemars(regex(pattern = COUNTRY))]
    country: String,
    /// 1 to 100 characters.
    #[schemars(length(max = 100), regex(pattern = LINE))]
    city: String,
    /// 1 to 200 characters.
    #[schemars(length(max = 200), regex(pattern = LINE))]
    street: String,
    /// 1 to 20 letters, digits, spaces and dashes.
    #[schemars(regex(pattern = POSTAL_CODE))]
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
    #[schemars(length(max = 50), regex(pattern = LINE))]
    label: Option<String>,
    /// ISO 3166-1 alpha-2 code.
    #[schemars(regex(pattern = COUNTRY))]
    country: Option<String>,
    /// 1 to 100 characters.
    #[schemars(length(max = 100), regex(pattern = LINE))]
    city: Option<String>,
    /// 1 to 200 characters.
    #[schemars(length(max = 200), regex(pattern = LINE))]
    street: Option<String>,
    /// 1 to 20 letters, digits, spaces and dashes.
    #[schemars(regex(pattern = POSTAL_CODE))]
    postal_code: Option<String>,
    /// Make it the default, or not.
    is_default: Option<bool>,
}

/// JSON Schema pattern of what [`country`] accepts (it upper-cases).
const COUNTRY: &str = "^[A-Za-z]{2}$";

/// JSON Schema pattern of what [`postal_code`] accepts: no blank code.
const POSTAL_CODE: &str = "^[A-Za-z0-9-][A-Za-z0-9 -]{0,19}$";

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

/// The validated fields of a create or patch: what is `Some` is set.
#[derive(Debug)]
pub struct CheckedAddress {
    pub(super) label: Option<String>,
    pub(super) country: Option<String>,
    pub(super) city: Option<String>,
    pub(super) street: Option<String>,
    pub(super) postal_code: Option<String>,
    pub(super) is_default: Option<bool>,
}

fn check(patch: AddressPatch) -> Result<CheckedAddress, Vec<FieldError>> {
    let mut fields = Fields::default();
    let checked = CheckedAddress {
        label: fields.check_opt("label", patch.label, |v| text(&v, 1, 50, false)),
        country: fields.check_opt("country", patch.country, country),
        city: fields.check_opt("city", patch.city, |v| text(&v, 1, 100, false)),
        street: fields.check_opt("street", patch.street, |v| text(&v, 1, 200, false)),
        postal_code: fields.check_opt("postal_code", patch.postal_code, postal_code),
        is_default: patch.is_default,
    };
    fields.errors()?;
    Ok(checked)
}

impl Collection for Address {
    const TABLE: &'static str = "addresses";
    const COLUMNS: &'static str = store::ADDRESS_COLUMNS;
    const PATH: &'static str = "addresses";
    const KIND: &'static str = "address";
    const CONFLICT: &'static str = "You already have a default address.";
    type Create = NewAddress;
    type Patch = AddressPatch;
    type Checked = CheckedAddress;

    fn id(&self) -> Uuid {
        self.id
    }

    fn version(&self) -> i32 {
        self.version
    }

    fn check_create(body: NewAddress) -> Result<CheckedAddress, Vec<FieldError>> {
        check(AddressPatch {
            label: Some(body.label),
            country: Some(body.country),
            city: Some(body.city),
            street: Some(body.street),
            postal_code: Some(body.postal_code),
            is_default: Some(body.is_default),
        })
    }

    fn check_patch(body: AddressPatch) -> Result<CheckedAddress, Vec<FieldError>> {
        check(body)
    }

    async fn insert(
        conn: &mut PgConnection,
        owner: Uuid,
        checked: &CheckedAddress,
    ) -> Result<Self, sqlx::Error> {
        store::insert_address(conn, owner, checked).await
    }

    async fn update(
        conn: &mut PgConnection,
        id: Uuid,
        owner: Uuid,
        expected: Option<&[i32]>,
        checked: &CheckedAddress,
    ) -> Result<Option<Self>, sqlx::Error> {
        store::update_address(conn, id, owner, expected, checked).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::validation::patterns::admitted_are_accepted;

    #[test]
    fn schema_patterns_admit_only_accepted_values() {
        admitted_are_accepted(COUNTRY, 2, |c| country(c.to_owned()).is_ok());
        admitted_are_accepted(POSTAL_CODE, 20, |c| postal_code(c.to_owned()).is_ok());
    }
}
