//! The audit log: admin actions, money movements and security events, written
//! in the transaction of the action they record, and read by managers and
//! admins through `GET /api/v1/admin/audit-log`.
//!
//! Other features record through [`record`] and [`Entry`]; [`routes`] and
//! [`service`] serve the reading side and [`store`] holds the SQL.

pub mod routes;
pub mod service;
pub mod store;

use schemars::JsonSchema;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

pub use self::service::AuditLog;
pub use self::store::record;

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

/// Which entries to read: every filter is optional.
#[derive(Debug, Default)]
pub struct Filter {
    /// Only this action.
    pub action: Option<String>,
    /// Only this actor.
    pub actor_id: Option<Uuid>,
    /// Only this target id.
    pub target_id: Option<String>,
}
