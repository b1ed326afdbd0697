//! `GET /api/v1/admin/audit-log`.

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::extract::{FromRef, State};
use bff_auth::layer::Principal;
use bff_core::Problem;
use bff_core::extract::{Json, Query};
use bff_core::pagination::{CURSOR, MAX_CURSOR_LEN, MAX_LIMIT, Page, PageParams};
use bff_rbac::Authz;
use schemars::JsonSchema;
use serde::Deserialize;
use uuid::Uuid;

use super::{AuditLog, AuditRecord, Filter};
use crate::http::ApiResult;
use crate::http::docs::bearer;
use crate::http::validation::{Fields, LINE, text};

/// Filters of the audit log, with the page.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this action: 1 to 64 lower-case letters, dots or underscores.
    #[schemars(regex(pattern = r"^[a-z_.]{1,64}$"))]
    action: Option<String>,
    /// Only this actor.
    actor_id: Option<Uuid>,
    /// Only this target id, 1 to 64 characters.
    #[schemars(length(max = 64), regex(pattern = LINE))]
    target_id: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[schemars(range(min = 1, max = MAX_LIMIT))]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[schemars(length(max = MAX_CURSOR_LEN), regex(pattern = CURSOR))]
    cursor: Option<String>,
}

/// `GET /admin/audit-log`; the caller must hold [`crate::rbac::AUDIT_READ`].
pub fn routes<S>() -> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    AuditLog: FromRef<S>,
    bff_rbac::Policy: FromRef<S>,
{
    ApiRouter::new().api_route(
        "/api/v1/admin/audit-log",
        get_with(list, |op| {
            bearer(
                op.tag("admin").summary("Read the audit log").description(
                    "Newest first. Admins only: it names every user's security events.",
                ),
            )
            .response_with::<403, Problem, _>(|r| r.description("Not an admin."))
            .response_with::<422, Problem, _>(|r| {
                r.description("`validation_failed`: a filter, `limit` or `cursor` is invalid.")
            })
        }),
    )
}

async fn list(
    State(log): State<AuditLog>,
    authz: Authz<Principal>,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<Page<AuditRecord>>> {
    authz.require(crate::rbac::AUDIT_READ)?;
    let mut fields = Fields::default();
    let valid_action = |a: &String| {
        (1..=64).contains(&a.len())
            && a.bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
    };
    if query.action.as_ref().is_some_and(|a| !valid_action(a)) {
        fields.push(
            "action",
            "must be 1 to 64 lower-case letters, dots or underscores",
        );
    }
    fields.check_opt("target_id", query.target_id.as_deref(), |t| {
        text(t, 1, 64, false)
    });
    fields.finish()?;
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    }
    .validate::<Uuid>()?;
    let filter = Filter {
        action: query.action,
        actor_id: query.actor_id,
        target_id: query.target_id,
    };
    let rows = log.list(filter, page.after, page.fetch_limit()).await?;
    Ok(Json(Page::from_rows(rows, page.limit, |last| last.id)))
}
