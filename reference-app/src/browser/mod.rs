//! Browser mode: a cookie session instead of tokens for single-page apps on
//! this origin (`/bff/login`, `/bff/user`, `/bff/logout`, `/bff/logout-all`)
//! the remote-API proxy (`/bff/api/{name}/{path}`), and the demo page at `/`.
//!
//! The cookie itself, its CSRF rule and the session store are bff-auth's
//! (`JwtLayer::with_cookie_sessions`): every bearer route takes the cookie
//! too. This feature adds the routes that open and end cookie sessions and the
//! proxy, which turns the session into a token minted for one upstream.

pub mod config;
pub mod demo;
pub mod routes;
pub mod service;

pub use self::config::BrowserArgs;
pub use self::service::BrowserService;
