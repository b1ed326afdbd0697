//! [`RateLimitLayer`] and its [`Policy`]s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bff_core::Problem;
use http::{Request, StatusCode};
use tower::Layer;

use super::{Backend, KeyExtractor, Quota, RateLimit, RequestInfo};

/// What a [`Policy`] does with a request its key extractor finds no key for.
///
/// A missing key is usually a mistake: [`ClientIp`](super::ClientIp) finds
/// no address when the server was not started with connect info (plain
/// `axum::serve(listener, app)` instead of
/// `axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())`
/// or `bff_core::server::serve`), and a limit that silently lets such
/// requests through protects nothing. So the default is to refuse them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MissingKey {
    /// Refuse the request: a 500 problem+json (`rate_limit_unavailable`),
    /// and an ERROR log line, once per policy, naming the policy. The
    /// default: a limit that cannot count a request fails closed.
    #[default]
    Refuse,
    /// Let the request through uncounted, without the policy's headers: for
    /// a policy meant for some requests only, such as a per-user limit on
    /// routes that anonymous callers may also use.
    Skip,
}

/// One limit: a name (for headers, metrics and key namespaces), a quota,
/// what it counts, and what to do when a request has no key.
#[derive(Clone)]
pub struct Policy {
    pub(super) name: Arc<str>,
    pub(super) quota: Quota,
    key: Arc<dyn KeyExtractor>,
    missing: MissingKey,
    /// Whether the missing key was logged (once per policy, not per request).
    logged: Arc<AtomicBool>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name)
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// A policy named `name` (letters, digits, `_` and `-`: it appears in
    /// headers) limiting each key `key` extracts to `quota`. A request
    /// without a key is refused; see [`on_missing_key`](Self::on_missing_key).
    pub fn new(name: &str, quota: Quota, key: impl KeyExtractor) -> Self {
        Self {
            name: Arc::from(name),
            quota,
            key: Arc::new(key),
            missing: MissingKey::default(),
            logged: Arc::new(AtomicBool::new(false)),
        }
    }

    /// What to do with a request the key extractor finds no key for:
    /// [`MissingKey::Refuse`] (the default) or [`MissingKey::Skip`].
    ///
    /// ```
    /// use bff_cache::ratelimit::{MissingKey, Policy, Quota, from_fn};
    ///
    /// // Signed-in callers are limited; anonymous ones pass this policy.
    /// let per_user = Policy::new(
    ///     "per_user",
    ///     Quota::per_minute(600),
    ///     from_fn(|r| r.headers.get("x-user").and_then(|v| v.to_str().ok()).map(str::to_owned)),
    /// )
    /// .on_missing_key(MissingKey::Skip);
    /// # let _ = per_user;
    /// ```
    #[must_use]
    pub fn on_missing_key(mut self, missing: MissingKey) -> Self {
        self.missing = missing;
        self
    }

    /// The refusal of a request without a key, logged the first time.
    fn missing_key(&self) -> Problem {
        if !self.logged.swap(true, Ordering::Relaxed) {
            tracing::error!(
                policy = %self.name,
                "rate limit policy found no key for a request and refuses it \
                 (logged once): for `ClientIp`, serve with connect info \
                 (`into_make_service_with_connect_info::<SocketAddr>()` or \
                 `bff_core::server::serve`); for a policy meant for some \
                 requests only, set `on_missing_key(MissingKey::Skip)`"
            );
        }
        metrics::counter!("bff_ratelimit_decisions_total", "policy" => self.name.to_string(), "outcome" => "missing_key").increment(1);
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "rate_limit_unavailable",
            "Rate limit unavailable",
        )
        .with_detail("The server cannot apply its rate limit to this request.")
    }
}

/// Limits requests by one or more [`Policy`]s, answering 429 problem+json with
/// `Retry-After` when one is exhausted, and adding the IETF draft's
/// `RateLimit-Policy` and `RateLimit` headers to every response it limits;
/// see the [module docs](super).
///
/// Policies are checked in order and each counts the request; a request one
/// policy refuses still counted against the ones before it.
#[derive(Clone)]
pub struct RateLimitLayer {
    pub(super) backend: Arc<dyn Backend>,
    pub(super) policies: Arc<[Policy]>,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// A layer over `backend`, with no policies yet.
    pub fn new(backend: impl Backend) -> Self {
        Self {
            backend: Arc::new(backend),
            policies: Arc::from(Vec::new()),
        }
    }

    /// Adds a policy.
    #[must_use]
    pub fn policy(mut self, policy: Policy) -> Self {
        let mut policies = self.policies.to_vec();
        policies.push(policy);
        self.policies = Arc::from(policies);
        self
    }

    /// The keys of `request`, as `(policy index, "{policy}:{key}")`, for the
    /// policies that apply to it, or the refusal of the first policy that
    /// finds no key and refuses such requests.
    pub(super) fn keys<B>(&self, request: &Request<B>) -> Result<Vec<(usize, String)>, Problem> {
        let info = RequestInfo {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
        };
        let mut keys = Vec::with_capacity(self.policies.len());
        for (index, policy) in self.policies.iter().enumerate() {
            match (policy.key.key(&info), policy.missing) {
                (Some(key), _) => keys.push((index, format!("{}:{key}", policy.name))),
                (None, MissingKey::Skip) => {}
                (None, MissingKey::Refuse) => return Err(policy.missing_key()),
            }
        }
        Ok(keys)
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, self.clone())
    }
}
