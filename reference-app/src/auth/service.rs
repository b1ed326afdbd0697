//! The rules of sign-in and sessions: credentials checked against a dummy
//! hash for unknown identifiers, refresh-token rotation and reuse detection,
//! logout, and password changes that end every other session.

use std::sync::Arc;
use std::time::Duration;

use bff_auth::layer::Principal;
use bff_auth::session::{NewSession, Refresh, RefreshToken, Session, SessionStore};
use secrecy::SecretString;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Auth, AuthError, TokenResponse};
use crate::audit::{self, Entry};
use crate::http::extract::ClientMeta;
use crate::identity::{Identifier, NewPassword};
use crate::limits::{Failure, LoginGuard};
use crate::messaging::outbox::{self, OutboxSignal};
use crate::messaging::{Channel, DomainEvent, Locale, Notification, Template};
use crate::users::{UserRecord, store as users};

/// Sign-in, sessions and passwords.
#[derive(Debug, Clone)]
pub struct AuthService {
    db: PgPool,
    auth: Arc<Auth>,
    guard: LoginGuard,
    outbox: OutboxSignal,
}

/// Consecutive wrong old passwords from one client after which a password
/// change ends the session it came with (a stolen session is no oracle).
const PASSWORD_CHANGE_TRIES: u32 = 5;

/// A successful login: the tokens, and the device cookie that marks the
/// client as one the owner used.
#[derive(Debug)]
pub struct LoggedIn {
    /// The token response.
    pub tokens: TokenResponse,
    /// The value of the device cookie.
    pub device: String,
}

impl AuthService {
    /// The service over `db`, with `auth`'s keys, sessions and hasher, and the
    /// login guard.
    pub fn new(db: PgPool, auth: Arc<Auth>, guard: LoginGuard, outbox: OutboxSignal) -> Self {
        Self {
            db,
            auth,
            guard,
            outbox,
        }
    }

    /// Checks `password` for `identifier`: the account, and the device cookie
    /// to give the client (`device` is the one it sent, if any).
    ///
    /// Known and unknown identifiers take the same steps: the guard is asked
    /// before the lookup, and a failure is counted and audited for both.
    pub async fn authenticate(
        &self,
        identifier: &Identifier,
        password: SecretString,
        meta: &ClientMeta,
        device: Option<&str>,
    ) -> Result<(UserRecord, String), AuthError> {
        let client = meta.client_key.as_deref();
        self.guard
            .check(identifier.as_str(), client, device)
            .await?;
        let user =
            crate::db::retry_once(|| users::find_by_identifier(&self.db, identifier)).await?;
        // An unknown identifier is checked against a dummy hash: same work, same answer.
        let verification = self
            .auth
            .hasher
            .verify(
                password.clone(),
                user.as_ref().and_then(|u| u.password_hash.clone()),
            )
            .await
            .map_err(AuthError::from)?;
        let Some(user) = user.filter(|_| verification.matches) else {
            self.charge(identifier.as_str(), meta).await?;
            return Err(AuthError::InvalidCredentials);
        };
        if user.blocked_at.is_some() {
            return Err(AuthError::AccountBlocked);
        }
        self.guard.succeeded(identifier.as_str(), client).await;
        if verification.needs_rehash {
            match self.auth.hasher.hash(password).await {
                Ok(hash) => users::set_password_hash(&self.db, user.id, &hash).await?,
                Err(error) => tracing::warn!(%error, "could not rehash a password"),
            }
        }
        Ok((user, self.guard.devices().issue(identifier.as_str())))
    }

    /// Checks the credentials (see [`authenticate`](Self::authenticate)) and
    /// opens a token session.
    pub async fn login(
        &self,
        identifier: &Identifier,
        password: SecretString,
        meta: ClientMeta,
        device: Option<&str>,
    ) -> Result<LoggedIn, AuthError> {
        let (user, device) = self
            .authenticate(identifier, password, &meta, device)
            .await?;
        let tokens = open_session(&self.auth, &user, meta, "login").await?;
        Ok(LoggedIn { tokens, device })
    }

    /// Counts a wrong password for `identifier` from the client of `meta`, and
    /// audits it (and the lock it may start) under the identifier's keyed hash.
    async fn charge(&self, identifier: &str, meta: &ClientMeta) -> Result<Failure, AuthError> {
        let failure = self
            .guard
            .failed(identifier, meta.client_key.as_deref())
            .await?;
        let hashed = self.guard.identifier_hash(identifier);
        let entry = |action, details| Entry {
            ip: meta.ip.as_deref(),
            ..Entry::new(None, action, "identifier", &hashed).details(details)
        };
        let mut conn = self.db.acquire().await?;
        audit::record(
            &mut *conn,
            entry(
                "auth.login_failed",
                serde_json::json!({"consecutive": failure.consecutive}),
            ),
        )
        .await?;
        if let Some(locked) = failure.locked_for {
            tracing::warn!(target: "audit", identifier = %hashed, ip = ?meta.ip, seconds = locked.as_secs(), "login locked for this client");
            audit::record(
                &mut *conn,
                entry(
                    "auth.locked",
                    serde_json::json!({"seconds": locked.as_secs()}),
                ),
            )
            .await?;
        }
        Ok(failure)
    }

    /// Rotates a refresh token; a reused one ends its whole session.
    pub async fn refresh(
        &self,
        presented: String,
        ip: Option<&str>,
    ) -> Result<TokenResponse, AuthError> {
        if presented.is_empty() || presented.len() > 128 {
            return Err(AuthError::InvalidRefresh);
        }
        let presented = RefreshToken::from_client(presented);
        match self.auth.sessions.refresh(&presented, ip).await? {
            Refresh::Rotated { session, token } => {
                let user = match Uuid::parse_str(&session.user_id) {
                    Ok(id) => crate::db::retry_once(|| users::find_by_id(&self.db, id)).await?,
                    Err(_) => None,
                };
                match user {
                    Some(user) if user.blocked_at.is_none() => {
                        tokens(&self.auth, &user, &session.id, &token)
                    }
                    // The account was deleted or blocked since: its sessions end here too.
                    _ => {
                        let _ = self
                            .auth
                            .sessions
                            .revoke(&session.user_id, &session.id)
                            .await;
                        Err(AuthError::InvalidRefresh)
                    }
                }
            }
            Refresh::Reused {
                user_id,
                session_id,
            } => {
                tracing::warn!(%user_id, %session_id, "refresh token reused: session revoked");
                self.announce(DomainEvent::session_revoked(&user_id, &session_id))
                    .await?;
                Err(AuthError::RefreshReused)
            }
            Refresh::Invalid => Err(AuthError::InvalidRefresh),
        }
    }

    /// The public keys that verify access tokens, and how long they may be cached.
    pub fn jwks(&self) -> (serde_json::Value, Duration) {
        (self.auth.issuer.keys().jwks(), self.auth.jwks_max_age)
    }

    /// Ends the caller's session.
    pub async fn logout(&self, principal: &Principal) -> Result<(), AuthError> {
        self.auth
            .sessions
            .revoke(&principal.user_id, &principal.session_id)
            .await?;
        self.auth.minter.forget_session(&principal.session_id);
        self.announce(DomainEvent::session_revoked(
            &principal.user_id,
            &principal.session_id,
        ))
        .await
    }

    /// Ends every session of the caller.
    pub async fn logout_all(&self, principal: &Principal) -> Result<(), AuthError> {
        let ended = self
            .auth
            .sessions
            .revoke_all(&principal.user_id, None)
            .await?;
        tracing::info!(user_id = %principal.user_id, ended, "logout everywhere");
        self.announce(DomainEvent::sessions_revoked(&principal.user_id, None))
            .await
    }

    /// Tells the backends (through the outbox) that tokens they accept are
    /// revoked, so they refuse them before they expire.
    async fn announce(&self, event: DomainEvent) -> Result<(), AuthError> {
        let mut conn = self.db.acquire().await?;
        outbox::event(&mut conn, &event).await?;
        self.outbox.wake();
        Ok(())
    }

    /// The caller's sessions, newest first.
    pub async fn sessions(&self, principal: &Principal) -> Result<Vec<Session>, AuthError> {
        Ok(self.auth.sessions.list(&principal.user_id).await?)
    }

    /// Ends another of the caller's sessions.
    pub async fn end_session(&self, principal: &Principal, id: Uuid) -> Result<(), AuthError> {
        if self
            .auth
            .sessions
            .revoke(&principal.user_id, &id.to_string())
            .await?
        {
            self.auth.minter.forget_session(&id.to_string());
            self.announce(DomainEvent::session_revoked(
                &principal.user_id,
                &id.to_string(),
            ))
            .await
        } else {
            Err(AuthError::SessionNotFound)
        }
    }

    /// Changes the caller's password after checking the old one, and ends
    /// every other session.
    ///
    /// A wrong old password counts as a failed login of the account's
    /// identifier from this client; a few in a row end the session.
    pub async fn update_password(
        &self,
        principal: &Principal,
        user: Uuid,
        old_password: SecretString,
        new_password: NewPassword,
        locale: Locale,
        meta: ClientMeta,
    ) -> Result<(), AuthError> {
        let user = crate::db::retry_once(|| users::find_by_id(&self.db, user))
            .await?
            .ok_or(AuthError::AccountGone)?;
        let identifier = user.identifiers().next().unwrap_or_default().to_owned();
        self.guard
            .check(&identifier, meta.client_key.as_deref(), None)
            .await?;
        let verification = self
            .auth
            .hasher
            .verify(old_password, user.password_hash.clone())
            .await
            .map_err(AuthError::from)?;
        if !verification.matches {
            let failure = self.charge(&identifier, &meta).await?;
            if failure.locked_for.is_some() || failure.consecutive >= PASSWORD_CHANGE_TRIES {
                self.auth
                    .sessions
                    .revoke(&principal.user_id, &principal.session_id)
                    .await?;
                tracing::warn!(user_id = %user.id, "wrong old passwords: session ended");
                return Err(AuthError::SessionEnded);
            }
            return Err(AuthError::WrongOldPassword);
        }
        self.guard
            .succeeded(&identifier, meta.client_key.as_deref())
            .await;
        // Other sessions end before (so that with the store down nothing changes)
        // and again after the commit (so none opened meanwhile survives).
        self.auth
            .sessions
            .revoke_all(&principal.user_id, Some(&principal.session_id))
            .await?;
        let hash = hash(&self.auth, new_password).await?;
        let mut tx = crate::db::begin(&self.db).await?;
        users::set_password_hash(&mut *tx, user.id, &hash).await?;
        password_changed(&mut tx, &user, None, "change", locale).await?;
        outbox::event(
            &mut tx,
            &DomainEvent::sessions_revoked(&principal.user_id, Some(&principal.session_id)),
        )
        .await?;
        audit::record(
            &mut *tx,
            Entry::new(Some(user.id), "auth.password_changed", "user", user.id),
        )
        .await?;
        tx.commit().await?;
        self.outbox.wake();
        let ended =
            end_sessions_after_change(&self.auth, &principal.user_id, Some(&principal.session_id))
                .await;
        tracing::info!(target: "audit", action = "password_changed", user_id = %user.id, ended, "password changed; other sessions ended");
        Ok(())
    }
}

/// Opens a session of `user` for the client `meta` describes, and answers
/// with its tokens; `event` names the occasion in the log.
pub(crate) async fn open_session(
    auth: &Auth,
    user: &UserRecord,
    meta: ClientMeta,
    event: &'static str,
) -> Result<TokenResponse, AuthError> {
    let (session, refresh) = auth
        .sessions
        .create(NewSession {
            user_id: user.id.to_string(),
            user_agent: meta.user_agent,
            ip: meta.ip,
        })
        .await?;
    tracing::info!(user_id = %user.id, session_id = %session.id, "{event}");
    tokens(auth, user, &session.id, &refresh)
}

/// The PHC hash of a new password (off the async threads).
pub(crate) async fn hash(auth: &Auth, password: NewPassword) -> Result<String, AuthError> {
    auth.hasher
        .hash(password.into_secret())
        .await
        .map_err(AuthError::from)
}

/// The token response of a new or refreshed session of `user`.
pub(crate) fn tokens(
    auth: &Auth,
    user: &UserRecord,
    session_id: &str,
    refresh: &RefreshToken,
) -> Result<TokenResponse, AuthError> {
    let issued = auth
        .issuer
        .issue(&user.id.to_string(), session_id, user.role().as_str())
        .map_err(AuthError::internal)?;
    Ok(TokenResponse {
        access_token: issued.access_token,
        refresh_token: refresh.expose().to_owned(),
        token_type: "Bearer",
        expires_in: issued.expires_in,
        user: user.view(),
    })
}

/// Ends the user's sessions (but `keep`) once a new password is committed. The
/// password has changed whatever happens here, so a failure is logged, not
/// answered: the sessions were already ended once before the change.
pub(crate) async fn end_sessions_after_change(
    auth: &Auth,
    user_id: &str,
    keep: Option<&str>,
) -> usize {
    match auth.sessions.revoke_all(user_id, keep).await {
        Ok(ended) => ended,
        Err(error) => {
            tracing::error!(error = %bff_core::problem::ErrorChain(&error), %user_id, "could not end sessions after a password change");
            0
        }
    }
}

/// A notification of `template` to `identifier`, without a code (see
/// [`Notification::with_code`]).
pub(crate) fn notification(
    identifier: &Identifier,
    template: Template,
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
        code: None,
        locale,
        created_at: OffsetDateTime::now_utc(),
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
        outbox::notify(conn, &notification(&to, Template::PasswordChanged, locale)).await?;
    }
    let event = DomainEvent::new(
        "user.password_changed",
        serde_json::json!({"user_id": user.id, "how": how}),
    );
    outbox::event(conn, &event).await
}
