//! Messages: the transactional outbox, its relay to NATS JetStream, the streams,
//! and the notifier that delivers notifications by email and SMS.
//!
//! A state change and the messages announcing it are written in one Postgres
//! transaction ([`outbox::enqueue`]); the [`outbox::Relay`] publishes them to
//! JetStream with `Nats-Msg-Id` set to the row id and marks them published only
//! after JetStream's ack, so nothing is lost while NATS is down and nothing is
//! stored twice when a publish is repeated. The [`notifier::Notifier`] consumes
//! `NOTIFICATIONS` and sends through a [`senders::Sender`], recording what was
//! sent ([`deliveries::Deliveries`]) so that a redelivered message is not sent
//! twice.

pub mod config;
pub mod deliveries;
pub mod notifier;
pub mod outbox;
pub mod seal;
pub mod senders;
pub mod templates;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Subject of email notifications.
pub const EMAIL_SUBJECT: &str = "notifications.email";
/// Subject of SMS notifications.
pub const SMS_SUBJECT: &str = "notifications.sms";
/// Subjects of notifications that could not be delivered (`.email`, `.sms`).
pub const DEAD_LETTER_SUBJECT: &str = "dead.notifications";

/// Stream and subject names of one deployment.
///
/// The prefix (BFF_NATS_PREFIX) is empty in production, so the names are the
/// contract's; tests set one so that runs sharing a server never see each
/// other's streams or messages. It is prepended to stream names and to the
/// first token of every subject (`TEST_x_notifications.email`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    /// Names under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The full subject of a relative one.
    pub fn subject(&self, relative: &str) -> String {
        format!("{}{relative}", self.prefix)
    }

    /// The notifications stream.
    pub fn notifications(&self) -> String {
        format!("{}NOTIFICATIONS", self.prefix)
    }

    /// The domain-events stream.
    pub fn events(&self) -> String {
        format!("{}EVENTS", self.prefix)
    }

    /// The stream of notifications that could not be delivered.
    pub fn dead_letters(&self) -> String {
        format!("{}NOTIFICATIONS_DEAD", self.prefix)
    }

    /// The notifier's durable consumer.
    pub fn notifier_consumer(&self) -> String {
        format!("{}notifier", self.prefix)
    }

    /// Creates the streams, or brings their settings up to date.
    ///
    /// - `NOTIFICATIONS` is a work queue: a notification is a job, removed once
    ///   the notifier acks it, so delivered codes do not linger. Undelivered ones
    ///   go after a day; their codes expired long before.
    /// - `EVENTS` keeps events for 7 days whoever has read them, for any number
    ///   of consumers.
    /// - `NOTIFICATIONS_DEAD` keeps dead letters 30 days for inspection.
    ///
    /// The duplicate window of an hour covers a relay that published, failed to
    /// record it, and publishes again after a restart or a NATS outage.
    pub async fn ensure_streams(
        &self,
        js: &jetstream::Context,
        replicas: usize,
    ) -> Result<(), jetstream::context::CreateStreamError> {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        let base = stream::Config {
            storage: stream::StorageType::File,
            num_replicas: replicas,
            duplicate_window: Duration::from_secs(3600),
            max_message_size: 64 * 1024,
            discard: stream::DiscardPolicy::Old,
            ..stream::Config::default()
        };
        let streams = [
            stream::Config {
                name: self.notifications(),
                description: Some("Notifications to deliver (work queue).".to_owned()),
                subjects: vec![self.subject(EMAIL_SUBJECT), self.subject(SMS_SUBJECT)],
                retention: stream::RetentionPolicy::WorkQueue,
                max_age: DAY,
                ..base.clone()
            },
            stream::Config {
                name: self.events(),
                description: Some("Domain events, events.<aggregate>.<event>.".to_owned()),
                subjects: vec![self.subject("events.>")],
                retention: stream::RetentionPolicy::Limits,
                max_age: 7 * DAY,
                ..base.clone()
            },
            stream::Config {
                name: self.dead_letters(),
                description: Some("Notifications that could not be delivered.".to_owned()),
                subjects: vec![self.subject(&format!("{DEAD_LETTER_SUBJECT}.>"))],
                retention: stream::RetentionPolicy::Limits,
                max_age: 30 * DAY,
                ..base
            },
        ];
        for config in streams {
            js.create_or_update_stream(config).await?;
        }
        Ok(())
    }
}

/// How a notification travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// By email.
    Email,
    /// By text message.
    Sms,
}

impl Channel {
    /// `email` or `sms`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }

    /// The subject its notifications are published to.
    pub fn subject(self) -> &'static str {
        match self {
            Self::Email => EMAIL_SUBJECT,
            Self::Sms => SMS_SUBJECT,
        }
    }
}

/// What a notification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    /// A sign-up code.
    VerifyCode,
    /// A password-reset code.
    ResetPassword,
    /// The password was changed or reset.
    PasswordChanged,
    /// Someone tried to sign up with an address that already has an account.
    AccountExists,
    /// Nothing to say: a reset was asked for an address without an account.
    /// It is written so that such a request does the same work as one for an
    /// account; the notifier acknowledges it without sending anything.
    Nothing,
}

/// The language of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Locale {
    /// English (used when the request prefers neither).
    En,
    /// Russian.
    Ru,
}

impl Locale {
    /// The best supported language of an `Accept-Language` header (RFC 9110):
    /// the highest-weighted of `ru` and `en`, English when neither is there.
    pub fn from_accept_language(header: &str) -> Self {
        let mut best = (0.0_f32, Self::En);
        for item in header.split(',').take(32) {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let weight = parts
                .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse().ok()))
                .unwrap_or(1.0_f32);
            let locale = match tag.split('-').next() {
                Some("ru") => Self::Ru,
                Some("en") => Self::En,
                _ => continue,
            };
            if weight > best.0 {
                best = (weight, locale);
            }
        }
        best.1
    }
}

/// A notification: the payload of `notifications.email` and `notifications.sms`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    /// Message id (also the `Nats-Msg-Id`).
    pub id: Uuid,
    /// `email` or `sms`.
    pub channel: Channel,
    /// The address or number.
    pub to: String,
    /// Which text.
    pub template: Template,
    /// The code, for the templates that carry one, sealed ([`seal`]): only
    /// the notifier opens it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The language.
    pub locale: Locale,
    /// When it was written (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Notification {
    /// With `code`, sealed by `seal` for this message.
    pub fn with_code(mut self, code: &str, seal: &seal::CodeSeal) -> Result<Self, seal::SealError> {
        self.code = Some(seal.seal(self.id, &self.to, code)?);
        Ok(self)
    }
}

impl std::fmt::Debug for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the address nor the code belongs in logs.
        f.debug_struct("Notification")
            .field("id", &self.id)
            .field("channel", &self.channel)
            .field("template", &self.template)
            .field("locale", &self.locale)
            .finish_non_exhaustive()
    }
}

/// A domain event: the payload of `events.<aggregate>.<event>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DomainEvent {
    /// Event id (also the `Nats-Msg-Id`).
    pub id: Uuid,
    /// `<aggregate>.<event>`, e.g. `user.registered`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// What happened; no secrets and no contact details.
    pub data: serde_json::Value,
}

impl DomainEvent {
    /// A new event of `kind` (`user.registered`) with `data`.
    pub fn new(kind: &str, data: serde_json::Value) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind: kind.to_owned(),
            occurred_at: OffsetDateTime::now_utc(),
            data,
        }
    }

    /// Its subject, `events.<kind>`.
    pub fn subject(&self) -> String {
        format!("events.{}", self.kind)
    }

    /// `session.revoked`: the session `session_id` of `user_id` ended, so
    /// backends refuse its tokens from now on.
    pub fn session_revoked(user_id: &str, session_id: &str) -> Self {
        Self::new(
            "session.revoked",
            serde_json::json!({"user_id": user_id, "session_id": session_id}),
        )
    }

    /// `user.sessions_revoked`: every session of `user_id` ended but
    /// `except_session_id`; backends refuse the user's tokens issued until now.
    pub fn sessions_revoked(user_id: &str, except_session_id: Option<&str>) -> Self {
        Self::new(
            "user.sessions_revoked",
            serde_json::json!({
                "user_id": user_id,
                "revoked_at": OffsetDateTime::now_utc().unix_timestamp(),
                "except_session_id": except_session_id,
            }),
        )
    }

    /// `user.blocked`: `user_id` was blocked; backends refuse their tokens
    /// issued until now.
    pub fn user_blocked(user_id: &str) -> Self {
        Self::new(
            "user.blocked",
            serde_json::json!({
                "user_id": user_id,
                "blocked_at": OffsetDateTime::now_utc().unix_timestamp(),
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_supported_locale() {
        for (header, locale) in [
            ("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", Locale::Ru),
            ("en-US,en;q=0.9,ru;q=0.8", Locale::En),
            ("de-DE,ru;q=0.5", Locale::Ru),
            ("de, fr", Locale::En),
            ("", Locale::En),
            ("ru;q=0.2, en;q=0.3", Locale::En),
            ("RU", Locale::Ru),
            (";;;q=,,", Locale::En),
        ] {
            assert_eq!(Locale::from_accept_language(header), locale, "{header:?}");
        }
    }

    #[test]
    fn notifications_keep_the_contract_shape_and_hide_secrets() {
        let notification = Notification {
            id: Uuid::nil(),
            channel: Channel::Sms,
            to: "+79991234567".to_owned(),
            template: Template::VerifyCode,
            code: Some("012345".to_owned()),
            locale: Locale::Ru,
            created_at: OffsetDateTime::UNIX_EPOCH,
        };
        let json = serde_json::to_value(&notification).expect("serialises");
        assert_eq!(
            json,
            serde_json::json!({
                "id": "00000000-0000-0000-0000-000000000000",
                "channel": "sms",
                "to": "+79991234567",
                "template": "verify_code",
                "code": "012345",
                "locale": "ru",
                "created_at": "1970-01-01T00:00:00Z",
            })
        );
        let debug = format!("{notification:?}");
        assert!(
            !debug.contains("012345") && !debug.contains("7999"),
            "{debug}"
        );
    }

    #[test]
    fn a_prefix_isolates_streams_and_subjects() {
        let topology = Topology::new("TEST_1_");
        assert_eq!(topology.notifications(), "TEST_1_NOTIFICATIONS");
        assert_eq!(
            topology.subject(EMAIL_SUBJECT),
            "TEST_1_notifications.email"
        );
        let production = Topology::new("");
        assert_eq!(production.events(), "EVENTS");
        assert_eq!(
            production.subject("events.user.registered"),
            "events.user.registered"
        );
    }
}
