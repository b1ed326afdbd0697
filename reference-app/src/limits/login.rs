//! The login guard: password guessing is stopped without letting anyone lock
//! an owner out.
//!
//! - Only failures count. A success clears its (identifier, client) counter.
//! - A lock is per (identifier, client address; IPv6 by /64): `lock_after`
//!   consecutive failures lock that pair for `lock_for`, doubling at each
//!   repeat up to 24 hours. The owner on another network is not affected.
//! - Failures for one identifier from every client together have a ceiling
//!   (`per_identifier`, e.g. 100 a day, NIST SP 800-63B 5.2.2). Past it, the
//!   identifier is not locked: only a client that shows the owner's device
//!   cookie (issued at a successful login) may still try.
//! - Failures per client address, whatever the identifier, have their own
//!   limit against spraying one password over many accounts.
//!
//! Known and unknown identifiers go through the same steps, so neither the
//! answers nor their timing tell whether an account exists. Keys are named by
//! a keyed hash of the identifier: Redis holds no email addresses or phone
//! numbers. The keys of one identifier share a Redis hash tag.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::Instrument;

use bff_auth::code::CodeSecret;
use bff_cache::ratelimit::Quota;
use bff_core::redis_client::RedisConnection;
use subtle::ConstantTimeEq;

use super::LimitError;

/// Longest lock of one (identifier, client) pair.
const MAX_LOCK: Duration = Duration::from_secs(24 * 3600);
/// How long a pair's lock level is remembered after its last failure.
const MEMORY: Duration = Duration::from_secs(24 * 3600);
/// How long a device cookie is valid.
pub const DEVICE_COOKIE_MAX_AGE: Duration = Duration::from_secs(365 * 24 * 3600);
/// The device cookie's name.
pub const DEVICE_COOKIE: &str = "bff_device";

/// The guard's settings.
#[derive(Debug, Clone, Copy)]
pub struct LoginPolicy {
    /// Consecutive failures of one (identifier, client) pair that lock it.
    pub lock_after: u32,
    /// The first lock's length; each repeat doubles it, up to 24 hours.
    pub lock_for: Duration,
    /// Failures of one identifier from every client in a window, past which
    /// only a known device may try.
    pub per_identifier: Quota,
    /// Failures from one client address in a window, whatever the identifier.
    pub per_client: Quota,
    /// Wrong verification codes from one client address in a window.
    pub code_failures_per_client: Quota,
}

/// What a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Consecutive failures of the pair so far (0 right after a lock starts).
    pub consecutive: u32,
    /// The lock this failure started, if it started one.
    pub locked_for: Option<Duration>,
}

/// The login guard, in Redis.
#[derive(Clone)]
pub struct LoginGuard {
    redis: RedisConnection,
    prefix: String,
    devices: DeviceCookies,
    policy: LoginPolicy,
    enabled: bool,
}

impl std::fmt::Debug for LoginGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginGuard")
            .field("policy", &self.policy)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// Counts a failure of a pair, and starts its lock at the threshold.
/// KEYS: pair, lock, identifier-wide, clients. ARGV: lock_after, first lock ms,
/// longest lock ms, identifier window ms, memory ms, client.
const FAIL: &str = r"
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local locked = 0
if n >= tonumber(ARGV[1]) then
  local level = redis.call('HINCRBY', KEYS[1], 'level', 1)
  locked = math.min(tonumber(ARGV[2]) * 2 ^ (level - 1), tonumber(ARGV[3]))
  redis.call('SET', KEYS[2], '1', 'PX', locked)
  redis.call('HSET', KEYS[1], 'n', 0)
  n = 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local all = redis.call('INCR', KEYS[3])
if all == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[4]) end
redis.call('SADD', KEYS[4], ARGV[6])
redis.call('PEXPIRE', KEYS[4], ARGV[5])
return {n, locked}
";

/// A fixed-window counter. KEYS: counter. ARGV: window ms.
const COUNT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
";

// Scripts are hashed once; Redis runs them by hash (EVALSHA).
static FAIL_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(FAIL));
static COUNT_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(COUNT));

impl LoginGuard {
    /// The guard over `redis`, its keys under `prefix` and named with `secret`.
    pub fn new(
        redis: RedisConnection,
        prefix: &str,
        secret: CodeSecret,
        policy: LoginPolicy,
        enabled: bool,
    ) -> Self {
        Self {
            redis,
            prefix: format!("{prefix}login:"),
            devices: DeviceCookies::new(secret),
            policy,
            enabled,
        }
    }

    /// The keyed hash that names `identifier` in Redis and the audit log.
    pub fn identifier_hash(&self, identifier: &str) -> String {
        self.devices.identifier_hash(identifier)
    }

    fn identifier_key(&self, identifier: &str) -> String {
        // The hash tag keeps one identifier's keys in one cluster slot.
        format!("{}{{{}}}", self.prefix, self.identifier_hash(identifier))
    }

    fn client_key(&self, client: Option<&str>) -> String {
        format!("{}client:{}", self.prefix, client.unwrap_or("unknown"))
    }

    /// Whether `client` may try a password for `identifier` now; `device` is
    /// the request's device cookie, if any. Nothing is counted.
    pub async fn check(
        &self,
        identifier: &str,
        client: Option<&str>,
        device: Option<&str>,
    ) -> Result<(), LimitError> {
        if !self.enabled {
            return Ok(());
        }
        let id = self.identifier_key(identifier);
        let pair = client.unwrap_or("unknown");
        // The identifier's keys share a hash slot, the client's key has its
        // own: two pipelines (one node each in a cluster), sent together.
        let (mut by_identifier, mut by_client) = (self.redis.clone(), self.redis.clone());
        let mut identifier_pipe = redis::pipe();
        identifier_pipe
            .cmd("PTTL")
            .arg(format!("{id}:lock:{pair}"))
            .cmd("GET")
            .arg(format!("{id}:all"))
            .cmd("PTTL")
            .arg(format!("{id}:all"));
        let client_key = self.client_key(client);
        let mut client_pipe = redis::pipe();
        client_pipe
            .cmd("GET")
            .arg(&client_key)
            .cmd("PTTL")
            .arg(&client_key);
        let identifier_reads = identifier_pipe
            .query_async::<(i64, Option<u32>, i64)>(&mut by_identifier)
            .instrument(bff_core::redis_client::span("login_limit.check_identifier"));
        let client_reads = client_pipe
            .query_async::<(Option<u32>, i64)>(&mut by_client)
            .instrument(bff_core::redis_client::span("login_limit.check_client"));
        let (identifier_reads, client_reads) = tokio::join!(identifier_reads, client_reads);
        let (lock, all, all_ttl) = identifier_reads.map_err(unavailable)?;
        let (by_client, client_ttl) = client_reads.map_err(unavailable)?;
        let policy = &self.policy;
        if lock > 0 {
            let quota = Quota::new(policy.lock_after, policy.lock_for);
            return Err(refused("login_lock", quota, millis(lock), LOCKED));
        }
        if by_client.unwrap_or(0) >= policy.per_client.count() {
            return Err(refused(
                "login_ip",
                policy.per_client,
                millis(client_ttl),
                "Too many failed sign-ins from this address.",
            ));
        }
        if all.unwrap_or(0) >= policy.per_identifier.count()
            && !device.is_some_and(|cookie| self.devices().recognises(cookie, identifier))
        {
            return Err(refused(
                "login_identifier",
                policy.per_identifier,
                millis(all_ttl),
                CEILING,
            ));
        }
        Ok(())
    }

    /// Counts a failed password for `identifier` from `client`.
    pub async fn failed(
        &self,
        identifier: &str,
        client: Option<&str>,
    ) -> Result<Failure, LimitError> {
        if !self.enabled {
            return Ok(Failure {
                consecutive: 0,
                locked_for: None,
            });
        }
        let id = self.identifier_key(identifier);
        let pair = client.unwrap_or("unknown");
        let policy = &self.policy;
        let mut redis = self.redis.clone();
        let (consecutive, locked): (u32, u64) = FAIL_SCRIPT
            .key(format!("{id}:pair:{pair}"))
            .key(format!("{id}:lock:{pair}"))
            .key(format!("{id}:all"))
            .key(format!("{id}:clients"))
            .arg(policy.lock_after)
            .arg(ms(policy.lock_for))
            .arg(ms(MAX_LOCK.max(policy.lock_for)))
            .arg(ms(policy.per_identifier.period()))
            .arg(ms(MEMORY))
            .arg(pair)
            .invoke_async(&mut redis)
            .instrument(bff_core::redis_client::span("login_limit.failed"))
            .await
            .map_err(unavailable)?;
        let _: u32 = COUNT_SCRIPT
            .key(self.client_key(client))
            .arg(ms(policy.per_client.period()))
            .invoke_async(&mut redis)
            .instrument(bff_core::redis_client::span("login_limit.client_failed"))
            .await
            .map_err(unavailable)?;
        Ok(Failure {
            consecutive,
            locked_for: (locked > 0).then(|| Duration::from_millis(locked)),
        })
    }

    /// A success: the pair's counter and lock level start over.
    pub async fn succeeded(&self, identifier: &str, client: Option<&str>) {
        if !self.enabled {
            return;
        }
        let id = self.identifier_key(identifier);
        let pair = client.unwrap_or("unknown");
        let mut redis = self.redis.clone();
        let result: redis::RedisResult<()> = redis::pipe()
            .cmd("DEL")
            .arg(format!("{id}:pair:{pair}"))
            .arg(format!("{id}:lock:{pair}"))
            .ignore()
            .cmd("SREM")
            .arg(format!("{id}:clients"))
            .arg(pair)
            .ignore()
            .query_async(&mut redis)
            .instrument(bff_core::redis_client::span("login_limit.succeeded"))
            .await;
        // The password was right; a counter left behind only delays a lock.
        if let Err(error) = result {
            tracing::warn!(%error, "could not clear a login counter");
        }
    }

    /// Clears every lock and failure counter of `identifier`: after a password
    /// reset, or by an admin.
    pub async fn clear(&self, identifier: &str) -> Result<(), LimitError> {
        let id = self.identifier_key(identifier);
        let mut redis = self.redis.clone();
        let clients: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{id}:clients"))
            .query_async(&mut redis)
            .instrument(bff_core::redis_client::span("login_limit.clear_members"))
            .await
            .map_err(unavailable)?;
        let mut del = redis::cmd("DEL");
        del.arg(format!("{id}:all")).arg(format!("{id}:clients"));
        for client in &clients {
            del.arg(format!("{id}:pair:{client}"))
                .arg(format!("{id}:lock:{client}"));
        }
        del.query_async::<()>(&mut redis)
            .instrument(bff_core::redis_client::span("login_limit.clear"))
            .await
            .map_err(unavailable)
    }

    /// Whether `client` may present a verification code now (the failures of
    /// [`Self::code_failed`] are under their limit). Nothing is counted.
    pub async fn check_code(&self, client: Option<&str>) -> Result<(), LimitError> {
        if !self.enabled {
            return Ok(());
        }
        let key = self.code_key(client);
        let mut redis = self.redis.clone();
        let (failures, ttl): (Option<u32>, i64) = redis::pipe()
            .cmd("GET")
            .arg(&key)
            .cmd("PTTL")
            .arg(&key)
            .query_async(&mut redis)
            .instrument(bff_core::redis_client::span("login_limit.check_code"))
            .await
            .map_err(unavailable)?;
        let quota = self.policy.code_failures_per_client;
        if failures.unwrap_or(0) >= quota.count() {
            return Err(refused(
                "code_checks",
                quota,
                millis(ttl),
                "Too many wrong codes from this address.",
            ));
        }
        Ok(())
    }

    /// Counts a wrong verification code from `client`.
    pub async fn code_failed(&self, client: Option<&str>) -> Result<(), LimitError> {
        if !self.enabled {
            return Ok(());
        }
        let mut redis = self.redis.clone();
        let _: u32 = COUNT_SCRIPT
            .key(self.code_key(client))
            .arg(ms(self.policy.code_failures_per_client.period()))
            .invoke_async(&mut redis)
            .instrument(bff_core::redis_client::span("login_limit.code_failed"))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    fn code_key(&self, client: Option<&str>) -> String {
        format!("{}codes:{}", self.prefix, client.unwrap_or("unknown"))
    }

    /// The device cookies this guard issues and recognises.
    pub fn devices(&self) -> &DeviceCookies {
        &self.devices
    }
}

/// Device cookies (OWASP "device cookies"): issued at a successful login,
/// they name the identifier by its keyed hash and carry when they were issued
/// and a MAC; a client that shows one for an identifier is a device its owner
/// used.
#[derive(Clone)]
pub struct DeviceCookies {
    secret: CodeSecret,
}

impl DeviceCookies {
    /// Cookies keyed by `secret`.
    pub fn new(secret: CodeSecret) -> Self {
        Self { secret }
    }

    /// A cookie's value for `identifier`, issued now.
    pub fn issue(&self, identifier: &str) -> String {
        self.issue_at(identifier, now_secs())
    }

    /// The keyed hash that names `identifier` in cookies, keys and logs.
    fn identifier_hash(&self, identifier: &str) -> String {
        self.secret.key_id(&["login", identifier])
    }

    fn issue_at(&self, identifier: &str, issued: u64) -> String {
        let id = self.identifier_hash(identifier);
        let issued = issued.to_string();
        let mac = self.secret.key_id(&["device", &id, &issued]);
        format!("{id}.{issued}.{mac}")
    }

    /// Whether `cookie` is a valid, unexpired device cookie of `identifier`.
    pub fn recognises(&self, cookie: &str, identifier: &str) -> bool {
        let mut parts = cookie.split('.');
        let (Some(id), Some(issued), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(issued_secs) = issued.parse::<u64>() else {
            return false;
        };
        if now_secs().saturating_sub(issued_secs) > DEVICE_COOKIE_MAX_AGE.as_secs() {
            return false;
        }
        let expected_id = self.identifier_hash(identifier);
        let expected_mac = self.secret.key_id(&["device", id, issued]);
        bool::from(id.as_bytes().ct_eq(expected_id.as_bytes()))
            & bool::from(mac.as_bytes().ct_eq(expected_mac.as_bytes()))
    }
}

const LOCKED: &str = "Too many failed sign-ins for this account from this address.";
const CEILING: &str = "Too many failed sign-ins for this account. Sign in from a device you used before, or reset the password.";

fn refused(name: &'static str, quota: Quota, wait: Duration, detail: &'static str) -> LimitError {
    LimitError::refused(name, quota, wait, detail)
}

fn unavailable(error: redis::RedisError) -> LimitError {
    tracing::error!(%error, "login guard unavailable; refusing");
    LimitError::Unavailable
}

/// A PTTL answer as a duration (at least a second when positive).
fn millis(pttl: i64) -> Duration {
    Duration::from_millis(u64::try_from(pttl).unwrap_or(0)).max(Duration::from_secs(1))
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(byte: u8) -> DeviceCookies {
        DeviceCookies::new(CodeSecret::new(vec![byte; 32]).expect("secret"))
    }

    #[test]
    fn device_cookies_are_bound_to_the_identifier_the_secret_and_a_year() {
        let cookies = keyed(7);
        let valid = cookies.issue("a@example.com");
        assert!(cookies.recognises(&valid, "a@example.com"));
        assert!(!cookies.recognises(&valid, "b@example.com"));
        assert!(!keyed(8).recognises(&valid, "a@example.com"));
        let old = now_secs() - DEVICE_COOKIE_MAX_AGE.as_secs() - 60;
        assert!(!cookies.recognises(&cookies.issue_at("a@example.com", old), "a@example.com"));
        // Tampering with any part breaks it.
        let (rest, mac) = valid.rsplit_once('.').expect("three parts");
        let issued_later = valid.replacen('.', ".1", 1);
        for forged in [
            format!("{rest}.{}", "0".repeat(mac.len())),
            issued_later,
            format!("{valid}.x"),
            String::new(),
        ] {
            assert!(!cookies.recognises(&forged, "a@example.com"), "{forged}");
        }
    }
}
