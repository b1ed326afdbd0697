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

use tracing_subscriber::filter::LevelFilter;
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
    // Spans at `info` and above; of events, only warnings and errors become
    // span events (the per-request `info` lines would cost every trace an
    // event). No source locations or thread attributes: a span is found by
    // its name and fields, and each attribute costs every span.
    let layer = tracing.map(|tracing| {
        tracing_opentelemetry::layer()
            .with_tracer(tracing.tracer("bff"))
            .with_tracked_inactivity(false)
            .with_location(false)
            .with_threads(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
                metadata.is_span() || *metadata.level() <= tracing::Level::WARN
            }))
    });
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
    // `RUST_LOG` filters the log lines only; the extra layer (traces) takes
    // every span and event at `info` and above, whatever the log level.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry()
        .with(extra.map(|layer| layer.with_filter(LevelFilter::INFO)));
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
                    .with_span_list(false)
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init(),
    };
    result.map_err(|_| AlreadyInitialized)
}
