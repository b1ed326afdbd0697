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
    /// Serve the demo page of browser mode at `/`. Default: on in the dev
    /// profile, off in prod.
    #[arg(long, env = "BFF_DEMO", action = clap::ArgAction::Set)]
    pub demo: Option<bool>,
}

impl BrowserArgs {
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
