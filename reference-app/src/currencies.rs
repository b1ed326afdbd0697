//! ISO 4217 currencies: the reference table money amounts are checked against.

use std::fmt;

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::extract::{Path, State};
use bff_core::Problem;
use bff_core::extract::{Json, Query};
use bff_core::pagination::{Page, PageParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::error::ApiResult;
use crate::startup::AppState;

/// An ISO 4217 alphabetic code: exactly three upper-case ASCII letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String", description = "ISO 4217 alphabetic code, e.g. `EUR`.")]
pub struct CurrencyCode(String);

/// The text is not an ISO 4217 code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("must be an ISO 4217 code: three upper-case letters such as `EUR`")]
pub struct InvalidCurrencyCode;

impl CurrencyCode {
    /// Parses a code.
    pub fn parse(code: &str) -> Result<Self, InvalidCurrencyCode> {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(code.to_owned()))
        } else {
            Err(InvalidCurrencyCode)
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CurrencyCode {
    type Error = InvalidCurrencyCode;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<CurrencyCode> for String {
    fn from(code: CurrencyCode) -> Self {
        code.0
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Currency {
    /// ISO 4217 alphabetic code.
    pub code: String,
    /// English name.
    pub name: String,
    /// Decimal places an amount in this currency may have (2 for EUR, 0 for JPY).
    pub minor_units: i16,
}

/// Currencies in code order, after `after` if given, at most `limit` rows.
pub async fn list(
    db: &PgPool,
    after: Option<&CurrencyCode>,
    limit: i64,
) -> Result<Vec<Currency>, sqlx::Error> {
    sqlx::query_as(
        "SELECT code, name, minor_units FROM currencies WHERE ($1::text IS NULL OR code > $1) ORDER BY code LIMIT $2",
    )
    .bind(after.map(CurrencyCode::as_str))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// One currency by code.
pub async fn find(db: &PgPool, code: &CurrencyCode) -> Result<Option<Currency>, sqlx::Error> {
    sqlx::query_as("SELECT code, name, minor_units FROM currencies WHERE code = $1")
        .bind(code.as_str())
        .fetch_optional(db)
        .await
}

/// `GET /currencies` and `GET /currencies/{code}`.
pub fn routes() -> ApiRouter<AppState> {
    ApiRouter::new()
        .api_route(
            "/currencies",
            get_with(list_currencies, |op| {
                op.tag("currencies")
                    .summary("List currencies")
                    .description("The ISO 4217 currencies the service accepts, in code order.")
                    .response_with::<422, Problem, _>(|r| {
                        r.description("`limit` or `cursor` is not valid.")
                    })
            }),
        )
        .api_route(
            "/currencies/{code}",
            get_with(get_currency, |op| {
                op.tag("currencies")
                    .summary("Get a currency")
                    .response_with::<404, Problem, _>(|r| {
                        r.description("No currency has this code.")
                    })
                    .response_with::<422, Problem, _>(|r| {
                        r.description("The code is not an ISO 4217 code.")
                    })
            }),
        )
}

async fn list_currencies(
    State(state): State<AppState>,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Page<Currency>>> {
    let request = params.validate::<CurrencyCode>()?;
    let rows = list(&state.db, request.after.as_ref(), request.fetch_limit()).await?;
    // Cursor values come from this table, whose check constraint admits only valid codes.
    Ok(Json(Page::from_rows(rows, request.limit, |last| {
        last.code.clone()
    })))
}

/// Path of a single currency.
#[derive(Debug, Deserialize, JsonSchema)]
struct CurrencyPath {
    /// ISO 4217 alphabetic code, e.g. `EUR`.
    code: String,
}

async fn get_currency(
    State(state): State<AppState>,
    Path(path): Path<CurrencyPath>,
) -> ApiResult<Json<Currency>> {
    let code = CurrencyCode::parse(&path.code)
        .map_err(|e| Problem::invalid_field("code", e.to_string()))?;
    let currency = find(&state.db, &code)
        .await?
        .ok_or_else(Problem::not_found)?;
    Ok(Json(currency))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_three_upper_case_letters() {
        assert!(CurrencyCode::parse("EUR").is_ok());
        for bad in ["eur", "EU", "EURO", "E1R", "", "ÉUR"] {
            assert!(CurrencyCode::parse(bad).is_err(), "{bad}");
        }
    }
}
