//! What the BFF revoked, as the backends learn it: a deny-list kept from the
//! BFF's events until every token it could concern has expired.
//!
//! The backends accept tokens the BFF minted for them (a minute at most), so
//! a logout or a block would otherwise hold there for up to a minute. The BFF
//! publishes `events.session.revoked` (`{"user_id", "session_id"}`: one
//! session), `events.user.sessions_revoked` (`{"user_id", "revoked_at",
//! "except_session_id"}`: every session but one, say after a password change)
//! and `events.user.blocked` (`{"user_id", "blocked_at"}`); each backend
//! follows them and refuses a token of a revoked session, or of a user's
//! token issued at or before the revocation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bff_auth::layer::{BoxFuture, Principal, SessionCheck, SessionCheckError};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::watch;

use crate::messaging::Topology;

/// The event subjects (without the deployment's prefix).
pub const SUBJECTS: [&str; 3] = [
    "events.session.revoked",
    "events.user.sessions_revoked",
    "events.user.blocked",
];

/// How long an entry is kept: longer than any token a backend accepts.
const KEEP: Duration = Duration::from_secs(120);

#[derive(Debug, Default)]
struct State {
    /// Revoked sessions, until when they are kept.
    sessions: HashMap<String, Instant>,
    /// Users whose tokens issued at or before a time are refused, but for one
    /// session: (revoked at, kept session, until when).
    users: HashMap<String, (i64, Option<String>, Instant)>,
}

/// The deny-list; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Revocations {
    state: Arc<Mutex<State>>,
}

/// One event's data.
#[derive(Debug, Deserialize)]
struct Revoked {
    user_id: String,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    except_session_id: Option<String>,
    #[serde(default, alias = "blocked_at")]
    revoked_at: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct Event {
    data: Revoked,
}

impl Revocations {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Refuses the session `session_id` from now on.
    pub fn revoke_session(&self, session_id: &str) {
        let mut state = self.lock();
        let now = Instant::now();
        state.sessions.retain(|_, until| *until > now);
        state.sessions.insert(session_id.to_owned(), now + KEEP);
    }

    /// Refuses `user_id`'s tokens issued at or before `at` (unix seconds),
    /// but those of `except_session`.
    pub fn revoke_user(&self, user_id: &str, at: i64, except_session: Option<String>) {
        let mut state = self.lock();
        let now = Instant::now();
        state.users.retain(|_, (_, _, until)| *until > now);
        state
            .users
            .insert(user_id.to_owned(), (at, except_session, now + KEEP));
    }

    /// Whether `principal`'s token is still good.
    pub fn allows(&self, principal: &Principal) -> bool {
        let state = self.lock();
        let now = Instant::now();
        if state
            .sessions
            .get(&principal.session_id)
            .is_some_and(|until| *until > now)
        {
            return false;
        }
        match state.users.get(&principal.user_id) {
            Some((at, except, until)) if *until > now => {
                except.as_deref() == Some(principal.session_id.as_str())
                    || principal.claims.iat > *at
            }
            _ => true,
        }
    }

    /// Applies one event's payload (`subject` is its subject without prefix).
    fn apply(&self, subject: &str, payload: &[u8]) {
        let Ok(Event { data }) = serde_json::from_slice::<Event>(payload) else {
            tracing::warn!(%subject, "an unreadable revocation event");
            return;
        };
        match (subject, data.session_id) {
            ("events.session.revoked", Some(session)) => self.revoke_session(&session),
            _ => self.revoke_user(
                &data.user_id,
                data.revoked_at.unwrap_or_else(bff_auth::token::unix_now),
                data.except_session_id,
            ),
        }
    }

    /// Follows the BFF's revocation events on `nats` until `stop` turns true.
    /// A plain subscription: only what happens from now on matters, since
    /// older tokens have expired anyway.
    pub async fn follow(
        self,
        nats: async_nats::Client,
        topology: Topology,
        mut stop: watch::Receiver<bool>,
    ) {
        let subjects = SUBJECTS.map(|s| (topology.subject(s), s));
        let mut streams = Vec::new();
        for (subject, _) in &subjects {
            match nats.subscribe(subject.clone()).await {
                Ok(subscriber) => streams.push(subscriber),
                Err(error) => {
                    tracing::error!(%error, %subject, "cannot follow revocations; revoked tokens stay valid until they expire");
                    return;
                }
            }
        }
        let mut events = futures_util::stream::select_all(streams);
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(message) => {
                        let subject = subjects
                            .iter()
                            .find(|(full, _)| full.as_str() == message.subject.as_str())
                            .map_or("", |(_, bare)| *bare);
                        self.apply(subject, &message.payload);
                    }
                    None => return,
                },
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }
}

impl SessionCheck for Revocations {
    fn is_active<'a>(
        &'a self,
        principal: &'a Principal,
    ) -> BoxFuture<'a, Result<bool, SessionCheckError>> {
        let allowed = self.allows(principal);
        Box::pin(async move { Ok(allowed) })
    }
}
