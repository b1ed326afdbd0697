//! Browser sessions: the same sessions as the others, reached by a cookie.
//!
//! A browser session is an ordinary [`Session`]: it is listed by
//! [`SessionStore::list`], ended by [`SessionStore::revoke`] and
//! [`SessionStore::revoke_all`], and answers [`SessionStore::is_active`], so
//! logout-all, a password change and blocking end it like any other. What
//! differs is how the browser presents it: not a refresh token exchanged for
//! access tokens, but an opaque [`CookieValue`] sent on every request, of which
//! the store keeps only the SHA-256. The record holds the user, the role, the
//! times and the client's address; never the cookie and never a token.
//!
//! A browser session ends after an idle timeout (no request that
//! [touches](Touch::Extend) it) or an absolute lifetime after login, whichever
//! comes first ([`BrowserPolicy`], 30 minutes and 12 hours by default).

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::{NewSession, Session, SessionError, SessionStore};
use crate::layer::BoxFuture;

/// Lifetimes of browser sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrowserPolicy {
    /// A session no request has touched for this long ends (default 30 minutes).
    pub idle_timeout: Duration,
    /// A session ends this long after login, however active (default 12 hours).
    pub absolute_lifetime: Duration,
}

impl Default for BrowserPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

/// Length of a cookie value: the session tag, then 32 random bytes in
/// base64url without padding.
#[cfg(test)]
const COOKIE_VALUE_LEN: usize = super::TAGGED_LEN;

/// The opaque value of a session cookie: the user's
/// [`session_tag`](super::session_tag) followed by 256 bits from the operating
/// system's CSPRNG, all base64url (51 characters). Its `Debug` output hides the value; the store
/// keeps only its [`hash`](Self::hash).
#[derive(Clone, PartialEq, Eq)]
pub struct CookieValue(String);

impl CookieValue {
    /// A new value for a session of `user_id`: its session tag, then 256 bits
    /// from the operating system's CSPRNG, base64url.
    pub fn generate(user_id: &str) -> Result<Self, SessionError> {
        Self::generate_tagged(&super::session_tag(user_id))
    }

    /// A new value with `tag` (the tag of the value it replaces).
    pub(crate) fn generate_tagged(tag: &str) -> Result<Self, SessionError> {
        super::tagged_secret(tag).map(Self)
    }

    /// The value a browser presented, if it has the shape of one this crate
    /// generates (51 base64url characters); anything else cannot name a
    /// session and is not worth a store round trip.
    pub fn from_client(value: &str) -> Option<Self> {
        super::tag_of(value).map(|_| Self(value.to_owned()))
    }

    /// The session tag the value begins with.
    pub fn tag(&self) -> &str {
        &self.0[..super::TAG_LEN]
    }

    /// The value, to put in the `Set-Cookie` header once (see
    /// [`SessionCookie`](crate::layer::SessionCookie)).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The stored form: base64url SHA-256. The value has 256 bits of entropy,
    /// so an unsalted fast hash is enough to make the stored form useless.
    pub fn hash(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for CookieValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CookieValue([REDACTED])")
    }
}

/// A live browser session, as a lookup finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    /// The session, as [`SessionStore::list`] shows it.
    pub session: Session,
    /// The user's role when the session started (or was last rotated).
    pub role: String,
    /// The absolute end, milliseconds since the epoch.
    pub expires_at_ms: i64,
    /// When the session ends if no request touches it, milliseconds since the
    /// epoch; never after [`expires_at_ms`](Self::expires_at_ms).
    pub idle_expires_at_ms: i64,
}

/// Whether looking a session up counts as activity.
///
/// The authenticator extends the idle timeout on every request by default; a
/// route that only reports on the session (`GET /bff/user`) must not, or a
/// page polling it would keep an abandoned session alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Touch {
    /// The lookup is activity: the idle timeout starts again (default).
    #[default]
    Extend,
    /// The lookup only reads: the idle timeout keeps running.
    Keep,
}

/// A [`SessionStore`] that also holds browser sessions.
///
/// Every method reads the store's clock, not the caller's, so instances
/// whose clocks disagree agree on lifetimes.
pub trait BrowserSessionStore: SessionStore {
    /// Starts a browser session for `new.user_id` with `role`, and returns it
    /// with the cookie value to send once. Login always starts a new session
    /// (a cookie the request carried is never reused).
    fn create_browser(
        &self,
        new: NewSession,
        role: &str,
    ) -> BoxFuture<'_, Result<(BrowserSession, CookieValue), SessionError>>;

    /// The live session `cookie` names, or `None` (unknown, ended, idle for
    /// too long or past its lifetime). With [`Touch::Extend`] its idle timeout
    /// starts again.
    fn lookup_browser<'a>(
        &'a self,
        cookie: &'a CookieValue,
        touch: Touch,
    ) -> BoxFuture<'a, Result<Option<BrowserSession>, SessionError>>;

    /// Replaces `cookie` with a new value for the same session (the old one
    /// stops working at once), with `role` recorded when given; `None` when
    /// `cookie` names no live session. The lifetime does not restart.
    fn rotate_browser<'a>(
        &'a self,
        cookie: &'a CookieValue,
        role: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<(BrowserSession, CookieValue)>, SessionError>>;
}

/// Idle and absolute ends of a session last touched at `last_ms`.
pub(super) fn ends(last_ms: i64, idle_ms: i64, absolute_end_ms: i64) -> (i64, i64) {
    let idle_end = last_ms.saturating_add(idle_ms).min(absolute_end_ms);
    (absolute_end_ms, idle_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_value_is_the_users_tag_and_256_bits_and_hidden() {
        let value = CookieValue::generate("user-1").expect("random");
        assert_eq!(value.expose().len(), COOKIE_VALUE_LEN);
        assert_eq!(value.tag(), crate::session::session_tag("user-1"));
        let secret = &value.expose()[value.tag().len()..];
        assert_eq!(URL_SAFE_NO_PAD.decode(secret).expect("b64").len(), 32);
        assert!(!format!("{value:?}").contains(value.expose()));
        assert_ne!(value.hash(), value.expose());
    }

    #[test]
    fn only_well_shaped_values_are_taken_from_clients() {
        let value = CookieValue::generate("user-1").expect("random");
        assert!(CookieValue::from_client(value.expose()).is_some());
        assert!(CookieValue::from_client("short").is_none());
        assert!(CookieValue::from_client(&"a".repeat(COOKIE_VALUE_LEN - 1)).is_none());
        assert!(CookieValue::from_client(&format!("{}=", &value.expose()[1..])).is_none());
        // Neither the tag nor the secret may hold other characters.
        let bad_tag = format!("{{{}", &value.expose()[1..]);
        assert!(CookieValue::from_client(&bad_tag).is_none());
        let bad_secret = format!("{}}}", &value.expose()[..COOKIE_VALUE_LEN - 1]);
        assert!(CookieValue::from_client(&bad_secret).is_none());
        // A value of the earlier layout (a bare secret) is not taken.
        assert!(CookieValue::from_client(&value.expose()[8..]).is_none());
    }
}
