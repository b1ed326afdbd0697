//! `/bff/*`: the browser's session endpoints and the remote-API proxy.

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use aide::transform::TransformOperation;
use axum::extract::{FromRef, Path, Request, State};
use axum::response::{IntoResponse, NoContent, Response};
use bff_auth::layer::{Principal, SessionCookie, csrf_passes};
use bff_auth::session::BrowserSession;
use bff_cache::ratelimit::ClientIp;
use bff_core::Problem;
use bff_core::extract::{Json, Query};
use bff_core::openapi::problem;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::service::{BrowserService, Opened};
use crate::auth::routes::cookie;
use crate::http::ApiResult;
use crate::http::docs::{api, bearer};
use crate::http::extract::ClientMeta;
use crate::identity::Identifier;
use crate::limits::login::{DEVICE_COOKIE, DEVICE_COOKIE_MAX_AGE};
use crate::oauth::OAuthService;
use crate::oauth::routes::{BINDING_MAX_AGE, binding_cookie, redirect};
use crate::users::UserView;

/// `/bff/login` (no session yet, so it checks the CSRF rule itself) and the
/// social login as a navigation, which its `state` protects.
pub fn public<S>() -> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    BrowserService: FromRef<S>,
    OAuthService: FromRef<S>,
    ClientIp: FromRef<S>,
{
    ApiRouter::new()
        .api_route(
            "/bff/login/{provider}",
            get_with(social_login, |op| {
                api(op.tag("browser")
                    .summary("Social login (browser mode)")
                    .description("A navigation: 302 to the provider; the callback sets the session cookie and redirects to `return_to` (a path on this origin, default `/`), or to `return_to?error=<code>`.")
                    .response_with::<302, (), _>(|r| r.description("To the provider."))
                    .response_with::<400, Problem, _>(|r| r.description("`return_to` is not a path on this origin."))
                    .response_with::<404, Problem, _>(|r| r.description("Unknown or disabled provider.")))
            }),
        )
        .api_route(
        "/bff/login",
        post_with(login, |op| {
            api(op.tag("browser")
                .summary("Log in (browser mode)")
                .description("Opens a cookie session (`__Host-Http-bff`); the same credential rules, answers and limits as `/api/v1/auth/login`. Needs `X-CSRF: 1`; a session cookie the request carries is ignored.")
                .response::<200, axum::Json<Whoami>>()
                .response_with::<401, Problem, _>(|r| r.description("`invalid_credentials`."))
                .response_with::<403, Problem, _>(|r| r.description("`csrf_failed`, or the account is blocked.")))
        }),
    )
}

/// The routes behind the authenticator (cookie or bearer).
pub fn protected<S>() -> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    BrowserService: FromRef<S>,
    ClientIp: FromRef<S>,
{
    ApiRouter::new()
        .api_route(
            "/bff/user",
            get_with(user, |op| {
                bearer(op.tag("browser").summary("Who am I (browser mode)").description(
                    "The account and the cookie session's times. Does not extend the idle timeout. 401 without a live cookie session.",
                ).response::<200, axum::Json<Whoami>>())
            }),
        )
        .api_route(
            "/bff/logout",
            post_with(logout, |op| {
                bearer(op.tag("browser").summary("Log out (browser mode)").description(
                    "Ends the session on every instance, expires the cookie and sends `Clear-Site-Data`.",
                ).response_with::<204, (), _>(|r| r.description("Signed out.")))
            }),
        )
        .api_route(
            "/bff/logout-all",
            post_with(logout_all, |op| {
                bearer(op.tag("browser").summary("Log out everywhere (browser mode)").description(
                    "Ends every session of the account, browser and token ones.",
                ).response_with::<204, (), _>(|r| r.description("Signed out everywhere.")))
            }),
        )
        .api_route(
            PROXY_ROUTE,
            get_with(proxy, proxy_docs)
                .post_with(proxy, proxy_docs)
                .put_with(proxy, proxy_docs)
                .patch_with(proxy, proxy_docs)
                .delete_with(proxy, proxy_docs),
        )
}

/// The proxy's route; the OpenAPI document names its rest-of-path parameter
/// `{path}` ([`document_proxy_path`]).
const PROXY_ROUTE: &str = "/bff/api/{name}/{*path}";

/// OpenAPI has no catch-all parameter: `{*path}` is documented as `{path}`.
pub fn document_proxy_path(api: &mut aide::openapi::OpenApi) {
    if let Some(paths) = api.paths.as_mut()
        && let Some(item) = paths.paths.shift_remove(PROXY_ROUTE)
    {
        paths
            .paths
            .insert("/bff/api/{name}/{path}".to_owned(), item);
    }
}

/// The proxy's path parameters, for the OpenAPI document only: the handler
/// reads the raw path, because a decoding extractor would hide `%2F`.
#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct ProxyPath {
    /// An upstream of `BFF_PROXY_UPSTREAMS`.
    name: String,
    /// The rest of the path, sent on as `{base}/{path}` (the query too).
    path: String,
}

fn proxy_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    let op = bearer(
        op.tag("browser")
            .summary("Remote API (browser mode)")
            .description("Forwards the request to `{base}/{path}` of the upstream `name` of `BFF_PROXY_UPSTREAMS`, with `Authorization: Bearer` set to a JWT minted for that upstream alone (`aud` = `name`, `sub`, `sid`, `role`, at most 60 s). Only `Accept`, `Accept-Language`, `Content-Type`, `If-Match`, `If-None-Match`, `X-Request-Id` and the trace context go upstream; the answer comes back less `Set-Cookie` and hop-by-hop headers, redirects unfollowed.")
            .input::<Path<ProxyPath>>()
            .response_with::<200, (), _>(|r| {
                r.description("The upstream's answer: its status, headers and body.")
            })
            .response_with::<404, Problem, _>(|r| r.description("No such upstream."))
            .response_with::<413, Problem, _>(|r| {
                r.description("The body is over `BFF_PROXY_BODY_LIMIT`.")
            })
            .response_with::<502, Problem, _>(|r| r.description("The upstream could not be reached.")),
    );
    problem(
        op,
        504,
        "The upstream did not answer within `BFF_PROXY_TIMEOUT`.",
    )
}

/// `GET /bff/login/{provider}` query.
#[derive(Deserialize, JsonSchema)]
struct SocialQuery {
    /// Where to land after signing in: a path on this origin (default `/`).
    return_to: Option<String>,
}

/// The provider path segment.
#[derive(Deserialize, JsonSchema)]
struct ProviderPath {
    /// `google`, `facebook`, `vk`, `yandex` or `oidc`.
    provider: String,
}

async fn social_login(
    State(oauth): State<OAuthService>,
    Path(path): Path<ProviderPath>,
    Query(query): Query<SocialQuery>,
    meta: ClientMeta,
) -> ApiResult<Response> {
    let started = oauth
        .start_browser(
            &path.provider,
            query.return_to.as_deref().unwrap_or("/"),
            &meta,
        )
        .await?;
    Ok(redirect(
        started.authorize_url.as_str(),
        binding_cookie(&started.binding, BINDING_MAX_AGE),
    ))
}

/// `POST /bff/login` body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    /// Email address or phone number (E.164).
    identifier: String,
    /// The password.
    password: String,
}

/// A browser session's times.
#[derive(Serialize, JsonSchema)]
struct SessionView {
    /// Session id.
    id: String,
    /// Login time (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    created_at: OffsetDateTime,
    /// The absolute end (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    expires_at: OffsetDateTime,
    /// When the session ends without activity (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    idle_expires_at: OffsetDateTime,
}

fn at(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl From<&BrowserSession> for SessionView {
    fn from(session: &BrowserSession) -> Self {
        Self {
            id: session.session.id.clone(),
            created_at: at(session.session.created_at_ms),
            expires_at: at(session.expires_at_ms),
            idle_expires_at: at(session.idle_expires_at_ms),
        }
    }
}

/// Who is signed in, and the session.
#[derive(Serialize, JsonSchema)]
struct Whoami {
    user: UserView,
    session: SessionView,
}

fn csrf_failed() -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "csrf_failed", "CSRF check failed")
        .with_detail("Browser requests must carry `X-CSRF: 1` and come from this origin.")
}

/// `no-store`: session answers are never cached.
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn login(
    State(browser): State<BrowserService>,
    meta: ClientMeta,
    headers: HeaderMap,
    Json(body): Json<LoginRequest>,
) -> ApiResult<Response> {
    if !csrf_passes(&headers) {
        return Err(csrf_failed().into());
    }
    let identifier = Identifier::parse(&body.identifier)
        .map_err(|e| Problem::invalid_field("identifier", e.to_string()))?;
    let device = cookie(&headers, DEVICE_COOKIE);
    let Opened {
        user,
        session,
        cookie,
        device,
    } = browser
        .login(&identifier, SecretString::from(body.password), meta, device)
        .await?;
    let now_ms = OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let mut response = Json(Whoami {
        user: user.view(),
        session: SessionView::from(&session),
    })
    .into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        SessionCookie::set(&cookie, &session, now_ms),
    );
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{DEVICE_COOKIE}={device}; Max-Age={}; Path=/; HttpOnly; Secure; SameSite=Strict",
        DEVICE_COOKIE_MAX_AGE.as_secs()
    )) {
        headers.append(header::SET_COOKIE, value);
    }
    Ok(no_store(response))
}

async fn user(State(browser): State<BrowserService>, principal: Principal) -> ApiResult<Response> {
    let (user, session) = browser
        .whoami(&principal)
        .await?
        .ok_or_else(Problem::unauthorized)?;
    Ok(no_store(
        Json(Whoami {
            user: user.view(),
            session: SessionView::from(&session),
        })
        .into_response(),
    ))
}

/// 204 that expires the cookie and clears what the site stored.
fn signed_out() -> Response {
    let mut response = NoContent.into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, SessionCookie::clear());
    headers.insert(
        "clear-site-data",
        HeaderValue::from_static("\"cache\", \"cookies\", \"storage\""),
    );
    no_store(response)
}

/// The routes that end browser sessions are for cookie callers; a bearer
/// caller has `/api/v1/auth/logout` and `logout-all`.
fn cookie_caller(principal: &Principal) -> Result<(), Problem> {
    principal
        .credential
        .browser_session()
        .map(drop)
        .ok_or_else(Problem::unauthorized)
}

async fn logout(
    State(browser): State<BrowserService>,
    principal: Principal,
) -> ApiResult<Response> {
    cookie_caller(&principal)?;
    browser.logout(&principal).await?;
    Ok(signed_out())
}

async fn logout_all(
    State(browser): State<BrowserService>,
    principal: Principal,
) -> ApiResult<Response> {
    cookie_caller(&principal)?;
    browser.logout_all(&principal).await?;
    Ok(signed_out())
}

/// `/bff/api/{name}/{path}`: the name and the rest of the path are taken from
/// the raw URI (still percent-encoded: an encoded `/` must be seen to be
/// refused, which a decoding extractor would hide).
async fn proxy(
    State(browser): State<BrowserService>,
    principal: Principal,
    request: Request,
) -> Response {
    let raw = request.uri().path().to_owned();
    let Some((name, path)) = raw
        .strip_prefix("/bff/api/")
        .and_then(|rest| rest.split_once('/'))
    else {
        return Problem::not_found().into_response();
    };
    match browser.forward(&principal, name, path, request).await {
        Ok(response) => no_store(response.map(axum::body::Body::new)),
        Err(error) => {
            if error.status().is_server_error() {
                tracing::warn!(upstream = name, error = %bff_core::problem::ErrorChain(&error), "proxied call failed");
            }
            Problem::new(error.status(), error.code(), error.title())
                .with_detail(error.to_string())
                .into_response()
        }
    }
}
