//! `/api/v1/auth/verify-code`, `register`, `reset-password` and
//! `confirm-reset-password`; none needs a token.

use aide::axum::ApiRouter;
use aide::axum::routing::post_with;
use axum::extract::{FromRef, State};
use axum::response::NoContent;
use bff_auth::code::OtpCode;
use bff_cache::ratelimit::ClientIp;
use bff_core::Problem;
use bff_core::extract::Json;
use http::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{CodeSent, CodeService, Purpose};
use crate::auth::TokenResponse;
use crate::http::ApiResult;
use crate::http::docs::{api, invalid};
use crate::http::extract::{ClientMeta, RequestLocale};
use crate::http::validation::{Fields, IDENTIFIER, LINES, OPTIONAL_LINE, text};

/// JSON Schema pattern of a code ([`OtpCode::parse`]).
const OTP_CODE: &str = r"^[0-9]{6}$";
use crate::identity::{Identifier, NewPassword};

/// The code endpoints; none needs a token.
pub fn routes<S>() -> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    CodeService: FromRef<S>,
    ClientIp: FromRef<S>,
{
    ApiRouter::new()
        .api_route(
            "/api/v1/auth/verify-code",
            post_with(verify_code, |op| {
                api(op).tag("auth")
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
                api(invalid(op)).tag("auth")
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
                api(invalid(op)).tag("auth")
                    .summary("Ask for a password reset code")
                    .response::<202, axum::Json<CodeSent>>()
                    .description("Sends a `reset_password` code if the account exists; the answer is the same if it does not.")
                    .response_with::<429, Problem, _>(|r| r.description("`rate_limited`, as for verify-code."))
            }),
        )
        .api_route(
            "/api/v1/auth/confirm-reset-password",
            post_with(confirm_reset_password, |op| {
                api(invalid(op)).tag("auth")
                    .summary("Reset the password with a code")
                    .description("Sets the new password and ends every session of the account.")
                    .response_with::<400, Problem, _>(|r| r.description("`code_invalid`."))
            }),
        )
}

/// `POST /auth/verify-code` body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct VerifyCodeRequest {
    /// Email address or phone number (international form).
    #[schemars(length(max = 320), regex(pattern = IDENTIFIER))]
    identifier: String,
    /// `register` or `reset_password`.
    purpose: Purpose,
}

/// `POST /auth/reset-password` body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ResetPasswordRequest {
    /// Email address or phone number.
    #[schemars(length(max = 320), regex(pattern = IDENTIFIER))]
    identifier: String,
    /// Why (free text, up to 200 characters), for the audit trail.
    #[serde(default)]
    #[schemars(length(max = 200), regex(pattern = LINES))]
    reason: Option<String>,
}

/// `POST /auth/register` body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    /// The identifier the code was sent to.
    #[schemars(length(max = 320), regex(pattern = IDENTIFIER))]
    identifier: String,
    /// The 6-digit code.
    #[schemars(regex(pattern = OTP_CODE))]
    code: String,
    /// 8 to 128 characters, not a common password.
    #[schemars(length(min = 8, max = 128))]
    password: String,
    /// Display name, up to 100 characters.
    #[serde(default)]
    #[schemars(length(max = 100), regex(pattern = OPTIONAL_LINE))]
    name: Option<String>,
}

/// `POST /auth/confirm-reset-password` body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ConfirmResetRequest {
    /// The identifier the code was sent to.
    #[schemars(length(max = 320), regex(pattern = IDENTIFIER))]
    identifier: String,
    /// The 6-digit code.
    #[schemars(regex(pattern = OTP_CODE))]
    code: String,
    /// 8 to 128 characters, not a common password.
    #[schemars(length(min = 8, max = 128))]
    new_password: String,
}

fn parse_identifier(fields: &mut Fields, input: &str) -> Option<Identifier> {
    fields.check("identifier", Identifier::parse(input))
}

async fn verify_code(
    State(codes): State<CodeService>,
    meta: ClientMeta,
    RequestLocale(locale): RequestLocale,
    Json(body): Json<VerifyCodeRequest>,
) -> ApiResult<(StatusCode, Json<CodeSent>)> {
    let mut fields = Fields::default();
    let identifier = parse_identifier(&mut fields, &body.identifier);
    let Some(identifier) = identifier else {
        return Err(fields.problem().into());
    };
    let sent = codes
        .send(&identifier, body.purpose, locale, &meta, None)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(sent)))
}

async fn reset_password(
    State(codes): State<CodeService>,
    meta: ClientMeta,
    RequestLocale(locale): RequestLocale,
    Json(body): Json<ResetPasswordRequest>,
) -> ApiResult<(StatusCode, Json<CodeSent>)> {
    let mut fields = Fields::default();
    let identifier = parse_identifier(&mut fields, &body.identifier);
    let reason = body.reason.as_deref().map(str::trim).unwrap_or_default();
    if reason.chars().count() > 200 || reason.chars().any(|c| c.is_control() && c != '\n') {
        fields.push(
            "reason",
            "must be at most 200 characters, without control characters",
        );
    }
    let Some(identifier) = identifier else {
        return Err(fields.problem().into());
    };
    fields.finish()?;
    let reason = (!reason.is_empty()).then(|| reason.to_owned());
    // The audit record (with the reason) is written with the code, for
    // existing accounts only: the log must not tell either.
    let sent = codes
        .send(&identifier, Purpose::ResetPassword, locale, &meta, reason)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(sent)))
}

async fn register(
    State(codes): State<CodeService>,
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
    let tokens = codes
        .register(&identifier, &code, password, name, meta)
        .await?;
    Ok((StatusCode::CREATED, Json(tokens)))
}

async fn confirm_reset_password(
    State(codes): State<CodeService>,
    meta: ClientMeta,
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
    codes
        .confirm_reset(&identifier, &code, password, locale, &meta)
        .await?;
    Ok(NoContent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::validation::patterns::admitted_are_accepted;

    #[test]
    fn the_code_pattern_admits_only_accepted_codes() {
        admitted_are_accepted(OTP_CODE, 6, |code| OtpCode::parse(code).is_ok());
    }
}
