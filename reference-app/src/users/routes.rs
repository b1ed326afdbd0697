//! `/api/v1/me` and `/api/v1/admin/users`: extract, call the service, map.

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with, put_with};
use aide::transform::TransformOperation;
use axum::extract::{FromRef, Path, State};
use axum::response::NoContent;
use bff_auth::layer::Principal;
use bff_core::Problem;
use bff_core::extract::{Json, Query};
use bff_core::pagination::{CURSOR, MAX_CURSOR_LEN, MAX_LIMIT, Page, PageParams};
use bff_rbac::Authz;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::service::Actor;
use super::{UserRecord, UserService, UserView};
use crate::http::ApiResult;
use crate::http::docs::{self, bearer};
use crate::http::extract::{CallerId, ClientMeta, path_id};
use crate::http::validation::{LINE, OPTIONAL_LINE, text};
use crate::identity::Role;
use crate::rbac;

/// `/me`, apart from the other routes so that the per-user response cache
/// covers it and nothing else.
pub fn me<S>() -> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    UserService: FromRef<S>,
{
    ApiRouter::new().api_route(
        "/api/v1/me",
        get_with(get_me, |op| {
            bearer(op.tag("users").summary("My profile").description(
                "Cached per user for a short time (`X-Cache`); every change to the account invalidates it.",
            ))
        })
        .patch_with(update_me, |op| {
            bearer(op.tag("users").summary("Update my profile"))
        }),
    )
}

fn forbidden(op: TransformOperation<'_>) -> TransformOperation<'_> {
    docs::forbidden(bearer(op.tag("admin")))
}

/// An admin operation on one user: 403 for the wrong role, 404 for no such user.
fn on_user(op: TransformOperation<'_>) -> TransformOperation<'_> {
    docs::not_found(forbidden(op), "No such user.")
}

/// The admin user endpoints.
pub fn admin<S>() -> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    UserService: FromRef<S>,
    bff_rbac::Policy: FromRef<S>,
    bff_cache::ratelimit::ClientIp: FromRef<S>,
{
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
            get_with(get_user, |op| on_user(op.summary("Get a user"))),
        )
        .api_route(
            "/api/v1/admin/users/{id}/role",
            put_with(set_role, |op| {
                on_user(op.summary("Change a user's role").description(
                    "Admins. Nobody grants a role above their own or changes their own role. Ends every session of the user.",
                ))
            }),
        )
        .api_route(
            "/api/v1/admin/users/{id}/block",
            post_with(block, |op| {
                on_user(op.summary("Block a user").description(
                    "Admins. Ends every session of the user; logins are refused until unblocked.",
                ))
            }),
        )
        .api_route(
            "/api/v1/admin/users/{id}/unblock",
            post_with(unblock, |op| {
                on_user(op.summary("Unblock a user").description("Admins."))
            }),
        )
        .api_route(
            "/api/v1/admin/users/{id}/unlock-login",
            post_with(unlock_login, |op| {
                on_user(op.summary("Clear a user's login locks").description(
                    "Admins. Clears every lock and failure count of the user's email and phone, from every client address.",
                ))
            }),
        )
}

async fn get_me(State(users): State<UserService>, caller: CallerId) -> ApiResult<Json<UserView>> {
    Ok(Json(users.me(caller.0).await?.view()))
}

/// `PATCH /me` body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdateMeRequest {
    /// Display name, 1 to 100 characters.
    #[schemars(length(max = 100), regex(pattern = LINE))]
    name: String,
}

async fn update_me(
    State(users): State<UserService>,
    caller: CallerId,
    Json(body): Json<UpdateMeRequest>,
) -> ApiResult<Json<UserView>> {
    let name = text(&body.name, 1, 100, false).map_err(|e| Problem::invalid_field("name", e))?;
    Ok(Json(users.rename(caller.0, &name).await?.view()))
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
    #[schemars(length(max = 100), regex(pattern = OPTIONAL_LINE))]
    q: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[schemars(range(min = 1, max = MAX_LIMIT))]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[schemars(length(max = MAX_CURSOR_LEN), regex(pattern = CURSOR))]
    cursor: Option<String>,
}

/// Path of one user.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UserPath {
    /// User id.
    #[schemars(with = "Uuid")]
    id: String,
}

async fn list_users(
    State(users): State<UserService>,
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
        Some(q) => text(q, 0, 100, false).map_err(|e| Problem::invalid_field("q", e))?,
        None => String::new(),
    };
    let q = (!q.is_empty()).then_some(q.as_str());
    let rows = users
        .search(query.role, q, page.after, page.fetch_limit())
        .await?;
    Ok(Json(
        Page::from_rows(rows, page.limit, |last| last.id).map(|u| AdminUserView::from(&u)),
    ))
}

async fn get_user(
    State(users): State<UserService>,
    authz: Authz<Principal>,
    Path(path): Path<UserPath>,
) -> ApiResult<Json<AdminUserView>> {
    authz.require(rbac::USERS_READ_ANY)?;
    let user = users.get(path_id(&path.id)?).await?;
    Ok(Json(AdminUserView::from(&user)))
}

/// `PUT /admin/users/{id}/role` body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    /// The new role.
    role: Role,
}

/// The caller of an admin action, once its token's role allows it.
fn actor<'a>(authz: &'a Authz<Principal>, meta: &'a ClientMeta) -> ApiResult<Actor<'a>> {
    authz.require(rbac::USERS_MANAGE)?;
    Ok(Actor {
        id: CallerId::of(&authz.subject)?.0,
        policy: &authz.policy,
        ip: meta.ip.as_deref(),
    })
}

async fn set_role(
    State(users): State<UserService>,
    authz: Authz<Principal>,
    meta: ClientMeta,
    Path(path): Path<UserPath>,
    Json(body): Json<RoleRequest>,
) -> ApiResult<Json<AdminUserView>> {
    let actor = actor(&authz, &meta)?;
    let user = users.set_role(actor, path_id(&path.id)?, body.role).await?;
    Ok(Json(AdminUserView::from(&user)))
}

async fn block(
    State(users): State<UserService>,
    authz: Authz<Principal>,
    meta: ClientMeta,
    Path(path): Path<UserPath>,
) -> ApiResult<Json<AdminUserView>> {
    let actor = actor(&authz, &meta)?;
    let user = users.set_blocked(actor, path_id(&path.id)?, true).await?;
    Ok(Json(AdminUserView::from(&user)))
}

async fn unlock_login(
    State(users): State<UserService>,
    authz: Authz<Principal>,
    meta: ClientMeta,
    Path(path): Path<UserPath>,
) -> ApiResult<NoContent> {
    let actor = actor(&authz, &meta)?;
    users.unlock_login(actor, path_id(&path.id)?).await?;
    Ok(NoContent)
}

async fn unblock(
    State(users): State<UserService>,
    authz: Authz<Principal>,
    meta: ClientMeta,
    Path(path): Path<UserPath>,
) -> ApiResult<Json<AdminUserView>> {
    let actor = actor(&authz, &meta)?;
    let user = users.set_blocked(actor, path_id(&path.id)?, false).await?;
    Ok(Json(AdminUserView::from(&user)))
}
