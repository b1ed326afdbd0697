//! Building and running the application: wiring happens here and only here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aide::axum::ApiRouter;
use aide::openapi::{Info, OpenApi, SecurityScheme, Tag};
use axum::Router;
use bff_core::health::{NatsCheck, PostgresCheck, Readiness, RedisCheck};
use bff_core::openapi::ApiDocs;
use bff_core::stack::{self, HttpConfig};
use bff_core::{Problem, metrics, openapi};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::net::TcpListener;

use bff_auth::code::{CodeStore, RedisCodeStore};
use bff_cache::ratelimit::UserId;
use bff_cache::response::CacheLayer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::Auth;
use crate::config::{
    EmailSenderKind, NotifierArgs, Profile, ServeArgs, SmsSenderKind, SmtpTls, redacted,
};
use crate::dashboard::{Backends, DashboardSettings};
use crate::db::{self, DbError};
use crate::messaging::Topology;
use crate::messaging::notifier::{Notifier, NotifierConfig, Senders};
use crate::messaging::outbox::{OutboxSignal, Relay};
use crate::messaging::senders::{LogSender, Sender, SmtpConfig, SmtpSender, WebhookSender};
use crate::orders::caller::CallerVerifier;
use crate::orders::client::OrdersClient;
use crate::orders::server::{OrdersServer, OrdersSetup};

/// State shared by the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The Postgres pool.
    pub db: PgPool,
    /// Keys, sessions and passwords.
    pub auth: Arc<Auth>,
    /// Verification codes and their throttle.
    pub codes: Arc<dyn CodeStore>,
    /// Wakes the outbox relay after a write.
    pub outbox: OutboxSignal,
    /// Roles and permissions.
    pub policy: bff_rbac::Policy,
    /// Rate limits.
    pub limits: crate::limits::Limits,
    /// The response cache's store (shared by every instance through Redis).
    pub cache: Arc<bff_cache::response::TieredStore>,
    /// The orders service and the loyalty responder, and how the dashboard
    /// assembles them.
    pub backends: Arc<Backends>,
}

impl AppState {
    /// Invalidates the cached views of user `id` (their `/me`), on every instance.
    pub async fn user_changed(&self, id: uuid::Uuid) {
        let invalidator = bff_cache::response::Invalidator::new(self.cache.clone());
        if let Err(error) = invalidator.invalidate(&format!("user:{id}")).await {
            // Entries then live out their short TTL.
            tracing::warn!(%error, user_id = %id, "could not invalidate cached views of a user");
        }
    }
}

impl axum::extract::FromRef<AppState> for bff_rbac::Policy {
    fn from_ref(state: &AppState) -> Self {
        state.policy.clone()
    }
}

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// Postgres could not be prepared.
    #[error(transparent)]
    Database(#[from] DbError),
    /// Redis could not be reached.
    #[error("cannot connect to Redis")]
    Redis(#[source] redis::RedisError),
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
    #[error("notifier: {0}")]
    Senders(String),
    /// Serving failed.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// A built application, bound to its port and ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    db: PgPool,
    nats: async_nats::Client,
    shutdown_timeout: Duration,
    /// Background workers (the outbox relay, the notifier), started by
    /// `run_until_stopped`, and their stop switch.
    workers: Vec<Worker>,
    stop_workers: watch::Sender<bool>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("listener", &self.listener)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

/// A background worker, not yet started.
type Worker = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Connection attempts at start: generous enough for services that start
/// together (compose), short enough that a wrong URL fails visibly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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

        let redis = connect_redis(config).await?;
        let nats = async_nats::ConnectOptions::new()
            .name("bff")
            .connection_timeout(CONNECT_TIMEOUT)
            .connect(config.nats.nats_url.expose_secret())
            .await
            .map_err(StartupError::Nats)?;

        let auth = Auth::build(
            &config.auth,
            &config.password,
            profile,
            redis.clone(),
            &config.redis.redis_prefix,
        )?;
        let code_secret = crate::auth::load_code_secret(
            config.codes.code_secret.as_ref(),
            &config.auth.key_dir,
            profile,
        )?;
        let codes = RedisCodeStore::new(
            redis.clone(),
            format!("{}codes:", config.redis.redis_prefix),
            code_secret,
            config.codes.policy(),
        )
        .map_err(|e| StartupError::Auth(crate::auth::AuthSetupError::Codes(e)))?;

        let topology = Topology::new(config.nats.nats_prefix.clone());
        let js = async_nats::jetstream::new(nats.clone());
        topology
            .ensure_streams(&js, usize::from(config.outbox.nats_stream_replicas))
            .await
            .map_err(StartupError::Streams)?;
        let signal = OutboxSignal::default();
        let (stop_workers, stopped) = watch::channel(false);
        let mut workers = Vec::new();
        if config.outbox.outbox_relay {
            let relay = Relay::new(
                db.clone(),
                js.clone(),
                topology.clone(),
                signal.clone(),
                config.outbox.relay_config(),
            );
            workers.push(Box::pin(relay.run(stopped.clone())) as Worker);
        }
        if config.notifier.notifier {
            let senders = build_senders(&config.notifier, profile)?;
            let notifier = Notifier::new(
                js.clone(),
                topology.clone(),
                senders,
                NotifierConfig {
                    max_deliveries: config.notifier.notifier_max_deliveries,
                    concurrency: config.notifier.notifier_concurrency,
                    retry_delay: config.notifier.notifier_retry_delay,
                    code_ttl: config.codes.code_ttl,
                },
            );
            workers.push(Box::pin(notifier.run(stopped.clone())));
        }
        if profile == Profile::Dev {
            crate::seed::seed(&db, &auth.hasher, config.seed.seed_password.as_ref()).await?;
        }
        let backends = build_backends(
            config,
            &listener,
            &nats,
            &topology,
            &stop_workers,
            &mut workers,
        )
        .await?;

        let readiness = Readiness::new()
            .with_timeout(config.http.readiness_timeout)
            .with_check(PostgresCheck::new(db.clone()))
            .with_check(RedisCheck::new(redis.clone()))
            .with_check(NatsCheck::new(nats.clone()));
        let http = HttpConfig {
            body_limit: config.http.body_limit,
            request_timeout: config.http.request_timeout,
            cors_origins: config.http.cors_origins.clone(),
            ..HttpConfig::default()
        };
        let router = app(
            AppState {
                db: db.clone(),
                auth: Arc::new(auth),
                codes: Arc::new(codes),
                outbox: signal,
                policy: crate::rbac::policy().map_err(StartupError::Policy)?,
                limits: crate::limits::Limits::new(
                    redis.clone(),
                    &config.redis.redis_prefix,
                    &config.rate_limit,
                    &config.http.trusted_proxies,
                )
                .map_err(StartupError::Config)?,
                cache: Arc::new(bff_cache::response::TieredStore::new(
                    bff_cache::response::MemoryStore::new(64 * 1024 * 1024),
                    bff_cache::response::RedisStore::new(
                        redis.clone(),
                        format!("{}cache:", config.redis.redis_prefix),
                    ),
                )),
                backends: Arc::new(backends),
            },
            readiness,
            &http,
        )?;

        Ok(Self {
            listener,
            router,
            db,
            nats,
            shutdown_timeout: config.http.shutdown_timeout,
            workers,
            stop_workers,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, drains in-flight requests, then closes the pools.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let workers: Vec<JoinHandle<()>> = self.workers.into_iter().map(tokio::spawn).collect();
        if let Ok(addr) = self.listener.local_addr() {
            tracing::info!(%addr, "listening");
        }
        let served =
            bff_core::server::serve(self.listener, self.router, shutdown, self.shutdown_timeout)
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

/// The notifier's senders as configured; the log sender only in the dev profile.
fn build_senders(args: &NotifierArgs, profile: Profile) -> Result<Senders, StartupError> {
    let missing = |what: &str| StartupError::Senders(what.to_owned());
    fn dev_default<T>(chosen: Option<T>, log: T, profile: Profile) -> Option<T> {
        chosen.or((profile == Profile::Dev).then_some(log))
    }
    let email: Arc<dyn Sender> = match dev_default(args.email_sender, EmailSenderKind::Log, profile)
    {
        Some(EmailSenderKind::Log) if profile == Profile::Dev => Arc::new(LogSender),
        Some(EmailSenderKind::Smtp) => {
            let host = args
                .smtp_host
                .clone()
                .ok_or_else(|| missing("BFF_EMAIL_SENDER=smtp needs BFF_SMTP_HOST"))?;
            let from = args
                .smtp_from
                .clone()
                .ok_or_else(|| missing("BFF_EMAIL_SENDER=smtp needs BFF_SMTP_FROM"))?;
            let port = args.smtp_port.unwrap_or(match args.smtp_tls {
                SmtpTls::Tls => 465,
                SmtpTls::Starttls => 587,
                SmtpTls::None => 25,
            });
            let credentials = match (&args.smtp_username, &args.smtp_password) {
                (Some(user), Some(password)) => Some((user.clone(), password.clone())),
                (None, None) => None,
                _ => {
                    return Err(missing(
                        "BFF_SMTP_USERNAME and BFF_SMTP_PASSWORD go together",
                    ));
                }
            };
            Arc::new(
                SmtpSender::new(&SmtpConfig {
                    host,
                    port,
                    tls: args.smtp_tls,
                    credentials,
                    from,
                    timeout: args.smtp_timeout,
                })
                .map_err(|e| {
                    StartupError::Senders(bff_core::problem::ErrorChain(&e).to_string())
                })?,
            )
        }
        _ => {
            return Err(missing(
                "the prod profile needs BFF_EMAIL_SENDER=smtp (the log sender is for development only), or BFF_NOTIFIER=false to deliver elsewhere",
            ));
        }
    };
    let sms: Arc<dyn Sender> = match dev_default(args.sms_sender, SmsSenderKind::Log, profile) {
        Some(SmsSenderKind::Log) if profile == Profile::Dev => Arc::new(LogSender),
        Some(SmsSenderKind::Webhook) => {
            let url = args
                .sms_webhook_url
                .clone()
                .ok_or_else(|| missing("BFF_SMS_SENDER=webhook needs BFF_SMS_WEBHOOK_URL"))?;
            let token = args
                .sms_webhook_token
                .clone()
                .ok_or_else(|| missing("BFF_SMS_SENDER=webhook needs BFF_SMS_WEBHOOK_TOKEN"))?;
            Arc::new(
                WebhookSender::new(url, token, args.sms_webhook_timeout).map_err(|e| {
                    StartupError::Senders(bff_core::problem::ErrorChain(&e).to_string())
                })?,
            )
        }
        _ => {
            return Err(missing(
                "the prod profile needs BFF_SMS_SENDER=webhook (the log sender is for development only), or BFF_NOTIFIER=false to deliver elsewhere",
            ));
        }
    };
    Ok(Senders { email, sms })
}

/// A stop signal for the in-process orders service, fired with the workers'.
fn stopped_orders(stop: &watch::Sender<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut stopped = stop.subscribe();
    async move {
        let _ = stopped.wait_for(|stopped| *stopped).await;
    }
}

/// The backends of the dashboard and the orders endpoints. Without an orders
/// URL the orders service (with the loyalty responder) is started here, on a
/// loopback port, as one of the workers, verifying tokens against this BFF's
/// own JWKS over HTTP like any other service would.
async fn build_backends(
    config: &ServeArgs,
    listener: &TcpListener,
    nats: &async_nats::Client,
    topology: &Topology,
    stop: &watch::Sender<bool>,
    workers: &mut Vec<Worker>,
) -> Result<Backends, StartupError> {
    let args = &config.backends;
    let orders_url = match &args.orders_url {
        Some(url) => url.as_str().trim_end_matches('/').to_owned(),
        None => {
            let database = config.orders_store.database(&config.database);
            let db = crate::orders::server::connect(
                &database,
                database.migrate_on_start(config.common.profile),
            )
            .await?;
            let any_loopback = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
            let bind_error = |addr| move |source| StartupError::Bind { addr, source };
            let grpc = TcpListener::bind(any_loopback)
                .await
                .map_err(bind_error(any_loopback))?;
            let grpc_addr = grpc.local_addr().map_err(bind_error(any_loopback))?;
            let http_addr = listener
                .local_addr()
                .map_err(bind_error(config.http.http_addr))?;
            let jwks_url = format!("http://{}/.well-known/jwks.json", loopback(http_addr));
            let server = OrdersServer::new(OrdersSetup {
                db,
                nats: nats.clone(),
                topology: topology.clone(),
                callers: CallerVerifier::new(
                    &jwks_url,
                    &config.auth.claims.jwt_issuer,
                    &config.auth.claims.jwt_audience,
                ),
                relay: config
                    .outbox
                    .outbox_relay
                    .then(|| config.outbox.relay_config()),
                loyalty: true,
                listener: grpc,
                // By the time workers stop, the HTTP side has drained and
                // nothing in this process calls the orders service any more.
                shutdown_timeout: Duration::from_secs(1),
            });
            let stop = stopped_orders(stop);
            workers.push(Box::pin(async move {
                if let Err(error) = server.run_until_stopped(stop).await {
                    tracing::error!(error = %bff_core::problem::ErrorChain(&error), "the in-process orders service failed");
                }
            }));
            tracing::info!(%grpc_addr, "orders service and loyalty responder run in-process");
            format!("http://{grpc_addr}")
        }
    };
    if config.common.profile == Profile::Prod
        && orders_url.starts_with("http://")
        && !url::Url::parse(&orders_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .is_some_and(|host| {
                host == "localhost"
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            })
    {
        tracing::warn!(
            "BFF_ORDERS_URL is plain http to another host: callers' access tokens cross the network unencrypted; use https"
        );
    }
    let orders = OrdersClient::connect_lazy(&orders_url, args.orders_timeout)
        .map_err(|e| StartupError::Config(format!("BFF_ORDERS_URL {orders_url:?}: {e}")))?;
    let breaker = || {
        bff_aggregate::CircuitBreaker::new(bff_aggregate::BreakerConfig {
            failure_threshold: args.breaker_failures,
            open_for: args.breaker_open_for,
        })
    };
    Ok(Backends {
        orders,
        nats: nats.clone(),
        loyalty_subject: topology.subject(crate::orders::loyalty::SUBJECT),
        orders_breaker: breaker(),
        loyalty_breaker: breaker(),
        dashboard: DashboardSettings {
            deadline: args.dashboard_deadline,
            database: args.dashboard_database_deadline,
            orders: args.dashboard_orders_deadline,
            loyalty: args.dashboard_loyalty_deadline,
            hedge_after: (!args.dashboard_hedge_after.is_zero())
                .then_some(args.dashboard_hedge_after),
            cache_ttl: args.dashboard_cache_ttl,
        },
    })
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

async fn connect_redis(config: &ServeArgs) -> Result<ConnectionManager, StartupError> {
    let client =
        redis::Client::open(config.redis.redis_url.expose_secret()).map_err(StartupError::Redis)?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2);
    ConnectionManager::new_with_config(client, manager_config)
        .await
        .map_err(StartupError::Redis)
}

/// The Prometheus recorder, with the help texts of the aggregate's metrics.
fn recorder() -> metrics::PrometheusHandle {
    let handle = metrics::install_recorder();
    bff_aggregate::describe_metrics();
    handle
}

/// The dashboard, cached per user when a TTL is set; the tag `user:<id>` lets
/// every write that changes a part of it invalidate it at once.
fn dashboard_routes(state: &AppState) -> ApiRouter<AppState> {
    let ttl = state.backends.dashboard.cache_ttl;
    let routes = crate::dashboard::routes();
    if ttl.is_zero() {
        return routes;
    }
    routes.layer(
        CacheLayer::new("dashboard", Arc::clone(&state.cache))
            .ttl(ttl)
            // A partial dashboard is not stored, so a duplicate request would
            // wait for nothing: it never queues behind another's deadline.
            .lock_wait(Duration::ZERO)
            .per_user(UserId)
            .tags(|_, user| user.map(|u| vec![format!("user:{u}")]).unwrap_or_default()),
    )
}

/// The whole HTTP application: every route, the OpenAPI document and the stack.
///
/// Tests call it directly and drive it with `tower::ServiceExt::oneshot`.
pub fn app(
    state: AppState,
    readiness: Readiness,
    http: &HttpConfig,
) -> Result<Router, openapi::PublishError> {
    let docs = ApiDocs::new();
    let mut api = OpenApi {
        info: Info {
            title: "BFF reference app".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: Some(
                "The reference Backend-For-Frontend. Errors are RFC 9457 problem details \
                 (`application/problem+json`) with a stable `code`; every response carries `X-Request-Id`."
                    .to_owned(),
            ),
            ..Info::default()
        },
        tags: vec![
            Tag { name: "auth".to_owned(), description: Some("Login, sessions and tokens.".to_owned()), ..Tag::default() },
            Tag { name: "users".to_owned(), description: Some("Profiles.".to_owned()), ..Tag::default() },
            Tag { name: "admin".to_owned(), description: Some("Users, roles and the audit log (managers and admins).".to_owned()), ..Tag::default() },
            Tag { name: "address".to_owned(), description: Some("My addresses.".to_owned()), ..Tag::default() },
            Tag { name: "wishlist".to_owned(), description: Some("My wishlist.".to_owned()), ..Tag::default() },
            Tag { name: "money".to_owned(), description: Some("Wallets, transfers and deposits.".to_owned()), ..Tag::default() },
            Tag { name: "orders".to_owned(), description: Some("My orders, kept by the orders service (gRPC).".to_owned()), ..Tag::default() },
            Tag { name: "currencies".to_owned(), description: Some("ISO 4217 reference data.".to_owned()), ..Tag::default() },
            Tag { name: "operations".to_owned(), description: Some("Health, metrics and documentation.".to_owned()), ..Tag::default() },
        ],
        ..OpenApi::default()
    };
    let jwt = state.auth.jwt.clone();
    let router = ApiRouter::new()
        .nest(
            "/api/v1",
            crate::currencies::routes().layer(
                CacheLayer::new("currencies", Arc::clone(&state.cache))
                    .ttl(Duration::from_secs(300))
                    .tags(|_, _| vec!["currencies".to_owned()]),
            ),
        )
        .merge(crate::auth::public_routes())
        .merge(crate::auth::code_routes())
        .merge(
            crate::auth::protected_routes()
                .merge(
                    crate::auth::me_routes().layer(
                        CacheLayer::new("me", Arc::clone(&state.cache))
                            .ttl(Duration::from_secs(30))
                            .per_user(UserId)
                            .tags(|_, user| {
                                user.map(|u| vec![format!("user:{u}")]).unwrap_or_default()
                            }),
                    ),
                )
                .merge(crate::admin::routes())
                .merge(crate::audit::routes())
                .merge(crate::records::routes::<crate::records::Address>())
                .merge(crate::records::routes::<crate::records::WishlistItem>())
                .merge(crate::wallets::routes())
                .merge(crate::orders::routes::routes())
                .merge(dashboard_routes(&state))
                // Inside the JWT layer, which puts the caller there.
                .layer(state.limits.per_user_layer())
                .layer(jwt),
        )
        // The API, not the probes and documents below.
        .layer(state.limits.per_ip_layer())
        .merge(bff_core::health::routes(readiness))
        .merge(metrics::routes(recorder()))
        .merge(openapi::routes(docs.clone()))
        .fallback(stack::not_found)
        // Any route can also answer 413, 429, 500 or 503 from the stack, so every
        // operation documents problem+json as its default response.
        .finish_api_with(&mut api, |api| {
            api.default_response_with::<Problem, _>(|r| {
                r.description("An error, as RFC 9457 problem details.")
            })
            .security_scheme(
                "bearer",
                SecurityScheme::Http {
                    scheme: "bearer".to_owned(),
                    bearer_format: Some("JWT".to_owned()),
                    description: Some("An access token from login or refresh.".to_owned()),
                    extensions: Default::default(),
                },
            )
        })
        .with_state(state);
    docs.publish(&api)?;
    Ok(stack::apply(router, http))
}
