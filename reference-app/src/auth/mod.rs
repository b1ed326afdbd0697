//! Authentication in the reference app, built on `bff-auth`.
//!
//! - [`routes`] and [`service`]: login, refresh, logout, sessions, password
//!   change and the JWKS.
//! - [`codes`]: the endpoints that work with one-time codes (sign-up,
//!   password reset), with their own routes and service.
//! - [`setup`]: keys, the code secret, and the issuer, verifier, session store
//!   and hasher built from [`config`].

pub mod codes;
pub mod config;
mod error;
pub mod routes;
pub mod service;
pub mod setup;

use schemars::JsonSchema;
use serde::Serialize;

pub use self::error::AuthError;
pub use self::service::AuthService;
pub use self::setup::{
    Auth, AuthSetupError, BackendAudiences, DEV_CODE_SECRET_FILE, DEV_KEY_FILE, load_code_secret,
    write_private,
};
use crate::users::UserView;

/// A token response.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TokenResponse {
    /// The access token (a JWT), for `Authorization: Bearer`.
    access_token: String,
    /// The refresh token: opaque, single use.
    refresh_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    /// The user.
    user: UserView,
}
