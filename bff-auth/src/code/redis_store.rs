use std::sync::LazyLock;
use std::time::Duration;
use tracing::Instrument;

use bff_core::redis_client::RedisConnection;
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
/// store holds no addresses); the identifier's keys carry `{h(identifier)}` as
/// their Redis hash tag, so they share one Redis Cluster slot:
/// - `P{h(identifier)}c:<h(purpose, identifier)>`: hash `d` (the code's HMAC,
///   hex) and `n` (checks so far); expires with the code;
/// - `P{h(identifier)}cd:<h(purpose, identifier)>`: present during the cooldown;
/// - `P{h(identifier)}hic:<h(identifier, client)>` and
///   `P{h(identifier)}hi:<h(identifier)>`: hourly counters, in windows that
///   start with the first request;
/// - `P{h(identifier)}fd:<h(identifier)>`: wrong checks in a day, from the
///   first one;
/// - `Phc:<h(client)>`: the client's hourly counter, in a slot of its own.
///
/// Every decision on an identifier is one atomic script or transaction, so
/// instances sharing a Redis agree; the keys of one decision are passed to it
/// explicitly. A request with a client is counted against the identifier first
/// and then against the client; when the client's cap refuses it, the
/// identifier's counting is undone, so a refused request still costs nothing.
#[derive(Clone)]
pub struct RedisCodeStore {
    conn: RedisConnection,
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

// The client's hourly cap, in a hash slot of its own. KEYS: the counter. ARGV:
// the window, the cap, and '1' to count the request when under the cap ('0'
// only reads). Replies 0 when under the cap, else the ms until the window ends.
const CLIENT: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[2]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then ttl = tonumber(ARGV[1]) end
  return ttl
end
if ARGV[3] == '1' and redis.call('INCR', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 0
";

// Undoes CLIENT's counting. KEYS: the counter.
const CLIENT_RELEASE: &str = r"
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
return 1
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
static CLIENT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CLIENT));
static CLIENT_RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CLIENT_RELEASE));

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
        conn: impl Into<RedisConnection>,
        prefix: impl Into<String>,
        secret: CodeSecret,
        policy: CodePolicy,
    ) -> Result<Self, CodeError> {
        policy.validate()?;
        Ok(Self {
            conn: conn.into(),
            prefix: prefix.into(),
            secret,
            policy,
        })
    }

    /// A key of `identifier`'s, in its hash slot.
    fn key(&self, identifier: &str, kind: &str, parts: &[&str]) -> String {
        format!(
            "{}{{{}}}{kind}:{}",
            self.prefix,
            self.secret.key_id(&[identifier]),
            self.secret.key_id(parts)
        )
    }

    fn client_key(&self, client: &str) -> String {
        format!("{}hc:{}", self.prefix, self.secret.key_id(&[client]))
    }

    /// The keys of the identifier's throttle counters, in the order its scripts
    /// take them: the cooldown, the failure budget, the per-identifier-and-client
    /// and per-identifier counters.
    fn throttle_keys<'s>(
        &self,
        script: &'s Script,
        purpose: &str,
        identifier: &str,
        client: Option<&str>,
    ) -> ScriptInvocation<'s> {
        let mut invocation = script.key(self.key(identifier, "cd", &[purpose, identifier]));
        invocation
            .key(self.key(identifier, "fd", &[identifier]))
            .key(self.key(identifier, "hic", &[identifier, client.unwrap_or("")]))
            .key(self.key(identifier, "hi", &[identifier]));
        invocation
    }

    /// Runs [`CLIENT`] for `client`: the ms until its window ends when it is at
    /// its cap, else 0 (and the request is counted when `count`).
    async fn client_cap(&self, client: &str, count: bool) -> Result<u64, CodeError> {
        CLIENT_SCRIPT
            .key(self.client_key(client))
            .arg(ms(WINDOW))
            .arg(self.policy.hourly_per_client)
            .arg(if count { "1" } else { "0" })
            .invoke_async(&mut self.conn.clone())
            .instrument(bff_core::redis_client::span("code.client_limit"))
            .await
            .map_err(backend)
    }

    /// Undoes the counting of THROTTLE on `identifier`'s keys.
    async fn release_identifier(
        &self,
        purpose: &str,
        identifier: &str,
        client: Option<&str>,
    ) -> Result<(), CodeError> {
        let _: u8 = self
            .throttle_keys(&RELEASE_SCRIPT, purpose, identifier, client)
            .invoke_async(&mut self.conn.clone())
            .instrument(bff_core::redis_client::span("code.release"))
            .await
            .map_err(backend)?;
        Ok(())
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
            let (limit, retry_ms): (u8, u64) = invocation
                .invoke_async(&mut self.conn.clone())
                .instrument(bff_core::redis_client::span("code.limit"))
                .await
                .map_err(backend)?;
            let limit = match limit {
                0 => None,
                1 => Some(Limit::Cooldown),
                2 => Some(Limit::FailureBudget),
                3 => Some(Limit::HourlyPerIdentifier),
                _ => Some(Limit::HourlyPerIdentifierAll),
            };
            let Some(client) = client else {
                return Ok(match limit {
                    None => Throttle::Allowed,
                    Some(limit) => Throttle::Limited {
                        limit,
                        retry_after: Duration::from_millis(retry_ms),
                    },
                });
            };
            // Counted against the client only when the identifier allowed it;
            // otherwise only read, so the longest wait of the two is told.
            let client_ms = self.client_cap(client, limit.is_none()).await;
            let client_ms = match client_ms {
                Ok(client_ms) => client_ms,
                Err(error) => {
                    if limit.is_none() {
                        self.release_identifier(purpose, identifier, Some(client))
                            .await?;
                    }
                    return Err(error);
                }
            };
            match limit {
                None if client_ms == 0 => Ok(Throttle::Allowed),
                None => {
                    self.release_identifier(purpose, identifier, Some(client))
                        .await?;
                    Ok(Throttle::Limited {
                        limit: Limit::HourlyPerClient,
                        retry_after: Duration::from_millis(client_ms),
                    })
                }
                Some(_) if client_ms > retry_ms => Ok(Throttle::Limited {
                    limit: Limit::HourlyPerClient,
                    retry_after: Duration::from_millis(client_ms),
                }),
                Some(limit) => Ok(Throttle::Limited {
                    limit,
                    retry_after: Duration::from_millis(retry_ms),
                }),
            }
        })
    }

    fn release<'a>(
        &'a self,
        purpose: &'a str,
        identifier: &'a str,
        client: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), CodeError>> {
        Box::pin(async move {
            self.release_identifier(purpose, identifier, client).await?;
            if let Some(client) = client {
                let _: u8 = CLIENT_RELEASE_SCRIPT
                    .key(self.client_key(client))
                    .invoke_async(&mut self.conn.clone())
                    .instrument(bff_core::redis_client::span("code.client_release"))
                    .await
                    .map_err(backend)?;
            }
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
            let key = self.key(identifier, "c", &[purpose, identifier]);
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
                .instrument(bff_core::redis_client::span("code.store"))
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
            let key = self.key(identifier, "c", &[purpose, identifier]);
            let budget = self.key(identifier, "fd", &[identifier]);
            let mut conn = self.conn.clone();
            let stored: Option<(String, u32)> = FETCH_SCRIPT
                .key(&key)
                .key(&budget)
                .arg(MAX_ATTEMPTS)
                .arg(self.policy.daily_failures_per_identifier)
                .invoke_async(&mut conn)
                .instrument(bff_core::redis_client::span("code.fetch"))
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
                    .instrument(bff_core::redis_client::span("code.consume"))
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
                    .instrument(bff_core::redis_client::span("code.failed"))
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
