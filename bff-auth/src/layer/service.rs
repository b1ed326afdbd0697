//! [`Jwt`]: the service of [`JwtLayer`].

use std::task::{Context, Poll};

use bff_core::refusal::{Protocol, ResponseBody};
use http::header::AUTHORIZATION;
use http::{HeaderMap, Request, Response};
use tower::Service;

use super::cookie::{Presented, presented};
use super::{AuthError, JwtLayer, ResponseFuture};
use crate::macros::define_inner_service_accessors;
use crate::session::Touch;
use crate::token::TokenError;

/// Authenticates requests; see the [module docs](super).
#[derive(Debug, Clone)]
pub struct Jwt<S> {
    inner: S,
    layer: JwtLayer,
}

impl<S> Jwt<S> {
    pub(super) fn new(inner: S, layer: JwtLayer) -> Self {
        Self { inner, layer }
    }

    define_inner_service_accessors!();
}

/// The token of an `Authorization` value, if it is `Bearer <token>` (the
/// scheme in any case) with a token.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    authorization
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
}

/// The bearer token of a request: `None` without an `Authorization` header,
/// `Some(Err)` with one that is not a bearer token.
fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(AUTHORIZATION)?;
    Some(value.to_str().ok().and_then(bearer_token).ok_or(()))
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Jwt<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let protocol = Protocol::of(req.headers());
        let refused = |error: AuthError| ResponseFuture::refused(protocol, error.into_problem());
        if let Some(cookies) = &self.layer.cookies {
            // The cookie rules run before anything else and before any store
            // is asked, so a refused request changes nothing, and no cookie
            // caller gets past this point without the CSRF check.
            match presented(req.headers()) {
                Err(error) => return refused(error),
                Ok(Presented::NoCookie) => {}
                Ok(Presented::Cookie(cookie)) => {
                    let touch = req
                        .extensions()
                        .get::<Touch>()
                        .copied()
                        .unwrap_or(cookies.touch);
                    let layer = self.layer.clone();
                    let authentication = Box::pin(async move {
                        let principal = layer
                            .authenticate_cookie(cookie, touch)
                            .await
                            .map_err(AuthError::into_problem)?;
                        layer.on_span(&principal);
                        Ok(principal)
                    });
                    let clone = self.inner.clone();
                    let inner = std::mem::replace(&mut self.inner, clone);
                    return ResponseFuture::check(authentication, inner, req, protocol);
                }
            }
        }
        let token = match bearer(req.headers()) {
            None if self.layer.optional => {
                return ResponseFuture::inner(self.inner.call(req), None);
            }
            None => return refused(AuthError::Missing),
            Some(Err(())) => return refused(AuthError::Token(TokenError::Malformed)),
            Some(Ok(token)) => token,
        };
        match self.layer.authenticate_now(token) {
            Some(Ok(principal)) => {
                self.layer.on_span(&principal);
                req.extensions_mut().insert(principal);
                ResponseFuture::inner(self.inner.call(req), None)
            }
            Some(Err(error)) => refused(error),
            None => {
                let token = token.to_owned();
                let layer = self.layer.clone();
                let authentication = Box::pin(async move {
                    let principal = layer
                        .authenticate(&token)
                        .await
                        .map_err(AuthError::into_problem)?;
                    layer.on_span(&principal);
                    Ok(principal)
                });
                // The clone that was polled ready is the one to call, once the
                // token is checked (tower's usual dance).
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::check(authentication, inner, req, protocol)
            }
        }
    }
}
