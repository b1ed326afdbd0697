//! The guard as a tower layer.
//!
//! ```
//! use axum::{Router, routing::get};
//! use bff_rbac::{Policy, RequirePermissionLayer, Subject};
//! use tower::ServiceBuilder;
//!
//! // The caller as the authentication layer puts it in the request extensions;
//! // with the `auth` feature, `bff_auth::layer::Principal` is one.
//! #[derive(Clone)]
//! struct Caller { id: String, role: String }
//!
//! impl Subject for Caller {
//!     fn subject_id(&self) -> &str { &self.id }
//!     fn role(&self) -> &str { &self.role }
//! }
//!
//! let policy = Policy::builder()
//!     .role("customer", [], [])
//!     .role("manager", ["customer"], ["users:read_any"])
//!     .build()
//!     .unwrap();
//! // Put an authentication layer (such as `bff_auth::layer::JwtLayer`) outside
//! // this one: it is what puts the caller in the request.
//! let app: Router = Router::new().route("/admin/users", get(|| async { "everyone" })).layer(
//!     ServiceBuilder::new()
//!         .layer(RequirePermissionLayer::<Caller>::new(policy, "users:read_any")),
//! );
//! ```
//!
//! The guard works on any `http::Request<B>` and any response body (axum,
//! tonic, bare hyper): its refusals are [`ResponseBody`]s of its own, as
//! problem+json for HTTP callers and as a `grpc-status` (`UNAUTHENTICATED`,
//! `PERMISSION_DENIED`) for gRPC ones (see [`bff_core::refusal`]).

use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use bff_core::Problem;
use bff_core::refusal::{GuardFuture, Protocol, ResponseBody};
use http::{Request, Response};
use tower::{Layer, Service};

use crate::macros::define_inner_service_accessors;
use crate::{Policy, Subject};

/// Requires the caller (a `T` in the request extensions) to hold a permission:
/// 401 problem+json without a caller, 403 without the permission.
pub struct RequirePermissionLayer<T> {
    policy: Policy,
    permission: Arc<str>,
    _subject: PhantomData<fn() -> T>,
}

impl<T> Clone for RequirePermissionLayer<T> {
    fn clone(&self) -> Self {
        Self {
            policy: self.policy.clone(),
            permission: Arc::clone(&self.permission),
            _subject: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for RequirePermissionLayer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequirePermissionLayer")
            .field("permission", &self.permission)
            .finish_non_exhaustive()
    }
}

impl<T: Subject> RequirePermissionLayer<T> {
    /// Requires `permission` under `policy`.
    pub fn new(policy: Policy, permission: &str) -> Self {
        Self {
            policy,
            permission: Arc::from(permission),
            _subject: PhantomData,
        }
    }
}

impl<S, T> Layer<S> for RequirePermissionLayer<T> {
    type Service = RequirePermission<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        RequirePermission {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`RequirePermissionLayer`].
pub struct RequirePermission<S, T> {
    inner: S,
    layer: RequirePermissionLayer<T>,
}

impl<S: Clone, T> Clone for RequirePermission<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: std::fmt::Debug, T> std::fmt::Debug for RequirePermission<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequirePermission")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, T> RequirePermission<S, T> {
    define_inner_service_accessors!();
}

/// Checks a caller against a permission: the error is the problem to answer.
pub(crate) fn check<T: Subject>(
    policy: &Policy,
    caller: Option<&T>,
    permission: &str,
) -> Result<(), Problem> {
    let Some(caller) = caller else {
        return Err(Problem::unauthorized()
            .with_detail("An access token is required: send `Authorization: Bearer <token>`."));
    };
    if policy.allows(caller.role(), permission) {
        Ok(())
    } else {
        Err(Problem::forbidden().with_detail("Your role does not allow this."))
    }
}

impl<S, T, ReqBody, ResBody> Service<Request<ReqBody>> for RequirePermission<S, T>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    T: Subject,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let caller = req.extensions().get::<T>();
        match check(&self.layer.policy, caller, &self.layer.permission) {
            Ok(()) => ResponseFuture::inner(self.inner.call(req), None),
            Err(problem) => ResponseFuture::refused(Protocol::of(req.headers()), problem),
        }
    }
}

/// The response future of [`RequirePermission`]: the inner service's, or the
/// refusal.
pub type ResponseFuture<S, ReqBody> = GuardFuture<S, ReqBody, ()>;

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use bytes::Bytes;
    use http_body_util::Full;
    use tower::ServiceExt;

    #[derive(Clone)]
    struct Caller(&'static str);

    impl Subject for Caller {
        fn subject_id(&self) -> &str {
            "u1"
        }
        fn role(&self) -> &str {
            self.0
        }
    }

    fn policy() -> Policy {
        Policy::builder()
            .role("customer", [], [])
            .role("admin", ["customer"], ["x"])
            .build()
            .expect("valid")
    }

    async fn status(caller: Option<Caller>) -> u16 {
        let service = tower::ServiceBuilder::new()
            .layer(RequirePermissionLayer::<Caller>::new(policy(), "x"))
            .service_fn(|_req: Request<Body>| async {
                Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
            });
        let mut request = Request::new(Body::empty());
        if let Some(caller) = caller {
            request.extensions_mut().insert(caller);
        }
        let response = service.oneshot(request).await.expect("infallible");
        response.status().as_u16()
    }

    #[tokio::test]
    async fn no_caller_is_401_a_lacking_role_403() {
        assert_eq!(status(None).await, 401);
        assert_eq!(status(Some(Caller("customer"))).await, 403);
        assert_eq!(status(Some(Caller("ghost"))).await, 403);
        assert_eq!(status(Some(Caller("admin"))).await, 200);
    }

    /// `Full` bodies both ways, no axum; gRPC callers get a `grpc-status`.
    async fn bare(
        caller: Option<Caller>,
        content_type: &str,
    ) -> Response<ResponseBody<Full<Bytes>>> {
        let service = tower::ServiceBuilder::new()
            .layer(RequirePermissionLayer::<Caller>::new(policy(), "x"))
            .service_fn(|_req: Request<Full<Bytes>>| async {
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                    b"allowed",
                ))))
            });
        let mut request = Request::post("/")
            .header("content-type", content_type)
            .body(Full::new(Bytes::new()))
            .expect("request");
        if let Some(caller) = caller {
            request.extensions_mut().insert(caller);
        }
        service.oneshot(request).await.expect("infallible")
    }

    #[tokio::test]
    async fn works_on_any_body_and_speaks_grpc_to_grpc_callers() {
        use http_body_util::BodyExt;

        let allowed = bare(Some(Caller("admin")), "application/json").await;
        assert_eq!(allowed.status(), 200);
        let body = allowed
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(&body[..], b"allowed");
        let denied = bare(Some(Caller("customer")), "application/json").await;
        assert_eq!(denied.status(), 403);
        assert_eq!(denied.headers()["content-type"], "application/problem+json");

        for (caller, code) in [(None, "16"), (Some(Caller("customer")), "7")] {
            let refused = bare(caller, "application/grpc").await;
            assert_eq!(refused.status(), 200);
            assert_eq!(refused.headers()["grpc-status"], code);
        }
    }
}
