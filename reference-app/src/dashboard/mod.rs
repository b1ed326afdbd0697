//! `GET /api/v1/dashboard`: one payload from four backends, asked at once.
//!
//! - `profile` (Postgres) is required: without it there is no dashboard, 503.
//! - `wallets` (Postgres), `recent_orders` (the orders service over gRPC) and
//!   `loyalty` (NATS request-reply) are optional: a slow or failed one is `null`
//!   and named in `meta`, and `complete` is false.
//!
//! Each source has its own deadline inside the request's; the orders and
//! loyalty backends each have a circuit breaker, so a dead one is skipped at
//! once instead of waited on by every request. Recent orders are an idempotent
//! read: retried once after a quick failure, and hedged when configured.
//! Complete dashboards are cached per user for a few seconds (invalidated by
//! the writes that change them); partial ones never are.
//!
//! [`service`] assembles the parts through the other features' services;
//! [`routes`] maps the result, `meta` and `X-Bff-Complete` included.

pub mod config;
mod error;
pub mod routes;
pub mod service;

use bff_aggregate::Meta;
use schemars::JsonSchema;
use serde::Serialize;

pub use self::config::DashboardSettings;
pub use self::error::DashboardError;
pub use self::service::DashboardService;
use crate::orders::client::OrderView;
use crate::orders::loyalty::Loyalty;
use crate::users::UserView;
use crate::wallets::WalletView;

/// The response header that mirrors `meta.complete`.
pub const COMPLETE_HEADER: &str = "x-bff-complete";

/// The dashboard.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Dashboard {
    /// The caller's profile.
    pub profile: UserView,
    /// The caller's wallets (up to 20); `null` when unavailable.
    pub wallets: Option<Vec<WalletView>>,
    /// The caller's latest orders (up to 5); `null` when unavailable.
    pub recent_orders: Option<Vec<OrderView>>,
    /// Loyalty points and tier; `null` when unavailable.
    pub loyalty: Option<Loyalty>,
    /// How each source fared; `complete` is false when any part is missing.
    pub meta: Meta,
}
