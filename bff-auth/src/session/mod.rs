//! Sessions and refresh tokens.
//!
//! A session is what a login creates and a logout ends. It is identified by an
//! id that access tokens carry (`sid`), and renewed with opaque refresh tokens:
//! the user's [`session_tag`] followed by 256 random bits, all base64url,
//! stored only as their SHA-256. Every refresh
//! rotates the token. Presenting a token that was already rotated is a sign of
//! theft and revokes the whole session, except within a short grace window
//! after its rotation, where a concurrent refresh (two browser tabs) simply gets
//! a token of its own.
//!
//! Sessions end after an idle timeout (no refresh) or an absolute lifetime,
//! whichever comes first. The [`SessionStore`] trait is the seam; the Redis
//! implementation (`RedisSessionStore`, feature `redis`) does each rotation
//! in one atomic Lua script; [`MemorySessionStore`] keeps the same rules in
//! one process, for examples and tests.
//!
//! Browser sessions ([`BrowserSessionStore`]) are sessions of the same store,
//! presented by a cookie instead of refreshed with tokens; see [`browser`].

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::layer::BoxFuture;

pub mod browser;
mod memory;
#[cfg(feature = "redis")]
mod redis_store;

pub use browser::{BrowserPolicy, BrowserSession, BrowserSessionStore, CookieValue, Touch};
pub use memory::{Clock, MemorySessionStore};
#[cfg(feature = "redis")]
pub use redis_store::RedisSessionStore;

/// Session lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session not refreshed for this long ends (default 30 days).
    pub idle_timeout: Duration,
    /// A session ends this long after login, however active (default 90 days).
    pub absolute_lifetime: Duration,
    /// How long after a rotation the rotated token may still be presented by a
    /// concurrent refresh without revoking the session (default 10 s).
    pub reuse_grace: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 24 * 3600),
            absolute_lifetime: Duration::from_secs(90 * 24 * 3600),
            reuse_grace: Duration::from_secs(10),
        }
    }
}

/// What is recorded about a session when it starts.
#[derive(Debug, Clone, Default)]
pub struct NewSession {
    /// The user.
    pub user_id: String,
    /// The client's `User-Agent`, truncated.
    pub user_agent: Option<String>,
    /// The client's IP address.
    pub ip: Option<String>,
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Session id (a UUID v7).
    pub id: String,
    /// The user.
    pub user_id: String,
    /// Login time, milliseconds since the epoch.
    pub created_at_ms: i64,
    /// Last refresh (or login), milliseconds since the epoch.
    pub last_used_at_ms: i64,
    /// `User-Agent` at login.
    pub user_agent: Option<String>,
    /// IP address at the last use.
    pub ip: Option<String>,
}

/// Length of a [`session_tag`]: 6 bytes of SHA-256 in base64url.
pub(crate) const TAG_LEN: usize = 8;

/// The routing tag of `user_id`'s sessions: 48 bits of a SHA-256 of the id,
/// base64url (8 characters, never a brace).
///
/// Every key of one user's sessions carries it as a Redis hash tag, so they
/// share one Redis Cluster slot and each session operation stays one atomic
/// script; refresh tokens and cookie values begin with it, so a store finds
/// the slot from the token alone. It is not a secret and not an identifier:
/// many users share each tag.
pub fn session_tag(user_id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"bff-session-tag-v1\0")
        .chain_update(user_id.as_bytes())
        .finalize();
    URL_SAFE_NO_PAD.encode(&digest[..6])
}

/// Length of a tagged value: the tag, then 32 random bytes in base64url
/// without padding.
pub(crate) const TAGGED_LEN: usize = TAG_LEN + 43;

/// `tag` followed by 256 random bits, base64url.
pub(crate) fn tagged_secret(tag: &str) -> Result<String, SessionError> {
    crate::random::base64url(32)
        .map(|secret| format!("{tag}{secret}"))
        .map_err(|e| SessionError::Store(Box::new(e)))
}

/// The tag of a presented value, if it has the shape of one this crate
/// generates: [`TAGGED_LEN`] base64url characters.
pub(crate) fn tag_of(value: &str) -> Option<&str> {
    let shaped = value.len() == TAGGED_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    shaped.then(|| &value[..TAG_LEN])
}

/// An opaque refresh token: the user's [`session_tag`] followed by 256 random
/// bits, all base64url (51 characters). Its `Debug` output hides the value.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    /// A new token for a session of `user_id`: its [`session_tag`], then 256
    /// bits from the operating system's CSPRNG, base64url.
    pub fn generate(user_id: &str) -> Result<Self, SessionError> {
        Self::generate_tagged(&session_tag(user_id))
    }

    /// A new token with `tag` (the tag of the token it replaces).
    pub(crate) fn generate_tagged(tag: &str) -> Result<Self, SessionError> {
        tagged_secret(tag).map(Self)
    }

    /// Wraps a token a client presented.
    pub fn from_client(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token, to send to the client once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The [`session_tag`] the token begins with; `None` when it does not have
    /// the shape of a token this crate generates (it then names no session).
    pub fn tag(&self) -> Option<&str> {
        tag_of(&self.0)
    }

    /// The stored form: base64url SHA-256. The token has 256 bits of entropy,
    /// so an unsalted fast hash is enough to make the stored form useless.
    pub fn hash(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([REDACTED])")
    }
}

/// The result of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// The token was current (or within the grace window): here is its successor.
    Rotated {
        /// The session, with `last_used_at` updated.
        session: Session,
        /// The new refresh token.
        token: RefreshToken,
    },
    /// The token had been rotated before the grace window: the session is now revoked.
    Reused {
        /// The revoked session's user.
        user_id: String,
        /// The revoked session.
        session_id: String,
    },
    /// Unknown, expired, or its session has ended.
    Invalid,
}

/// The store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The backend (Redis) failed or answered something unexpected.
    #[error("session store error: {0}")]
    Store(Box<dyn std::error::Error + Send + Sync>),
}

/// Where sessions live.
pub trait SessionStore: Send + Sync + 'static {
    /// Starts a session and returns its first refresh token.
    fn create(
        &self,
        new: NewSession,
    ) -> BoxFuture<'_, Result<(Session, RefreshToken), SessionError>>;

    /// Rotates `token`; `ip` is recorded as the session's latest address.
    fn refresh<'a>(
        &'a self,
        token: &'a RefreshToken,
        ip: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Refresh, SessionError>>;

    /// Whether `user_id`'s session `session_id` exists and has not ended.
    fn is_active<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, SessionError>>;

    /// The user's live sessions, newest first.
    fn list<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Vec<Session>, SessionError>>;

    /// Ends `session_id` if it belongs to `user_id`; `false` when there is no such session of theirs.
    fn revoke<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, SessionError>>;

    /// Ends every session of `user_id` except `keep`; returns how many ended.
    fn revoke_all<'a>(
        &'a self,
        user_id: &'a str,
        keep: Option<&'a str>,
    ) -> BoxFuture<'a, Result<usize, SessionError>>;
}

/// Adapts a [`SessionStore`] into the [`SessionCheck`](crate::layer::SessionCheck)
/// of [`JwtLayer`](crate::layer::JwtLayer): a token is accepted only while its
/// session lives, so ending a session stops its access tokens on the next request.
#[derive(Clone)]
pub struct StoreSessionCheck<S>(pub S);

impl<S: SessionStore + Clone> crate::layer::SessionCheck for StoreSessionCheck<S> {
    fn is_active<'a>(
        &'a self,
        principal: &'a crate::layer::Principal,
    ) -> BoxFuture<'a, Result<bool, crate::layer::SessionCheckError>> {
        Box::pin(async move {
            self.0
                .is_active(&principal.user_id, &principal.session_id)
                .await
                .map_err(|SessionError::Store(e)| crate::layer::SessionCheckError(e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_token_begins_with_its_users_tag() {
        let token = RefreshToken::generate("user-1").expect("random");
        assert_eq!(token.tag(), Some(session_tag("user-1").as_str()));
        assert_ne!(session_tag("user-1"), session_tag("user-2"));
        assert_eq!(session_tag("user-1").len(), TAG_LEN);
        assert!(!format!("{token:?}").contains(token.expose()));
    }

    #[test]
    fn a_token_of_another_shape_names_no_slot() {
        let token = RefreshToken::generate("user-1").expect("random");
        let value = token.expose();
        assert_eq!(value.len(), TAGGED_LEN);
        assert!(
            URL_SAFE_NO_PAD
                .decode(&value[TAG_LEN..])
                .is_ok_and(|b| b.len() == 32)
        );
        for presented in [
            String::new(),
            "short".to_owned(),
            value[TAG_LEN..].to_owned(),
            format!("{value}A"),
            format!("{{{}", &value[1..]),
            format!("{}=", &value[..TAGGED_LEN - 1]),
        ] {
            assert_eq!(
                RefreshToken::from_client(presented.clone()).tag(),
                None,
                "{presented}"
            );
        }
    }
}
