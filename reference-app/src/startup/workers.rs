//! Background work that runs beside the HTTP server: the outbox relay, the
//! notifier and, when no orders URL is configured, the orders service with
//! the loyalty responder.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::StartupError;
use crate::config::{Profile, ServeArgs};
use crate::messaging::Topology;
use crate::messaging::deliveries::Deliveries;
use crate::messaging::notifier::{Notifier, NotifierConfig};
use crate::messaging::outbox::{OutboxSignal, Relay};
use crate::messaging::seal::CodeSeal;
use crate::orders::caller::CallerVerifier;
use crate::orders::server::{OrdersServer, OrdersSetup};

/// A background worker, not yet started.
pub(super) type Worker = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// The workers of one instance and the switch that stops them.
pub(super) struct Workers {
    pub(super) started: Vec<Worker>,
    pub(super) stop: watch::Sender<bool>,
}

impl Workers {
    pub(super) fn new() -> Self {
        Self {
            started: Vec::new(),
            stop: watch::channel(false).0,
        }
    }

    fn push(&mut self, worker: impl Future<Output = ()> + Send + 'static) {
        self.started.push(Box::pin(worker));
    }

    /// The outbox relay and the notifier, as the settings enable them.
    pub(super) fn messaging(
        &mut self,
        config: &ServeArgs,
        db: &sqlx::PgPool,
        js: &async_nats::jetstream::Context,
        topology: &Topology,
        signal: &OutboxSignal,
        seal: &CodeSeal,
    ) -> Result<(), StartupError> {
        let profile = config.common.profile;
        if config.outbox.outbox_relay {
            let relay = Relay::new(
                db.clone(),
                js.clone(),
                topology.clone(),
                signal.clone(),
                config.outbox.relay_config(),
            );
            self.push(relay.run(self.stop.subscribe()));
        }
        if config.notifier.notifier {
            let senders = crate::messaging::senders::configured(&config.notifier, profile)
                .map_err(StartupError::Senders)?;
            let notifier = Notifier::new(
                js.clone(),
                topology.clone(),
                senders,
                Deliveries::new(db.clone()),
                NotifierConfig {
                    max_deliveries: config.notifier.notifier_max_deliveries,
                    concurrency: config.notifier.notifier_concurrency,
                    retry_delay: config.notifier.notifier_retry_delay,
                    code_ttl: config.codes.code_ttl,
                    seal: seal.clone(),
                },
            );
            self.push(notifier.run(self.stop.subscribe()));
        }
        Ok(())
    }

    /// Runs the orders service (with the loyalty responder) in this process,
    /// on a loopback port, verifying tokens against this BFF's own JWKS over
    /// HTTP like any other service would; returns its URL.
    pub(super) async fn orders_in_process(
        &mut self,
        config: &ServeArgs,
        http_addr: SocketAddr,
        nats: &async_nats::Client,
        topology: &Topology,
    ) -> Result<String, StartupError> {
        let database = config.orders_store.database(&config.database);
        let db = crate::orders::server::connect(
            &database,
            database.migrate_on_start(config.common.profile),
        )
        .await?;
        let any_loopback = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
        let bind_error = |source| StartupError::Bind {
            addr: any_loopback,
            source,
        };
        let grpc = TcpListener::bind(any_loopback).await.map_err(bind_error)?;
        let grpc_addr = grpc.local_addr().map_err(bind_error)?;
        let jwks_url = format!("http://{}/.well-known/jwks.json", loopback(http_addr));
        let revocations = crate::orders::revocations::Revocations::default();
        let callers = CallerVerifier::new(
            &jwks_url,
            &config.auth.claims.jwt_issuer,
            &config.auth.claims.orders_audience,
        );
        let server = OrdersServer::new(OrdersSetup {
            db,
            nats: nats.clone(),
            topology: topology.clone(),
            loyalty_callers: callers
                .for_audience(&config.auth.claims.loyalty_audience)
                .with_revocations(revocations.clone()),
            callers: callers.with_revocations(revocations.clone()),
            revocations,
            relay: config
                .outbox
                .outbox_relay
                .then(|| config.outbox.relay_config()),
            loyalty: true,
            // In-process, only the BFF calls it, on loopback.
            reflection: config.common.profile == crate::config::Profile::Dev,
            listener: grpc,
            // By the time workers stop, the HTTP side has drained and
            // nothing in this process calls the orders service any more.
            shutdown_timeout: Duration::from_secs(1),
        });
        let mut stopped = self.stop.subscribe();
        let stop = async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        };
        self.push(async move {
            if let Err(error) = server.run_until_stopped(stop).await {
                tracing::error!(error = %bff_core::problem::ErrorChain(&error), "the in-process orders service failed");
            }
        });
        tracing::info!(%grpc_addr, "orders service and loyalty responder run in-process");
        Ok(format!("http://{grpc_addr}"))
    }
}

/// Warns when the orders service is reached in plain text across hosts in
/// production: callers' tokens would cross the network unencrypted.
pub(super) fn warn_if_plaintext(orders_url: &str, profile: Profile) {
    let remote = !url::Url::parse(orders_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|host| {
            host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
    if profile == Profile::Prod && orders_url.starts_with("http://") && remote {
        tracing::warn!(
            "BFF_ORDERS_URL is plain http to another host: callers' access tokens cross the network unencrypted; use https"
        );
    }
}

/// `addr` as reachable from this host: an unspecified address (`0.0.0.0`,
/// `::`) becomes loopback of the same family.
fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}
