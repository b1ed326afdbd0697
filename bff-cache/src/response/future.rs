//! [`ResponseFuture`]: the response future of [`Cache`](super::Cache).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::response::Response;

use crate::BoxFuture;

/// The response future of [`Cache`](super::Cache).
///
/// A named future around a boxed one: a miss waits on the store, on the fill
/// locks and on the origin in turn, an async function of its own that is not
/// worth writing out as a state machine (the store's calls are boxed anyway).
pub struct ResponseFuture<E> {
    inner: BoxFuture<'static, Result<Response, E>>,
}

impl<E> ResponseFuture<E> {
    pub(super) fn new(inner: BoxFuture<'static, Result<Response, E>>) -> Self {
        Self { inner }
    }
}

impl<E> std::fmt::Debug for ResponseFuture<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<E> Future for ResponseFuture<E> {
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}
