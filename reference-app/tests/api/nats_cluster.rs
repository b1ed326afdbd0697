//! A three-server NATS cluster with streams replicated on all three: the
//! server that leads the notifier's consumer dies while notifications are
//! being relayed and sent, and each is still sent exactly once; the
//! dashboard's loyalty part, answered over NATS, keeps answering; the server
//! rejoins, another leaves, and all of it carries on.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bff_app::identity::Role;
use bff_app::messaging::{Channel, Locale, Notification, Template, outbox};
use reqwest::Method;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::helpers::{NatsCluster, SmtpSink, TestApp, TestUser};
use crate::notifier::with_smtp;

const NOTIFICATIONS: usize = 500;

/// Writes notification `index` (to `n<index>@example.com`) into the outbox,
/// as a request's transaction does.
async fn write_notification(app: &TestApp, index: usize) {
    let notification = Notification {
        id: uuid::Uuid::now_v7(),
        channel: Channel::Email,
        to: format!("n{index}@example.com"),
        template: Template::PasswordChanged,
        code: None,
        locale: Locale::En,
        created_at: OffsetDateTime::now_utc(),
    };
    let mut conn = app.db.acquire().await.expect("connection");
    outbox::notify(&mut conn, &notification)
        .await
        .expect("written");
}

/// The index of the server leading `consumer` of `stream`: the one that
/// takes the notifier's acknowledgements.
async fn leader_of(cluster: &NatsCluster, stream: &str, consumer: &str) -> usize {
    let client = async_nats::connect(cluster.urls().split(',').collect::<Vec<_>>())
        .await
        .expect("connect");
    let js = async_nats::jetstream::new(client);
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
        .get_stream(stream)
        .await
        .expect("the stream exists")
        .get_consumer(consumer)
        .await
        .expect("the notifier's consumer exists");
    let leader = consumer
        .info()
        .await
        .expect("consumer info")
        .cluster
        .clone()
        .and_then(|cluster| cluster.leader)
        .expect("a replicated consumer has a leader");
    let index = leader.rsplit('-').next().expect("name-index");
    index.parse().expect("the index in the server's name")
}

async fn unpublished(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&app.db)
        .await
        .expect("count")
}

#[tokio::test]
async fn a_server_dies_while_notifications_are_relayed_and_each_is_sent_once() {
    let mut cluster = NatsCluster::start(3).await;
    let smtp = SmtpSink::start("250 OK").await;
    let urls = cluster.urls();
    let app = TestApp::spawn_with(|c| {
        c.nats.nats_url = SecretString::from(urls.clone());
        c.outbox.nats_stream_replicas = 3;
        c.outbox.outbox_poll_interval = Duration::from_millis(200);
        c.outbox.outbox_batch_size = 20;
        c.backends.dashboard_cache_ttl = Duration::ZERO;
        with_smtp(c, smtp.port);
    })
    .await;
    let customer = app.user("loyal@example.com", Role::Customer).await;

    // The stream exists once the relay has published the first message.
    write_notification(&app, 0).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while unpublished(&app).await > 0 {
        assert!(Instant::now() < deadline, "the first message was relayed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    smtp.wait_for(1).await;
    let leader = leader_of(
        &cluster,
        &app.topology.notifications(),
        &app.topology.notifier_consumer(),
    )
    .await;

    // The rest are written while the relay and the notifier work; a third of
    // the way in, the consumer's leader dies.
    let killed_at = Instant::now();
    for index in 1..NOTIFICATIONS {
        write_notification(&app, index).await;
        if index == NOTIFICATIONS / 3 {
            cluster.servers[leader].stop();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    while unpublished(&app).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the outbox drained with a server down ({} left)",
            unpublished(&app).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let relayed_after = killed_at.elapsed();

    assert_each_sent_once(&smtp, NOTIFICATIONS).await;
    let repeated = app
        .metric("bff_notifications_repeated_total{channel=\"email\"}")
        .await;
    eprintln!(
        "{NOTIFICATIONS} notifications, the consumer's leader killed: outbox drained {relayed_after:?} after the kill, each sent once; {repeated} redeliveries recognised and not sent; all sent {:?} after the kill",
        killed_at.elapsed()
    );
    assert_loyalty_answers(&app, &customer).await;

    // The server rejoins and catches up; then another one leaves. The relay,
    // the notifier and the loyalty responder carry on with the two up.
    cluster.servers[leader].restart();
    cluster.wait_for_jetstream(3).await;
    let other = (leader + 1) % cluster.servers.len();
    cluster.servers[other].stop();
    let second = Instant::now();
    for index in NOTIFICATIONS..NOTIFICATIONS + 100 {
        write_notification(&app, index).await;
    }
    assert_each_sent_once(&smtp, NOTIFICATIONS + 100).await;
    eprintln!(
        "the killed server rejoined, another left: 100 more sent once each within {:?}",
        second.elapsed()
    );
    assert_loyalty_answers(&app, &customer).await;
}

/// Waits for notifications `0..count` and checks each was sent exactly once.
async fn assert_each_sent_once(smtp: &SmtpSink, count: usize) {
    smtp.wait_for_within(count, Duration::from_secs(90)).await;
    // A second send would come after the last first one: give it time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut sent: BTreeMap<String, usize> = BTreeMap::new();
    for message in smtp.messages() {
        let to = message
            .lines()
            .find_map(|line| line.strip_prefix("To: "))
            .expect("a To header")
            .trim()
            .to_owned();
        *sent.entry(to).or_default() += 1;
    }
    assert_eq!(sent.len(), count, "every notification was sent");
    let twice: Vec<_> = sent.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
}

/// Waits for the dashboard's loyalty part, answered over NATS by the
/// in-process responder.
async fn assert_loyalty_answers(app: &TestApp, customer: &TestUser) {
    let asked = Instant::now();
    let deadline = asked + Duration::from_secs(20);
    loop {
        let response = app
            .call(
                Method::GET,
                "/api/v1/dashboard",
                Some(&customer.token),
                None,
            )
            .await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.expect("json");
        if body["meta"]["sources"]["loyalty"]["status"] == "ok" {
            assert_eq!(
                body["loyalty"],
                serde_json::json!({"points": 0, "tier": "bronze"})
            );
            eprintln!(
                "loyalty answered {:?} after the first dashboard asked",
                asked.elapsed()
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the loyalty part recovered: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
