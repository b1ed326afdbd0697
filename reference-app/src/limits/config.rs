//! The rate limits' settings.

use clap::{Args, ValueEnum};

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
    /// Failed logins per client IP, whatever the identifier.
    #[arg(long, env = "BFF_RATE_LIMIT_LOGIN_PER_IP", default_value = "30/1m", value_parser = parse_quota)]
    pub rate_limit_login_per_ip: bff_cache::ratelimit::Quota,
    /// Consecutive failed logins of one identifier from one client address
    /// (IPv6 by /64) that lock that pair; a success starts the count over.
    #[arg(long, env = "BFF_LOGIN_LOCK_AFTER", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub login_lock_after: u32,
    /// The first lock's length; each further lock of the pair doubles it, up to 24 hours.
    #[arg(long, env = "BFF_LOGIN_LOCK_FOR", default_value = "15m", value_parser = parse_lock)]
    pub login_lock_for: std::time::Duration,
    /// Failed logins of one identifier from all clients together, past which
    /// only a device the owner signed in from (its device cookie) may try.
    #[arg(long, env = "BFF_LOGIN_FAILURES_PER_IDENTIFIER", default_value = "100/24h", value_parser = parse_quota)]
    pub login_failures_per_identifier: bff_cache::ratelimit::Quota,
    /// Wrong verification codes (register, confirm-reset-password) per client IP.
    #[arg(long, env = "BFF_RATE_LIMIT_CODE_FAILURES_PER_IP", default_value = "20/1h", value_parser = parse_quota)]
    pub rate_limit_code_failures_per_ip: bff_cache::ratelimit::Quota,
    /// Verification codes sent by SMS, all numbers together: a budget against
    /// SMS pumping (`count/period`).
    #[arg(long, env = "BFF_RATE_LIMIT_SMS", default_value = "1000/1h", value_parser = parse_quota)]
    pub rate_limit_sms: bff_cache::ratelimit::Quota,
    /// Verification codes sent by SMS to the numbers of one country calling code.
    #[arg(long, env = "BFF_RATE_LIMIT_SMS_PER_COUNTRY", default_value = "200/1h", value_parser = parse_quota)]
    pub rate_limit_sms_per_country: bff_cache::ratelimit::Quota,
    /// Social-login flows started, finished or exchanged per client IP.
    #[arg(long, env = "BFF_RATE_LIMIT_OAUTH_PER_IP", default_value = "30/1m", value_parser = parse_quota)]
    pub rate_limit_oauth_per_ip: bff_cache::ratelimit::Quota,
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
pub(crate) fn parse_quota(value: &str) -> Result<bff_cache::ratelimit::Quota, String> {
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

/// A lock's length: from a second to a day.
fn parse_lock(value: &str) -> Result<std::time::Duration, String> {
    let lock = humantime::parse_duration(value.trim()).map_err(|e| format!("{value:?}: {e}"))?;
    if !(std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(24 * 3600))
        .contains(&lock)
    {
        return Err(format!("{value:?}: a lock lasts from 1s to 24h"));
    }
    Ok(lock)
}

/// A trusted proxy: an address or a CIDR network (`10.0.0.0/8`, `::1`).
pub fn parse_cidr(value: &str) -> Result<String, String> {
    bff_cache::ratelimit::ClientIp::new()
        .trust_cidr(value)
        .map(|_| value.trim().to_owned())
}

impl From<OnRedisError> for bff_cache::ratelimit::OnRedisError {
    fn from(choice: OnRedisError) -> Self {
        match choice {
            OnRedisError::Fallback => Self::FallBackToMemory,
            OnRedisError::Refuse => Self::Refuse,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::config::Cli;

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
        for bad in [
            ["bff", "--login-lock-for", "0s"],
            ["bff", "--login-lock-for", "2days"],
            ["bff", "--login-lock-after", "0"],
            ["bff", "--login-failures-per-identifier", "0/1h"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
