//! Browser mode's settings (the session lifetimes are with the other session
//! settings, in `auth`).

use bff_aggregate::proxy::{Limits, Proxy, ProxyConfigError, ProxyUpstreams};
use clap::Args;

/// Remote APIs reachable through `/bff/api/{name}/{path}`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Browser mode")]
pub struct BrowserArgs {
    /// Upstreams of the proxy, `name=http(s)://host:port/base` (comma-separated):
    /// `/bff/api/{name}/{path}` goes to `{base}/{path}` with a token minted
    /// for `name`. None by default.
    #[arg(long, env = "BFF_PROXY_UPSTREAMS", default_value = "")]
    pub proxy_upstreams: String,
    /// How long an upstream may take to connect and answer with a response's
    /// head; past it the browser gets a 504.
    #[arg(long, env = "BFF_PROXY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub proxy_timeout: std::time::Duration,
    /// The largest request body sent on to an upstream, in bytes; a larger
    /// one is a 413 and never reaches it.
    #[arg(long, env = "BFF_PROXY_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub proxy_body_limit: usize,
    /// Serve the demo page of browser mode at `/`. Default: on in the dev
    /// profile, off in prod.
    #[arg(long, env = "BFF_DEMO", action = clap::ArgAction::Set)]
    pub demo: Option<bool>,
}

impl BrowserArgs {
    /// The proxy of `BFF_PROXY_UPSTREAMS`, every upstream with the timeout
    /// and body limit above.
    pub fn proxy(&self) -> Result<Proxy, ProxyConfigError> {
        let limits = Limits::default()
            .timeout(self.proxy_timeout)
            .request_body(self.proxy_body_limit);
        let upstreams = ProxyUpstreams::parse(&self.proxy_upstreams)?.with_default_limits(limits);
        Ok(Proxy::new(upstreams))
    }

    /// Whether the demo page is served under `profile`.
    pub fn demo(&self, profile: crate::config::Profile) -> bool {
        self.demo.unwrap_or(profile == crate::config::Profile::Dev)
    }

    /// The first upstream's name, for the demo's sample call.
    pub fn first_upstream(&self) -> Option<&str> {
        self.proxy_upstreams
            .split(',')
            .find_map(|entry| entry.split_once('=').map(|(name, _)| name.trim()))
            .filter(|name| !name.is_empty())
    }
}
