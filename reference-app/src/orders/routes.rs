//! `/api/v1/orders`: the orders endpoints, served by the orders service over
//! gRPC with the caller's identity.

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use aide::transform::TransformOperation;
use axum::extract::{Path, State};
use bff_aggregate::Forward;
use bff_auth::layer::Principal;
use bff_core::Problem;
use bff_core::extract::{Json, Query};
use bff_core::pagination::{Page, PageParams};
use http::{HeaderMap, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use uuid::Uuid;

use super::client::OrderView;
use super::{ItemInput, proto, validate};
use crate::auth::bearer;
use crate::currencies::{self, CurrencyCode};
use crate::error::ApiResult;
use crate::ids::{caller_id, path_id};
use crate::ops::{self, invalid};
use crate::startup::AppState;

fn doc(op: TransformOperation<'_>) -> TransformOperation<'_> {
    bearer(op.tag("orders")).response_with::<503, Problem, _>(|r| {
        r.description("The orders service is unavailable; retry after `Retry-After`.")
    })
}

fn missing(op: TransformOperation<'_>) -> TransformOperation<'_> {
    ops::not_found(op, "No such order of yours.")
}

/// The orders endpoints.
pub fn routes() -> ApiRouter<AppState> {
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

/// `POST /orders` body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrderRequest {
    /// ISO 4217 code of a supported currency.
    currency: String,
    /// 1 to 100 lines.
    items: Vec<NewOrderItem>,
}

/// One line of a new order.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrderItem {
    /// Stock keeping unit: 1 to 64 of `A-Z a-z 0-9 . _ -`.
    sku: String,
    /// 1 to 10000.
    quantity: u32,
    /// Price of one, a decimal string (`"10.50"`), more than zero.
    unit_price: String,
}

/// Path of one order.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct OrderPath {
    /// Order id.
    id: String,
}

async fn create_order(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Json(body): Json<NewOrderRequest>,
) -> ApiResult<(StatusCode, Json<OrderView>)> {
    let user = caller_id(&principal)?;
    let code = CurrencyCode::parse(body.currency.trim())
        .map_err(|e| Problem::invalid_field("currency", e.to_string()))?;
    let currency = currencies::find(&state.db, &code).await?.ok_or_else(|| {
        Problem::invalid_field("currency", "is not a supported ISO 4217 currency")
    })?;
    let minor_units = u32::try_from(currency.minor_units).unwrap_or(0);
    let items: Vec<ItemInput<'_>> = body
        .items
        .iter()
        .map(|item| ItemInput {
            sku: &item.sku,
            quantity: item.quantity,
            unit_price: &item.unit_price,
        })
        .collect();
    // The service checks again; checking here names every bad field at once.
    let mut errors = match validate(code.as_str(), minor_units, &items) {
        Ok(_) => Vec::new(),
        Err(errors) => errors,
    };
    let idempotency_key = crate::wallets::idempotency_key(&headers).unwrap_or_else(|message| {
        errors.push(bff_core::problem::FieldError::new(
            "Idempotency-Key",
            message,
        ));
        None
    });
    if !errors.is_empty() {
        return Err(Problem::validation(errors).into());
    }
    let request = proto::CreateOrderRequest {
        currency: code.as_str().to_owned(),
        items: body
            .items
            .into_iter()
            .map(|item| proto::OrderItem {
                sku: item.sku,
                quantity: item.quantity,
                unit_price: item.unit_price,
            })
            .collect(),
        minor_units,
        idempotency_key: idempotency_key.unwrap_or_default(),
    };
    let backends = &state.backends;
    let order = backends
        .orders
        .grpc()
        .create_order(
            backends
                .orders
                .request(request, &Forward::from_headers(&headers)),
        )
        .await?
        .into_inner();
    state.user_changed(user).await;
    Ok((StatusCode::CREATED, Json(order.try_into()?)))
}

async fn list_orders(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Page<OrderView>>> {
    caller_id(&principal)?;
    let page = params.validate::<Uuid>()?;
    let backends = &state.backends;
    let request = proto::ListOrdersRequest {
        limit: page.limit,
        cursor: params.cursor.unwrap_or_default(),
    };
    let response = backends
        .orders
        .grpc()
        .list_orders(
            backends
                .orders
                .request(request, &Forward::from_headers(&headers)),
        )
        .await?
        .into_inner();
    let items = response
        .orders
        .into_iter()
        .map(OrderView::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(Page {
        items,
        next_cursor: (!response.next_cursor.is_empty()).then_some(response.next_cursor),
    }))
}

async fn get_order(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(path): Path<OrderPath>,
) -> ApiResult<Json<OrderView>> {
    caller_id(&principal)?;
    let id = path_id(&path.id)?;
    let backends = &state.backends;
    let order = backends
        .orders
        .grpc()
        .get_order(backends.orders.request(
            proto::GetOrderRequest { id: id.to_string() },
            &Forward::from_headers(&headers),
        ))
        .await?
        .into_inner();
    Ok(Json(order.try_into()?))
}

async fn cancel_order(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(path): Path<OrderPath>,
) -> ApiResult<Json<OrderView>> {
    let user = caller_id(&principal)?;
    let id = path_id(&path.id)?;
    let backends = &state.backends;
    let order = backends
        .orders
        .grpc()
        .cancel_order(backends.orders.request(
            proto::CancelOrderRequest { id: id.to_string() },
            &Forward::from_headers(&headers),
        ))
        .await?
        .into_inner();
    state.user_changed(user).await;
    Ok(Json(order.try_into()?))
}
