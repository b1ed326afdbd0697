//! The social-login endpoints: start, callback and exchange, and the signed-in
//! user's identities.

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use axum::extract::{FromRef, Path, State};
use axum::response::{IntoResponse, NoContent, Response};
use bff_auth::oauth::CallbackParams;
use bff_cache::ratelimit::ClientIp;
use bff_core::Problem;
use bff_core::extract::{Json, Query};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::service::{BINDING_COOKIE, Landing, OAuthService, Started};
use crate::auth::TokenResponse;
use crate::auth::routes::cookie;
use crate::http::ApiResult;
use crate::http::docs::{api, bearer};
use crate::http::extract::{CallerId, ClientMeta};

/// How long the binding cookie lives: as long as a flow may take.
pub(crate) const BINDING_MAX_AGE: u64 = 600;

/// The endpoints a browser reaches without a token.
pub fn public<S>() -> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    OAuthService: FromRef<S>,
    ClientIp: FromRef<S>,
{
    ApiRouter::new()
        .api_route(
            "/api/v1/auth/oauth/{provider}/start",
            get_with(start, |op| {
                api(op).tag("auth")
                    .summary("Start a social login")
                    .description("302 to the provider (`google`, `facebook`, `vk`, `yandex`, `oidc`) with state, PKCE and (OpenID) nonce, and a `__Host-` cookie binding the flow to this browser.")
                    .response_with::<302, (), _>(|r| r.description("To the provider's authorization page."))
                    .response_with::<400, Problem, _>(|r| r.description("`redirect_uri` is not on the allow-list."))
                    .response_with::<404, Problem, _>(|r| r.description("Unknown or disabled provider."))
                    .response_with::<429, Problem, _>(|r| r.description("Too many flows from this address."))
                    .response_with::<503, Problem, _>(|r| r.description("The state store or the provider's discovery is unreachable."))
            }),
        )
        .api_route(
            "/api/v1/auth/oauth/{provider}/callback",
            get_with(callback, |op| {
                api(op).tag("auth")
                    .summary("Provider callback")
                    .description("After a valid `state`: 302 to the frontend's `redirect_uri` with `login_code`, `linked` or `error` (`access_denied`, `account_conflict`, `account_blocked`, `identity_in_use`, `provider_error`, `server_error`).")
                    .response_with::<302, (), _>(|r| r.description("To the frontend."))
                    .response_with::<400, Problem, _>(|r| r.description("Missing, unknown, expired, used or foreign `state`, or no binding cookie."))
                    .response_with::<404, Problem, _>(|r| r.description("Unknown or disabled provider."))
                    .response_with::<429, Problem, _>(|r| r.description("Too many callbacks from this address."))
                    .response_with::<503, Problem, _>(|r| r.description("The state store is unreachable."))
            }),
        )
        .api_route(
            "/api/v1/auth/oauth/exchange",
            post_with(exchange, |op| {
                api(op).tag("auth")
                    .summary("Trade a login code for tokens")
                    .response_with::<400, Problem, _>(|r| r.description("`code_invalid`: unknown, used or expired, or its session ended."))
                    .response_with::<429, Problem, _>(|r| r.description("Too many attempts from this address."))
            }),
        )
}

/// The signed-in user's identities; `layer` authenticates them.
pub fn protected<S>() -> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    OAuthService: FromRef<S>,
    ClientIp: FromRef<S>,
{
    ApiRouter::new()
        .api_route(
            "/api/v1/me/identities",
            get_with(identities, |op| {
                bearer(op.tag("me").summary("My linked sign-in providers"))
            }),
        )
        .api_route(
            "/api/v1/me/identities/{provider}",
            post_with(link, |op| {
                bearer(
                    op.tag("me")
                        .summary("Link a provider")
                        .description("Starts a flow that links the provider's identity to me; it ends at the callback, which redirects to `redirect_uri?linked=<provider>` (or `error=identity_in_use`).")
                        .response::<200, axum::Json<LinkStarted>>()
                        .response_with::<400, Problem, _>(|r| r.description("`redirect_uri` is not on the allow-list."))
                        .response_with::<404, Problem, _>(|r| r.description("Unknown or disabled provider.")),
                )
            })
            .delete_with(unlink, |op| {
                bearer(
                    op.tag("me")
                        .summary("Unlink a provider")
                        .response_with::<404, Problem, _>(|r| r.description("No identity of this provider is linked."))
                        .response_with::<409, Problem, _>(|r| r.description("It is the account's last way to sign in.")),
                )
            }),
        )
}

/// `start` query.
#[derive(Deserialize, JsonSchema)]
struct StartQuery {
    /// The frontend URL to come back to; must be on the allow-list.
    redirect_uri: String,
}

/// `exchange` body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ExchangeRequest {
    /// The `login_code` the callback gave the frontend.
    login_code: String,
}

/// `POST /me/identities/{provider}` body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    /// The frontend URL to come back to; must be on the allow-list.
    redirect_uri: String,
}

/// The link flow's start.
#[derive(Serialize, JsonSchema)]
struct LinkStarted {
    /// Where to send the browser.
    authorize_url: String,
}

/// What a provider sends back to the callback.
#[derive(Deserialize, JsonSchema)]
struct CallbackQuery {
    /// The authorization code.
    code: Option<String>,
    /// The `state` the flow started with.
    state: Option<String>,
    /// The provider's error code, e.g. `access_denied`.
    error: Option<String>,
    /// The provider's description of the error.
    error_description: Option<String>,
    /// VK ID: the device the code was issued to.
    device_id: Option<String>,
}

impl From<CallbackQuery> for CallbackParams {
    fn from(query: CallbackQuery) -> Self {
        Self {
            code: query.code,
            state: query.state,
            error: query.error,
            error_description: query.error_description,
            device_id: query.device_id,
        }
    }
}

/// The provider path segment.
#[derive(Deserialize, JsonSchema)]
struct ProviderPath {
    /// `google`, `facebook`, `vk`, `yandex` or `oidc`.
    provider: String,
}

/// One linked identity.
#[derive(Serialize, JsonSchema)]
struct IdentityView {
    provider: String,
    email: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    linked_at: OffsetDateTime,
}

/// The caller's identities.
#[derive(Serialize, JsonSchema)]
struct IdentityList {
    items: Vec<IdentityView>,
}

/// The binding cookie: host-only (`__Host-`, `Path=/`, no `Domain`), unseen
/// by scripts, sent back on the provider's top-level redirect (`Lax`).
pub(crate) fn binding_cookie(value: &str, max_age: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{BINDING_COOKIE}={value}; Max-Age={max_age}; Path=/; HttpOnly; Secure; SameSite=Lax"
    ))
    .ok()
}

/// A redirect that also sets or clears the binding cookie.
pub(crate) fn redirect(location: &str, cookie: Option<HeaderValue>) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn start(
    State(oauth): State<OAuthService>,
    Path(path): Path<ProviderPath>,
    Query(query): Query<StartQuery>,
    meta: ClientMeta,
) -> ApiResult<Response> {
    let Started {
        authorize_url,
        binding,
    } = oauth
        .start(&path.provider, &query.redirect_uri, None, &meta)
        .await?;
    Ok(redirect(
        authorize_url.as_str(),
        binding_cookie(&binding, BINDING_MAX_AGE),
    ))
}

async fn callback(
    State(oauth): State<OAuthService>,
    Path(path): Path<ProviderPath>,
    Query(params): Query<CallbackQuery>,
    headers: HeaderMap,
    meta: ClientMeta,
) -> ApiResult<Response> {
    let binding = cookie(&headers, BINDING_COOKIE);
    let landing = oauth
        .callback(&path.provider, params.into(), binding, meta)
        .await?;
    Ok(match landing {
        Landing::Frontend(location) => redirect(location.as_str(), binding_cookie("", 0)),
        Landing::Browser { location, session } => {
            let mut response = redirect(&location, binding_cookie("", 0));
            if let Some((session, value)) = session {
                let now_ms = OffsetDateTime::now_utc().unix_timestamp() * 1000;
                response.headers_mut().append(
                    header::SET_COOKIE,
                    bff_auth::layer::SessionCookie::set(&value, &session, now_ms),
                );
            }
            response
        }
    })
}

async fn exchange(
    State(oauth): State<OAuthService>,
    meta: ClientMeta,
    Json(body): Json<ExchangeRequest>,
) -> ApiResult<Json<TokenResponse>> {
    Ok(Json(oauth.exchange(&body.login_code, &meta).await?))
}

async fn identities(
    State(oauth): State<OAuthService>,
    CallerId(user_id): CallerId,
) -> ApiResult<Json<IdentityList>> {
    let items = oauth
        .identities(user_id)
        .await?
        .into_iter()
        .map(|identity| IdentityView {
            provider: identity.provider,
            email: identity.email,
            linked_at: identity.linked_at,
        })
        .collect();
    Ok(Json(IdentityList { items }))
}

async fn link(
    State(oauth): State<OAuthService>,
    CallerId(user_id): CallerId,
    Path(path): Path<ProviderPath>,
    meta: ClientMeta,
    Json(body): Json<LinkRequest>,
) -> ApiResult<Response> {
    let Started {
        authorize_url,
        binding,
    } = oauth
        .start(&path.provider, &body.redirect_uri, Some(user_id), &meta)
        .await?;
    let mut response = Json(LinkStarted {
        authorize_url: authorize_url.into(),
    })
    .into_response();
    if let Some(cookie) = binding_cookie(&binding, BINDING_MAX_AGE) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

async fn unlink(
    State(oauth): State<OAuthService>,
    CallerId(user_id): CallerId,
    Path(path): Path<ProviderPath>,
    meta: ClientMeta,
) -> ApiResult<NoContent> {
    oauth.unlink(user_id, &path.provider, &meta).await?;
    Ok(NoContent)
}
