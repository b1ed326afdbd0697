//! The limiter as a tower layer.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bff_core::Problem;
use http::{HeaderName, HeaderValue, Request, StatusCode};
use tower::{Layer, Service};

use super::{Backend, BoxFuture, Decision, KeyExtractor, Quota, RequestInfo};

/// One limit: a name (for headers, metrics and key namespaces), a quota, and
/// what it counts.
#[derive(Clone)]
pub struct Policy {
    name: Arc<str>,
    quota: Quota,
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
/// `RateLimit-Policy` and `RateLimit` headers to every response it limits.
///
/// Policies are checked in order and each counts the request; a request one
/// policy refuses still counted against the ones before it.
///
/// ```
/// use bff_cache::ratelimit::{ClientIp, MemoryBackend, Policy, Quota, RateLimitLayer};
/// use tower::ServiceBuilder;
///
/// let limit = RateLimitLayer::new(MemoryBackend::default())
///     .policy(Policy::new("per_ip", Quota::per_minute(100), ClientIp::new()));
/// let app: axum::Router = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "hello" }))
///     .layer(ServiceBuilder::new().layer(limit));
/// ```
#[derive(Clone)]
pub struct RateLimitLayer {
    backend: Arc<dyn Backend>,
    policies: Arc<[Policy]>,
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
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`RateLimitLayer`].
#[derive(Clone, Debug)]
pub struct RateLimitService<S> {
    inner: S,
    layer: RateLimitLayer,
}

impl<S> RateLimitService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The response future of [`RateLimitService`].
pub type ResponseFuture<E> = BoxFuture<'static, Result<Response, E>>;

/// Whole seconds, rounded up (headers carry integers).
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

struct Applied {
    name: Arc<str>,
    quota: Quota,
    decision: Decision,
}

fn headers(applied: &[Applied]) -> [(HeaderName, Option<HeaderValue>); 2] {
    let policy = applied
        .iter()
        .map(|a| {
            format!(
                "\"{}\";q={};w={}",
                a.name,
                a.quota.burst(),
                ceil_secs(a.quota.period())
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let state = applied
        .iter()
        .map(|a| {
            format!(
                "\"{}\";r={};t={}",
                a.name,
                a.decision.remaining,
                ceil_secs(a.decision.reset)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    [
        (
            HeaderName::from_static("ratelimit-policy"),
            HeaderValue::from_str(&policy).ok(),
        ),
        (
            HeaderName::from_static("ratelimit"),
            HeaderValue::from_str(&state).ok(),
        ),
    ]
}

/// The 429 of a refusal: `Retry-After` in whole seconds (at least 1) and the
/// rate-limit headers of every policy checked, the refusing one last.
fn refusal(applied: &[Applied], refused: &Decision, detail: String) -> Problem {
    let retry = ceil_secs(refused.retry_after).max(1);
    let mut problem = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Too many requests",
    )
    .with_detail(format!("{detail} Retry in {retry} s."))
    .with_header(http::header::RETRY_AFTER, HeaderValue::from(retry));
    for (name, value) in headers(applied) {
        if let Some(value) = value {
            problem = problem.with_header(name, value);
        }
    }
    problem
}

/// The 429 problem for one policy's refusal, with `Retry-After` and the
/// rate-limit headers, for limits a handler checks itself (where the key, a
/// login identifier say, is only known from the body).
pub fn rejection(policy: &str, quota: &Quota, decision: &Decision, detail: &str) -> Problem {
    let applied = [Applied {
        name: Arc::from(policy),
        quota: *quota,
        decision: *decision,
    }];
    refusal(&applied, decision, detail.to_owned())
}

impl<S, B> Service<Request<B>> for RateLimitService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The ready service goes with this request; a clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let keys: Vec<(usize, String)> = {
                let info = RequestInfo {
                    method: req.method(),
                    uri: req.uri(),
                    headers: req.headers(),
                    extensions: req.extensions(),
                };
                layer
                    .policies
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| p.key.key(&info).map(|k| (i, format!("{}:{k}", p.name))))
                    .collect()
            };
            let mut applied = Vec::with_capacity(keys.len());
            for (index, key) in keys {
                let policy = &layer.policies[index];
                let decision = match layer.backend.check(&key, &policy.quota).await {
                    Ok(decision) => decision,
                    Err(error) => {
                        metrics::counter!("bff_ratelimit_decisions_total", "policy" => policy.name.to_string(), "outcome" => "error").increment(1);
                        tracing::error!(%error, policy = %policy.name, "rate limiter unavailable; refusing");
                        return Ok(Problem::unavailable(
                            "The service is temporarily unavailable; try again shortly.",
                        )
                        .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("1"))
                        .into_response());
                    }
                };
                let outcome = if decision.allowed {
                    "allowed"
                } else {
                    "limited"
                };
                metrics::counter!("bff_ratelimit_decisions_total", "policy" => policy.name.to_string(), "outcome" => outcome).increment(1);
                applied.push(Applied {
                    name: Arc::clone(&policy.name),
                    quota: policy.quota,
                    decision,
                });
                if !decision.allowed {
                    let detail = format!("The limit `{}` is exhausted.", policy.name);
                    let problem = refusal(&applied, &decision, detail);
                    return Ok(problem.into_response());
                }
            }
            let mut response = inner.call(req).await?;
            if !applied.is_empty() {
                // Appended, not set: an inner limiter's fields stay, and the
                // lines together form one list (RFC 9110 field combination).
                for (name, value) in headers(&applied) {
                    if let Some(value) = value {
                        response.headers_mut().append(name, value);
                    }
                }
            }
            Ok(response)
        })
    }
}
