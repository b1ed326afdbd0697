//! The BFF's orders service: the orders endpoints' calls to the orders
//! service over gRPC, with the caller's identity, and what they change here.

use std::sync::Arc;

use bff_aggregate::{Call, CircuitBreaker, Forward, SourceError};
use bff_auth::mint::Minter;
use bff_core::problem::FieldError;
use uuid::Uuid;

use super::client::{Backends, OrderView};
use super::loyalty::Loyalty;
use super::{ItemInput, OrdersError, proto, validate};
use crate::auth::BackendAudiences;
use crate::currencies::{CurrencyCode, CurrencyService};
use crate::http::extract::Onward;
use crate::idempotency::IdempotencyKey;
use crate::users::ViewCache;

/// Orders, as the BFF's endpoints reach them.
#[derive(Debug, Clone)]
pub struct OrdersGateway {
    backends: Arc<Backends>,
    currencies: CurrencyService,
    views: ViewCache,
    minter: Minter,
    audiences: BackendAudiences,
}

/// An order to place, as the client sent it.
#[derive(Debug)]
pub struct PlaceOrder<'a> {
    /// The currency, a well-formed code.
    pub currency: &'a CurrencyCode,
    /// Its lines, unchecked.
    pub items: Vec<proto::OrderItem>,
    /// The `Idempotency-Key` header: absent, a key, or why it is malformed.
    pub key: Result<Option<IdempotencyKey>, &'static str>,
}

impl OrdersGateway {
    /// The gateway to `backends`; orders change the owner's cached `views`;
    /// calls carry tokens `minter` mints for each backend's audience.
    pub fn new(
        backends: Arc<Backends>,
        currencies: CurrencyService,
        views: ViewCache,
        minter: Minter,
        audiences: BackendAudiences,
    ) -> Self {
        Self {
            backends,
            currencies,
            views,
            minter,
            audiences,
        }
    }

    /// What a call to the backend of `audience` carries for `onward`: a token
    /// minted for that audience, never the caller's own.
    fn forward(&self, onward: &Onward, audience: &str) -> Result<Forward, MintFailed> {
        let token = self
            .minter
            .token(audience, &onward.subject())
            .map_err(|e| MintFailed(e.to_string()))?;
        onward
            .forward(&token)
            .map_err(|e| MintFailed(e.to_string()))
    }

    fn orders_forward(&self, onward: &Onward) -> Result<Forward, OrdersError> {
        self.forward(onward, &self.audiences.orders)
            .map_err(OrdersError::internal)
    }

    /// Places an order for `user`. The service checks it again; checking here
    /// names every bad field at once.
    pub async fn place(
        &self,
        user: Uuid,
        onward: &Onward,
        order: PlaceOrder<'_>,
    ) -> Result<OrderView, OrdersError> {
        let code = order.currency;
        let currency = self
            .currencies
            .find(code)
            .await?
            .ok_or(OrdersError::UnsupportedCurrency)?;
        let minor_units = u32::try_from(currency.minor_units).unwrap_or(0);
        let items: Vec<ItemInput<'_>> = order.items.iter().map(ItemInput::from).collect();
        let mut errors = validate(code.as_str(), minor_units, &items)
            .err()
            .unwrap_or_default();
        let key = order.key.unwrap_or_else(|message| {
            errors.push(FieldError::new("Idempotency-Key", message));
            None
        });
        if !errors.is_empty() {
            return Err(OrdersError::Invalid(errors));
        }
        let request = proto::CreateOrderRequest {
            currency: code.as_str().to_owned(),
            items: order.items,
            minor_units,
            idempotency_key: key.map(IdempotencyKey::into_string).unwrap_or_default(),
        };
        let forward = self.orders_forward(onward)?;
        let orders = &self.backends.orders;
        let created = orders
            .grpc()
            .create_order(orders.request(request, &forward))
            .await?
            .into_inner();
        self.views.user_changed(user).await;
        Ok(created.try_into()?)
    }

    /// A page of the caller's orders, newest first, and the next page's cursor.
    pub async fn list(
        &self,
        onward: &Onward,
        limit: u32,
        cursor: String,
    ) -> Result<(Vec<OrderView>, Option<String>), OrdersError> {
        let forward = self.orders_forward(onward)?;
        let orders = &self.backends.orders;
        let response = orders
            .grpc()
            .list_orders(orders.request(proto::ListOrdersRequest { limit, cursor }, &forward))
            .await?
            .into_inner();
        let items = response
            .orders
            .into_iter()
            .map(OrderView::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next = (!response.next_cursor.is_empty()).then_some(response.next_cursor);
        Ok((items, next))
    }

    /// One of the caller's orders.
    pub async fn get(&self, onward: &Onward, id: Uuid) -> Result<OrderView, OrdersError> {
        let forward = self.orders_forward(onward)?;
        let orders = &self.backends.orders;
        let order = orders
            .grpc()
            .get_order(orders.request(proto::GetOrderRequest { id: id.to_string() }, &forward))
            .await?
            .into_inner();
        Ok(order.try_into()?)
    }

    /// Cancels one of `user`'s orders.
    pub async fn cancel(
        &self,
        user: Uuid,
        onward: &Onward,
        id: Uuid,
    ) -> Result<OrderView, OrdersError> {
        let forward = self.orders_forward(onward)?;
        let orders = &self.backends.orders;
        let order = orders
            .grpc()
            .cancel_order(
                orders.request(proto::CancelOrderRequest { id: id.to_string() }, &forward),
            )
            .await?
            .into_inner();
        self.views.user_changed(user).await;
        Ok(order.try_into()?)
    }

    /// The caller's `limit` newest orders, as a source of an aggregate: the
    /// call's remaining time travels as `grpc-timeout`, and a malformed order
    /// is a permanent error.
    pub fn recent(
        &self,
        limit: u32,
        onward: &Onward,
        call: &Call,
    ) -> impl Future<Output = Result<Vec<OrderView>, SourceError>> + Send + use<> {
        let mut grpc = self.backends.orders.grpc();
        let forward = self.forward(onward, &self.audiences.orders);
        let request = forward.map(|forward| {
            bff_aggregate::grpc::request(
                proto::ListOrdersRequest {
                    limit,
                    cursor: String::new(),
                },
                &forward,
                call,
            )
        });
        async move {
            let request = request.map_err(SourceError::permanent)?;
            let response = grpc
                .list_orders(request)
                .await
                .map_err(bff_aggregate::grpc::status_error)?;
            response
                .into_inner()
                .orders
                .into_iter()
                .map(|order| OrderView::try_from(order).map_err(SourceError::permanent))
                .collect()
        }
    }

    /// The caller's loyalty points and tier from the loyalty responder (NATS
    /// request-reply), as a source of an aggregate.
    pub fn loyalty(
        &self,
        onward: &Onward,
        call: &Call,
    ) -> impl Future<Output = Result<Loyalty, SourceError>> + Send + use<> {
        let nats = self.backends.nats.clone();
        let subject = self.backends.loyalty_subject.clone();
        let forward = self.forward(onward, &self.audiences.loyalty);
        let call = call.clone();
        async move {
            let forward = forward.map_err(SourceError::permanent)?;
            let reply =
                bff_aggregate::nats::request(&nats, subject, bytes::Bytes::new(), &forward, &call)
                    .await?;
            serde_json::from_slice::<Loyalty>(&reply.payload).map_err(SourceError::permanent)
        }
    }

    /// The circuit breakers of the orders service and of the loyalty responder.
    pub fn breakers(&self) -> (&CircuitBreaker, &CircuitBreaker) {
        (
            &self.backends.orders_breaker,
            &self.backends.loyalty_breaker,
        )
    }
}

/// A backend token could not be minted (a broken signing key).
#[derive(Debug, thiserror::Error)]
#[error("could not mint a backend token: {0}")]
pub struct MintFailed(String);
