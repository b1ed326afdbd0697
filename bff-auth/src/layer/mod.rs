//! [`JwtLayer`]: bearer authentication as a tower layer.
//!
//! The layer reads `Authorization: Bearer <token>`, verifies the token with a
//! [`TokenVerifier`], asks an optional [`SessionCheck`] whether the token's
//! session is still alive, and puts a [`Principal`] in the request extensions.
//! A missing, invalid or revoked token is a 401 problem with
//! `WWW-Authenticate: Bearer`; in [optional](JwtLayer::optional) mode a request
//! without any `Authorization` header passes through anonymously (an invalid
//! token is still refused).
//!
//! Verified tokens are cached: a bounded in-memory map from the token's SHA-256
//! to its verified claims, never served past the token's `exp` (plus the
//! verifier's clock-skew leeway), so a busy
//! client's token is verified once instead of on every request. A cache hit still
//! checks expiry, that the signing key is still published, and the session.
//!
//! ```
//! use axum::{Router, routing::get};
//! use bff_auth::keys::{Algorithm, KeySet, SigningKey};
//! use bff_auth::layer::{JwtLayer, Principal};
//! use bff_auth::token::{TokenVerifier, ValidationPolicy};
//! use tower::ServiceBuilder;
//!
//! let key = SigningKey::generate(Algorithm::EdDsa).unwrap().signing_key().unwrap();
//! let keys = KeySet::new(key, Vec::new()).unwrap();
//! let verifier = TokenVerifier::new(keys.verification_keys(), ValidationPolicy::new("bff", "bff"));
//!
//! async fn me(principal: Principal) -> String {
//!     format!("user {} in session {}", principal.user_id, principal.session_id)
//! }
//!
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .layer(ServiceBuilder::new().layer(JwtLayer::new(verifier)));
//! # let _ = app;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::IntoResponse;
use bff_core::Problem;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use tower::{Layer, Service};

use self::cache::TokenCache;
use crate::token::{Claims, TokenError, TokenVerifier, unix_now};

mod cache;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The authenticated caller, put in the request extensions by [`JwtLayer`].
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user id (`sub`).
    pub user_id: String,
    /// The session id (`sid`).
    pub session_id: String,
    /// The role (`role`).
    pub role: String,
    /// Every claim of the token.
    pub claims: Arc<Claims>,
}

impl Principal {
    fn from_claims(claims: Arc<Claims>) -> Self {
        Self {
            user_id: claims.sub.clone(),
            session_id: claims.sid.clone(),
            role: claims.role.clone(),
            claims,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(unauthenticated)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}

impl aide::operation::OperationInput for Principal {}

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

/// Layer that applies [`JwtService`]; see the [module docs](self).
#[derive(Clone)]
pub struct JwtLayer {
    verifier: Arc<TokenVerifier>,
    cache: Option<Arc<TokenCache>>,
    sessions: Option<Arc<dyn SessionCheck>>,
    optional: bool,
    #[cfg(feature = "client")]
    jwks: Option<crate::jwks::JwksClient>,
}

impl std::fmt::Debug for JwtLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtLayer")
            .field("cache", &self.cache.as_ref().map(|c| c.len()))
            .field("session_check", &self.sessions.is_some())
            .field("optional", &self.optional)
            .finish()
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

    /// Refreshes keys through `jwks` before verifying a token it has not cached
    /// (feature `client`), for services that verify another issuer's tokens: the
    /// verifier must read `jwks.verification_keys()`.
    #[cfg(feature = "client")]
    pub fn with_jwks(mut self, jwks: crate::jwks::JwksClient) -> Self {
        self.jwks = Some(jwks);
        self
    }

    /// Authenticates a bearer token outside a request (for example a gRPC or
    /// WebSocket handshake): the same checks as the layer, cache included.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = match self.cached(token) {
            Some(claims) => claims,
            None => {
                #[cfg(feature = "client")]
                if let Some(jwks) = &self.jwks {
                    jwks.prepare(token).await;
                }
                self.verify_and_cache(token)?
            }
        };
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

    /// The claims of `token` if the cache holds it, still valid and still signed
    /// by a published key.
    fn cached(&self, token: &str) -> Option<Arc<Claims>> {
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
        Some(claims)
    }

    fn verify_and_cache(&self, token: &str) -> Result<Arc<Claims>, AuthError> {
        match self.verifier.verify_with_kid(token, unix_now()) {
            Ok((claims, kid)) => {
                metrics::counter!(VERIFICATIONS, "outcome" => "verified").increment(1);
                let claims = Arc::new(claims);
                if let Some(cache) = &self.cache {
                    cache.insert(cache_key(token), Arc::clone(&claims), kid);
                }
                Ok(claims)
            }
            Err(error) => {
                metrics::counter!(VERIFICATIONS, "outcome" => "rejected").increment(1);
                Err(AuthError::Token(error))
            }
        }
    }
}

fn cache_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Counter of token verifications by outcome (`cached`, `verified`, `rejected`).
pub const VERIFICATIONS: &str = "auth_token_verifications_total";

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
}

impl IntoResponse for AuthError {
    fn into_response(self) -> axum::response::Response {
        match self {
            Self::Missing => unauthenticated().into_response(),
            Self::SessionCheck(error) => {
                tracing::error!(%error, "session check failed");
                Problem::unavailable(
                    "Authentication is temporarily unavailable; try again shortly.",
                )
                .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("1"))
                .into_response()
            }
            Self::Token(_) | Self::SessionEnded => {
                tracing::debug!(reason = %self, "bearer token refused");
                Problem::from_status(StatusCode::UNAUTHORIZED)
                    .with_detail("The access token is invalid, expired or revoked.")
                    .with_header(
                        http::header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                    )
                    .into_response()
            }
        }
    }
}

fn unauthenticated() -> Problem {
    Problem::unauthorized()
        .with_detail("An access token is required: send `Authorization: Bearer <token>`.")
}

/// The bearer token of a request: `None` without an `Authorization` header,
/// `Some(Err)` with one that is not a bearer token.
fn bearer(req_headers: &http::HeaderMap) -> Option<Result<&str, ()>> {
    let value = req_headers.get(AUTHORIZATION)?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty());
    Some(token.ok_or(()))
}

impl<S> Layer<S> for JwtLayer {
    type Service = JwtService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtService {
            inner,
            layer: self.clone(),
        }
    }
}

/// Authenticates requests; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct JwtService<S> {
    inner: S,
    layer: JwtLayer,
}

impl<S> JwtService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Consumes the layer's service, returning the wrapped one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for JwtService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready is the one to call (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        let token = bearer(req.headers()).map(|t| t.map(str::to_owned));
        Box::pin(async move {
            match token {
                None if layer.optional => {}
                None => return Ok(AuthError::Missing.into_response()),
                Some(Err(())) => return Ok(AuthError::Token(TokenError::Malformed).into_response()),
                Some(Ok(token)) => match layer.authenticate(&token).await {
                    Ok(principal) => {
                        req.extensions_mut().insert(principal);
                    }
                    Err(error) => return Ok(error.into_response()),
                },
            }
            inner.call(req).await.map(|res| res.map(Body::new))
        })
    }
}
