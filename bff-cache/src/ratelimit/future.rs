//! [`ResponseFuture`]: the response future of [`RateLimit`](super::RateLimit).

use bff_core::refusal::{GuardFuture, Pass};
use http::Response;

use super::headers::{Applied, append};

/// The response future of [`RateLimit`](super::RateLimit): the backend's
/// decisions, then the inner service (whose answer gets the rate-limit
/// headers), or the refusal.
pub type ResponseFuture<S, ReqBody> = GuardFuture<S, ReqBody, Decisions>;

/// The decisions that let a request in: their `RateLimit-Policy` and
/// `RateLimit` headers go on its response.
pub struct Decisions(pub(super) Vec<Applied>);

impl std::fmt::Debug for Decisions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Decisions").field(&self.0.len()).finish()
    }
}

impl Pass for Decisions {
    fn leave<B>(self, response: &mut Response<B>) {
        append(response.headers_mut(), &self.0);
    }
}
