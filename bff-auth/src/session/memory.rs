//! [`MemorySessionStore`]: sessions in this process, for examples and tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::browser::ends;
use super::{
    BrowserPolicy, BrowserSession, BrowserSessionStore, CookieValue, NewSession, Refresh,
    RefreshToken, Session, SessionError, SessionPolicy, SessionStore, Touch,
};
use crate::layer::BoxFuture;

/// The current time in milliseconds since the epoch.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// How many times a rotated refresh token may be presented again within the
/// grace window, as in the Redis store.
const GRACE_ROTATIONS: u32 = 2;

/// Sessions in this process's memory: the same rules as the Redis store
/// (refresh rotation with reuse detection, browser sessions with idle and
/// absolute ends), for examples, tests and single-instance tools. Nothing is
/// shared between processes, so it does not serve a deployment of several
/// instances.
///
/// The clock can be replaced ([`with_clock`](Self::with_clock)) so tests can
/// move time instead of sleeping.
#[derive(Clone)]
pub struct MemorySessionStore {
    state: Arc<Mutex<State>>,
    policy: SessionPolicy,
    browser: BrowserPolicy,
    clock: Clock,
}

impl std::fmt::Debug for MemorySessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySessionStore")
            .field("policy", &self.policy)
            .field("browser", &self.browser)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, Record>,
    /// Refresh-token hash to its record.
    refresh: HashMap<String, RefreshRecord>,
    /// Cookie-value hash to session id.
    cookies: HashMap<String, String>,
}

struct Record {
    session: Session,
    idle_ms: i64,
    absolute_end_ms: i64,
    /// Set for browser sessions.
    role: Option<String>,
}

impl Record {
    fn live(&self, now: i64) -> bool {
        let (absolute, idle) = ends(
            self.session.last_used_at_ms,
            self.idle_ms,
            self.absolute_end_ms,
        );
        now < absolute && now < idle
    }

    fn browser(&self) -> Option<BrowserSession> {
        let role = self.role.clone()?;
        let (expires_at_ms, idle_expires_at_ms) = ends(
            self.session.last_used_at_ms,
            self.idle_ms,
            self.absolute_end_ms,
        );
        Some(BrowserSession {
            session: self.session.clone(),
            role,
            expires_at_ms,
            idle_expires_at_ms,
        })
    }
}

struct RefreshRecord {
    session_id: String,
    used_at_ms: Option<i64>,
    replays: u32,
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn system_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl MemorySessionStore {
    /// An empty store with `policy` for token sessions and `browser` for
    /// browser sessions, on the system clock.
    pub fn new(policy: SessionPolicy, browser: BrowserPolicy) -> Self {
        Self {
            state: Arc::default(),
            policy,
            browser,
            clock: Arc::new(system_now_ms),
        }
    }

    /// Reads time from `clock` (milliseconds since the epoch) instead of the
    /// system clock.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves maps that are still
        // consistent entry by entry; carrying on is better than failing every
        // later request.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn start(&self, new: NewSession) -> Session {
        let now = self.now();
        Session {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: new.user_id,
            created_at_ms: now,
            last_used_at_ms: now,
            user_agent: new.user_agent,
            ip: new.ip,
        }
    }
}

impl State {
    /// The live record of `session_id`; an ended one is removed.
    fn live(&mut self, session_id: &str, now: i64) -> Option<&mut Record> {
        if !self.sessions.get(session_id)?.live(now) {
            self.end(session_id);
            return None;
        }
        self.sessions.get_mut(session_id)
    }

    fn end(&mut self, session_id: &str) -> bool {
        let ended = self.sessions.remove(session_id).is_some();
        // Tokens and cookies of an ended session resolve to nothing; drop
        // them now rather than leave them to a sweep.
        self.refresh.retain(|_, r| r.session_id != session_id);
        self.cookies.retain(|_, sid| sid != session_id);
        ended
    }
}

impl SessionStore for MemorySessionStore {
    fn create(
        &self,
        new: NewSession,
    ) -> BoxFuture<'_, Result<(Session, RefreshToken), SessionError>> {
        Box::pin(async move {
            let token = RefreshToken::generate(&new.user_id)?;
            let idle = ms(self.policy.idle_timeout);
            let lifetime = ms(self.policy.absolute_lifetime);
            let session = self.start(new);
            let mut state = self.lock();
            state.refresh.insert(
                token.hash(),
                RefreshRecord {
                    session_id: session.id.clone(),
                    used_at_ms: None,
                    replays: 0,
                },
            );
            state.sessions.insert(
                session.id.clone(),
                Record {
                    session: session.clone(),
                    idle_ms: idle,
                    absolute_end_ms: session.created_at_ms.saturating_add(lifetime),
                    role: None,
                },
            );
            Ok((session, token))
        })
    }

    fn refresh<'a>(
        &'a self,
        token: &'a RefreshToken,
        ip: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Refresh, SessionError>> {
        Box::pin(async move {
            let now = self.now();
            let grace = ms(self.policy.reuse_grace);
            let mut state = self.lock();
            let Some(record) = state.refresh.get(&token.hash()) else {
                return Ok(Refresh::Invalid);
            };
            let session_id = record.session_id.clone();
            let (used_at, replays) = (record.used_at_ms, record.replays);
            let Some(user_id) = state
                .live(&session_id, now)
                .map(|r| r.session.user_id.clone())
            else {
                return Ok(Refresh::Invalid);
            };
            let next = RefreshToken::generate(&user_id)?;
            if let Some(used_at) = used_at
                && (now - used_at > grace || replays >= GRACE_ROTATIONS)
            {
                state.end(&session_id);
                return Ok(Refresh::Reused {
                    user_id,
                    session_id,
                });
            }
            if let Some(record) = state.refresh.get_mut(&token.hash()) {
                match record.used_at_ms {
                    None => record.used_at_ms = Some(now),
                    Some(_) => record.replays += 1,
                }
            }
            state.refresh.insert(
                next.hash(),
                RefreshRecord {
                    session_id: session_id.clone(),
                    used_at_ms: None,
                    replays: 0,
                },
            );
            let Some(record) = state.sessions.get_mut(&session_id) else {
                return Ok(Refresh::Invalid);
            };
            record.session.last_used_at_ms = now;
            if let Some(ip) = ip {
                record.session.ip = Some(ip.to_owned());
            }
            Ok(Refresh::Rotated {
                session: record.session.clone(),
                token: next,
            })
        })
    }

    fn is_active<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, SessionError>> {
        Box::pin(async move {
            let now = self.now();
            Ok(self
                .lock()
                .live(session_id, now)
                .is_some_and(|record| record.session.user_id == user_id))
        })
    }

    fn list<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Vec<Session>, SessionError>> {
        Box::pin(async move {
            let now = self.now();
            let state = self.lock();
            let mut sessions: Vec<Session> = state
                .sessions
                .values()
                .filter(|r| r.session.user_id == user_id && r.live(now))
                .map(|r| r.session.clone())
                .collect();
            sessions.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then(b.id.cmp(&a.id)));
            Ok(sessions)
        })
    }

    fn revoke<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, SessionError>> {
        Box::pin(async move {
            let now = self.now();
            let mut state = self.lock();
            let theirs = state
                .live(session_id, now)
                .is_some_and(|r| r.session.user_id == user_id);
            Ok(theirs && state.end(session_id))
        })
    }

    fn revoke_all<'a>(
        &'a self,
        user_id: &'a str,
        keep: Option<&'a str>,
    ) -> BoxFuture<'a, Result<usize, SessionError>> {
        Box::pin(async move {
            let now = self.now();
            let mut state = self.lock();
            let ids: Vec<String> = state
                .sessions
                .iter()
                .filter(|(id, r)| {
                    r.session.user_id == user_id && r.live(now) && Some(id.as_str()) != keep
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in &ids {
                state.end(id);
            }
            Ok(ids.len())
        })
    }
}

impl BrowserSessionStore for MemorySessionStore {
    fn create_browser(
        &self,
        new: NewSession,
        role: &str,
    ) -> BoxFuture<'_, Result<(BrowserSession, CookieValue), SessionError>> {
        let role = role.to_owned();
        Box::pin(async move {
            let cookie = CookieValue::generate(&new.user_id)?;
            let idle = ms(self.browser.idle_timeout);
            let lifetime = ms(self.browser.absolute_lifetime);
            let session = self.start(new);
            let record = Record {
                absolute_end_ms: session.created_at_ms.saturating_add(lifetime),
                session,
                idle_ms: idle,
                role: Some(role),
            };
            let browser = record.browser();
            let mut state = self.lock();
            state
                .cookies
                .insert(cookie.hash(), record.session.id.clone());
            state.sessions.insert(record.session.id.clone(), record);
            let browser = browser.ok_or_else(|| SessionError::Store("no role".into()))?;
            Ok((browser, cookie))
        })
    }

    fn lookup_browser<'a>(
        &'a self,
        cookie: &'a CookieValue,
        touch: Touch,
    ) -> BoxFuture<'a, Result<Option<BrowserSession>, SessionError>> {
        Box::pin(async move {
            let now = self.now();
            let mut state = self.lock();
            let Some(session_id) = state.cookies.get(&cookie.hash()).cloned() else {
                return Ok(None);
            };
            let Some(record) = state.live(&session_id, now) else {
                return Ok(None);
            };
            if touch == Touch::Extend {
                record.session.last_used_at_ms = now;
            }
            Ok(record.browser())
        })
    }

    fn rotate_browser<'a>(
        &'a self,
        cookie: &'a CookieValue,
        role: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<(BrowserSession, CookieValue)>, SessionError>> {
        Box::pin(async move {
            let next = CookieValue::generate_tagged(cookie.tag())?;
            let now = self.now();
            let mut state = self.lock();
            let Some(session_id) = state.cookies.get(&cookie.hash()).cloned() else {
                return Ok(None);
            };
            let Some(record) = state.live(&session_id, now) else {
                return Ok(None);
            };
            if record.role.is_none() {
                return Ok(None);
            }
            record.session.last_used_at_ms = now;
            if let Some(role) = role {
                record.role = Some(role.to_owned());
            }
            let browser = record.browser();
            state.cookies.remove(&cookie.hash());
            state.cookies.insert(next.hash(), session_id);
            Ok(browser.map(|b| (b, next)))
        })
    }
}
