use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Script, ScriptInvocation};
use subtle::ConstantTimeEq;

use super::{
    CodeCheck, CodeError, CodePolicy, CodeSecret, CodeStore, Limit, MAX_ATTEMPTS, OtpCode,
    Throttle, hex,
};
use crate::layer::BoxFuture;

/// Codes and throttle counters in Redis.
///
/// Keys, under a configurable prefix `P`, each named by a keyed hash (so the
/// store holds no addresses):
/// - `P c:{h(purpose, identifier)}`: hash `d` (the code's HMAC, hex) and `n`
///   (checks so far); expires with the code;
/// - `P cd:{h(purpose, identifier)}`: present during the cooldown;
/// - `P hic:{h(identifier, client)}`, `P hi:{h(identifier)}` and
///   `P hc:{h(client)}`: hourly counters, in windows that start with the first
///   request;
/// - `P fd:{h(identifier)}`: wrong checks in a day, from the first one.
///
/// Every decision is one atomic script or transaction, so instances sharing a
/// Redis agree; the keys of one decision are passed to it explicitly.
#[derive(Clone)]
pub struct RedisCodeStore {
    conn: ConnectionManager,
    prefix: String,
    secret: CodeSecret,
    policy: CodePolicy,
}

impl std::fmt::Debug for RedisCodeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCodeStore")
            .field("prefix", &self.prefix)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The hourly caps' window.
const WINDOW: Duration = Duration::from_secs(3600);
/// The failure budget's window.
const DAY: Duration = Duration::from_secs(24 * 3600);

// Checks every limit before counting anything, so a refused request costs the
// client nothing. KEYS: the cooldown, the failure budget (read only), then the
// hourly counters, whose caps are ARGV[4..]. Replies {0, 0} when allowed, else
// the index of the key that stays in the way longest and the ms until it
// lifts, so one Retry-After is enough.
const THROTTLE: &str = r"
local worst, wait = 0, 0
local cooldown = redis.call('PTTL', KEYS[1])
if cooldown > 0 then worst, wait = 1, cooldown end
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[3]) then
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl > wait then worst, wait = 2, ttl end
end
for i = 3, #KEYS do
  local n = tonumber(redis.call('GET', KEYS[i]) or '0')
  if n >= tonumber(ARGV[i + 1]) then
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl < 0 then ttl = tonumber(ARGV[2]) end
    if ttl > wait then worst, wait = i, ttl end
  end
end
if worst > 0 then return {worst, wait} end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
for i = 3, #KEYS do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
end
return {0, 0}
";

// Undoes THROTTLE's counting. KEYS as THROTTLE's: the cooldown, the failure
// budget (untouched), then the hourly counters, each decremented if above zero.
const RELEASE: &str = r"
redis.call('DEL', KEYS[1])
for i = 3, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then redis.call('DECR', KEYS[i]) end
end
return 1
";

// Counts a check and returns the stored digest, or nothing when there is no
// code, it has had its checks, or the identifier's failure budget is spent
// (the code is then deleted). KEYS: the code, the failure budget.
const FETCH: &str = r"
local d = redis.call('HGET', KEYS[1], 'd')
if not d then return false end
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return false
end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
if n > tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return false
end
return {d, n}
";

// Counts a wrong check against the identifier's daily budget. KEYS: the budget.
const FAILED: &str = r"
if redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
";

// Deletes the code only if it is still the one that was checked: the first of
// two concurrent correct checks wins, and a replacement issued meanwhile stays.
const CONSUME: &str = r"
if redis.call('HGET', KEYS[1], 'd') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

static THROTTLE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(THROTTLE));
static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));
static FETCH_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(FETCH));
static CONSUME_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CONSUME));
static FAILED_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(FAILED));

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn backend(error: redis::RedisError) -> CodeError {
    CodeError::Backend(Box::new(error))
}

impl RedisCodeStore {
    /// Codes under `prefix` (for example `bff:codes:`), keyed by `secret`, with
    /// `policy`, which must pass [`CodePolicy::validate`].
    pub fn new(
        conn: ConnectionManager,
        prefix: impl Into<String>,
        secret: CodeSecret,
        policy: CodePolicy,
    ) -> Result<Self, CodeError> {
        policy.validate()?;
        Ok(Self {
            conn,
            prefix: prefix.into(),
            secret,
            policy,
        })
    }

    fn key(&self, kind: &str, parts: &[&str]) -> String {
        format!("{}{kind}:{}", self.prefix, self.secret.key_id(parts))
    }

    /// The keys of the throttle's counters, in the order its scripts take them:
    /// the cooldown, the failure budget, the per-identifier-and-client and
    /// per-identifier counters, and the per-client one when there is a client.
    fn throttle_keys<'s>(
        &self,
        script: &'s Script,
        purpose: &str,
        identifier: &str,
        client: Option<&str>,
    ) -> ScriptInvocation<'s> {
        let mut invocation = script.key(self.key("cd", &[purpose, identifier]));
        invocation
            .key(self.key("fd", &[identifier]))
            .key(self.key("hic", &[identifier, client.unwrap_or("")]))
            .key(self.key("hi", &[identifier]));
        if let Some(client) = client {
            invocation.key(self.key("hc", &[client]));
        }
        invocation
    }
}

impl CodeStore for RedisCodeStore {
    fn throttle<'a>(
        &'a self,
        purpose: &'a str,
        identifier: &'a str,
        client: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Throttle, CodeError>> {
        Box::pin(async move {
            let policy = &self.policy;
            let mut invocation = self.throttle_keys(&THROTTLE_SCRIPT, purpose, identifier, client);
            invocation
                .arg(ms(policy.cooldown))
                .arg(ms(WINDOW))
                .arg(policy.daily_failures_per_identifier)
                .arg(policy.hourly_per_identifier)
                .arg(policy.hourly_per_identifier_all);
            if client.is_some() {
                invocation.arg(policy.hourly_per_client);
            }
            let (limit, retry_ms): (u8, u64) = invocation
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(backend)?;
            let limit = match limit {
                0 => return Ok(Throttle::Allowed),
                1 => Limit::Cooldown,
                2 => Limit::FailureBudget,
                3 => Limit::HourlyPerIdentifier,
                4 => Limit::HourlyPerIdentifierAll,
                _ => Limit::HourlyPerClient,
            };
            Ok(Throttle::Limited {
                limit,
                retry_after: Duration::from_millis(retry_ms),
            })
        })
    }

    fn release<'a>(
        &'a self,
        purpose: &'a str,
        identifier: &'a str,
        client: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), CodeError>> {
        Box::pin(async move {
            let _: u8 = self
                .throttle_keys(&RELEASE_SCRIPT, purpose, identifier, client)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(backend)?;
            Ok(())
        })
    }

    fn issue<'a>(
        &'a self,
        purpose: &'a str,
        identifier: &'a str,
    ) -> BoxFuture<'a, Result<OtpCode, CodeError>> {
        Box::pin(async move {
            let code = OtpCode::generate()?;
            let digest = hex(&self.secret.digest(purpose, identifier, &code));
            let key = self.key("c", &[purpose, identifier]);
            // One transaction: the previous code and its check count go with it.
            let () = redis::pipe()
                .atomic()
                .del(&key)
                .ignore()
                .hset_multiple(&key, &[("d", digest.as_str()), ("n", "0")])
                .ignore()
                .pexpire(&key, i64::try_from(ms(self.policy.ttl)).unwrap_or(i64::MAX))
                .ignore()
                .query_async(&mut self.conn.clone())
                .await
                .map_err(backend)?;
            Ok(code)
        })
    }

    fn check<'a>(
        &'a self,
        purpose: &'a str,
        identifier: &'a str,
        code: &'a OtpCode,
    ) -> BoxFuture<'a, Result<CodeCheck, CodeError>> {
        Box::pin(async move {
            let key = self.key("c", &[purpose, identifier]);
            let budget = self.key("fd", &[identifier]);
            let mut conn = self.conn.clone();
            let stored: Option<(String, u32)> = FETCH_SCRIPT
                .key(&key)
                .key(&budget)
                .arg(MAX_ATTEMPTS)
                .arg(self.policy.daily_failures_per_identifier)
                .invoke_async(&mut conn)
                .await
                .map_err(backend)?;
            let Some((stored, checks)) = stored else {
                return Ok(CodeCheck::Invalid);
            };
            let presented = hex(&self.secret.digest(purpose, identifier, code));
            let matches: bool = presented.as_bytes().ct_eq(stored.as_bytes()).into();
            // A match uses the code up; the last allowed wrong check burns it.
            if matches || checks >= MAX_ATTEMPTS {
                let deleted: u8 = CONSUME_SCRIPT
                    .key(&key)
                    .arg(&stored)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(backend)?;
                if matches && deleted == 1 {
                    return Ok(CodeCheck::Valid);
                }
            }
            if !matches {
                let _: u8 = FAILED_SCRIPT
                    .key(&budget)
                    .arg(ms(DAY))
                    .invoke_async(&mut conn)
                    .await
                    .map_err(backend)?;
            }
            Ok(CodeCheck::Invalid)
        })
    }

    fn policy(&self) -> &CodePolicy {
        &self.policy
    }
}
