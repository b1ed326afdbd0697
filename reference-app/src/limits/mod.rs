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
}

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
        redis: redis::aio::ConnectionManager,
        prefix: &str,
        args: &RateLimitArgs,
        trusted_proxies: &[String],
        secret: bff_auth::code::CodeSecret,
    ) -> Result<Self, String> {
        let mut client_ip = ClientIp::new();
        for cidr in trusted_proxies {
            client_ip = client_ip.trust_cidr(cidr)?;
        }
        Ok(Self {
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
            backend: Arc::new(RedisBackend::new(
                redis,
                format!("{prefix}rl:"),
                args.rate_limit_on_redis_error.into(),
            )),
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
