//! The rules of social login: starting a flow, resolving the person a
//! provider vouches for to an account (by `(provider, subject)`, never by
//! email alone), linking and unlinking, and trading a login code for tokens.

use std::sync::Arc;

use bff_auth::oauth::{
    CallbackParams, ExternalProfile, OAuthClient, OAuthError, PendingAuth, ProviderKind,
};
use bff_auth::session::{
    BrowserSession, BrowserSessionStore, CookieValue, NewSession, RefreshToken, SessionStore,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use url::Url;
use uuid::Uuid;

use super::error::OAuthFlowError;
use super::login_code::{LoginCodes, LoginGrant};
use super::redirect::RedirectAllowList;
use super::store::{self, IdentityRecord};
use crate::audit::{self, Entry};
use crate::auth::service::tokens;
use crate::auth::{Auth, TokenResponse};
use crate::http::extract::ClientMeta;
use crate::identity::Role;
use crate::limits::ClientBudget;
use crate::messaging::DomainEvent;
use crate::messaging::outbox::{self, OutboxSignal};
use crate::users::{NewUser, UserRecord, store as users};

/// The name of the cookie that binds a flow to the browser that started it.
pub const BINDING_COOKIE: &str = "__Host-bff_oauth";

/// What a flow carries from its start to its callback.
#[derive(Debug, Serialize, Deserialize)]
struct FlowData {
    /// Where the frontend wants the answer.
    redirect_uri: String,
    /// The account to link the identity to, for a link flow.
    link: Option<Uuid>,
    /// Browser mode: the path on this origin to land on, signed in with the
    /// session cookie (`/bff/login/{provider}`).
    #[serde(default)]
    browser: Option<String>,
}

/// Where a callback sends the browser.
#[derive(Debug)]
pub enum Landing {
    /// To the frontend's `redirect_uri`, with `login_code`, `linked` or `error`.
    Frontend(Url),
    /// Browser mode: to a path on this origin (with `error` on failure), and
    /// the new session's cookie when signed in.
    Browser {
        /// The path (and query) to redirect to.
        location: String,
        /// The session opened, and its cookie's value.
        session: Option<(BrowserSession, CookieValue)>,
    },
}

/// A started flow: where to send the browser, and the binding cookie's value.
#[derive(Debug)]
pub struct Started {
    /// The provider's authorization URL.
    pub authorize_url: Url,
    /// The value of [`BINDING_COOKIE`] to set.
    pub binding: String,
}

/// How a callback ended, for the frontend: a login code, a link, or an error
/// code, as a query parameter of its `redirect_uri`.
#[derive(Debug)]
enum Outcome {
    LoginCode(String),
    Browser(BrowserSession, CookieValue),
    Linked(ProviderKind),
    Failed(&'static str),
}

/// Social login.
#[derive(Debug, Clone)]
pub struct OAuthService {
    db: PgPool,
    auth: Arc<Auth>,
    client: OAuthClient,
    redirects: RedirectAllowList,
    codes: LoginCodes,
    budget: ClientBudget,
    outbox: OutboxSignal,
}

impl OAuthService {
    /// The service over `db`, with `client`'s providers.
    pub fn new(
        db: PgPool,
        auth: Arc<Auth>,
        client: OAuthClient,
        redirects: RedirectAllowList,
        codes: LoginCodes,
        budget: ClientBudget,
        outbox: OutboxSignal,
    ) -> Self {
        Self {
            db,
            auth,
            client,
            redirects,
            codes,
            budget,
            outbox,
        }
    }

    /// The enabled providers.
    pub fn providers(&self) -> Vec<ProviderKind> {
        ProviderKind::ALL
            .into_iter()
            .filter(|kind| self.client.is_enabled(*kind))
            .collect()
    }

    fn provider(&self, name: &str) -> Result<ProviderKind, OAuthFlowError> {
        ProviderKind::parse(name)
            .filter(|kind| self.client.is_enabled(*kind))
            .ok_or(OAuthFlowError::UnknownProvider)
    }

    /// Starts a sign-in flow (`link` `None`) or a link flow for the account
    /// `link`, answering the frontend at `redirect_uri` in the end.
    pub async fn start(
        &self,
        provider: &str,
        redirect_uri: &str,
        link: Option<Uuid>,
        meta: &ClientMeta,
    ) -> Result<Started, OAuthFlowError> {
        let kind = self.provider(provider)?;
        let redirect = self
            .redirects
            .check(redirect_uri)
            .ok_or(OAuthFlowError::RedirectNotAllowed)?;
        let data = FlowData {
            redirect_uri: redirect.into(),
            link,
            browser: None,
        };
        self.begin(kind, data, meta).await
    }

    /// Counts the flow against the client's budget, binds it to a new cookie
    /// value and has the provider's authorization URL made for it.
    async fn begin(
        &self,
        kind: ProviderKind,
        data: FlowData,
        meta: &ClientMeta,
    ) -> Result<Started, OAuthFlowError> {
        self.budget.spend(meta.client_key.as_deref()).await?;
        let binding =
            bff_auth::random::base64url(32).map_err(|e| OAuthFlowError::Internal(e.to_string()))?;
        let data =
            serde_json::to_value(data).map_err(|e| OAuthFlowError::Internal(e.to_string()))?;
        let authorize_url = self
            .client
            .start(kind, binding_hash(&binding), data)
            .await
            .map_err(unavailable)?;
        Ok(Started {
            authorize_url,
            binding,
        })
    }

    /// Starts a browser-mode sign-in (`/bff/login/{provider}`): the flow
    /// ends with the session cookie set and a redirect to `return_to`, a path
    /// on this origin.
    pub async fn start_browser(
        &self,
        provider: &str,
        return_to: &str,
        meta: &ClientMeta,
    ) -> Result<Started, OAuthFlowError> {
        let kind = self.provider(provider)?;
        let return_to = local_path(return_to).ok_or(OAuthFlowError::ReturnToNotAllowed)?;
        let data = FlowData {
            redirect_uri: String::new(),
            link: None,
            browser: Some(return_to),
        };
        self.begin(kind, data, meta).await
    }

    /// Ends a flow at the provider's callback: the URL of the frontend to
    /// send the browser to, with `login_code`, `linked` or `error`. Errors are
    /// what happens before the `state` is known to be valid (400, no redirect).
    pub async fn callback(
        &self,
        provider: &str,
        params: CallbackParams,
        binding: Option<&str>,
        meta: ClientMeta,
    ) -> Result<Landing, OAuthFlowError> {
        let kind = self.provider(provider)?;
        self.budget.spend(meta.client_key.as_deref()).await?;
        let binding = binding.ok_or(OAuthFlowError::InvalidState)?;
        let pending = match self
            .client
            .take_state(kind, &params, binding_hash(binding))
            .await
        {
            Ok(pending) => pending,
            Err(OAuthError::InvalidState) => return Err(OAuthFlowError::InvalidState),
            Err(error) => return Err(unavailable(error)),
        };
        let data: FlowData = serde_json::from_value(pending.data.clone())
            .map_err(|e| OAuthFlowError::Internal(e.to_string()))?;
        let browser = data.browser.is_some();
        let outcome = self
            .complete(kind, &pending, &params, data.link, browser, meta)
            .await;
        if let Some(return_to) = data.browser {
            return Ok(match outcome {
                Outcome::Browser(session, cookie) => Landing::Browser {
                    location: return_to,
                    session: Some((session, cookie)),
                },
                Outcome::Failed(code) => Landing::Browser {
                    location: with_query(&return_to, "error", code),
                    session: None,
                },
                _ => Landing::Browser {
                    location: with_query(&return_to, "error", "server_error"),
                    session: None,
                },
            });
        }
        let mut redirect =
            Url::parse(&data.redirect_uri).map_err(|e| OAuthFlowError::Internal(e.to_string()))?;
        let (name, value) = match &outcome {
            Outcome::LoginCode(code) => ("login_code", code.as_str()),
            Outcome::Linked(kind) => ("linked", kind.as_str()),
            Outcome::Failed(code) => ("error", *code),
            Outcome::Browser(..) => ("error", "server_error"),
        };
        redirect.query_pairs_mut().append_pair(name, value);
        Ok(Landing::Frontend(redirect))
    }

    /// Everything after a valid `state`; every failure becomes an error code
    /// for the frontend, logged here.
    async fn complete(
        &self,
        kind: ProviderKind,
        pending: &PendingAuth,
        params: &CallbackParams,
        link: Option<Uuid>,
        browser: bool,
        meta: ClientMeta,
    ) -> Outcome {
        let profile = match self.client.finish(pending, params).await {
            Ok(profile) => profile,
            Err(OAuthError::Denied(code)) => {
                tracing::info!(provider = kind.as_str(), %code, "the provider refused the sign-in");
                return Outcome::Failed(if code == "access_denied" {
                    "access_denied"
                } else {
                    "provider_error"
                });
            }
            Err(error) => {
                tracing::warn!(provider = kind.as_str(), %error, "social login failed at the provider");
                return Outcome::Failed(match error {
                    OAuthError::Internal(_) | OAuthError::Config(_) => "server_error",
                    _ => "provider_error",
                });
            }
        };
        let result = match link {
            Some(user_id) => self.link(user_id, &profile, &meta).await,
            None => self.sign_in(&profile, browser, meta).await,
        };
        result.unwrap_or_else(|error| {
            tracing::error!(provider = kind.as_str(), error = %bff_core::problem::ErrorChain(&error), "social login failed");
            Outcome::Failed("server_error")
        })
    }

    /// Resolves `profile` to an account (see the module's rules) and opens a
    /// session for it: a browser session (`browser`), or a token session
    /// behind a login code.
    async fn sign_in(
        &self,
        profile: &ExternalProfile,
        browser: bool,
        meta: ClientMeta,
    ) -> Result<Outcome, OAuthFlowError> {
        let provider = profile.provider.as_str();
        let mut tx = crate::db::begin(&self.db).await?;
        store::forget_if_orphaned(&mut *tx, provider, &profile.subject).await?;
        let (user, how) = match store::find(&mut *tx, provider, &profile.subject).await? {
            Some(identity) => match users::find_by_id(&mut *tx, identity.user_id).await? {
                Some(user) => (user, "known"),
                None => return Ok(Outcome::Failed("server_error")),
            },
            None => match self.resolve_new(&mut tx, profile).await? {
                Ok(found) => found,
                Err(code) => {
                    tx.rollback().await?;
                    return Ok(Outcome::Failed(code));
                }
            },
        };
        if user.blocked_at.is_some() {
            tx.rollback().await?;
            return Ok(Outcome::Failed("account_blocked"));
        }
        audit::record(
            &mut *tx,
            Entry {
                ip: meta.ip.as_deref(),
                ..Entry::new(Some(user.id), "auth.oauth_login", "user", user.id)
                    .details(serde_json::json!({"provider": provider, "identity": how}))
            },
        )
        .await?;
        tx.commit().await?;
        self.outbox.wake();
        if browser {
            let (session, cookie) = self
                .auth
                .sessions
                .create_browser(
                    NewSession {
                        user_id: user.id.to_string(),
                        user_agent: meta.user_agent,
                        ip: meta.ip,
                    },
                    user.role().as_str(),
                )
                .await
                .map_err(crate::auth::AuthError::from)?;
            tracing::info!(user_id = %user.id, session_id = %session.session.id, provider, "social login (browser mode)");
            return Ok(Outcome::Browser(session, cookie));
        }
        let (session, refresh) = self
            .auth
            .sessions
            .create(NewSession {
                user_id: user.id.to_string(),
                user_agent: meta.user_agent,
                ip: meta.ip,
            })
            .await
            .map_err(crate::auth::AuthError::from)?;
        tracing::info!(user_id = %user.id, session_id = %session.id, provider, "social login");
        let code = self
            .codes
            .issue(&LoginGrant {
                session_id: session.id,
                user_id: user.id,
                refresh_token: refresh.expose().to_owned(),
            })
            .await
            .map_err(|e| OAuthFlowError::Unavailable(e.to_string()))?;
        Ok(Outcome::LoginCode(code))
    }

    /// An identity seen for the first time: linked to the account with the
    /// same verified email when the provider asserts the email verified too,
    /// refused (`account_conflict`) when its email belongs to any other
    /// account, else a new customer.
    async fn resolve_new(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        profile: &ExternalProfile,
    ) -> Result<Result<(UserRecord, &'static str), &'static str>, OAuthFlowError> {
        let provider = profile.provider.as_str();
        let email = profile.email.as_deref();
        if let Some(email) = email
            && let Some(user) = users::lock_by_email(&mut **tx, email).await?
        {
            if !(profile.email_verified && user.email_verified_at.is_some()) {
                return Ok(Err("account_conflict"));
            }
            if !store::link(&mut **tx, user.id, provider, &profile.subject, Some(email)).await? {
                // The account already has another identity of this provider,
                // or a concurrent callback linked this one.
                return Ok(Err("account_conflict"));
            }
            self.audit_link(tx, user.id, provider, None).await?;
            return Ok(Ok((user, "linked_by_verified_email")));
        }
        let Some(user) = users::insert_if_absent(
            &mut **tx,
            &NewUser {
                email: email.map(str::to_owned),
                phone: None,
                name: profile
                    .name
                    .clone()
                    .unwrap_or_default()
                    .chars()
                    .take(100)
                    .collect(),
                role: Role::Customer,
                password_hash: None,
                verified: profile.email_verified,
            },
        )
        .await?
        else {
            return Ok(Err("account_conflict"));
        };
        if !store::link(&mut **tx, user.id, provider, &profile.subject, email).await? {
            // A concurrent callback created the account for this identity.
            return Ok(Err("server_error"));
        }
        let event = DomainEvent::new(
            "user.registered",
            serde_json::json!({"user_id": user.id, "channel": provider, "role": user.role}),
        );
        outbox::event(tx, &event).await?;
        Ok(Ok((user, "new")))
    }

    async fn audit_link(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        user_id: Uuid,
        provider: &str,
        ip: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        audit::record(
            &mut **tx,
            Entry {
                ip,
                ..Entry::new(Some(user_id), "auth.identity_linked", "user", user_id)
                    .details(serde_json::json!({"provider": provider}))
            },
        )
        .await
    }

    /// Links `profile` to the signed-in account `user_id` (a link flow).
    async fn link(
        &self,
        user_id: Uuid,
        profile: &ExternalProfile,
        meta: &ClientMeta,
    ) -> Result<Outcome, OAuthFlowError> {
        let provider = profile.provider.as_str();
        let mut tx = crate::db::begin(&self.db).await?;
        store::forget_if_orphaned(&mut *tx, provider, &profile.subject).await?;
        let Some(_) = store::lock_credentials(&mut *tx, user_id).await? else {
            return Ok(Outcome::Failed("server_error"));
        };
        let user = users::find_by_id(&mut *tx, user_id).await?;
        if user.as_ref().is_none_or(|u| u.blocked_at.is_some()) {
            return Ok(Outcome::Failed("account_blocked"));
        }
        match store::find(&mut *tx, provider, &profile.subject).await? {
            Some(identity) if identity.user_id == user_id => {}
            Some(_) => return Ok(Outcome::Failed("identity_in_use")),
            None => {
                if !store::link(
                    &mut *tx,
                    user_id,
                    provider,
                    &profile.subject,
                    profile.email.as_deref(),
                )
                .await?
                {
                    // The account holds another identity of this provider.
                    return Ok(Outcome::Failed("identity_in_use"));
                }
                self.audit_link(&mut tx, user_id, provider, meta.ip.as_deref())
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(Outcome::Linked(profile.provider))
    }

    /// Trades a login code for the tokens of the session it stands for.
    pub async fn exchange(
        &self,
        login_code: &str,
        meta: &ClientMeta,
    ) -> Result<TokenResponse, OAuthFlowError> {
        self.budget.spend(meta.client_key.as_deref()).await?;
        let grant = self
            .codes
            .redeem(login_code)
            .await
            .map_err(|e| OAuthFlowError::Unavailable(e.to_string()))?
            .ok_or(OAuthFlowError::CodeInvalid)?;
        let active = self
            .auth
            .sessions
            .is_active(&grant.user_id.to_string(), &grant.session_id)
            .await
            .map_err(crate::auth::AuthError::from)?;
        if !active {
            return Err(OAuthFlowError::CodeInvalid);
        }
        let user = crate::db::retry_once(|| users::find_by_id(&self.db, grant.user_id))
            .await?
            .filter(|user| user.blocked_at.is_none())
            .ok_or(OAuthFlowError::CodeInvalid)?;
        Ok(tokens(
            &self.auth,
            &user,
            &grant.session_id,
            &RefreshToken::from_client(grant.refresh_token),
        )?)
    }

    /// The identities of `user_id`.
    pub async fn identities(&self, user_id: Uuid) -> Result<Vec<IdentityRecord>, OAuthFlowError> {
        Ok(crate::db::retry_once(|| store::list(&self.db, user_id)).await?)
    }

    /// Unlinks `user_id`'s identity of `provider`, unless it is the account's
    /// last way to sign in.
    pub async fn unlink(
        &self,
        user_id: Uuid,
        provider: &str,
        meta: &ClientMeta,
    ) -> Result<(), OAuthFlowError> {
        let kind = ProviderKind::parse(provider).ok_or(OAuthFlowError::UnknownProvider)?;
        let mut tx = crate::db::begin(&self.db).await?;
        let (has_password, identities) = store::lock_credentials(&mut *tx, user_id)
            .await?
            .ok_or(OAuthFlowError::NotLinked)?;
        let linked = store::list(&mut *tx, user_id)
            .await?
            .iter()
            .any(|identity| identity.provider == kind.as_str());
        if !linked {
            return Err(OAuthFlowError::NotLinked);
        }
        if !has_password && identities <= 1 {
            return Err(OAuthFlowError::LastCredential);
        }
        store::unlink(&mut *tx, user_id, kind.as_str()).await?;
        audit::record(
            &mut *tx,
            Entry {
                ip: meta.ip.as_deref(),
                ..Entry::new(Some(user_id), "auth.identity_unlinked", "user", user_id)
                    .details(serde_json::json!({"provider": kind.as_str()}))
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// `raw` when it is a path on this origin that no browser can read as another
/// host: it starts with one `/` (not `//` or `/\`), and holds only visible
/// ASCII, no backslash and no encoded slash or backslash.
pub(crate) fn local_path(raw: &str) -> Option<String> {
    let lower = raw.to_ascii_lowercase();
    let plain = raw.len() <= 2048
        && raw.starts_with('/')
        && !raw.starts_with("//")
        && raw
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'\\')
        && !["%2f", "%5c", "%09", "%0a", "%0d", "%00"]
            .iter()
            .any(|encoded| lower.contains(encoded));
    plain.then(|| raw.to_owned())
}

/// `path` with `name=value` added to its query.
fn with_query(path: &str, name: &str, value: &str) -> String {
    let separator = if path.contains('?') { '&' } else { '?' };
    let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    format!("{path}{separator}{name}={encoded}")
}

/// SHA-256 of the binding cookie's value: what the state is bound to.
fn binding_hash(binding: &str) -> [u8; 32] {
    Sha256::digest(binding.as_bytes()).into()
}

/// A failure to start or take a flow: the state store or the provider's
/// discovery is out of reach (or misconfigured, which the log says).
fn unavailable(error: OAuthError) -> OAuthFlowError {
    match error {
        OAuthError::UnknownProvider => OAuthFlowError::UnknownProvider,
        OAuthError::InvalidState => OAuthFlowError::InvalidState,
        other => OAuthFlowError::Unavailable(other.to_string()),
    }
}
