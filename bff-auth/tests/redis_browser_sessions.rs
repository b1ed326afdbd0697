//! Browser sessions in the Redis session store, against the real Redis on
//! 127.0.0.1:6379 and a local Redis Cluster (each test runs on both); every
//! test uses a key prefix of its own.

use std::time::Duration;

use bff_auth::session::{
    BrowserPolicy, BrowserSessionStore, CookieValue, NewSession, RedisSessionStore, SessionPolicy,
    SessionStore, Touch,
};
use bff_core::redis_client::RedisConnection;
use bff_core::redis_client::testing::Backend;
use redis::AsyncCommands;

async fn store(
    redis: Backend,
    browser: BrowserPolicy,
) -> (RedisSessionStore, RedisConnection, String) {
    let conn = redis.connect().await;
    let prefix = format!("test:{}:auth:", uuid::Uuid::now_v7().simple());
    let store = RedisSessionStore::new(conn.clone(), prefix.clone(), SessionPolicy::default())
        .with_browser_policy(browser);
    (store, conn, prefix)
}

fn new(user: &str) -> NewSession {
    NewSession {
        user_id: user.to_owned(),
        user_agent: Some("test-agent".into()),
        ip: Some("127.0.0.1".into()),
    }
}

async fn login(store: &RedisSessionStore, user: &str) -> (String, CookieValue) {
    let (session, cookie) = store
        .create_browser(new(user), "customer")
        .await
        .expect("create");
    (session.session.id, cookie)
}

async fn live(store: &RedisSessionStore, cookie: &CookieValue, touch: Touch) -> bool {
    store
        .lookup_browser(cookie, touch)
        .await
        .expect("store")
        .is_some()
}

async fn a_browser_session_is_listed_with_the_others_and_revoke_all_ends_it(redis: Backend) {
    let (store, _, _) = store(redis, BrowserPolicy::default()).await;
    let (sid, cookie) = login(&store, "alice").await;
    let (token_session, _) = store.create(new("alice")).await.expect("create");
    let found = store
        .lookup_browser(&cookie, Touch::Keep)
        .await
        .expect("store")
        .expect("live");
    assert_eq!(found.session.id, sid);
    assert_eq!(found.role, "customer");
    assert_eq!(
        found.expires_at_ms - found.session.created_at_ms,
        12 * 3600 * 1000
    );
    assert_eq!(
        found.idle_expires_at_ms - found.session.last_used_at_ms,
        30 * 60 * 1000
    );
    let ids: Vec<String> = store
        .list("alice")
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(
        ids.contains(&sid) && ids.contains(&token_session.id),
        "{ids:?}"
    );
    assert!(store.is_active("alice", &sid).await.expect("store"));

    assert_eq!(store.revoke_all("alice", None).await.expect("all"), 2);
    assert!(!live(&store, &cookie, Touch::Extend).await);
    assert!(!store.is_active("alice", &sid).await.expect("store"));
}

async fn revoke_ends_one_browser_session(redis: Backend) {
    let (store, _, _) = store(redis, BrowserPolicy::default()).await;
    let (sid, cookie) = login(&store, "alice").await;
    let (_, other) = login(&store, "alice").await;
    assert!(!store.revoke("mallory", &sid).await.expect("revoke"));
    assert!(store.revoke("alice", &sid).await.expect("revoke"));
    assert!(!live(&store, &cookie, Touch::Extend).await);
    assert!(live(&store, &other, Touch::Extend).await);
}

async fn idle_sessions_end_unless_touched(redis: Backend) {
    let (store, _, _) = store(
        redis,
        BrowserPolicy {
            idle_timeout: Duration::from_millis(400),
            absolute_lifetime: Duration::from_secs(60),
        },
    )
    .await;
    let (_, touched) = login(&store, "alice").await;
    let (_, kept) = login(&store, "alice").await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(live(&store, &touched, Touch::Extend).await);
    }
    // Reads that keep the idle timeout running let the session end on time.
    assert!(!live(&store, &kept, Touch::Keep).await);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(!live(&store, &touched, Touch::Extend).await);
    assert!(store.list("alice").await.expect("list").is_empty());
}

async fn reads_that_keep_do_not_extend(redis: Backend) {
    let (store, _, _) = store(
        redis,
        BrowserPolicy {
            idle_timeout: Duration::from_millis(500),
            absolute_lifetime: Duration::from_secs(60),
        },
    )
    .await;
    let (_, cookie) = login(&store, "alice").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(live(&store, &cookie, Touch::Keep).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!live(&store, &cookie, Touch::Extend).await);
}

async fn the_absolute_lifetime_ends_an_active_session(redis: Backend) {
    let (store, _, _) = store(
        redis,
        BrowserPolicy {
            idle_timeout: Duration::from_secs(60),
            absolute_lifetime: Duration::from_millis(600),
        },
    )
    .await;
    let (sid, cookie) = login(&store, "alice").await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(live(&store, &cookie, Touch::Extend).await);
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(!live(&store, &cookie, Touch::Extend).await);
    assert!(!store.is_active("alice", &sid).await.expect("store"));
}

async fn rotation_moves_the_session_to_a_new_cookie(redis: Backend) {
    let (store, _, _) = store(redis, BrowserPolicy::default()).await;
    let (sid, old) = login(&store, "alice").await;
    let (session, new_cookie) = store
        .rotate_browser(&old, Some("manager"))
        .await
        .expect("store")
        .expect("live");
    assert_eq!(session.session.id, sid);
    assert_eq!(session.role, "manager");
    assert!(!live(&store, &old, Touch::Keep).await);
    let found = store
        .lookup_browser(&new_cookie, Touch::Keep)
        .await
        .expect("store")
        .expect("live");
    assert_eq!((found.session.id, found.role), (sid, "manager".to_owned()));
}

async fn nothing_stored_holds_the_cookie_value(redis: Backend) {
    let (store, mut conn, prefix) = store(redis, BrowserPolicy::default()).await;
    let (_, cookie) = login(&store, "alice").await;
    let (_, rotated) = store
        .rotate_browser(&login(&store, "alice").await.1, None)
        .await
        .expect("store")
        .expect("live");
    let keys: Vec<String> = conn.keys(format!("{prefix}*")).await.expect("keys");
    assert!(!keys.is_empty());
    let mut stored = String::new();
    for key in &keys {
        stored.push_str(key);
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("type");
        match kind.as_str() {
            "hash" => {
                let fields: Vec<String> = conn.hgetall(key).await.expect("hash");
                stored.push_str(&fields.join(" "));
            }
            "string" => {
                let value: String = conn.get(key).await.expect("string");
                stored.push_str(&value);
            }
            "zset" => {
                let members: Vec<String> = conn.zrange(key, 0, -1).await.expect("zset");
                stored.push_str(&members.join(" "));
            }
            other => panic!("unexpected {other} at {key}"),
        }
    }
    for value in [&cookie, &rotated] {
        assert!(!stored.contains(value.expose()), "a cookie value is stored");
    }
    assert!(keys.iter().any(|k| k.ends_with(&cookie.hash())));
}

bff_core::redis_tests!(
    a_browser_session_is_listed_with_the_others_and_revoke_all_ends_it,
    revoke_ends_one_browser_session,
    idle_sessions_end_unless_touched,
    reads_that_keep_do_not_extend,
    the_absolute_lifetime_ends_an_active_session,
    rotation_moves_the_session_to_a_new_cookie,
    nothing_stored_holds_the_cookie_value,
);
