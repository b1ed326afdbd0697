//! Assembling the dashboard: each part from its feature's service, all at
//! once, each within its deadline.

use std::sync::Arc;
use std::time::Duration;

use bff_aggregate::{
    Aggregate, AggregateError, Assembled, Call, Forward, Retry, Source, SourceError,
};
use uuid::Uuid;

use super::{Dashboard, DashboardError, DashboardSettings};
use crate::orders::client::{Backends, OrderView};
use crate::orders::loyalty::Loyalty;
use crate::orders::proto;
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
    backends: Arc<Backends>,
    settings: DashboardSettings,
}

impl DashboardService {
    /// The dashboard from these services and backends.
    pub fn new(
        users: UserService,
        wallets: WalletService,
        backends: Arc<Backends>,
        settings: DashboardSettings,
    ) -> Self {
        Self {
            users,
            wallets,
            backends,
            settings,
        }
    }

    /// The deadlines and cache lifetime.
    pub fn settings(&self) -> &DashboardSettings {
        &self.settings
    }

    /// `user`'s dashboard; `forward` carries the caller's identity and request
    /// id to the backends.
    pub async fn assemble(
        &self,
        user: Uuid,
        forward: Forward,
    ) -> Result<Dashboard, DashboardError> {
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
        let client = self.backends.orders.clone();
        let fwd = forward.clone();
        let orders = Source::optional("recent_orders", settings.orders, move |call: Call| {
            let mut grpc = client.grpc();
            let request = bff_aggregate::grpc::request(
                proto::ListOrdersRequest {
                    limit: RECENT_ORDERS,
                    cursor: String::new(),
                },
                &fwd,
                &call,
            );
            async move {
                let response = grpc
                    .list_orders(request)
                    .await
                    .map_err(bff_aggregate::grpc::status_error)?;
                response
                    .into_inner()
                    .orders
                    .into_iter()
                    .map(|order| OrderView::try_from(order).map_err(SourceError::permanent))
                    .collect::<Result<Vec<_>, _>>()
            }
        })
        // An idempotent read: one quick retry, and a hedge when configured.
        .retry(Retry::new(1).backoff(Duration::from_millis(20)))
        .breaker(self.backends.orders_breaker.clone());
        let orders = match settings.hedge_after {
            Some(delay) => orders.hedge(delay),
            None => orders,
        };
        let (nats, subject) = (
            self.backends.nats.clone(),
            self.backends.loyalty_subject.clone(),
        );
        let loyalty = Source::optional("loyalty", settings.loyalty, move |call: Call| {
            let (nats, subject, forward) = (nats.clone(), subject.clone(), forward.clone());
            async move {
                let reply = bff_aggregate::nats::request(
                    &nats,
                    subject,
                    bytes::Bytes::new(),
                    &forward,
                    &call,
                )
                .await?;
                serde_json::from_slice::<Loyalty>(&reply.payload).map_err(SourceError::permanent)
            }
        })
        .breaker(self.backends.loyalty_breaker.clone());

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
