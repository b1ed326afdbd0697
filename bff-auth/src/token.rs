//! Access tokens: compact JWS (JWT) signed with the active key, verified against
//! an algorithm allow-list.
//!
//! Verification checks, in order: size and shape; the header's `alg` is one of
//! the allowed asymmetric algorithms (never `none`, never HMAC); `kid` is present
//! and names a published key whose own algorithm is the header's; the signature;
//! then `exp` and `nbf` (with a small leeway for clock skew), `iss` and `aud`.
//!
//! ```
//! use std::time::Duration;
//! use bff_auth::keys::{Algorithm, KeySet, SigningKey};
//! use bff_auth::token::{TokenIssuer, TokenVerifier, ValidationPolicy};
//!
//! let key = SigningKey::generate(Algorithm::EdDsa).unwrap().signing_key().unwrap();
//! let keys = KeySet::new(key, Vec::new()).unwrap();
//! let issuer = TokenIssuer::new(keys.clone(), "https://bff.example", "bff", Duration::from_secs(900));
//! let token = issuer.issue("user-1", "session-1", "customer").unwrap();
//!
//! let verifier = TokenVerifier::new(keys.verification_keys(), ValidationPolicy::new("https://bff.example", "bff"));
//! let claims = verifier.verify(&token.access_token).unwrap();
//! assert_eq!(claims.sub, "user-1");
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::keys::{Algorithm, KeyError, KeySet, VerificationKeys};

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience (one or several).
    pub aud: Audience,
    /// Subject: the user id.
    pub sub: String,
    /// Session id.
    pub sid: String,
    /// The user's role when the token was issued.
    pub role: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
}

/// The `aud` claim: a string or an array of strings (RFC 7519 section 4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `aud` includes `audience`.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(one) => one == audience,
            Self::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

/// An issued access token. Its `Debug` output hides the token.
#[derive(Clone)]
pub struct IssuedToken {
    /// The compact JWS.
    pub access_token: String,
    /// Its lifetime in seconds.
    pub expires_in: u64,
    /// Its claims.
    pub claims: Claims,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &"[REDACTED]")
            .field("expires_in", &self.expires_in)
            .field("claims", &self.claims)
            .finish()
    }
}

/// Signs access tokens with the active key of a [`KeySet`].
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    keys: KeySet,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl TokenIssuer {
    /// An issuer naming itself `issuer`, for `audience`, with tokens valid for `ttl`.
    pub fn new(
        keys: KeySet,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        Self {
            keys,
            issuer: issuer.into(),
            audience: audience.into(),
            ttl,
        }
    }

    /// Issues a token for user `sub` in session `sid` with `role`.
    pub fn issue(&self, sub: &str, sid: &str, role: &str) -> Result<IssuedToken, KeyError> {
        self.issue_for(&self.audience, self.ttl, sub, sid, role)
    }

    /// Issues a token for `audience` (another service), valid for `ttl`, for
    /// user `sub` in session `sid` with `role`. See [`crate::mint`].
    pub fn issue_for(
        &self,
        audience: &str,
        ttl: Duration,
        sub: &str,
        sid: &str,
        role: &str,
    ) -> Result<IssuedToken, KeyError> {
        let now = unix_now();
        let expires_in = ttl.as_secs();
        let ttl = i64::try_from(expires_in).unwrap_or(i64::MAX);
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: Audience::One(audience.to_owned()),
            sub: sub.to_owned(),
            sid: sid.to_owned(),
            role: role.to_owned(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(ttl),
            jti: uuid::Uuid::now_v7().to_string(),
        };
        let key = self.keys.signing_key();
        let header =
            serde_json::json!({ "alg": key.algorithm().name(), "typ": "JWT", "kid": key.kid() });
        // Serialising a JSON value and a struct of strings and integers cannot fail.
        let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default());
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let signature = URL_SAFE_NO_PAD.encode(key.sign(signing_input.as_bytes())?);
        Ok(IssuedToken {
            access_token: format!("{signing_input}.{signature}"),
            expires_in,
            claims,
        })
    }

    /// The key set.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }
}

/// Why a token was refused. Callers answer every variant the same way (401);
/// the variants exist for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a compact JWS, or a part is not base64url JSON.
    #[error("malformed token")]
    Malformed,
    /// The header's `alg` is not on the allow-list (`none`, HMAC, anything unknown).
    #[error("algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(String),
    /// The header has no `kid`.
    #[error("the token names no key")]
    MissingKeyId,
    /// No published key has the token's `kid`.
    #[error("unknown signing key")]
    UnknownKey,
    /// The header's `alg` is not the named key's algorithm.
    #[error("algorithm does not match the key")]
    AlgorithmMismatch,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The header has a `crit` member; no extension is understood.
    #[error("unsupported critical header")]
    UnsupportedCritical,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not the expected issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not include the expected audience.
    #[error("wrong audience")]
    WrongAudience,
}

/// What a verifier expects of a token.
#[derive(Debug, Clone)]
pub struct ValidationPolicy {
    /// Expected `iss`.
    pub issuer: String,
    /// Audience that `aud` must include.
    pub audience: String,
    /// Tolerated clock skew for `exp` and `nbf`.
    pub leeway: Duration,
    /// Algorithms accepted; a subset of [`Algorithm::ALL`].
    pub algorithms: Vec<Algorithm>,
}

impl ValidationPolicy {
    /// Expects `issuer` and `audience`, 30 s leeway, every supported algorithm.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Duration::from_secs(30),
            algorithms: Algorithm::ALL.to_vec(),
        }
    }
}

/// Longest token accepted before any decoding: no real token comes near it, and a
/// bound keeps garbage from costing memory or time.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Verifies access tokens against published keys.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    keys: VerificationKeys,
    policy: ValidationPolicy,
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

impl TokenVerifier {
    /// A verifier of tokens signed by `keys`, checked against `policy`.
    pub fn new(keys: VerificationKeys, policy: ValidationPolicy) -> Self {
        Self { keys, policy }
    }

    /// The policy.
    pub fn policy(&self) -> &ValidationPolicy {
        &self.policy
    }

    /// Verifies `token` now.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_at(token, unix_now())
    }

    /// Verifies `token` as of `now` (seconds since the epoch).
    pub fn verify_at(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        self.verify_with_kid(token, now).map(|(claims, _)| claims)
    }

    /// Whether the key `kid` is still published (a retired key's tokens stop
    /// verifying, cached or not).
    pub(crate) fn is_published(&self, kid: &str) -> bool {
        self.keys.contains(kid)
    }

    /// Verifies `token`, also returning the `kid` of the key that signed it.
    pub(crate) fn verify_with_kid(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Claims, String), TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Header = decode_json(header_b64)?;
        let alg = header.alg.ok_or(TokenError::Malformed)?;
        let algorithm = Algorithm::from_jose_name(&alg)
            .filter(|a| self.policy.algorithms.contains(a))
            .ok_or(TokenError::AlgorithmNotAllowed(alg))?;
        if header.crit.is_some() {
            return Err(TokenError::UnsupportedCritical);
        }
        let kid = header.kid.ok_or(TokenError::MissingKeyId)?;
        let key = self.keys.get(&kid).ok_or(TokenError::UnknownKey)?;
        if key.algorithm() != algorithm {
            return Err(TokenError::AlgorithmMismatch);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| TokenError::Malformed)?;
        let signing_input_len = header_b64.len() + 1 + payload_b64.len();
        if !key.verify(&token.as_bytes()[..signing_input_len], &signature) {
            return Err(TokenError::BadSignature);
        }
        let claims: Claims = decode_json(payload_b64)?;
        self.check_claims(&claims, now)?;
        Ok((claims, kid))
    }

    fn check_claims(&self, claims: &Claims, now: i64) -> Result<(), TokenError> {
        let leeway = i64::try_from(self.policy.leeway.as_secs()).unwrap_or(0);
        if claims.exp <= now.saturating_sub(leeway) {
            return Err(TokenError::Expired);
        }
        if claims.nbf > now.saturating_add(leeway) {
            return Err(TokenError::NotYetValid);
        }
        if claims.iss != self.policy.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if !claims.aud.contains(&self.policy.audience) {
            return Err(TokenError::WrongAudience);
        }
        Ok(())
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
