//! Assembling the dashboard: each part from its feature's service, all at
//! once, each within its deadline.

use std::time::Duration;

use bff_aggregate::{Aggregate, AggregateError, Assembled, Call, Retry, Source, SourceError};
use uuid::Uuid;

use super::{Dashboard, DashboardError, DashboardSettings};
use crate::http::extract::Onward;
use crate::orders::OrdersGateway;
use crate::users::UserService;
use crate::wallets::WalletService;

/// How many recent orders the dashboard shows.
const RECENT_ORDERS: u32 = 5;
/// How many wallets the dashboard shows.
const WALLETS: i64 = 20;

/// The dashboard's sources and deadlines.
#[derive(Debug, Clone)]
pub struct DashboardService {
    users: UserService,
    wallets: WalletService,
    orders: OrdersGateway,
    settings: DashboardSettings,
}

impl DashboardService {
    /// The dashboard from these services.
    pub fn new(
        users: UserService,
        wallets: WalletService,
        orders: OrdersGateway,
        settings: DashboardSettings,
    ) -> Self {
        Self {
            users,
            wallets,
            orders,
            settings,
        }
    }

    /// The deadlines and cache lifetime.
    pub fn settings(&self) -> &DashboardSettings {
        &self.settings
    }

    /// `user`'s dashboard; `onward` is the caller the backends are asked for
    /// (each call carries a token minted for its backend).
    pub async fn assemble(&self, user: Uuid, onward: Onward) -> Result<Dashboard, DashboardError> {
        let settings = &self.settings;
        let users = self.users.clone();
        let profile = Source::required("profile", settings.database, move |_call: Call| {
            let users = users.clone();
            async move { users.find(user).await.map_err(SourceError::transient) }
        });
        let wallets = self.wallets.clone();
        let wallets = Source::optional("wallets", settings.database, move |_call: Call| {
            let wallets = wallets.clone();
            async move {
                wallets
                    .list(user, None, WALLETS)
                    .await
                    .map_err(SourceError::transient)
            }
        });
        let (orders_breaker, loyalty_breaker) = self.orders.breakers();
        let gateway = self.orders.clone();
        let caller = onward.clone();
        let orders = Source::optional("recent_orders", settings.orders, move |call: Call| {
            gateway.recent(RECENT_ORDERS, &caller, &call)
        })
        // An idempotent read: one quick retry, and a hedge when configured.
        .retry(Retry::new(1).backoff(Duration::from_millis(20)))
        .breaker(orders_breaker.clone());
        let orders = match settings.hedge_after {
            Some(delay) => orders.hedge(delay),
            None => orders,
        };
        let gateway = self.orders.clone();
        let loyalty = Source::optional("loyalty", settings.loyalty, move |call: Call| {
            gateway.loyalty(&onward, &call)
        })
        .breaker(loyalty_breaker.clone());

        let run = Aggregate::new(settings.deadline)
            .run((profile, wallets, orders, loyalty))
            .await;
        let Assembled {
            parts: (profile, wallets, recent_orders, loyalty),
            meta,
        } = match run {
            Ok(assembled) => assembled,
            Err(AggregateError::Required { meta, .. }) => {
                return Err(DashboardError::ProfileUnavailable(Box::new(meta)));
            }
            Err(error) => return Err(DashboardError::Aggregate(error)),
        };
        let profile = profile.ok_or(DashboardError::AccountGone)?;
        Ok(Dashboard {
            profile: profile.view(),
            wallets,
            recent_orders,
            loyalty,
            meta,
        })
    }
}
