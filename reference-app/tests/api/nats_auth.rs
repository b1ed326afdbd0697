//! NATS with accounts: each process connects with credentials and may only do
//! its own job on the bus.

use std::time::Duration;

use bff_app::config::ServeArgs;
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::{PrivateNats, TestApp};

const BFF_PASSWORD: &str = "bff-test-password";
const RESPONDER_PASSWORD: &str = "responder-test-password";

/// The permissions of docs/security.md and docker-compose.yml, for subjects
/// and streams under `prefix`: the BFF (relay, notifier, dashboard requests
/// and, in-process here, the loyalty responder) and a responder alone.
fn accounts(prefix: &str) -> String {
    format!(
        r#"
accounts {{
  APP {{
    jetstream: enabled
    users: [
      {{
        user: bff, password: "{BFF_PASSWORD}",
        permissions: {{
          publish: {{ allow: [
            "{prefix}notifications.>", "{prefix}events.>", "{prefix}dead.notifications.>",
            "{prefix}loyalty.points.get",
            "$JS.API.INFO", "$JS.API.STREAM.INFO.*", "$JS.API.STREAM.CREATE.*", "$JS.API.STREAM.UPDATE.*",
            "$JS.API.CONSUMER.CREATE.{prefix}NOTIFICATIONS.>", "$JS.API.CONSUMER.DURABLE.CREATE.{prefix}NOTIFICATIONS.*",
            "$JS.API.CONSUMER.INFO.{prefix}NOTIFICATIONS.*", "$JS.API.CONSUMER.MSG.NEXT.{prefix}NOTIFICATIONS.*",
            "$JS.ACK.{prefix}NOTIFICATIONS.>"
          ] }}
          subscribe: {{ allow: [
            "_INBOX.>", "{prefix}loyalty.points.get",
            "{prefix}events.session.revoked", "{prefix}events.user.sessions_revoked", "{prefix}events.user.blocked"
          ] }}
          allow_responses: true
        }}
      }}
      {{
        user: responder, password: "{RESPONDER_PASSWORD}",
        permissions: {{
          publish: {{ deny: [">"] }}
          subscribe: {{ allow: [
            "{prefix}loyalty.points.get",
            "{prefix}events.session.revoked", "{prefix}events.user.sessions_revoked", "{prefix}events.user.blocked"
          ] }}
          allow_responses: true
        }}
      }}
    ]
  }}
}}
"#
    )
}

fn with_bff_credentials(c: &mut ServeArgs, nats: &PrivateNats, prefix: &str) {
    c.nats.nats_url = SecretString::from(nats.url());
    c.nats.nats_prefix = prefix.to_owned();
    c.nats.nats_user = Some("bff".to_owned());
    c.nats.nats_password = Some(SecretString::from(BFF_PASSWORD));
}

#[tokio::test]
async fn nats_with_accounts_refuses_strangers_and_keeps_each_to_its_job() {
    let prefix = format!("TEST_{}_", uuid::Uuid::now_v7().simple());
    let nats = PrivateNats::start_with_config(&accounts(&prefix));

    // Without credentials, no connection.
    let stranger = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(Some(1))
        .connect(nats.url())
        .await;
    let refused = match stranger {
        Err(_) => true,
        Ok(client) => tokio::time::timeout(Duration::from_secs(3), client.flush())
            .await
            .map_or(true, |flushed| flushed.is_err()),
    };
    assert!(refused, "a client without credentials is refused");

    // The BFF works with its own: streams, the relay, the notifier, the
    // dashboard's loyalty request.
    let app = TestApp::spawn_with(|c| {
        with_bff_credentials(c, &nats, &prefix);
        c.notifier.notifier = true;
        c.notifier.email_sender = Some(bff_app::config::EmailSenderKind::Log);
    })
    .await;

    // The responder's credentials cannot read the notifications.
    let responder = async_nats::ConnectOptions::new()
        .user_and_password("responder".to_owned(), RESPONDER_PASSWORD.to_owned())
        .connect(nats.url())
        .await
        .expect("the responder connects");
    let mut spy = responder
        .subscribe(format!("{prefix}notifications.>"))
        .await
        .expect("a subscription request");
    let responder_js = async_nats::jetstream::new(responder.clone());
    let stream = tokio::time::timeout(
        Duration::from_secs(3),
        responder_js.get_stream(format!("{prefix}NOTIFICATIONS")),
    )
    .await;
    assert!(
        !matches!(stream, Ok(Ok(_))),
        "the responder reaches no stream"
    );

    let response = app
        .post_json(
            "/api/v1/auth/verify-code",
            &json!({"identifier": "bus@example.com", "purpose": "register"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    // The relay published it and the notifier consumed it (the outbox row is
    // marked published; the work queue is empty again).
    let published = async {
        loop {
            let done: bool = sqlx::query_scalar(
                "SELECT count(*) > 0 FROM outbox WHERE published_at IS NOT NULL",
            )
            .fetch_one(&app.db)
            .await
            .expect("outbox");
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), published)
        .await
        .expect("the relay publishes with the BFF's credentials");
    // The notifier consumed it: the work queue is empty again.
    let bff = async_nats::ConnectOptions::new()
        .user_and_password("bff".to_owned(), BFF_PASSWORD.to_owned())
        .connect(nats.url())
        .await
        .expect("the BFF's credentials connect");
    let mut stream = async_nats::jetstream::new(bff)
        .get_stream(format!("{prefix}NOTIFICATIONS"))
        .await
        .expect("the BFF reads its stream");
    let drained = async {
        loop {
            let info = stream.info().await.expect("stream info");
            if info.state.messages == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), drained)
        .await
        .expect("the notifier consumes with the BFF's credentials");
    let seen = tokio::time::timeout(
        Duration::from_millis(300),
        futures_util::StreamExt::next(&mut spy),
    )
    .await;
    assert!(
        !matches!(seen, Ok(Some(_))),
        "the responder's credentials read no notification"
    );
}
