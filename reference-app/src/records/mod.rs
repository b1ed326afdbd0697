//! Owner-scoped collections with soft delete: `/addresses` and `/wishlist`.
//!
//! Every query carries the owner check itself, so someone else's id is 404
//! for every verb, exactly like an id that does not exist. Deleting sets
//! `deleted_at`; the row stays, and vanishes from every read and from the
//! uniqueness rules (partial indexes). Admins restore. `version` grows with
//! each write and is the `ETag`; a `PATCH` with a stale `If-Match` is 412.
//!
//! - [`routes`]: the endpoints of any [`Collection`].
//! - [`service`]: transactions, the owner and precondition rules, the audit record.
//! - [`store`]: the SQL; [`addresses`] and [`wishlist`] hold each
//!   collection's record type and field rules.

pub mod addresses;
mod error;
pub mod routes;
pub mod service;
pub mod store;
pub mod wishlist;

use std::future::Future;

use bff_core::problem::FieldError;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use uuid::Uuid;

pub use self::addresses::Address;
pub use self::error::RecordError;
pub use self::service::RecordService;
pub use self::wishlist::WishlistItem;

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
    /// What a unique violation on create or update means, for the client.
    const CONFLICT: &'static str;
    /// The body of a create.
    type Create: DeserializeOwned + JsonSchema + Send + 'static;
    /// The body of a patch: every field optional.
    type Patch: DeserializeOwned + JsonSchema + Send + 'static;
    /// Validated fields of a create or patch: what is set changes.
    type Checked: Send + Sync + 'static;

    /// The record's id.
    fn id(&self) -> Uuid;
    /// The record's version (its `ETag`).
    fn version(&self) -> i32;

    /// Validates a create; every bad field is reported.
    fn check_create(body: Self::Create) -> Result<Self::Checked, Vec<FieldError>>;
    /// Validates a patch; every bad field is reported.
    fn check_patch(body: Self::Patch) -> Result<Self::Checked, Vec<FieldError>>;

    /// Inserts, inside the caller's transaction.
    fn insert(
        conn: &mut PgConnection,
        owner: Uuid,
        checked: &Self::Checked,
    ) -> impl Future<Output = Result<Self, sqlx::Error>> + Send;

    /// Applies a patch to the live record `id` of `owner` whose version is one
    /// of `expected` (any version when `None`); `None` when no row matched.
    fn update(
        conn: &mut PgConnection,
        id: Uuid,
        owner: Uuid,
        expected: Option<&[i32]>,
        checked: &Self::Checked,
    ) -> impl Future<Output = Result<Option<Self>, sqlx::Error>> + Send;
}
