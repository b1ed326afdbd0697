//! The route tree: which routes are public, which need a token, which are
//! limited and cached how, and the OpenAPI document that describes them.

use std::sync::Arc;
use std::time::Duration;

use aide::axum::ApiRouter;
use aide::openapi::{Info, OpenApi, SecurityScheme, Tag};
use axum::Router;
use bff_cache::ratelimit::UserId;
use bff_cache::response::CacheLayer;
use bff_core::health::Readiness;
use bff_core::openapi::ApiDocs;
use bff_core::stack::{self, HttpConfig};
use bff_core::{Problem, metrics, openapi};

use super::AppState;
use crate::records::{Address, WishlistItem};
use crate::users::ViewCache;

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsOn {
    /// With the API.
    Api,
    /// On a listener of its own ([`metrics_app`]).
    OwnListener,
}

/// The whole HTTP application: every route, the OpenAPI document and the stack.
///
/// Tests call it directly and drive it with `tower::ServiceExt::oneshot`.
pub fn app(
    state: AppState,
    readiness: Readiness,
    http: &HttpConfig,
    metrics_on: MetricsOn,
    demo: Option<crate::browser::demo::Demo>,
) -> Result<Router, openapi::PublishError> {
    let docs = ApiDocs::new();
    let mut api = api_info();
    let router = ApiRouter::new()
        .nest(
            "/api/v1",
            crate::currencies::routes::routes()
                .layer(currencies_cache(&state))
                // Before the cache keys the request: one entry per page.
                .layer(axum::middleware::from_fn(
                    crate::http::canonical::page_query,
                )),
        )
        .merge(crate::auth::routes::public())
        .merge(crate::auth::codes::routes::routes())
        .merge(crate::oauth::routes::public())
        .merge(crate::browser::routes::public())
        .merge(
            crate::auth::routes::protected()
                .merge(crate::users::routes::me().layer(me_cache(&state)))
                .merge(crate::users::routes::admin())
                .merge(crate::audit::routes::routes())
                .merge(crate::oauth::routes::protected())
                .merge(crate::browser::routes::protected())
                .merge(crate::records::routes::routes::<Address, _>())
                .merge(crate::records::routes::routes::<WishlistItem, _>())
                .merge(crate::wallets::routes::routes())
                .merge(crate::orders::routes::routes())
                .merge(dashboard(&state))
                // Inside the JWT layer, which puts the caller there.
                .layer(state.limits.per_user_layer())
                .layer(state.jwt.clone()),
        )
        // The API, not the probes and documents below.
        .layer(state.limits.per_ip_layer())
        .merge(bff_core::health::routes(readiness))
        .merge(match metrics_on {
            MetricsOn::Api => metrics::routes(recorder()),
            MetricsOn::OwnListener => ApiRouter::new(),
        })
        .merge(openapi::routes(docs.clone()))
        .merge(demo.map_or_else(ApiRouter::new, crate::browser::demo::Demo::routes))
        .fallback(stack::not_found)
        // Outside the authenticator, so `/bff/user` can tell it not to touch.
        .layer(axum::middleware::from_fn(browser_paths))
        // Any route can also answer 413, 429, 500 or 503 from the stack, so every
        // operation documents problem+json as its default response.
        .finish_api_with(&mut api, |api| {
            api.default_response_with::<Problem, _>(|r| {
                r.description("An error, as RFC 9457 problem details.")
            })
            .security_scheme(
                "bearer",
                SecurityScheme::Http {
                    scheme: "bearer".to_owned(),
                    bearer_format: Some("JWT".to_owned()),
                    description: Some("An access token from login or refresh.".to_owned()),
                    extensions: Default::default(),
                },
            )
            .security_scheme(
                "cookie",
                SecurityScheme::ApiKey {
                    location: aide::openapi::ApiKeyLocation::Cookie,
                    name: bff_auth::layer::SessionCookie::NAME.to_owned(),
                    description: Some("Browser mode: the session cookie from `/bff/login`. Every cookie request carries `X-CSRF: 1`.".to_owned()),
                    extensions: Default::default(),
                },
            )
        })
        .with_state(state);
    crate::browser::routes::document_proxy_path(&mut api);
    docs.publish(&api)?;
    Ok(stack::apply(router, http))
}

/// What `/bff/*` needs around the authenticator: `GET /bff/user` reads the
/// session without extending its idle timeout, and no `/bff/*` answer
/// (refusals included) is cached.
async fn browser_paths(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = request.uri().path();
    let browser = path.starts_with("/bff/");
    if path == "/bff/user" {
        request
            .extensions_mut()
            .insert(bff_auth::session::Touch::Keep);
    }
    let mut response = next.run(request).await;
    if browser {
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
    }
    response
}

/// `/metrics` alone, for a listener of its own.
pub fn metrics_app(http: &HttpConfig) -> Router {
    let router: Router = metrics::routes(recorder())
        .fallback(stack::not_found)
        .into();
    stack::apply(router, http)
}

/// Currencies are public reference data: shared by every caller, 5 minutes.
fn currencies_cache(state: &AppState) -> CacheLayer {
    CacheLayer::new("currencies", Arc::clone(&state.cache))
        .ttl(Duration::from_secs(300))
        .tags(|_, _| vec!["currencies".to_owned()])
}

/// `/me` per user for 30 s; every change to the account invalidates it.
fn me_cache(state: &AppState) -> CacheLayer {
    CacheLayer::new("me", Arc::clone(&state.cache))
        .ttl(Duration::from_secs(30))
        .per_user(UserId)
        .tags(|_, user| user.map(ViewCache::tag).into_iter().collect())
}

/// The dashboard, cached per user when a TTL is set; the tag `user:<id>` lets
/// every write that changes a part of it invalidate it at once.
fn dashboard(state: &AppState) -> ApiRouter<AppState> {
    let ttl = state.dashboard_settings().cache_ttl;
    let routes = crate::dashboard::routes::routes();
    if ttl.is_zero() {
        return routes;
    }
    routes.layer(
        CacheLayer::new("dashboard", Arc::clone(&state.cache))
            .ttl(ttl)
            // A partial dashboard is not stored, so a duplicate request would
            // wait for nothing: it never queues behind another's deadline.
            .lock_wait(Duration::ZERO)
            .per_user(UserId)
            .tags(|_, user| user.map(ViewCache::tag).into_iter().collect()),
    )
}

/// The Prometheus recorder, with the help texts of the aggregate's metrics.
fn recorder() -> metrics::PrometheusHandle {
    let handle = metrics::install_recorder();
    bff_aggregate::describe_metrics();
    handle
}

/// The document's title, description and tags.
fn api_info() -> OpenApi {
    let tag = |name: &str, description: &str| Tag {
        name: name.to_owned(),
        description: Some(description.to_owned()),
        ..Tag::default()
    };
    OpenApi {
        info: Info {
            title: "BFF reference app".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: Some(
                "The reference Backend-For-Frontend. Errors are RFC 9457 problem details \
                 (`application/problem+json`) with a stable `code`; every response carries `X-Request-Id`."
                    .to_owned(),
            ),
            ..Info::default()
        },
        tags: vec![
            tag("auth", "Login, sessions and tokens."),
            tag("users", "Profiles."),
            tag("admin", "Users, roles and the audit log (managers and admins)."),
            tag("address", "My addresses."),
            tag("wishlist", "My wishlist."),
            tag("money", "Wallets, transfers and deposits."),
            tag("orders", "My orders, kept by the orders service (gRPC)."),
            tag("currencies", "ISO 4217 reference data."),
            tag("operations", "Health, metrics and documentation."),
        ],
        ..OpenApi::default()
    }
}
