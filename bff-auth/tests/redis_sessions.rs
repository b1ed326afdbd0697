//! The Redis session store against the real Redis on 127.0.0.1:6379; every test
//! uses a key prefix of its own.

use std::time::Duration;

use bff_auth::session::{
    NewSession, RedisSessionStore, Refresh, RefreshToken, SessionPolicy, SessionStore,
};
use redis::aio::ConnectionManager;

async fn store(policy: SessionPolicy) -> RedisSessionStore {
    let url =
        std::env::var("BFF_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let client = redis::Client::open(url).expect("redis url");
    let conn = ConnectionManager::new(client)
        .await
        .expect("redis is running");
    RedisSessionStore::new(
        conn,
        format!("test:{}:auth:", uuid::Uuid::now_v7().simple()),
        policy,
    )
}

fn new(user: &str) -> NewSession {
    NewSession {
        user_id: user.to_owned(),
        user_agent: Some("test-agent".into()),
        ip: Some("127.0.0.1".into()),
    }
}

async fn rotate(store: &RedisSessionStore, token: &RefreshToken) -> RefreshToken {
    match store
        .refresh(token, Some("127.0.0.2"))
        .await
        .expect("store")
    {
        Refresh::Rotated { token, session } => {
            assert_eq!(session.ip.as_deref(), Some("127.0.0.2"));
            token
        }
        other => panic!("expected a rotation, got {other:?}"),
    }
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_is_spent() {
    let store = store(SessionPolicy {
        reuse_grace: Duration::from_millis(200),
        ..SessionPolicy::default()
    })
    .await;
    let (session, first) = store.create(new("alice")).await.expect("create");
    assert!(store.is_active(&session.id).await.expect("store"));
    let second = rotate(&store, &first).await;
    assert_ne!(first, second);
    let third = rotate(&store, &second).await;
    assert!(store.is_active(&session.id).await.expect("store"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The first token was spent two rotations ago: presenting it now is theft.
    assert!(matches!(
        store.refresh(&first, None).await.expect("store"),
        Refresh::Reused { .. }
    ));
    assert_eq!(
        store.refresh(&third, None).await.expect("store"),
        Refresh::Invalid
    );
}

#[tokio::test]
async fn replaying_a_rotated_token_after_the_grace_window_revokes_the_session() {
    let store = store(SessionPolicy {
        reuse_grace: Duration::from_millis(100),
        ..SessionPolicy::default()
    })
    .await;
    let (session, first) = store.create(new("bob")).await.expect("create");
    let second = rotate(&store, &first).await;
    tokio::time::sleep(Duration::from_millis(250)).await;

    let replay = store.refresh(&first, None).await.expect("store");
    assert_eq!(
        replay,
        Refresh::Reused {
            user_id: "bob".into(),
            session_id: session.id.clone()
        }
    );
    assert!(
        !store.is_active(&session.id).await.expect("store"),
        "the session is revoked"
    );
    // The legitimate holder's newer token dies with it.
    assert_eq!(
        store.refresh(&second, None).await.expect("store"),
        Refresh::Invalid
    );
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_keep_the_user_logged_in() {
    let store = store(SessionPolicy::default()).await;
    let (session, token) = store.create(new("carol")).await.expect("create");
    // Two tabs refresh with the same token at once.
    let (a, b) = tokio::join!(store.refresh(&token, None), store.refresh(&token, None));
    let (Refresh::Rotated { token: a, .. }, Refresh::Rotated { token: b, .. }) =
        (a.expect("store"), b.expect("store"))
    else {
        panic!("both concurrent refreshes succeed");
    };
    assert_ne!(a, b);
    // Each tab goes on with its own token.
    rotate(&store, &a).await;
    rotate(&store, &b).await;
    assert!(store.is_active(&session.id).await.expect("store"));
}

#[tokio::test]
async fn unknown_tokens_are_invalid() {
    let store = store(SessionPolicy::default()).await;
    let stranger = RefreshToken::generate().expect("rng");
    assert_eq!(
        store.refresh(&stranger, None).await.expect("store"),
        Refresh::Invalid
    );
    assert_eq!(
        store
            .refresh(&RefreshToken::from_client(""), None)
            .await
            .expect("store"),
        Refresh::Invalid
    );
}

#[tokio::test]
async fn listing_and_ending_sessions_is_scoped_to_their_owner() {
    let store = store(SessionPolicy::default()).await;
    let (one, _) = store.create(new("dave")).await.expect("create");
    let (two, two_token) = store.create(new("dave")).await.expect("create");
    let (theirs, _) = store.create(new("eve")).await.expect("create");

    let listed = store.list("dave").await.expect("list");
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec![two.id.as_str(), one.id.as_str()],
        "newest first"
    );
    assert_eq!(listed[0].user_agent.as_deref(), Some("test-agent"));

    assert!(
        !store.revoke("dave", &theirs.id).await.expect("store"),
        "someone else's session"
    );
    assert!(store.is_active(&theirs.id).await.expect("store"));

    assert!(store.revoke("dave", &one.id).await.expect("store"));
    assert!(!store.is_active(&one.id).await.expect("store"));
    assert!(
        !store.revoke("dave", &one.id).await.expect("store"),
        "already ended"
    );

    let (three, _) = store.create(new("dave")).await.expect("create");
    assert_eq!(
        store
            .revoke_all("dave", Some(&two.id))
            .await
            .expect("store"),
        1
    );
    assert!(
        store.is_active(&two.id).await.expect("store"),
        "the kept session lives"
    );
    assert!(!store.is_active(&three.id).await.expect("store"));
    rotate(&store, &two_token).await;
    assert_eq!(store.revoke_all("dave", None).await.expect("store"), 1);
    assert!(store.list("dave").await.expect("list").is_empty());
}

#[tokio::test]
async fn sessions_end_after_the_idle_timeout_and_the_absolute_lifetime() {
    let idle = store(SessionPolicy {
        idle_timeout: Duration::from_millis(300),
        ..SessionPolicy::default()
    })
    .await;
    let (session, token) = idle.create(new("frank")).await.expect("create");
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(!idle.is_active(&session.id).await.expect("store"));
    assert_eq!(
        idle.refresh(&token, None).await.expect("store"),
        Refresh::Invalid
    );

    let absolute = store(SessionPolicy {
        absolute_lifetime: Duration::from_millis(600),
        ..SessionPolicy::default()
    })
    .await;
    let (session, mut token) = absolute.create(new("grace")).await.expect("create");
    // Staying active does not extend a session past its absolute lifetime.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        token = rotate(&absolute, &token).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!absolute.is_active(&session.id).await.expect("store"));
    assert_eq!(
        absolute.refresh(&token, None).await.expect("store"),
        Refresh::Invalid
    );
}

#[tokio::test]
async fn the_grace_window_admits_a_few_concurrent_refreshes_not_a_stream_of_replays() {
    let store = store(SessionPolicy::default()).await;
    let (session, token) = store.create(new("heidi")).await.expect("create");
    // The first rotation and two concurrent ones inside the grace window succeed...
    for _ in 0..3 {
        rotate(&store, &token).await;
    }
    // ...a fourth presentation of the same token is a replay, and ends the session.
    assert!(matches!(
        store.refresh(&token, None).await.expect("store"),
        Refresh::Reused { .. }
    ));
    assert!(!store.is_active(&session.id).await.expect("store"));
}
