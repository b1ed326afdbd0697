//! Rate limits: a limit per client IP on every API request and per user on
//! every authenticated one (tower layers from `bff-cache`), and login limits
//! per IP and per identifier, checked in the handler where the identifier is
//! known. State is shared by every instance through Redis.

use std::sync::Arc;

use bff_cache::ratelimit::{
    Backend, ClientIp, Policy, Quota, RateLimitLayer, RedisBackend, UserId, rejection,
};
use bff_core::Problem;

use crate::config::{OnRedisError, RateLimitArgs};

/// The limiter and its settings.
#[derive(Clone)]
pub struct Limits {
    backend: Arc<dyn Backend>,
    /// Who the client is (the peer, or what trusted proxies report).
    pub client_ip: ClientIp,
    enabled: bool,
    per_ip: Quota,
    per_user: Quota,
    login_per_ip: Quota,
    login_per_identifier: Quota,
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

impl Limits {
    /// Limits in Redis under `prefix`, with `args`; `trusted_proxies` are CIDRs.
    pub fn new(
        redis: redis::aio::ConnectionManager,
        prefix: &str,
        args: &RateLimitArgs,
        trusted_proxies: &[String],
    ) -> Result<Self, String> {
        let mut client_ip = ClientIp::new();
        for cidr in trusted_proxies {
            client_ip = client_ip.trust_cidr(cidr)?;
        }
        let on_error = match args.rate_limit_on_redis_error {
            OnRedisError::Fallback => bff_cache::ratelimit::OnRedisError::FallBackToMemory,
            OnRedisError::Refuse => bff_cache::ratelimit::OnRedisError::Refuse,
        };
        Ok(Self {
            backend: Arc::new(RedisBackend::new(redis, format!("{prefix}rl:"), on_error)),
            client_ip,
            enabled: args.rate_limit,
            per_ip: args.rate_limit_per_ip,
            per_user: args.rate_limit_per_user,
            login_per_ip: args.rate_limit_login_per_ip,
            login_per_identifier: args.rate_limit_login_per_identifier,
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

    /// Counts a login attempt from `ip` for `identifier`; 429 when either
    /// limit is exhausted.
    pub async fn login(&self, ip: Option<&str>, identifier: &str) -> Result<(), Problem> {
        if !self.enabled {
            return Ok(());
        }
        if let Some(ip) = ip {
            self.check("login_ip", self.login_per_ip, ip).await?;
        }
        self.check("login_identifier", self.login_per_identifier, identifier)
            .await
    }

    async fn check(&self, name: &str, quota: Quota, key: &str) -> Result<(), Problem> {
        let decision = match self.backend.check(&format!("{name}:{key}"), &quota).await {
            Ok(decision) => decision,
            Err(error) => {
                tracing::error!(%error, "rate limiter unavailable; refusing");
                return Err(Problem::unavailable(
                    "The service is temporarily unavailable; try again shortly.",
                ));
            }
        };
        metrics::counter!("bff_ratelimit_decisions_total", "policy" => name.to_owned(), "outcome" => if decision.allowed { "allowed" } else { "limited" }).increment(1);
        if decision.allowed {
            return Ok(());
        }
        Err(rejection(name, &quota, &decision, "Too many attempts."))
    }
}
