//! [`JwtLayer`]: the settings, and authentication itself.

use std::sync::Arc;

use axum::response::IntoResponse;
use bff_core::Problem;
use http::{HeaderValue, StatusCode};
use sha2::{Digest, Sha256};
use tower::Layer;

use super::cache::TokenCache;
use super::{BoxFuture, CookieSessions, Credential, Jwt, Principal};
use crate::session::{BrowserSession, CookieValue, SessionError, Touch};
use crate::token::{Audience, Claims, TokenError, TokenVerifier, unix_now};

/// Whether a session is still alive: the seam through which logout and
/// revocation reach tokens that are otherwise valid until they expire.
pub trait SessionCheck: Send + Sync + 'static {
    /// `Ok(false)` when the session has ended.
    fn is_active<'a>(
        &'a self,
        principal: &'a Principal,
    ) -> BoxFuture<'a, Result<bool, SessionCheckError>>;
}

/// The session store could not answer; the request is refused with 503
/// (failing open would let revoked tokens in).
#[derive(Debug, thiserror::Error)]
#[error("session check failed: {0}")]
pub struct SessionCheckError(pub Box<dyn std::error::Error + Send + Sync>);

/// Entries of the verified-token cache by default.
pub const DEFAULT_CACHE_CAPACITY: u64 = 100_000;

/// Counter of token verifications by outcome (`cached`, `verified`, `rejected`).
pub const VERIFICATIONS: &str = "auth_token_verifications_total";

/// Layer that applies [`Jwt`]; see the [module docs](super).
#[derive(Clone)]
pub struct JwtLayer {
    verifier: Arc<TokenVerifier>,
    cache: Option<Arc<TokenCache>>,
    sessions: Option<Arc<dyn SessionCheck>>,
    pub(super) optional: bool,
    pub(super) cookies: Option<CookieSessions>,
    user_on_span: bool,
    #[cfg(feature = "client")]
    jwks: Option<crate::jwks::JwksClient>,
}

impl std::fmt::Debug for JwtLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtLayer")
            .field("cache", &self.cache.as_ref().map(|c| c.len()))
            .field("session_check", &self.sessions.is_some())
            .field("optional", &self.optional)
            .field("cookies", &self.cookies)
            .finish()
    }
}

impl<S> Layer<S> for JwtLayer {
    type Service = Jwt<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Jwt::new(inner, self.clone())
    }
}

impl JwtLayer {
    /// Requires a valid token, with a verified-token cache of
    /// [`DEFAULT_CACHE_CAPACITY`] entries.
    pub fn new(verifier: TokenVerifier) -> Self {
        Self {
            verifier: Arc::new(verifier),
            cache: None,
            sessions: None,
            optional: false,
            cookies: None,
            user_on_span: false,
            #[cfg(feature = "client")]
            jwks: None,
        }
        .with_cache_capacity(DEFAULT_CACHE_CAPACITY)
    }

    /// Lets requests without an `Authorization` header through without a
    /// [`Principal`]; a token that is present must still be valid.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Bounds the verified-token cache to `capacity` entries; 0 disables it.
    pub fn with_cache_capacity(mut self, capacity: u64) -> Self {
        self.cache = (capacity > 0).then(|| Arc::new(TokenCache::new(capacity)));
        self
    }

    /// Checks every token's session with `check`.
    pub fn with_session_check(mut self, check: impl SessionCheck) -> Self {
        self.sessions = Some(Arc::new(check));
        self
    }

    /// Also authenticates browsers by their session cookie (see
    /// [`SessionCookie`](super::SessionCookie)), with the CSRF rule that goes
    /// with it; see the [module docs](super#cookie-sessions).
    pub fn with_cookie_sessions(mut self, cookies: CookieSessions) -> Self {
        self.cookies = Some(cookies);
        self
    }

    /// Records the caller's id as `user.id` on the request's span (bff-core's
    /// `stack::request_span`, which declares the field) once the caller is
    /// authenticated: with OpenTelemetry, the server span's `user.id`
    /// attribute, and a field of the request's log lines. Off by default,
    /// since a user id is personal data that traces and logs then carry.
    pub fn with_user_id_on_span(mut self, record: bool) -> Self {
        self.user_on_span = record;
        self
    }

    /// Records `principal`'s id on the current span when
    /// [`with_user_id_on_span`](Self::with_user_id_on_span) asks for it.
    pub(super) fn on_span(&self, principal: &Principal) {
        if self.user_on_span {
            tracing::Span::current().record("user.id", principal.user_id.as_str());
        }
    }

    /// Refreshes keys through `jwks` before verifying a token it has not cached
    /// (feature `client`), for services that verify another issuer's tokens: the
    /// verifier must read `jwks.verification_keys()`.
    #[cfg(feature = "client")]
    pub fn with_jwks(mut self, jwks: crate::jwks::JwksClient) -> Self {
        self.jwks = Some(jwks);
        self
    }

    /// Authenticates a bearer token outside a request (for example a gRPC or
    /// WebSocket handshake, or a message): the same checks as the layer, cache
    /// included.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let span = verify_span();
        let claims = match span.in_scope(|| self.cached(token, &span)) {
            Some(claims) => claims,
            None => {
                #[cfg(feature = "client")]
                if let Some(jwks) = &self.jwks {
                    tracing::Instrument::instrument(jwks.prepare(token), span.clone())
                        .await
                        .map_err(AuthError::KeysUnavailable)?;
                }
                span.in_scope(|| self.verify_and_cache(token, &span))?
            }
        };
        drop(span);
        let principal = Principal::from_claims(claims);
        if let Some(sessions) = &self.sessions {
            match sessions.is_active(&principal).await {
                Ok(true) => {}
                Ok(false) => return Err(AuthError::SessionEnded),
                Err(error) => return Err(AuthError::SessionCheck(error)),
            }
        }
        Ok(principal)
    }

    /// The caller of a session cookie that passed the CSRF rule: its browser
    /// session, touched or not, as a [`Principal`] whose claims are those
    /// an access token for the session would carry (`iat` the login, `exp`
    /// the session's nearer end).
    pub(super) async fn authenticate_cookie(
        &self,
        cookie: Option<CookieValue>,
        touch: Touch,
    ) -> Result<Principal, AuthError> {
        let (Some(cookies), Some(cookie)) = (&self.cookies, cookie) else {
            return Err(AuthError::CookieSessionEnded);
        };
        match cookies.store.lookup_browser(&cookie, touch).await {
            Ok(Some(session)) => Ok(self.cookie_principal(session)),
            Ok(None) => Err(AuthError::CookieSessionEnded),
            Err(SessionError::Store(error)) => {
                Err(AuthError::SessionCheck(SessionCheckError(error)))
            }
        }
    }

    fn cookie_principal(&self, session: BrowserSession) -> Principal {
        let policy = self.verifier.policy();
        let claims = Claims {
            iss: policy.issuer.clone(),
            aud: Audience::One(policy.audience.clone()),
            sub: session.session.user_id.clone(),
            sid: session.session.id.clone(),
            role: session.role.clone(),
            iat: session.session.created_at_ms / 1000,
            nbf: session.session.created_at_ms / 1000,
            exp: session.idle_expires_at_ms / 1000,
            // No token exists; the session id names what a `jti` would.
            jti: session.session.id.clone(),
        };
        let mut principal = Principal::from_claims(Arc::new(claims));
        principal.credential = Credential::Cookie(Arc::new(session));
        principal
    }

    /// [`authenticate`](Self::authenticate)'s outcome without waiting, when no
    /// step of it waits: no session check, and the token cached or no JWKS to
    /// refresh. `None` when one does.
    pub(super) fn authenticate_now(&self, token: &str) -> Option<Result<Principal, AuthError>> {
        if self.sessions.is_some() {
            return None;
        }
        let span = verify_span();
        let claims = match self.cached(token, &span) {
            Some(claims) => claims,
            None => {
                #[cfg(feature = "client")]
                if self.jwks.is_some() {
                    return None;
                }
                match self.verify_and_cache(token, &span) {
                    Ok(claims) => claims,
                    Err(error) => return Some(Err(error)),
                }
            }
        };
        Some(Ok(Principal::from_claims(claims)))
    }

    /// The claims of `token` if the cache holds it, still valid and still signed
    /// by a published key; a hit is recorded on `span` (`jwt.verify`).
    fn cached(&self, token: &str, span: &tracing::Span) -> Option<Arc<Claims>> {
        let cache = self.cache.as_ref()?;
        let leeway = i64::try_from(self.verifier.policy().leeway.as_secs()).unwrap_or(0);
        // Expiry is checked on every hit, and so is the key: a retired key's
        // tokens stop working at once, cached or not.
        let claims = cache.get(
            &cache_key(token),
            unix_now().saturating_sub(leeway),
            |kid| self.verifier.is_published(kid),
        )?;
        metrics::counter!(VERIFICATIONS, "outcome" => "cached").increment(1);
        span.record("outcome", "cached");
        Some(claims)
    }

    /// Verifies `token`, caches its claims, and records the outcome on `span`.
    fn verify_and_cache(
        &self,
        token: &str,
        span: &tracing::Span,
    ) -> Result<Arc<Claims>, AuthError> {
        match self.verifier.verify_with_kid(token, unix_now()) {
            Ok((claims, kid)) => {
                metrics::counter!(VERIFICATIONS, "outcome" => "verified").increment(1);
                span.record("outcome", "verified");
                let claims = Arc::new(claims);
                if let Some(cache) = &self.cache {
                    cache.insert(cache_key(token), Arc::clone(&claims), kid);
                }
                Ok(claims)
            }
            Err(error) => {
                metrics::counter!(VERIFICATIONS, "outcome" => "rejected").increment(1);
                span.record("outcome", "rejected");
                Err(AuthError::Token(error))
            }
        }
    }
}

/// The span of a token's verification (a trace span with OpenTelemetry):
/// `outcome` is `cached` (a hit of the verified-token cache), `verified` or
/// `rejected`, as in the verification counter.
fn verify_span() -> tracing::Span {
    tracing::info_span!("jwt.verify", outcome = tracing::field::Empty)
}

fn cache_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("no bearer token")]
    Missing,
    /// The token was refused.
    #[error(transparent)]
    Token(TokenError),
    /// The token's session has ended.
    #[error("session ended")]
    SessionEnded,
    /// The session store could not answer.
    #[error(transparent)]
    SessionCheck(SessionCheckError),
    /// A cookie-authenticated request without `X-CSRF: 1`, or sent by a page
    /// of another origin (`Sec-Fetch-Site`).
    #[error("the CSRF check failed")]
    Csrf,
    /// A session cookie and an `Authorization` header on one request.
    #[error("both a session cookie and an Authorization header")]
    AmbiguousCredentials,
    /// The session cookie names no live browser session.
    #[error("no live browser session")]
    CookieSessionEnded,
    /// More than one session cookie on one request.
    #[error("more than one session cookie")]
    DuplicateCookie,
    /// The issuer's keys could not be fetched (feature `client`), so no token
    /// can be verified.
    #[cfg(feature = "client")]
    #[error("the issuer's keys are unavailable")]
    KeysUnavailable(#[source] crate::jwks::JwksError),
}

impl AuthError {
    /// The problem this refusal answers with: 401 with `WWW-Authenticate`, or
    /// 503 with `Retry-After` when a store the check needs is unreachable.
    pub fn into_problem(self) -> Problem {
        match self {
            Self::Missing => unauthenticated(),
            Self::SessionCheck(error) => {
                tracing::error!(%error, "session check failed");
                temporarily_unavailable()
            }
            #[cfg(feature = "client")]
            Self::KeysUnavailable(error) => {
                tracing::warn!(error = %bff_core::problem::ErrorChain(&error), "the issuer's JWKS is unavailable");
                temporarily_unavailable()
            }
            Self::Csrf => {
                tracing::debug!("cookie request refused by the CSRF check");
                Problem::new(StatusCode::FORBIDDEN, "csrf_failed", "CSRF check failed").with_detail(
                    "A request authenticated by the session cookie must carry `X-CSRF: 1` \
                     and come from this origin.",
                )
            }
            Self::AmbiguousCredentials => Problem::bad_request(
                "Send either the session cookie or an `Authorization` header, not both.",
            ),
            Self::CookieSessionEnded => Problem::unauthorized()
                .with_detail("The session has ended or does not exist; sign in again."),
            Self::DuplicateCookie => {
                tracing::debug!("request with several session cookies refused");
                Problem::bad_request("The request carries more than one session cookie.")
            }
            Self::Token(_) | Self::SessionEnded => {
                tracing::debug!(reason = %self, "bearer token refused");
                Problem::from_status(StatusCode::UNAUTHORIZED)
                    .with_detail("The access token is invalid, expired or revoked.")
                    .with_header(
                        http::header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                    )
            }
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> axum::response::Response {
        self.into_problem().into_response()
    }
}

fn temporarily_unavailable() -> Problem {
    Problem::unavailable("Authentication is temporarily unavailable; try again shortly.")
        .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("1"))
}

pub(super) fn unauthenticated() -> Problem {
    Problem::unauthorized()
        .with_detail("An access token is required: send `Authorization: Bearer <token>`.")
}
