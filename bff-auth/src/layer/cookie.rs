//! Cookie sessions in [`JwtLayer`](super::JwtLayer): the cookie, how a request
//! presents it, and the CSRF rule that comes with it.

use std::sync::Arc;

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderValue};

use super::AuthError;
use crate::session::{BrowserSession, BrowserSessionStore, CookieValue, Touch};

/// The session cookie, whose name and attributes are fixed.
///
/// The name is `__Host-Http-bff`: browsers accept a `__Host-` cookie only
/// with `Secure`, `Path=/` and no `Domain`, so no sibling subdomain can set or
/// shadow it, and the `__Host-Http-` prefix only from an HTTP response, never
/// from `document.cookie`. The attributes are always `Secure; HttpOnly;
/// SameSite=Strict; Path=/`, with no `Domain`; this type has no way to change
/// them. `Max-Age`, when sent, is the session's remaining absolute lifetime,
/// never more.
///
/// ```
/// use bff_auth::layer::SessionCookie;
///
/// let cleared = SessionCookie::clear();
/// assert_eq!(
///     cleared.to_str().unwrap(),
///     "__Host-Http-bff=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Strict",
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCookie;

impl SessionCookie {
    /// The cookie's name.
    pub const NAME: &'static str = "__Host-Http-bff";

    const ATTRIBUTES: &'static str = "Path=/; Secure; HttpOnly; SameSite=Strict";

    /// The `Set-Cookie` value that gives the browser `value` for `session`,
    /// with a `Max-Age` of the session's remaining absolute lifetime as of
    /// `now_ms` (milliseconds since the epoch), rounded down.
    pub fn set(value: &CookieValue, session: &BrowserSession, now_ms: i64) -> HeaderValue {
        let remaining_s = session.expires_at_ms.saturating_sub(now_ms).max(0) / 1000;
        Self::render(&format!(
            "{}={}; Max-Age={remaining_s}; {}",
            Self::NAME,
            value.expose(),
            Self::ATTRIBUTES
        ))
    }

    /// The `Set-Cookie` value that gives the browser `value` as a cookie that
    /// lasts until the browser closes (no `Max-Age`); the session's own
    /// lifetimes still apply on the server.
    pub fn set_until_browser_closes(value: &CookieValue) -> HeaderValue {
        Self::render(&format!(
            "{}={}; {}",
            Self::NAME,
            value.expose(),
            Self::ATTRIBUTES
        ))
    }

    /// The `Set-Cookie` value that expires the cookie (`Max-Age=0`), for logout.
    pub fn clear() -> HeaderValue {
        HeaderValue::from_static(
            "__Host-Http-bff=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Strict",
        )
    }

    fn render(cookie: &str) -> HeaderValue {
        // A cookie value is base64url and the rest is fixed ASCII, so the
        // header is always valid; the fallback only keeps this total.
        let mut value = HeaderValue::from_str(cookie).unwrap_or_else(|_| Self::clear());
        value.set_sensitive(true);
        value
    }
}

/// Cookie sessions for [`JwtLayer::with_cookie_sessions`](super::JwtLayer::with_cookie_sessions):
/// where browser sessions are looked up, and whether a request touches them.
#[derive(Clone)]
pub struct CookieSessions {
    pub(super) store: Arc<dyn BrowserSessionStore>,
    pub(super) touch: Touch,
}

impl std::fmt::Debug for CookieSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieSessions")
            .field("touch", &self.touch)
            .finish_non_exhaustive()
    }
}

impl CookieSessions {
    /// Sessions of `store`; every authenticated request extends the idle
    /// timeout ([`Touch::Extend`]).
    pub fn new(store: impl BrowserSessionStore) -> Self {
        Self {
            store: Arc::new(store),
            touch: Touch::Extend,
        }
    }

    /// Whether requests through this layer touch the session, unless the
    /// request itself carries a [`Touch`] extension (put there by an outer
    /// layer), which wins. A layer for `GET /bff/user` alone uses
    /// [`Touch::Keep`].
    pub fn touch(mut self, touch: Touch) -> Self {
        self.touch = touch;
        self
    }
}

/// Header a cookie-authenticated request must carry, with the value `1`.
pub const CSRF_HEADER: &str = "x-csrf";

/// What a request presents, as far as cookie sessions are concerned.
pub(super) enum Presented {
    /// No session cookie: bearer authentication as usual.
    NoCookie,
    /// One session cookie, no `Authorization` header, the CSRF rule met.
    /// `None` when the value cannot be one this crate issued.
    Cookie(Option<CookieValue>),
}

/// Reads the session cookie of a request and applies the rules that come
/// with it, before any store is asked (so a refused request changes nothing):
/// two session cookies are refused (cookie tossing: no way to tell which one
/// the server set), a cookie with an `Authorization` header is refused (one
/// request, one caller), and a cookie request must pass the CSRF rule.
pub(super) fn presented(headers: &HeaderMap) -> Result<Presented, AuthError> {
    let mut values = session_cookies(headers);
    let Some(first) = values.next() else {
        return Ok(Presented::NoCookie);
    };
    if values.next().is_some() {
        return Err(AuthError::DuplicateCookie);
    }
    if headers.contains_key(AUTHORIZATION) {
        return Err(AuthError::AmbiguousCredentials);
    }
    if !csrf_passes(headers) {
        return Err(AuthError::Csrf);
    }
    Ok(Presented::Cookie(CookieValue::from_client(first)))
}

/// Every value of the session cookie across the request's `Cookie` headers.
fn session_cookies(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == SessionCookie::NAME)
        .map(|(_, value)| value.trim().trim_matches('"'))
}

/// `X-CSRF: 1` (exactly one such header), and `Sec-Fetch-Site`, when the
/// browser sends it, `same-origin`.
///
/// A custom header cannot be sent cross-origin without a CORS preflight this
/// app never grants, and a form cannot send one at all; Fetch Metadata then
/// refuses even same-site siblings (`sub.app.test`), which `SameSite=Strict`
/// alone lets through. The authenticator applies it to every cookie request;
/// routes that change state without a session yet (a login) apply it too.
pub fn csrf_passes(headers: &HeaderMap) -> bool {
    let mut csrf = headers.get_all(CSRF_HEADER).iter();
    let marked = matches!((csrf.next(), csrf.next()), (Some(v), None) if v == "1");
    let same_origin = headers
        .get_all("sec-fetch-site")
        .iter()
        .all(|v| v == "same-origin");
    marked && same_origin
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    const VALUE: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn the_cookie_carries_the_fixed_attributes() {
        let value = CookieValue::from_client(VALUE).expect("shaped");
        let session = BrowserSession {
            session: crate::session::Session {
                id: "s".into(),
                user_id: "u".into(),
                created_at_ms: 0,
                last_used_at_ms: 0,
                user_agent: None,
                ip: None,
            },
            role: "customer".into(),
            expires_at_ms: 12 * 3600 * 1000,
            idle_expires_at_ms: 30 * 60 * 1000,
        };
        let set = SessionCookie::set(&value, &session, 1_500);
        assert_eq!(
            set.to_str().expect("ascii"),
            format!(
                "__Host-Http-bff={VALUE}; Max-Age=43198; Path=/; Secure; HttpOnly; SameSite=Strict"
            )
        );
        assert!(set.is_sensitive());
        let session_only = SessionCookie::set_until_browser_closes(&value);
        assert!(!session_only.to_str().expect("ascii").contains("Max-Age"));
        assert!(!session_only.to_str().expect("ascii").contains("Domain"));
    }

    #[test]
    fn csrf_needs_the_header_and_a_same_origin_fetch() {
        assert!(csrf_passes(&headers(&[("x-csrf", "1")])));
        assert!(csrf_passes(&headers(&[
            ("x-csrf", "1"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!csrf_passes(&headers(&[])));
        assert!(!csrf_passes(&headers(&[("x-csrf", "true")])));
        assert!(!csrf_passes(&headers(&[("x-csrf", "1"), ("x-csrf", "1")])));
        for site in ["same-site", "cross-site", "none"] {
            let mut h = headers(&[("x-csrf", "1")]);
            h.insert("sec-fetch-site", HeaderValue::from_static(site));
            assert!(!csrf_passes(&h), "{site}");
        }
    }

    #[test]
    fn cookies_are_found_in_every_cookie_header() {
        let h = headers(&[("cookie", "a=b; __Host-Http-bff=x"), ("cookie", "c=d")]);
        assert_eq!(session_cookies(&h).collect::<Vec<_>>(), ["x"]);
        let h = headers(&[
            ("cookie", "__Host-Http-bff=x"),
            ("cookie", "__Host-Http-bff=y"),
        ]);
        assert!(matches!(presented(&h), Err(AuthError::DuplicateCookie)));
        let h = headers(&[("cookie", "__host-http-bff=x; bff=y")]);
        assert!(matches!(presented(&h), Ok(Presented::NoCookie)));
    }
}
