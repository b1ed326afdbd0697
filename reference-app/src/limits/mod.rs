//! Rate limits: a limit per client IP on every API request and per user on
//! every authenticated one (tower layers from `bff-cache`), and the login
//! guard ([`login`]), which the auth service consults where the identifier is
//! known. State is shared by every instance through Redis.

mod config;
pub mod login;

use std::sync::Arc;

use bff_cache::ratelimit::{
    Backend, ClientIp, Decision, Policy, Quota, RateLimitLayer, RedisBackend, UserId, rejection,
};
use bff_core::Problem;

pub use self::config::{OnRedisError, RateLimitArgs, parse_cidr};
pub use self::login::{DeviceCookies, Failure, LoginGuard, LoginPolicy};
use crate::http::ApiError;

/// The limiter and its settings.
#[derive(Clone)]
pub struct Limits {
    backend: Arc<dyn Backend>,
    /// Who the client is (the peer, or what trusted proxies report).
    pub client_ip: ClientIp,
    enabled: bool,
    per_ip: Quota,
    per_user: Quota,
    /// The login guard.
    pub login: LoginGuard,
    /// The budget of text messages.
    pub sms: SmsBudget,
    /// Social-login steps per client.
    pub oauth: ClientBudget,
}

/// A budget per client address, for one kind of request a route counts
/// itself (social-login steps).
#[derive(Clone)]
pub struct ClientBudget {
    backend: Arc<dyn Backend>,
    enabled: bool,
    name: &'static str,
    quota: Quota,
}

impl std::fmt::Debug for ClientBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBudget")
            .field("name", &self.name)
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

impl ClientBudget {
    /// Takes one request of `client` (its address key) from the budget; a
    /// request with no known client shares one bucket with the others.
    pub async fn spend(&self, client: Option<&str>) -> Result<(), LimitError> {
        if !self.enabled {
            return Ok(());
        }
        spend(
            &*self.backend,
            self.name,
            self.quota,
            client.unwrap_or("unknown"),
            "Too many sign-in attempts from this network; try again later.",
        )
        .await
    }
}

/// The budget of verification codes sent by SMS, against SMS pumping (paid
/// messages to premium numbers): all numbers together, and per country
/// calling code, shared by every instance.
#[derive(Clone)]
pub struct SmsBudget {
    backend: Arc<dyn Backend>,
    enabled: bool,
    all: Quota,
    per_country: Quota,
}

impl std::fmt::Debug for SmsBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsBudget")
            .field("all", &self.all)
            .field("per_country", &self.per_country)
            .finish_non_exhaustive()
    }
}

impl SmsBudget {
    /// Spends one text message to a number of `country`, or refuses.
    pub async fn spend(&self, country: u16) -> Result<(), LimitError> {
        if !self.enabled {
            return Ok(());
        }
        spend(
            &*self.backend,
            "sms_country",
            self.per_country,
            &format!("+{country}"),
            SMS_DETAIL,
        )
        .await?;
        spend(&*self.backend, "sms", self.all, "all", SMS_DETAIL).await
    }
}

/// Takes one request from `name`'s bucket `key`; a limiter that cannot decide
/// refuses (a budget that is not kept is no budget).
async fn spend(
    backend: &dyn Backend,
    name: &'static str,
    quota: Quota,
    key: &str,
    detail: &'static str,
) -> Result<(), LimitError> {
    let decision = match backend.check(&format!("{name}:{key}"), &quota).await {
        Ok(decision) => decision,
        Err(error) => {
            tracing::error!(%error, policy = name, "rate limiter unavailable; refusing");
            return Err(LimitError::Unavailable);
        }
    };
    let outcome = if decision.allowed {
        "allowed"
    } else {
        "limited"
    };
    metrics::counter!("bff_ratelimit_decisions_total", "policy" => name, "outcome" => outcome)
        .increment(1);
    if decision.allowed {
        return Ok(());
    }
    Err(LimitError::Limited {
        name,
        quota,
        decision,
        detail,
    })
}

/// What a client over the SMS budget is told.
const SMS_DETAIL: &str =
    "Too many text messages are being sent; try again later or use an email address.";

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("enabled", &self.enabled)
            .field("per_ip", &self.per_ip)
            .field("per_user", &self.per_user)
            .finish_non_exhaustive()
    }
}

/// A request over a limit, or a limiter that could not decide.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// Over the limit `name`.
    #[error("rate limited by {name}")]
    Limited {
        /// The policy's name, e.g. `login_ip`.
        name: &'static str,
        /// Its quota.
        quota: Quota,
        /// The decision, with when to retry.
        decision: Decision,
        /// What the client is told.
        detail: &'static str,
    },
    /// The limiter's store is down: the request is refused, not let through.
    #[error("the rate limiter is unavailable")]
    Unavailable,
}

impl LimitError {
    /// A refusal by the policy `name` (`quota`) that lifts after `wait`,
    /// counted in `bff_ratelimit_decisions_total`.
    pub fn refused(
        name: &'static str,
        quota: Quota,
        wait: std::time::Duration,
        detail: &'static str,
    ) -> Self {
        metrics::counter!("bff_ratelimit_decisions_total", "policy" => name, "outcome" => "limited")
            .increment(1);
        Self::Limited {
            name,
            quota,
            decision: Decision {
                allowed: false,
                remaining: 0,
                reset: wait,
                retry_after: wait,
            },
            detail,
        }
    }
}

impl From<LimitError> for ApiError {
    fn from(error: LimitError) -> Self {
        match error {
            LimitError::Limited {
                name,
                quota,
                decision,
                detail,
            } => rejection(name, &quota, &decision, detail).into(),
            LimitError::Unavailable => {
                Problem::unavailable("The service is temporarily unavailable; try again shortly.")
                    .into()
            }
        }
    }
}

impl Limits {
    /// Limits in Redis under `prefix`, with `args`; `trusted_proxies` are
    /// CIDRs; `secret` names the login guard's keys.
    pub fn new(
        redis: bff_core::redis_client::RedisConnection,
        prefix: &str,
        args: &RateLimitArgs,
        trusted_proxies: &[String],
        secret: bff_auth::code::CodeSecret,
    ) -> Result<Self, String> {
        let mut client_ip = ClientIp::new();
        for cidr in trusted_proxies {
            client_ip = client_ip.trust_cidr(cidr)?;
        }
        let backend: Arc<dyn Backend> = Arc::new(RedisBackend::new(
            redis.clone(),
            format!("{prefix}rl:"),
            args.rate_limit_on_redis_error.into(),
        ));
        Ok(Self {
            sms: SmsBudget {
                backend: Arc::clone(&backend),
                enabled: args.rate_limit,
                all: args.rate_limit_sms,
                per_country: args.rate_limit_sms_per_country,
            },
            oauth: ClientBudget {
                backend: Arc::clone(&backend),
                enabled: args.rate_limit,
                name: "oauth_ip",
                quota: args.rate_limit_oauth_per_ip,
            },
            login: LoginGuard::new(
                redis.clone(),
                prefix,
                secret,
                LoginPolicy {
                    lock_after: args.login_lock_after,
                    lock_for: args.login_lock_for,
                    per_identifier: args.login_failures_per_identifier,
                    per_client: args.rate_limit_login_per_ip,
                    code_failures_per_client: args.rate_limit_code_failures_per_ip,
                },
                args.rate_limit,
            ),
            backend,
            client_ip,
            enabled: args.rate_limit,
            per_ip: args.rate_limit_per_ip,
            per_user: args.rate_limit_per_user,
        })
    }

    fn layer(&self) -> RateLimitLayer {
        RateLimitLayer::new(Arc::clone(&self.backend))
    }

    /// Every API request, per client IP.
    pub fn per_ip_layer(&self) -> RateLimitLayer {
        if !self.enabled {
            return self.layer();
        }
        self.layer()
            .policy(Policy::new("per_ip", self.per_ip, self.client_ip.clone()))
    }

    /// Every authenticated request, per user; goes inside the JWT layer.
    pub fn per_user_layer(&self) -> RateLimitLayer {
        if !self.enabled {
            return self.layer();
        }
        self.layer()
            .policy(Policy::new("per_user", self.per_user, UserId))
    }
}
