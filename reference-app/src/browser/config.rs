//! Browser mode's settings (the session lifetimes are with the other session
//! settings, in `auth`).

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
}
