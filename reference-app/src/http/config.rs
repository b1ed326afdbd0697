//! The HTTP server's settings.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use http::HeaderValue;

use crate::limits::parse_cidr;

/// HTTP server settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "BFF_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Largest accepted request body, in bytes; larger bodies get 413.
    #[arg(long, env = "BFF_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,
    /// Longest a request may take before it is answered 503 (e.g. `30s`).
    #[arg(long, env = "BFF_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[arg(long, env = "BFF_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// How long a client may take to send a request's headers; on HTTP/1.1 it
    /// also bounds a kept-alive connection's silence between requests.
    #[arg(long, env = "BFF_HTTP_HEADER_READ_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub http_header_read_timeout: Duration,
    /// How long a connection with no request in flight and no traffic stays
    /// open.
    #[arg(long, env = "BFF_HTTP_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub http_idle_timeout: Duration,
    /// Connections served at once; more wait to be accepted. Keep the process's
    /// open-file limit above it.
    #[arg(long, env = "BFF_HTTP_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub http_max_connections: u32,
    /// Browser origins allowed to call the API (comma-separated, e.g.
    /// `https://app.example.com`); none by default, which disables CORS.
    #[arg(long, env = "BFF_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<HeaderValue>,
    /// Proxies (comma-separated addresses or CIDR networks, e.g. `10.0.0.0/8`)
    /// trusted to report the client's address in `X-Forwarded-For`; from
    /// anyone else the header is ignored. None by default.
    #[arg(long, env = "BFF_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_cidr)]
    pub trusted_proxies: Vec<String>,
    /// Whose W3C trace context (`traceparent`) a request continues, with
    /// tracing on: `proxies` (those of BFF_TRUSTED_PROXIES), `always` or
    /// `never`. A continued trace keeps the caller's sampling decision.
    #[arg(long, env = "BFF_TRACE_PARENT", value_enum, default_value_t = TraceParentFrom::Proxies)]
    pub trace_parent: TraceParentFrom,
    /// Puts the caller's user id on each authenticated request's span: the
    /// `user.id` attribute of its trace, and a field of its log lines. Off by
    /// default, since traces and logs then carry personal data.
    #[arg(long, env = "BFF_TRACE_USER_ID", default_value_t = false, action = clap::ArgAction::Set)]
    pub trace_user_id: bool,
    /// Serve `/metrics` on this address only (e.g. `127.0.0.1:9090`), not on
    /// the API's listener, so scrapers reach it and the public does not. None
    /// by default: `/metrics` is on the API's listener.
    #[arg(long, env = "BFF_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Time limit of each readiness check.
    #[arg(long, env = "BFF_READINESS_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub readiness_timeout: Duration,
    /// Whether readiness fails while NATS is unreachable. Off by default: the
    /// API keeps working through a NATS outage (the outbox holds messages until
    /// it is back), so NATS is reported as `degraded` without failing
    /// readiness, and an orchestrator does not pull every instance at once.
    #[arg(long, env = "BFF_READINESS_REQUIRES_NATS", default_value_t = false, action = clap::ArgAction::Set)]
    pub readiness_requires_nats: bool,
}

impl HttpArgs {
    /// The server's connection settings.
    pub fn server(&self) -> bff_core::server::ServerConfig {
        let mut server =
            bff_core::server::ServerConfig::default().with_grace(self.shutdown_timeout);
        server.header_read_timeout = self.http_header_read_timeout;
        server.idle_timeout = self.http_idle_timeout;
        server.max_connections = usize::try_from(self.http_max_connections).unwrap_or(usize::MAX);
        server
    }
}

fn parse_origin(value: &str) -> Result<HeaderValue, String> {
    let url =
        url::Url::parse(value.trim()).map_err(|e| format!("{value:?} is not an origin: {e}"))?;
    let origin = url.origin();
    if !origin.is_tuple() || !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{value:?} is not an http(s) origin"));
    }
    let serialized = origin.ascii_serialization();
    if serialized != value.trim().trim_end_matches('/') {
        return Err(format!(
            "{value:?} has a path, query or credentials; an origin is scheme://host[:port]"
        ));
    }
    HeaderValue::from_str(&serialized).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        assert_eq!(
            parse_origin("https://app.example.com").ok(),
            Some(HeaderValue::from_static("https://app.example.com"))
        );
        assert!(parse_origin("http://localhost:3000/").is_ok());
        for bad in [
            "*",
            "app.example.com",
            "https://app.example.com/path",
            "ftp://x.example",
            "https://u:p@x.example",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}

/// Whose trace context a request continues (`BFF_TRACE_PARENT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceParentFrom {
    /// The proxies of `BFF_TRUSTED_PROXIES` only (none when that is empty).
    Proxies,
    /// Every caller.
    Always,
    /// Nobody: every request starts a trace.
    Never,
}

impl HttpArgs {
    /// The stack's trace-context policy for these settings.
    pub fn trace_parent(&self) -> Result<bff_core::stack::TraceParent, String> {
        use bff_core::stack::TraceParent;
        Ok(match self.trace_parent {
            TraceParentFrom::Never => TraceParent::Ignore,
            TraceParentFrom::Always => TraceParent::Trust,
            TraceParentFrom::Proxies if self.trusted_proxies.is_empty() => TraceParent::Ignore,
            TraceParentFrom::Proxies => {
                let mut proxies = bff_cache::ratelimit::ClientIp::new();
                for cidr in &self.trusted_proxies {
                    proxies = proxies.trust_cidr(cidr)?;
                }
                TraceParent::TrustPeers(std::sync::Arc::new(move |ip| proxies.is_trusted(ip)))
            }
        })
    }
}
