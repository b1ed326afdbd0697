//! Serving with bounded connections and graceful shutdown.
//!
//! [`serve`] runs an axum [`Router`] on hyper (HTTP/1.1 and HTTP/2, with
//! upgrades) and protects the process from clients that hold sockets:
//!
//! - **A header-read timeout** ([`ServerConfig::header_read_timeout`]): a client
//!   that does not send a request's headers in time is disconnected. On
//!   HTTP/1.1 the clock starts when the server begins waiting for the next
//!   request, so it also bounds how long a kept-alive connection may stay silent.
//! - **An idle timeout** ([`ServerConfig::idle_timeout`]): a connection with no
//!   request in flight and no byte read or written for that long is closed
//!   gracefully (HTTP/2 with a `GOAWAY`).
//! - **A connection limit** ([`ServerConfig::max_connections`]): past it, new
//!   connections wait in the listen backlog until one closes, so a flood cannot
//!   exhaust file descriptors or memory.
//! - **Request-head checks** that answer problem+json, with an `X-Request-Id`,
//!   before the router runs: an HTTP/1.1 request without exactly one `Host`
//!   header (or any request with two) is 400 (RFC 9112, section 3.2); a target
//!   longer than [`ServerConfig::max_uri_len`] is 414; headers over
//!   [`ServerConfig::max_header_bytes`] or [`ServerConfig::max_headers`] are 431.
//!   Only what hyper refuses before a request exists (bytes that do not parse as
//!   HTTP, or heads past hyper's own hard limits, set well above these) gets
//!   hyper's bare status line and a closed connection: there is no request to
//!   answer.
//!
//! Handlers can read the peer address with `ConnectInfo<SocketAddr>`.
//!
//! On SIGINT or SIGTERM ([`shutdown_signal`]), [`serve`] stops accepting
//! connections, lets in-flight requests finish, and returns; if they have not
//! finished within [`ServerConfig::grace`], it returns anyway so a deployment's
//! stop never hangs. Requests still running then end when the caller's runtime
//! shuts down (the process exits); the caller closes its pools in between.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use bff_core::server::{ServerConfig, serve, shutdown_signal};
//!
//! # async fn run() -> std::io::Result<()> {
//! let app = Router::new().route("/", get(|| async { "hi" }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! serve(listener, app, shutdown_signal(), ServerConfig::default()).await?;
//! // Close pools here.
//! # Ok(())
//! # }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::problem::Problem;
use crate::request_id::{RequestId, X_REQUEST_ID};

/// How [`serve`] treats connections. Start from [`ServerConfig::default`] and
/// change what you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// How long in-flight requests may run after shutdown starts. Default 30 s.
    pub grace: Duration,
    /// How long a client may take to send a request's headers. Default 15 s.
    pub header_read_timeout: Duration,
    /// How long a connection may sit with no request in flight and no traffic
    /// before it is closed. Default 60 s.
    pub idle_timeout: Duration,
    /// How many connections are served at once; more wait to be accepted.
    /// Default 10,000 (raise the process's open-file limit to match).
    pub max_connections: usize,
    /// The longest request target (path and query), in bytes. Default 8 KiB.
    pub max_uri_len: usize,
    /// The most header bytes (names and values) a request may carry. Default 32 KiB.
    pub max_header_bytes: usize,
    /// The most header fields a request may carry. Default 100.
    pub max_headers: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_uri_len: 8 * 1024,
            max_header_bytes: 32 * 1024,
            max_headers: 100,
        }
    }
}

impl ServerConfig {
    /// This configuration with `grace` as the shutdown grace period.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}

/// A future that resolves on the first SIGINT (Ctrl-C) or SIGTERM.
///
/// The signal handlers are installed when this is called, not when the future is
/// first polled, so a signal that arrives while the server is still starting is
/// not lost to the default action (which would kill the process). Call it inside
/// a Tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let (mut interrupt, mut terminate) = match (interrupt, terminate) {
                (Ok(i), Ok(t)) => (i, t),
                (Err(error), _) | (_, Err(error)) => {
                    tracing::error!(%error, "cannot listen for SIGINT/SIGTERM; stop the process with SIGKILL");
                    return std::future::pending().await;
                }
            };
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
                _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("Ctrl-C received, shutting down");
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains in-flight
/// requests for at most [`ServerConfig::grace`]. See the [module](self) docs for
/// what the configuration bounds.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    config: ServerConfig,
) -> io::Result<()> {
    let config = Arc::new(config);
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        // A permit first: past the limit, connections wait in the backlog.
        let permit = tokio::select! {
            () = shutdown.as_mut() => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            () = shutdown.as_mut() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::error!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (app, config, stop) = (app.clone(), Arc::clone(&config), stop_rx.clone());
        connections.spawn(async move {
            serve_connection(stream, remote, app, &config, stop).await;
            drop(permit);
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    // Receivers live in the connection tasks; none left means nothing to tell.
    let _ = stop_tx.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(config.grace, drained).await.is_err() {
        tracing::warn!(grace = ?config.grace, "shutdown grace period over; dropping the remaining connections");
    } else {
        tracing::info!("all connections closed");
    }
    Ok(())
}

/// What a connection's watchdog needs to know: when bytes last moved, and how
/// many requests are being answered.
#[derive(Debug)]
struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_ms.store(self.elapsed_ms(), Ordering::Relaxed);
    }

    /// How long nothing has happened, or `None` while a request is in flight.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let idle = self
            .elapsed_ms()
            .saturating_sub(self.last_ms.load(Ordering::Relaxed));
        Some(Duration::from_millis(idle))
    }
}

/// Counts a request as in flight until dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    app: Router,
    config: &ServerConfig,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let limits = HeadLimits::from(config);
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let in_flight = InFlight::start(&activity);
            let app = app.clone();
            async move {
                let _in_flight = in_flight;
                if let Some(problem) = limits.check(&request) {
                    return Ok::<_, Infallible>(refuse(problem, &request).await);
                }
                request.extensions_mut().insert(ConnectInfo(remote));
                app.oneshot(request.map(axum::body::Body::new)).await
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_headers(config.max_headers.saturating_mul(2).max(100))
        .max_buf_size(hyper_buffer(config));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(
            u32::try_from(config.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX),
        )
        .keep_alive_interval(config.idle_timeout / 2)
        .keep_alive_timeout(Duration::from_secs(20));
    let connection = builder.serve_connection_with_upgrades(io, service);
    let mut connection = pin!(connection);
    let tick = (config.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut closing = false;
    metrics::gauge!("http_server_open_connections").increment(1.0);
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%remote, error = %crate::problem::ErrorChain(&*error), "connection ended with an error");
                }
                break;
            }
            _ = stop.wait_for(|stop| *stop), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            () = tokio::time::sleep(tick), if !closing => {
                if activity.idle_for().is_some_and(|idle| idle >= config.idle_timeout) {
                    tracing::debug!(%remote, "closing an idle connection");
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
    metrics::gauge!("http_server_open_connections").decrement(1.0);
}

/// hyper's own read buffer: room for the largest head this server answers
/// itself, so only heads far past the configured limits meet hyper's bare 431.
fn hyper_buffer(config: &ServerConfig) -> usize {
    config
        .max_uri_len
        .saturating_add(config.max_header_bytes)
        .saturating_mul(2)
        .max(64 * 1024)
}

/// The request-head rules checked before the router runs.
#[derive(Debug, Clone, Copy)]
struct HeadLimits {
    max_uri_len: usize,
    max_header_bytes: usize,
    max_headers: usize,
}

impl From<&ServerConfig> for HeadLimits {
    fn from(config: &ServerConfig) -> Self {
        Self {
            max_uri_len: config.max_uri_len,
            max_header_bytes: config.max_header_bytes,
            max_headers: config.max_headers,
        }
    }
}

impl HeadLimits {
    /// The problem with a request whose head breaks a rule, if it does.
    fn check<B>(self, request: &Request<B>) -> Option<Problem> {
        let hosts = request.headers().get_all(header::HOST).iter().count();
        // HTTP/1.1 needs exactly one Host; HTTP/1.0 and HTTP/2 (which carries
        // the authority as a pseudo-header) may omit it; nobody sends two.
        let host_ok = match request.version() {
            Version::HTTP_11 => hosts == 1,
            _ => hosts <= 1,
        };
        let problem = if !host_ok {
            Problem::bad_request(
                "An HTTP/1.1 request carries exactly one Host header (RFC 9112, section 3.2).",
            )
        } else if request
            .uri()
            .path_and_query()
            .map_or(0, |target| target.as_str().len())
            > self.max_uri_len
        {
            Problem::new(StatusCode::URI_TOO_LONG, "uri_too_long", "URI Too Long").with_detail(
                format!(
                    "The request target is longer than {} bytes.",
                    self.max_uri_len
                ),
            )
        } else if request.headers().len() > self.max_headers
            || request
                .headers()
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len())
                .sum::<usize>()
                > self.max_header_bytes
        {
            Problem::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                "Request Header Fields Too Large",
            )
            .with_detail(format!(
                "The request carries more than {} header fields or {} bytes of them.",
                self.max_headers, self.max_header_bytes
            ))
        } else {
            return None;
        };
        Some(problem)
    }
}

/// The answer to a request refused by [`HeadLimits`]: its problem, with the
/// request's id (the client's, if sane, or a new one) in the body and the
/// `X-Request-Id` header, and the connection closed after it, since the rest of
/// its bytes cannot be trusted to frame another request.
async fn refuse<B>(problem: Problem, request: &Request<B>) -> Response<axum::body::Body> {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(RequestId::parse)
        .unwrap_or_else(RequestId::generate);
    tracing::debug!(request_id = %id, status = problem.status().as_u16(), "request head refused");
    let header_value: HeaderValue = id.header_value().clone();
    let mut response = id
        .scope(async move { problem.into_http_response() })
        .await
        .map(axum::body::Body::from);
    let headers = response.headers_mut();
    headers.insert(X_REQUEST_ID.clone(), header_value);
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A socket that records when bytes last moved through it.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
