//! Running the orders service: its schema, its gRPC server (with the health and
//! reflection services), the loyalty responder and its outbox relay.

use std::net::SocketAddr;
use std::time::Duration;

use bff_core::request_id::SetRequestIdLayer;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use super::caller::CallerVerifier;
use super::config::OrdersArgs;
use super::loyalty::LoyaltyResponder;
use super::proto::{self, orders_server::OrdersServer as GrpcOrders};
use super::revocations::Revocations;
use super::service::OrdersService;
use crate::config::Profile;
use crate::db::DatabaseArgs;
use crate::db::{self, DbError};
use crate::messaging::Topology;
use crate::messaging::outbox::{OutboxSignal, Relay, RelayConfig};

/// The orders service's migrations (`reference-app/orders-migrations`), kept in
/// its own schema with their own bookkeeping table.
pub static MIGRATOR: Migrator = sqlx::migrate!("./orders-migrations");

/// The Postgres schema of the orders service.
pub const SCHEMA: &str = "orders";

/// Why the orders service could not start or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrdersError {
    /// A setting is not usable.
    #[error("{0}")]
    Config(String),
    /// Its database could not be prepared.
    #[error(transparent)]
    Database(#[from] DbError),
    /// NATS could not be reached.
    #[error("cannot connect to NATS")]
    Nats(#[source] async_nats::ConnectError),
    /// The JetStream streams could not be set up.
    #[error("cannot set up the JetStream streams")]
    Streams(#[source] async_nats::jetstream::context::CreateStreamError),
    /// The gRPC address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The reflection service could not read the descriptors (a build bug).
    #[error("cannot build the reflection service")]
    Reflection(#[source] tonic_reflection::server::Error),
    /// Serving failed.
    #[error("the gRPC server failed")]
    Serve(#[source] tonic::transport::Error),
}

/// Connects a pool whose connections work in the `orders` schema, creating the
/// database and the schema if they are missing; migrations are applied when
/// `migrate` is set, and otherwise must be applied already.
pub async fn connect(args: &DatabaseArgs, migrate: bool) -> Result<PgPool, DbError> {
    let url = args.database_url.expose_secret();
    let options = db::connect_options(args, "bff-orders")?.options([("search_path", SCHEMA)]);
    db::create_if_missing(url).await?;
    let pool = db::pool_options(args)
        .connect_with(options)
        .await
        .map_err(DbError::Connect)?;
    if migrate {
        match sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {SCHEMA}"
        )))
        .execute(&pool)
        .await
        {
            Ok(_) => {}
            // Another instance created it at the same moment.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {}
            Err(error) => return Err(DbError::Connect(error)),
        }
        db::run_migrations(&pool, &MIGRATOR).await?;
    } else {
        db::ensure_applied(&pool, &MIGRATOR).await?;
    }
    Ok(pool)
}

/// What the orders service runs with.
#[derive(Debug)]
pub struct OrdersSetup {
    /// A pool from [`connect`].
    pub db: PgPool,
    /// NATS, for the loyalty responder and the relay.
    pub nats: async_nats::Client,
    /// Stream and subject names.
    pub topology: Topology,
    /// Verifies the tokens of gRPC callers (minted for the orders audience).
    pub callers: CallerVerifier,
    /// Verifies the tokens of loyalty requests (minted for the loyalty audience).
    pub loyalty_callers: CallerVerifier,
    /// The outbox relay's settings; `None` leaves relaying to another instance.
    pub relay: Option<RelayConfig>,
    /// Whether this instance answers loyalty requests too.
    pub loyalty: bool,
    /// The deny-list the callers' verifiers consult; followed from the BFF's
    /// revocation events while the server runs.
    pub revocations: Revocations,
    /// Whether gRPC reflection lists the services (off in production unless
    /// asked for: it maps the API for anyone who reaches the port).
    pub reflection: bool,
    /// Where gRPC is served.
    pub listener: TcpListener,
    /// How long in-flight calls may finish after the stop signal.
    pub shutdown_timeout: Duration,
}

/// The orders service, bound and ready to run.
#[derive(Debug)]
pub struct OrdersServer {
    setup: OrdersSetup,
}

impl OrdersServer {
    /// The service described by `setup`.
    pub fn new(setup: OrdersSetup) -> Self {
        Self { setup }
    }

    /// The bound gRPC address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.setup.listener.local_addr()
    }

    /// Serves gRPC, answers loyalty requests and relays the outbox until `shutdown`
    /// resolves; in-flight calls then get the shutdown timeout to finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), OrdersError> {
        let OrdersSetup {
            db,
            nats,
            topology,
            callers,
            loyalty_callers,
            relay,
            loyalty,
            revocations,
            reflection,
            listener,
            shutdown_timeout,
        } = self.setup;
        let signal = OutboxSignal::default();
        let (stop, stopped) = watch::channel(false);
        let mut workers = Vec::new();
        if let Some(config) = relay {
            let js = async_nats::jetstream::new(nats.clone());
            let relay = Relay::new(db.clone(), js, topology.clone(), signal.clone(), config);
            workers.push(tokio::spawn(relay.run(stopped.clone())));
        }
        workers.push(tokio::spawn(revocations.follow(
            nats.clone(),
            topology.clone(),
            stopped.clone(),
        )));
        if loyalty {
            let responder = LoyaltyResponder::new(nats, &topology, db.clone(), loyalty_callers);
            workers.push(tokio::spawn(responder.run(stopped)));
        }

        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<GrpcOrders<OrdersService>>().await;
        let reflection = match reflection {
            true => Some(
                tonic_reflection::server::Builder::configure()
                    .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
                    .build_v1()
                    .map_err(OrdersError::Reflection)?,
            ),
            false => None,
        };
        let service = OrdersService::new(db.clone(), signal);
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "orders service listening (gRPC)");
        }

        let (signalled, mut on_signal) = watch::channel(false);
        let signal = async move {
            shutdown.await;
            let _ = signalled.send(true);
        };
        let serve = Server::builder()
            .trace_fn(call_span)
            // A call without a grpc-timeout still ends.
            .timeout(Duration::from_secs(30))
            // The caller's X-Request-Id, for the logs and the events of the call.
            .layer(SetRequestIdLayer::new())
            // The caller's token, verified before any service sees the call.
            .layer(callers.layer())
            .add_service(health_service)
            .add_optional_service(reflection)
            .add_service(GrpcOrders::new(service))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), signal);
        let grace = async move {
            let _ = on_signal.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(shutdown_timeout).await;
        };
        let served = tokio::select! {
            served = serve => served.map_err(OrdersError::Serve),
            () = grace => {
                tracing::warn!("orders calls still running after the shutdown timeout were dropped");
                Ok(())
            }
        };
        let _ = stop.send(true);
        let workers = futures_util::future::join_all(workers);
        if tokio::time::timeout(Duration::from_secs(4), workers)
            .await
            .is_err()
        {
            tracing::warn!("orders workers did not stop in time");
        }
        db.close().await;
        tracing::info!("orders service stopped");
        served
    }
}

/// `bff orders`: the orders service as its own process.
pub async fn run(
    args: &OrdersArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), OrdersError> {
    tracing::info!(
        profile = ?args.common.profile,
        orders_addr = %args.orders_addr,
        jwks_url = %args.orders_jwks_url,
        nats_prefix = %args.nats.nats_prefix,
        "starting the orders service"
    );
    let database = args.store.database(&args.database);
    let db = connect(&database, database.migrate_on_start(args.common.profile)).await?;
    let nats = args
        .nats
        .connect("bff-orders")
        .await
        .map_err(OrdersError::Nats)?;
    let topology = Topology::new(args.nats.nats_prefix.clone());
    topology
        .ensure_streams(
            &async_nats::jetstream::new(nats.clone()),
            usize::from(args.outbox.nats_stream_replicas),
        )
        .await
        .map_err(OrdersError::Streams)?;
    let listener = TcpListener::bind(args.orders_addr)
        .await
        .map_err(|source| OrdersError::Bind {
            addr: args.orders_addr,
            source,
        })?;
    if args.common.profile == Profile::Prod && args.orders_jwks_url.scheme() != "https" {
        tracing::warn!(
            "BFF_ORDERS_JWKS_URL is not https; keys fetched over plain HTTP can be forged on the way"
        );
    }
    args.claims.validate().map_err(OrdersError::Config)?;
    let revocations = Revocations::default();
    let callers = CallerVerifier::new(
        args.orders_jwks_url.as_str(),
        &args.claims.jwt_issuer,
        &args.claims.orders_audience,
    );
    let server = OrdersServer::new(OrdersSetup {
        db,
        nats: nats.clone(),
        topology,
        loyalty_callers: callers
            .for_audience(&args.claims.loyalty_audience)
            .with_revocations(revocations.clone()),
        callers: callers.with_revocations(revocations.clone()),
        revocations,
        relay: args.outbox.outbox_relay.then(|| args.outbox.relay_config()),
        loyalty: args.loyalty_responder,
        reflection: args.reflection(),
        listener,
        shutdown_timeout: args.shutdown_timeout,
    });
    let result = server.run_until_stopped(shutdown).await;
    if tokio::time::timeout(Duration::from_secs(5), nats.drain())
        .await
        .is_err()
    {
        tracing::warn!("NATS drain timed out");
    }
    result
}

/// The span of one gRPC call, named `package.Service/Method` after
/// OpenTelemetry's RPC conventions. Its callers are the BFF's own instances,
/// authenticated by their tokens, so the trace context they send
/// (`traceparent`) is continued: the call is a child of the BFF's source span.
fn call_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path().trim_start_matches('/');
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc",
        otel.name = path,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
    );
    bff_core::telemetry::otel::extract(request.headers(), &span);
    span
}
