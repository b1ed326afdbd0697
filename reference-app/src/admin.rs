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
use crate::ids::{caller_id, path_id as user_id};
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
    let q = match query.q.as_deref() {
        Some(q) => {
            crate::validation::text(q, 0, 100, false).map_err(|e| Problem::invalid_field("q", e))?
        }
        None => String::new(),
    };
    let q = (!q.is_empty()).then_some(q.as_str());
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

/// The caller and the target of a role change or block, locked (in id order)
/// and read inside the transaction, so two admins acting on each other at once
/// queue, and every check sees the roles as they are, not as the token says.
struct Locked {
    actor: Uuid,
    actor_role: String,
    target: UserRecord,
}

async fn lock_pair(
    conn: &mut sqlx::PgConnection,
    authz: &Authz<Principal>,
    target: Uuid,
) -> ApiResult<Locked> {
    authz.require(rbac::USERS_MANAGE)?;
    let actor = caller_id(&authz.subject)?;
    if actor == target {
        return Err(Problem::forbidden()
            .with_detail("You cannot do this to your own account.")
            .into());
    }
    let mut rows = users::lock_for_update(&mut *conn, &[actor, target]).await?;
    let me = rows.iter().find(|r| r.id == actor);
    let Some(me) = me.filter(|me| me.blocked_at.is_none()) else {
        // Blocked or deleted since the token was issued.
        return Err(Problem::unauthorized().into());
    };
    if !authz.policy.allows(&me.role, rbac::USERS_MANAGE) {
        return Err(Problem::forbidden()
            .with_detail("Your role does not allow this.")
            .into());
    }
    let actor_role = me.role.clone();
    let Some(index) = rows.iter().position(|r| r.id == target) else {
        return Err(Problem::not_found().into());
    };
    let target = rows.swap_remove(index);
    let role = target.role();
    if !authz
        .policy
        .can_grant(&actor_role, role.as_str(), role.as_str())
    {
        return Err(Problem::forbidden()
            .with_detail("You cannot act on someone whose role is above yours.")
            .into());
    }
    Ok(Locked {
        actor,
        actor_role,
        target,
    })
}

async fn set_role(
    State(state): State<AppState>,
    authz: Authz<Principal>,
    meta: ClientMeta,
    Path(path): Path<UserPath>,
    Json(body): Json<RoleRequest>,
) -> ApiResult<Json<AdminUserView>> {
    authz.require(rbac::USERS_MANAGE)?;
    let target_id = user_id(&path.id)?;
    let mut tx = state.db.begin().await?;
    let Locked {
        actor,
        actor_role,
        target,
    } = lock_pair(&mut tx, &authz, target_id).await?;
    let (from, to) = (target.role().as_str(), body.role.as_str());
    if !authz.policy.can_grant(&actor_role, from, to) {
        return Err(Problem::forbidden()
            .with_detail("Nobody grants a role above their own.")
            .into());
    }
    // Sessions end before the change (so with Redis down nothing changes) and
    // after it (so none opened meanwhile keeps the old role in its tokens).
    let key = target.id.to_string();
    state.auth.sessions.revoke_all(&key, None).await?;
    let user = users::set_role(&mut *tx, target.id, body.role)
        .await?
        .ok_or_else(Problem::not_found)?;
    audit::record(
        &mut *tx,
        Entry {
            ip: meta.ip.as_deref(),
            ..Entry::new(Some(actor), "user.role_changed", "user", target.id)
                .details(serde_json::json!({"from": from, "to": to}))
        },
    )
    .await?;
    tx.commit().await?;
    // The committed change is made visible first; the revocation may fail.
    state.user_changed(user.id).await;
    state.auth.sessions.revoke_all(&key, None).await?;
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
    let target_id = user_id(&path.id)?;
    let mut tx = state.db.begin().await?;
    let Locked { actor, target, .. } = lock_pair(&mut tx, &authz, target_id).await?;
    let key = target.id.to_string();
    if blocked {
        state.auth.sessions.revoke_all(&key, None).await?;
    }
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
            ..Entry::new(Some(actor), action, "user", target.id)
        },
    )
    .await?;
    tx.commit().await?;
    state.user_changed(user.id).await;
    if blocked {
        state.auth.sessions.revoke_all(&key, None).await?;
    }
    Ok(Json(AdminUserView::from(&user)))
}
