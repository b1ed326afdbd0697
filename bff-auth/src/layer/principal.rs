//! The authenticated caller, and its axum extractors.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use bff_core::Problem;
use http::request::Parts;

use super::layer::unauthenticated;
use crate::session::BrowserSession;
use crate::token::Claims;

/// The authenticated caller, put in the request extensions by
/// [`JwtLayer`](super::JwtLayer).
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user id (`sub`).
    pub user_id: String,
    /// The session id (`sid`).
    pub session_id: String,
    /// The role (`role`).
    pub role: String,
    /// Every claim of the token; for a cookie caller, the claims an access
    /// token for the session would carry (see [`Credential::Cookie`]).
    pub claims: Arc<Claims>,
    /// How the caller authenticated.
    pub credential: Credential,
}

/// How a [`Principal`] authenticated.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Credential {
    /// An `Authorization: Bearer` access token.
    Bearer,
    /// The session cookie of a browser session (and the CSRF rule, which is
    /// checked before the session is looked up). The session's times are
    /// here for routes that report them (`GET /bff/user`).
    Cookie(Arc<BrowserSession>),
}

impl Credential {
    /// The browser session, for a cookie caller.
    pub fn browser_session(&self) -> Option<&BrowserSession> {
        match self {
            Self::Cookie(session) => Some(session),
            Self::Bearer => None,
        }
    }
}

impl Principal {
    pub(super) fn from_claims(claims: Arc<Claims>) -> Self {
        Self {
            user_id: claims.sub.clone(),
            session_id: claims.sid.clone(),
            role: claims.role.clone(),
            claims,
            credential: Credential::Bearer,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(unauthenticated)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}

/// Documented by the operation's own security requirement, not as an input.
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
impl aide::operation::OperationInput for Principal {}
