//! The notifier: a durable JetStream consumer on `NOTIFICATIONS` that renders
//! each notification and hands it to the sender of its channel.
//!
//! A message is acked only after its sender accepted it. A failed send is
//! redelivered after a delay that doubles each time; after the configured number
//! of deliveries, or at once when retrying cannot help, the message moves to the
//! dead-letter subject (`dead.notifications.<channel>`, kept by the
//! `NOTIFICATIONS_DEAD` stream) and is counted in
//! `bff_notifications_dead_lettered_total`.

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::StreamExt;
use tokio::sync::watch;

use super::seal::CodeSeal;
use super::senders::{Outgoing, SendError, Sender};
use super::{Channel, DEAD_LETTER_SUBJECT, Notification, Topology, templates};

/// What became of a notification that did not fail.
enum Delivery {
    /// A sender took it.
    Sent,
    /// It had nothing to say ([`Template::Nothing`](super::Template::Nothing)).
    Dropped,
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

/// How long the server waits for an ack before it redelivers on its own; longer
/// than any sender's own timeout.
const ACK_WAIT: Duration = Duration::from_secs(60);

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
    config: NotifierConfig,
}

impl Notifier {
    /// A notifier on `js`'s `NOTIFICATIONS` stream (see [`Topology`]).
    pub fn new(
        js: jetstream::Context,
        topology: Topology,
        senders: Senders,
        config: NotifierConfig,
    ) -> Self {
        Self {
            js,
            topology,
            senders,
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
        let messages = consumer.messages().await.map_err(|e| e.to_string())?;
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
        let outcome = self.deliver(&message).await;
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
        if let Err(error) = message.ack_with(ack).await {
            // The server redelivers after the ack wait; a send may repeat, which
            // the message id lets the next hop recognise.
            tracing::warn!(%error, "could not acknowledge a notification");
        }
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
            Ok(sent) => sent.map(|()| Delivery::Sent),
            Err(_) => Err(SendError::Transient("the send timed out".to_owned())),
        }
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
