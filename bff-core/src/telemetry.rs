//! Tracing setup: human-readable logs for development, JSON lines for production,
//! filtered by `RUST_LOG`.
//!
//! ```
//! use bff_core::telemetry::{LogFormat, init};
//!
//! // Later calls (tests, several servers in one process) keep the first subscriber.
//! let _ = init(LogFormat::Pretty, "info");
//! ```

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Coloured, multi-field lines for a terminal.
    Pretty,
    /// One JSON object a line, with span fields (the request id among them), for log shippers.
    Json,
}

/// A subscriber was already installed.
#[derive(Debug, thiserror::Error)]
#[error("a global tracing subscriber is already installed")]
pub struct AlreadyInitialized;

/// Installs the global subscriber: `RUST_LOG` when set, else `default_filter`.
///
/// Logs go to standard error, so standard output stays free for command output.
pub fn init(format: LogFormat, default_filter: &str) -> Result<(), AlreadyInitialized> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    result.map_err(|_| AlreadyInitialized)
}
