//! Every setting of the `bff` binary: a flag and a `BFF_*` environment variable
//! each, with defaults that point at the local services.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

/// The reference BFF: one binary, several roles.
#[derive(Debug, Clone, Parser)]
#[command(name = "bff", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to run; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings of `serve`, accepted without the subcommand name too.
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl Cli {
    /// The command to run, `serve` with the top-level settings when none was named.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(Box::new(self.serve)))
    }
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the HTTP API (the default).
    Serve(Box<ServeArgs>),
    /// Create the database if it is missing and apply pending migrations.
    Migrate(MigrateArgs),
    /// Create the demo accounts (one per role) if they do not exist; dev profile only.
    Seed(SeedArgs),
    /// Run the orders gRPC service and the loyalty responder (`serve` runs them
    /// in-process when BFF_ORDERS_URL is not set).
    Orders(Box<OrdersArgs>),
    /// Manage token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// Settings of `orders`.
#[derive(Debug, Clone, Args)]
pub struct OrdersArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: OrdersStoreArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub nats: NatsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub claims: ClaimArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub outbox: OutboxArgs,
    /// Address of the gRPC server.
    #[arg(long, env = "BFF_ORDERS_ADDR", default_value = "127.0.0.1:50051")]
    pub orders_addr: SocketAddr,
    /// The BFF's JWKS, whose public keys verify callers' access tokens.
    #[arg(
        long,
        env = "BFF_ORDERS_JWKS_URL",
        default_value = "http://127.0.0.1:8080/.well-known/jwks.json"
    )]
    pub orders_jwks_url: url::Url,
    /// Answer loyalty requests (`loyalty.points.get`) in this process too.
    #[arg(long, env = "BFF_LOYALTY_RESPONDER", default_value_t = true, action = clap::ArgAction::Set)]
    pub loyalty_responder: bool,
    /// How long in-flight calls may take to finish after SIGTERM.
    #[arg(long, env = "BFF_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
}

/// Where the orders service keeps its data.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Orders service")]
pub struct OrdersStoreArgs {
    /// Postgres URL of the orders service, whose tables live in the schema
    /// `orders`; BFF_DATABASE_URL when not set. Created if missing.
    #[arg(long, env = "BFF_ORDERS_DATABASE_URL", value_parser = parse_secret, hide_env_values = true)]
    pub orders_database_url: Option<SecretString>,
}

impl OrdersStoreArgs {
    /// The database settings of the orders service: `database` with the URL
    /// replaced when one of its own is set.
    pub fn database(&self, database: &DatabaseArgs) -> DatabaseArgs {
        DatabaseArgs {
            database_url: self
                .orders_database_url
                .clone()
                .unwrap_or_else(|| database.database_url.clone()),
            ..database.clone()
        }
    }
}

/// How `serve` reaches the orders service and the loyalty responder, and how
/// the dashboard assembles them.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Backends and the dashboard")]
pub struct BackendArgs {
    /// gRPC URL of the orders service (`http://orders:50051`). Not set: `serve`
    /// runs the orders service and the loyalty responder in-process on loopback.
    #[arg(long, env = "BFF_ORDERS_URL")]
    pub orders_url: Option<url::Url>,
    /// Time limit of one orders call (the `grpc-timeout` sent along).
    #[arg(long, env = "BFF_ORDERS_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub orders_timeout: Duration,
    /// The whole dashboard's deadline.
    #[arg(long, env = "BFF_DASHBOARD_DEADLINE", default_value = "800ms", value_parser = humantime::parse_duration)]
    pub dashboard_deadline: Duration,
    /// Deadline of the dashboard's Postgres parts (profile, wallets).
    #[arg(long, env = "BFF_DASHBOARD_DATABASE_DEADLINE", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub dashboard_database_deadline: Duration,
    /// Deadline of the dashboard's recent orders (gRPC).
    #[arg(long, env = "BFF_DASHBOARD_ORDERS_DEADLINE", default_value = "300ms", value_parser = humantime::parse_duration)]
    pub dashboard_orders_deadline: Duration,
    /// Deadline of the dashboard's loyalty part (NATS request-reply).
    #[arg(long, env = "BFF_DASHBOARD_LOYALTY_DEADLINE", default_value = "200ms", value_parser = humantime::parse_duration)]
    pub dashboard_loyalty_deadline: Duration,
    /// Send a second, hedged recent-orders call when the first has not answered
    /// after this long (`0s`: never).
    #[arg(long, env = "BFF_DASHBOARD_HEDGE_AFTER", default_value = "0s", value_parser = humantime::parse_duration)]
    pub dashboard_hedge_after: Duration,
    /// How long a dashboard stays cached per user (`0s`: not cached); writes that
    /// change it invalidate it sooner.
    #[arg(long, env = "BFF_DASHBOARD_CACHE_TTL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub dashboard_cache_ttl: Duration,
    /// Consecutive failures of a backend that open its circuit breaker.
    #[arg(long, env = "BFF_BREAKER_FAILURES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub breaker_failures: u32,
    /// How long an open breaker skips its backend before one probe call.
    #[arg(long, env = "BFF_BREAKER_OPEN_FOR", default_value = "10s", value_parser = humantime::parse_duration)]
    pub breaker_open_for: Duration,
}

/// `bff keys` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Write a new key pair: `<kid>.pem` (private, mode 0600) and `<kid>.pub.pem`.
    Generate(KeysGenerateArgs),
}

/// Settings of `keys generate`.
#[derive(Debug, Clone, Args)]
pub struct KeysGenerateArgs {
    /// Signature algorithm: `eddsa` (Ed25519), `es256` or `rs256`.
    #[arg(long, default_value = "eddsa")]
    pub algorithm: bff_auth::keys::Algorithm,
    /// Directory to write the files to (created if missing).
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
}

/// Settings of `seed`.
#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub seed: SeedPasswordArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub password: PasswordArgs,
}

/// The demo accounts' password.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Seed")]
pub struct SeedPasswordArgs {
    /// Password of the demo accounts; a random one is generated and logged when unset.
    #[arg(long, env = "BFF_SEED_PASSWORD", value_parser = parse_secret, hide_env_values = true)]
    pub seed_password: Option<SecretString>,
}

/// Password hashing cost (argon2id); OWASP's recommendation by default.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Passwords")]
pub struct PasswordArgs {
    /// argon2id memory in KiB.
    #[arg(long, env = "BFF_PASSWORD_MEMORY_KIB", default_value_t = 19456)]
    pub password_memory_kib: u32,
    /// argon2id passes.
    #[arg(long, env = "BFF_PASSWORD_ITERATIONS", default_value_t = 2)]
    pub password_iterations: u32,
    /// argon2id lanes.
    #[arg(long, env = "BFF_PASSWORD_PARALLELISM", default_value_t = 1)]
    pub password_parallelism: u32,
}

impl PasswordArgs {
    /// The hashing parameters.
    pub fn params(&self) -> bff_auth::password::HashParams {
        bff_auth::password::HashParams {
            memory_kib: self.password_memory_kib,
            iterations: self.password_iterations,
            parallelism: self.password_parallelism,
        }
    }
}

/// Token and session settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Tokens and sessions")]
pub struct AuthArgs {
    /// PEM file of the private key that signs access tokens (PKCS#8 Ed25519, P-256
    /// or RSA). Without it (and without BFF_JWT_SIGNING_KEY) the dev profile
    /// creates one under BFF_KEY_DIR and prod refuses to start.
    #[arg(long, env = "BFF_JWT_SIGNING_KEY_FILE")]
    pub jwt_signing_key_file: Option<PathBuf>,
    /// The signing key's PEM itself, for platforms that pass secrets as variables.
    #[arg(long, env = "BFF_JWT_SIGNING_KEY", value_parser = parse_secret, hide_env_values = true)]
    pub jwt_signing_key: Option<SecretString>,
    /// PEM files (public or private) of keys that verify and are published in the
    /// JWKS but do not sign: the next key before a rotation, the previous after.
    #[arg(long, env = "BFF_JWT_VERIFICATION_KEY_FILES", value_delimiter = ',')]
    pub jwt_verification_key_files: Vec<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub claims: ClaimArgs,
    /// Lifetime of access tokens.
    #[arg(long, env = "BFF_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = humantime::parse_duration)]
    pub access_token_ttl: Duration,
    /// `Cache-Control: max-age` of the JWKS document.
    #[arg(long, env = "BFF_JWKS_MAX_AGE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub jwks_max_age: Duration,
    /// A session not refreshed for this long ends.
    #[arg(long, env = "BFF_SESSION_IDLE_TIMEOUT", default_value = "30days", value_parser = humantime::parse_duration)]
    pub session_idle_timeout: Duration,
    /// A session ends this long after login, however active.
    #[arg(long, env = "BFF_SESSION_LIFETIME", default_value = "90days", value_parser = humantime::parse_duration)]
    pub session_lifetime: Duration,
    /// How long a rotated refresh token may still be used by a concurrent refresh.
    #[arg(long, env = "BFF_REFRESH_REUSE_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub refresh_reuse_grace: Duration,
    /// Where the dev profile keeps the signing key it creates.
    #[arg(long, env = "BFF_KEY_DIR", default_value = ".bff")]
    pub key_dir: PathBuf,
}

/// The issuer and audience of access tokens: the BFF writes them, the orders
/// service checks them.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Tokens and sessions")]
pub struct ClaimArgs {
    /// The `iss` of access tokens.
    #[arg(long, env = "BFF_JWT_ISSUER", default_value = "bff")]
    pub jwt_issuer: String,
    /// The `aud` of access tokens.
    #[arg(long, env = "BFF_JWT_AUDIENCE", default_value = "bff")]
    pub jwt_audience: String,
}

/// Deployment profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// Local development: readable logs, migrations applied at start.
    Dev,
    /// Production: JSON logs, migrations only when asked for.
    Prod,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object a line.
    Json,
}

/// Settings shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Deployment profile.
    #[arg(long, env = "BFF_PROFILE", value_enum, default_value_t = Profile::Dev)]
    pub profile: Profile,
    /// Log format; `pretty` in the dev profile and `json` in prod by default.
    /// The level is set with `RUST_LOG` (default `info`).
    #[arg(long, env = "BFF_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

impl CommonArgs {
    /// The log format in force.
    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or(match self.profile {
            Profile::Dev => LogFormat::Pretty,
            Profile::Prod => LogFormat::Json,
        })
    }
}

/// Settings of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub http: HttpArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub redis: RedisArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub nats: NatsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub auth: AuthArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub password: PasswordArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub seed: SeedPasswordArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub codes: CodeArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub outbox: OutboxArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub notifier: NotifierArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub rate_limit: RateLimitArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub backends: BackendArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub orders_store: OrdersStoreArgs,
}

/// Rate limits, shared by every instance through Redis.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Rate limits")]
pub struct RateLimitArgs {
    /// Limit requests at all.
    #[arg(long, env = "BFF_RATE_LIMIT", default_value_t = true, action = clap::ArgAction::Set)]
    pub rate_limit: bool,
    /// Every API request, per client IP: `count/period`, e.g. `300/1m`.
    #[arg(long, env = "BFF_RATE_LIMIT_PER_IP", default_value = "300/1m", value_parser = parse_quota)]
    pub rate_limit_per_ip: bff_cache::ratelimit::Quota,
    /// Every authenticated request, per user.
    #[arg(long, env = "BFF_RATE_LIMIT_PER_USER", default_value = "600/1m", value_parser = parse_quota)]
    pub rate_limit_per_user: bff_cache::ratelimit::Quota,
    /// Login attempts per client IP.
    #[arg(long, env = "BFF_RATE_LIMIT_LOGIN_PER_IP", default_value = "30/1m", value_parser = parse_quota)]
    pub rate_limit_login_per_ip: bff_cache::ratelimit::Quota,
    /// Login attempts per identifier (whoever sends them), against password guessing.
    #[arg(long, env = "BFF_RATE_LIMIT_LOGIN_PER_IDENTIFIER", default_value = "10/15m", value_parser = parse_quota)]
    pub rate_limit_login_per_identifier: bff_cache::ratelimit::Quota,
    /// When Redis is unavailable: `fallback` limits with each instance's memory
    /// (and logs once), `refuse` answers 503.
    #[arg(long, env = "BFF_RATE_LIMIT_ON_REDIS_ERROR", value_enum, default_value_t = OnRedisError::Fallback)]
    pub rate_limit_on_redis_error: OnRedisError,
}

/// What the limiter does when Redis is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnRedisError {
    /// Limit with local memory.
    Fallback,
    /// Refuse with 503.
    Refuse,
}

/// `count/period`, e.g. `300/1m`: bursts of up to `count`.
fn parse_quota(value: &str) -> Result<bff_cache::ratelimit::Quota, String> {
    let (count, period) = value
        .split_once('/')
        .ok_or_else(|| format!("{value:?} is not count/period (e.g. 300/1m)"))?;
    let count: u32 = count
        .trim()
        .parse()
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| format!("{value:?}: the count must be a positive integer"))?;
    let period = humantime::parse_duration(period.trim()).map_err(|e| format!("{value:?}: {e}"))?;
    if period.is_zero() {
        return Err(format!("{value:?}: the period must be positive"));
    }
    Ok(bff_cache::ratelimit::Quota::new(count, period))
}

fn parse_cidr(value: &str) -> Result<String, String> {
    bff_cache::ratelimit::ClientIp::new()
        .trust_cidr(value)
        .map(|_| value.trim().to_owned())
}

/// Verification codes (sign-up and password reset).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Verification codes")]
pub struct CodeArgs {
    /// Secret (at least 32 bytes) that keys the stored hashes of codes; every
    /// instance needs the same one. Without it the dev profile creates one under
    /// BFF_KEY_DIR and prod refuses to start.
    #[arg(long, env = "BFF_CODE_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub code_secret: Option<SecretString>,
    /// How long a code is valid; at most 10 minutes.
    #[arg(long, env = "BFF_CODE_TTL", default_value = "10m", value_parser = parse_code_ttl)]
    pub code_ttl: Duration,
    /// Least time between two codes for one identifier and purpose.
    #[arg(long, env = "BFF_CODE_COOLDOWN", default_value = "60s", value_parser = humantime::parse_duration)]
    pub code_cooldown: Duration,
    /// Codes one identifier may be sent per hour.
    #[arg(long, env = "BFF_CODE_HOURLY_LIMIT_PER_IDENTIFIER", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub code_hourly_limit_per_identifier: u32,
    /// Codes one client IP address may request per hour.
    #[arg(long, env = "BFF_CODE_HOURLY_LIMIT_PER_IP", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub code_hourly_limit_per_ip: u32,
}

impl CodeArgs {
    /// The code policy.
    pub fn policy(&self) -> bff_auth::code::CodePolicy {
        bff_auth::code::CodePolicy {
            ttl: self.code_ttl,
            cooldown: self.code_cooldown,
            hourly_per_identifier: self.code_hourly_limit_per_identifier,
            hourly_per_client: self.code_hourly_limit_per_ip,
        }
    }
}

fn parse_code_ttl(value: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(value).map_err(|e| e.to_string())?;
    if ttl.is_zero() || ttl > bff_auth::code::MAX_TTL {
        return Err("codes live more than 0 s and at most 10 minutes".to_owned());
    }
    Ok(ttl)
}

/// The transactional outbox and its relay to NATS JetStream.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Outbox and streams")]
pub struct OutboxArgs {
    /// Run the relay that publishes the outbox in this process. Several
    /// instances may relay at once.
    #[arg(long, env = "BFF_OUTBOX_RELAY", default_value_t = true, action = clap::ArgAction::Set)]
    pub outbox_relay: bool,
    /// How often the relay looks for due messages that no local write announced
    /// (retries, other instances' rows).
    #[arg(long, env = "BFF_OUTBOX_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub outbox_poll_interval: Duration,
    /// Messages published per batch.
    #[arg(long, env = "BFF_OUTBOX_BATCH_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub outbox_batch_size: u32,
    /// How long published rows are kept before they are deleted.
    #[arg(long, env = "BFF_OUTBOX_RETENTION", default_value = "1day", value_parser = humantime::parse_duration)]
    pub outbox_retention: Duration,
    /// Replicas of the JetStream streams (1 on a single server, 3 in a cluster).
    #[arg(long, env = "BFF_NATS_STREAM_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nats_stream_replicas: u8,
}

/// How notifications are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmailSenderKind {
    /// Write them to the log, codes included (dev profile only).
    Log,
    /// Send them through an SMTP relay (BFF_SMTP_*).
    Smtp,
}

/// How text messages are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmsSenderKind {
    /// Write them to the log, codes included (dev profile only).
    Log,
    /// POST them to an SMS gateway's webhook (BFF_SMS_WEBHOOK_*).
    Webhook,
}

/// TLS towards the SMTP relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmtpTls {
    /// Implicit TLS (port 465).
    Tls,
    /// STARTTLS, required (port 587).
    Starttls,
    /// Plain text; only for a relay on the same host or network.
    None,
}

/// The notifier: the consumer of NOTIFICATIONS that delivers messages.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Notifier")]
pub struct NotifierArgs {
    /// Run the notifier in this process; switch it off to run it elsewhere.
    #[arg(long, env = "BFF_NOTIFIER", default_value_t = true, action = clap::ArgAction::Set)]
    pub notifier: bool,
    /// Deliveries of a message before it moves to the dead-letter subject.
    #[arg(long, env = "BFF_NOTIFIER_MAX_DELIVERIES", default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub notifier_max_deliveries: u16,
    /// Messages sent at once.
    #[arg(long, env = "BFF_NOTIFIER_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub notifier_concurrency: u16,
    /// First redelivery delay after a failed send; it doubles with each failure,
    /// up to 10 minutes.
    #[arg(long, env = "BFF_NOTIFIER_RETRY_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub notifier_retry_delay: Duration,
    /// How emails are sent: `log` by default in dev; prod must choose `smtp`.
    #[arg(long, env = "BFF_EMAIL_SENDER", value_enum)]
    pub email_sender: Option<EmailSenderKind>,
    /// How text messages are sent: `log` by default in dev; prod must choose `webhook`.
    #[arg(long, env = "BFF_SMS_SENDER", value_enum)]
    pub sms_sender: Option<SmsSenderKind>,
    /// SMTP relay host.
    #[arg(long, env = "BFF_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// SMTP relay port; by default 465 with `tls`, 587 with `starttls`, 25 with `none`.
    #[arg(long, env = "BFF_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    /// TLS towards the relay.
    #[arg(long, env = "BFF_SMTP_TLS", value_enum, default_value_t = SmtpTls::Starttls)]
    pub smtp_tls: SmtpTls,
    /// SMTP user name (with BFF_SMTP_PASSWORD); none sends without authentication.
    #[arg(long, env = "BFF_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    /// SMTP password.
    #[arg(long, env = "BFF_SMTP_PASSWORD", value_parser = parse_secret, hide_env_values = true)]
    pub smtp_password: Option<SecretString>,
    /// The From of emails, e.g. `Example <no-reply@example.com>`.
    #[arg(long, env = "BFF_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Longest an SMTP conversation may take.
    #[arg(long, env = "BFF_SMTP_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub smtp_timeout: Duration,
    /// URL the SMS webhook POSTs to.
    #[arg(long, env = "BFF_SMS_WEBHOOK_URL")]
    pub sms_webhook_url: Option<url::Url>,
    /// Bearer token sent to the webhook in `Authorization`.
    #[arg(long, env = "BFF_SMS_WEBHOOK_TOKEN", value_parser = parse_secret, hide_env_values = true)]
    pub sms_webhook_token: Option<SecretString>,
    /// Longest a webhook call may take.
    #[arg(long, env = "BFF_SMS_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub sms_webhook_timeout: Duration,
}

/// Settings of `migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: OrdersStoreArgs,
}

/// HTTP server settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "BFF_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Largest accepted request body, in bytes; larger bodies get 413.
    #[arg(long, env = "BFF_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,
    /// Longest a request may take before it is answered 503 (e.g. `30s`).
    #[arg(long, env = "BFF_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[arg(long, env = "BFF_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// Browser origins allowed to call the API (comma-separated, e.g.
    /// `https://app.example.com`); none by default, which disables CORS.
    #[arg(long, env = "BFF_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<HeaderValue>,
    /// Proxies (comma-separated addresses or CIDR networks, e.g. `10.0.0.0/8`)
    /// trusted to report the client's address in `X-Forwarded-For`; from
    /// anyone else the header is ignored. None by default.
    #[arg(long, env = "BFF_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_cidr)]
    pub trusted_proxies: Vec<String>,
    /// Time limit of each readiness check.
    #[arg(long, env = "BFF_READINESS_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub readiness_timeout: Duration,
}

/// Postgres settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Postgres")]
pub struct DatabaseArgs {
    /// Connection URL; the database is created if it does not exist.
    #[arg(
        long,
        env = "BFF_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/bff",
        value_parser = parse_secret,
        hide_env_values = true
    )]
    pub database_url: SecretString,
    /// Largest number of pooled connections.
    #[arg(long, env = "BFF_DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// How long a request waits for a pooled connection before failing with 503.
    #[arg(long, env = "BFF_DATABASE_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub database_acquire_timeout: Duration,
    /// Apply pending migrations at start. Default: yes in the dev profile; no in
    /// prod, where `serve` refuses to start on a schema that is behind.
    #[arg(long, env = "BFF_MIGRATE_ON_START")]
    pub migrate_on_start: Option<bool>,
}

/// Redis settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Redis")]
pub struct RedisArgs {
    /// Connection URL.
    #[arg(long, env = "BFF_REDIS_URL", default_value = "redis://127.0.0.1:6379", value_parser = parse_secret, hide_env_values = true)]
    pub redis_url: SecretString,
    /// Prefix of every key this deployment writes, so several deployments or test
    /// runs can share one Redis.
    #[arg(long, env = "BFF_REDIS_PREFIX", default_value = "bff:")]
    pub redis_prefix: String,
}

/// NATS settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "NATS")]
pub struct NatsArgs {
    /// Server URL.
    #[arg(long, env = "BFF_NATS_URL", default_value = "nats://127.0.0.1:4222", value_parser = parse_secret, hide_env_values = true)]
    pub nats_url: SecretString,
    /// Prefix of the JetStream stream names and subjects this deployment owns;
    /// empty in production so the names are the contract's, set by tests to
    /// isolate runs that share one server.
    #[arg(long, env = "BFF_NATS_PREFIX", default_value = "")]
    pub nats_prefix: String,
}

impl BackendArgs {
    /// Refuses deadlines that contradict each other, which would otherwise be
    /// capped or ignored without a word.
    pub fn validate(&self) -> Result<(), String> {
        let whole = self.dashboard_deadline;
        if whole.is_zero() {
            return Err("BFF_DASHBOARD_DEADLINE must be more than zero".to_owned());
        }
        for (name, deadline) in [
            (
                "BFF_DASHBOARD_DATABASE_DEADLINE",
                self.dashboard_database_deadline,
            ),
            (
                "BFF_DASHBOARD_ORDERS_DEADLINE",
                self.dashboard_orders_deadline,
            ),
            (
                "BFF_DASHBOARD_LOYALTY_DEADLINE",
                self.dashboard_loyalty_deadline,
            ),
        ] {
            if deadline.is_zero() || deadline > whole {
                return Err(format!(
                    "{name} ({deadline:?}) must be more than zero and at most BFF_DASHBOARD_DEADLINE ({whole:?})"
                ));
            }
        }
        let hedge = self.dashboard_hedge_after;
        if !hedge.is_zero() && hedge >= self.dashboard_orders_deadline {
            return Err(format!(
                "BFF_DASHBOARD_HEDGE_AFTER ({hedge:?}) must be shorter than BFF_DASHBOARD_ORDERS_DEADLINE ({:?}), or 0s for no hedging",
                self.dashboard_orders_deadline
            ));
        }
        if self.orders_timeout.is_zero() {
            return Err("BFF_ORDERS_TIMEOUT must be more than zero".to_owned());
        }
        Ok(())
    }
}

impl OutboxArgs {
    /// The relay's settings.
    pub fn relay_config(&self) -> crate::messaging::outbox::RelayConfig {
        crate::messaging::outbox::RelayConfig {
            poll_interval: self.outbox_poll_interval,
            batch_size: self.outbox_batch_size,
            retention: self.outbox_retention,
        }
    }
}

impl DatabaseArgs {
    /// Whether migrations are applied at start under `profile`.
    pub fn migrate_on_start(&self, profile: Profile) -> bool {
        self.migrate_on_start.unwrap_or(profile == Profile::Dev)
    }
}

fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

fn parse_origin(value: &str) -> Result<HeaderValue, String> {
    let url =
        url::Url::parse(value.trim()).map_err(|e| format!("{value:?} is not an origin: {e}"))?;
    let origin = url.origin();
    if !origin.is_tuple() || !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{value:?} is not an http(s) origin"));
    }
    let serialized = origin.ascii_serialization();
    if serialized != value.trim().trim_end_matches('/') {
        return Err(format!(
            "{value:?} has a path, query or credentials; an origin is scheme://host[:port]"
        ));
    }
    HeaderValue::from_str(&serialized).map_err(|e| e.to_string())
}

/// A URL reduced to scheme, host, port and path, for logs.
///
/// Credentials can hide in more places than the password (a token as the user
/// name, `?password=` in the query), so user info and query are left out whole.
pub fn redacted(url: &SecretString) -> String {
    match url::Url::parse(url.expose_secret()) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or_default();
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{host}{port}{}", parsed.scheme(), parsed.path())
        }
        Err(_) => "<unparseable URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_point_at_local_services() {
        let cli = Cli::try_parse_from(["bff"]).expect("parses");
        let Command::Serve(serve) = cli.into_command() else {
            panic!("serve is the default")
        };
        assert_eq!(serve.http.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(serve.redis.redis_prefix, "bff:");
        assert_eq!(serve.common.profile, Profile::Dev);
        assert!(serve.database.migrate_on_start(Profile::Dev));
        assert!(!serve.database.migrate_on_start(Profile::Prod));
        assert_eq!(serve.codes.code_ttl, Duration::from_secs(600));
        assert!(serve.notifier.notifier && serve.outbox.outbox_relay);
    }

    #[test]
    fn quotas_and_proxies_are_checked() {
        let quota = parse_quota("300/1m").expect("valid");
        assert_eq!(
            (quota.count(), quota.period()),
            (300, Duration::from_secs(60))
        );
        for bad in ["300", "0/1m", "x/1m", "10/0s", "10/soon"] {
            assert!(parse_quota(bad).is_err(), "{bad}");
        }
        assert!(Cli::try_parse_from(["bff", "--trusted-proxies", "10.0.0.0/8,::1"]).is_ok());
        assert!(Cli::try_parse_from(["bff", "--trusted-proxies", "10.0.0.0/99"]).is_err());
    }

    #[test]
    fn contradictory_dashboard_deadlines_are_refused() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).expect("parses");
            let Command::Serve(serve) = cli.into_command() else {
                panic!("serve")
            };
            serve.backends.validate()
        };
        assert!(parse(&["bff"]).is_ok());
        assert!(parse(&["bff", "--dashboard-hedge-after", "50ms"]).is_ok());
        for bad in [
            &["bff", "--dashboard-orders-deadline", "2s"][..],
            &["bff", "--dashboard-loyalty-deadline", "0s"],
            &["bff", "--dashboard-deadline", "0s"],
            &["bff", "--dashboard-hedge-after", "300ms"],
            &["bff", "--orders-timeout", "0s"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_code_ttl_above_ten_minutes_is_refused() {
        assert!(Cli::try_parse_from(["bff", "--code-ttl", "11m"]).is_err());
        assert!(Cli::try_parse_from(["bff", "--code-ttl", "0s"]).is_err());
        assert!(Cli::try_parse_from(["bff", "--code-ttl", "5m"]).is_ok());
    }

    #[test]
    fn origins_are_checked() {
        assert_eq!(
            parse_origin("https://app.example.com").ok(),
            Some(HeaderValue::from_static("https://app.example.com"))
        );
        assert!(parse_origin("http://localhost:3000/").is_ok());
        for bad in [
            "*",
            "app.example.com",
            "https://app.example.com/path",
            "ftp://x.example",
            "https://u:p@x.example",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_are_left_out_of_logged_urls() {
        for (url, logged) in [
            (
                "postgres://app:hunter2@db:5432/bff",
                "postgres://db:5432/bff",
            ),
            (
                "postgres://app@db/bff?password=hunter2&sslmode=require",
                "postgres://db/bff",
            ),
            ("nats://hunter2@nats:4222", "nats://nats:4222"),
            (
                "redis://:hunter2@127.0.0.1:6379/0",
                "redis://127.0.0.1:6379/0",
            ),
        ] {
            let secret = SecretString::from(url);
            assert_eq!(redacted(&secret), logged);
            assert!(!format!("{secret:?}").contains("hunter2"));
        }
    }
}
