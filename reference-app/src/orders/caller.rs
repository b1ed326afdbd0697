//! Who is calling: the orders service and the loyalty responder verify each
//! caller's access token themselves, with the BFF's public keys only.

use std::sync::Arc;

use bff_auth::jwks::JwksClient;
use bff_auth::token::{TokenError, TokenVerifier, ValidationPolicy};
use tokio::sync::OnceCell;
use uuid::Uuid;

/// Why a caller was refused.
#[derive(Debug, thiserror::Error)]
pub enum CallerError {
    /// No `authorization: Bearer` credential.
    #[error("missing bearer token")]
    Missing,
    /// The token does not verify (signature, expiry, issuer, audience...).
    #[error("invalid token: {0}")]
    Invalid(#[from] TokenError),
    /// The token's subject is not a user id.
    #[error("invalid token: the subject is not a user id")]
    Subject,
    /// The issuer's keys could not be fetched, so nothing can be verified.
    #[error("the issuer's JWKS is unreachable")]
    KeysUnavailable,
}

/// Verifies access tokens against a JWKS URL, fetched on first use (the BFF may
/// start after this service) and refreshed as [`JwksClient`] does.
#[derive(Debug, Clone)]
pub struct CallerVerifier {
    url: Arc<str>,
    policy: ValidationPolicy,
    keys: Arc<OnceCell<(JwksClient, TokenVerifier)>>,
}

impl CallerVerifier {
    /// Trusts the keys at `jwks_url` for tokens of `issuer` for `audience`.
    pub fn new(jwks_url: &str, issuer: &str, audience: &str) -> Self {
        Self {
            url: jwks_url.into(),
            policy: ValidationPolicy::new(issuer, audience),
            keys: Arc::new(OnceCell::new()),
        }
    }

    /// The user id of a valid `Authorization` value (`Bearer <jwt>`).
    pub async fn verify(&self, authorization: Option<&str>) -> Result<Uuid, CallerError> {
        let token = authorization
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or(CallerError::Missing)?;
        let (jwks, verifier) = self
            .keys
            .get_or_try_init(|| async {
                let jwks = JwksClient::connect(&self.url).await.map_err(|error| {
                    tracing::warn!(url = %self.url, error = %bff_core::problem::ErrorChain(&error), "cannot fetch the JWKS");
                    CallerError::KeysUnavailable
                })?;
                let verifier = TokenVerifier::new(jwks.verification_keys(), self.policy.clone());
                Ok::<_, CallerError>((jwks, verifier))
            })
            .await?;
        let claims = jwks.verify(verifier, token).await?;
        claims.sub.parse().map_err(|_| CallerError::Subject)
    }
}
