//! The guard as an axum extractor, with scopes.

use axum::extract::{FromRef, FromRequestParts};
use axum::response::{IntoResponse, Response};
use bff_core::Problem;
use http::request::Parts;

use crate::layer::check;
use crate::{Policy, Scope, Subject};

/// The caller and the policy, for handlers that decide per request: check a
/// permission, choose a [`Scope`], or apply the grant rule.
///
/// The policy comes from the router's state (`Policy: FromRef<State>`); the
/// caller (a `T`) from the request extensions. Without a caller the extractor
/// rejects with 401.
///
/// ```
/// use axum::{Router, routing::get};
/// use bff_rbac::{Authz, Policy, Subject};
///
/// // The caller as the authentication layer puts it in the request extensions;
/// // with the `auth` feature, `bff_auth::layer::Principal` is one.
/// #[derive(Clone)]
/// struct Caller { id: String, role: String }
///
/// impl Subject for Caller {
///     fn subject_id(&self) -> &str { &self.id }
///     fn role(&self) -> &str { &self.role }
/// }
///
/// async fn wallet(authz: Authz<Caller>) -> Result<String, bff_core::Problem> {
///     // Managers read any wallet; everyone else only their own.
///     let scope = authz.scope("wallets:read_any");
///     Ok(format!("owner filter: {:?}", scope.owner()))
/// }
///
/// let policy = Policy::builder().role("customer", [], []).build().unwrap();
/// // Any state works that can hand out the policy (`Policy: FromRef<State>`).
/// let app: Router = Router::new().route("/wallet", get(wallet)).with_state(policy);
/// ```
#[derive(Debug, Clone)]
pub struct Authz<T> {
    /// The caller.
    pub subject: T,
    /// The policy.
    pub policy: Policy,
}

impl<T: Subject> Authz<T> {
    /// 403 problem unless the caller holds `permission`.
    pub fn require(&self, permission: &str) -> Result<(), Problem> {
        check(&self.policy, Some(&self.subject), permission)
    }

    /// Anyone's rows if the caller holds `any_permission`, else only theirs.
    pub fn scope(&self, any_permission: &str) -> Scope {
        self.policy.scope(
            self.subject.role(),
            any_permission,
            self.subject.subject_id(),
        )
    }

    /// 403 problem unless the caller may change a role from `current` to `new`
    /// (see [`Policy::can_grant`]).
    pub fn require_grant(&self, current: &str, new: &str) -> Result<(), Problem> {
        if self.policy.can_grant(self.subject.role(), current, new) {
            Ok(())
        } else {
            Err(Problem::forbidden().with_detail(
                "Nobody grants a role above their own or changes the role of someone above them.",
            ))
        }
    }
}

/// Why [`Authz`] could not be extracted: no authenticated caller.
#[derive(Debug)]
pub struct AuthzRejection(Problem);

impl IntoResponse for AuthzRejection {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl<S, T> FromRequestParts<S> for Authz<T>
where
    S: Send + Sync,
    T: Subject,
    Policy: FromRef<S>,
{
    type Rejection = AuthzRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let subject =
            parts.extensions.get::<T>().cloned().ok_or_else(|| {
                AuthzRejection(Problem::unauthorized().with_detail(
                    "An access token is required: send `Authorization: Bearer <token>`.",
                ))
            })?;
        Ok(Self {
            subject,
            policy: Policy::from_ref(state),
        })
    }
}

/// Documented by the operation's own security requirement, not as an input.
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
impl<T> aide::operation::OperationInput for Authz<T> {}
