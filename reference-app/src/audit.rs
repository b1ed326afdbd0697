//! The audit log: admin actions, money movements and security events, and the
//! endpoint managers and admins read it through.

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::extract::State;
use bff_core::Problem;
use bff_core::extract::{Json, Query};
use bff_core::pagination::{Page, PageParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::startup::AppState;

/// One thing to record.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// Who did it; `None` for an anonymous caller or the system.
    pub actor: Option<Uuid>,
    /// What, e.g. `user.role_changed`.
    pub action: &'a str,
    /// The kind of thing it was done to, e.g. `user`.
    pub target_type: Option<&'a str>,
    /// Its id.
    pub target_id: Option<String>,
    /// The caller's IP address.
    pub ip: Option<&'a str>,
    /// Anything else worth keeping; never secrets.
    pub details: serde_json::Value,
}

impl<'a> Entry<'a> {
    /// `actor` did `action` to the `target_type` with id `target_id`.
    pub fn new(
        actor: Option<Uuid>,
        action: &'a str,
        target_type: &'a str,
        target_id: impl ToString,
    ) -> Self {
        Self {
            actor,
            action,
            target_type: Some(target_type),
            target_id: Some(target_id.to_string()),
            ip: None,
            details: serde_json::Value::Object(Default::default()),
        }
    }

    /// With details.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// Records `entry` with the current request id, inside the caller's transaction
/// when given one, so the record exists exactly when the action does.
pub async fn record(db: impl PgExecutor<'_>, entry: Entry<'_>) -> Result<(), sqlx::Error> {
    let request_id = bff_core::RequestId::current().map(|id| id.as_str().to_owned());
    sqlx::query(
        "INSERT INTO audit_log (id, actor_id, action, target_type, target_id, request_id, ip, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(Uuid::now_v7())
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(entry.target_id)
    .bind(request_id)
    .bind(entry.ip)
    .bind(entry.details)
    .execute(db)
    .await
    .map(drop)
}

/// A recorded action.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct AuditRecord {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Who did it; `null` for an anonymous caller or the system.
    pub actor_id: Option<Uuid>,
    /// What, e.g. `user.role_changed`.
    pub action: String,
    /// The kind of thing it was done to.
    pub target_type: Option<String>,
    /// Its id.
    pub target_id: Option<String>,
    /// The request it happened in.
    pub request_id: Option<String>,
    /// The caller's IP address.
    pub ip: Option<String>,
    /// Details of the action.
    pub details: serde_json::Value,
    /// When (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
}

/// Filters of the audit log, with the page.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this action.
    action: Option<String>,
    /// Only this actor.
    actor_id: Option<Uuid>,
    /// Only this target id.
    target_id: Option<String>,
    /// Page size, 1 to 100 (default 20).
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `GET /admin/audit-log`; the caller must hold [`crate::rbac::AUDIT_READ`].
pub fn routes() -> ApiRouter<AppState> {
    ApiRouter::new().api_route(
        "/api/v1/admin/audit-log",
        get_with(list, |op| {
            crate::auth::bearer(
                op.tag("admin")
                    .summary("Read the audit log")
                    .description("Newest first. Managers and admins."),
            )
            .response_with::<403, Problem, _>(|r| r.description("Not a manager or admin."))
        }),
    )
}

async fn list(
    State(state): State<AppState>,
    authz: bff_rbac::Authz<bff_auth::layer::Principal>,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<Page<AuditRecord>>> {
    authz.require(crate::rbac::AUDIT_READ)?;
    let mut fields = crate::validation::Fields::default();
    let valid_action = |a: &String| {
        (1..=64).contains(&a.len())
            && a.bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
    };
    if query.action.as_ref().is_some_and(|a| !valid_action(a)) {
        fields.0.push(bff_core::problem::FieldError::new(
            "action",
            "must be 1 to 64 lower-case letters, dots or underscores",
        ));
    }
    fields.check_opt("target_id", query.target_id.as_deref(), |t| {
        crate::validation::text(t, 1, 64, false)
    });
    fields.finish()?;
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    }
    .validate::<Uuid>()?;
    let rows: Vec<AuditRecord> = sqlx::query_as(
        "SELECT id, actor_id, action, target_type, target_id, request_id, ip, details, created_at
         FROM audit_log
         WHERE ($1::uuid IS NULL OR id < $1)
           AND ($2::text IS NULL OR action = $2)
           AND ($3::uuid IS NULL OR actor_id = $3)
           AND ($4::text IS NULL OR target_id = $4)
         ORDER BY id DESC
         LIMIT $5",
    )
    .bind(page.after)
    .bind(query.action)
    .bind(query.actor_id)
    .bind(query.target_id)
    .bind(page.fetch_limit())
    .fetch_all(&state.db)
    .await?;
    Ok(Json(Page::from_rows(rows, page.limit, |last| last.id)))
}
