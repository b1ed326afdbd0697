//! The BFF's side of the orders service: a lazily connected gRPC channel and
//! the JSON views of orders.

use std::time::Duration;

use bff_aggregate::{Call, Forward};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use uuid::Uuid;

use super::proto::{self, orders_client::OrdersClient as GrpcClient};

/// A handle on the orders service. Cheap to clone: clones share one HTTP/2
/// connection, re-established on demand after the service restarts.
#[derive(Debug, Clone)]
pub struct OrdersClient {
    grpc: GrpcClient<Channel>,
    timeout: Duration,
}

impl OrdersClient {
    /// A client of the service at `url` (`http://host:port`, or `https://` for
    /// TLS); nothing is
    /// connected until the first call, so the BFF starts while orders is down.
    /// Each call of the endpoints gets `timeout`.
    pub fn connect_lazy(url: &str, timeout: Duration) -> Result<Self, tonic::transport::Error> {
        let mut endpoint = Endpoint::from_shared(url.to_owned())?;
        if url.starts_with("https://") {
            // Across hosts the bearer tokens travel in these calls: TLS with
            // the Mozilla roots, the same trust the rest of the app uses.
            endpoint = endpoint.tls_config(ClientTlsConfig::new().with_webpki_roots())?;
        }
        let channel = endpoint
            // A dead host is noticed in one connect timeout, not the OS's minutes.
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            // Pings notice a connection that died silently (a killed peer, a
            // dropped NAT entry) before a request waits on it.
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .connect_lazy();
        Ok(Self {
            grpc: GrpcClient::new(channel),
            timeout,
        })
    }

    /// The generated client, for calls made through bff-aggregate.
    pub fn grpc(&self) -> GrpcClient<Channel> {
        self.grpc.clone()
    }

    /// A request for an endpoint call: the caller's identity and request id
    /// travel as metadata, and the call's timeout as `grpc-timeout`.
    pub fn request<T>(&self, message: T, forward: &Forward) -> tonic::Request<T> {
        let call = Call::within(self.timeout);
        bff_aggregate::grpc::request(message, forward, &call)
    }
}

/// Status of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed.
    Created,
    /// Cancelled by its owner.
    Cancelled,
}

/// One line of an order.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct OrderItemView {
    /// Stock keeping unit.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// Price of one, a decimal string at the currency's scale.
    pub unit_price: String,
}

/// An order.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct OrderView {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// `created` or `cancelled`.
    pub status: OrderStatus,
    /// ISO 4217 code.
    pub currency: String,
    /// Its lines.
    pub items: Vec<OrderItemView>,
    /// Sum of quantity × unit price, a decimal string.
    pub total: String,
    /// When it was placed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
}

/// The service answered something this BFF cannot read: a bug or a version
/// mismatch, never the client's fault.
#[derive(Debug, thiserror::Error)]
#[error("the orders service sent a malformed order: {0}")]
pub struct MalformedOrder(&'static str);

impl TryFrom<proto::Order> for OrderView {
    type Error = MalformedOrder;

    fn try_from(order: proto::Order) -> Result<Self, Self::Error> {
        let status = match proto::OrderStatus::try_from(order.status) {
            Ok(proto::OrderStatus::Created) => OrderStatus::Created,
            Ok(proto::OrderStatus::Cancelled) => OrderStatus::Cancelled,
            _ => return Err(MalformedOrder("status")),
        };
        let created_at = order
            .created_at
            .and_then(|t| {
                let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
                OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
            })
            .ok_or(MalformedOrder("created_at"))?;
        Ok(Self {
            id: order.id.parse().map_err(|_| MalformedOrder("id"))?,
            user_id: order
                .user_id
                .parse()
                .map_err(|_| MalformedOrder("user_id"))?,
            status,
            currency: order.currency,
            items: order
                .items
                .into_iter()
                .map(|item| OrderItemView {
                    sku: item.sku,
                    quantity: item.quantity,
                    unit_price: item.unit_price,
                })
                .collect(),
            total: order.total,
            created_at,
        })
    }
}

/// The backends the BFF calls for orders and loyalty, and their breakers
/// (shared by every request).
#[derive(Debug)]
pub struct Backends {
    /// The orders service.
    pub orders: OrdersClient,
    /// NATS, for the loyalty responder.
    pub nats: async_nats::Client,
    /// The loyalty subject, with the deployment's prefix.
    pub loyalty_subject: String,
    /// Breaker of the orders service.
    pub orders_breaker: bff_aggregate::CircuitBreaker,
    /// Breaker of the loyalty responder.
    pub loyalty_breaker: bff_aggregate::CircuitBreaker,
}
