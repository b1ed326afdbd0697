//! Social login: the OAuth 2.0 authorization-code flow with PKCE, and OpenID
//! Connect, for Google, Facebook, VK ID, Yandex ID and any OpenID issuer.
//!
//! The service is a confidential client: provider tokens never leave it. An
//! [`OAuthClient`] holds one [`ProviderConfig`] per enabled provider and a
//! [`StateStore`]; the flow is three calls:
//!
//! 1. [`OAuthClient::start`] makes a one-time `state` (32 bytes from the
//!    CSPRNG, 43 base64url characters), a PKCE verifier (S256 for every
//!    provider) and, for OpenID providers, a `nonce`, stores them under a hash of
//!    the `state` with the caller's browser-binding hash and opaque data, and
//!    returns the provider's authorization URL to redirect the browser to;
//! 2. [`OAuthClient::take_state`], at the callback, consumes the `state` (one
//!    use, even under concurrent callbacks) and checks that it was issued for
//!    this provider and this browser;
//! 3. [`OAuthClient::finish`] exchanges the code (with the verifier; VK ID also
//!    with its `device_id` and `state`), verifies the ID token of an OpenID
//!    provider (signature from the issuer's JWKS with an allow-list of
//!    asymmetric algorithms, `iss`, `aud`, `azp`, `exp`, `nonce`) and reads the
//!    profile, normalised to one [`ExternalProfile`].
//!
//! What each provider needs:
//! - **Google** and **OIDC** (Keycloak, Auth0, Zitadel, ...): endpoints and
//!   `jwks_uri` from `{issuer}/.well-known/openid-configuration`, fetched at
//!   first use and cached; the token request authenticates with
//!   `client_secret_post`; `email_verified` is taken only from the verified ID
//!   token or the userinfo answer that carried the email.
//! - **Facebook**: Graph API with the version pinned in the endpoint URLs
//!   (v24.0 by default; override the URLs to move it), every profile request
//!   signed with `appsecret_proof`.
//! - **VK ID** (`id.vk.ru`, OAuth 2.1): no client secret; the callback's
//!   `device_id` goes into the exchange, whose answer must echo the `state`.
//! - **Yandex ID**: the profile is read with `Authorization: OAuth <token>`.
//!
//! Only OpenID providers can assert a verified email: a Facebook, VK or Yandex
//! profile always has `email_verified: false`. Match accounts by
//! `(provider, subject)`, never by email alone.
//!
//! Outbound requests follow no redirects, have connect and total timeouts
//! ([`OAuthClient::with_http_timeouts`]) and read at most 1 MiB of any answer.
//! Every failure is an [`OAuthError`] whose message names what failed and never
//! holds a secret, token or code.
//!
//! ```no_run
//! # async fn run() -> Result<(), bff_auth::oauth::OAuthError> {
//! use std::sync::Arc;
//! use bff_auth::oauth::{
//!     CallbackParams, MemoryStateStore, OAuthClient, ProviderConfig, ProviderKind,
//! };
//!
//! let mut google = ProviderConfig::new(ProviderKind::Google, "client-id.apps.googleusercontent.com");
//! google.client_secret = Some("client-secret".into());
//! let client = OAuthClient::new(
//!     vec![google],
//!     Arc::new(MemoryStateStore::new()),
//!     "https://bff.example.com".parse().expect("a URL"),
//! )?;
//!
//! // GET /api/v1/auth/oauth/google/start: `binding` is the SHA-256 of a random
//! // value the service also sets in a `__Host-` cookie.
//! let binding = [7u8; 32];
//! let authorize_url = client
//!     .start(ProviderKind::Google, binding, serde_json::json!({"redirect_uri": "https://app.example.com/"}))
//!     .await?;
//! // ... 302 to `authorize_url`; the provider redirects back to
//! // `client.callback_url(ProviderKind::Google)` with these parameters:
//! let params: CallbackParams = serde_urlencoded_query_of_the_callback();
//! let pending = client.take_state(ProviderKind::Google, &params, binding).await?;
//! let profile = client.finish(&pending, &params).await?;
//! println!("{} {} {:?}", profile.provider.as_str(), profile.subject, profile.email);
//! # Ok(())
//! # }
//! # fn serde_urlencoded_query_of_the_callback() -> bff_auth::oauth::CallbackParams { Default::default() }
//! ```
//!
//! `cargo run --example oauth_flow` runs the whole flow against a fake provider
//! served in-process.

mod client;
mod config;
mod http;
mod id_token;
mod profile;
#[cfg(feature = "redis")]
mod redis_store;
mod state;

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

pub use self::client::{OAuthClient, PendingAuth};
pub use self::config::{ProviderConfig, ProviderKind};
#[cfg(feature = "redis")]
pub use self::redis_store::RedisStateStore;
pub use self::state::{MemoryStateStore, StateStore};

/// Why a step of the flow failed. Messages name what failed and never hold a
/// secret, token, code or `state`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// The settings are invalid: the message names the provider and the setting.
    #[error("OAuth configuration: {0}")]
    Config(String),
    /// The provider is not enabled (or not known).
    #[error("unknown or disabled OAuth provider")]
    UnknownProvider,
    /// The `state` is missing, unknown, expired or used, was issued for another
    /// provider, or belongs to another browser.
    #[error("invalid OAuth state")]
    InvalidState,
    /// The provider sent the user back with this `error` code (for example
    /// `access_denied`); anything but `[A-Za-z0-9._-]{1,64}` becomes
    /// `invalid_error`.
    #[error("the provider reported {0}")]
    Denied(String),
    /// The provider's answer was unusable: an error status, malformed or
    /// oversized JSON, a missing field, or an ID token that failed a check.
    #[error("OAuth provider failure: {0}")]
    Provider(String),
    /// The provider could not be reached in time, or the state store is down.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A local failure (the random generator, a corrupt stored state).
    #[error("internal OAuth error: {0}")]
    Internal(String),
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 section 4.2):
/// base64url without padding of the SHA-256 of its ASCII bytes.
///
/// ```
/// // RFC 7636, appendix B.
/// assert_eq!(
///     bff_auth::oauth::pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
///     "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
/// );
/// ```
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// What the provider's redirect to the callback carries, as query parameters.
/// Its `Debug` output hides `code` and `state`.
#[derive(Clone, Default, serde::Deserialize)]
pub struct CallbackParams {
    /// The authorization code.
    pub code: Option<String>,
    /// The `state` [`OAuthClient::start`] made.
    pub state: Option<String>,
    /// An error code, when the user refused or the provider failed.
    pub error: Option<String>,
    /// The provider's human-readable error text.
    pub error_description: Option<String>,
    /// VK ID's device id, needed for the code exchange.
    pub device_id: Option<String>,
}

impl fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "[REDACTED]");
        f.debug_struct("CallbackParams")
            .field("code", &redacted(&self.code))
            .field("state", &redacted(&self.state))
            .field("error", &self.error)
            .field("error_description", &self.error_description)
            .field("device_id", &redacted(&self.device_id))
            .finish()
    }
}

/// A user's profile at a provider, normalised.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExternalProfile {
    /// The provider.
    pub provider: ProviderKind,
    /// The user's stable id at the provider: OpenID `sub`, Facebook's
    /// app-scoped `id`, VK's `user_id`, Yandex's `id`.
    pub subject: String,
    /// The email, trimmed and lowercased, when the provider gave one.
    pub email: Option<String>,
    /// True only when an OpenID provider asserted `email_verified: true` for
    /// this email; always false for Facebook, VK ID and Yandex ID.
    pub email_verified: bool,
    /// The phone number as the provider gave it (not normalised).
    pub phone: Option<String>,
    /// The display name.
    pub name: Option<String>,
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn callback_params_hide_their_secrets() {
        let params = CallbackParams {
            code: Some("the-code".into()),
            state: Some("the-state".into()),
            device_id: Some("the-device".into()),
            ..Default::default()
        };
        let debug = format!("{params:?}");
        assert!(!debug.contains("the-code") && !debug.contains("the-state"));
        assert!(!debug.contains("the-device"));
    }
}
