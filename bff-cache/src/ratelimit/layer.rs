//! [`RateLimitLayer`] and its [`Policy`]s.

use std::sync::Arc;

use http::Request;
use tower::Layer;

use super::{Backend, KeyExtractor, Quota, RateLimit, RequestInfo};

/// One limit: a name (for headers, metrics and key namespaces), a quota, and
/// what it counts.
#[derive(Clone)]
pub struct Policy {
    pub(super) name: Arc<str>,
    pub(super) quota: Quota,
    key: Arc<dyn KeyExtractor>,
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
    /// headers) limiting each key `key` extracts to `quota`.
    pub fn new(name: &str, quota: Quota, key: impl KeyExtractor) -> Self {
        Self {
            name: Arc::from(name),
            quota,
            key: Arc::new(key),
        }
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
    /// policies that apply to it.
    pub(super) fn keys<B>(&self, request: &Request<B>) -> Vec<(usize, String)> {
        let info = RequestInfo {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
        };
        self.policies
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.key.key(&info).map(|k| (i, format!("{}:{k}", p.name))))
            .collect()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, self.clone())
    }
}
