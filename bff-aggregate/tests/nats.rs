//! NATS sources against the real server on 127.0.0.1:4222, each test on
//! subjects of its own.

use std::time::Duration;

use bff_aggregate::{Aggregate, Call, ErrorKind, Forward, Source, Status, nats};
use bytes::Bytes;
use futures_util::StreamExt;
use http::HeaderValue;

async fn client() -> async_nats::Client {
    async_nats::connect("127.0.0.1:4222")
        .await
        .expect("NATS runs on 127.0.0.1:4222")
}

fn subject(what: &str) -> String {
    format!("test.agg.{}.{what}", uuid::Uuid::now_v7().simple())
}

fn forward() -> Forward {
    Forward::new()
        .with_request_id(HeaderValue::from_static("req-nats-1"))
        .with_authorization(HeaderValue::from_static("Bearer n4ts"))
}

/// Answers every request on `subject` with the headers it received, or with
/// the given service error headers.
async fn responder(client: &async_nats::Client, subject: &str, error: Option<(&'static str, u16)>) {
    let mut requests = client
        .subscribe(subject.to_owned())
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    let client = client.clone();
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let Some(reply) = request.reply else { continue };
            let header = |name: &str| {
                request
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default()
            };
            let body = format!(
                "{}|{}|{}",
                header("X-Request-Id"),
                header("Authorization"),
                header(nats::TIMEOUT_HEADER)
            );
            let mut headers = async_nats::HeaderMap::new();
            if let Some((message, code)) = error {
                headers.insert("Nats-Service-Error", message);
                headers.insert("Nats-Service-Error-Code", code.to_string().as_str());
            }
            let _ = client
                .publish_with_headers(reply, headers, Bytes::from(body))
                .await;
        }
    });
}

#[tokio::test]
async fn forwarded_headers_arrive() {
    let client = client().await;
    let subject = subject("echo");
    responder(&client, &subject, None).await;

    let reply = nats::request(
        &client,
        subject.clone(),
        Bytes::from_static(b"hi"),
        &forward(),
        &Call::within(Duration::from_secs(2)),
    )
    .await
    .expect("a reply");
    let text = String::from_utf8_lossy(&reply.payload).into_owned();
    let (forwarded, timeout) = text.rsplit_once('|').expect("three fields");
    assert_eq!(forwarded, "req-nats-1|Bearer n4ts");
    // The remaining time, so the responder can give up with the requester.
    let ms: u64 = timeout.parse().expect("milliseconds");
    assert!((1_000..=2_000).contains(&ms), "{ms}");
}

#[tokio::test]
async fn as_a_source_in_an_aggregate() {
    let client = client().await;
    let subject = subject("echo");
    responder(&client, &subject, None).await;

    let forward = forward();
    let echo = Source::required("echo", Duration::from_secs(2), move |call| {
        let (client, subject, forward) = (client.clone(), subject.clone(), forward.clone());
        async move {
            let reply = nats::request(&client, subject, Bytes::new(), &forward, &call).await?;
            Ok(reply.payload)
        }
    });
    let assembled = Aggregate::new(Duration::from_secs(2))
        .run((echo,))
        .await
        .expect("a reply");
    assert!(assembled.parts.0.starts_with(b"req-nats-1|Bearer n4ts|"));
    assert!(assembled.meta.complete);
}

#[tokio::test]
async fn no_responders_fails_fast_and_transient() {
    let client = client().await;
    let started = std::time::Instant::now();
    let error = nats::request(
        &client,
        subject("nobody"),
        Bytes::new(),
        &forward(),
        &Call::within(Duration::from_secs(2)),
    )
    .await
    .expect_err("nobody listens");

    // NATS tells the requester at once; the bound is generous, the point is
    // that it is far from the 2 s deadline.
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(error.kind(), ErrorKind::Transient);
    assert!(!error.is_timeout(), "{error}");
}

#[tokio::test]
async fn a_silent_responder_times_out_at_the_deadline() {
    let client = client().await;
    let subject = subject("silent");
    // Subscribed, so there is a responder, but it never answers.
    let _silent = client.subscribe(subject.clone()).await.expect("subscribe");
    client.flush().await.expect("flush");

    let started = std::time::Instant::now();
    let error = nats::request(
        &client,
        subject.clone(),
        Bytes::new(),
        &forward(),
        &Call::within(Duration::from_millis(300)),
    )
    .await
    .expect_err("no answer");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(290), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(error.kind(), ErrorKind::Transient);
    assert!(error.is_timeout());

    // In an aggregate, the same is an optional source's `timeout`.
    let silent = Source::optional("silent", Duration::from_millis(300), move |call| {
        let (client, subject) = (client.clone(), subject.clone());
        async move { nats::request(&client, subject, Bytes::new(), &Forward::new(), &call).await }
    });
    let assembled = Aggregate::new(Duration::from_secs(1))
        .run((silent,))
        .await
        .expect("optional");
    assert_eq!(assembled.meta.sources["silent"].status, Status::Timeout);
}

#[tokio::test]
async fn service_error_replies_are_errors() {
    let client = client().await;
    let missing = subject("missing");
    responder(&client, &missing, Some(("no such account", 404))).await;
    let broken = subject("broken");
    responder(&client, &broken, Some(("database down", 503))).await;

    let call = Call::within(Duration::from_secs(2));
    let error = nats::request(&client, missing, Bytes::new(), &forward(), &call)
        .await
        .expect_err("a service error");
    assert_eq!(error.kind(), ErrorKind::Permanent);
    assert_eq!(error.to_string(), "404 no such account");

    let error = nats::request(&client, broken, Bytes::new(), &forward(), &call)
        .await
        .expect_err("a service error");
    assert_eq!(error.kind(), ErrorKind::Transient);
}
