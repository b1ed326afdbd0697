//! `GET /api/v1/dashboard`.

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::extract::{FromRef, State};
use axum::response::{IntoResponse, Response};
use bff_core::Problem;
use http::{HeaderValue, header};

use super::{COMPLETE_HEADER, Dashboard, DashboardService};
use crate::http::ApiResult;
use crate::http::docs::bearer;
use crate::http::extract::{CallerId, Onward};

/// `GET /api/v1/dashboard`.
pub fn routes<S>() -> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    DashboardService: FromRef<S>,
{
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
    State(dashboards): State<DashboardService>,
    caller: CallerId,
    onward: Onward,
) -> ApiResult<Response> {
    let dashboard = dashboards.assemble(caller.0, onward).await?;
    let complete = dashboard.meta.complete;
    let mut response = axum::Json(dashboard).into_response();
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
