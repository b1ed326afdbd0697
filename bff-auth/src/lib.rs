//! # bff-auth
//!
//! Authentication building blocks for BFFs, independent of any one app:
//!
//! - [`keys`]: EdDSA (default), ES256 and RS256 signing keys from PEM, verification-only
//!   keys for rotation, and the JWKS document that publishes only their public parts;
//! - [`token`]: the access-token issuer and a verifier with an algorithm allow-list;
//! - [`mint`]: short-lived tokens for one backend's audience, minted from a
//!   verified caller and reused per session, so no user token travels onward;
//! - [`layer`]: [`JwtLayer`](layer::JwtLayer), bearer authentication as a tower layer
//!   (for axum, tonic or bare hyper; gRPC callers are refused with a
//!   `grpc-status`) with a verified-token cache and a session-liveness hook, and
//!   the [`Principal`](layer::Principal) it hands to handlers;
//! - [`password`]: argon2id hashing on the blocking pool, with a dummy hash for unknown
//!   accounts and rehash detection;
//! - [`session`]: sessions with rotating refresh tokens and reuse detection, behind
//!   the [`SessionStore`](session::SessionStore) trait, stored in Redis with the
//!   `redis` feature;
//! - [`code`]: one-time 6-digit codes stored only as keyed hashes, with attempt
//!   limits and throttling shared by every instance, behind the
//!   [`CodeStore`](code::CodeStore) trait, in Redis with the `redis` feature;
//! - `identity` (feature `identity`): email addresses and phone numbers parsed and
//!   normalised (E.164, with libphonenumber's rules) at the edge;
//! - `jwks` (feature `client`): `JwksClient`, for services that verify this
//!   issuer's tokens with its public JWKS alone, fetched at start or, with
//!   `JwksClient::lazy`, at the first request;
//! - `oauth` (feature `oauth`): social login, the OAuth 2.0 / OpenID Connect
//!   authorization-code flow with PKCE for Google, Facebook, VK ID, Yandex ID
//!   and any OpenID issuer: `OAuthClient`, ID-token verification through the
//!   JWKS client, profiles normalised to `ExternalProfile`, and the one-time
//!   `StateStore` (in memory, or in Redis with the `redis` feature too);
//! - with the `openapi` feature, [`Principal`](layer::Principal) is an aide
//!   operation input, so handlers that take it can be documented with aide.
//!
//! ```
//! use axum::{Router, routing::get};
//! use bff_auth::keys::{Algorithm, KeySet, SigningKey};
//! use bff_auth::layer::{JwtLayer, Principal};
//! use bff_auth::token::{TokenIssuer, TokenVerifier, ValidationPolicy};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // One key pair: the BFF signs with the private key; anyone verifies with
//! // the JWKS (`keys.jwks()`), which holds only the public part.
//! let key = SigningKey::generate(Algorithm::EdDsa)?.signing_key()?;
//! let keys = KeySet::new(key, Vec::new())?;
//! let issuer = TokenIssuer::new(keys.clone(), "bff", "bff", std::time::Duration::from_secs(900));
//! let verifier = TokenVerifier::new(keys.verification_keys(), ValidationPolicy::new("bff", "bff"));
//!
//! let app = Router::new()
//!     .route("/me", get(|p: Principal| async move { p.user_id }))
//!     .layer(JwtLayer::new(verifier));
//!
//! let token = issuer.issue("user-1", "session-1", "customer")?;
//! let request = Request::get("/me")
//!     .header("authorization", format!("Bearer {}", token.access_token))
//!     .body(axum::body::Body::empty())?;
//! assert_eq!(app.clone().oneshot(request).await?.status(), StatusCode::OK);
//!
//! // Without a token: 401 problem+json with `WWW-Authenticate: Bearer`.
//! let anonymous = Request::get("/me").body(axum::body::Body::empty())?;
//! assert_eq!(app.oneshot(anonymous).await?.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! None is on by default; the JWT layer, keys, tokens, minting, passwords,
//! sessions and codes (with in-memory stores) need none.
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `redis` | the Redis session, code and OAuth state stores |
//! | `identity` | the `identity` module: email and E.164 phone identifiers |
//! | `client` | the `jwks` module: `JwksClient`, for services verifying this issuer's tokens |
//! | `oauth` | the `oauth` module: social login (implies `client`; its Redis state store also needs `redis`) |
//! | `openapi` | `Principal` as an aide operation input |
//!
//! Key rotation: publish the next key as verification-only, wait for JWKS caches to
//! refresh (`Cache-Control` max-age), switch signing to it and keep the old key
//! published as verification-only, then drop the old key once the last token it
//! signed has expired (the access-token lifetime).
#![deny(missing_docs, unreachable_pub, unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod macros;

pub mod code;
#[cfg(feature = "identity")]
pub mod identity;
#[cfg(feature = "client")]
pub mod jwks;
pub mod keys;
pub mod layer;
pub mod mint;
#[cfg(feature = "oauth")]
pub mod oauth;
#[cfg(feature = "client")]
mod outbound;
pub mod password;
pub mod random;
pub mod session;
pub mod token;
