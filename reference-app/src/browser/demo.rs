//! The demo page at `/`: browser mode end to end (password and social login,
//! who am I, the dashboard through the cookie, a proxied call, logout), from
//! assets embedded in the binary. It loads nothing from anywhere else, and its
//! Content-Security-Policy allows no inline script.

use std::sync::Arc;

use aide::axum::ApiRouter;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bff_auth::oauth::ProviderKind;
use http::{HeaderValue, header};

const INDEX: &str = include_str!("demo/index.html");
const SCRIPT: &str = include_str!("demo/demo.js");
const STYLE: &str = include_str!("demo/demo.css");

/// The page's policy: its own script and style only, no framing, forms and
/// requests to this origin alone.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The page, rendered once with the enabled providers' buttons and a sample
/// proxied path.
#[derive(Debug, Clone)]
pub struct Demo {
    index: Arc<str>,
}

impl Demo {
    /// The page for `providers`, suggesting a call to the upstream `proxy`.
    pub fn new(providers: &[ProviderKind], proxy: Option<&str>) -> Self {
        let buttons: String = providers
            .iter()
            .map(|kind| {
                format!(
                    r#"<a class="provider" href="/bff/login/{name}?return_to=/">Sign in with {label}</a>"#,
                    name = kind.as_str(),
                    label = label(*kind)
                )
            })
            .collect();
        let path = proxy.map_or_else(
            || "/bff/api/".to_owned(),
            |name| format!("/bff/api/{name}/"),
        );
        Self {
            index: INDEX
                .replace("{{PROVIDERS}}", &buttons)
                .replace("{{PROXY_PATH}}", &path)
                .into(),
        }
    }

    /// `GET /`, `/demo.js` and `/demo.css`.
    pub fn routes<S>(self) -> ApiRouter<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let index = self.index;
        ApiRouter::new()
            .route(
                "/",
                get(move || {
                    let index = Arc::clone(&index);
                    async move { page(&index) }
                }),
            )
            .route(
                "/demo.js",
                get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
            )
            .route(
                "/demo.css",
                get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
            )
    }
}

fn label(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Google => "Google",
        ProviderKind::Facebook => "Facebook",
        ProviderKind::Vk => "VK ID",
        ProviderKind::Yandex => "Yandex ID",
        _ => "SSO",
    }
}

fn page(index: &str) -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        index.to_owned(),
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    response
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
