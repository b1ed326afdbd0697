//! [`ResponseFuture`]: the response future of [`Jwt`](super::Jwt).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bff_core::refusal::{self, Protocol, ResponseBody};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::Service;

use super::{AuthError, BoxFuture, Principal};

pin_project! {
    /// The response future of [`Jwt`](super::Jwt): authentication when it has
    /// to wait (a session check, a key refresh), then the inner service, or the
    /// refusal.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Authenticating {
            authentication: BoxFuture<'static, Result<Principal, AuthError>>,
            call: Option<(S, Request<ReqBody>)>,
            protocol: Protocol,
        },
        Inner { #[pin] future: S::Future },
        Refused { error: Option<AuthError>, protocol: Protocol },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(super) fn inner(future: S::Future) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    pub(super) fn refused(protocol: Protocol, error: AuthError) -> Self {
        Self {
            state: State::Refused {
                error: Some(error),
                protocol,
            },
        }
    }

    pub(super) fn authenticating(
        authentication: BoxFuture<'static, Result<Principal, AuthError>>,
        inner: S,
        request: Request<ReqBody>,
        protocol: Protocol,
    ) -> Self {
        Self {
            state: State::Authenticating {
                authentication,
                call: Some((inner, request)),
                protocol,
            },
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Authenticating {
                    authentication,
                    call,
                    protocol,
                } => {
                    let outcome = ready!(authentication.as_mut().poll(cx));
                    let protocol = *protocol;
                    let (mut inner, mut request) =
                        call.take().expect("ResponseFuture polled after completion");
                    match outcome {
                        Ok(principal) => {
                            request.extensions_mut().insert(principal);
                            let future = inner.call(request);
                            state.set(State::Inner { future });
                        }
                        Err(error) => state.set(State::Refused {
                            error: Some(error),
                            protocol,
                        }),
                    }
                }
                StateProj::Inner { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Refused { error, protocol } => {
                    let error = error
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(refusal::response(*protocol, error.into_problem())));
                }
            }
        }
    }
}
