//! The authenticated caller, and its axum extractors.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use bff_core::Problem;
use http::request::Parts;

use super::layer::unauthenticated;
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
    /// Every claim of the token.
    pub claims: Arc<Claims>,
}

impl Principal {
    pub(super) fn from_claims(claims: Arc<Claims>) -> Self {
        Self {
            user_id: claims.sub.clone(),
            session_id: claims.sid.clone(),
            role: claims.role.clone(),
            claims,
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

impl aide::operation::OperationInput for Principal {}
