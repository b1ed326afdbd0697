//! The endpoints of a [`Collection`]: the owner's own, and the admin ones.

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use aide::transform::TransformOperation;
use axum::extract::{FromRef, FromRequestParts, Path, State};
use axum::response::{IntoResponse, NoContent, Response};
use bff_auth::layer::Principal;
use bff_cache::ratelimit::ClientIp;
use bff_core::Problem;
use bff_core::extract::{Json, Query};
use bff_core::pagination::{Page, PageParams};
use bff_rbac::{Authz, Policy};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use schemars::JsonSchema;
use uuid::Uuid;

use super::{Collection, RecordService};
use crate::http::ApiResult;
use crate::http::docs::{self, bearer, forbidden, invalid};
use crate::http::extract::{CallerId, ClientMeta, path_id};
use crate::rbac;

fn doc<C: Collection>(op: TransformOperation<'_>) -> TransformOperation<'_> {
    bearer(op.tag(C::KIND))
}

fn missing(op: TransformOperation<'_>) -> TransformOperation<'_> {
    docs::not_found(op, "No such record of yours (someone else's is 404 too).")
}

/// The routes of collection `C`: the owner's own, and the admin ones.
pub fn routes<C: Collection, S>() -> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    RecordService: FromRef<S>,
    Policy: FromRef<S>,
    ClientIp: FromRef<S>,
{
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
    #[schemars(with = "Uuid")]
    id: String,
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

impl<S: Send + Sync> FromRequestParts<S> for Precondition {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers))
    }
}

impl aide::operation::OperationInput for Precondition {
    fn operation_input(
        ctx: &mut aide::generate::GenContext,
        operation: &mut aide::openapi::Operation,
    ) {
        bff_core::openapi::header(
            ctx,
            operation,
            "If-Match",
            "The `ETag` of your last read (or a list of them): the write is refused (412) if the record changed since. \
             Without it, or with `*`, any version is overwritten.",
            false,
            schemars::json_schema!({ "type": "string" }),
        );
    }
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
    fn versions(&self) -> Option<&[i32]> {
        match self {
            Self::Any => None,
            Self::OneOf(versions) => Some(versions),
        }
    }
}

async fn list<C: Collection>(
    State(records): State<RecordService>,
    caller: CallerId,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Page<C>>> {
    let page = params.validate::<Uuid>()?;
    let rows = records
        .page::<C>(caller.0, page.after, page.fetch_limit())
        .await?;
    Ok(Json(Page::from_rows(rows, page.limit, C::id)))
}

async fn list_of_user<C: Collection>(
    State(records): State<RecordService>,
    authz: Authz<Principal>,
    Path(path): Path<RecordPath>,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Page<C>>> {
    authz.require(rbac::RECORDS_READ_ANY)?;
    let user = path_id(&path.id)?;
    let page = params.validate::<Uuid>()?;
    let rows = records
        .page_of_user::<C>(user, page.after, page.fetch_limit())
        .await?;
    Ok(Json(Page::from_rows(rows, page.limit, C::id)))
}

async fn create<C: Collection>(
    State(records): State<RecordService>,
    caller: CallerId,
    Json(body): Json<C::Create>,
) -> ApiResult<Response> {
    let checked = C::check_create(body).map_err(Problem::validation)?;
    let record = records.create::<C>(caller.0, &checked).await?;
    let location = format!("/api/v1/{}/{}", C::PATH, record.id());
    let mut response = with_etag(StatusCode::CREATED, record);
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    Ok(response)
}

async fn read<C: Collection>(
    State(records): State<RecordService>,
    caller: CallerId,
    Path(path): Path<RecordPath>,
) -> ApiResult<Response> {
    let record = records.read::<C>(path_id(&path.id)?, caller.0).await?;
    Ok(with_etag(StatusCode::OK, record))
}

async fn update<C: Collection>(
    State(records): State<RecordService>,
    caller: CallerId,
    Path(path): Path<RecordPath>,
    precondition: Precondition,
    Json(body): Json<C::Patch>,
) -> ApiResult<Response> {
    let id = path_id(&path.id)?;
    let checked = C::check_patch(body).map_err(Problem::validation)?;
    let record = records
        .update::<C>(id, caller.0, precondition.versions(), &checked)
        .await?;
    Ok(with_etag(StatusCode::OK, record))
}

async fn delete<C: Collection>(
    State(records): State<RecordService>,
    caller: CallerId,
    Path(path): Path<RecordPath>,
) -> ApiResult<NoContent> {
    records.delete::<C>(path_id(&path.id)?, caller.0).await?;
    Ok(NoContent)
}

async fn restore<C: Collection>(
    State(records): State<RecordService>,
    authz: Authz<Principal>,
    meta: ClientMeta,
    Path(path): Path<RecordPath>,
) -> ApiResult<Response> {
    authz.require(rbac::RECORDS_RESTORE)?;
    let id = path_id(&path.id)?;
    let actor = CallerId::of(&authz.subject).ok().map(|caller| caller.0);
    let record = records.restore::<C>(id, actor, meta.ip.as_deref()).await?;
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
        let versions = |value: &str| {
            Precondition::from_headers(&headers(value))
                .versions()
                .map(<[i32]>::to_vec)
        };
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
