//! [`ResponseFuture`]: the response future of [`Jwt`](super::Jwt).

use bff_core::refusal::{GuardFuture, Pass};
use http::Request;

use super::Principal;

/// The response future of [`Jwt`](super::Jwt): authentication when it has to
/// wait (a session check, a key refresh), then the inner service with the
/// [`Principal`] in the request, or the refusal.
pub type ResponseFuture<S, ReqBody> = GuardFuture<S, ReqBody, Principal>;

/// The caller goes into the request extensions, for the inner service.
impl Pass for Principal {
    fn enter<B>(&mut self, request: &mut Request<B>) {
        request.extensions_mut().insert(self.clone());
    }
}
