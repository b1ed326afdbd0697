//! Start-up: wiring happens here and only here.
//!
//! - `application`: [`Application::build`] connects, prepares and binds;
//!   [`Application::run_until_stopped`] serves and shuts down in order.
//! - [`state`]: the state handlers share, and the per-feature sub-states.
//! - [`router`]: the route tree, each route's limits and cache, and the
//!   OpenAPI document.
//! - `workers`: the outbox relay, the notifier and the in-process orders
//!   service.

mod application;
pub mod router;
pub mod state;
mod workers;

use std::net::SocketAddr;

use bff_core::openapi;

pub use self::application::Application;
pub use self::router::{MetricsOn, app, metrics_app};
pub use self::state::AppState;

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// Postgres could not be prepared.
    #[error(transparent)]
    Database(#[from] crate::db::DbError),
    /// Redis could not be reached.
    #[error("cannot connect to Redis")]
    Redis(#[source] bff_core::redis_client::RedisConnectError),
    /// NATS could not be reached.
    #[error("cannot connect to NATS")]
    Nats(#[source] async_nats::ConnectError),
    /// The HTTP address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Keys or password hashing could not be set up.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthSetupError),
    /// The demo accounts could not be created.
    #[error(transparent)]
    Seed(#[from] crate::seed::SeedError),
    /// The OpenAPI document could not be built.
    #[error(transparent)]
    Docs(#[from] openapi::PublishError),
    /// The JetStream streams could not be created or updated.
    #[error("cannot set up the JetStream streams")]
    Streams(#[source] async_nats::jetstream::context::CreateStreamError),
    /// The role declarations are inconsistent (a bug).
    #[error("invalid role declarations")]
    Policy(#[source] bff_rbac::PolicyError),
    /// A setting is inconsistent.
    #[error("configuration: {0}")]
    Config(String),
    /// The in-process orders service could not start.
    #[error(transparent)]
    Orders(#[from] crate::orders::server::OrdersError),
    /// The notifier's senders are not configured properly.
    #[error("notifier")]
    Senders(#[source] crate::messaging::senders::SenderSetupError),
    /// Serving failed.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}
