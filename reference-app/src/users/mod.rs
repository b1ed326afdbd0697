//! Accounts: a user's own profile (`/me`) and the admin user endpoints.
//!
//! - [`routes`]: `/api/v1/me` and `/api/v1/admin/users/...`.
//! - [`service`]: reading and renaming one's account; listing, reading,
//!   re-roling and blocking others, with the rules of who may do what to whom.
//! - [`store`]: the `users` table.
//!
//! A role change or a block ends every session of the user at once, so their
//! tokens stop working; every change to an account invalidates its cached
//! views on every instance ([`ViewCache`]).

mod error;
pub mod routes;
pub mod service;
pub mod store;

use std::sync::Arc;

use bff_cache::response::{Invalidator, TieredStore};
use schemars::JsonSchema;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

pub use self::error::UserError;
pub use self::service::UserService;
pub use self::store::{NewUser, UserRecord};
use crate::identity::Role;

/// The user object: `{"id", "email", "phone", "name", "role", "email_verified_at",
/// "phone_verified_at", "created_at"}`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct UserView {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Email address, if the account has one.
    pub email: Option<String>,
    /// Phone number (E.164), if the account has one.
    pub phone: Option<String>,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// When the email was verified (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub email_verified_at: Option<OffsetDateTime>,
    /// When the phone was verified (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub phone_verified_at: Option<OffsetDateTime>,
    /// Creation time (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
}

impl UserRecord {
    /// The identifiers one signs in with: the email, then the phone.
    pub fn identifiers(&self) -> impl Iterator<Item = &str> {
        self.email
            .as_deref()
            .into_iter()
            .chain(self.phone.as_deref())
    }

    /// The role; an unknown stored value (impossible under the table's check)
    /// falls back to the least privileged.
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Customer)
    }

    /// The contract's user object.
    pub fn view(&self) -> UserView {
        UserView {
            id: self.id,
            email: self.email.clone(),
            phone: self.phone.clone(),
            name: self.name.clone(),
            role: self.role(),
            email_verified_at: self.email_verified_at,
            phone_verified_at: self.phone_verified_at,
            created_at: self.created_at,
        }
    }
}

/// The cached views of users (their `/me` and dashboard), shared by every
/// instance: whatever changes what they show invalidates them at once.
#[derive(Debug, Clone)]
pub struct ViewCache {
    store: Arc<TieredStore>,
}

impl ViewCache {
    /// Views cached in `store`.
    pub fn new(store: Arc<TieredStore>) -> Self {
        Self { store }
    }

    /// The cache tag of user `id`'s views.
    pub fn tag(id: impl std::fmt::Display) -> String {
        format!("user:{id}")
    }

    /// Invalidates the cached views of user `id`, on every instance.
    pub async fn user_changed(&self, id: Uuid) {
        let invalidator = Invalidator::new(self.store.clone());
        if let Err(error) = invalidator.invalidate(&Self::tag(id)).await {
            // Entries then live out their short TTL.
            tracing::warn!(%error, user_id = %id, "could not invalidate cached views of a user");
        }
    }
}
