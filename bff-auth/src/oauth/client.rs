//! [`OAuthClient`]: the three steps of the flow.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::OnceCell;
use url::Url;

use super::config::check_endpoint;
use super::http::{Http, str_of};
use super::profile;
use super::state::StoredState;
use super::{
    CallbackParams, ExternalProfile, OAuthError, ProviderConfig, ProviderKind, StateStore, hex,
};
use crate::jwks::JwksClient;
use crate::random;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a pending authorization lives (and the default).
const MAX_STATE_TTL: Duration = Duration::from_secs(600);
/// How often an ID token naming an unknown `kid` may refetch the JWKS.
const DEFAULT_JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Longest `state` looked up: ours are 43 characters.
const MAX_STATE_LEN: usize = 128;

/// The social-login client of a service: its providers, its state store and
/// its public callback base. Cheap to clone.
#[derive(Clone)]
pub struct OAuthClient {
    inner: Arc<Inner>,
}

struct Inner {
    providers: HashMap<ProviderKind, Provider>,
    states: Arc<dyn StateStore>,
    callback_base: Url,
    http: Http,
    timeouts: (Duration, Duration),
    state_ttl: Duration,
    jwks_refetch_interval: Duration,
}

/// One enabled provider; an OpenID one's endpoints come from discovery, once.
struct Provider {
    config: ProviderConfig,
    endpoints: OnceCell<Arc<Endpoints>>,
}

/// Where a provider is reached.
pub(crate) struct Endpoints {
    pub(crate) authorize: Url,
    pub(crate) token: Url,
    pub(crate) userinfo: Option<Url>,
    pub(crate) openid: Option<OpenId>,
}

/// What verifies an OpenID provider's ID tokens.
pub(crate) struct OpenId {
    /// Accepted `iss` values.
    pub(crate) issuers: Vec<String>,
    pub(crate) jwks: JwksClient,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut providers: Vec<&ProviderConfig> =
            self.inner.providers.values().map(|p| &p.config).collect();
        providers.sort_by_key(|c| c.kind.as_str());
        f.debug_struct("OAuthClient")
            .field("providers", &providers)
            .field("states", &self.inner.states)
            .field("callback_base", &self.inner.callback_base.as_str())
            .field("timeouts", &self.inner.timeouts)
            .field("state_ttl", &self.inner.state_ttl)
            .finish()
    }
}

/// A pending authorization, taken from the store at the callback: the
/// provider, the caller's data, and (private) the verifier and nonce that
/// [`OAuthClient::finish`] needs. Its `Debug` output hides the secrets.
pub struct PendingAuth {
    /// The provider the authorization was started for.
    pub provider: ProviderKind,
    /// The data passed to [`OAuthClient::start`].
    pub data: serde_json::Value,
    pub(crate) state: String,
    pub(crate) verifier: String,
    pub(crate) nonce: Option<String>,
}

impl fmt::Debug for PendingAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingAuth")
            .field("provider", &self.provider)
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// A client for `providers` (each validated; one per kind), storing
    /// pending authorizations in `states`. `callback_base` is the service's
    /// public URL: the callback of provider `p` is
    /// `{callback_base}/api/v1/auth/oauth/{p}/callback`.
    pub fn new(
        providers: Vec<ProviderConfig>,
        states: Arc<dyn StateStore>,
        callback_base: Url,
    ) -> Result<Self, OAuthError> {
        check_endpoint(&callback_base)
            .map_err(|why| OAuthError::Config(format!("the callback base URL {why}")))?;
        if callback_base.query().is_some() || callback_base.cannot_be_a_base() {
            return Err(OAuthError::Config(
                "the callback base URL must have no query".to_owned(),
            ));
        }
        let mut map = HashMap::new();
        for config in providers {
            config.validate()?;
            let kind = config.kind;
            let provider = Provider::new(config)?;
            if map.insert(kind, provider).is_some() {
                return Err(OAuthError::Config(format!("{kind}: configured twice")));
            }
        }
        let timeouts = (DEFAULT_CONNECT_TIMEOUT, DEFAULT_TOTAL_TIMEOUT);
        Ok(Self {
            inner: Arc::new(Inner {
                providers: map,
                states,
                callback_base,
                http: Http::new(timeouts.0, timeouts.1)?,
                timeouts,
                state_ttl: MAX_STATE_TTL,
                jwks_refetch_interval: DEFAULT_JWKS_REFETCH_INTERVAL,
            }),
        })
    }

    /// Rebuilds the client with these timeouts for every outbound request:
    /// `connect` to open a connection, `total` for a whole request (default
    /// 5 s and 10 s). Call it while building: discovery is fetched again.
    pub fn with_http_timeouts(self, connect: Duration, total: Duration) -> Self {
        let http = match Http::new(connect, total) {
            Ok(http) => http,
            Err(error) => {
                tracing::error!(%error, "keeping the previous HTTP client");
                self.inner.http.clone()
            }
        };
        self.rebuild(|inner| {
            inner.http = http;
            inner.timeouts = (connect, total);
        })
    }

    /// How long a started authorization may wait for its callback (default
    /// and maximum 10 minutes; longer is capped).
    pub fn with_state_ttl(self, ttl: Duration) -> Self {
        self.rebuild(|inner| inner.state_ttl = ttl.min(MAX_STATE_TTL))
    }

    /// How often an ID token with an unknown `kid` may make the client refetch
    /// an issuer's JWKS (default 30 s). Call it while building.
    pub fn with_jwks_refetch_interval(self, interval: Duration) -> Self {
        self.rebuild(|inner| inner.jwks_refetch_interval = interval)
    }

    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> Self {
        let inner = &self.inner;
        let mut next = Inner {
            // Fresh discovery caches: their JWKS clients hold the HTTP client.
            providers: inner
                .providers
                .iter()
                .map(|(kind, p)| {
                    let endpoints = OnceCell::new();
                    if !kind.is_openid()
                        && let Some(e) = p.endpoints.get()
                    {
                        let _ = endpoints.set(Arc::clone(e));
                    }
                    (
                        *kind,
                        Provider {
                            config: p.config.clone(),
                            endpoints,
                        },
                    )
                })
                .collect(),
            states: Arc::clone(&inner.states),
            callback_base: inner.callback_base.clone(),
            http: inner.http.clone(),
            timeouts: inner.timeouts,
            state_ttl: inner.state_ttl,
            jwks_refetch_interval: inner.jwks_refetch_interval,
        };
        change(&mut next);
        Self {
            inner: Arc::new(next),
        }
    }

    /// Whether `kind` is configured.
    pub fn is_enabled(&self, kind: ProviderKind) -> bool {
        self.inner.providers.contains_key(&kind)
    }

    /// The redirect URI registered with provider `kind`:
    /// `{callback_base}/api/v1/auth/oauth/{kind}/callback`.
    pub fn callback_url(&self, kind: ProviderKind) -> Url {
        let mut url = self.inner.callback_base.clone();
        let path = format!(
            "{}/api/v1/auth/oauth/{}/callback",
            url.path().trim_end_matches('/'),
            kind.as_str()
        );
        url.set_path(&path);
        url
    }

    fn provider(&self, kind: ProviderKind) -> Result<&Provider, OAuthError> {
        self.inner
            .providers
            .get(&kind)
            .ok_or(OAuthError::UnknownProvider)
    }

    async fn endpoints(&self, provider: &Provider) -> Result<Arc<Endpoints>, OAuthError> {
        provider
            .endpoints
            .get_or_try_init(|| async {
                profile::discover(
                    &self.inner.http,
                    &provider.config,
                    self.inner.jwks_refetch_interval,
                )
                .await
                .map(Arc::new)
            })
            .await
            .cloned()
    }

    /// Starts an authorization with provider `kind`: makes the `state`, the
    /// PKCE verifier and (OpenID) the nonce, stores them with `binding_hash`
    /// (the SHA-256 of a random value the caller binds to the browser, such as
    /// a `__Host-` cookie) and `data` (opaque to this client: where to send
    /// the user afterwards, a user to link to) for the state TTL, and returns
    /// the authorization URL to redirect the browser to. An OpenID provider's
    /// discovery document is fetched on first use.
    pub async fn start(
        &self,
        kind: ProviderKind,
        binding_hash: [u8; 32],
        data: serde_json::Value,
    ) -> Result<Url, OAuthError> {
        let provider = self.provider(kind)?;
        let endpoints = self.endpoints(provider).await?;
        let random = || {
            random::base64url(32)
                .map_err(|_| OAuthError::Internal("the random generator failed".to_owned()))
        };
        let state = random()?;
        let verifier = random()?;
        let nonce = if kind.is_openid() {
            Some(random()?)
        } else {
            None
        };
        let stored = StoredState {
            provider: kind.as_str().to_owned(),
            binding: hex(&binding_hash),
            verifier: verifier.clone(),
            nonce: nonce.clone(),
            data,
        };
        let value = serde_json::to_vec(&stored)
            .map_err(|_| OAuthError::Internal("cannot serialise the state".to_owned()))?;
        self.inner
            .states
            .put(&state_key(&state), value, self.inner.state_ttl)
            .await?;

        let mut url = endpoints.authorize.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &provider.config.client_id)
                .append_pair("redirect_uri", self.callback_url(kind).as_str())
                .append_pair("scope", &provider.config.scope_list().join(" "))
                .append_pair("state", &state)
                .append_pair("code_challenge", &super::pkce_challenge(&verifier))
                .append_pair("code_challenge_method", "S256");
            if let Some(nonce) = &nonce {
                query.append_pair("nonce", nonce);
            }
        }
        Ok(url)
    }

    /// Step one of the callback: takes (consumes) the `state` of `params`.
    /// [`OAuthError::InvalidState`] when it is missing, unknown, expired or
    /// already used, was issued for another provider, or `binding_hash` is
    /// not the one given to [`start`](Self::start) (compared in constant
    /// time). Once this returns, the `state` cannot be used again, whatever
    /// happens next.
    pub async fn take_state(
        &self,
        kind: ProviderKind,
        params: &CallbackParams,
        binding_hash: [u8; 32],
    ) -> Result<PendingAuth, OAuthError> {
        self.provider(kind)?;
        let state = params
            .state
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= MAX_STATE_LEN)
            .ok_or(OAuthError::InvalidState)?;
        let value = self
            .inner
            .states
            .take(&state_key(state))
            .await?
            .ok_or(OAuthError::InvalidState)?;
        let stored: StoredState = serde_json::from_slice(&value)
            .map_err(|_| OAuthError::Internal("a stored state is corrupt".to_owned()))?;
        let same_browser = stored
            .binding
            .as_bytes()
            .ct_eq(hex(&binding_hash).as_bytes());
        if stored.provider != kind.as_str() || !bool::from(same_browser) {
            return Err(OAuthError::InvalidState);
        }
        Ok(PendingAuth {
            provider: kind,
            data: stored.data,
            state: state.to_owned(),
            verifier: stored.verifier,
            nonce: stored.nonce,
        })
    }

    /// Step two: the provider's `error` is [`OAuthError::Denied`]; otherwise
    /// exchanges the code (with the PKCE verifier; VK ID also with
    /// `device_id` and `state`), verifies an OpenID provider's ID token, and
    /// reads the profile.
    pub async fn finish(
        &self,
        pending: &PendingAuth,
        params: &CallbackParams,
    ) -> Result<ExternalProfile, OAuthError> {
        let provider = self.provider(pending.provider)?;
        let same_state = params
            .state
            .as_deref()
            .is_some_and(|s| bool::from(s.as_bytes().ct_eq(pending.state.as_bytes())));
        if !same_state {
            return Err(OAuthError::InvalidState);
        }
        if let Some(error) = &params.error {
            let code = if super::http::is_error_code(error) {
                error.clone()
            } else {
                "invalid_error".to_owned()
            };
            return Err(OAuthError::Denied(code));
        }
        let code = params
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 4096)
            .ok_or_else(|| {
                OAuthError::Provider(format!("the {} callback has no code", pending.provider))
            })?;
        let endpoints = self.endpoints(provider).await?;
        let exchange = profile::Exchange {
            http: &self.inner.http,
            config: &provider.config,
            endpoints: &endpoints,
            redirect_uri: self.callback_url(pending.provider),
            pending,
            code,
            device_id: params.device_id.as_deref(),
        };
        exchange.run().await
    }
}

impl Provider {
    fn new(config: ProviderConfig) -> Result<Self, OAuthError> {
        let endpoints = OnceCell::new();
        if let Some([authorize, token, userinfo]) = config.kind.default_endpoints() {
            let parse = |url: &str| {
                Url::parse(url).map_err(|_| OAuthError::Internal("a default URL".to_owned()))
            };
            let resolved = Endpoints {
                authorize: config
                    .authorize_url
                    .clone()
                    .map_or_else(|| parse(authorize), Ok)?,
                token: config.token_url.clone().map_or_else(|| parse(token), Ok)?,
                userinfo: Some(
                    config
                        .userinfo_url
                        .clone()
                        .map_or_else(|| parse(userinfo), Ok)?,
                ),
                openid: None,
            };
            let _ = endpoints.set(Arc::new(resolved));
        }
        Ok(Self { config, endpoints })
    }
}

/// The store key of `state`: its SHA-256, hex, so the store never holds a
/// usable `state`.
fn state_key(state: &str) -> String {
    hex(&Sha256::digest(state.as_bytes()))
}

/// A discovery document's endpoint, checked like a configured one.
pub(crate) fn discovered(
    doc: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    provider: ProviderKind,
) -> Result<Option<Url>, OAuthError> {
    let Some(value) = str_of(doc, name) else {
        return Ok(None);
    };
    let url = Url::parse(value)
        .map_err(|_| OAuthError::Provider(format!("{provider} discovery: {name} is not a URL")))?;
    check_endpoint(&url)
        .map_err(|why| OAuthError::Provider(format!("{provider} discovery: {name} {why}")))?;
    Ok(Some(url))
}
