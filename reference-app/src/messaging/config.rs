//! The settings of NATS, the outbox relay and the notifier.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

use crate::config::parse_secret;

/// NATS settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "NATS")]
pub struct NatsArgs {
    /// Server URL, or a comma-separated list of a cluster's servers
    /// (`nats://n1:4222,nats://n2:4222,nats://n3:4222`). The client connects to
    /// one of them, learns the rest of the cluster from it, and moves to
    /// another when its server goes away.
    #[arg(long, env = "BFF_NATS_URL", default_value = "nats://127.0.0.1:4222", value_parser = parse_servers, hide_env_values = true)]
    pub nats_url: SecretString,
    /// Prefix of the JetStream stream names and subjects this deployment owns;
    /// empty in production so the names are the contract's, set by tests to
    /// isolate runs that share one server.
    #[arg(long, env = "BFF_NATS_PREFIX", default_value = "")]
    pub nats_prefix: String,
    /// User name for NATS's user/password authentication (with BFF_NATS_PASSWORD).
    #[arg(long, env = "BFF_NATS_USER", requires = "nats_password", conflicts_with_all = ["nats_token", "nats_nkey_seed", "nats_creds_file"])]
    pub nats_user: Option<String>,
    /// Password of BFF_NATS_USER.
    #[arg(long, env = "BFF_NATS_PASSWORD", value_parser = parse_secret, hide_env_values = true, requires = "nats_user")]
    pub nats_password: Option<SecretString>,
    /// Token for NATS's token authentication.
    #[arg(long, env = "BFF_NATS_TOKEN", value_parser = parse_secret, hide_env_values = true, conflicts_with_all = ["nats_nkey_seed", "nats_creds_file"])]
    pub nats_token: Option<SecretString>,
    /// NKey seed (`SU...`) for NATS's nkey authentication.
    #[arg(long, env = "BFF_NATS_NKEY_SEED", value_parser = parse_secret, hide_env_values = true, conflicts_with = "nats_creds_file")]
    pub nats_nkey_seed: Option<SecretString>,
    /// A `.creds` file (user JWT and nkey seed) for NATS's JWT authentication.
    #[arg(long, env = "BFF_NATS_CREDS_FILE")]
    pub nats_creds_file: Option<PathBuf>,
    /// CA certificate (PEM) that the server's TLS certificate must chain to.
    /// With it, or a `tls://` URL, the connection must be TLS.
    #[arg(long, env = "BFF_NATS_CA_FILE")]
    pub nats_ca_file: Option<PathBuf>,
    /// Client certificate (PEM), for servers that verify clients (with BFF_NATS_CLIENT_KEY_FILE).
    #[arg(
        long,
        env = "BFF_NATS_CLIENT_CERT_FILE",
        requires = "nats_client_key_file"
    )]
    pub nats_client_cert_file: Option<PathBuf>,
    /// Private key (PEM) of BFF_NATS_CLIENT_CERT_FILE.
    #[arg(
        long,
        env = "BFF_NATS_CLIENT_KEY_FILE",
        requires = "nats_client_cert_file"
    )]
    pub nats_client_key_file: Option<PathBuf>,
}

impl NatsArgs {
    /// A client of the configured server, named `name` in its monitoring, with
    /// the configured credentials and TLS.
    pub async fn connect(
        &self,
        name: &str,
    ) -> Result<async_nats::Client, async_nats::ConnectError> {
        self.options()
            .await?
            .name(name)
            .connection_timeout(crate::config::CONNECT_TIMEOUT)
            .connect(self.servers())
            .await
    }

    /// The configured servers' URLs.
    pub fn servers(&self) -> Vec<&str> {
        split_servers(self.nats_url.expose_secret()).collect()
    }

    /// Whether the connection must be TLS: a `tls://` URL or a CA to check.
    pub fn requires_tls(&self) -> bool {
        self.servers().iter().any(|url| url.starts_with("tls://")) || self.nats_ca_file.is_some()
    }

    /// Whether any credentials are configured.
    pub fn authenticates(&self) -> bool {
        self.nats_user.is_some()
            || self.nats_token.is_some()
            || self.nats_nkey_seed.is_some()
            || self.nats_creds_file.is_some()
    }

    async fn options(&self) -> std::io::Result<async_nats::ConnectOptions> {
        let mut options = match &self.nats_creds_file {
            Some(path) => async_nats::ConnectOptions::with_credentials_file(path).await?,
            None => async_nats::ConnectOptions::new(),
        };
        if let (Some(user), Some(password)) = (&self.nats_user, &self.nats_password) {
            options = options.user_and_password(user.clone(), password.expose_secret().to_owned());
        }
        if let Some(token) = &self.nats_token {
            options = options.token(token.expose_secret().to_owned());
        }
        if let Some(seed) = &self.nats_nkey_seed {
            options = options.nkey(seed.expose_secret().to_owned());
        }
        if let Some(ca) = &self.nats_ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.nats_client_cert_file, &self.nats_client_key_file) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(options.require_tls(self.requires_tls()))
    }
}

/// The URLs of a comma-separated list, blanks around them ignored.
fn split_servers(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim)
}

/// `BFF_NATS_URL`: one server URL or several, each one a NATS client can use.
fn parse_servers(value: &str) -> Result<SecretString, String> {
    for url in split_servers(value) {
        // The error names the position, not the URL: it may hold a password.
        if url.is_empty() {
            return Err("an empty server in the list".to_owned());
        }
        url.parse::<async_nats::ServerAddr>()
            .map_err(|e| format!("a server URL that does not parse: {e}"))?;
    }
    Ok(SecretString::from(value))
}

/// The transactional outbox and its relay to NATS JetStream.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Outbox and streams")]
pub struct OutboxArgs {
    /// Run the relay that publishes the outbox in this process. Several
    /// instances may relay at once.
    #[arg(long, env = "BFF_OUTBOX_RELAY", default_value_t = true, action = clap::ArgAction::Set)]
    pub outbox_relay: bool,
    /// How often the relay looks for due messages that no local write announced
    /// (retries, other instances' rows).
    #[arg(long, env = "BFF_OUTBOX_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub outbox_poll_interval: Duration,
    /// Messages published per batch.
    #[arg(long, env = "BFF_OUTBOX_BATCH_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub outbox_batch_size: u32,
    /// How long published rows are kept before they are deleted.
    #[arg(long, env = "BFF_OUTBOX_RETENTION", default_value = "1day", value_parser = humantime::parse_duration)]
    pub outbox_retention: Duration,
    /// Replicas of the JetStream streams (1 on a single server, 3 in a cluster).
    #[arg(long, env = "BFF_NATS_STREAM_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nats_stream_replicas: u8,
}

/// How notifications are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmailSenderKind {
    /// Write them to the log, codes included (dev profile only).
    Log,
    /// Send them through an SMTP relay (BFF_SMTP_*).
    Smtp,
}

/// How text messages are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmsSenderKind {
    /// Write them to the log, codes included (dev profile only).
    Log,
    /// POST them to an SMS gateway's webhook (BFF_SMS_WEBHOOK_*).
    Webhook,
}

/// TLS towards the SMTP relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmtpTls {
    /// Implicit TLS (port 465).
    Tls,
    /// STARTTLS, required (port 587).
    Starttls,
    /// Plain text; only for a relay on the same host or network.
    None,
}

/// The notifier: the consumer of NOTIFICATIONS that delivers messages.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Notifier")]
pub struct NotifierArgs {
    /// Run the notifier in this process; switch it off to run it elsewhere.
    #[arg(long, env = "BFF_NOTIFIER", default_value_t = true, action = clap::ArgAction::Set)]
    pub notifier: bool,
    /// Deliveries of a message before it moves to the dead-letter subject.
    #[arg(long, env = "BFF_NOTIFIER_MAX_DELIVERIES", default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub notifier_max_deliveries: u16,
    /// Messages sent at once.
    #[arg(long, env = "BFF_NOTIFIER_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub notifier_concurrency: u16,
    /// First redelivery delay after a failed send; it doubles with each failure,
    /// up to 10 minutes.
    #[arg(long, env = "BFF_NOTIFIER_RETRY_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub notifier_retry_delay: Duration,
    /// How emails are sent: `log` by default in dev; prod must choose `smtp`.
    #[arg(long, env = "BFF_EMAIL_SENDER", value_enum)]
    pub email_sender: Option<EmailSenderKind>,
    /// How text messages are sent: `log` by default in dev; prod must choose `webhook`.
    #[arg(long, env = "BFF_SMS_SENDER", value_enum)]
    pub sms_sender: Option<SmsSenderKind>,
    /// SMTP relay host.
    #[arg(long, env = "BFF_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// SMTP relay port; by default 465 with `tls`, 587 with `starttls`, 25 with `none`.
    #[arg(long, env = "BFF_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    /// TLS towards the relay.
    #[arg(long, env = "BFF_SMTP_TLS", value_enum, default_value_t = SmtpTls::Starttls)]
    pub smtp_tls: SmtpTls,
    /// SMTP user name (with BFF_SMTP_PASSWORD); none sends without authentication.
    #[arg(long, env = "BFF_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    /// SMTP password.
    #[arg(long, env = "BFF_SMTP_PASSWORD", value_parser = parse_secret, hide_env_values = true)]
    pub smtp_password: Option<SecretString>,
    /// The From of emails, e.g. `Example <no-reply@example.com>`.
    #[arg(long, env = "BFF_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Longest an SMTP conversation may take.
    #[arg(long, env = "BFF_SMTP_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub smtp_timeout: Duration,
    /// URL the SMS webhook POSTs to.
    #[arg(long, env = "BFF_SMS_WEBHOOK_URL")]
    pub sms_webhook_url: Option<url::Url>,
    /// Bearer token sent to the webhook in `Authorization`.
    #[arg(long, env = "BFF_SMS_WEBHOOK_TOKEN", value_parser = parse_secret, hide_env_values = true)]
    pub sms_webhook_token: Option<SecretString>,
    /// Longest a webhook call may take.
    #[arg(long, env = "BFF_SMS_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub sms_webhook_timeout: Duration,
}

impl OutboxArgs {
    /// The relay's settings.
    pub fn relay_config(&self) -> crate::messaging::outbox::RelayConfig {
        crate::messaging::outbox::RelayConfig {
            poll_interval: self.outbox_poll_interval,
            batch_size: self.outbox_batch_size,
            retention: self.outbox_retention,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::{Cli, Command};

    fn nats(args: &[&str]) -> Result<super::NatsArgs, clap::Error> {
        let mut argv = vec!["bff"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.into_command() {
            Command::Serve(serve) => Ok(serve.nats),
            _ => unreachable!("serve"),
        }
    }

    #[test]
    fn one_way_of_authenticating_and_tls_when_asked() {
        let plain = nats(&[]).expect("defaults");
        assert!(!plain.authenticates() && !plain.requires_tls());
        let user = nats(&["--nats-user", "bff", "--nats-password", "secret"]).expect("user");
        assert!(user.authenticates());
        for bad in [
            vec!["--nats-user", "bff"],
            vec!["--nats-password", "secret"],
            vec!["--nats-token", "t", "--nats-nkey-seed", "SU"],
            vec![
                "--nats-user",
                "bff",
                "--nats-password",
                "p",
                "--nats-token",
                "t",
            ],
            vec!["--nats-client-cert-file", "cert.pem"],
        ] {
            assert!(nats(&bad).is_err(), "{bad:?}");
        }
        assert!(
            nats(&["--nats-url", "tls://nats:4222"])
                .expect("tls")
                .requires_tls()
        );
        assert!(
            nats(&["--nats-ca-file", "ca.pem"])
                .expect("ca")
                .requires_tls()
        );
    }

    #[test]
    fn a_list_of_servers() {
        let cluster = nats(&[
            "--nats-url",
            "nats://127.0.0.1:4222, nats://127.0.0.1:4223,nats://a:s3cret@n3:4222",
        ])
        .expect("a list");
        assert_eq!(
            cluster.servers(),
            [
                "nats://127.0.0.1:4222",
                "nats://127.0.0.1:4223",
                "nats://a:s3cret@n3:4222"
            ]
        );
        assert!(!cluster.requires_tls());
        let one_tls = nats(&["--nats-url", "nats://n1:4222,tls://n2:4222"]).expect("tls");
        assert!(one_tls.requires_tls(), "one tls:// server makes all TLS");
        for bad in [
            "nats://n1:4222,",
            "nats://n1:4222,,nats://n2:4222",
            "nats://n1:notaport",
        ] {
            let error = nats(&["--nats-url", bad]).expect_err(bad).to_string();
            assert!(!error.contains("s3cret"));
        }
    }
}
