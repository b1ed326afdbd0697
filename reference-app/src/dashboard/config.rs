//! How `serve` reaches the orders service and the loyalty responder, and the
//! dashboard's deadlines.

use std::time::Duration;

use bff_aggregate::{BreakerConfig, CircuitBreaker};
use clap::Args;

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

/// Deadlines and resilience of the dashboard's sources.
#[derive(Debug, Clone)]
pub struct DashboardSettings {
    /// The whole request's deadline.
    pub deadline: Duration,
    /// Profile and wallets (Postgres).
    pub database: Duration,
    /// Recent orders (gRPC).
    pub orders: Duration,
    /// Loyalty (NATS).
    pub loyalty: Duration,
    /// Hedge the recent-orders call after this long, if set.
    pub hedge_after: Option<Duration>,
    /// How long a complete dashboard is cached per user (zero: not cached).
    pub cache_ttl: Duration,
}

impl BackendArgs {
    /// The dashboard's deadlines.
    pub fn dashboard(&self) -> DashboardSettings {
        DashboardSettings {
            deadline: self.dashboard_deadline,
            database: self.dashboard_database_deadline,
            orders: self.dashboard_orders_deadline,
            loyalty: self.dashboard_loyalty_deadline,
            hedge_after: (!self.dashboard_hedge_after.is_zero())
                .then_some(self.dashboard_hedge_after),
            cache_ttl: self.dashboard_cache_ttl,
        }
    }

    /// A circuit breaker for one backend.
    pub fn breaker(&self) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: self.breaker_failures,
            open_for: self.breaker_open_for,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::{Cli, Command};

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
}
