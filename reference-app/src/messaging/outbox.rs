//! The transactional outbox: messages written with the change they announce,
//! and the relay that publishes them to JetStream.

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::PublishMessage};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use super::{DomainEvent, Notification, Topology};

/// Wakes the relay of this process after a commit that wrote to the outbox, so
/// messages leave at once instead of at the next poll.
#[derive(Debug, Clone, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    /// Tells the relay there is work.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Writes a message into the outbox, inside the caller's transaction.
pub async fn enqueue(
    conn: &mut PgConnection,
    id: Uuid,
    subject: &str,
    payload: &impl Serialize,
) -> Result<(), sqlx::Error> {
    let payload = serde_json::to_value(payload).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let request_id = bff_core::RequestId::current().map(|id| id.as_str().to_owned());
    // The writing request's trace, for the published message to continue.
    let trace = bff_core::telemetry::otel::context_of(&tracing::Span::current());
    let text = |name: &str| {
        trace
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    };
    sqlx::query(
        "INSERT INTO outbox (id, subject, payload, request_id, traceparent, tracestate)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(subject)
    .bind(payload)
    .bind(request_id)
    .bind(text("traceparent"))
    .bind(text("tracestate"))
    .execute(conn)
    .await
    .map(drop)
}

/// Writes a notification into the outbox, inside the caller's transaction.
pub async fn notify(
    conn: &mut PgConnection,
    notification: &Notification,
) -> Result<(), sqlx::Error> {
    enqueue(
        conn,
        notification.id,
        notification.channel.subject(),
        notification,
    )
    .await
}

/// Writes a domain event into the outbox, inside the caller's transaction.
pub async fn event(conn: &mut PgConnection, event: &DomainEvent) -> Result<(), sqlx::Error> {
    enqueue(conn, event.id, &event.subject(), event).await
}

/// Settings of the relay.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// How often to look for due rows nobody announced.
    pub poll_interval: Duration,
    /// Rows per batch.
    pub batch_size: u32,
    /// How long published rows are kept.
    pub retention: Duration,
}

/// Publishes the outbox to JetStream.
#[derive(Debug)]
pub struct Relay {
    db: PgPool,
    js: jetstream::Context,
    topology: Topology,
    signal: OutboxSignal,
    config: RelayConfig,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    subject: String,
    payload: serde_json::Value,
    request_id: Option<String>,
    traceparent: Option<String>,
    tracestate: Option<String>,
    attempts: i32,
}

impl Row {
    /// The trace context for the published message: that of a `publish` span
    /// (kind `producer`) in the writing request's trace, recorded now. Empty
    /// when the row has no trace context or tracing is off.
    fn publish_span_context(&self) -> Vec<(&'static str, String)> {
        if self.traceparent.is_none() {
            return Vec::new();
        }
        let span = tracing::info_span!(
            "outbox.publish",
            otel.name = format!("{} publish", self.subject),
            otel.kind = "producer",
            messaging.system = "nats",
            messaging.destination.name = %self.subject,
            messaging.message.id = %self.id,
        );
        bff_core::telemetry::otel::extract_with(
            |name| match name {
                "traceparent" => self.traceparent.clone(),
                "tracestate" => self.tracestate.clone(),
                _ => None,
            },
            &span,
        );
        bff_core::telemetry::otel::context_of(&span)
    }
}

/// Longest a publish may wait for room in the client's buffer.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait between attempts at one message.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The wait before attempt `attempts + 1`: 1 s doubling to a minute, with
/// ±20% jitter so that rows failed together do not retry together.
fn backoff(attempts: i32) -> Duration {
    let base = Duration::from_secs(1u64 << attempts.clamp(0, 6)).min(MAX_BACKOFF);
    let mut byte = [0u8; 1];
    let jitter = match bff_auth::random::fill(&mut byte) {
        Ok(()) => 0.8 + 0.4 * f64::from(byte[0]) / 255.0,
        Err(_) => 1.0,
    };
    base.mul_f64(jitter)
}

impl Relay {
    /// A relay of `db`'s outbox to `js`.
    pub fn new(
        db: PgPool,
        js: jetstream::Context,
        topology: Topology,
        signal: OutboxSignal,
        config: RelayConfig,
    ) -> Self {
        Self {
            db,
            js,
            topology,
            signal,
            config,
        }
    }

    /// Relays until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut failing = false;
        let mut last_purge = tokio::time::Instant::now();
        loop {
            let full = match self.relay_batch().await {
                Ok(outcome) => {
                    if failing && outcome.failed == 0 {
                        tracing::info!("outbox relay recovered");
                        failing = false;
                    } else if !failing && outcome.failed > 0 {
                        tracing::warn!(
                            failed = outcome.failed,
                            error = outcome.error.as_deref().unwrap_or_default(),
                            "outbox relay cannot publish; rows wait and are retried with backoff"
                        );
                        failing = true;
                    }
                    outcome.published > 0 && outcome.claimed == self.config.batch_size as usize
                }
                Err(error) => {
                    if !failing {
                        tracing::warn!(error = %bff_core::problem::ErrorChain(&error), "outbox relay cannot read the outbox");
                        failing = true;
                    }
                    false
                }
            };
            if last_purge.elapsed() > Duration::from_secs(60) {
                last_purge = tokio::time::Instant::now();
                if let Err(error) = self.purge().await {
                    tracing::warn!(%error, "could not delete published outbox rows");
                }
            }
            if *stop.borrow() {
                break;
            }
            if full {
                // A full batch of successes: there may be more waiting.
                continue;
            }
            tokio::select! {
                () = self.signal.0.notified() => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
                _ = stop.changed() => break,
            }
        }
        tracing::debug!("outbox relay stopped");
    }

    /// Publishes one batch of due rows; the rows stay locked (and invisible to
    /// other relays) until the outcome is recorded.
    async fn relay_batch(&self) -> Result<BatchOutcome, sqlx::Error> {
        let mut tx = crate::db::begin(&self.db).await?;
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, subject, payload, request_id, traceparent, tracestate, attempts FROM outbox
             WHERE published_at IS NULL AND next_attempt_at <= now()
             ORDER BY created_at, id
             LIMIT $1
             FOR UPDATE SKIP LOCKED",
        )
        .bind(i64::from(self.config.batch_size))
        .fetch_all(&mut *tx)
        .await?;
        let mut outcome = BatchOutcome {
            claimed: rows.len(),
            ..BatchOutcome::default()
        };
        if rows.is_empty() {
            return Ok(outcome);
        }

        // Everything is sent first and the acks awaited after, so a batch costs
        // about one round trip, not one per message.
        let mut pending = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", row.id.to_string().as_str());
            if let Some(request_id) = &row.request_id {
                headers.insert("X-Request-Id", request_id.as_str());
            }
            // The publish is a span of the writing request's trace, and the
            // message carries it on to its consumer.
            for (name, value) in row.publish_span_context() {
                headers.insert(name, value.as_str());
            }
            let payload = serde_json::to_vec(&row.payload).unwrap_or_default();
            let publish = PublishMessage::build()
                .payload(payload.into())
                .headers(headers);
            let send = self
                .js
                .send_publish(self.topology.subject(&row.subject), publish);
            // While NATS is away the client buffers; a full buffer must not hold
            // the rows locked for long.
            let sent = match tokio::time::timeout(SEND_TIMEOUT, send).await {
                Ok(sent) => sent.map_err(|e| e.to_string()),
                Err(_) => Err("timed out handing the message to the NATS client".to_owned()),
            };
            pending.push(sent);
        }
        // The acks are awaited together: each times out on its own (JetStream's
        // ack timeout), so a batch sent into an outage fails in one timeout, not
        // one per row.
        let acks = futures_util::future::join_all(pending.into_iter().map(|sent| async move {
            match sent {
                Ok(ack) => ack.await.map(drop).map_err(|e| e.to_string()),
                Err(error) => Err(error),
            }
        }))
        .await;
        let mut published = Vec::new();
        for (row, acked) in rows.iter().zip(acks) {
            match acked {
                Ok(()) => published.push(row.id),
                Err(error) => {
                    let delay = backoff(row.attempts);
                    sqlx::query(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = $2,
                                next_attempt_at = now() + $3 * interval '1 millisecond'
                         WHERE id = $1",
                    )
                    .bind(row.id)
                    .bind(&error)
                    .bind(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await?;
                    outcome.failed += 1;
                    outcome.error = Some(error);
                }
            }
        }
        if !published.is_empty() {
            // A code has no business outliving its delivery: published rows keep
            // everything but it, for the retention period.
            sqlx::query(
                "UPDATE outbox SET published_at = now(), last_error = NULL, payload = payload - 'code'
                 WHERE id = ANY($1)",
            )
            .bind(&published)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        outcome.published = published.len();
        metrics::counter!("bff_outbox_published_total").increment(published.len() as u64);
        metrics::counter!("bff_outbox_publish_failures_total").increment(outcome.failed as u64);
        Ok(outcome)
    }

    /// Deletes rows published longer ago than the retention period, and the
    /// notifier's records of deliveries as old.
    async fn purge(&self) -> Result<(), sqlx::Error> {
        let deleted = sqlx::query(
            "DELETE FROM outbox WHERE id IN (
                 SELECT id FROM outbox
                 WHERE published_at < now() - $1 * interval '1 millisecond'
                 LIMIT 10000)",
        )
        .bind(i64::try_from(self.config.retention.as_millis()).unwrap_or(i64::MAX))
        .execute(&self.db)
        .await?
        .rows_affected();
        if deleted > 0 {
            tracing::debug!(deleted, "published outbox rows deleted");
        }
        // The notifier's record of sends lives as long as the rows it sent.
        let forgotten = super::deliveries::Deliveries::new(self.db.clone())
            .purge(self.config.retention)
            .await?;
        if forgotten > 0 {
            tracing::debug!(forgotten, "old notification deliveries deleted");
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct BatchOutcome {
    claimed: usize,
    published: usize,
    failed: usize,
    error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_minute_with_jitter() {
        for (attempts, base) in [(0, 1.0), (1, 2.0), (3, 8.0), (6, 60.0), (40, 60.0)] {
            let delay = backoff(attempts).as_secs_f64();
            assert!(
                delay >= base * 0.8 - 1e-9 && delay <= base * 1.2 + 1e-9,
                "{attempts}: {delay}"
            );
        }
    }
}
