//! [`JwtLayer`]: bearer authentication as a tower layer.
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
//!
//! The layer reads `Authorization: Bearer <token>`, verifies the token with a
//! [`TokenVerifier`](crate::token::TokenVerifier), asks an optional
//! [`SessionCheck`] whether the token's session is still alive, and puts a
//! [`Principal`] in the request extensions.
//! A missing, invalid or revoked token is a 401 problem with
//! `WWW-Authenticate: Bearer`; in [optional](JwtLayer::optional) mode a request
//! without any `Authorization` header passes through anonymously (an invalid
//! token is still refused). When the session store or the issuer's keys cannot
//! be reached the layer fails closed: 503 with `Retry-After`.
//!
//! It is a tower layer over any `http::Request<B>` and any response body, so it
//! serves axum, tonic and bare hyper alike: its own refusals are
//! [`ResponseBody`]s that need no framework, and a gRPC caller gets a
//! `grpc-status` (`UNAUTHENTICATED`, `UNAVAILABLE`) instead of a problem (see
//! [`bff_core::refusal`]). On tonic, a method reads the caller with
//! `request.extensions().get::<Principal>()`.
//!
//! Verified tokens are cached: a bounded in-memory map from the token's SHA-256
//! to its verified claims, never served past the token's `exp` (plus the
//! verifier's clock-skew leeway), so a busy
//! client's token is verified once instead of on every request. A cache hit still
//! checks expiry, that the signing key is still published, and the session.
//!
//! # Cookie sessions
//!
//! With [`JwtLayer::with_cookie_sessions`] the same layer also authenticates
//! browsers by the [`SessionCookie`] of a browser session
//! ([`BrowserSessionStore`](crate::session::BrowserSessionStore)), and hands
//! handlers the same [`Principal`] (its [`credential`](Principal::credential)
//! says which way it came), so one route serves bearer and cookie callers.
//! One authenticator serves both rather than a second layer, because the
//! rules that tie them can only be kept where both are seen:
//!
//! - a request with the session cookie and an `Authorization` header is 400,
//!   and so is one with two session cookies (cookie tossing: nothing tells
//!   which one the server set, so neither is trusted);
//! - a cookie request of any method, `GET` included, must carry `X-CSRF: 1`
//!   and, when the browser sends `Sec-Fetch-Site`, it must be `same-origin`;
//!   otherwise 403 problem `csrf_failed`. The check runs before the session is
//!   looked up, and there is no setting to turn it off: no route behind this
//!   layer can receive a cookie [`Principal`] without it;
//! - a cookie naming no live session is 401, as an invalid token is;
//! - a request without the cookie is a bearer request, unchanged.
//!
//! Every cookie request touches its session (the idle timeout starts again)
//! unless the layer was built with [`CookieSessions::touch`]`(Touch::Keep)`
//! or the request carries a [`Touch`](crate::session::Touch) extension, set
//! by an outer layer: that is how `GET /bff/user` reports the session without
//! extending it.
//!
//! ```
//! use axum::{Router, routing::get};
//! use bff_auth::keys::{Algorithm, KeySet, SigningKey};
//! use bff_auth::layer::{CookieSessions, JwtLayer, Principal};
//! use bff_auth::session::{BrowserPolicy, MemorySessionStore, SessionPolicy, Touch};
//! use bff_auth::token::{TokenVerifier, ValidationPolicy};
//! use tower::ServiceBuilder;
//!
//! let key = SigningKey::generate(Algorithm::EdDsa).unwrap().signing_key().unwrap();
//! let keys = KeySet::new(key, Vec::new()).unwrap();
//! let verifier = TokenVerifier::new(keys.verification_keys(), ValidationPolicy::new("bff", "bff"));
//! let store = MemorySessionStore::new(SessionPolicy::default(), BrowserPolicy::default());
//! let auth = JwtLayer::new(verifier).with_cookie_sessions(CookieSessions::new(store.clone()));
//!
//! async fn me(principal: Principal) -> String {
//!     format!("user {} in session {}", principal.user_id, principal.session_id)
//! }
//!
//! let app: Router = Router::new()
//!     .route("/api/v1/me", get(me))
//!     .route_layer(ServiceBuilder::new().layer(auth.clone()))
//!     // A route of its own whose cookie lookups do not extend the idle timeout.
//!     .merge(
//!         Router::new()
//!             .route("/bff/user", get(me))
//!             .route_layer(auth.with_cookie_sessions(CookieSessions::new(store).touch(Touch::Keep))),
//!     );
//! # let _ = app;
//! ```
//!
//! The parts, as in tower-http: [`JwtLayer`] (`layer.rs`) holds the settings
//! and [`JwtLayer::authenticate`]; [`Jwt`] (`service.rs`) is the service;
//! [`ResponseFuture`] (`future.rs`) waits for authentication, then for the
//! inner service.

mod cache;
mod cookie;
mod future;
#[allow(clippy::module_inception)]
mod layer;
mod principal;
mod service;

use std::future::Future;
use std::pin::Pin;

pub use bff_core::refusal::ResponseBody;

pub use self::cookie::{CSRF_HEADER, CookieSessions, SessionCookie, csrf_passes};
pub use self::future::ResponseFuture;
pub use self::layer::{
    AuthError, DEFAULT_CACHE_CAPACITY, JwtLayer, SessionCheck, SessionCheckError, VERIFICATIONS,
};
pub use self::principal::{Credential, Principal};
pub use self::service::{Jwt, bearer_token};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
