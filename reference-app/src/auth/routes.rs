//! The auth endpoints and `/me`.

use aide::axum::ApiRouter;
use aide::axum::routing::{delete_with, get_with, post_with};
use aide::transform::TransformOperation;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, NoContent, Response};
use bff_auth::layer::Principal;
use bff_auth::session::{NewSession, Refresh, RefreshToken, Session, SessionStore};
use bff_core::Problem;
use bff_core::extract::Json;
use http::{HeaderValue, StatusCode};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::codes::{RequestLocale, end_sessions_after_change, password_changed};
use crate::error::{ApiError, ApiResult};
use crate::identity::{Identifier, NewPassword};
use crate::ids::{caller_id, path_id};
use crate::startup::AppState;
use crate::users::{self, UserRecord, UserView};
use crate::validation::text;

/// Endpoints that need no token: login, refresh and the JWKS.
pub fn public_routes() -> ApiRouter<AppState> {
    ApiRouter::new()
        .api_route(
            "/api/v1/auth/login",
            post_with(login, |op| {
                op.tag("auth")
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
                op.tag("auth")
                    .summary("Refresh the session")
                    .description("Rotates the refresh token. A token already rotated (outside a short grace window for concurrent refreshes) ends the whole session.")
                    .response_with::<401, Problem, _>(|r| r.description("`refresh_token_reused`, or an invalid or expired token."))
            }),
        )
        .api_route(
            "/.well-known/jwks.json",
            get_with(jwks, |op| {
                op.tag("auth")
                    .summary("Token verification keys")
                    .description("The public keys (RFC 7517 JWKS) that verify access tokens.")
                    .response::<200, axum::Json<serde_json::Value>>()
            }),
        )
}

/// Endpoints that need a valid access token; `layer` authenticates them.
pub fn protected_routes() -> ApiRouter<AppState> {
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

/// `/me`, apart from the other protected routes so that the per-user response
/// cache covers it and nothing else.
pub fn me_routes() -> ApiRouter<AppState> {
    ApiRouter::new().api_route(
        "/api/v1/me",
        get_with(me, |op| {
            bearer(op.tag("users").summary("My profile").description(
                "Cached per user for a short time (`X-Cache`); every change to the account invalidates it.",
            ))
        })
        .patch_with(update_me, |op| {
            bearer(op.tag("users").summary("Update my profile"))
        }),
    )
}

/// Marks an operation as needing a bearer token and documents its 401.
pub(crate) fn bearer(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.security_requirement("bearer")
        .response_with::<401, Problem, _>(|r| {
            r.description("Missing, invalid, expired or revoked access token.")
        })
}

/// Where a request comes from, for session metadata and per-client limits.
pub(crate) struct ClientMeta {
    pub(crate) ip: Option<String>,
    /// The key of per-client limits (the IPv6 /64; see `bff_cache::ratelimit::ip_key`).
    pub(crate) client_key: Option<String>,
    pub(crate) user_agent: Option<String>,
}

impl FromRequestParts<AppState> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The peer, or the client a trusted proxy reports (BFF_TRUSTED_PROXIES).
        let client = state
            .limits
            .client_ip
            .client(&bff_cache::ratelimit::RequestInfo {
                method: &parts.method,
                uri: &parts.uri,
                headers: &parts.headers,
                extensions: &parts.extensions,
            });
        let ip = client.map(|ip| ip.to_string());
        let client_key = client.map(bff_cache::ratelimit::ip_key);
        let user_agent = parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().filter(|c| !c.is_control()).take(256).collect());
        Ok(Self {
            ip,
            client_key,
            user_agent,
        })
    }
}

impl aide::operation::OperationInput for ClientMeta {}

/// `POST /auth/login` body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    /// Email address or phone number (E.164).
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

/// A token response.
#[derive(Serialize, JsonSchema)]
pub(crate) struct TokenResponse {
    /// The access token (a JWT), for `Authorization: Bearer`.
    access_token: String,
    /// The refresh token: opaque, single use.
    refresh_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    /// The user.
    user: UserView,
}

fn invalid_credentials() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "Invalid credentials",
    )
    .with_detail("The identifier or the password is wrong.")
}

pub(crate) fn token_response(
    state: &AppState,
    user: &UserRecord,
    session_id: &str,
    refresh: &RefreshToken,
) -> ApiResult<TokenResponse> {
    let issued = state
        .auth
        .issuer
        .issue(&user.id.to_string(), session_id, user.role().as_str())
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(TokenResponse {
        access_token: issued.access_token,
        refresh_token: refresh.expose().to_owned(),
        token_type: "Bearer",
        expires_in: issued.expires_in,
        user: user.view(),
    })
}

async fn login(
    State(state): State<AppState>,
    meta: ClientMeta,
    Json(body): Json<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let identifier = Identifier::parse(&body.identifier)
        .map_err(|e| Problem::invalid_field("identifier", e.to_string()))?;
    // Known and unknown identifiers are counted alike, before any lookup.
    state
        .limits
        .login(meta.client_key.as_deref(), identifier.as_str())
        .await?;
    let user = users::find_by_identifier(&state.db, &identifier).await?;
    let password = SecretString::from(body.password);
    // An unknown identifier is checked against a dummy hash: same work, same answer.
    let verification = state
        .auth
        .hasher
        .verify(
            password.clone(),
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await
        .map_err(ApiError::internal)?;
    let Some(user) = user.filter(|_| verification.matches) else {
        return Err(invalid_credentials().into());
    };
    if user.blocked_at.is_some() {
        return Err(
            Problem::new(StatusCode::FORBIDDEN, "account_blocked", "Account blocked")
                .with_detail("This account is blocked.")
                .into(),
        );
    }
    if verification.needs_rehash {
        match state.auth.hasher.hash(password).await {
            Ok(hash) => users::set_password_hash(&state.db, user.id, &hash).await?,
            Err(error) => tracing::warn!(%error, "could not rehash a password"),
        }
    }
    let (session, refresh) = state
        .auth
        .sessions
        .create(NewSession {
            user_id: user.id.to_string(),
            user_agent: meta.user_agent,
            ip: meta.ip,
        })
        .await?;
    tracing::info!(user_id = %user.id, session_id = %session.id, "login");
    Ok(Json(token_response(&state, &user, &session.id, &refresh)?))
}

async fn refresh(
    State(state): State<AppState>,
    meta: ClientMeta,
    Json(body): Json<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let invalid =
        || Problem::unauthorized().with_detail("The refresh token is invalid or expired.");
    if body.refresh_token.is_empty() || body.refresh_token.len() > 128 {
        return Err(invalid().into());
    }
    let presented = RefreshToken::from_client(body.refresh_token);
    match state
        .auth
        .sessions
        .refresh(&presented, meta.ip.as_deref())
        .await?
    {
        Refresh::Rotated { session, token } => {
            let user = match Uuid::parse_str(&session.user_id) {
                Ok(id) => users::find_by_id(&state.db, id).await?,
                Err(_) => None,
            };
            match user {
                Some(user) if user.blocked_at.is_none() => {
                    Ok(Json(token_response(&state, &user, &session.id, &token)?))
                }
                // The account was deleted or blocked since: its sessions end here too.
                _ => {
                    let _ = state
                        .auth
                        .sessions
                        .revoke(&session.user_id, &session.id)
                        .await;
                    Err(invalid().into())
                }
            }
        }
        Refresh::Reused {
            user_id,
            session_id,
        } => {
            tracing::warn!(%user_id, %session_id, "refresh token reused: session revoked");
            Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "refresh_token_reused",
                "Refresh token reused",
            )
            .with_detail(
                "This refresh token was already used; the session has been ended. Log in again.",
            )
            .into())
        }
        Refresh::Invalid => Err(invalid().into()),
    }
}

async fn jwks(State(state): State<AppState>) -> Response {
    let cache = format!("public, max-age={}", state.auth.jwks_max_age.as_secs());
    let mut response = axum::Json(state.auth.issuer.keys().jwks()).into_response();
    if let Ok(value) = HeaderValue::from_str(&cache) {
        response
            .headers_mut()
            .insert(http::header::CACHE_CONTROL, value);
    }
    response
}

/// The caller's account; a token whose account is gone is no longer valid.
async fn current_user(state: &AppState, principal: &Principal) -> ApiResult<UserRecord> {
    let id = caller_id(principal)?;
    users::find_by_id(&state.db, id)
        .await?
        .ok_or_else(|| Problem::unauthorized().into())
}

async fn logout(State(state): State<AppState>, principal: Principal) -> ApiResult<NoContent> {
    state
        .auth
        .sessions
        .revoke(&principal.user_id, &principal.session_id)
        .await?;
    Ok(NoContent)
}

async fn logout_all(State(state): State<AppState>, principal: Principal) -> ApiResult<NoContent> {
    let ended = state
        .auth
        .sessions
        .revoke_all(&principal.user_id, None)
        .await?;
    tracing::info!(user_id = %principal.user_id, ended, "logout everywhere");
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
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<SessionList>> {
    let sessions = state.auth.sessions.list(&principal.user_id).await?;
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
    id: String,
}

async fn end_session(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<SessionPath>,
) -> ApiResult<NoContent> {
    // A malformed id names no session, the caller's or anyone's.
    let id = path_id(&path.id)?;
    if state
        .auth
        .sessions
        .revoke(&principal.user_id, &id.to_string())
        .await?
    {
        Ok(NoContent)
    } else {
        Err(Problem::not_found().into())
    }
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
    new_password: String,
}

async fn update_password(
    State(state): State<AppState>,
    principal: Principal,
    RequestLocale(locale): RequestLocale,
    Json(body): Json<UpdatePasswordRequest>,
) -> ApiResult<NoContent> {
    if body.user_id.to_string() != principal.user_id {
        return Err(Problem::forbidden()
            .with_detail("You can only change your own password.")
            .into());
    }
    let new_password = NewPassword::parse(&body.new_password)
        .map_err(|e| Problem::invalid_field("new_password", e.to_string()))?;
    let user = current_user(&state, &principal).await?;
    let verification = state
        .auth
        .hasher
        .verify(body.old_password.into(), Some(user.password_hash.clone()))
        .await
        .map_err(ApiError::internal)?;
    if !verification.matches {
        return Err(invalid_credentials()
            .with_detail("The old password is wrong.")
            .into());
    }
    // Other sessions end before (so that with the store down nothing changes)
    // and again after the commit (so none opened meanwhile survives).
    state
        .auth
        .sessions
        .revoke_all(&principal.user_id, Some(&principal.session_id))
        .await?;
    let hash = state
        .auth
        .hasher
        .hash(new_password.into_secret())
        .await
        .map_err(ApiError::internal)?;
    let mut tx = state.db.begin().await?;
    users::set_password_hash(&mut *tx, user.id, &hash).await?;
    password_changed(&mut tx, &user, None, "change", locale).await?;
    crate::audit::record(
        &mut *tx,
        crate::audit::Entry::new(Some(user.id), "auth.password_changed", "user", user.id),
    )
    .await?;
    tx.commit().await?;
    state.outbox.wake();
    let ended =
        end_sessions_after_change(&state, &principal.user_id, Some(&principal.session_id)).await;
    tracing::info!(target: "audit", action = "password_changed", user_id = %user.id, ended, "password changed; other sessions ended");
    Ok(NoContent)
}

async fn me(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<UserView>> {
    Ok(Json(current_user(&state, &principal).await?.view()))
}

/// `PATCH /me` body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdateMeRequest {
    /// Display name, 1 to 100 characters.
    name: String,
}

async fn update_me(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<UpdateMeRequest>,
) -> ApiResult<Json<UserView>> {
    let name = text(&body.name, 1, 100, false).map_err(|e| Problem::invalid_field("name", e))?;
    let id = caller_id(&principal)?;
    let user = users::set_name(&state.db, id, &name)
        .await?
        .ok_or_else(Problem::unauthorized)?;
    state.user_changed(id).await;
    Ok(Json(user.view()))
}
