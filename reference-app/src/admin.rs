//! `/admin/users`: reading anyone's profile (managers and admins), changing
//! roles and blocking (admins). A role change or a block ends every session of
//! the user at once, so their tokens stop working.

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with, put_with};
use axum::extract::{Path, State};
use bff_auth::layer::Principal;
use bff_auth::session::SessionStore;
use bff_core::Problem;
use bff_core::extract::{Json, Query};
use bff_core::pagination::{Page, PageParams};
use bff_rbac::Authz;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{self, Entry};
use crate::auth::{ClientMeta, bearer};
use crate::error::ApiResult;
use crate::identity::Role;
use crate::ops;
use crate::rbac;
use crate::startup::AppState;
use crate::users::{self, UserRecord, UserView};

fn forbidden(
    op: aide::transform::TransformOperation<'_>,
) -> aide::transform::TransformOperation<'_> {
    ops::forbidden(bearer(op.tag("admin")))
}

/// The admin user endpoints.
pub fn routes() -> ApiRouter<AppState> {
    ApiRouter::new()
        .api_route(
            "/api/v1/admin/users",
            get_with(list_users, |op| {
                forbidden(op.summary("List users").description(
                    "Managers and admins. Filters: `role`, and `q` (part of the email, phone or name).",
                ))
            }),
        )
        .api_route(
            "/api/v1/admin/users/{id}",
            get_with(get_user, |op| {
                forbidden(op.summary("Get a user"))
                    .response_with::<404, Problem, _>(|r| r.description("No such user."))
            }),
        )
        .api_route(
            "/api/v1/admin/users/{id}/role",
            put_with(set_role, |op| {
                forbidden(op.summary("Change a user's role").description(
                    "Admins. Nobody grants a role above their own or changes their own role. Ends every session of the user.",
                ))
                .response_with::<404, Problem, _>(|r| r.description("No such user."))
            }),
        )
        .api_route(
            "/api/v1/admin/users/{id}/block",
            post_with(block, |op| {
                forbidden(op.summary("Block a user").description(
                    "Admins. Ends every session of the user; logins are refused until unblocked.",
                ))
                .response_with::<404, Problem, _>(|r| r.description("No such user."))
            }),
        )
        .api_route(
            "/api/v1/admin/users/{id}/unblock",
            post_with(unblock, |op| {
                forbidden(op.summary("Unblock a user").description("Admins."))
                    .response_with::<404, Problem, _>(|r| r.description("No such user."))
            }),
        )
}

/// A user as managers and admins see it: the user object and whether it is blocked.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AdminUserView {
    /// The user object.
    #[serde(flatten)]
    pub user: UserView,
    /// When the account was blocked (RFC 3339); `null` if it is not.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub blocked_at: Option<OffsetDateTime>,
}

impl From<&UserRecord> for AdminUserView {
    fn from(user: &UserRecord) -> Self {
        Self {
            user: user.view(),
            blocked_at: user.blocked_at,
        }
    }
}

/// Filters of the user list, with the page.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Only users with this role.
    role: Option<Role>,
    /// Part of the email, phone or name (case-insensitive), up to 100 characters.
    q: Option<String>,
    /// Page size, 1 to 100 (default 20).
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Path of one user.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UserPath {
    /// User id.
    id: String,
}

/// A user id from the path; a malformed one names nobody.
pub(crate) fn user_id(path: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(path).map_err(|_| Problem::not_found())
}

/// The live user `id`, or 404.
pub(crate) async fn existing_user(state: &AppState, id: Uuid) -> ApiResult<UserRecord> {
    Ok(users::find_by_id(&state.db, id)
        .await?
        .ok_or_else(Problem::not_found)?)
}

async fn list_users(
    State(state): State<AppState>,
    authz: Authz<Principal>,
    Query(query): Query<UserQuery>,
) -> ApiResult<Json<Page<AdminUserView>>> {
    authz.require(rbac::USERS_READ_ANY)?;
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    }
    .validate::<Uuid>()?;
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if q.is_some_and(|q| q.chars().count() > 100) {
        return Err(Problem::invalid_field("q", "must be at most 100 characters").into());
    }
    let rows = users::search(&state.db, query.role, q, page.after, page.fetch_limit()).await?;
    Ok(Json(
        Page::from_rows(rows, page.limit, |last| last.id).map(|u| AdminUserView::from(&u)),
    ))
}

async fn get_user(
    State(state): State<AppState>,
    authz: Authz<Principal>,
    Path(path): Path<UserPath>,
) -> ApiResult<Json<AdminUserView>> {
    authz.require(rbac::USERS_READ_ANY)?;
    let user = existing_user(&state, user_id(&path.id)?).await?;
    Ok(Json(AdminUserView::from(&user)))
}

/// `PUT /admin/users/{id}/role` body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    /// The new role.
    role: Role,
}

/// Checks that the caller may act on `target` at all: admins only, never on
/// themselves, never on someone ranked above them.
fn may_manage(authz: &Authz<Principal>, target: &UserRecord) -> Result<(), Problem> {
    authz.require(rbac::USERS_MANAGE)?;
    if target.id.to_string() == authz.subject.user_id {
        return Err(Problem::forbidden().with_detail("You cannot do this to your own account."));
    }
    let role = target.role().as_str();
    authz.require_grant(role, role)
}

async fn set_role(
    State(state): State<AppState>,
    authz: Authz<Principal>,
    meta: ClientMeta,
    Path(path): Path<UserPath>,
    Json(body): Json<RoleRequest>,
) -> ApiResult<Json<AdminUserView>> {
    authz.require(rbac::USERS_MANAGE)?;
    let target = existing_user(&state, user_id(&path.id)?).await?;
    may_manage(&authz, &target)?;
    authz.require_grant(target.role().as_str(), body.role.as_str())?;
    let actor = Uuid::parse_str(&authz.subject.user_id).ok();
    // Sessions end before the change (so with Redis down nothing changes) and
    // after it (so none opened meanwhile keeps the old role).
    let target_id = target.id.to_string();
    state.auth.sessions.revoke_all(&target_id, None).await?;
    let mut tx = state.db.begin().await?;
    let user = users::set_role(&mut *tx, target.id, body.role)
        .await?
        .ok_or_else(Problem::not_found)?;
    audit::record(
        &mut *tx,
        Entry {
            ip: meta.ip.as_deref(),
            ..Entry::new(actor, "user.role_changed", "user", target.id).details(
                serde_json::json!({"from": target.role().as_str(), "to": body.role.as_str()}),
            )
        },
    )
    .await?;
    tx.commit().await?;
    // Tokens carry the role: the old ones must not outlive the change.
    state.auth.sessions.revoke_all(&target_id, None).await?;
    Ok(Json(AdminUserView::from(&user)))
}

async fn block(
    State(state): State<AppState>,
    authz: Authz<Principal>,
    meta: ClientMeta,
    Path(path): Path<UserPath>,
) -> ApiResult<Json<AdminUserView>> {
    set_blocked(state, authz, meta, path, true).await
}

async fn unblock(
    State(state): State<AppState>,
    authz: Authz<Principal>,
    meta: ClientMeta,
    Path(path): Path<UserPath>,
) -> ApiResult<Json<AdminUserView>> {
    set_blocked(state, authz, meta, path, false).await
}

async fn set_blocked(
    state: AppState,
    authz: Authz<Principal>,
    meta: ClientMeta,
    path: UserPath,
    blocked: bool,
) -> ApiResult<Json<AdminUserView>> {
    authz.require(rbac::USERS_MANAGE)?;
    let target = existing_user(&state, user_id(&path.id)?).await?;
    may_manage(&authz, &target)?;
    let actor = Uuid::parse_str(&authz.subject.user_id).ok();
    let target_id = target.id.to_string();
    if blocked {
        state.auth.sessions.revoke_all(&target_id, None).await?;
    }
    let mut tx = state.db.begin().await?;
    let user = users::set_blocked(&mut *tx, target.id, blocked)
        .await?
        .ok_or_else(Problem::not_found)?;
    let action = if blocked {
        "user.blocked"
    } else {
        "user.unblocked"
    };
    audit::record(
        &mut *tx,
        Entry {
            ip: meta.ip.as_deref(),
            ..Entry::new(actor, action, "user", target.id)
        },
    )
    .await?;
    tx.commit().await?;
    if blocked {
        state.auth.sessions.revoke_all(&target_id, None).await?;
    }
    Ok(Json(AdminUserView::from(&user)))
}
