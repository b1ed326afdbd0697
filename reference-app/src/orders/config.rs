//! The settings of `bff orders`, and where the orders service keeps its data
//! (also read by `serve` and `migrate`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;

use crate::auth::config::ClaimArgs;
use crate::config::{CommonArgs, parse_secret};
use crate::db::DatabaseArgs;
use crate::messaging::config::{NatsArgs, OutboxArgs};

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
    /// Serve gRPC reflection (service listing for grpcurl and the like); by
    /// default on in the dev profile and off in prod.
    #[arg(long, env = "BFF_ORDERS_REFLECTION", action = clap::ArgAction::Set)]
    pub orders_reflection: Option<bool>,
    /// Answer loyalty requests (`loyalty.points.get`) in this process too.
    #[arg(long, env = "BFF_LOYALTY_RESPONDER", default_value_t = true, action = clap::ArgAction::Set)]
    pub loyalty_responder: bool,
    /// How long in-flight calls may take to finish after SIGTERM.
    #[arg(long, env = "BFF_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
}

impl OrdersArgs {
    /// Whether reflection is served: as set, else in the dev profile only.
    pub fn reflection(&self) -> bool {
        self.orders_reflection
            .unwrap_or(self.common.profile == crate::config::Profile::Dev)
    }
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::{Cli, Command};

    fn reflection(args: &[&str]) -> bool {
        let mut argv = vec!["bff", "orders"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).map(Cli::into_command) {
            Ok(Command::Orders(orders)) => orders.reflection(),
            other => panic!("orders: {other:?}"),
        }
    }

    #[test]
    fn reflection_is_off_in_prod_unless_asked_for() {
        assert!(reflection(&[]));
        assert!(!reflection(&["--profile", "prod"]));
        assert!(reflection(&[
            "--profile",
            "prod",
            "--orders-reflection",
            "true"
        ]));
        assert!(!reflection(&["--orders-reflection", "false"]));
    }
}
