//! The endpoints that work with one-time codes: sign-up and password reset.
//!
//! Enumeration: `verify-code` answers the same whether or not the identifier
//! has an account (an existing one gets an `account_exists` notice instead of a
//! code), and `reset-password` answers the same for an unknown identifier (and
//! sends nothing). Throttling happens before the lookup, so it treats unknown
//! and known identifiers alike too.

use aide::axum::ApiRouter;
use aide::axum::routing::post_with;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::NoContent;
use bff_auth::code::{CodeCheck, Limit, OtpCode, Throttle};
use bff_auth::session::{NewSession, SessionStore};
use bff_cache::ratelimit::{Decision, Quota, rejection};
use bff_core::Problem;
use bff_core::extract::Json;
use bff_core::problem::FieldError;

use crate::ops::invalid;
use crate::validation::{Fields, text};
use http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::routes::{ClientMeta, TokenResponse, token_response};
use crate::error::{ApiError, ApiResult};
use crate::identity::{Identifier, NewPassword, Role};
use crate::messaging::{Channel, DomainEvent, Locale, Notification, Template, outbox};
use crate::startup::AppState;
use crate::users::{self, NewUser, UserRecord};

/// The code endpoints; none needs a token.
pub fn routes() -> ApiRouter<AppState> {
    ApiRouter::new()
        .api_route(
            "/api/v1/auth/verify-code",
            post_with(verify_code, |op| {
                op.tag("auth")
                    .summary("Send a verification code")
                    .response::<202, axum::Json<CodeSent>>()
                    .description("Sends a 6-digit code for `register` or `reset_password`. The answer is the same whether or not an account exists; an existing account is sent a notice instead of a sign-up code.")
                    .response_with::<429, Problem, _>(|r| r.description("`rate_limited`: inside the cooldown, or over an hourly cap. `Retry-After` says when to try again."))
                    .response_with::<422, Problem, _>(|r| r.description("Malformed identifier or unknown purpose."))
            }),
        )
        .api_route(
            "/api/v1/auth/register",
            post_with(register, |op| {
                invalid(op).tag("auth")
                    .summary("Register with a code")
                    .response::<201, axum::Json<TokenResponse>>()
                    .description("Checks the `register` code and creates the account, its identifier verified.")
                    .response_with::<400, Problem, _>(|r| r.description("`code_invalid`: wrong, expired, used or burnt (after 5 wrong tries)."))
                    .response_with::<409, Problem, _>(|r| r.description("The identifier already has an account."))
            }),
        )
        .api_route(
            "/api/v1/auth/reset-password",
            post_with(reset_password, |op| {
                invalid(op).tag("auth")
                    .summary("Ask for a password reset code")
                    .response::<202, axum::Json<CodeSent>>()
                    .description("Sends a `reset_password` code if the account exists; the answer is the same if it does not.")
                    .response_with::<429, Problem, _>(|r| r.description("`rate_limited`, as for verify-code."))
            }),
        )
        .api_route(
            "/api/v1/auth/confirm-reset-password",
            post_with(confirm_reset_password, |op| {
                invalid(op).tag("auth")
                    .summary("Reset the password with a code")
                    .description("Sets the new password and ends every session of the account.")
                    .response_with::<400, Problem, _>(|r| r.description("`code_invalid`."))
            }),
        )
}

/// What a code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Purpose {
    /// Sign-up.
    Register,
    /// Password reset.
    ResetPassword,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::ResetPassword => "reset_password",
        }
    }
}

/// The language for notifications, from `Accept-Language`.
pub(crate) struct RequestLocale(pub(crate) Locale);

impl<S: Send + Sync> FromRequestParts<S> for RequestLocale {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        Ok(Self(Locale::from_accept_language(header)))
    }
}

impl aide::operation::OperationInput for RequestLocale {}

/// `POST /auth/verify-code` body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct VerifyCodeRequest {
    /// Email address or phone number (international form).
    identifier: String,
    /// `register` or `reset_password`.
    purpose: Purpose,
}

/// `POST /auth/reset-password` body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ResetPasswordRequest {
    /// Email address or phone number.
    identifier: String,
    /// Why (free text, up to 200 characters), for the audit trail.
    #[serde(default)]
    reason: Option<String>,
}

/// A code was sent, or would have been.
#[derive(Debug, Serialize, JsonSchema)]
struct CodeSent {
    /// Seconds before another code can be asked for.
    resend_after: u64,
    /// Seconds the code is valid.
    expires_in: u64,
}

/// `POST /auth/register` body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    /// The identifier the code was sent to.
    identifier: String,
    /// The 6-digit code.
    code: String,
    /// 8 to 128 characters, not a common password.
    password: String,
    /// Display name, up to 100 characters.
    #[serde(default)]
    name: Option<String>,
}

/// `POST /auth/confirm-reset-password` body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ConfirmResetRequest {
    /// The identifier the code was sent to.
    identifier: String,
    /// The 6-digit code.
    code: String,
    /// 8 to 128 characters, not a common password.
    new_password: String,
}

fn code_invalid() -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "code_invalid", "Invalid code")
        .with_detail("The code is wrong, expired or already used. Ask for a new one.")
}

/// The 429 of the throttle, with `Retry-After` and the rate-limit headers.
fn rate_limited(state: &AppState, limit: Limit, retry_after: std::time::Duration) -> Problem {
    let policy = state.codes.policy();
    let hour = std::time::Duration::from_secs(3600);
    let (name, quota, detail) = match limit {
        Limit::Cooldown => (
            "code_cooldown",
            Quota::new(1, policy.cooldown),
            "A code was sent moments ago; wait before asking for another.",
        ),
        Limit::HourlyPerIdentifier => (
            "code_identifier",
            Quota::new(policy.hourly_per_identifier, hour),
            "Too many codes were sent to this address in the last hour.",
        ),
        _ => (
            "code_client",
            Quota::new(policy.hourly_per_client, hour),
            "Too many codes were requested from this network in the last hour.",
        ),
    };
    let decision = Decision {
        allowed: false,
        remaining: 0,
        reset: retry_after,
        retry_after,
    };
    rejection(name, &quota, &decision, detail)
}

fn code_error(error: bff_auth::code::CodeError) -> ApiError {
    match error {
        bff_auth::code::CodeError::Backend(_) => ApiError::Unavailable(Box::new(error)),
        other => ApiError::internal(other),
    }
}

fn notification(
    identifier: &Identifier,
    template: Template,
    code: Option<&OtpCode>,
    locale: Locale,
) -> Notification {
    Notification {
        id: Uuid::now_v7(),
        channel: match identifier {
            Identifier::Email(_) => Channel::Email,
            Identifier::Phone(_) => Channel::Sms,
        },
        to: identifier.as_str().to_owned(),
        template,
        code: code.map(|c| c.as_str().to_owned()),
        locale,
        created_at: OffsetDateTime::now_utc(),
    }
}

/// Throttles, then has what the purpose and the account's existence call for
/// sent in the background.
///
/// Only the throttle is answered in-line. The lookup, the code and the outbox
/// write happen after the answer, so its timing and its status (even when
/// Postgres fails) are the same whether or not the identifier has an account.
async fn send_code(
    state: &AppState,
    meta: &ClientMeta,
    identifier: &Identifier,
    purpose: Purpose,
    locale: Locale,
    reason: Option<String>,
) -> ApiResult<CodeSent> {
    let throttle = state
        .codes
        .throttle(
            purpose.as_str(),
            identifier.as_str(),
            meta.client_key.as_deref(),
        )
        .await
        .map_err(code_error)?;
    if let Throttle::Limited { limit, retry_after } = throttle {
        return Err(rate_limited(state, limit, retry_after).into());
    }
    let work = {
        let (state, identifier) = (state.clone(), identifier.clone());
        let audit = AuditContext {
            ip: meta.ip.clone(),
            reason,
        };
        async move {
            if let Err(error) = deliver_code(&state, &identifier, purpose, locale, audit).await {
                tracing::error!(error = %bff_core::problem::ErrorChain(&error), purpose = purpose.as_str(), "could not send a code");
            }
        }
    };
    match bff_core::RequestId::current() {
        Some(id) => tokio::spawn(id.scope(work)),
        None => tokio::spawn(work),
    };
    let policy = state.codes.policy();
    Ok(CodeSent {
        resend_after: policy.cooldown.as_secs(),
        expires_in: policy.ttl.as_secs(),
    })
}

/// What the audit log keeps of a code request.
struct AuditContext {
    ip: Option<String>,
    reason: Option<String>,
}

/// Sends a code, a notice, or nothing, as the purpose and the account call
/// for; a reset request for an existing account is also audited.
async fn deliver_code(
    state: &AppState,
    identifier: &Identifier,
    purpose: Purpose,
    locale: Locale,
    audit: AuditContext,
) -> ApiResult<()> {
    let user = users::find_by_identifier(&state.db, identifier).await?;
    let exists = user.is_some();
    let template = match (purpose, exists) {
        (Purpose::Register, false) => Template::VerifyCode,
        (Purpose::Register, true) => Template::AccountExists,
        (Purpose::ResetPassword, true) => Template::ResetPassword,
        (Purpose::ResetPassword, false) => return Ok(()),
    };
    let code = match template {
        Template::VerifyCode | Template::ResetPassword => Some(
            state
                .codes
                .issue(purpose.as_str(), identifier.as_str())
                .await
                .map_err(code_error)?,
        ),
        _ => None,
    };
    let mut tx = state.db.begin().await?;
    outbox::notify(
        &mut tx,
        &notification(identifier, template, code.as_ref(), locale),
    )
    .await?;
    if let (Purpose::ResetPassword, Some(user)) = (purpose, &user) {
        crate::audit::record(
            &mut *tx,
            crate::audit::Entry {
                ip: audit.ip.as_deref(),
                ..crate::audit::Entry::new(None, "auth.password_reset_requested", "user", user.id)
                    .details(serde_json::json!({ "reason": audit.reason }))
            },
        )
        .await?;
    }
    tx.commit().await?;
    state.outbox.wake();
    Ok(())
}

fn parse_identifier(fields: &mut Fields, input: &str) -> Option<Identifier> {
    fields.check("identifier", Identifier::parse(input))
}

async fn verify_code(
    State(state): State<AppState>,
    meta: ClientMeta,
    RequestLocale(locale): RequestLocale,
    Json(body): Json<VerifyCodeRequest>,
) -> ApiResult<(StatusCode, Json<CodeSent>)> {
    let mut fields = Fields::default();
    let identifier = parse_identifier(&mut fields, &body.identifier);
    let Some(identifier) = identifier else {
        return Err(fields.problem().into());
    };
    let sent = send_code(&state, &meta, &identifier, body.purpose, locale, None).await?;
    Ok((StatusCode::ACCEPTED, Json(sent)))
}

async fn reset_password(
    State(state): State<AppState>,
    meta: ClientMeta,
    RequestLocale(locale): RequestLocale,
    Json(body): Json<ResetPasswordRequest>,
) -> ApiResult<(StatusCode, Json<CodeSent>)> {
    let mut fields = Fields::default();
    let identifier = parse_identifier(&mut fields, &body.identifier);
    let reason = body.reason.as_deref().map(str::trim).unwrap_or_default();
    if reason.chars().count() > 200 || reason.chars().any(|c| c.is_control() && c != '\n') {
        fields.0.push(FieldError::new(
            "reason",
            "must be at most 200 characters, without control characters",
        ));
    }
    let Some(identifier) = identifier else {
        return Err(fields.problem().into());
    };
    fields.finish()?;
    let reason = (!reason.is_empty()).then(|| reason.to_owned());
    // The audit record (with the reason) is written with the code, for
    // existing accounts only: the log must not tell either.
    let sent = send_code(
        &state,
        &meta,
        &identifier,
        Purpose::ResetPassword,
        locale,
        reason,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(sent)))
}

async fn register(
    State(state): State<AppState>,
    meta: ClientMeta,
    Json(body): Json<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<TokenResponse>)> {
    let mut fields = Fields::default();
    let identifier = parse_identifier(&mut fields, &body.identifier);
    let code = fields.check("code", OtpCode::parse(&body.code));
    let password = fields.check("password", NewPassword::parse(&body.password));
    let name = fields.check(
        "name",
        text(body.name.as_deref().unwrap_or_default(), 0, 100, false),
    );
    let (Some(identifier), Some(code), Some(password), Some(name)) =
        (identifier, code, password, name)
    else {
        return Err(fields.problem().into());
    };

    let check = state
        .codes
        .check(Purpose::Register.as_str(), identifier.as_str(), &code)
        .await
        .map_err(code_error)?;
    if check != CodeCheck::Valid {
        return Err(code_invalid().into());
    }
    let hash = state
        .auth
        .hasher
        .hash(password.into_secret())
        .await
        .map_err(ApiError::internal)?;
    let (email, phone) = match &identifier {
        Identifier::Email(email) => (Some(email.as_str().to_owned()), None),
        Identifier::Phone(phone) => (None, Some(phone.as_str().to_owned())),
    };
    let mut tx = state.db.begin().await?;
    let user = users::insert_if_absent(
        &mut *tx,
        &NewUser {
            email,
            phone,
            name,
            role: Role::Customer,
            password_hash: hash,
            verified: true,
        },
    )
    .await?
    .ok_or_else(|| {
        Problem::conflict("An account with this identifier already exists; log in instead.")
    })?;
    let event = DomainEvent::new(
        "user.registered",
        serde_json::json!({
            "user_id": user.id,
            "channel": match identifier { Identifier::Email(_) => "email", Identifier::Phone(_) => "sms" },
            "role": user.role,
        }),
    );
    outbox::event(&mut tx, &event).await?;
    tx.commit().await?;
    state.outbox.wake();

    let (session, refresh) = state
        .auth
        .sessions
        .create(NewSession {
            user_id: user.id.to_string(),
            user_agent: meta.user_agent,
            ip: meta.ip,
        })
        .await?;
    tracing::info!(user_id = %user.id, session_id = %session.id, "registered");
    let response = token_response(&state, &user, &session.id, &refresh)?;
    Ok((StatusCode::CREATED, Json(response)))
}

async fn confirm_reset_password(
    State(state): State<AppState>,
    RequestLocale(locale): RequestLocale,
    Json(body): Json<ConfirmResetRequest>,
) -> ApiResult<NoContent> {
    let mut fields = Fields::default();
    let identifier = parse_identifier(&mut fields, &body.identifier);
    let code = fields.check("code", OtpCode::parse(&body.code));
    let password = fields.check("new_password", NewPassword::parse(&body.new_password));
    let (Some(identifier), Some(code), Some(password)) = (identifier, code, password) else {
        return Err(fields.problem().into());
    };

    let check = state
        .codes
        .check(Purpose::ResetPassword.as_str(), identifier.as_str(), &code)
        .await
        .map_err(code_error)?;
    if check != CodeCheck::Valid {
        return Err(code_invalid().into());
    }
    // A code is only ever sent to an existing account; one deleted since has
    // nothing to reset.
    let user = users::find_by_identifier(&state.db, &identifier)
        .await?
        .ok_or_else(code_invalid)?;
    // Sessions end before (so that with the store down nothing changes) and
    // again after the new password is committed, so a session opened with the
    // old password while the new one was being hashed does not survive.
    let user_id = user.id.to_string();
    state.auth.sessions.revoke_all(&user_id, None).await?;
    let hash = state
        .auth
        .hasher
        .hash(password.into_secret())
        .await
        .map_err(ApiError::internal)?;
    let mut tx = state.db.begin().await?;
    users::set_password_hash(&mut *tx, user.id, &hash).await?;
    password_changed(&mut tx, &user, Some(&identifier), "reset", locale).await?;
    crate::audit::record(
        &mut *tx,
        crate::audit::Entry::new(Some(user.id), "auth.password_reset", "user", user.id),
    )
    .await?;
    tx.commit().await?;
    state.outbox.wake();
    let ended = end_sessions_after_change(&state, &user_id, None).await;
    tracing::info!(target: "audit", action = "password_reset", user_id = %user.id, ended, "password reset; every session ended");
    Ok(NoContent)
}

/// Ends the user's sessions (but `keep`) once a new password is committed. The
/// password has changed whatever happens here, so a failure is logged, not
/// answered: the sessions were already ended once before the change.
pub(crate) async fn end_sessions_after_change(
    state: &AppState,
    user_id: &str,
    keep: Option<&str>,
) -> usize {
    match state.auth.sessions.revoke_all(user_id, keep).await {
        Ok(ended) => ended,
        Err(error) => {
            tracing::error!(error = %bff_core::problem::ErrorChain(&error), %user_id, "could not end sessions after a password change");
            0
        }
    }
}

/// Writes the `password_changed` notice and event, inside the caller's transaction.
///
/// The notice goes to `via` (the identifier the change was made through) or
/// else the account's email, or else its phone.
pub(crate) async fn password_changed(
    conn: &mut PgConnection,
    user: &UserRecord,
    via: Option<&Identifier>,
    how: &str,
    locale: Locale,
) -> Result<(), sqlx::Error> {
    let to = via.cloned().or_else(|| {
        user.email
            .as_deref()
            .and_then(|e| crate::identity::Email::parse(e).ok().map(Identifier::Email))
            .or_else(|| {
                user.phone
                    .as_deref()
                    .and_then(|p| crate::identity::Phone::parse(p).ok().map(Identifier::Phone))
            })
    });
    if let Some(to) = to {
        outbox::notify(
            conn,
            &notification(&to, Template::PasswordChanged, None, locale),
        )
        .await?;
    }
    let event = DomainEvent::new(
        "user.password_changed",
        serde_json::json!({"user_id": user.id, "how": how}),
    );
    outbox::event(conn, &event).await
}
