//! `GET /api/v1/dashboard`: one payload from four backends, asked at once.
//!
//! - `profile` (Postgres) is required: without it there is no dashboard, 503.
//! - `wallets` (Postgres), `recent_orders` (the orders service over gRPC) and
//!   `loyalty` (NATS request-reply) are optional: a slow or failed one is `null`
//!   and named in `meta`, and `complete` is false.
//!
//! Each source has its own deadline inside the request's; the orders and
//! loyalty backends each have a circuit breaker, so a dead one is skipped at
//! once instead of waited on by every request. Recent orders are an idempotent
//! read: retried once after a quick failure, and hedged when configured.
//! Complete dashboards are cached per user for a few seconds (invalidated by
//! the writes that change them); partial ones never are.

use std::time::Duration;

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bff_aggregate::{
    Aggregate, AggregateError, Assembled, Call, CircuitBreaker, Forward, Meta, Retry, Source,
    SourceError,
};
use bff_auth::layer::Principal;
use bff_core::Problem;
use http::{HeaderMap, HeaderValue, header};
use schemars::JsonSchema;
use serde::Serialize;

use crate::auth::bearer;
use crate::error::ApiResult;
use crate::ids::caller_id;
use crate::orders::client::{OrderView, OrdersClient};
use crate::orders::loyalty::Loyalty;
use crate::orders::proto;
use crate::startup::AppState;
use crate::users::{self, UserView};
use crate::wallets::{self, WalletView};

/// The response header that mirrors `meta.complete`.
pub const COMPLETE_HEADER: &str = "x-bff-complete";

/// How many recent orders the dashboard shows.
const RECENT_ORDERS: u32 = 5;
/// How many wallets the dashboard shows.
const WALLETS: i64 = 20;

/// Deadlines and resilience of the dashboard's sources.
#[derive(Debug, Clone)]
pub struct DashboardSettings {
    /// The whole request's deadline.
    pub deadline: Duration,
    /// Profile and wallets (Postgres).
    pub database: Duration,
    /// Recent orders (gRPC).
    pub orders: Duration,
    /// Loyalty (NATS).
    pub loyalty: Duration,
    /// Hedge the recent-orders call after this long, if set.
    pub hedge_after: Option<Duration>,
    /// How long a complete dashboard is cached per user (zero: not cached).
    pub cache_ttl: Duration,
}

/// The backends the BFF calls, and their breakers (shared by every request).
#[derive(Debug)]
pub struct Backends {
    /// The orders service.
    pub orders: OrdersClient,
    /// NATS, for the loyalty responder.
    pub nats: async_nats::Client,
    /// The loyalty subject, with the deployment's prefix.
    pub loyalty_subject: String,
    /// Breaker of the orders service.
    pub orders_breaker: CircuitBreaker,
    /// Breaker of the loyalty responder.
    pub loyalty_breaker: CircuitBreaker,
    /// The dashboard's deadlines.
    pub dashboard: DashboardSettings,
}

/// The dashboard.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Dashboard {
    /// The caller's profile.
    pub profile: UserView,
    /// The caller's wallets (up to 20); `null` when unavailable.
    pub wallets: Option<Vec<WalletView>>,
    /// The caller's latest orders (up to 5); `null` when unavailable.
    pub recent_orders: Option<Vec<OrderView>>,
    /// Loyalty points and tier; `null` when unavailable.
    pub loyalty: Option<Loyalty>,
    /// How each source fared; `complete` is false when any part is missing.
    pub meta: Meta,
}

/// `GET /api/v1/dashboard`.
pub fn routes() -> ApiRouter<AppState> {
    ApiRouter::new().api_route(
        "/api/v1/dashboard",
        get_with(dashboard, |op| {
            bearer(op.tag("users"))
                .summary("My dashboard")
                .description(
                    "Profile and wallets (Postgres), recent orders (gRPC) and loyalty (NATS), fetched concurrently. \
                     A part whose source is slow or down is `null`, `meta.sources` says why, `meta.complete` is false, \
                     and the `X-Bff-Complete` header mirrors it.",
                )
                .response::<200, axum::Json<Dashboard>>()
                .response_with::<503, Problem, _>(|r| {
                    r.description("The profile could not be read; `sources` says which source failed how.")
                })
        }),
    )
}

async fn dashboard(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let user = caller_id(&principal)?;
    let forward = Forward::from_headers(&headers);
    let backends = &state.backends;
    let settings = &backends.dashboard;

    let db = state.db.clone();
    let profile = Source::required("profile", settings.database, move |_call: Call| {
        let db = db.clone();
        async move {
            users::find_by_id(&db, user)
                .await
                .map_err(SourceError::transient)
        }
    });
    let db = state.db.clone();
    let wallets = Source::optional("wallets", settings.database, move |_call: Call| {
        let db = db.clone();
        async move {
            wallets::list_for(&db, user, None, WALLETS)
                .await
                .map_err(SourceError::transient)
        }
    });
    let client = backends.orders.clone();
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
    .breaker(backends.orders_breaker.clone());
    let orders = match settings.hedge_after {
        Some(delay) => orders.hedge(delay),
        None => orders,
    };
    let (nats, subject) = (backends.nats.clone(), backends.loyalty_subject.clone());
    let loyalty = Source::optional("loyalty", settings.loyalty, move |call: Call| {
        let (nats, subject, forward) = (nats.clone(), subject.clone(), forward.clone());
        async move {
            let reply =
                bff_aggregate::nats::request(&nats, subject, bytes::Bytes::new(), &forward, &call)
                    .await?;
            serde_json::from_slice::<Loyalty>(&reply.payload).map_err(SourceError::permanent)
        }
    })
    .breaker(backends.loyalty_breaker.clone());

    let run = Aggregate::new(settings.deadline)
        .run((profile, wallets, orders, loyalty))
        .await;
    let Assembled {
        parts: (profile, wallets, recent_orders, loyalty),
        meta,
    } = match run {
        Ok(assembled) => assembled,
        Err(AggregateError::Required { meta, .. }) => {
            return Ok(
                Problem::unavailable("Your profile could not be read; try again shortly.")
                    .with_extension(
                        "sources",
                        serde_json::to_value(&meta.sources).unwrap_or_default(),
                    )
                    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
                    .into_response(),
            );
        }
        Err(error) => return Err(crate::error::ApiError::internal(error)),
    };
    let Some(profile) = profile else {
        return Err(Problem::unauthorized()
            .with_detail("The account no longer exists.")
            .into());
    };
    let complete = meta.complete;
    let body = Dashboard {
        profile: profile.view(),
        wallets,
        recent_orders,
        loyalty,
        meta,
    };
    let mut response = axum::Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        COMPLETE_HEADER,
        HeaderValue::from_static(if complete { "true" } else { "false" }),
    );
    // Only a complete dashboard may be cached: a partial one would keep
    // showing an outage after the backend is back.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if complete {
            "private, max-age=0"
        } else {
            "no-store"
        }),
    );
    Ok(response)
}
