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

    /// Throttles, then writes what the purpose and the account's existence call
    /// for into the outbox; `reason` goes to the audit log of a reset.
    ///
    /// The answer is given only once the work is durable: when Postgres (or the
    /// code store) fails, nothing was sent, the throttle's count is given back
    /// and the caller gets 503, so the cooldown is not spent on an outage. Every
    /// request does the same work whether or not the identifier has an account
    /// (one lookup, one code, one outbox row, and for resets one audit entry),
    /// so neither the status, the body nor the timing tells them apart; the row
    /// for an address without an account is a [`Template::Nothing`] that the
    /// notifier drops.
    pub async fn send(
        &self,
        identifier: &Identifier,
        purpose: Purpose,
        locale: Locale,
        meta: &ClientMeta,
        reason: Option<String>,
    ) -> Result<CodeSent, AuthError> {
        let client = meta.client_key.as_deref();
        let throttle = self
            .codes
            .throttle(purpose.as_str(), identifier.as_str(), client)
            .await?;
        if let Throttle::Limited { limit, retry_after } = throttle {
            return Err(self.limited(limit, retry_after).into());
        }
        let audit = AuditContext {
            ip: meta.ip.clone(),
            reason,
        };
        if let Err(error) = self
            .spend_and_deliver(identifier, purpose, locale, audit)
            .await
        {
            if let Err(release) = self
                .codes
                .release(purpose.as_str(), identifier.as_str(), client)
                .await
            {
                tracing::error!(error = %bff_core::problem::ErrorChain(&release), "could not give back a code request's throttle count");
            }
            return Err(error);
        }
        let policy = self.codes.policy();
        Ok(CodeSent {
            resend_after: policy.cooldown.as_secs(),
            expires_in: policy.ttl.as_secs(),
        })
    }

    /// Spends the SMS budget for a phone, then delivers.
    async fn spend_and_deliver(
        &self,
        identifier: &Identifier,
        purpose: Purpose,
        locale: Locale,
        audit: AuditContext,
    ) -> Result<(), AuthError> {
        // Every code request to a number counts, whether or not it has an
        // account, so the budget says nothing about accounts.
        if let Identifier::Phone(phone) = identifier {
            self.sms.spend(phone.country_code()).await?;
        }
        self.deliver(identifier, purpose, locale, audit).await
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

    /// Writes a code, a notice, or a [`Template::Nothing`] into the outbox, as
    /// the purpose and the account call for; a reset request is also audited.
    async fn deliver(
        &self,
        identifier: &Identifier,
        purpose: Purpose,
        locale: Locale,
        audit: AuditContext,
    ) -> Result<(), AuthError> {
        let user =
            crate::db::retry_once(|| users::find_by_identifier(&self.db, identifier)).await?;
        let template = match (purpose, user.is_some()) {
            (Purpose::Register, false) => Template::VerifyCode,
            (Purpose::Register, true) => Template::AccountExists,
            (Purpose::ResetPassword, true) => Template::ResetPassword,
            (Purpose::ResetPassword, false) => Template::Nothing,
        };
        // A code is made in every case, so the store's round trip is there
        // whether or not it is sent; one that is not sent is never known to
        // anybody and expires unused.
        let code = self
            .codes
            .issue(purpose.as_str(), identifier.as_str())
            .await?;
        let mut message = notification(identifier, template, locale);
        if matches!(template, Template::VerifyCode | Template::ResetPassword) {
            message = message
                .with_code(code.as_str(), &self.seal)
                .map_err(AuthError::internal)?;
        }
        let mut tx = crate::db::begin(&self.db).await?;
        outbox::notify(&mut tx, &message).await?;
        if purpose == Purpose::ResetPassword {
            // An address without an account is audited too (with no target),
            // so both cases write the same rows.
            let entry = Entry {
                ip: audit.ip.as_deref(),
                target_type: user.as_ref().map(|_| "user"),
                target_id: user.as_ref().map(|user| user.id.to_string()),
                ..Entry::new(None, "auth.password_reset_requested", "user", "")
            };
            audit::record(
                &mut *tx,
                entry.details(serde_json::json!({ "reason": audit.reason })),
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
        let mut tx = crate::db::begin(&self.db).await?;
        let user = users::insert_if_absent(
            &mut *tx,
            &NewUser {
                email,
                phone,
                name,
                role: Role::Customer,
                password_hash: Some(hash),
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
        let user = crate::db::retry_once(|| users::find_by_identifier(&self.db, identifier))
            .await?
            .ok_or(AuthError::CodeInvalid)?;
        // Sessions end before (so that with the store down nothing changes) and
        // again after the new password is committed, so a session opened with the
        // old password while the new one was being hashed does not survive.
        let user_id = user.id.to_string();
        self.auth.sessions.revoke_all(&user_id, None).await?;
        let hash = hash(&self.auth, password).await?;
        let mut tx = crate::db::begin(&self.db).await?;
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
