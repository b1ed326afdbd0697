//! Who is calling: the orders service and the loyalty responder authenticate
//! each caller's access token with `bff-auth`'s `JwtLayer`, against the BFF's
//! public keys only.

use bff_auth::jwks::JwksClient;
use bff_auth::layer::{AuthError, JwtLayer, Principal, bearer_token};
use bff_auth::token::{TokenVerifier, ValidationPolicy};
use tonic::Status;
use uuid::Uuid;

/// Why a caller was refused.
#[derive(Debug, thiserror::Error)]
pub enum CallerError {
    /// No `authorization: Bearer` credential.
    #[error("missing bearer token")]
    Missing,
    /// The token does not verify (signature, expiry, issuer, audience...).
    #[error("invalid token: {0}")]
    Invalid(#[source] AuthError),
    /// The token's subject is not a user id.
    #[error("invalid token: the subject is not a user id")]
    Subject,
    /// The issuer's keys could not be fetched, so nothing can be verified.
    #[error("the issuer's JWKS is unreachable")]
    KeysUnavailable,
}

impl From<AuthError> for CallerError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Missing => Self::Missing,
            AuthError::KeysUnavailable(_) => Self::KeysUnavailable,
            other => Self::Invalid(other),
        }
    }
}

/// Authenticates callers against a JWKS URL, fetched on first use (the BFF may
/// start after this service) and refreshed as `JwksClient` does.
#[derive(Debug, Clone)]
pub struct CallerVerifier {
    layer: JwtLayer,
    jwks: JwksClient,
    issuer: std::sync::Arc<str>,
}

impl CallerVerifier {
    /// Trusts the keys at `jwks_url` for tokens of `issuer` for `audience`
    /// (the backend's own: the BFF mints one per backend, and a token for
    /// another audience, the user's own among them, is refused).
    pub fn new(jwks_url: &str, issuer: &str, audience: &str) -> Self {
        Self::with(JwksClient::lazy(jwks_url), issuer, audience)
    }

    /// The same, refusing what `revocations` lists (sessions logged out,
    /// users blocked) though the token itself is still valid.
    pub fn with_revocations(mut self, revocations: super::revocations::Revocations) -> Self {
        self.layer = self.layer.with_session_check(revocations);
        self
    }

    /// The same keys and issuer, for tokens of `audience`.
    pub fn for_audience(&self, audience: &str) -> Self {
        Self::with(self.jwks.clone(), &self.issuer, audience)
    }

    fn with(jwks: JwksClient, issuer: &str, audience: &str) -> Self {
        let verifier = TokenVerifier::new(
            jwks.verification_keys(),
            ValidationPolicy::new(issuer, audience),
        );
        Self {
            layer: JwtLayer::new(verifier).with_jwks(jwks.clone()),
            jwks,
            issuer: issuer.into(),
        }
    }

    /// The gRPC server's authentication layer. Optional: the health and
    /// reflection services answer without a token, and each orders method
    /// requires the caller itself with [`caller`]; a token that is sent must
    /// be valid, or the call is `UNAUTHENTICATED` (`UNAVAILABLE` while the
    /// keys cannot be fetched) before any service sees it.
    pub fn layer(&self) -> JwtLayer {
        self.layer.clone().optional()
    }

    /// The user id of a valid `Authorization` value (`Bearer <jwt>`), for
    /// callers that do not come through the layer (the loyalty responder).
    pub async fn verify(&self, authorization: Option<&str>) -> Result<Uuid, CallerError> {
        let token = authorization
            .and_then(bearer_token)
            .ok_or(CallerError::Missing)?;
        let principal = self.layer.authenticate(token).await?;
        user_id(&principal)
    }
}

/// The caller of a gRPC method, as [`CallerVerifier::layer`] authenticated
/// it: `UNAUTHENTICATED` when the call carried no token.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Uuid, Status> {
    let principal = request
        .extensions()
        .get::<Principal>()
        .ok_or_else(|| Status::unauthenticated(CallerError::Missing.to_string()))?;
    user_id(principal).map_err(|error| Status::unauthenticated(error.to_string()))
}

fn user_id(principal: &Principal) -> Result<Uuid, CallerError> {
    principal.user_id.parse().map_err(|_| CallerError::Subject)
}
