//! `GET /currencies` and `GET /currencies/{code}`, mounted under `/api/v1`.

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::extract::{FromRef, Path, State};
use bff_core::Problem;
use bff_core::extract::{Json, Query};
use bff_core::pagination::{Page, PageParams};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Currency, CurrencyCode, CurrencyService};
use crate::http::ApiResult;
use crate::http::docs::api;

/// `GET /currencies` and `GET /currencies/{code}`.
pub fn routes<S>() -> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    CurrencyService: FromRef<S>,
{
    ApiRouter::new()
        .api_route(
            "/currencies",
            get_with(list_currencies, |op| {
                api(op)
                    .tag("currencies")
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
                api(op)
                    .tag("currencies")
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
    State(currencies): State<CurrencyService>,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Page<Currency>>> {
    let request = params.validate::<CurrencyCode>()?;
    let rows = currencies
        .list(request.after.as_ref(), request.fetch_limit())
        .await?;
    // Cursor values come from this table, whose check constraint admits only valid codes.
    Ok(Json(Page::from_rows(rows, request.limit, |last| {
        last.code.clone()
    })))
}

/// Path of a single currency.
#[derive(Debug, Deserialize, JsonSchema)]
struct CurrencyPath {
    /// ISO 4217 alphabetic code, e.g. `EUR`.
    #[schemars(regex(pattern = super::CODE_PATTERN))]
    code: String,
}

async fn get_currency(
    State(currencies): State<CurrencyService>,
    Path(path): Path<CurrencyPath>,
) -> ApiResult<Json<Currency>> {
    let code = CurrencyCode::parse(&path.code)
        .map_err(|e| Problem::invalid_field("code", e.to_string()))?;
    Ok(Json(currencies.get(&code).await?))
}
