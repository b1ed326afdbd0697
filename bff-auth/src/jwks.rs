//! [`JwksClient`]: verifies another issuer's tokens from its JWKS URL alone.
//!
//! The client fetches the JWKS, keeps its keys in a [`VerificationKeys`] handle
//! that a [`TokenVerifier`] reads, and refetches when the document's
//! `Cache-Control: max-age` has passed, or when a token names a `kid` it does not
//! know (the issuer may have rotated). Refetches are rate-limited, so a stream of
//! garbage tokens with random `kid`s costs the issuer at most one request per
//! interval. A failed refetch keeps the keys it had.
//!
//! Keys keep the `kid` the issuer gave them (only a key without one is named
//! by its RFC 7638 thumbprint), so the JWKS of any issuer works, Google's
//! included; entries for other uses (`use: enc`) or of unsupported types are
//! skipped. The client follows no redirects and reads at most 1 MiB.
//!
//! A service that may start before the issuer serves its JWKS builds the client
//! with [`JwksClient::lazy`]: nothing is fetched until the first token needs
//! the keys, and until one fetch has succeeded [`JwksClient::prepare`] fails,
//! so [`JwtLayer`](crate::layer::JwtLayer) answers 503 (never lets a request
//! through) and the next request tries again.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use bff_auth::jwks::JwksClient;
//! use bff_auth::token::{TokenVerifier, ValidationPolicy};
//!
//! let jwks = JwksClient::connect("http://127.0.0.1:8080/.well-known/jwks.json").await?;
//! let verifier = TokenVerifier::new(jwks.verification_keys(), ValidationPolicy::new("bff", "bff"));
//! let claims = jwks.verify(&verifier, "eyJ...").await?;
//! # let _ = claims;
//! # Ok(())
//! # }
//! ```

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::sync::Mutex;

use crate::keys::{KeyError, PublicKey, VerificationKeys};
use crate::token::{Claims, TokenError, TokenVerifier};

/// Why the JWKS could not be fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The request failed or the issuer answered an error status.
    #[error("cannot fetch the JWKS")]
    Fetch(#[from] reqwest::Error),
    /// The document is not a JWKS.
    #[error("the JWKS document is malformed")]
    Malformed,
    /// It holds no key this crate can use.
    #[error("the JWKS has no usable signing key")]
    NoUsableKey,
    /// A key in it is invalid.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// No keys yet: the first fetch failed while this request waited for it.
    #[error("the JWKS has not been fetched yet")]
    NotFetched,
}

#[derive(Debug)]
struct FetchState {
    fetched_at: Instant,
    max_age: Duration,
    /// When a fetch last started; `None` before the first.
    last_attempt: Option<Instant>,
}

/// A cached, self-refreshing JWKS of one issuer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JwksClient {
    url: Arc<str>,
    /// Built at the first fetch by a lazy client, so building one cannot fail.
    http: Arc<OnceLock<reqwest::Client>>,
    keys: VerificationKeys,
    state: Arc<Mutex<FetchState>>,
    min_refetch_interval: Duration,
}

/// Used when the issuer sends no `max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// Longest time keys are trusted without a refetch, whatever `max-age` says.
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// How long one fetch may take, with the client [`JwksClient::connect`] builds.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an unknown `kid` may trigger a refetch, by default.
const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

impl JwksClient {
    /// Fetches the JWKS at `url` once and returns a client holding its keys.
    pub async fn connect(url: &str) -> Result<Self, JwksError> {
        Self::with_client(url, http_client()?, MIN_REFETCH_INTERVAL).await
    }

    /// Like [`connect`](Self::connect) with a given HTTP client, refetching for an
    /// unknown `kid` at most once per `min_refetch_interval`.
    pub async fn with_client(
        url: &str,
        http: reqwest::Client,
        min_refetch_interval: Duration,
    ) -> Result<Self, JwksError> {
        let client = Self::lazy_client(url, Some(http), min_refetch_interval);
        let mut state = client.state.lock().await;
        client.fetch(&mut state).await?;
        drop(state);
        Ok(client)
    }

    /// A client that fetches nothing yet: the first token to verify fetches the
    /// JWKS at `url`, for a service that may start before its issuer. Until a
    /// fetch succeeds, [`prepare`](Self::prepare) fails and every request tries
    /// again.
    pub fn lazy(url: &str) -> Self {
        Self::lazy_client(url, None, MIN_REFETCH_INTERVAL)
    }

    /// Like [`lazy`](Self::lazy) with a given HTTP client, refetching for an
    /// unknown `kid` at most once per `min_refetch_interval`.
    pub fn lazy_with_client(
        url: &str,
        http: reqwest::Client,
        min_refetch_interval: Duration,
    ) -> Self {
        Self::lazy_client(url, Some(http), min_refetch_interval)
    }

    fn lazy_client(
        url: &str,
        http: Option<reqwest::Client>,
        min_refetch_interval: Duration,
    ) -> Self {
        let cell = OnceLock::new();
        if let Some(http) = http {
            let _ = cell.set(http);
        }
        Self {
            url: url.into(),
            http: Arc::new(cell),
            keys: VerificationKeys::default(),
            state: Arc::new(Mutex::new(FetchState {
                fetched_at: Instant::now(),
                max_age: Duration::ZERO,
                last_attempt: None,
            })),
            min_refetch_interval,
        }
    }

    /// The keys, for a [`TokenVerifier`]; they change as the client refetches.
    pub fn verification_keys(&self) -> VerificationKeys {
        self.keys.clone()
    }

    /// Verifies `token` with `verifier` (which must read
    /// [`verification_keys`](Self::verification_keys)), refetching first when the
    /// keys are stale or the token names an unknown `kid`. A lazy client whose
    /// keys cannot be fetched has none, so every token is then an
    /// [`UnknownKey`](TokenError::UnknownKey); [`prepare`](Self::prepare) tells
    /// that case apart.
    pub async fn verify(
        &self,
        verifier: &TokenVerifier,
        token: &str,
    ) -> Result<Claims, TokenError> {
        if let Err(error) = self.prepare(token).await {
            tracing::warn!(url = %self.url, %error, "no JWKS keys to verify with");
        }
        verifier.verify(token)
    }

    /// Makes sure the keys are fresh enough to verify `token`: refetches when
    /// `max-age` has passed, or (rate-limited) when the token's `kid` is unknown.
    /// Refetch failures are logged; the old keys stay. Fails only while there
    /// are no keys at all (a lazy client before its first successful fetch).
    pub async fn prepare(&self, token: &str) -> Result<(), JwksError> {
        if self.keys.is_empty() {
            return self.first_fetch().await;
        }
        let unknown_kid = kid_of(token).is_some_and(|kid| !self.keys.contains(&kid));
        // A fetch already under way serves everyone: callers do not queue behind it
        // (they verify with the keys at hand), so garbage tokens cannot pile up here.
        let Ok(mut state) = self.state.try_lock() else {
            return Ok(());
        };
        let stale = state.fetched_at.elapsed() >= state.max_age;
        let may_retry = state
            .last_attempt
            .is_none_or(|at| at.elapsed() >= self.min_refetch_interval);
        if (stale || unknown_kid)
            && may_retry
            && let Err(error) = self.fetch(&mut state).await
        {
            tracing::warn!(url = %self.url, %error, "JWKS refetch failed; keeping the keys we have");
        }
        Ok(())
    }

    /// The first keys: callers wait for a fetch under way instead of verifying
    /// against no keys at all, and one that failed while they waited is their
    /// answer too, so waiters do not retry one after another.
    async fn first_fetch(&self) -> Result<(), JwksError> {
        let arrived = Instant::now();
        let mut state = self.state.lock().await;
        if !self.keys.is_empty() {
            return Ok(());
        }
        if state.last_attempt.is_some_and(|at| at >= arrived) {
            return Err(JwksError::NotFetched);
        }
        self.fetch(&mut state).await
    }

    async fn fetch(&self, state: &mut FetchState) -> Result<(), JwksError> {
        state.last_attempt = Some(Instant::now());
        let http = match self.http.get() {
            Some(http) => http,
            None => {
                let built = http_client()?;
                self.http.get_or_init(|| built)
            }
        };
        let response = crate::outbound::send(http, "JWKS", http.get(&*self.url))
            .await?
            .error_for_status()?;
        let max_age = response
            .headers()
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .unwrap_or(DEFAULT_MAX_AGE)
            .min(MAX_MAX_AGE);
        let document: serde_json::Value = serde_json::from_slice(&read_capped(response).await?)
            .map_err(|_| JwksError::Malformed)?;
        let entries = document
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or(JwksError::Malformed)?;
        let mut keys = Vec::new();
        for entry in entries {
            // Keys for other uses or algorithms may share a JWKS; they are skipped.
            if entry.get("use").is_some_and(|u| u != "sig") {
                continue;
            }
            // Kids as the issuer names them: other issuers' kids are rarely
            // RFC 7638 thumbprints (Google's are not).
            let parsed = josekit::jwk::Jwk::from_bytes(entry.to_string())
                .ok()
                .and_then(|jwk| PublicKey::from_issuer_jwk(&jwk).ok());
            match parsed {
                Some(key) if keys.iter().any(|k: &PublicKey| k.kid() == key.kid()) => {
                    tracing::debug!(url = %self.url, "skipping a JWKS entry with a duplicate kid");
                }
                Some(key) => keys.push(key),
                None => tracing::debug!(url = %self.url, "skipping an unusable JWKS entry"),
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        self.keys.replace(keys)?;
        state.fetched_at = Instant::now();
        state.max_age = max_age;
        Ok(())
    }
}

/// The largest JWKS accepted: real ones are a few kilobytes, and a bound keeps a
/// misbehaving issuer from costing memory.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// The body of `response`, read in chunks up to [`MAX_JWKS_BYTES`].
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, JwksError> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
    {
        return Err(JwksError::Malformed);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(JwksError::Malformed);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The `kid` of a compact JWS header, if it has one.
fn kid_of(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    if header.len() > 1024 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("kid")?.as_str().map(str::to_owned)
}

/// `max-age` of a `Cache-Control` value; `no-store`/`no-cache` mean zero.
fn max_age(value: &str) -> Option<Duration> {
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache")
        {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = directive
            .strip_prefix("max-age=")
            .or_else(|| directive.strip_prefix("s-maxage="))
        {
            age = seconds
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs)
                .or(age);
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }
}
