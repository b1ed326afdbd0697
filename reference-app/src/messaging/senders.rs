//! Senders: where the notifier hands a rendered message over to the outside
//! world. SMTP for email, an HTTP webhook for SMS, and the log for development.

use std::sync::Arc;
use std::time::Duration;

use bff_auth::layer::BoxFuture;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::Channel;
use super::config::{EmailSenderKind, NotifierArgs, SmsSenderKind, SmtpTls};
use crate::config::Profile;

/// A message ready to go.
#[derive(Clone)]
pub struct Outgoing {
    /// The notification's id: the email's `Message-ID`, the webhook's
    /// `Idempotency-Key`, so a redelivery can be recognised downstream.
    pub id: Uuid,
    /// How it travels.
    pub channel: Channel,
    /// Address or number.
    pub to: String,
    /// Email subject.
    pub subject: String,
    /// The text.
    pub text: String,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The text may hold a code.
        f.debug_struct("Outgoing")
            .field("id", &self.id)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying later (the relay is down, a timeout, a 5xx).
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Retrying cannot help (a refused address, a 4xx): dead-letter it now.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// Delivers messages of one channel.
pub trait Sender: Send + Sync + std::fmt::Debug {
    /// Sends `message`; returns once the next hop has accepted it.
    fn send<'a>(&'a self, message: &'a Outgoing) -> BoxFuture<'a, Result<(), SendError>>;
}

/// Writes messages, codes included, to the log: for development only, and
/// refused by the prod profile.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSender;

impl Sender for LogSender {
    fn send<'a>(&'a self, message: &'a Outgoing) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            tracing::info!(
                id = %message.id,
                channel = message.channel.as_str(),
                to = %message.to,
                subject = %message.subject,
                text = %message.text,
                "notification (development log sender; nothing was sent)"
            );
            Ok(())
        })
    }
}

/// How the SMTP sender reaches its relay.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Relay host.
    pub host: String,
    /// Relay port.
    pub port: u16,
    /// TLS mode.
    pub tls: crate::config::SmtpTls,
    /// User name and password, if the relay wants them.
    pub credentials: Option<(String, SecretString)>,
    /// The From mailbox.
    pub from: String,
    /// Longest one conversation may take.
    pub timeout: Duration,
}

/// Sends email through an SMTP relay.
#[derive(Clone)]
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

/// Why a sender could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SenderSetupError {
    /// The From address is not a mailbox.
    #[error("BFF_SMTP_FROM is not a valid mailbox")]
    From(#[source] lettre::address::AddressError),
    /// The SMTP transport could not be built.
    #[error("cannot set up SMTP towards {0}")]
    Smtp(String, #[source] lettre::transport::smtp::Error),
    /// The HTTP client could not be built.
    #[error("cannot build the webhook's HTTP client")]
    Http(#[source] reqwest::Error),
    /// A setting is missing.
    #[error("{0}")]
    Missing(&'static str),
}

impl SmtpSender {
    /// A sender through the relay `config` describes. Connections are made on
    /// demand and pooled.
    pub fn new(config: &SmtpConfig) -> Result<Self, SenderSetupError> {
        let from: Mailbox = config.from.parse().map_err(SenderSetupError::From)?;
        let smtp_error = |e| SenderSetupError::Smtp(config.host.clone(), e);
        let builder = match config.tls {
            SmtpTls::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host).map_err(smtp_error)?
            }
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(smtp_error)?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        };
        let mut builder = builder.port(config.port).timeout(Some(config.timeout));
        if let Some((user, password)) = &config.credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

impl Sender for SmtpSender {
    fn send<'a>(&'a self, message: &'a Outgoing) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let to: Mailbox = message
                .to
                .parse()
                .map_err(|e| SendError::Permanent(format!("invalid recipient: {e}")))?;
            let email = lettre::Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(&message.subject)
                .message_id(Some(format!("<{}@bff.notifications>", message.id)))
                .header(ContentType::TEXT_PLAIN)
                .body(message.text.clone())
                .map_err(|e| SendError::Permanent(e.to_string()))?;
            match self.transport.send(email).await {
                Ok(_) => Ok(()),
                Err(error) if error.is_permanent() => Err(SendError::Permanent(error.to_string())),
                Err(error) => Err(SendError::Transient(error.to_string())),
            }
        })
    }
}

/// POSTs text messages to an SMS gateway's webhook as JSON
/// `{"id", "to", "text"}`, with `Authorization: Bearer <token>` and
/// `Idempotency-Key: <id>`.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    url: url::Url,
    token: SecretString,
}

impl WebhookSender {
    /// A sender to `url` authenticating with `token`.
    pub fn new(
        url: url::Url,
        token: SecretString,
        timeout: Duration,
    ) -> Result<Self, SenderSetupError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(SenderSetupError::Http)?;
        Ok(Self { client, url, token })
    }
}

impl Sender for WebhookSender {
    fn send<'a>(&'a self, message: &'a Outgoing) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let response = self
                .client
                .post(self.url.clone())
                .bearer_auth(self.token.expose_secret())
                .header("Idempotency-Key", message.id.to_string())
                .json(&serde_json::json!({
                    "id": message.id,
                    "to": message.to,
                    "text": message.text,
                }))
                .send()
                .await
                // A failure to connect or a timeout may pass; the gateway's
                // idempotency key absorbs a repeat of a request that did arrive.
                .map_err(|e| SendError::Transient(format!("webhook unreachable: {e}")))?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else if status.is_server_error()
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                || status == reqwest::StatusCode::REQUEST_TIMEOUT
            {
                Err(SendError::Transient(format!("webhook answered {status}")))
            } else {
                Err(SendError::Permanent(format!("webhook answered {status}")))
            }
        })
    }
}

/// The notifier's senders as `args` configure them; the log sender only in
/// the dev profile, where it is also the default.
pub fn configured(
    args: &NotifierArgs,
    profile: Profile,
) -> Result<super::notifier::Senders, SenderSetupError> {
    fn dev_default<T>(chosen: Option<T>, log: T, profile: Profile) -> Option<T> {
        chosen.or((profile == Profile::Dev).then_some(log))
    }
    let email: Arc<dyn Sender> = match dev_default(args.email_sender, EmailSenderKind::Log, profile)
    {
        Some(EmailSenderKind::Log) if profile == Profile::Dev => Arc::new(LogSender),
        Some(EmailSenderKind::Smtp) => {
            let host = args.smtp_host.clone().ok_or(SenderSetupError::Missing(
                "BFF_EMAIL_SENDER=smtp needs BFF_SMTP_HOST",
            ))?;
            let from = args.smtp_from.clone().ok_or(SenderSetupError::Missing(
                "BFF_EMAIL_SENDER=smtp needs BFF_SMTP_FROM",
            ))?;
            let port = args.smtp_port.unwrap_or(match args.smtp_tls {
                SmtpTls::Tls => 465,
                SmtpTls::Starttls => 587,
                SmtpTls::None => 25,
            });
            let credentials = match (&args.smtp_username, &args.smtp_password) {
                (Some(user), Some(password)) => Some((user.clone(), password.clone())),
                (None, None) => None,
                _ => {
                    return Err(SenderSetupError::Missing(
                        "BFF_SMTP_USERNAME and BFF_SMTP_PASSWORD go together",
                    ));
                }
            };
            Arc::new(SmtpSender::new(&SmtpConfig {
                host,
                port,
                tls: args.smtp_tls,
                credentials,
                from,
                timeout: args.smtp_timeout,
            })?)
        }
        _ => {
            return Err(SenderSetupError::Missing(
                "the prod profile needs BFF_EMAIL_SENDER=smtp (the log sender is for development only), or BFF_NOTIFIER=false to deliver elsewhere",
            ));
        }
    };
    let sms: Arc<dyn Sender> = match dev_default(args.sms_sender, SmsSenderKind::Log, profile) {
        Some(SmsSenderKind::Log) if profile == Profile::Dev => Arc::new(LogSender),
        Some(SmsSenderKind::Webhook) => {
            let url = args
                .sms_webhook_url
                .clone()
                .ok_or(SenderSetupError::Missing(
                    "BFF_SMS_SENDER=webhook needs BFF_SMS_WEBHOOK_URL",
                ))?;
            let token = args
                .sms_webhook_token
                .clone()
                .ok_or(SenderSetupError::Missing(
                    "BFF_SMS_SENDER=webhook needs BFF_SMS_WEBHOOK_TOKEN",
                ))?;
            Arc::new(WebhookSender::new(url, token, args.sms_webhook_timeout)?)
        }
        _ => {
            return Err(SenderSetupError::Missing(
                "the prod profile needs BFF_SMS_SENDER=webhook (the log sender is for development only), or BFF_NOTIFIER=false to deliver elsewhere",
            ));
        }
    };
    Ok(super::notifier::Senders { email, sms })
}
