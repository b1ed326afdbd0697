//! The state handlers share, and the sub-states they take from it.
//!
//! Each feature's handlers ask for their own service with `State<…>`
//! (axum's `FromRef`), never for the whole state, so a handler can only reach
//! what its feature uses, and each feature's routes are generic over any state
//! that provides it.

use std::sync::Arc;

use axum::extract::FromRef;
use bff_auth::code::CodeStore;
use bff_auth::layer::JwtLayer;
use bff_cache::ratelimit::ClientIp;
use bff_cache::response::TieredStore;
use bff_rbac::Policy;
use sqlx::PgPool;

use crate::audit::AuditLog;
use crate::auth::codes::CodeService;
use crate::auth::{Auth, AuthService};
use crate::browser::BrowserService;
use crate::currencies::CurrencyService;
use crate::dashboard::{DashboardService, DashboardSettings};
use crate::limits::Limits;
use crate::messaging::outbox::OutboxSignal;
use crate::messaging::seal::CodeSeal;
use crate::oauth::{OAuthParts, OAuthService};
use crate::orders::OrdersGateway;
use crate::orders::client::Backends;
use crate::records::RecordService;
use crate::users::{UserService, ViewCache};
use crate::wallets::WalletService;

/// What the state is built from: the connections and components that
/// start-up prepared.
#[derive(Debug)]
pub struct Parts {
    /// The Postgres pool.
    pub db: PgPool,
    /// Keys, sessions and passwords.
    pub auth: Arc<Auth>,
    /// Verification codes and their throttle.
    pub codes: Arc<dyn CodeStore>,
    /// Seals the codes that notifications carry.
    pub seal: CodeSeal,
    /// Wakes the outbox relay after a write.
    pub outbox: OutboxSignal,
    /// Roles and permissions.
    pub policy: Policy,
    /// Rate limits.
    pub limits: Limits,
    /// The response cache's store (shared by every instance through Redis).
    pub cache: Arc<TieredStore>,
    /// The orders service and the loyalty responder.
    pub backends: Arc<Backends>,
    /// How the dashboard assembles them.
    pub dashboard: DashboardSettings,
    /// The largest amount of one deposit.
    pub deposit_max: rust_decimal::Decimal,
    /// Social login.
    pub oauth: OAuthParts,
    /// The remote-API proxy of browser mode.
    pub proxy: bff_aggregate::proxy::Proxy,
}

/// State shared by the handlers: one service per feature, built once.
#[derive(Debug, Clone)]
pub struct AppState {
    auth: AuthService,
    codes: CodeService,
    users: UserService,
    records: RecordService,
    wallets: WalletService,
    currencies: CurrencyService,
    orders: OrdersGateway,
    dashboard: DashboardService,
    audit: AuditLog,
    oauth: OAuthService,
    browser: BrowserService,
    policy: Policy,
    client_ip: ClientIp,
    /// The router's own needs: authentication, limits, the cache store.
    pub(super) jwt: JwtLayer,
    pub(super) limits: Limits,
    pub(super) cache: Arc<TieredStore>,
}

impl AppState {
    /// Builds every feature's service from `parts`.
    pub fn new(parts: Parts) -> Self {
        let Parts {
            db,
            auth,
            codes,
            seal,
            outbox,
            policy,
            limits,
            cache,
            backends,
            dashboard,
            deposit_max,
            oauth,
            proxy,
        } = parts;
        let views = ViewCache::new(Arc::clone(&cache));
        let users = UserService::new(
            db.clone(),
            auth.sessions.clone(),
            views.clone(),
            limits.login.clone(),
        );
        let wallets = WalletService::new(db.clone(), views.clone(), deposit_max);
        let currencies = CurrencyService::new(db.clone());
        let orders = OrdersGateway::new(
            backends,
            currencies.clone(),
            views,
            auth.minter.clone(),
            auth.audiences.clone(),
        );
        let logins = AuthService::new(
            db.clone(),
            Arc::clone(&auth),
            limits.login.clone(),
            outbox.clone(),
        );
        Self {
            browser: BrowserService::new(db.clone(), Arc::clone(&auth), logins.clone(), proxy),
            auth: logins,
            codes: CodeService::new(
                db.clone(),
                Arc::clone(&auth),
                codes,
                seal,
                limits.login.clone(),
                limits.sms.clone(),
                outbox.clone(),
            ),
            records: RecordService::new(db.clone(), users.clone()),
            dashboard: DashboardService::new(
                users.clone(),
                wallets.clone(),
                orders.clone(),
                dashboard,
            ),
            oauth: OAuthService::new(
                db.clone(),
                Arc::clone(&auth),
                oauth.client,
                oauth.redirects,
                oauth.codes,
                limits.oauth.clone(),
                outbox.clone(),
            ),
            orders,
            audit: AuditLog::new(db),
            users,
            wallets,
            currencies,
            policy,
            client_ip: limits.client_ip.clone(),
            jwt: auth.jwt.clone(),
            limits,
            cache,
        }
    }

    /// Social login, for the demo page's provider buttons.
    pub fn oauth(&self) -> &OAuthService {
        &self.oauth
    }

    /// The dashboard's settings, for its cache policy.
    pub fn dashboard_settings(&self) -> &DashboardSettings {
        self.dashboard.settings()
    }
}

/// `FromRef<AppState>` for each sub-state, a clone of its field.
macro_rules! sub_states {
    ($($field:ident: $type:ty),* $(,)?) => {
        $(
            impl FromRef<AppState> for $type {
                fn from_ref(state: &AppState) -> Self {
                    state.$field.clone()
                }
            }
        )*
    };
}

sub_states! {
    auth: AuthService,
    codes: CodeService,
    users: UserService,
    records: RecordService,
    wallets: WalletService,
    currencies: CurrencyService,
    orders: OrdersGateway,
    dashboard: DashboardService,
    audit: AuditLog,
    oauth: OAuthService,
    browser: BrowserService,
    policy: Policy,
    client_ip: ClientIp,
}
