//! The notifier: a durable JetStream consumer on `NOTIFICATIONS` that renders
//! each notification and hands it to the sender of its channel.
//!
//! A message is acked only after its sender accepted it. A failed send is
//! redelivered after a delay that doubles each time; after the configured number
//! of deliveries, or at once when retrying cannot help, the message moves to the
//! dead-letter subject (`dead.notifications.<channel>`, kept by the
//! `NOTIFICATIONS_DEAD` stream) and is counted in
//! `bff_notifications_dead_lettered_total`.
//!
//! Each send a sender accepted is recorded by message id ([`Deliveries`])
//! before the ack. JetStream delivers a message again when its ack is lost (the
//! server leading the consumer died, the connection dropped): the notifier
//! finds the record, acknowledges without sending, and counts it in
//! `bff_notifications_repeated_total`. Only a crash between a send and its
//! record can send twice, and the message id travels with each send
//! (`Message-ID`, the webhook's `id`) for the next hop to recognise.

use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::StreamExt;
use tokio::sync::watch;

use super::deliveries::Deliveries;
use super::seal::CodeSeal;
use super::senders::{Outgoing, SendError, Sender};
use super::{Channel, DEAD_LETTER_SUBJECT, Notification, Topology, templates};

/// What became of a notification that did not fail.
enum Delivery {
    /// A sender took it.
    Sent,
    /// It had nothing to say ([`Template::Nothing`](super::Template::Nothing)).
    Dropped,
    /// Sent already: a redelivery.
    Repeated,
}

/// Settings of the notifier.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// Deliveries before a message is dead-lettered.
    pub max_deliveries: u16,
    /// Messages sent at once.
    pub concurrency: u16,
    /// First redelivery delay; doubles with each failure, up to [`MAX_RETRY_DELAY`].
    pub retry_delay: Duration,
    /// Lifetime of codes, stated in code messages.
    pub code_ttl: Duration,
    /// Opens the sealed codes of notifications.
    pub seal: CodeSeal,
}

/// Longest delay before a redelivery.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(600);

/// How long the server waits for an ack before it redelivers on its own. A
/// message being sent is kept from that with a progress ack every
/// [`PROGRESS_EVERY`], so this can be short: it is how long the notifications
/// behind a lost ack wait (acks the consumer's leader took but had not
/// replicated when it died are lost).
const ACK_WAIT: Duration = Duration::from_secs(10);

/// How often a message still being sent is reported as in progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// How long one pull request for messages stays open.
const PULL_EXPIRES: Duration = Duration::from_secs(10);

/// How often the server shows an open pull request is alive.
const PULL_HEARTBEAT: Duration = Duration::from_secs(2);

/// Tries at acknowledging one message: enough to outlast the election of a
/// new leader for the consumer when a server dies.
const ACK_ATTEMPTS: u32 = 4;

/// Acknowledges `message` and waits for the server to confirm it, trying again
/// while no server takes it (the consumer's leader died, the connection moves
/// to another server). Unconfirmed acks would hold the consumer's pending
/// slots until the ack wait ends, stalling every notification behind them; an
/// ack that never got through is redelivered then, and recognised as sent.
async fn acknowledge(message: &jetstream::Message, kind: AckKind) {
    let mut pause = Duration::from_millis(200);
    for attempt in 1..=ACK_ATTEMPTS {
        match message.double_ack_with(kind).await {
            Ok(()) => return,
            Err(error) if attempt == ACK_ATTEMPTS => {
                tracing::warn!(%error, "could not acknowledge a notification; it will be redelivered");
            }
            Err(error) => {
                tracing::debug!(%error, attempt, "acknowledgement not confirmed; trying again");
                tokio::time::sleep(pause).await;
                pause = pause.saturating_mul(2);
            }
        }
    }
}

/// Longest one send may take before it counts as a temporary failure.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The senders of each channel.
#[derive(Debug, Clone)]
pub struct Senders {
    /// Email.
    pub email: Arc<dyn Sender>,
    /// SMS.
    pub sms: Arc<dyn Sender>,
}

/// Consumes `NOTIFICATIONS` and delivers.
#[derive(Debug)]
pub struct Notifier {
    js: jetstream::Context,
    topology: Topology,
    senders: Senders,
    deliveries: Deliveries,
    config: NotifierConfig,
}

impl Notifier {
    /// A notifier on `js`'s `NOTIFICATIONS` stream (see [`Topology`]),
    /// recording its sends in `deliveries`.
    pub fn new(
        js: jetstream::Context,
        topology: Topology,
        senders: Senders,
        deliveries: Deliveries,
        config: NotifierConfig,
    ) -> Self {
        Self {
            js,
            topology,
            senders,
            deliveries,
            config,
        }
    }

    /// Delivers until `stop` turns true, then finishes the sends under way.
    /// Consuming starts over after a failure (NATS away, consumer deleted).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let mut failing = false;
        while !*stop.borrow() {
            match this.consume(stop.clone()).await {
                Ok(()) => break,
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, "notifier cannot consume; retrying");
                        failing = true;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
        tracing::debug!("notifier stopped");
    }

    async fn consume(self: &Arc<Self>, mut stop: watch::Receiver<bool>) -> Result<(), String> {
        let name = self.topology.notifier_consumer();
        let stream = self
            .js
            .get_stream(self.topology.notifications())
            .await
            .map_err(|e| e.to_string())?;
        let consumer: jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    description: Some("Delivers notifications.".to_owned()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    // Redelivery is unbounded on the server: the notifier itself
                    // dead-letters after max_deliveries, and must be able to retry
                    // when the dead-letter publish fails.
                    max_deliver: -1,
                    // No more in hand than are being sent: a message waiting in
                    // a local buffer would use up its ack wait there and be
                    // redelivered while still queued.
                    max_ack_pending: i64::from(self.config.concurrency),
                    ..pull::Config::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        // Short pull requests with frequent heartbeats: when the server
        // holding the pull request dies (in a cluster, the consumer's leader),
        // the missing heartbeats show it within seconds and a new request goes
        // to the next leader, instead of waiting out a 30 s expiry.
        let messages = consumer
            .stream()
            .expires(PULL_EXPIRES)
            .heartbeat(PULL_HEARTBEAT)
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(consumer = %name, "notifier consuming");
        let stopped = {
            let mut stop = stop.clone();
            async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            }
        };
        messages
            .take_until(stopped)
            .for_each_concurrent(usize::from(self.config.concurrency), |message| async move {
                match message {
                    Ok(message) => self.handle(message).await,
                    Err(error) => tracing::debug!(%error, "notification stream"),
                }
            })
            .await;
        if *stop.borrow_and_update() {
            Ok(())
        } else {
            Err("the message stream ended".to_owned())
        }
    }

    async fn handle(&self, message: jetstream::Message) {
        let delivered = message.info().map(|info| info.delivered).unwrap_or(1);
        let channel = message
            .subject
            .as_str()
            .rsplit('.')
            .next()
            .unwrap_or("unknown")
            .to_owned();
        // The send continues the trace of the request that wrote the
        // notification (through the outbox row and the message's headers).
        let span = tracing::info_span!(
            "notifier.send",
            otel.name = format!("{} process", message.subject),
            otel.kind = "consumer",
            messaging.system = "nats",
            messaging.destination.name = %message.subject,
            delivered,
        );
        bff_core::telemetry::otel::extract_with(
            |name| Some(message.headers.as_ref()?.get(name)?.as_str().to_owned()),
            &span,
        );
        let outcome = {
            let deliver = self.deliver(&message).instrument(span);
            tokio::pin!(deliver);
            let start = tokio::time::Instant::now() + PROGRESS_EVERY;
            let mut progress = tokio::time::interval_at(start, PROGRESS_EVERY);
            loop {
                tokio::select! {
                    outcome = &mut deliver => break outcome,
                    _ = progress.tick() => {
                        if let Err(error) = message.ack_with(AckKind::Progress).await {
                            tracing::debug!(%error, "could not report a send in progress");
                        }
                    }
                }
            }
        };
        let labels = [("channel", channel.clone())];
        let ack = match outcome {
            Ok(Delivery::Sent) => {
                metrics::counter!("bff_notifications_sent_total", &labels).increment(1);
                AckKind::Ack
            }
            Ok(Delivery::Dropped) => {
                metrics::counter!("bff_notifications_dropped_total", &labels).increment(1);
                AckKind::Ack
            }
            Ok(Delivery::Repeated) => {
                metrics::counter!("bff_notifications_repeated_total", &labels).increment(1);
                tracing::info!(delivered, "notification sent before; acknowledged again");
                AckKind::Ack
            }
            Err(SendError::Transient(error))
                if delivered < i64::from(self.config.max_deliveries) =>
            {
                metrics::counter!("bff_notifications_failed_total", &labels).increment(1);
                let delay = self.retry_delay(delivered);
                tracing::warn!(%error, delivered, retry_in = ?delay, "notification not sent; will retry");
                AckKind::Nak(Some(delay))
            }
            Err(error) => {
                metrics::counter!("bff_notifications_failed_total", &labels).increment(1);
                match self
                    .dead_letter(&message, &channel, &error, delivered)
                    .await
                {
                    Ok(()) => {
                        metrics::counter!("bff_notifications_dead_lettered_total", &labels)
                            .increment(1);
                        tracing::error!(%error, delivered, "notification dead-lettered");
                        AckKind::Term
                    }
                    Err(dead_letter_error) => {
                        tracing::warn!(%error, %dead_letter_error, "could not dead-letter a notification; will retry");
                        AckKind::Nak(Some(self.retry_delay(delivered)))
                    }
                }
            }
        };
        acknowledge(&message, ack).await;
    }

    /// The delay before delivery `delivered + 1`.
    fn retry_delay(&self, delivered: i64) -> Duration {
        let doublings = u32::try_from(delivered.saturating_sub(1))
            .unwrap_or(0)
            .min(16);
        self.config
            .retry_delay
            .saturating_mul(1 << doublings)
            .min(MAX_RETRY_DELAY)
    }

    async fn deliver(&self, message: &jetstream::Message) -> Result<Delivery, SendError> {
        let notification: Notification = serde_json::from_slice(&message.payload)
            .map_err(|e| SendError::Permanent(format!("malformed notification: {e}")))?;
        // Not knowing whether it went out, it waits rather than risk a second send.
        let id = notification.id;
        if self.deliveries.was_sent(id).await.map_err(|e| {
            SendError::Transient(format!("cannot read the record of deliveries: {e}"))
        })? {
            return Ok(Delivery::Repeated);
        }
        // A code that does not open was not written by a BFF holding this
        // secret (or for this message): it is not sent, whoever put it there.
        let code = match notification.code.as_deref() {
            Some(sealed) => Some(
                self.config
                    .seal
                    .open(notification.id, &notification.to, sealed)
                    .map_err(|e| SendError::Permanent(e.to_string()))?,
            ),
            None => None,
        };
        let Some(rendered) = templates::render(
            notification.template,
            notification.locale,
            code.as_deref(),
            self.config.code_ttl,
        )
        .map_err(|e| SendError::Permanent(e.to_string()))?
        else {
            return Ok(Delivery::Dropped);
        };
        let sender = match notification.channel {
            Channel::Email => &self.senders.email,
            Channel::Sms => &self.senders.sms,
        };
        let outgoing = Outgoing {
            id: notification.id,
            channel: notification.channel,
            to: notification.to,
            subject: rendered.subject,
            text: rendered.text,
        };
        match tokio::time::timeout(SEND_TIMEOUT, sender.send(&outgoing)).await {
            Ok(sent) => sent?,
            Err(_) => return Err(SendError::Transient("the send timed out".to_owned())),
        }
        if let Err(error) = self.deliveries.record(id).await {
            // Acknowledged all the same: only a lost ack as well would repeat it.
            tracing::warn!(%error, "a notification was sent but its delivery not recorded");
        }
        Ok(Delivery::Sent)
    }

    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        channel: &str,
        error: &SendError,
        delivered: i64,
    ) -> Result<(), String> {
        let mut headers = HeaderMap::new();
        if let Some(original) = &message.headers {
            for name in ["Nats-Msg-Id", "X-Request-Id"] {
                if let Some(value) = original.get(name) {
                    headers.insert(name, value.as_str());
                }
            }
        }
        headers.insert("Bff-Original-Subject", message.subject.as_str());
        headers.insert("Bff-Deliveries", delivered.to_string().as_str());
        // Header values are one line.
        let reason: String = error
            .to_string()
            .chars()
            .filter(|c| !c.is_control())
            .take(500)
            .collect();
        headers.insert("Bff-Failure", reason.as_str());
        let subject = self
            .topology
            .subject(&format!("{DEAD_LETTER_SUBJECT}.{channel}"));
        // Dead letters are kept for weeks; the code they may carry expired in
        // minutes and stays out.
        let payload = match serde_json::from_slice::<serde_json::Value>(&message.payload) {
            Ok(mut value) => {
                if let Some(object) = value.as_object_mut() {
                    object.remove("code");
                }
                serde_json::to_vec(&value).map_or_else(|_| message.payload.clone(), Into::into)
            }
            Err(_) => message.payload.clone(),
        };
        self.js
            .publish_with_headers(subject, headers, payload)
            .await
            .map_err(|e| e.to_string())?
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}
