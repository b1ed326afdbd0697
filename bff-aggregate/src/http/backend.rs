//! [`Backend`]: pooled HTTP/1.1 keep-alive connections to one origin, on
//! hyper's connection API.

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ::http::header::{HOST, HeaderValue};
use ::http::uri::{Authority, PathAndQuery, Scheme, Uri};
use ::http::{Request, Response};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::TrySendError;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::check_status;
use crate::error::SourceError;
use crate::forward::Forward;
use crate::source::Call;

/// The default number of idle connections a [`Backend`] keeps.
pub const DEFAULT_MAX_IDLE: usize = 256;
/// The default time an idle connection is kept before it is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// An origin that is not `http://host[:port]`.
#[derive(Debug, thiserror::Error)]
#[error("a backend origin is http://host[:port] with nothing after it: {0}")]
pub struct InvalidOrigin(String);

/// One HTTP/1.1 backend (`http://host:port`) and a pool of keep-alive
/// connections to it; cheap to clone (clones share the pool).
///
/// A leaner path than hyper-util's general client for the calls a BFF makes
/// all day to a handful of known backends: no pool map keyed by origin, no
/// connector service, no boxed futures. A call takes the most recently used
/// idle connection (or opens one, with `TCP_NODELAY`), sends the request, and
/// the connection goes back to the pool when the response's body has been
/// read to its end. A connection has no task of its own: the task awaiting
/// the response and polling its body reads and writes it, so a call wakes no
/// other task. A connection the backend closed while it sat idle is noticed
/// when it is next taken, before the request is written, and replaced, so the
/// request is not lost; a request that may have reached the backend is never sent twice
/// (use [`Source::retry`](crate::Source::retry) for idempotent calls).
///
/// ```no_run
/// use std::time::Duration;
/// use bff_aggregate::{Aggregate, Forward, Source, SourceError, http::Backend};
/// use http_body_util::BodyExt;
///
/// # async fn handler(headers: http::HeaderMap) -> Result<(), Box<dyn std::error::Error>> {
/// // One per backend, made at startup and cloned into each request.
/// let stock_service = Backend::new("http://127.0.0.1:8081")?;
/// let forward = Forward::from_headers(&headers);
///
/// let stock = Source::optional("stock", Duration::from_millis(150), move |call| {
///     let (backend, forward) = (stock_service.clone(), forward.clone());
///     async move {
///         let request = http::Request::get("/stock/42")
///             .body(bytes::Bytes::new())
///             .map_err(SourceError::permanent)?;
///         let response = backend.send(request, &forward, &call).await?;
///         let body = response
///             .into_body()
///             .collect()
///             .await
///             .map_err(SourceError::transient)?;
///         Ok(body.to_bytes())
///     }
/// });
/// let assembled = Aggregate::new(Duration::from_millis(300)).run((stock,)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Backend {
    shared: Arc<Shared>,
}

struct Shared {
    authority: Authority,
    host: HeaderValue,
    max_idle: usize,
    idle_timeout: Duration,
    /// Idle connections, the most recently used at the back.
    idle: Mutex<VecDeque<Idle>>,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("authority", &self.shared.authority)
            .field("idle", &self.idle_connections())
            .finish()
    }
}

impl Backend {
    /// A backend at `origin` (`http://host[:port]`, port 80 by default) with
    /// [`DEFAULT_MAX_IDLE`] idle connections kept for [`DEFAULT_IDLE_TIMEOUT`].
    pub fn new(origin: &str) -> Result<Self, InvalidOrigin> {
        Self::with_pool(origin, DEFAULT_MAX_IDLE, DEFAULT_IDLE_TIMEOUT)
    }

    /// A backend at `origin` keeping at most `max_idle` idle connections, each
    /// for at most `idle_timeout` (keep it below the backend's own keep-alive
    /// timeout).
    pub fn with_pool(
        origin: &str,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Result<Self, InvalidOrigin> {
        let invalid = || InvalidOrigin(origin.to_owned());
        let uri: Uri = origin.parse().map_err(|_| invalid())?;
        if uri.scheme() != Some(&Scheme::HTTP)
            || uri.path_and_query().is_some_and(|p| p.as_str() != "/")
        {
            return Err(invalid());
        }
        let authority = uri.authority().cloned().ok_or_else(invalid)?;
        if authority.as_str().contains('@') {
            return Err(invalid());
        }
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| invalid())?;
        Ok(Self {
            shared: Arc::new(Shared {
                authority,
                host,
                max_idle,
                idle_timeout,
                idle: Mutex::new(VecDeque::new()),
            }),
        })
    }

    /// The number of idle connections in the pool now.
    pub fn idle_connections(&self) -> usize {
        self.shared.lock().len()
    }

    /// Sends `request` to this backend, waiting at most the call's remaining
    /// time for the response's head.
    ///
    /// The request's URI is a path (`/stock/42?full=1`) or an absolute `http`
    /// URI of this backend's origin; `Host` is set to the origin unless the
    /// request has one. Adds `x-request-id` and `authorization` from `forward`
    /// unless the request already has them. Connection errors, 5xx and 429 are
    /// transient (the timeout as [`SourceError::timeout`]); other 4xx are
    /// permanent; 2xx and 3xx return the response, whose body returns the
    /// connection to the pool once read to its end.
    pub async fn send(
        &self,
        request: Request<Bytes>,
        forward: &Forward,
        call: &Call,
    ) -> Result<Response<PooledBody>, SourceError> {
        let request = self.prepare(request, forward)?;
        let response = tokio::time::timeout(call.remaining(), self.dispatch(request))
            .await
            .map_err(|_elapsed| SourceError::timeout("HTTP request timed out"))??;
        check_status(response.status())?;
        Ok(response)
    }

    /// The request in origin form, with `Host` and the forwarded headers.
    fn prepare(
        &self,
        request: Request<Bytes>,
        forward: &Forward,
    ) -> Result<Request<Full<Bytes>>, SourceError> {
        let (mut parts, body) = request.into_parts();
        let uri = &parts.uri;
        if uri.scheme().is_some_and(|scheme| *scheme != Scheme::HTTP)
            || uri
                .authority()
                .is_some_and(|authority| *authority != self.shared.authority)
        {
            return Err(SourceError::permanent(format!(
                "{uri} is not on the backend http://{}",
                self.shared.authority
            )));
        }
        if uri.scheme().is_some() || uri.authority().is_some() {
            let path = uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            parts.uri = Uri::from(path);
        }
        parts
            .headers
            .entry(HOST)
            .or_insert_with(|| self.shared.host.clone());
        forward.apply_to(&mut parts.headers);
        Ok(Request::from_parts(parts, Full::new(body)))
    }

    async fn dispatch(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response<PooledBody>, SourceError> {
        loop {
            let (mut conn, reused) = match self.checkout() {
                Some(conn) => (conn, true),
                // Boxed: a rare path, kept out of every call's future.
                None => (Box::pin(self.connect()).await?, false),
            };
            if conn.ready().await.is_err() {
                if reused {
                    // Closed while idle: nothing was written; another one.
                    continue;
                }
                return Err(SourceError::transient(
                    "the backend closed a new connection",
                ));
            }
            match conn.send(request).await {
                Ok(response) => {
                    let mut response = response.map(|body| PooledBody {
                        body,
                        conn: Some(conn),
                        shared: Arc::clone(&self.shared),
                    });
                    // An empty body (204, `content-length: 0`) may never be
                    // polled: the connection is free already.
                    if response.body().is_end_stream() {
                        response.body_mut().finished();
                    }
                    return Ok(response);
                }
                Err(mut error) => match error.take_message() {
                    // Not written (the connection closed just now): safe to
                    // send on another connection.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(SourceError::transient(error.into_error())),
                },
            }
        }
    }

    /// The most recently used idle connection that is still open and young.
    fn checkout(&self) -> Option<Conn> {
        let mut idle = self.shared.lock();
        while let Some(entry) = idle.pop_back() {
            if entry.since.elapsed() > self.shared.idle_timeout {
                // Everything older sits in front of it: drop them all.
                idle.clear();
                return None;
            }
            if entry.conn.is_open() {
                return Some(entry.conn);
            }
        }
        None
    }

    async fn connect(&self) -> Result<Conn, SourceError> {
        let stream = TcpStream::connect(self.shared.authority_with_port())
            .await
            .map_err(SourceError::transient)?;
        stream.set_nodelay(true).map_err(SourceError::transient)?;
        let (sender, io) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(SourceError::transient)?;
        Ok(Conn {
            sender,
            io: Some(Box::new(io)),
        })
    }
}

/// One keep-alive connection: the request side and the I/O side, which is
/// driven by the task using the connection (no task of its own, so no
/// wake-up of another task per request and per body chunk).
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// `None` once the connection ended (closed by either side, or failed);
    /// dropping it hands a request that was not written back to its sender.
    /// Boxed: the connection's state is large and moves between the pool,
    /// the request and its body.
    io: Option<Box<http1::Connection<TokioIo<TcpStream>, Full<Bytes>>>>,
}

impl Conn {
    fn is_open(&self) -> bool {
        self.io.is_some() && !self.sender.is_closed()
    }

    /// Reads and writes what the connection can now.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(io) = &mut self.io
            && let Poll::Ready(ended) = Pin::new(&mut **io).poll(cx)
        {
            if let Err(error) = ended {
                tracing::debug!(%error, "backend connection ended");
            }
            self.io = None;
        }
    }

    /// Waits until the connection takes a request, or errs if it ended.
    async fn ready(&mut self) -> Result<(), hyper::Error> {
        poll_fn(|cx| {
            self.drive(cx);
            self.sender.poll_ready(cx)
        })
        .await
    }

    /// Sends `request` and waits for the response's head.
    async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, TrySendError<Request<Full<Bytes>>>> {
        let mut response = pin!(self.sender.try_send_request(request));
        poll_fn(|cx| {
            // Write first, then look for the answer: when the connection
            // ends here, the response future resolves with the request if
            // it was not written.
            self.drive(cx);
            response.as_mut().poll(cx)
        })
        .await
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        // The queue is consistent between statements; a panic elsewhere
        // cannot leave it half-changed.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `host:port` to connect to (an IPv6 host keeps its brackets).
    fn authority_with_port(&self) -> String {
        let port = self.authority.port_u16().unwrap_or(80);
        format!("{}:{port}", self.authority.host())
    }

    fn give_back(&self, conn: Conn) {
        if !conn.is_open() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() >= self.max_idle {
            // Keep the most recent ones.
            idle.pop_front();
        }
        idle.push_back(Idle {
            conn,
            since: Instant::now(),
        });
    }
}

/// A [`Backend`] response's body: hyper's, which gives its connection back to
/// the pool once read to its end (a body dropped unread closes it instead).
pub struct PooledBody {
    body: Incoming,
    /// The connection, driven while the body is read; `None` once given
    /// back or given up.
    conn: Option<Conn>,
    shared: Arc<Shared>,
}

impl fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBody").finish_non_exhaustive()
    }
}

impl PooledBody {
    fn finished(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.shared.give_back(conn);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(conn) = &mut this.conn {
            conn.drive(cx);
        }
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.finished(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.finished(),
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connects_to_the_origins_host_and_port() {
        for (origin, address) in [
            ("http://127.0.0.1:8081", "127.0.0.1:8081"),
            ("http://localhost", "localhost:80"),
            ("http://[::1]:8080/", "[::1]:8080"),
        ] {
            let backend = Backend::new(origin).expect("origin");
            assert_eq!(backend.shared.authority_with_port(), address, "{origin}");
        }
    }
}
