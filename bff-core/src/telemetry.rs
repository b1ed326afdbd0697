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

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub mod otel;

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
    install(
        format,
        default_filter,
        None::<tracing_subscriber::layer::Identity>,
    )
}

/// Installs the global subscriber as [`init`] does and, with `tracing`, also
/// exports every span at `info` and above as an OpenTelemetry span
/// (`RUST_LOG` filters the log lines, not the traces).
#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub fn init_with_tracing(
    format: LogFormat,
    default_filter: &str,
    tracing: Option<&otel::Tracing>,
) -> Result<(), AlreadyInitialized> {
    let layer = tracing.map(|tracing| otel::layer(tracing.tracer("bff")));
    install(format, default_filter, layer)
}

fn install<L>(
    format: LogFormat,
    default_filter: &str,
    extra: Option<L>,
) -> Result<(), AlreadyInitialized>
where
    L: Layer<Registry> + Send + Sync,
{
    // `RUST_LOG` filters the log lines only; the extra layer (traces) brings
    // its own filter, whatever the log level.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry().with(extra);
    let result = match format {
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    // A line logged inside a nested span (a source of an
                    // aggregate) still names its request: `spans` lists
                    // every enclosing span, the request's first.
                    .with_span_list(true)
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init(),
    };
    result.map_err(|_| AlreadyInitialized)
}
