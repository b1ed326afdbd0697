//! The guard as a tower layer.
//!
//! ```
//! use axum::{Router, routing::get};
//! use bff_auth::layer::Principal;
//! use bff_rbac::{Policy, RequirePermissionLayer};
//! use tower::ServiceBuilder;
//!
//! let policy = Policy::builder()
//!     .role("customer", [], [])
//!     .role("manager", ["customer"], ["users:read_any"])
//!     .build()
//!     .unwrap();
//! // Put an authentication layer (such as `bff_auth::layer::JwtLayer`) outside
//! // this one: it is what puts the `Principal` in the request.
//! let app: Router = Router::new().route("/admin/users", get(|| async { "everyone" })).layer(
//!     ServiceBuilder::new()
//!         .layer(RequirePermissionLayer::<Principal>::new(policy, "users:read_any")),
//! );
//! ```

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use bff_core::Problem;
use http::Request;
use tower::{Layer, Service};

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
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
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

impl<S, T, B> Service<Request<B>> for RequirePermission<S, T>
where
    S: Service<Request<B>, Response = Response>,
    T: Subject,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let caller = req.extensions().get::<T>();
        match check(&self.layer.policy, caller, &self.layer.permission) {
            Ok(()) => ResponseFuture {
                kind: Kind::Inner {
                    future: self.inner.call(req),
                },
            },
            Err(problem) => ResponseFuture {
                kind: Kind::Denied {
                    response: Some(problem.into_response()),
                },
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequirePermission`].
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Denied { response: Option<Response> },
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx),
            KindProj::Denied { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| Problem::forbidden().into_response()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
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

    async fn status(caller: Option<Caller>) -> u16 {
        let policy = Policy::builder()
            .role("customer", [], [])
            .role("admin", ["customer"], ["x"])
            .build()
            .expect("valid");
        let service = tower::ServiceBuilder::new()
            .layer(RequirePermissionLayer::<Caller>::new(policy, "x"))
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
}
