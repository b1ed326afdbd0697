//! Extractors of who is calling, from where, and with which request-level
//! headers: each parses once, at the edge, into a type the services take.

use axum::extract::{FromRef, FromRequestParts};
use bff_auth::layer::Principal;
use bff_cache::ratelimit::{ClientIp, RequestInfo, ip_key};
use bff_core::Problem;
use http::request::Parts;
use uuid::Uuid;

use super::validation::Fields;
use crate::idempotency::IdempotencyKey;
use crate::messaging::Locale;

/// The authenticated caller's user id, from the token that the JWT layer
/// verified; a token whose subject is not a user id authenticates nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallerId(pub(crate) Uuid);

impl CallerId {
    /// The id of `principal`, or 401.
    pub(crate) fn of(principal: &Principal) -> Result<Self, Problem> {
        Uuid::parse_str(&principal.user_id)
            .map(Self)
            .map_err(|_| Problem::unauthorized())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CallerId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal =
            <Principal as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        Self::of(&principal)
    }
}

impl aide::operation::OperationInput for CallerId {}

/// The caller a backend call is made for: the principal the JWT layer
/// verified and the request id. It holds no token: a gateway mints one for
/// each backend's audience ([`bff_auth::mint`]), so the caller's own never
/// leaves the BFF.
#[derive(Debug, Clone)]
pub struct Onward {
    /// The verified caller.
    pub principal: Principal,
    /// The request id, to follow the call through the backends' logs.
    pub request_id: Option<http::HeaderValue>,
}

impl Onward {
    /// Whom a backend token is minted for.
    pub fn subject(&self) -> bff_auth::mint::Subject<'_> {
        bff_auth::mint::Subject {
            user_id: &self.principal.user_id,
            session_id: &self.principal.session_id,
            role: &self.principal.role,
        }
    }

    /// What a call carries with `token`, minted for its backend.
    pub fn forward(
        &self,
        token: &str,
    ) -> Result<bff_aggregate::Forward, http::header::InvalidHeaderValue> {
        let authorization = http::HeaderValue::from_str(&format!("Bearer {token}"))?;
        let forward = bff_aggregate::Forward::new().with_authorization(authorization);
        Ok(match &self.request_id {
            Some(id) => forward.with_request_id(id.clone()),
            None => forward,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Onward {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal =
            <Principal as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        Ok(Self {
            principal,
            request_id: parts.headers.get("x-request-id").cloned(),
        })
    }
}

impl aide::operation::OperationInput for Onward {}

/// An id from a path; a malformed one names nothing there, so it is a 404
/// like an id that does not exist or belongs to someone else.
pub(crate) fn path_id(value: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(value).map_err(|_| Problem::not_found())
}

/// Where a request comes from, for session metadata, the audit log and
/// per-client limits.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    /// The client's address: the peer, or what a trusted proxy reports.
    pub ip: Option<String>,
    /// The key of per-client limits (the IPv6 /64; see [`ip_key`]).
    pub client_key: Option<String>,
    /// `User-Agent`, without control characters, at most 256 characters.
    pub user_agent: Option<String>,
}

impl<S> FromRequestParts<S> for ClientMeta
where
    S: Send + Sync,
    ClientIp: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // The peer, or the client a trusted proxy reports (BFF_TRUSTED_PROXIES).
        let client = ClientIp::from_ref(state).client(&RequestInfo {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            extensions: &parts.extensions,
        });
        let user_agent = parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().filter(|c| !c.is_control()).take(256).collect());
        Ok(Self {
            ip: client.map(|ip| ip.to_string()),
            client_key: client.map(ip_key),
            user_agent,
        })
    }
}

impl aide::operation::OperationInput for ClientMeta {}

/// The language for notifications, from `Accept-Language`.
pub(crate) struct RequestLocale(pub(crate) Locale);

impl<S: Send + Sync> FromRequestParts<S> for RequestLocale {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        Ok(Self(Locale::from_accept_language(header)))
    }
}

impl aide::operation::OperationInput for RequestLocale {}

/// The `Idempotency-Key` header as sent: absent, or a key that may be invalid.
///
/// It never rejects on its own, so that a bad key is reported in the same 422
/// as the body's other bad fields; [`Self::optional`] and [`Self::required`]
/// record what is wrong.
#[derive(Debug)]
pub(crate) struct IdempotencyKeyHeader(Option<Result<IdempotencyKey, &'static str>>);

/// The header's name, as field errors call it.
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

impl IdempotencyKeyHeader {
    /// The key if one was sent; a malformed one is recorded in `fields`, and
    /// `None` is returned for it.
    pub(crate) fn optional(self, fields: &mut Fields) -> Option<Option<IdempotencyKey>> {
        self.0
            .map(|key| fields.check(IDEMPOTENCY_KEY, key))
            .map_or(Some(None), |key| key.map(Some))
    }

    /// The key if one was sent, or why it is malformed.
    pub(crate) fn into_result(self) -> Result<Option<IdempotencyKey>, &'static str> {
        self.0.transpose()
    }

    /// The key, which must be sent; what is wrong is recorded in `fields`.
    pub(crate) fn required(self, fields: &mut Fields) -> Option<IdempotencyKey> {
        match self.0 {
            Some(key) => fields.check(IDEMPOTENCY_KEY, key),
            None => {
                fields.push(
                    IDEMPOTENCY_KEY,
                    "is required: a unique value per transfer, reused only to retry it",
                );
                None
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.headers.get("idempotency-key").map(|value| {
            value
                .to_str()
                .map_err(|_| IdempotencyKey::RULE)
                .and_then(IdempotencyKey::parse)
        })))
    }
}

/// The key's rule ([`IdempotencyKey::parse`]) as a JSON Schema pattern.
const IDEMPOTENCY_KEY_PATTERN: &str = r"^[!-~]{1,255}$";

/// Documented as optional; a route that requires it says so with
/// [`bff_core::openapi::require_header`].
impl aide::operation::OperationInput for IdempotencyKeyHeader {
    fn operation_input(
        ctx: &mut aide::generate::GenContext,
        operation: &mut aide::openapi::Operation,
    ) {
        bff_core::openapi::header(
            ctx,
            operation,
            IDEMPOTENCY_KEY,
            "A unique value per operation, 1 to 255 visible ASCII characters, reused only to retry it: \
             a repeat with the same key and body replays the first answer, with another body it is 409.",
            false,
            schemars::json_schema!({
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "pattern": IDEMPOTENCY_KEY_PATTERN,
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::validation::patterns::admitted_are_accepted;

    #[test]
    fn the_idempotency_key_pattern_admits_only_accepted_keys() {
        admitted_are_accepted(IDEMPOTENCY_KEY_PATTERN, 255, |key| {
            IdempotencyKey::parse(key).is_ok()
        });
    }
}
