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
    // Spans at `info` and above; of events, only warnings and errors become
    // span events (the per-request `info` lines would cost every trace an
    // event). No source locations, targets or thread attributes: a span is
    // found by its name and fields, and each attribute costs every span. No
    // OpenTelemetry context activation on every entry (each poll of an
    // instrumented future): propagation here reads the `tracing` span's
    // context (`otel::inject`), not OpenTelemetry's current context.
    let layer = tracing.map(|tracing| {
        tracing_opentelemetry::layer()
            .with_tracer(tracing.tracer("bff"))
            .with_tracked_inactivity(false)
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_context_activation(false)
            .with_filter(
                tracing_subscriber::filter::filter_fn(|metadata| {
                    let level = *metadata.level();
                    // aide spans every step of building the OpenAPI document
                    // at start: a thousand one-span traces, meaning nothing.
                    !metadata.target().starts_with("aide")
                        && (level <= tracing::Level::WARN
                            || (metadata.is_span() && level <= tracing::Level::INFO))
                })
                // Without a hint, every `debug!` and `trace!` of every crate
                // would be asked about at each call instead of disabled once.
                .with_max_level_hint(tracing_subscriber::filter::LevelFilter::INFO),
            )
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
