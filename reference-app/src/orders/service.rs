//! The gRPC `bff.orders.v1.Orders` service.

use bff_core::pagination::{Page, PageParams};
use sqlx::PgPool;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};
use uuid::Uuid;

use super::caller::caller;
use super::proto::{self, orders_server::Orders};
use super::store::{self, OrderRecord};
use super::{ItemInput, validate};
use crate::idempotency::IdempotencyKey;
use crate::messaging::outbox::OutboxSignal;

/// Metadata key naming the field an `INVALID_ARGUMENT` is about.
pub const FIELD_METADATA: &str = "bff-field";

/// The service: a pool on the `orders` schema. Callers are authenticated by
/// the server's layer ([`CallerVerifier::layer`](super::caller::CallerVerifier::layer));
/// each method acts for the caller it put in the request.
#[derive(Debug, Clone)]
pub struct OrdersService {
    db: PgPool,
    outbox: OutboxSignal,
}

impl OrdersService {
    /// Serves orders from `db`, and wakes `outbox`'s relay after each event
    /// written.
    pub fn new(db: PgPool, outbox: OutboxSignal) -> Self {
        Self { db, outbox }
    }
}

/// An `INVALID_ARGUMENT` about `field`.
fn invalid(field: &str, message: impl Into<String>) -> Status {
    let mut metadata = MetadataMap::new();
    if let Ok(value) = field.parse() {
        metadata.insert(FIELD_METADATA, value);
    }
    Status::with_metadata(Code::InvalidArgument, message, metadata)
}

/// Storage failures: unavailable when Postgres is out of reach (the caller may
/// retry), internal otherwise; the detail is logged here, never sent.
fn storage(error: sqlx::Error) -> Status {
    tracing::error!(error = %bff_core::problem::ErrorChain(&error), "orders storage failed");
    if crate::db::is_unavailable(&error) {
        Status::unavailable("the orders database is unavailable")
    } else {
        Status::internal("internal error")
    }
}

fn order_id(id: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(id).map_err(|_| invalid("id", "is not an order id"))
}

fn not_found() -> Status {
    Status::not_found("no such order")
}

/// The wire form of an order.
pub fn to_proto(order: OrderRecord) -> proto::Order {
    let money = |value| crate::money::format(value, order.minor_units);
    proto::Order {
        id: order.id.to_string(),
        user_id: order.user_id.to_string(),
        status: match order.status.as_str() {
            "cancelled" => proto::OrderStatus::Cancelled,
            _ => proto::OrderStatus::Created,
        } as i32,
        currency: order.currency.clone(),
        items: order
            .items
            .iter()
            .map(|item| proto::OrderItem {
                sku: item.sku.clone(),
                quantity: u32::try_from(item.quantity).unwrap_or(0),
                unit_price: money(item.unit_price),
            })
            .collect(),
        total: money(order.total),
        created_at: Some(prost_types::Timestamp {
            seconds: order.created_at.unix_timestamp(),
            nanos: i32::try_from(order.created_at.nanosecond()).unwrap_or(0),
        }),
    }
}

#[tonic::async_trait]
impl Orders for OrdersService {
    async fn create_order(
        &self,
        request: Request<proto::CreateOrderRequest>,
    ) -> Result<Response<proto::Order>, Status> {
        let user = caller(&request)?;
        let body = request.into_inner();
        let items: Vec<ItemInput<'_>> = body.items.iter().map(ItemInput::from).collect();
        // The currency and its scale are the service's own, never the caller's:
        // a caller's scale that differs is refused, not believed.
        let minor_units = store::currency_scale(&self.db, &body.currency)
            .await
            .map_err(storage)?
            .ok_or_else(|| invalid("currency", "is not a supported currency"))?;
        if body.minor_units != minor_units {
            return Err(invalid(
                "currency",
                format!("has {minor_units} decimal places, not {}", body.minor_units),
            ));
        }
        let order = validate(&body.currency, minor_units, &items).map_err(|errors| match errors
            .first()
        {
            Some(first) => invalid(&first.field, first.message.clone()),
            None => Status::invalid_argument("invalid order"),
        })?;
        let idempotency = match body.idempotency_key.as_str() {
            "" => None,
            key => {
                let key = IdempotencyKey::parse(key)
                    .map_err(|message| invalid("Idempotency-Key", message))?;
                Some(store::Idempotency {
                    key: key.into_string(),
                    hash: order.content_hash(),
                })
            }
        };
        match store::create(&self.db, user, order, idempotency.as_ref())
            .await
            .map_err(storage)?
        {
            store::Placed::New(created) => {
                self.outbox.wake();
                tracing::info!(order_id = %created.id, user_id = %user, "order created");
                Ok(Response::new(to_proto(created)))
            }
            store::Placed::Replayed(first) => Ok(Response::new(to_proto(first))),
            store::Placed::KeyReused => Err(Status::already_exists(
                "the idempotency key was used for another order",
            )),
        }
    }

    async fn get_order(
        &self,
        request: Request<proto::GetOrderRequest>,
    ) -> Result<Response<proto::Order>, Status> {
        let user = caller(&request)?;
        let id = order_id(&request.get_ref().id)?;
        match store::get(&self.db, user, id).await.map_err(storage)? {
            Some(order) => Ok(Response::new(to_proto(order))),
            None => Err(not_found()),
        }
    }

    async fn list_orders(
        &self,
        request: Request<proto::ListOrdersRequest>,
    ) -> Result<Response<proto::ListOrdersResponse>, Status> {
        let user = caller(&request)?;
        let body = request.into_inner();
        let params = PageParams {
            limit: (body.limit != 0).then_some(body.limit),
            cursor: (!body.cursor.is_empty()).then_some(body.cursor),
        };
        let page = params.validate::<Uuid>().map_err(|problem| {
            let (field, message) = problem
                .errors
                .first()
                .map(|e| (e.field.clone(), e.message.clone()))
                .unwrap_or_else(|| ("cursor".to_owned(), "is invalid".to_owned()));
            invalid(&field, message)
        })?;
        let rows = store::list(&self.db, user, page.after, page.fetch_limit())
            .await
            .map_err(storage)?;
        let page = Page::from_rows(rows, page.limit, |last| last.id);
        Ok(Response::new(proto::ListOrdersResponse {
            orders: page.items.into_iter().map(to_proto).collect(),
            next_cursor: page.next_cursor.unwrap_or_default(),
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<proto::CancelOrderRequest>,
    ) -> Result<Response<proto::Order>, Status> {
        let user = caller(&request)?;
        let id = order_id(&request.get_ref().id)?;
        match store::cancel(&self.db, user, id).await.map_err(storage)? {
            Some(order) => {
                self.outbox.wake();
                Ok(Response::new(to_proto(order)))
            }
            None => Err(not_found()),
        }
    }
}
