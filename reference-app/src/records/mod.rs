//! Owner-scoped collections with soft delete: `/addresses` and `/wishlist`.
//!
//! Every query carries the owner check itself (`WHERE id = $1 AND user_id = $2
//! AND deleted_at IS NULL`), so someone else's id is 404 for every verb, exactly
//! like an id that does not exist. Deleting sets `deleted_at`; the row stays,
//! and vanishes from every read and from the uniqueness rules (partial
//! indexes). Admins restore. `version` grows with each write and is the
//! `ETag`; a `PATCH` with a stale `If-Match` is 412.

mod addresses;
mod wishlist;

use std::future::Future;

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use aide::transform::TransformOperation;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, NoContent, Response};
use bff_auth::layer::Principal;
use bff_core::Problem;
use bff_core::extract::{Json, Query};
use bff_core::pagination::{Page, PageParams};
use bff_rbac::Authz;
use http::{HeaderMap, HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

pub use addresses::Address;
pub use wishlist::WishlistItem;

use crate::admin::existing_user;
use crate::audit::{self, Entry};
use crate::auth::bearer;
use crate::error::{ApiError, ApiResult};
use crate::ids::{caller_id, path_id};
use crate::ops::{self, forbidden, invalid};
use crate::rbac;
use crate::startup::AppState;

/// A kind of owner-scoped record.
pub trait Collection:
    for<'r> sqlx::FromRow<'r, PgRow> + Serialize + JsonSchema + Send + Unpin + 'static
{
    /// The table.
    const TABLE: &'static str;
    /// The columns the record reads, in `FromRow` order.
    const COLUMNS: &'static str;
    /// The URL segment, e.g. `addresses`.
    const PATH: &'static str;
    /// The OpenAPI tag and audit target type, e.g. `address`.
    const KIND: &'static str;
    /// The body of a create.
    type Create: DeserializeOwned + JsonSchema + Send + 'static;
    /// The body of a patch: every field optional.
    type Patch: DeserializeOwned + JsonSchema + Send + 'static;

    /// The record's id.
    fn id(&self) -> Uuid;
    /// The record's version (its `ETag`).
    fn version(&self) -> i32;

    /// Validates and inserts, inside the caller's transaction.
    fn insert(
        conn: &mut PgConnection,
        owner: Uuid,
        body: Self::Create,
    ) -> impl Future<Output = ApiResult<Self>> + Send;

    /// Validates and applies a patch to the live record `id` of `owner` whose
    /// version is one of `expected` (any version when `None`); `None` when no
    /// row matched.
    fn update(
        conn: &mut PgConnection,
        id: Uuid,
        owner: Uuid,
        expected: Option<Vec<i32>>,
        body: Self::Patch,
    ) -> impl Future<Output = ApiResult<Option<Self>>> + Send;
}

fn doc<C: Collection>(op: TransformOperation<'_>) -> TransformOperation<'_> {
    bearer(op.tag(C::KIND))
}

fn missing(op: TransformOperation<'_>) -> TransformOperation<'_> {
    ops::not_found(op, "No such record of yours (someone else's is 404 too).")
}

/// The routes of collection `C`: the owner's own, and the admin ones.
pub fn routes<C: Collection>() -> ApiRouter<AppState> {
    let base = format!("/api/v1/{}", C::PATH);
    let item = format!("{base}/{{id}}");
    ApiRouter::new()
        .api_route(
            &base,
            get_with(list::<C>, |op| doc::<C>(op.summary("List mine")))
                .post_with(create::<C>, |op| {
                    invalid(doc::<C>(op.summary("Create")))
                        .response::<201, axum::Json<C>>()
                        .response_with::<409, Problem, _>(|r| r.description("Conflicts with a live record (a second default address, a SKU already listed)."))
                }),
        )
        .api_route(
            &item,
            get_with(read::<C>, |op| {
                missing(doc::<C>(op.response::<200, axum::Json<C>>().summary("Get one").description("With an `ETag` for `If-Match`.")))
            })
            .patch_with(update::<C>, |op| {
                invalid(missing(doc::<C>(op.response::<200, axum::Json<C>>().summary("Update").description(
                    "Send `If-Match` with the `ETag` of your last read to refuse a stale write (412).",
                ))))
                .response_with::<412, Problem, _>(|r| r.description("`If-Match` does not match: someone changed it since your read."))
                .response_with::<409, Problem, _>(|r| r.description("Conflicts with a live record."))
            })
            .delete_with(delete::<C>, |op| missing(doc::<C>(op.summary("Delete (soft)")))),
        )
        .api_route(
            &format!("{item}/restore"),
            post_with(restore::<C>, |op| {
                forbidden(missing(doc::<C>(op.response::<200, axum::Json<C>>().summary("Restore a deleted record").description("Admins."))))
                    .response_with::<409, Problem, _>(|r| r.description("A live record now holds its unique value."))
            }),
        )
        .api_route(
            &format!("/api/v1/admin/users/{{id}}/{}", C::PATH),
            get_with(list_of_user::<C>, |op| {
                forbidden(doc::<C>(op.summary("List a user's").description("Managers and admins.")))
                    .response_with::<404, Problem, _>(|r| r.description("No such user."))
            }),
        )
}

/// Path of one record.
#[derive(Debug, serde::Deserialize, JsonSchema)]
pub struct RecordPath {
    /// Record id.
    id: String,
}

fn caller(principal: &Principal) -> Result<Uuid, Problem> {
    caller_id(principal)
}

fn record_id(path: &RecordPath) -> Result<Uuid, Problem> {
    path_id(&path.id)
}

fn with_etag<C: Collection>(status: StatusCode, record: C) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", record.version()))
        .unwrap_or(HeaderValue::from_static("\"0\""));
    (status, [(http::header::ETAG, etag)], axum::Json(record)).into_response()
}

/// What `If-Match` allows: any version without the header or with `*`, else
/// the versions its strong tags name (none, when it names none of ours).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Precondition {
    Any,
    OneOf(Vec<i32>),
}

impl Precondition {
    fn from_headers(headers: &HeaderMap) -> Self {
        let Some(value) = headers.get(http::header::IF_MATCH) else {
            return Self::Any;
        };
        let value = value.to_str().unwrap_or("");
        if value.trim() == "*" {
            return Self::Any;
        }
        // A list of entity tags (RFC 9110); weak ones never match If-Match.
        Self::OneOf(
            value
                .split(',')
                .filter_map(|tag| {
                    tag.trim()
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .and_then(|v| v.parse().ok())
                })
                .collect(),
        )
    }

    /// The versions for SQL: `None` for any.
    fn versions(&self) -> Option<Vec<i32>> {
        match self {
            Self::Any => None,
            Self::OneOf(versions) => Some(versions.clone()),
        }
    }
}

/// A unique violation (a partial index of live rows) is the client's conflict.
pub(crate) fn conflict_on_unique(error: sqlx::Error, detail: &str) -> ApiError {
    match &error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
            Problem::conflict(detail).into()
        }
        _ => error.into(),
    }
}

async fn fetch<C: Collection>(
    db: impl PgExecutor<'_>,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<Option<C>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM {} WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2) AND deleted_at IS NULL",
        C::COLUMNS,
        C::TABLE
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(owner)
        .fetch_optional(db)
        .await
}

async fn page_of<C: Collection>(
    state: &AppState,
    owner: Uuid,
    params: PageParams,
) -> ApiResult<Page<C>> {
    let page = params.validate::<Uuid>()?;
    let sql = format!(
        "SELECT {} FROM {} WHERE user_id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR id > $2)
         ORDER BY id LIMIT $3",
        C::COLUMNS,
        C::TABLE
    );
    let rows: Vec<C> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(owner)
        .bind(page.after)
        .bind(page.fetch_limit())
        .fetch_all(&state.db)
        .await?;
    Ok(Page::from_rows(rows, page.limit, C::id))
}

async fn list<C: Collection>(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Page<C>>> {
    Ok(Json(page_of(&state, caller(&principal)?, params).await?))
}

async fn list_of_user<C: Collection>(
    State(state): State<AppState>,
    authz: Authz<Principal>,
    Path(path): Path<RecordPath>,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Page<C>>> {
    authz.require(rbac::RECORDS_READ_ANY)?;
    let user = existing_user(&state, path_id(&path.id)?).await?;
    Ok(Json(page_of(&state, user.id, params).await?))
}

async fn create<C: Collection>(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<C::Create>,
) -> ApiResult<Response> {
    let owner = caller(&principal)?;
    let mut tx = state.db.begin().await?;
    let record = C::insert(&mut tx, owner, body).await?;
    tx.commit().await?;
    let location = format!("/api/v1/{}/{}", C::PATH, record.id());
    let mut response = with_etag(StatusCode::CREATED, record);
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    Ok(response)
}

async fn read<C: Collection>(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<RecordPath>,
) -> ApiResult<Response> {
    let record: C = fetch(&state.db, record_id(&path)?, Some(caller(&principal)?))
        .await?
        .ok_or_else(Problem::not_found)?;
    Ok(with_etag(StatusCode::OK, record))
}

async fn update<C: Collection>(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<RecordPath>,
    headers: HeaderMap,
    Json(body): Json<C::Patch>,
) -> ApiResult<Response> {
    let (id, owner) = (record_id(&path)?, caller(&principal)?);
    let precondition = Precondition::from_headers(&headers);
    let mut tx = state.db.begin().await?;
    match C::update(&mut tx, id, owner, precondition.versions(), body).await? {
        Some(record) => {
            tx.commit().await?;
            Ok(with_etag(StatusCode::OK, record))
        }
        None => {
            // Nothing matched: either the record is not the caller's (404) or
            // its version moved on (412).
            let exists = fetch::<C>(&mut *tx, id, Some(owner)).await?.is_some();
            if exists && precondition != Precondition::Any {
                Err(Problem::from_status(StatusCode::PRECONDITION_FAILED)
                    .with_detail(
                        "The record changed since the version in `If-Match`; read it again.",
                    )
                    .into())
            } else {
                Err(Problem::not_found().into())
            }
        }
    }
}

async fn delete<C: Collection>(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<RecordPath>,
) -> ApiResult<NoContent> {
    let sql = format!(
        "UPDATE {} SET deleted_at = now(), updated_at = now(), version = version + 1
         WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL",
        C::TABLE
    );
    let deleted = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(record_id(&path)?)
        .bind(caller(&principal)?)
        .execute(&state.db)
        .await?
        .rows_affected();
    if deleted == 1 {
        Ok(NoContent)
    } else {
        Err(Problem::not_found().into())
    }
}

async fn restore<C: Collection>(
    State(state): State<AppState>,
    authz: Authz<Principal>,
    meta: crate::auth::ClientMeta,
    Path(path): Path<RecordPath>,
) -> ApiResult<Response> {
    authz.require(rbac::RECORDS_RESTORE)?;
    let id = record_id(&path)?;
    let mut tx = state.db.begin().await?;
    let sql = format!(
        "UPDATE {table} SET deleted_at = NULL, updated_at = now(), version = version + 1
         WHERE id = $1 AND deleted_at IS NOT NULL RETURNING {columns}",
        table = C::TABLE,
        columns = C::COLUMNS
    );
    let restored: Option<C> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| {
            conflict_on_unique(
                e,
                "A live record now holds this one's unique value; delete or change it first.",
            )
        })?;
    let record = match restored {
        Some(record) => {
            audit::record(
                &mut *tx,
                Entry {
                    ip: meta.ip.as_deref(),
                    ..Entry::new(
                        caller_id(&authz.subject).ok(),
                        "record.restored",
                        C::KIND,
                        id,
                    )
                },
            )
            .await?;
            record
        }
        // Restoring a live record changes nothing and says so.
        None => fetch::<C>(&mut *tx, id, None)
            .await?
            .ok_or_else(Problem::not_found)?,
    };
    tx.commit().await?;
    Ok(with_etag(StatusCode::OK, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_reads_our_etags_and_fails_others() {
        let headers = |value: &str| {
            let mut map = HeaderMap::new();
            map.insert(
                http::header::IF_MATCH,
                HeaderValue::from_str(value).expect("header"),
            );
            map
        };
        let versions = |value: &str| Precondition::from_headers(&headers(value)).versions();
        assert_eq!(
            Precondition::from_headers(&HeaderMap::new()),
            Precondition::Any
        );
        assert_eq!(versions("*"), None);
        assert_eq!(versions("\"7\""), Some(vec![7]));
        assert_eq!(
            versions("\"3\", \"7\""),
            Some(vec![3, 7]),
            "a list matches any"
        );
        assert_eq!(
            versions("W/\"7\""),
            Some(vec![]),
            "weak tags never match If-Match"
        );
        assert_eq!(versions("garbage"), Some(vec![]));
    }
}
