//! `/api/v1/orders`: the orders endpoints, served by the orders service over
//! gRPC with the caller's identity.

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use aide::transform::TransformOperation;
use axum::extract::{FromRef, Path, State};
use bff_core::Problem;
use bff_core::extract::{Json, Query};
use bff_core::pagination::{Page, PageParams};
use http::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;
use uuid::Uuid;

use super::client::OrderView;
use super::gateway::{OrdersGateway, PlaceOrder};
use super::proto;
use crate::currencies::{CODE_PATTERN, CurrencyCode};
use crate::http::ApiResult;
use crate::http::docs::{self, bearer, invalid};
use crate::http::extract::{CallerId, IdempotencyKeyHeader, Onward, path_id};
use crate::money::AMOUNT_PATTERN;

fn doc(op: TransformOperation<'_>) -> TransformOperation<'_> {
    bearer(op.tag("orders")).response_with::<503, Problem, _>(|r| {
        r.description("The orders service is unavailable; retry after `Retry-After`.")
    })
}

fn missing(op: TransformOperation<'_>) -> TransformOperation<'_> {
    docs::not_found(op, "No such order of yours.")
}

/// The orders endpoints.
pub fn routes<S>() -> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    OrdersGateway: FromRef<S>,
{
    ApiRouter::new()
        .api_route(
            "/api/v1/orders",
            get_with(list_orders, |op| {
                invalid(doc(op.summary("List my orders").description("Newest first.")))
            })
            .post_with(create_order, |op| {
                invalid(doc(op.summary("Place an order").description(
                    "The total is computed by the orders service with exact decimals; prices have at most the currency's decimal places. \
                     With an `Idempotency-Key` header a repeat of the same order returns the first one (201) instead of placing another, \
                     so a request that timed out can be retried safely; the same key with another order is 409.",
                )))
                .response::<201, axum::Json<OrderView>>()
                .response_with::<409, Problem, _>(|r| {
                    r.description("The `Idempotency-Key` was used for another order.")
                })
            }),
        )
        .api_route(
            "/api/v1/orders/{id}",
            get_with(get_order, |op| missing(doc(op.summary("Get one of my orders")))),
        )
        .api_route(
            "/api/v1/orders/{id}/cancel",
            post_with(cancel_order, |op| {
                missing(doc(op.summary("Cancel one of my orders").description(
                    "Returns the order; cancelling a cancelled order changes nothing.",
                )))
            }),
        )
}

/// JSON Schema pattern of a SKU, as [`super::validate`] checks it.
const SKU: &str = r"^[A-Za-z0-9._-]{1,64}$";

/// `POST /orders` body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrderRequest {
    /// ISO 4217 code of a supported currency.
    #[schemars(regex(pattern = CODE_PATTERN))]
    currency: String,
    /// 1 to 100 lines.
    #[schemars(length(min = 1, max = super::MAX_ITEMS))]
    items: Vec<NewOrderItem>,
}

/// One line of a new order.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrderItem {
    /// Stock keeping unit: 1 to 64 of `A-Z a-z 0-9 . _ -`.
    #[schemars(regex(pattern = SKU))]
    sku: String,
    /// 1 to 10000.
    #[schemars(range(min = 1, max = super::MAX_QUANTITY))]
    quantity: u32,
    /// Price of one, a decimal string (`"10.50"`), more than zero, with at
    /// most the currency's decimal places.
    #[schemars(regex(pattern = AMOUNT_PATTERN))]
    unit_price: String,
}

/// Path of one order.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct OrderPath {
    /// Order id.
    #[schemars(with = "Uuid")]
    id: String,
}

async fn create_order(
    State(orders): State<OrdersGateway>,
    caller: CallerId,
    key: IdempotencyKeyHeader,
    onward: Onward,
    Json(body): Json<NewOrderRequest>,
) -> ApiResult<(StatusCode, Json<OrderView>)> {
    let currency = CurrencyCode::parse(body.currency.trim())
        .map_err(|e| Problem::invalid_field("currency", e.to_string()))?;
    let order = PlaceOrder {
        currency: &currency,
        items: body
            .items
            .into_iter()
            .map(|item| proto::OrderItem {
                sku: item.sku,
                quantity: item.quantity,
                unit_price: item.unit_price,
            })
            .collect(),
        key: key.into_result(),
    };
    let order = orders.place(caller.0, &onward, order).await?;
    Ok((StatusCode::CREATED, Json(order)))
}

async fn list_orders(
    State(orders): State<OrdersGateway>,
    _caller: CallerId,
    onward: Onward,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Page<OrderView>>> {
    let page = params.validate::<Uuid>()?;
    let (items, next_cursor) = orders
        .list(&onward, page.limit, params.cursor.unwrap_or_default())
        .await?;
    Ok(Json(Page { items, next_cursor }))
}

async fn get_order(
    State(orders): State<OrdersGateway>,
    _caller: CallerId,
    onward: Onward,
    Path(path): Path<OrderPath>,
) -> ApiResult<Json<OrderView>> {
    let id = path_id(&path.id)?;
    Ok(Json(orders.get(&onward, id).await?))
}

async fn cancel_order(
    State(orders): State<OrdersGateway>,
    caller: CallerId,
    onward: Onward,
    Path(path): Path<OrderPath>,
) -> ApiResult<Json<OrderView>> {
    let id = path_id(&path.id)?;
    let order = orders.cancel(caller.0, &onward, id).await?;
    Ok(Json(order))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::validation::patterns::admitted_are_accepted;

    #[test]
    fn the_schema_patterns_admit_only_accepted_lines() {
        admitted_are_accepted(SKU, 64, |sku| {
            let item = super::super::ItemInput {
                sku,
                quantity: 1,
                unit_price: "1",
            };
            super::super::validate("EUR", 2, &[item]).is_ok()
        });
    }
}
