//! The token and session endpoints: login, refresh, the JWKS, logout,
//! sessions and password change.

use aide::axum::ApiRouter;
use aide::axum::routing::{delete_with, get_with, post_with};
use axum::extract::{FromRef, Path, State};
use axum::response::{IntoResponse, NoContent, Response};
use bff_auth::layer::Principal;
use bff_auth::session::Session;
use bff_cache::ratelimit::ClientIp;
use bff_core::Problem;
use bff_core::extract::Json;
use http::{HeaderMap, HeaderValue};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{AuthError, AuthService, TokenResponse};
use crate::http::ApiResult;
use crate::http::docs::{api, bearer};
use crate::http::extract::{CallerId, ClientMeta, RequestLocale, path_id};
use crate::http::validation::IDENTIFIER;
use crate::identity::{Identifier, NewPassword};
use crate::limits::login::{DEVICE_COOKIE, DEVICE_COOKIE_MAX_AGE};

/// Endpoints that need no token: login, refresh and the JWKS.
pub fn public<S>() -> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    AuthService: FromRef<S>,
    ClientIp: FromRef<S>,
{
    ApiRouter::new()
        .api_route(
            "/api/v1/auth/login",
            post_with(login, |op| {
                api(op).tag("auth")
                    .summary("Log in")
                    .description("Unknown identifiers and wrong passwords answer identically.")
                    .response_with::<401, Problem, _>(|r| r.description("`invalid_credentials`."))
                    .response_with::<403, Problem, _>(|r| r.description("The account is blocked."))
                    .response_with::<422, Problem, _>(|r| r.description("The identifier is neither an email nor a phone number."))
                    .response_with::<429, Problem, _>(|r| r.description("`rate_limited`: too many attempts from this address or for this identifier; see `Retry-After`."))
            }),
        )
        .api_route(
            "/api/v1/auth/refresh",
            post_with(refresh, |op| {
                api(op).tag("auth")
                    .summary("Refresh the session")
                    .description("Rotates the refresh token. A token already rotated (outside a short grace window for concurrent refreshes) ends the whole session.")
                    .response_with::<401, Problem, _>(|r| r.description("`refresh_token_reused`, or an invalid or expired token."))
            }),
        )
        .api_route(
            "/.well-known/jwks.json",
            get_with(jwks, |op| {
                api(op).tag("auth")
                    .summary("Token verification keys")
                    .description("The public keys (RFC 7517 JWKS) that verify access tokens.")
                    .response::<200, axum::Json<serde_json::Value>>()
            }),
        )
}

/// Endpoints that need a valid access token; `layer` authenticates them.
pub fn protected<S>() -> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    AuthService: FromRef<S>,
    ClientIp: FromRef<S>,
{
    ApiRouter::new()
        .api_route(
            "/api/v1/auth/logout",
            post_with(logout, |op| {
                bearer(op.tag("auth").summary("Log out (this session)"))
            }),
        )
        .api_route(
            "/api/v1/auth/logout-all",
            post_with(logout_all, |op| {
                bearer(op.tag("auth").summary("Log out everywhere"))
            }),
        )
        .api_route(
            "/api/v1/auth/sessions",
            get_with(sessions, |op| {
                bearer(op.tag("auth").summary("List my sessions"))
            }),
        )
        .api_route(
            "/api/v1/auth/sessions/{id}",
            delete_with(end_session, |op| {
                bearer(op.tag("auth").summary("End one of my sessions"))
                    .response_with::<404, Problem, _>(|r| {
                        r.description("No such session of yours.")
                    })
            }),
        )
        .api_route(
            "/api/v1/auth/update-password",
            post_with(update_password, |op| {
                bearer(
                    op.tag("auth")
                        .summary("Change my password")
                        .description("Ends every other session."),
                )
                .response_with::<403, Problem, _>(|r| r.description("`user_id` is not the caller."))
                .response_with::<422, Problem, _>(|r| {
                    r.description("The new password does not meet the policy.")
                })
            }),
        )
}

/// `POST /auth/login` body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    /// Email address or phone number (E.164).
    #[schemars(length(max = 320), regex(pattern = IDENTIFIER))]
    identifier: String,
    /// The password.
    password: String,
}

/// `POST /auth/refresh` body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    /// The refresh token of the last token response.
    refresh_token: String,
}

async fn login(
    State(auth): State<AuthService>,
    meta: ClientMeta,
    headers: HeaderMap,
    Json(body): Json<LoginRequest>,
) -> ApiResult<WithDeviceCookie<TokenResponse>> {
    let identifier = Identifier::parse(&body.identifier)
        .map_err(|e| Problem::invalid_field("identifier", e.to_string()))?;
    let password = SecretString::from(body.password);
    let device = cookie(&headers, DEVICE_COOKIE);
    let logged_in = auth.login(&identifier, password, meta, device).await?;
    Ok(WithDeviceCookie(logged_in.device, Json(logged_in.tokens)))
}

/// The value of the cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// A JSON answer that also sets the device cookie: only the auth endpoints
/// see it (`Path`), scripts cannot read it (`HttpOnly`), and it never
/// travels in plain text or with cross-site requests.
struct WithDeviceCookie<T>(String, Json<T>);

impl<T: Serialize> IntoResponse for WithDeviceCookie<T> {
    fn into_response(self) -> Response {
        let cookie = format!(
            "{DEVICE_COOKIE}={}; Max-Age={}; Path=/api/v1/auth; HttpOnly; Secure; SameSite=Strict",
            self.0,
            DEVICE_COOKIE_MAX_AGE.as_secs()
        );
        let mut response = self.1.into_response();
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response
                .headers_mut()
                .append(http::header::SET_COOKIE, value);
        }
        response
    }
}

impl<T: JsonSchema> aide::OperationOutput for WithDeviceCookie<T> {
    type Inner = T;

    fn operation_response(
        ctx: &mut aide::generate::GenContext,
        operation: &mut aide::openapi::Operation,
    ) -> Option<aide::openapi::Response> {
        Json::<T>::operation_response(ctx, operation)
    }

    fn inferred_responses(
        ctx: &mut aide::generate::GenContext,
        operation: &mut aide::openapi::Operation,
    ) -> Vec<(Option<aide::openapi::StatusCode>, aide::openapi::Response)> {
        Json::<T>::inferred_responses(ctx, operation)
    }
}

async fn refresh(
    State(auth): State<AuthService>,
    meta: ClientMeta,
    Json(body): Json<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    Ok(Json(
        auth.refresh(body.refresh_token, meta.ip.as_deref()).await?,
    ))
}

async fn jwks(State(auth): State<AuthService>) -> Response {
    let (keys, max_age) = auth.jwks();
    let cache = format!("public, max-age={}", max_age.as_secs());
    let mut response = axum::Json(keys).into_response();
    if let Ok(value) = HeaderValue::from_str(&cache) {
        response
            .headers_mut()
            .insert(http::header::CACHE_CONTROL, value);
    }
    response
}

async fn logout(State(auth): State<AuthService>, principal: Principal) -> ApiResult<NoContent> {
    auth.logout(&principal).await?;
    Ok(NoContent)
}

async fn logout_all(State(auth): State<AuthService>, principal: Principal) -> ApiResult<NoContent> {
    auth.logout_all(&principal).await?;
    Ok(NoContent)
}

/// One of the caller's sessions.
#[derive(Debug, Serialize, JsonSchema)]
struct SessionView {
    /// Session id.
    id: String,
    /// Login time (RFC 3339).
    created_at: String,
    /// Last refresh (RFC 3339).
    last_used_at: String,
    /// `User-Agent` at login.
    user_agent: Option<String>,
    /// IP address at the last use.
    ip: Option<String>,
    /// Whether this is the session of the request's token.
    current: bool,
}

/// The caller's sessions.
#[derive(Debug, Serialize, JsonSchema)]
struct SessionList {
    /// Newest first.
    items: Vec<SessionView>,
}

fn rfc3339_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn session_view(session: Session, current: &str) -> SessionView {
    SessionView {
        current: session.id == current,
        created_at: rfc3339_ms(session.created_at_ms),
        last_used_at: rfc3339_ms(session.last_used_at_ms),
        id: session.id,
        user_agent: session.user_agent,
        ip: session.ip,
    }
}

async fn sessions(
    State(auth): State<AuthService>,
    principal: Principal,
) -> ApiResult<Json<SessionList>> {
    let sessions = auth.sessions(&principal).await?;
    Ok(Json(SessionList {
        items: sessions
            .into_iter()
            .map(|s| session_view(s, &principal.session_id))
            .collect(),
    }))
}

/// Path of one session.
#[derive(Debug, Deserialize, JsonSchema)]
struct SessionPath {
    /// Session id.
    #[schemars(with = "Uuid")]
    id: String,
}

async fn end_session(
    State(auth): State<AuthService>,
    principal: Principal,
    Path(path): Path<SessionPath>,
) -> ApiResult<NoContent> {
    // A malformed id names no session, the caller's or anyone's.
    let id = path_id(&path.id)?;
    auth.end_session(&principal, id).await?;
    Ok(NoContent)
}

/// `POST /auth/update-password` body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdatePasswordRequest {
    /// Must be the caller's id.
    user_id: Uuid,
    /// The current password.
    old_password: String,
    /// The new password: 8 to 128 characters, not a common one.
    #[schemars(length(min = 8, max = 128))]
    new_password: String,
}

async fn update_password(
    State(auth): State<AuthService>,
    principal: Principal,
    meta: ClientMeta,
    RequestLocale(locale): RequestLocale,
    Json(body): Json<UpdatePasswordRequest>,
) -> ApiResult<NoContent> {
    if body.user_id.to_string() != principal.user_id {
        return Err(AuthError::NotOwnPassword.into());
    }
    let new_password = NewPassword::parse(&body.new_password)
        .map_err(|e| Problem::invalid_field("new_password", e.to_string()))?;
    let caller = CallerId::of(&principal)?;
    auth.update_password(
        &principal,
        caller.0,
        body.old_password.into(),
        new_password,
        locale,
        meta,
    )
    .await?;
    Ok(NoContent)
}
