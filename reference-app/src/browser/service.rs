//! Opening, reading and ending browser sessions, and proxying for them.

use std::sync::Arc;

use bff_aggregate::proxy::{Proxy, ProxyBody, ProxyError};
use bff_auth::layer::Principal;
use bff_auth::mint::Subject;
use bff_auth::session::{BrowserSession, BrowserSessionStore, CookieValue, NewSession};
use http::{Request, Response};
use secrecy::SecretString;
use sqlx::PgPool;

use crate::auth::{Auth, AuthError, AuthService};
use crate::http::extract::ClientMeta;
use crate::identity::Identifier;
use crate::users::{UserRecord, store as users};

/// A browser session just opened: what to answer and the cookie to set.
#[derive(Debug)]
pub struct Opened {
    /// The account.
    pub user: UserRecord,
    /// The session.
    pub session: BrowserSession,
    /// The cookie's value (sent once, in `Set-Cookie`).
    pub cookie: CookieValue,
    /// The device cookie of the login guard.
    pub device: String,
}

/// Browser mode.
#[derive(Debug, Clone)]
pub struct BrowserService {
    db: PgPool,
    auth: Arc<Auth>,
    logins: AuthService,
    proxy: Arc<Proxy>,
}

impl BrowserService {
    /// The service; `proxy` holds the upstreams of `BFF_PROXY_UPSTREAMS`.
    pub fn new(db: PgPool, auth: Arc<Auth>, logins: AuthService, proxy: Proxy) -> Self {
        Self {
            db,
            auth,
            logins,
            proxy: Arc::new(proxy),
        }
    }

    /// Checks the credentials as `/api/v1/auth/login` does (same answers and
    /// limits) and opens a new browser session; a cookie the request carried
    /// plays no part.
    pub async fn login(
        &self,
        identifier: &Identifier,
        password: SecretString,
        meta: ClientMeta,
        device: Option<&str>,
    ) -> Result<Opened, AuthError> {
        let (user, device) = self
            .logins
            .authenticate(identifier, password, &meta, device)
            .await?;
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
            .await?;
        tracing::info!(user_id = %user.id, session_id = %session.session.id, "browser login");
        Ok(Opened {
            user,
            session,
            cookie,
            device,
        })
    }

    /// The account and session of a cookie caller; `None` for a bearer
    /// caller or an account gone since.
    pub async fn whoami(
        &self,
        principal: &Principal,
    ) -> Result<Option<(UserRecord, BrowserSession)>, AuthError> {
        let Some(session) = principal.credential.browser_session() else {
            return Ok(None);
        };
        let Ok(id) = uuid::Uuid::parse_str(&principal.user_id) else {
            return Ok(None);
        };
        let user = crate::db::retry_once(|| users::find_by_id(&self.db, id)).await?;
        Ok(user.map(|user| (user, session.clone())))
    }

    /// Ends the caller's session (on every instance).
    pub async fn logout(&self, principal: &Principal) -> Result<(), AuthError> {
        self.logins.logout(principal).await
    }

    /// Ends every session of the caller's account, browser and token ones.
    pub async fn logout_all(&self, principal: &Principal) -> Result<(), AuthError> {
        self.logins.logout_all(principal).await
    }

    /// Forwards `request` to the upstream `name` at `path` (still
    /// percent-encoded), with a token minted for `name` alone.
    pub async fn forward(
        &self,
        principal: &Principal,
        name: &str,
        path: &str,
        request: Request<axum::body::Body>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let subject = Subject {
            user_id: &principal.user_id,
            session_id: &principal.session_id,
            role: &principal.role,
        };
        self.proxy
            .forward(name, path, request, |audience| {
                self.auth.minter.token(audience, &subject)
            })
            .await
    }
}
