//! [`ResponseFuture`]: the response future of [`RateLimit`](super::RateLimit).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bff_core::Problem;
use bff_core::refusal::{self, Protocol, ResponseBody};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::Service;

use super::headers::{Applied, append};
use crate::BoxFuture;

pin_project! {
    /// The response future of [`RateLimit`](super::RateLimit): the backend's
    /// decisions, then the inner service (whose answer gets the rate-limit
    /// headers), or the refusal.
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
        Deciding {
            decisions: BoxFuture<'static, Result<Vec<Applied>, Problem>>,
            call: Option<(S, Request<ReqBody>)>,
            protocol: Protocol,
        },
        Inner {
            #[pin]
            future: S::Future,
            applied: Vec<Applied>,
        },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(super) fn inner(future: S::Future, applied: Vec<Applied>) -> Self {
        Self {
            state: State::Inner { future, applied },
        }
    }

    pub(super) fn deciding(
        decisions: BoxFuture<'static, Result<Vec<Applied>, Problem>>,
        inner: S,
        request: Request<ReqBody>,
        protocol: Protocol,
    ) -> Self {
        Self {
            state: State::Deciding {
                decisions,
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
                StateProj::Deciding {
                    decisions,
                    call,
                    protocol,
                } => {
                    let decided = ready!(decisions.as_mut().poll(cx));
                    match decided {
                        Ok(applied) => {
                            let (mut inner, request) =
                                call.take().expect("ResponseFuture polled after completion");
                            let future = inner.call(request);
                            state.set(State::Inner { future, applied });
                        }
                        Err(problem) => {
                            return Poll::Ready(Ok(refusal::response(*protocol, problem)));
                        }
                    }
                }
                StateProj::Inner { future, applied } => {
                    let mut response = ready!(future.poll(cx))?;
                    append(response.headers_mut(), applied);
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
            }
        }
    }
}
