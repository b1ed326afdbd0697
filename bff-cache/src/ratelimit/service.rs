//! [`RateLimit`]: the service of [`RateLimitLayer`].

use std::sync::Arc;
use std::task::{Context, Poll};

use bff_core::Problem;
use bff_core::refusal::{Protocol, ResponseBody};
use http::{HeaderValue, Request, Response};
use tower::Service;

use super::future::Decisions;
use super::headers::{Applied, refusal};
use super::{RateLimitLayer, ResponseFuture};
use crate::macros::define_inner_service_accessors;

/// Limits requests; the service of [`RateLimitLayer`], see the
/// [module docs](super).
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    layer: RateLimitLayer,
}

impl<S> RateLimit<S> {
    pub(super) fn new(inner: S, layer: RateLimitLayer) -> Self {
        Self { inner, layer }
    }

    define_inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let protocol = Protocol::of(req.headers());
        let keys = match self.layer.keys(&req) {
            Ok(keys) => keys,
            Err(problem) => return ResponseFuture::refused(protocol, problem),
        };
        if keys.is_empty() {
            // No policy applies: nothing to decide, and no headers to add.
            return ResponseFuture::inner(self.inner.call(req), None);
        }
        let decisions = Box::pin(decide(self.layer.clone(), keys));
        // The ready service goes with this request; a clone waits for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::check(decisions, inner, req, protocol)
    }
}

/// Counts the request against every policy whose key it has, in order: the
/// decisions when all allow it, else the problem to answer (429, or 503 when
/// the backend cannot decide).
async fn decide(layer: RateLimitLayer, keys: Vec<(usize, String)>) -> Result<Decisions, Problem> {
    let mut applied = Vec::with_capacity(keys.len());
    for (index, key) in keys {
        let policy = &layer.policies[index];
        let decision = match layer.backend.check(&key, &policy.quota).await {
            Ok(decision) => decision,
            Err(error) => {
                metrics::counter!("bff_ratelimit_decisions_total", "policy" => policy.name.to_string(), "outcome" => "error").increment(1);
                tracing::error!(%error, policy = %policy.name, "rate limiter unavailable; refusing");
                return Err(Problem::unavailable(
                    "The service is temporarily unavailable; try again shortly.",
                )
                .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("1")));
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
            return Err(refusal(&applied, &decision, detail));
        }
    }
    Ok(Decisions(applied))
}
