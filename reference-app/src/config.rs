//! The `bff` command line: its subcommands and the settings each takes.
//!
//! Every setting is a flag and a `BFF_*` environment variable. Each component
//! declares its own settings beside it (`auth/config.rs`,
//! `messaging/config.rs`, ...); this module flattens them into the
//! subcommands, so `bff serve --help` lists them all.

use std::path::PathBuf;
use std::time::Duration;

use bff_core::redis_client::{RedisConnectError, RedisConnection, RedisOptions};
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

pub use crate::auth::config::{AuthArgs, ClaimArgs, CodeArgs, PasswordArgs};
pub use crate::dashboard::config::BackendArgs;
pub use crate::db::DatabaseArgs;
pub use crate::http::config::HttpArgs;
pub use crate::limits::{OnRedisError, RateLimitArgs};
pub use crate::messaging::config::{
    EmailSenderKind, NatsArgs, NotifierArgs, OutboxArgs, SmsSenderKind, SmtpTls,
};
pub use crate::orders::config::{OrdersArgs, OrdersStoreArgs};
pub use crate::seed::SeedPasswordArgs;
pub use crate::wallets::config::MoneyArgs;

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
    /// The level is set with `RUST_LOG` (default `info`, with Postgres's notices
    /// only from `warn`).
    #[arg(long, env = "BFF_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// OpenTelemetry traces over OTLP, configured by the standard `OTEL_*`
    /// variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL`,
    /// `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, ...). Off by default: no
    /// exporter runs.
    #[arg(long, env = "BFF_TRACING", default_value_t = false, action = clap::ArgAction::Set)]
    pub tracing: bool,
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
    pub money: MoneyArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub backends: BackendArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub orders_store: OrdersStoreArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub oauth: crate::oauth::OAuthArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub browser: crate::browser::BrowserArgs,
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

/// Redis settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Redis")]
pub struct RedisArgs {
    /// Connection URL: `redis://[user:password@]host:port[/db]`; in cluster mode a
    /// comma-separated list of seed nodes (any one that answers is enough).
    #[arg(long, env = "BFF_REDIS_URL", default_value = "redis://127.0.0.1:6379", value_parser = parse_secret, hide_env_values = true)]
    pub redis_url: SecretString,
    /// Redis Cluster mode: keys are spread over the cluster's nodes by hash slot,
    /// and failovers are followed.
    #[arg(long, env = "BFF_REDIS_CLUSTER", default_value_t = false, action = clap::ArgAction::Set)]
    pub redis_cluster: bool,
    /// CA certificate (PEM) that the servers' TLS certificates must chain to,
    /// for `rediss://` URLs (without it, the system's roots).
    #[arg(long, env = "BFF_REDIS_CA_FILE")]
    pub redis_ca_file: Option<std::path::PathBuf>,
    /// Prefix of every key this deployment writes, so several deployments or test
    /// runs can share one Redis.
    #[arg(long, env = "BFF_REDIS_PREFIX", default_value = "bff:")]
    pub redis_prefix: String,
}

impl RedisArgs {
    /// How to connect: bounded connect and response times, the CA file read.
    /// A CA for URLs that are not all `rediss://` is refused: it would be
    /// ignored, and the connection would not be the TLS one it asks for.
    pub fn options(&self) -> Result<RedisOptions, String> {
        let ca_pem = match &self.redis_ca_file {
            None => None,
            Some(path) => {
                let tls = self
                    .redis_url
                    .expose_secret()
                    .split(',')
                    .all(|url| url.trim().starts_with("rediss://"));
                if !tls {
                    return Err(
                        "BFF_REDIS_CA_FILE is set but BFF_REDIS_URL is not rediss://".into(),
                    );
                }
                Some(
                    std::fs::read(path)
                        .map_err(|e| format!("BFF_REDIS_CA_FILE {}: {e}", path.display()))?,
                )
            }
        };
        Ok(RedisOptions {
            cluster: self.redis_cluster,
            connect_timeout: CONNECT_TIMEOUT,
            response_timeout: Duration::from_secs(2),
            retries: 2,
            ca_pem,
        })
    }

    /// A connection to the configured Redis node or cluster with `options`:
    /// reconnects on its own.
    pub async fn connect(
        &self,
        options: &RedisOptions,
    ) -> Result<RedisConnection, RedisConnectError> {
        RedisConnection::connect(self.redis_url.expose_secret(), options).await
    }
}

/// Connection attempts at start: generous enough for services that start
/// together (compose), short enough that a wrong URL fails visibly.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A secret setting: kept out of `Debug` and logs.
pub(crate) fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

/// A URL reduced to scheme, host, port and path, for logs.
///
/// Credentials can hide in more places than the password (a token as the user
/// name, `?password=` in the query), so user info and query are left out whole.
/// A comma-separated list of URLs is reduced URL by URL.
pub fn redacted(url: &SecretString) -> String {
    url.expose_secret()
        .split(',')
        .map(|one| match url::Url::parse(one.trim()) {
            Ok(parsed) => {
                let host = parsed.host_str().unwrap_or_default();
                let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
                format!("{}://{host}{port}{}", parsed.scheme(), parsed.path())
            }
            Err(_) => "<unparseable URL>".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
    fn a_redis_ca_needs_tls_urls_and_a_readable_file() {
        let redis = |url: &str, ca: Option<&str>| RedisArgs {
            redis_url: SecretString::from(url),
            redis_cluster: true,
            redis_ca_file: ca.map(std::path::PathBuf::from),
            redis_prefix: "bff:".into(),
        };
        let plain = redis("rediss://a:6379,redis://b:6379", Some("/etc/hostname"));
        assert!(
            plain
                .options()
                .expect_err("mixed")
                .contains("not rediss://")
        );
        let missing = redis("rediss://a:6379", Some("/nonexistent/ca.pem"));
        assert!(
            missing
                .options()
                .expect_err("no file")
                .contains("/nonexistent/ca.pem")
        );
        let options = redis("rediss://a:6379, rediss://b:6379", Some("/etc/hostname"))
            .options()
            .expect("TLS with a CA");
        assert!(options.cluster && options.ca_pem.is_some());
        assert!(redis("redis://a:6379", None).options().is_ok());
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
                "nats://u:hunter2@n1:4222, nats://u:hunter2@n2:4222",
                "nats://n1:4222,nats://n2:4222",
            ),
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
