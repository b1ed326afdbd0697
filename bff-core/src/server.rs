//! Serving with graceful shutdown.
//!
//! On SIGINT or SIGTERM, [`serve`] stops accepting connections, lets in-flight
//! requests finish, and returns; if they have not finished within the grace
//! period, it returns anyway so a deployment's stop never hangs. Requests still
//! running then end when the caller's runtime shuts down (the process exits);
//! the caller closes its pools in between, bounding that too.
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//!
//! # async fn run() -> std::io::Result<()> {
//! let app = Router::new().route("/", get(|| async { "hi" }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! bff_core::server::serve(listener, app, bff_core::server::shutdown_signal(), Duration::from_secs(30)).await?;
//! // Close pools here.
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

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
/// requests for at most `grace`.
///
/// Handlers can read the peer address with `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (started_tx, mut started_rx) = watch::channel(false);
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        // Receivers live until `serve` returns, so this send cannot fail while it matters.
        let _ = started_tx.send(true);
    });
    let deadline = async move {
        if started_rx.wait_for(|started| *started).await.is_err() {
            // The server ended before any shutdown started; nothing to bound.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => {
            tracing::info!("all connections closed");
            result
        }
        () = deadline => {
            tracing::warn!(?grace, "shutdown grace period over; dropping the remaining connections");
            Ok(())
        }
    }
}
