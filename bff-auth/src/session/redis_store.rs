use std::sync::LazyLock;
use tracing::Instrument;

use bff_core::redis_client::RedisConnection;
use redis::{AsyncCommands, Script};

use super::{
    BrowserPolicy, BrowserSession, BrowserSessionStore, CookieValue, NewSession, Refresh,
    RefreshToken, Session, SessionError, SessionPolicy, SessionStore, Touch,
};
use crate::layer::BoxFuture;

/// Sessions in Redis.
///
/// Keys, under a configurable prefix `P`, each with the user's
/// [`session_tag`](super::session_tag) `T` as its Redis hash tag:
/// - `P{T}s:<sid>`: hash `uid, created, last, ua, ip, abs`; expires after the
///   idle timeout (renewed by each refresh), never after `abs` (the absolute end);
/// - `P{T}r:<sha256(token)>`: hash `sid, used` (0 while current, else when it
///   was rotated); a rotated token's record is kept for a day so that a replay
///   within that time is recognised as theft;
/// - `P{T}u:<uid>`: sorted set of the user's session ids by login time;
/// - browser sessions ([`BrowserSessionStore`]) are `s:` records too, with
///   `kind` = `browser`, `role` and `idle` (their own idle timeout, ms) added, and
///   `P{T}c:<sha256(cookie)>`: the session id, expiring with the session. Neither
///   the cookie value nor any token is stored, only the hash in the key's name.
///
/// Refresh tokens and cookie values begin with `T`, so every operation knows its
/// user's keys. All the keys of one user share a hash tag, and so one Redis
/// Cluster slot: each operation is one atomic script on one node, on a single
/// node and on a cluster alike. Ending a session deletes its `s:` record; its
/// refresh records then resolve to nothing and expire on their own.
#[derive(Clone)]
pub struct RedisSessionStore {
    conn: RedisConnection,
    prefix: String,
    policy: SessionPolicy,
    browser: BrowserPolicy,
}

impl std::fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("prefix", &self.prefix)
            .field("policy", &self.policy)
            .field("browser", &self.browser)
            .finish()
    }
}

/// How long a rotated token's record is kept to detect its replay.
const REUSE_DETECTION_MS: i64 = 24 * 3600 * 1000;

/// How many times a rotated token may be presented again within the grace
/// window (concurrent refreshes from several tabs); one more is treated as theft.
const GRACE_ROTATIONS: i64 = 2;

// Every script reads the clock from Redis (`TIME`), so instances whose clocks
// disagree still agree on grace windows and lifetimes.
const CREATE: &str = r"
local skey, ukey, rkey = KEYS[1], KEYS[2], KEYS[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sid, uid, ttl, lifetime = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[6])
redis.call('HSET', skey, 'uid', uid, 'created', now, 'last', now, 'ua', ARGV[4], 'ip', ARGV[5], 'abs', now + lifetime)
redis.call('PEXPIRE', skey, ttl)
redis.call('HSET', rkey, 'sid', sid, 'used', 0)
redis.call('PEXPIRE', rkey, ttl)
redis.call('ZADD', ukey, now, sid)
if redis.call('PTTL', ukey) < ttl then redis.call('PEXPIRE', ukey, ttl) end
return now
";

const REFRESH: &str = r"
local prefix = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local grace, idle, max_grace = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[7])
local record = redis.call('HMGET', KEYS[1], 'sid', 'used', 'grace')
local sid = record[1]
if not sid then return {'invalid'} end
local skey = prefix .. 's:' .. sid
local session = redis.call('HMGET', skey, 'uid', 'abs')
local uid = session[1]
if not uid then return {'invalid'} end
local used = tonumber(record[2])
local replays = tonumber(record[3] or '0')
if used > 0 and (now - used > grace or replays >= max_grace) then
  redis.call('DEL', skey)
  redis.call('ZREM', prefix .. 'u:' .. uid, sid)
  return {'reused', sid, uid}
end
local ttl = math.min(idle, tonumber(session[2]) - now)
if ttl <= 0 then
  redis.call('DEL', skey)
  redis.call('ZREM', prefix .. 'u:' .. uid, sid)
  return {'invalid'}
end
if used == 0 then
  redis.call('HSET', KEYS[1], 'used', now)
  redis.call('PEXPIRE', KEYS[1], math.min(ttl, tonumber(ARGV[6])))
else
  redis.call('HINCRBY', KEYS[1], 'grace', 1)
end
local nkey = prefix .. 'r:' .. ARGV[2]
redis.call('HSET', nkey, 'sid', sid, 'used', 0)
redis.call('PEXPIRE', nkey, ttl)
redis.call('HSET', skey, 'last', now)
if ARGV[5] ~= '' then redis.call('HSET', skey, 'ip', ARGV[5]) end
redis.call('PEXPIRE', skey, ttl)
local ukey = prefix .. 'u:' .. uid
if redis.call('PTTL', ukey) < ttl then redis.call('PEXPIRE', ukey, ttl) end
local f = redis.call('HMGET', skey, 'created', 'last', 'ua', 'ip')
return {'rotated', sid, uid, f[1], f[2], f[3] or '', f[4] or ''}
";

const REVOKE: &str = r"
if redis.call('HGET', KEYS[1], 'uid') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
";

const BROWSER_CREATE: &str = r"
local skey, ukey, ckey = KEYS[1], KEYS[2], KEYS[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sid, idle, lifetime = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[6])
local ttl = math.min(idle, lifetime)
redis.call('HSET', skey, 'uid', ARGV[2], 'created', now, 'last', now, 'ua', ARGV[4], 'ip', ARGV[5],
  'abs', now + lifetime, 'idle', idle, 'role', ARGV[7], 'kind', 'browser')
redis.call('PEXPIRE', skey, ttl)
redis.call('SET', ckey, sid, 'PX', ttl)
redis.call('ZADD', ukey, now, sid)
if redis.call('PTTL', ukey) < ttl then redis.call('PEXPIRE', ukey, ttl) end
return now
";

// Looks a browser session up by its cookie's key; with ARGV[2] = '1' touches
// it, and with ARGV[3] (a new cookie hash) also moves it to a new cookie,
// recording ARGV[4] as its role when not empty. Idle and absolute ends are
// checked here, not left to key expiry alone, so a lookup a millisecond late
// does not find a session that has ended.
const BROWSER_LOOKUP: &str = r"
local prefix = ARGV[1]
local sid = redis.call('GET', KEYS[1])
if not sid then return {} end
local skey = prefix .. 's:' .. sid
local f = redis.call('HMGET', skey, 'uid', 'kind', 'created', 'last', 'abs', 'idle', 'role', 'ua', 'ip')
local uid = f[1]
if not uid or f[2] ~= 'browser' then
  redis.call('DEL', KEYS[1])
  return {}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last, abs, idle = tonumber(f[4]), tonumber(f[5]), tonumber(f[6])
if now >= abs or now >= last + idle then
  redis.call('DEL', skey, KEYS[1])
  redis.call('ZREM', prefix .. 'u:' .. uid, sid)
  return {}
end
local role = f[7] or ''
if ARGV[2] == '1' then
  last = now
  local ttl = math.min(idle, abs - now)
  redis.call('HSET', skey, 'last', now)
  redis.call('PEXPIRE', skey, ttl)
  local ckey = KEYS[1]
  if ARGV[3] ~= '' then
    redis.call('DEL', KEYS[1])
    ckey = prefix .. 'c:' .. ARGV[3]
    redis.call('SET', ckey, sid)
  end
  redis.call('PEXPIRE', ckey, ttl)
  if ARGV[4] ~= '' then
    redis.call('HSET', skey, 'role', ARGV[4])
    role = ARGV[4]
  end
  local ukey = prefix .. 'u:' .. uid
  if redis.call('PTTL', ukey) < ttl then redis.call('PEXPIRE', ukey, ttl) end
end
return {sid, uid, f[3], string.format('%d', last), f[5], f[6], role, f[8] or '', f[9] or ''}
";

// Compiled once: a script's SHA-1 is computed when it is built, and EVALSHA
// then sends only that, loading the script on the server the first time.
static CREATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CREATE));
static REFRESH_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(REFRESH));
static REVOKE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(REVOKE));
static BROWSER_CREATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(BROWSER_CREATE));
static BROWSER_LOOKUP_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(BROWSER_LOOKUP));

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn store_error(error: redis::RedisError) -> SessionError {
    SessionError::Store(Box::new(error))
}

fn opt(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

impl RedisSessionStore {
    /// Sessions under `prefix` (for example `bff:auth:`) with `policy`, and
    /// browser sessions with the default [`BrowserPolicy`].
    pub fn new(
        conn: impl Into<RedisConnection>,
        prefix: impl Into<String>,
        policy: SessionPolicy,
    ) -> Self {
        Self {
            conn: conn.into(),
            prefix: prefix.into(),
            policy,
            browser: BrowserPolicy::default(),
        }
    }

    /// Gives browser sessions the lifetimes of `browser`.
    pub fn with_browser_policy(mut self, browser: BrowserPolicy) -> Self {
        self.browser = browser;
        self
    }

    /// Runs [`BROWSER_LOOKUP`] for `cookie`: touching it, moving it to `next`
    /// with `role`, or only reading it.
    async fn browser_lookup(
        &self,
        cookie: &CookieValue,
        touch: Touch,
        next: Option<&CookieValue>,
        role: Option<&str>,
    ) -> Result<Option<BrowserSession>, SessionError> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> = BROWSER_LOOKUP_SCRIPT
            .key(self.key(cookie.tag(), "c", &cookie.hash()))
            .arg(self.scope(cookie.tag()))
            .arg(if touch == Touch::Extend || next.is_some() {
                "1"
            } else {
                "0"
            })
            .arg(next.map(CookieValue::hash).unwrap_or_default())
            .arg(role.unwrap_or(""))
            .invoke_async(&mut conn)
            .instrument(bff_core::redis_client::span("session.browser_lookup"))
            .await
            .map_err(store_error)?;
        let mut fields = reply.into_iter();
        let Some(id) = fields.next() else {
            return Ok(None);
        };
        let mut f = || fields.next().unwrap_or_default();
        let (user_id, created, last, abs, idle, role, ua, ip) =
            (f(), f(), f(), f(), f(), f(), f(), f());
        let number = |value: &str| {
            value
                .parse::<i64>()
                .map_err(|e| SessionError::Store(Box::new(e)))
        };
        let (created, last, abs, idle) = (
            number(&created)?,
            number(&last)?,
            number(&abs)?,
            number(&idle)?,
        );
        Ok(Some(BrowserSession {
            session: Session {
                id,
                user_id,
                created_at_ms: created,
                last_used_at_ms: last,
                user_agent: opt(ua),
                ip: opt(ip),
            },
            role,
            expires_at_ms: abs,
            idle_expires_at_ms: last.saturating_add(idle).min(abs),
        }))
    }

    /// The prefix and hash tag of the keys of the sessions tagged `tag`.
    fn scope(&self, tag: &str) -> String {
        format!("{}{{{tag}}}", self.prefix)
    }

    fn key(&self, tag: &str, kind: &str, id: &str) -> String {
        format!("{}{{{tag}}}{kind}:{id}", self.prefix)
    }

    fn user_key(&self, user_id: &str) -> String {
        self.key(&super::session_tag(user_id), "u", user_id)
    }

    async fn sessions_of(&self, user_id: &str) -> Result<Vec<String>, SessionError> {
        let mut conn = self.conn.clone();
        conn.zrevrange(self.user_key(user_id), 0, -1)
            .instrument(bff_core::redis_client::span("session.list_ids"))
            .await
            .map_err(store_error)
    }
}

impl SessionStore for RedisSessionStore {
    fn create(
        &self,
        new: NewSession,
    ) -> BoxFuture<'_, Result<(Session, RefreshToken), SessionError>> {
        Box::pin(async move {
            let id = uuid::Uuid::now_v7().to_string();
            let tag = super::session_tag(&new.user_id);
            let token = RefreshToken::generate_tagged(&tag)?;
            let ttl = ms(self.policy.idle_timeout).min(ms(self.policy.absolute_lifetime));
            let mut conn = self.conn.clone();
            let now: i64 = CREATE_SCRIPT
                .key(self.key(&tag, "s", &id))
                .key(self.key(&tag, "u", &new.user_id))
                .key(self.key(&tag, "r", &token.hash()))
                .arg(&id)
                .arg(&new.user_id)
                .arg(ttl)
                .arg(new.user_agent.as_deref().unwrap_or(""))
                .arg(new.ip.as_deref().unwrap_or(""))
                .arg(ms(self.policy.absolute_lifetime))
                .invoke_async(&mut conn)
                .instrument(bff_core::redis_client::span("session.create"))
                .await
                .map_err(store_error)?;
            let session = Session {
                id,
                user_id: new.user_id,
                created_at_ms: now,
                last_used_at_ms: now,
                user_agent: new.user_agent,
                ip: new.ip,
            };
            Ok((session, token))
        })
    }

    fn refresh<'a>(
        &'a self,
        token: &'a RefreshToken,
        ip: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Refresh, SessionError>> {
        Box::pin(async move {
            // A token without a tag was not made here: it names no session.
            let Some(tag) = token.tag() else {
                return Ok(Refresh::Invalid);
            };
            let next = RefreshToken::generate_tagged(tag)?;
            let mut conn = self.conn.clone();
            let reply: Vec<String> = REFRESH_SCRIPT
                .key(self.key(tag, "r", &token.hash()))
                .arg(self.scope(tag))
                .arg(next.hash())
                .arg(ms(self.policy.reuse_grace))
                .arg(ms(self.policy.idle_timeout))
                .arg(ip.unwrap_or(""))
                .arg(REUSE_DETECTION_MS)
                .arg(GRACE_ROTATIONS)
                .invoke_async(&mut conn)
                .instrument(bff_core::redis_client::span("session.refresh"))
                .await
                .map_err(store_error)?;
            let mut fields = reply.into_iter();
            let outcome = match fields.next().as_deref() {
                Some("rotated") => {
                    let mut f = || fields.next().unwrap_or_default();
                    let (id, user_id, created, last, ua, ip) = (f(), f(), f(), f(), f(), f());
                    Refresh::Rotated {
                        session: Session {
                            id,
                            user_id,
                            created_at_ms: created.parse().unwrap_or(0),
                            last_used_at_ms: last.parse().unwrap_or(0),
                            user_agent: opt(ua),
                            ip: opt(ip),
                        },
                        token: next,
                    }
                }
                Some("reused") => {
                    let session_id = fields.next().unwrap_or_default();
                    let user_id = fields.next().unwrap_or_default();
                    Refresh::Reused {
                        user_id,
                        session_id,
                    }
                }
                _ => Refresh::Invalid,
            };
            Ok(outcome)
        })
    }

    fn is_active<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, SessionError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let owner: Option<String> = conn
                .hget(
                    self.key(&super::session_tag(user_id), "s", session_id),
                    "uid",
                )
                .instrument(bff_core::redis_client::span("session.is_active"))
                .await
                .map_err(store_error)?;
            Ok(owner.as_deref() == Some(user_id))
        })
    }

    fn list<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Vec<Session>, SessionError>> {
        Box::pin(async move {
            let ids = self.sessions_of(user_id).await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let tag = super::session_tag(user_id);
            let mut conn = self.conn.clone();
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("HMGET")
                    .arg(self.key(&tag, "s", id))
                    .arg(&["uid", "created", "last", "ua", "ip"]);
            }
            let rows: Vec<Vec<Option<String>>> = pipe
                .query_async(&mut conn)
                .instrument(bff_core::redis_client::span("session.list"))
                .await
                .map_err(store_error)?;
            let mut sessions = Vec::new();
            let mut gone = Vec::new();
            for (id, row) in ids.into_iter().zip(rows) {
                let mut row = row.into_iter();
                let mut f = || row.next().flatten();
                match (f(), f(), f(), f(), f()) {
                    (Some(uid), created, last, ua, ip) if uid == user_id => {
                        sessions.push(Session {
                            id,
                            user_id: uid,
                            created_at_ms: created.and_then(|c| c.parse().ok()).unwrap_or(0),
                            last_used_at_ms: last.and_then(|c| c.parse().ok()).unwrap_or(0),
                            user_agent: ua.and_then(opt),
                            ip: ip.and_then(opt),
                        })
                    }
                    _ => gone.push(id),
                }
            }
            // Sessions that expired on their own are still in the index: tidy it.
            if !gone.is_empty() {
                let _: Result<i64, _> = conn.zrem(self.user_key(user_id), gone).await;
            }
            Ok(sessions)
        })
    }

    fn revoke<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, SessionError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let tag = super::session_tag(user_id);
            let revoked: i64 = REVOKE_SCRIPT
                .key(self.key(&tag, "s", session_id))
                .key(self.key(&tag, "u", user_id))
                .arg(user_id)
                .arg(session_id)
                .invoke_async(&mut conn)
                .instrument(bff_core::redis_client::span("session.revoke"))
                .await
                .map_err(store_error)?;
            Ok(revoked == 1)
        })
    }

    fn revoke_all<'a>(
        &'a self,
        user_id: &'a str,
        keep: Option<&'a str>,
    ) -> BoxFuture<'a, Result<usize, SessionError>> {
        Box::pin(async move {
            let mut count = 0;
            for id in self.sessions_of(user_id).await? {
                if Some(id.as_str()) != keep && self.revoke(user_id, &id).await? {
                    count += 1;
                }
            }
            Ok(count)
        })
    }
}

impl BrowserSessionStore for RedisSessionStore {
    fn create_browser(
        &self,
        new: NewSession,
        role: &str,
    ) -> BoxFuture<'_, Result<(BrowserSession, CookieValue), SessionError>> {
        let role = role.to_owned();
        Box::pin(async move {
            let id = uuid::Uuid::now_v7().to_string();
            let cookie = CookieValue::generate(&new.user_id)?;
            let tag = cookie.tag();
            let idle = ms(self.browser.idle_timeout);
            let lifetime = ms(self.browser.absolute_lifetime);
            let mut conn = self.conn.clone();
            let now: i64 = BROWSER_CREATE_SCRIPT
                .key(self.key(tag, "s", &id))
                .key(self.key(tag, "u", &new.user_id))
                .key(self.key(tag, "c", &cookie.hash()))
                .arg(&id)
                .arg(&new.user_id)
                .arg(idle)
                .arg(new.user_agent.as_deref().unwrap_or(""))
                .arg(new.ip.as_deref().unwrap_or(""))
                .arg(lifetime)
                .arg(&role)
                .invoke_async(&mut conn)
                .instrument(bff_core::redis_client::span("session.browser_create"))
                .await
                .map_err(store_error)?;
            let expires_at_ms = now.saturating_add(lifetime);
            let session = BrowserSession {
                session: Session {
                    id,
                    user_id: new.user_id,
                    created_at_ms: now,
                    last_used_at_ms: now,
                    user_agent: new.user_agent,
                    ip: new.ip,
                },
                role,
                expires_at_ms,
                idle_expires_at_ms: now.saturating_add(idle).min(expires_at_ms),
            };
            Ok((session, cookie))
        })
    }

    fn lookup_browser<'a>(
        &'a self,
        cookie: &'a CookieValue,
        touch: Touch,
    ) -> BoxFuture<'a, Result<Option<BrowserSession>, SessionError>> {
        Box::pin(self.browser_lookup(cookie, touch, None, None))
    }

    fn rotate_browser<'a>(
        &'a self,
        cookie: &'a CookieValue,
        role: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<(BrowserSession, CookieValue)>, SessionError>> {
        Box::pin(async move {
            let next = CookieValue::generate_tagged(cookie.tag())?;
            let session = self
                .browser_lookup(cookie, Touch::Extend, Some(&next), role)
                .await?;
            Ok(session.map(|session| (session, next)))
        })
    }
}
