//! The transactional outbox: nothing lost while NATS is down, nothing stored
//! twice when a publish repeats.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::json;

use crate::helpers::{PrivateNats, StreamReader, TestApp};

async fn unpublished(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&app.db)
        .await
        .expect("count")
}

/// Reads messages until none comes for `quiet`; counts them by message id.
async fn drain(reader: &mut StreamReader, quiet: Duration) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    while let Some(message) = reader.next_within(quiet).await {
        *seen
            .entry(message.msg_id.expect("Nats-Msg-Id"))
            .or_insert(0) += 1;
    }
    seen
}

#[tokio::test]
async fn messages_written_while_nats_is_down_arrive_exactly_once_after() {
    let mut nats = PrivateNats::start();
    let url = nats.url();
    let app = TestApp::spawn_with(|c| {
        c.nats.nats_url = SecretString::from(url.clone());
        c.outbox.outbox_poll_interval = Duration::from_millis(200);
    })
    .await;
    // The durable consumer exists before the outage, as the notifier's would.
    drop(StreamReader::open(&url, &app.topology.notifications()).await);

    nats.stop();
    let identifiers: Vec<String> = (0..5).map(|i| format!("outage{i}@example.com")).collect();
    for identifier in &identifiers {
        let response = app
            .post_json(
                "/api/v1/auth/verify-code",
                &json!({"identifier": identifier, "purpose": "register"}),
            )
            .await;
        assert_eq!(
            response.status(),
            202,
            "requests succeed without the broker"
        );
    }
    // The relay tries (each publish waits for JetStream's ack a few seconds)
    // and fails; the rows wait, their attempts recorded.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let tried: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE attempts > 0 AND last_error IS NOT NULL",
        )
        .fetch_one(&app.db)
        .await
        .expect("count");
        if tried > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relay tried while NATS was down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(unpublished(&app).await, 5);

    nats.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    while unpublished(&app).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the outbox drained after NATS came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut reader = StreamReader::open(&url, &app.topology.notifications()).await;
    let seen = drain(&mut reader, Duration::from_secs(2)).await;
    let ids: Vec<String> = sqlx::query_scalar("SELECT id::text FROM outbox ORDER BY id")
        .fetch_all(&app.db)
        .await
        .expect("ids");
    assert_eq!(ids.len(), 5);
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        ids,
        "every message arrived"
    );
    assert!(
        seen.values().all(|&n| n == 1),
        "each exactly once: {seen:?}"
    );
}

#[tokio::test]
async fn a_repeated_publish_is_stored_once() {
    let app =
        TestApp::spawn_with(|c| c.outbox.outbox_poll_interval = Duration::from_millis(100)).await;
    let response = app
        .post_json(
            "/api/v1/auth/verify-code",
            &json!({"identifier": "twice@example.com", "purpose": "register"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    while unpublished(&app).await > 0 {
        assert!(Instant::now() < deadline, "published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A relay that crashed between JetStream's ack and its own update publishes
    // the row again.
    sqlx::query("UPDATE outbox SET published_at = NULL")
        .execute(&app.db)
        .await
        .expect("update");
    while unpublished(&app).await > 0 {
        assert!(Instant::now() < deadline, "published again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut reader = app.notifications().await;
    let seen = drain(&mut reader, Duration::from_secs(1)).await;
    assert_eq!(seen.len(), 1);
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
}

#[tokio::test]
async fn several_instances_relay_one_outbox_without_losing_a_row() {
    let app = TestApp::spawn_with(|c| c.outbox.outbox_batch_size = 7).await;
    let sibling = app.spawn_sibling().await;
    // Rows written straight into the table, as another writer's transaction would.
    sqlx::query(
        "INSERT INTO outbox (id, subject, payload)
         SELECT gen_random_uuid(), 'events.test.happened', jsonb_build_object('n', n)
         FROM generate_series(1, 200) AS n",
    )
    .execute(&app.db)
    .await
    .expect("insert");
    let deadline = Instant::now() + Duration::from_secs(30);
    while unpublished(&app).await > 0 {
        assert!(Instant::now() < deadline, "both relays drained the outbox");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut events = app.events().await;
    let seen = drain(&mut events, Duration::from_secs(1)).await;
    assert_eq!(seen.len(), 200);
    assert!(seen.values().all(|&n| n == 1));
    sibling.stop().await;
}
