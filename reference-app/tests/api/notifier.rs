//! The notifier: delivery over SMTP and the SMS webhook, retries, dead letters.

use std::time::{Duration, Instant};

use bff_app::config::{EmailSenderKind, ServeArgs, SmsSenderKind, SmtpTls};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{SmtpSink, TestApp};

const WEBHOOK_TOKEN: &str = "webhook-test-token";

pub(crate) fn with_notifier(c: &mut ServeArgs) {
    c.notifier.notifier = true;
    c.notifier.email_sender = Some(EmailSenderKind::Log);
    c.notifier.sms_sender = Some(SmsSenderKind::Log);
}

pub(crate) fn with_smtp(c: &mut ServeArgs, port: u16) {
    with_notifier(c);
    c.notifier.email_sender = Some(EmailSenderKind::Smtp);
    c.notifier.smtp_host = Some("127.0.0.1".to_owned());
    c.notifier.smtp_port = Some(port);
    c.notifier.smtp_tls = SmtpTls::None;
    c.notifier.smtp_from = Some("BFF <no-reply@example.com>".to_owned());
}

fn with_webhook(c: &mut ServeArgs, server: &MockServer, deliveries: u16) {
    with_notifier(c);
    c.notifier.sms_sender = Some(SmsSenderKind::Webhook);
    c.notifier.sms_webhook_url = Some(format!("{}/sms", server.uri()).parse().expect("url"));
    c.notifier.sms_webhook_token = Some(SecretString::from(WEBHOOK_TOKEN));
    c.notifier.notifier_max_deliveries = deliveries;
    c.notifier.notifier_retry_delay = Duration::from_millis(100);
}

async fn ask_code(app: &TestApp, identifier: &str) {
    let response = app
        .post_json(
            "/api/v1/auth/verify-code",
            &json!({"identifier": identifier, "purpose": "register"}),
        )
        .await;
    assert_eq!(response.status(), 202);
}

/// The 6-digit number in `text`.
fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("a code in {text}"))
        .to_owned()
}

async fn wait_for_requests(server: &MockServer, n: usize) -> Vec<wiremock::Request> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let requests = server.received_requests().await.unwrap_or_default();
        if requests.len() >= n {
            return requests;
        }
        assert!(Instant::now() < deadline, "{n} webhook calls within 15 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn email_goes_out_over_smtp_and_the_code_in_it_registers() {
    let sink = SmtpSink::start("250 OK").await;
    let app = TestApp::spawn_with(|c| with_smtp(c, sink.port)).await;
    ask_code(&app, "mail@example.com").await;

    let mail = sink.wait_for(1).await.remove(0);
    assert!(mail.contains("To: mail@example.com"), "{mail}");
    assert!(mail.contains("From: BFF <no-reply@example.com>"), "{mail}");
    assert!(mail.contains("Subject: Your sign-up code"), "{mail}");
    assert!(
        mail.contains("@bff.notifications>"),
        "Message-ID is the notification id"
    );
    let code = code_in(mail.split("\n\n").nth(1).expect("a body"));

    let response = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"identifier": "mail@example.com", "code": code, "password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_text_message_goes_to_the_webhook_with_its_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms"))
        .and(header(
            "authorization",
            format!("Bearer {WEBHOOK_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let app = TestApp::spawn_with(|c| with_webhook(c, &server, 5)).await;
    app.client
        .post(app.url("/api/v1/auth/verify-code"))
        .header("Accept-Language", "ru")
        .json(&json!({"identifier": "+7 999 765-43-21", "purpose": "register"}))
        .send()
        .await
        .expect("sent");

    let request = wait_for_requests(&server, 1).await.remove(0);
    let body: Value = serde_json::from_slice(&request.body).expect("JSON");
    assert_eq!(body["to"], "+79997654321");
    let text = body["text"].as_str().expect("text");
    assert!(text.starts_with("Ваш код для регистрации"), "{text}");
    assert_eq!(
        request
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok()),
        body["id"].as_str()
    );
    let code = code_in(text);
    let response = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"identifier": "+79997654321", "code": code, "password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    // Acked: no redelivery follows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(1));
}

#[tokio::test]
async fn a_failing_webhook_is_retried_then_dead_lettered() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let app = TestApp::spawn_with(|c| with_webhook(c, &server, 3)).await;
    let mut dead = app.dead_letters().await;
    ask_code(&app, "+79990001122").await;

    let letter = dead.next().await;
    assert_eq!(
        letter.subject,
        app.topology.subject("dead.notifications.sms")
    );
    assert_eq!(letter.payload["to"], "+79990001122");
    assert_eq!(letter.payload["template"], "verify_code");
    assert!(
        letter.payload.get("code").is_none(),
        "codes stay out of dead letters"
    );
    assert_eq!(letter.msg_id.as_deref(), letter.payload["id"].as_str());
    assert_eq!(
        server.received_requests().await.map(|r| r.len()),
        Some(3),
        "three deliveries, then the dead letter"
    );
    // The dead letter is on the stream a moment before the counter moves.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let dead = app
            .metric("bff_notifications_dead_lettered_total{channel=\"sms\"}")
            .await;
        if dead > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the dead letter was counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_refused_recipient_is_dead_lettered_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400))
        .mount(&server)
        .await;
    let app = TestApp::spawn_with(|c| with_webhook(c, &server, 5)).await;
    let mut dead = app.dead_letters().await;
    ask_code(&app, "+79990003344").await;
    dead.next().await;
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(1));
}

#[tokio::test]
async fn a_relay_that_keeps_refusing_ends_in_the_dead_letters() {
    // A sink that always answers 451: every delivery is a temporary failure.
    let sink = SmtpSink::start("451 try again later").await;
    let app = TestApp::spawn_with(|c| {
        with_smtp(c, sink.port);
        c.notifier.notifier_max_deliveries = 2;
        c.notifier.notifier_retry_delay = Duration::from_millis(100);
    })
    .await;
    let mut dead = app.dead_letters().await;
    ask_code(&app, "busy@example.com").await;
    let letter = dead.next().await;
    assert_eq!(
        letter.subject,
        app.topology.subject("dead.notifications.email")
    );
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_notification_whose_code_does_not_open_is_never_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let app = TestApp::spawn_with(|c| with_webhook(c, &server, 5)).await;
    let mut dead = app.dead_letters().await;
    // Someone with publish rights on the bus writes a code in clear.
    let nats = async_nats::connect(app.config.nats.nats_url.expose_secret())
        .await
        .expect("NATS");
    let forged = json!({
        "id": uuid::Uuid::now_v7(),
        "channel": "sms",
        "to": "+79990003344",
        "template": "verify_code",
        "code": "012345",
        "locale": "en",
        "created_at": "2026-12-02T00:00:00Z",
    });
    async_nats::jetstream::new(nats)
        .publish(
            app.topology.subject("notifications.sms"),
            forged.to_string().into(),
        )
        .await
        .expect("published")
        .await
        .expect("stored");
    let letter = dead.next().await;
    assert_eq!(letter.payload["to"], "+79990003344");
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(0));
}

#[tokio::test]
async fn a_reset_for_an_unknown_number_is_dropped_not_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let app = TestApp::spawn_with(|c| with_webhook(c, &server, 5)).await;
    let mut dead = app.dead_letters().await;
    let response = app
        .post_json(
            "/api/v1/auth/reset-password",
            &json!({"identifier": "+79990007788"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    // A code asked for afterwards arrives alone: the `nothing` before it was
    // acknowledged without a send (and not dead-lettered).
    ask_code(&app, "+79990007799").await;
    let requests = wait_for_requests(&server, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests = server.received_requests().await.unwrap_or(requests);
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_slice(&requests[0].body).expect("JSON");
    assert_eq!(body["to"], "+79990007799");
    assert!(dead.next_within(Duration::from_millis(200)).await.is_none());
}

#[tokio::test]
async fn a_send_slower_than_the_ack_wait_is_not_repeated_meanwhile() {
    // The webhook takes 14 s, longer than the consumer's 10 s ack wait: the
    // notifier reports the send in progress, so JetStream does not hand the
    // message out again while it is being sent.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(14)))
        .mount(&server)
        .await;
    let app = TestApp::spawn_with(|c| {
        with_webhook(c, &server, 5);
        c.notifier.sms_webhook_timeout = Duration::from_secs(25);
    })
    .await;
    ask_code(&app, "+7 999 765-43-22").await;
    wait_for_requests(&server, 1).await;
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert_eq!(
        server.received_requests().await.map(|r| r.len()),
        Some(1),
        "one send, not repeated while it was under way or after"
    );
}

#[tokio::test]
async fn a_notification_delivered_again_after_it_was_sent_is_not_sent_twice() {
    // JetStream hands a message out again when its ack was lost (a server of a
    // cluster died): here, the same notification stored twice under two
    // message ids. The second is acknowledged without a send.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let app = TestApp::spawn_with(|c| with_webhook(c, &server, 5)).await;
    let js = async_nats::jetstream::new(
        async_nats::connect(app.config.nats.nats_url.expose_secret())
            .await
            .expect("NATS"),
    );
    let notification = json!({
        "id": uuid::Uuid::now_v7(),
        "channel": "sms",
        "to": "+79990005566",
        "template": "password_changed",
        "locale": "en",
        "created_at": "2026-12-03T00:00:00Z",
    });
    for _ in 0..2 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", uuid::Uuid::now_v7().to_string().as_str());
        js.publish_with_headers(
            app.topology.subject("notifications.sms"),
            headers,
            notification.to_string().into(),
        )
        .await
        .expect("published")
        .await
        .expect("stored");
        wait_for_requests(&server, 1).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let repeated = app
            .metric("bff_notifications_repeated_total{channel=\"sms\"}")
            .await;
        if repeated == 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the repeat was counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(1));
}
