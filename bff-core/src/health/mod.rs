//! Liveness and readiness: `/healthz/live` and `/healthz/ready`.
//!
//! Liveness says the process answers. Readiness runs every registered
//! [`ReadinessCheck`] concurrently, each bounded by a timeout, and answers 200
//! when all pass or a 503 problem that names what is down. A check added with
//! [`Readiness::with_optional_check`] only degrades the answer (200, `status:
//! "degraded"`): for a dependency whose outage the service absorbs. Checks for Postgres,
//! Redis and NATS sit behind the `postgres`, `redis` and `nats` features. Driver
//! messages go to the log, never to the response.
//!
//! ```
//! use bff_core::health::{BoxFuture, CheckError, ReadinessCheck, Readiness};
//!
//! struct AlwaysUp;
//!
//! impl ReadinessCheck for AlwaysUp {
//!     fn name(&self) -> &str { "always_up" }
//!     fn check(&self) -> BoxFuture<'_, Result<(), CheckError>> {
//!         Box::pin(async { Ok(()) })
//!     }
//! }
//!
//! let readiness = Readiness::new().with_check(AlwaysUp);
//! // With the `openapi` feature: the two routes, documented.
//! # #[cfg(feature = "openapi")]
//! let router: aide::axum::ApiRouter = bff_core::health::routes(readiness.clone());
//! # #[cfg(feature = "openapi")]
//! # let _ = router;
//! // Without it: the same answers on plain axum routes.
//! let router: axum::Router = axum::Router::new()
//!     .route("/healthz/live", axum::routing::get(|| async { "alive" }))
//!     .route("/healthz/ready", axum::routing::get(move || async move { readiness.respond().await }));
//! # let _ = router;
//! ```

#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(feature = "openapi")]
use aide::axum::ApiRouter;
#[cfg(feature = "openapi")]
use aide::axum::routing::get_with;
use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub use self::nats::NatsCheck;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use self::postgres::PostgresCheck;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisCheck;
#[cfg(feature = "openapi")]
use crate::openapi::Documented;
use crate::problem::Problem;

/// A boxed future, as returned by [`ReadinessCheck::check`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a dependency is not ready; logged, never sent to clients.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CheckError(Box<dyn std::error::Error + Send + Sync>);

impl CheckError {
    /// Wraps any error.
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(error.into())
    }
}

/// A dependency the service needs in order to serve traffic.
pub trait ReadinessCheck: Send + Sync + 'static {
    /// Name reported in the readiness answer (`postgres`, `redis`, ...).
    fn name(&self) -> &str;

    /// Resolves to `Ok` when the dependency answers. It need not bound its own
    /// duration: [`Readiness`] applies a timeout.
    fn check(&self) -> BoxFuture<'_, Result<(), CheckError>>;
}

/// The set of readiness checks of one service.
#[derive(Clone)]
pub struct Readiness {
    checks: Vec<(Arc<dyn ReadinessCheck>, bool)>,
    timeout: Duration,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.checks.iter().map(|(c, _)| c.name()).collect();
        f.debug_struct("Readiness")
            .field("checks", &names)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Status of one dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// It answered in time.
    Up,
    /// It answered with an error.
    Down,
    /// It did not answer within the timeout.
    Timeout,
}

/// Result of one check.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct CheckResult {
    /// The outcome.
    pub status: CheckStatus,
    /// How long the check took, in milliseconds.
    pub duration_ms: u64,
    /// Whether the service is not ready without it. A dependency that is not
    /// required (one whose outage the service absorbs) only degrades it.
    pub required: bool,
}

/// The readiness answer: every check by name.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ReadinessReport {
    /// `ready` when every check is up, `degraded` when only checks that are
    /// not required are failing (still ready), `not_ready` otherwise.
    pub status: String,
    /// Each check's result, by name.
    pub checks: BTreeMap<String, CheckResult>,
}

impl ReadinessReport {
    /// Whether every required check is up.
    pub fn is_ready(&self) -> bool {
        self.checks
            .values()
            .all(|c| !c.required || c.status == CheckStatus::Up)
    }

    /// Names of the required checks that are not up.
    pub fn failing(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|(_, c)| c.required && c.status != CheckStatus::Up)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// Names of the checks that are not required and not up.
    pub fn degraded(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|(_, c)| !c.required && c.status != CheckStatus::Up)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

impl Readiness {
    /// No checks yet, a 2 s timeout per check.
    pub fn new() -> Self {
        Self {
            checks: Vec::new(),
            timeout: Duration::from_secs(2),
        }
    }

    /// Adds a check the service is not ready without.
    pub fn with_check(mut self, check: impl ReadinessCheck) -> Self {
        self.checks.push((Arc::new(check), true));
        self
    }

    /// Adds a check whose failure only degrades the service: it is reported
    /// (`status: "degraded"`, the check `down`) but readiness stays 200. For a
    /// dependency whose outage the service absorbs, so that an orchestrator
    /// does not pull every instance at once over it.
    pub fn with_optional_check(mut self, check: impl ReadinessCheck) -> Self {
        self.checks.push((Arc::new(check), false));
        self
    }

    /// Adds `check`, required or not.
    pub fn with_check_required(self, check: impl ReadinessCheck, required: bool) -> Self {
        if required {
            self.with_check(check)
        } else {
            self.with_optional_check(check)
        }
    }

    /// Sets the per-check timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs every check concurrently.
    pub async fn run(&self) -> ReadinessReport {
        let mut set = tokio::task::JoinSet::new();
        let mut names = std::collections::HashMap::new();
        for (check, required) in &self.checks {
            let (check, required) = (Arc::clone(check), *required);
            let name = check.name().to_owned();
            let timeout = self.timeout;
            let task = set.spawn(async move {
                let start = Instant::now();
                let status = match tokio::time::timeout(timeout, check.check()).await {
                    Ok(Ok(())) => CheckStatus::Up,
                    Ok(Err(error)) => {
                        tracing::warn!(check = check.name(), %error, "readiness check failed");
                        CheckStatus::Down
                    }
                    Err(_) => {
                        tracing::warn!(check = check.name(), ?timeout, "readiness check timed out");
                        CheckStatus::Timeout
                    }
                };
                let duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
                (
                    check.name().to_owned(),
                    CheckResult {
                        status,
                        duration_ms,
                        required,
                    },
                )
            });
            names.insert(task.id(), (name, required));
        }
        let mut checks = BTreeMap::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((name, result)) => {
                    checks.insert(name, result);
                }
                Err(error) => {
                    // A check that panics is a broken check: its dependency counts as down.
                    let (name, required) = names.remove(&error.id()).unwrap_or_default();
                    tracing::error!(check = %name, %error, "readiness check panicked");
                    checks.insert(
                        name,
                        CheckResult {
                            status: CheckStatus::Down,
                            duration_ms: 0,
                            required,
                        },
                    );
                }
            }
        }
        let mut report = ReadinessReport {
            status: String::new(),
            checks,
        };
        report.status = if !report.is_ready() {
            "not_ready"
        } else if report.degraded().is_empty() {
            "ready"
        } else {
            "degraded"
        }
        .to_owned();
        report
    }

    /// The readiness answer: 200 with the report, or a 503 problem naming what is down
    /// (`detail` lists the names, the `checks` member has the report).
    pub async fn respond(&self) -> Response {
        let report = self.run().await;
        if report.is_ready() {
            return Json(report).into_response();
        }
        let detail = format!("Not ready: {}.", report.failing().join(", "));
        let checks = serde_json::to_value(&report.checks).unwrap_or_default();
        Problem::unavailable(detail)
            .with_extension("checks", checks)
            .into_response()
    }
}

/// `GET /healthz/live` and `GET /healthz/ready`, documented for OpenAPI.
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub fn routes<S>(readiness: Readiness) -> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    ApiRouter::new()
        .api_route(
            "/healthz/live",
            get_with(
                || async { Json(Liveness { status: "alive" }) },
                |op| op.tag("operations").summary("Liveness").description("The process is up and answering."),
            ),
        )
        .api_route(
            "/healthz/ready",
            get_with(
                move || {
                    let readiness = readiness.clone();
                    async move { Documented(readiness.respond().await) }
                },
                |op| {
                    op.tag("operations")
                        .summary("Readiness")
                        .description("Every required dependency answers (200; `status` is `degraded` when one that is not required does not); 503 names the required ones that do not.")
                        .response::<200, Json<ReadinessReport>>()
                        .response_with::<503, Problem, _>(|r| r.description("A dependency is down; `detail` names it."))
                },
            ),
        )
}

#[cfg(feature = "openapi")]
#[derive(Serialize, schemars::JsonSchema)]
struct Liveness {
    status: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, Option<Duration>, bool);

    impl ReadinessCheck for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        fn check(&self) -> BoxFuture<'_, Result<(), CheckError>> {
            Box::pin(async move {
                if let Some(delay) = self.1 {
                    tokio::time::sleep(delay).await;
                }
                if self.2 {
                    Ok(())
                } else {
                    Err(CheckError::new("connection refused (os error 111)"))
                }
            })
        }
    }

    struct Panics;

    impl ReadinessCheck for Panics {
        fn name(&self) -> &str {
            "flaky"
        }
        fn check(&self) -> BoxFuture<'_, Result<(), CheckError>> {
            Box::pin(async { panic!("bug in a check") })
        }
    }

    #[tokio::test]
    async fn a_panicking_check_is_down_under_its_own_name() {
        let report = Readiness::new()
            .with_check(Panics)
            .with_check(Fixed("db", None, true))
            .run()
            .await;
        assert_eq!(report.checks["flaky"].status, CheckStatus::Down);
        assert_eq!(report.checks["db"].status, CheckStatus::Up);
    }

    #[tokio::test]
    async fn all_up_is_ready() {
        let report = Readiness::new()
            .with_check(Fixed("a", None, true))
            .with_check(Fixed("b", None, true))
            .run()
            .await;
        assert!(report.is_ready());
        assert_eq!(report.checks.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn down_and_slow_are_named() {
        let report = Readiness::new()
            .with_timeout(Duration::from_millis(100))
            .with_check(Fixed("db", None, true))
            .with_check(Fixed("cache", None, false))
            .with_check(Fixed("broker", Some(Duration::from_secs(5)), true))
            .run()
            .await;
        assert!(!report.is_ready());
        assert_eq!(report.checks["cache"].status, CheckStatus::Down);
        assert_eq!(report.checks["broker"].status, CheckStatus::Timeout);
        assert_eq!(report.failing(), vec!["broker", "cache"]);
    }

    #[tokio::test]
    async fn not_ready_is_a_503_problem_without_driver_detail() {
        use http_body_util::BodyExt;
        let response = Readiness::new()
            .with_check(Fixed("redis", None, false))
            .respond()
            .await;
        assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(body["code"], "unavailable");
        assert!(body["detail"].as_str().is_some_and(|d| d.contains("redis")));
        assert_eq!(body["checks"]["redis"]["status"], "down");
        assert!(!body.to_string().contains("refused"));
    }

    #[tokio::test]
    async fn an_optional_check_down_is_degraded_but_ready() {
        let readiness = Readiness::new()
            .with_check(Fixed("db", None, true))
            .with_optional_check(Fixed("broker", None, false));
        let report = readiness.run().await;
        assert!(report.is_ready());
        assert_eq!(report.status, "degraded");
        assert!(report.failing().is_empty());
        assert_eq!(report.degraded(), vec!["broker"]);
        assert_eq!(readiness.respond().await.status(), http::StatusCode::OK);
        // Required, the same failure is not ready.
        let report = Readiness::new()
            .with_check_required(Fixed("broker", None, false), true)
            .run()
            .await;
        assert_eq!(report.status, "not_ready");
    }
}
