//! The rules of codes: throttling before any lookup, what is sent to whom,
//! checking a code, and what a valid one allows.

use std::sync::Arc;
use std::time::Duration;

use bff_auth::code::{CodeCheck, CodeStore, Limit, OtpCode, Throttle};
use bff_auth::session::SessionStore;
use bff_cache::ratelimit::Quota;
use sqlx::PgPool;

use super::{CodeSent, Purpose};
use crate::audit::{self, Entry};
use crate::auth::service::{
    end_sessions_after_change, hash, notification, open_session, password_changed,
};
use crate::auth::{Auth, AuthError, TokenResponse};
use crate::http::extract::ClientMeta;
use crate::identity::{Identifier, NewPassword, Role};
use crate::limits::{LimitError, LoginGuard, SmsBudget};
use crate::messaging::outbox::{self, OutboxSignal};
use crate::messaging::seal::CodeSeal;
use crate::messaging::{DomainEvent, Locale, Template};
use crate::users::{NewUser, store as users};

/// Sign-up and password reset by code.
#[derive(Debug, Clone)]
pub struct CodeService {
    db: PgPool,
    auth: Arc<Auth>,
    codes: Arc<dyn CodeStore>,
    seal: CodeSeal,
    guard: LoginGuard,
    sms: SmsBudget,
    outbox: OutboxSignal,
}

/// What the audit log keeps of a code request.
struct AuditContext {
    ip: Option<String>,
    reason: Option<String>,
}

impl CodeService {
    /// The service over `db`, keeping codes in `codes`.
    pub fn new(
        db: PgPool,
        auth: Arc<Auth>,
        codes: Arc<dyn CodeStore>,
        seal: CodeSeal,
        guard: LoginGuard,
        sms: SmsBudget,
        outbox: OutboxSignal,
    ) -> Self {
        Self {
            db,
            auth,
            codes,
            seal,
            guard,
            sms,
            outbox,
        }
    }

    /// Throttles, then has what the purpose and the account's existence call
    /// for sent in the background; `reason` goes to the audit log of a reset.
    ///
    /// Only the throttle is answered in-line. The lookup, the code and the outbox
    /// write happen after the answer, so its timing and its status (even when
    /// Postgres fails) are the same whether or not the identifier has an account.
    pub async fn send(
        &self,
        identifier: &Identifier,
        purpose: Purpose,
        locale: Locale,
        meta: &ClientMeta,
        reason: Option<String>,
    ) -> Result<CodeSent, AuthError> {
        let throttle = self
            .codes
            .throttle(
                purpose.as_str(),
                identifier.as_str(),
                meta.client_key.as_deref(),
            )
            .await?;
        if let Throttle::Limited { limit, retry_after } = throttle {
            return Err(self.limited(limit, retry_after).into());
        }
        // Every code request to a number counts, whether or not it has an
        // account, so the budget says nothing about accounts.
        if let Identifier::Phone(phone) = identifier {
            self.sms.spend(phone.country_code()).await?;
        }
        let work = {
            let (service, identifier) = (self.clone(), identifier.clone());
            let audit = AuditContext {
                ip: meta.ip.clone(),
                reason,
            };
            async move {
                if let Err(error) = service.deliver(&identifier, purpose, locale, audit).await {
                    tracing::error!(error = %bff_core::problem::ErrorChain(&error), purpose = purpose.as_str(), "could not send a code");
                }
            }
        };
        match bff_core::RequestId::current() {
            Some(id) => tokio::spawn(id.scope(work)),
            None => tokio::spawn(work),
        };
        let policy = self.codes.policy();
        Ok(CodeSent {
            resend_after: policy.cooldown.as_secs(),
            expires_in: policy.ttl.as_secs(),
        })
    }

    /// The refusal of the throttle, with the quota that was exhausted.
    fn limited(&self, limit: Limit, retry_after: Duration) -> LimitError {
        let policy = self.codes.policy();
        let hour = Duration::from_secs(3600);
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
            Limit::HourlyPerIdentifierAll => (
                "code_identifier_all",
                Quota::new(policy.hourly_per_identifier_all, hour),
                "Too many codes were sent to this address in the last hour.",
            ),
            Limit::FailureBudget => (
                "code_failures",
                Quota::new(policy.daily_failures_per_identifier, 24 * hour),
                "Too many wrong codes for this address today; try again tomorrow.",
            ),
            _ => (
                "code_client",
                Quota::new(policy.hourly_per_client, hour),
                "Too many codes were requested from this network in the last hour.",
            ),
        };
        LimitError::refused(name, quota, retry_after, detail)
    }

    /// Sends a code, a notice, or nothing, as the purpose and the account call
    /// for; a reset request for an existing account is also audited.
    async fn deliver(
        &self,
        identifier: &Identifier,
        purpose: Purpose,
        locale: Locale,
        audit: AuditContext,
    ) -> Result<(), AuthError> {
        let user = users::find_by_identifier(&self.db, identifier).await?;
        let exists = user.is_some();
        let template = match (purpose, exists) {
            (Purpose::Register, false) => Template::VerifyCode,
            (Purpose::Register, true) => Template::AccountExists,
            (Purpose::ResetPassword, true) => Template::ResetPassword,
            (Purpose::ResetPassword, false) => return Ok(()),
        };
        let code = match template {
            Template::VerifyCode | Template::ResetPassword => Some(
                self.codes
                    .issue(purpose.as_str(), identifier.as_str())
                    .await?,
            ),
            _ => None,
        };
        let mut message = notification(identifier, template, locale);
        if let Some(code) = &code {
            message = message
                .with_code(code.as_str(), &self.seal)
                .map_err(AuthError::internal)?;
        }
        let mut tx = self.db.begin().await?;
        outbox::notify(&mut tx, &message).await?;
        if let (Purpose::ResetPassword, Some(user)) = (purpose, &user) {
            audit::record(
                &mut *tx,
                Entry {
                    ip: audit.ip.as_deref(),
                    ..Entry::new(None, "auth.password_reset_requested", "user", user.id)
                        .details(serde_json::json!({ "reason": audit.reason }))
                },
            )
            .await?;
        }
        tx.commit().await?;
        self.outbox.wake();
        Ok(())
    }

    /// Whether `code` is the valid code of `purpose` for `identifier` (it is
    /// spent if it is).
    /// Checks `code`; wrong codes from one client address are limited.
    async fn check(
        &self,
        purpose: Purpose,
        identifier: &Identifier,
        code: &OtpCode,
        client: Option<&str>,
    ) -> Result<(), AuthError> {
        self.guard.check_code(client).await?;
        match self
            .codes
            .check(purpose.as_str(), identifier.as_str(), code)
            .await?
        {
            CodeCheck::Valid => Ok(()),
            _ => {
                self.guard.code_failed(client).await?;
                Err(AuthError::CodeInvalid)
            }
        }
    }

    /// Creates the account of `identifier` with its `register` code, and
    /// opens a session.
    pub async fn register(
        &self,
        identifier: &Identifier,
        code: &OtpCode,
        password: NewPassword,
        name: String,
        meta: ClientMeta,
    ) -> Result<TokenResponse, AuthError> {
        self.check(
            Purpose::Register,
            identifier,
            code,
            meta.client_key.as_deref(),
        )
        .await?;
        let hash = hash(&self.auth, password).await?;
        let (email, phone) = match identifier {
            Identifier::Email(email) => (Some(email.as_str().to_owned()), None),
            Identifier::Phone(phone) => (None, Some(phone.as_str().to_owned())),
        };
        let mut tx = self.db.begin().await?;
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
        .ok_or(AuthError::AccountExists)?;
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
        self.outbox.wake();

        open_session(&self.auth, &user, meta, "registered").await
    }

    /// Sets a new password with a `reset_password` code and ends every
    /// session of the account.
    pub async fn confirm_reset(
        &self,
        identifier: &Identifier,
        code: &OtpCode,
        password: NewPassword,
        locale: Locale,
        meta: &ClientMeta,
    ) -> Result<(), AuthError> {
        self.check(
            Purpose::ResetPassword,
            identifier,
            code,
            meta.client_key.as_deref(),
        )
        .await?;
        // A code is only ever sent to an existing account; one deleted since has
        // nothing to reset.
        let user = users::find_by_identifier(&self.db, identifier)
            .await?
            .ok_or(AuthError::CodeInvalid)?;
        // Sessions end before (so that with the store down nothing changes) and
        // again after the new password is committed, so a session opened with the
        // old password while the new one was being hashed does not survive.
        let user_id = user.id.to_string();
        self.auth.sessions.revoke_all(&user_id, None).await?;
        let hash = hash(&self.auth, password).await?;
        let mut tx = self.db.begin().await?;
        users::set_password_hash(&mut *tx, user.id, &hash).await?;
        password_changed(&mut tx, &user, Some(identifier), "reset", locale).await?;
        outbox::event(&mut tx, &DomainEvent::sessions_revoked(&user_id, None)).await?;
        audit::record(
            &mut *tx,
            Entry::new(Some(user.id), "auth.password_reset", "user", user.id),
        )
        .await?;
        tx.commit().await?;
        self.outbox.wake();
        let ended = end_sessions_after_change(&self.auth, &user_id, None).await;
        // Whoever locked the account out of login, its owner is back in.
        for identifier in user.identifiers() {
            if let Err(error) = self.guard.clear(identifier).await {
                tracing::error!(%error, user_id = %user.id, "could not clear login locks after a reset");
            }
        }
        tracing::info!(target: "audit", action = "password_reset", user_id = %user.id, ended, "password reset; every session ended");
        Ok(())
    }
}
