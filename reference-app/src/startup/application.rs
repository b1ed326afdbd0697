//! Building and running the application: each component is built from its own
//! settings, wired into the state, and started; shutdown stops them in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use bff_auth::code::RedisCodeStore;
use bff_core::health::{NatsCheck, PostgresCheck, Readiness, RedisCheck};
use bff_core::stack::HttpConfig;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::state::{AppState, Parts};
use super::workers::{Worker, Workers, warn_if_plaintext};
use super::{MetricsOn, StartupError, app, metrics_app};
use crate::auth::Auth;
use crate::config::{Profile, ServeArgs, redacted};
use crate::db;
use crate::messaging::Topology;
use crate::messaging::outbox::OutboxSignal;
use crate::messaging::seal::CodeSeal;
use crate::orders::client::{Backends, OrdersClient};

/// A built application, bound to its port and ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// `/metrics` on a listener of its own, when so configured.
    metrics: Option<(TcpListener, Router)>,
    db: PgPool,
    nats: async_nats::Client,
    server: bff_core::server::ServerConfig,
    /// Background workers (the outbox relay, the notifier, the in-process
    /// orders service), started by `run_until_stopped`, and their stop switch.
    workers: Vec<Worker>,
    stop_workers: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("listener", &self.listener)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

/// How long closing the pools may take at shutdown, after the grace period.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

impl Application {
    /// Connects to Postgres, Redis and NATS, prepares the schema as the profile
    /// says, binds the HTTP address and builds the router.
    pub async fn build(config: &ServeArgs) -> Result<Self, StartupError> {
        let profile = config.common.profile;
        tracing::info!(
            ?profile,
            http_addr = %config.http.http_addr,
            database_url = %redacted(&config.database.database_url),
            redis_url = %redacted(&config.redis.redis_url),
            redis_prefix = %config.redis.redis_prefix,
            nats_url = %redacted(&config.nats.nats_url),
            nats_prefix = %config.nats.nats_prefix,
            body_limit = config.http.body_limit,
            request_timeout = ?config.http.request_timeout,
            "starting"
        );

        config.backends.validate().map_err(StartupError::Config)?;
        let addr = config.http.http_addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        if profile == Profile::Prod && listener.local_addr().is_ok_and(|a| a.ip().is_loopback()) {
            tracing::warn!(
                "listening on loopback only in the prod profile; set BFF_HTTP_ADDR=0.0.0.0:8080 to accept outside traffic"
            );
        }

        let db = db::connect(&config.database).await?;
        if config.database.migrate_on_start(profile) {
            db::migrate(&db).await?;
            tracing::info!("migrations applied");
        } else {
            db::ensure_migrated(&db).await?;
        }
        let redis_options = config.redis.options().map_err(StartupError::Config)?;
        let redis = config
            .redis
            .connect(&redis_options)
            .await
            .map_err(StartupError::Redis)?;
        let nats = config
            .nats
            .connect("bff")
            .await
            .map_err(StartupError::Nats)?;
        if profile == Profile::Prod && !config.nats.authenticates() {
            tracing::warn!(
                "NATS without credentials in the prod profile: anyone who reaches the server can read and write the bus; set BFF_NATS_USER/BFF_NATS_PASSWORD, BFF_NATS_NKEY_SEED or BFF_NATS_CREDS_FILE (docs/security.md)"
            );
        }

        let prefix = &config.redis.redis_prefix;
        let mut auth = Auth::build(
            &config.auth,
            &config.password,
            profile,
            redis.clone(),
            prefix,
        )?;
        auth.jwt = auth.jwt.with_user_id_on_span(config.http.trace_user_id);
        let code_secret = crate::auth::load_code_secret(
            config.codes.code_secret.as_ref(),
            &config.auth.key_dir,
            profile,
        )?;
        let codes = RedisCodeStore::new(
            redis.clone(),
            format!("{prefix}codes:"),
            code_secret.clone(),
            config.codes.policy(),
        )
        .map_err(|e| StartupError::Auth(crate::auth::AuthSetupError::Codes(e)))?;
        let seal = CodeSeal::new(&code_secret);

        let topology = Topology::new(config.nats.nats_prefix.clone());
        let js = async_nats::jetstream::new(nats.clone());
        topology
            .ensure_streams(&js, usize::from(config.outbox.nats_stream_replicas))
            .await
            .map_err(StartupError::Streams)?;
        let signal = OutboxSignal::default();
        let mut workers = Workers::new();
        workers.messaging(config, &db, &js, &topology, &signal, &seal)?;
        if profile == Profile::Dev {
            crate::seed::seed(&db, &auth.hasher, config.seed.seed_password.as_ref()).await?;
        }
        let orders_url = match &config.backends.orders_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => {
                let http_addr = listener
                    .local_addr()
                    .map_err(|source| StartupError::Bind { addr, source })?;
                workers
                    .orders_in_process(config, http_addr, &nats, &topology)
                    .await?
            }
        };
        warn_if_plaintext(&orders_url, profile);
        let backends = &config.backends;
        let orders = OrdersClient::connect_lazy(&orders_url, backends.orders_timeout)
            .map_err(|e| StartupError::Config(format!("BFF_ORDERS_URL {orders_url:?}: {e}")))?;

        let readiness = Readiness::new()
            .with_timeout(config.http.readiness_timeout)
            .with_check(PostgresCheck::new(db.clone()))
            .with_check(RedisCheck::new(redis.clone()))
            .with_check_required(
                NatsCheck::new(nats.clone()),
                config.http.readiness_requires_nats,
            );
        let http = HttpConfig {
            body_limit: config.http.body_limit,
            request_timeout: config.http.request_timeout,
            cors_origins: config.http.cors_origins.clone(),
            trace_parent: config.http.trace_parent().map_err(StartupError::Config)?,
            ..HttpConfig::default()
        };
        let state = AppState::new(Parts {
            db: db.clone(),
            auth: Arc::new(auth),
            codes: Arc::new(codes),
            seal,
            outbox: signal,
            policy: crate::rbac::policy().map_err(StartupError::Policy)?,
            limits: crate::limits::Limits::new(
                redis.clone(),
                prefix,
                &config.rate_limit,
                &config.http.trusted_proxies,
                code_secret,
            )
            .map_err(StartupError::Config)?,
            cache: Arc::new(bff_cache::response::TieredStore::new(
                bff_cache::response::MemoryStore::new(64 * 1024 * 1024),
                bff_cache::response::RedisStore::new(redis.clone(), format!("{prefix}cache:")),
            )),
            backends: Arc::new(Backends {
                orders,
                nats: nats.clone(),
                loyalty_subject: topology.subject(crate::orders::loyalty::SUBJECT),
                orders_breaker: backends.breaker(),
                loyalty_breaker: backends.breaker(),
            }),
            dashboard: backends.dashboard(),
            deposit_max: config.money.deposit_max,
            oauth: config
                .oauth
                .parts(profile, redis.clone(), prefix)
                .map_err(StartupError::Config)?,
            proxy: config
                .browser
                .proxy()
                .map_err(|e| StartupError::Config(format!("BFF_PROXY_UPSTREAMS: {e}")))?,
        });
        let (metrics, metrics_on) = match config.http.metrics_addr {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartupError::Bind { addr, source })?;
                (Some((listener, metrics_app(&http))), MetricsOn::OwnListener)
            }
            None => (None, MetricsOn::Api),
        };
        let demo = config.browser.demo(profile).then(|| {
            crate::browser::demo::Demo::new(
                &state.oauth().providers(),
                config.browser.first_upstream(),
            )
        });
        let router = app(state, readiness, &http, metrics_on, demo)?;

        Ok(Self {
            listener,
            router,
            metrics,
            db,
            nats,
            server: config.http.server(),
            workers: workers.started,
            stop_workers: workers.stop,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address `/metrics` is served on when it has a listener of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, drains in-flight requests, then closes the pools.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let mut workers: Vec<JoinHandle<()>> = self.workers.into_iter().map(tokio::spawn).collect();
        if let Some((listener, router)) = self.metrics {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "serving /metrics");
            }
            let mut stop = self.stop_workers.subscribe();
            let stopped = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            // A scrape is short: the workers' stop does not wait long for one.
            let metrics_server = self.server.clone().with_grace(Duration::from_secs(1));
            workers.push(tokio::spawn(async move {
                if let Err(error) =
                    bff_core::server::serve(listener, router, stopped, metrics_server).await
                {
                    tracing::error!(%error, "the metrics listener failed");
                }
            }));
        }
        if let Ok(addr) = self.listener.local_addr() {
            tracing::info!(%addr, "listening");
        }
        let served =
            bff_core::server::serve(self.listener, self.router, shutdown, self.server.clone())
                .await;
        // Workers finish what they hold (a batch being published, sends under
        // way); what they leave stays in the outbox or the stream for next time.
        let _ = self.stop_workers.send(true);
        let workers = futures_util::future::join_all(workers);
        if tokio::time::timeout(CLOSE_TIMEOUT, workers).await.is_err() {
            tracing::warn!("background workers did not stop in time");
        }
        // Requests the grace period gave up on may still hold connections; closing
        // waits for them, so it is bounded too, and the process exits regardless.
        match tokio::time::timeout(CLOSE_TIMEOUT, self.nats.drain()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "NATS drain failed"),
            Err(_) => tracing::warn!("NATS drain timed out"),
        }
        if tokio::time::timeout(CLOSE_TIMEOUT, self.db.close())
            .await
            .is_err()
        {
            tracing::warn!(
                "Postgres pool close timed out; connections still in use are dropped at exit"
            );
        }
        tracing::info!("stopped");
        served.map_err(StartupError::Serve)
    }
}
