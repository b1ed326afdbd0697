//! The Redis session store against the real Redis on 127.0.0.1:6379 and a
//! local Redis Cluster (each test runs on both); every test uses a key prefix
//! of its own.

use std::time::Duration;

use bff_auth::session::{
    NewSession, RedisSessionStore, Refresh, RefreshToken, SessionPolicy, SessionStore,
};
use bff_core::redis_client::testing::Backend;

async fn store(redis: Backend, policy: SessionPolicy) -> RedisSessionStore {
    RedisSessionStore::new(
        redis.connect().await,
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

async fn refresh_rotates_and_the_old_token_is_spent(redis: Backend) {
    let store = store(
        redis,
        SessionPolicy {
            reuse_grace: Duration::from_millis(200),
            ..SessionPolicy::default()
        },
    )
    .await;
    let (session, first) = store.create(new("alice")).await.expect("create");
    assert!(
        store
            .is_active(&session.user_id, &session.id)
            .await
            .expect("store")
    );
    let second = rotate(&store, &first).await;
    assert_ne!(first, second);
    let third = rotate(&store, &second).await;
    assert!(
        store
            .is_active(&session.user_id, &session.id)
            .await
            .expect("store")
    );
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

async fn replaying_a_rotated_token_after_the_grace_window_revokes_the_session(redis: Backend) {
    let store = store(
        redis,
        SessionPolicy {
            reuse_grace: Duration::from_millis(100),
            ..SessionPolicy::default()
        },
    )
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
        !store
            .is_active(&session.user_id, &session.id)
            .await
            .expect("store"),
        "the session is revoked"
    );
    // The legitimate holder's newer token dies with it.
    assert_eq!(
        store.refresh(&second, None).await.expect("store"),
        Refresh::Invalid
    );
}

async fn concurrent_refreshes_of_one_token_keep_the_user_logged_in(redis: Backend) {
    let store = store(redis, SessionPolicy::default()).await;
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
    assert!(
        store
            .is_active(&session.user_id, &session.id)
            .await
            .expect("store")
    );
}

async fn unknown_tokens_are_invalid(redis: Backend) {
    let store = store(redis, SessionPolicy::default()).await;
    let stranger = RefreshToken::generate("nobody").expect("rng");
    assert_eq!(
        store.refresh(&stranger, None).await.expect("store"),
        Refresh::Invalid
    );
    // A well-made token under another user's tag names nothing either, nor
    // does one without a tag (the layout before tags).
    let (_, token) = store.create(new("ivan")).await.expect("create");
    let secret = &token.expose()[8..];
    for forged in [
        format!("{}{secret}", bff_auth::session::session_tag("judy")),
        secret.to_owned(),
    ] {
        assert_eq!(
            store
                .refresh(&RefreshToken::from_client(forged), None)
                .await
                .expect("store"),
            Refresh::Invalid
        );
    }
    assert_eq!(
        store
            .refresh(&RefreshToken::from_client(""), None)
            .await
            .expect("store"),
        Refresh::Invalid
    );
}

async fn listing_and_ending_sessions_is_scoped_to_their_owner(redis: Backend) {
    let store = store(redis, SessionPolicy::default()).await;
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
    assert!(
        store
            .is_active(&theirs.user_id, &theirs.id)
            .await
            .expect("store")
    );
    assert!(
        !store.is_active("dave", &theirs.id).await.expect("store"),
        "a session is active only for its owner"
    );

    assert!(store.revoke("dave", &one.id).await.expect("store"));
    assert!(!store.is_active(&one.user_id, &one.id).await.expect("store"));
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
        store.is_active(&two.user_id, &two.id).await.expect("store"),
        "the kept session lives"
    );
    assert!(
        !store
            .is_active(&three.user_id, &three.id)
            .await
            .expect("store")
    );
    rotate(&store, &two_token).await;
    assert_eq!(store.revoke_all("dave", None).await.expect("store"), 1);
    assert!(store.list("dave").await.expect("list").is_empty());
}

async fn sessions_end_after_the_idle_timeout_and_the_absolute_lifetime(redis: Backend) {
    let idle = store(
        redis,
        SessionPolicy {
            idle_timeout: Duration::from_millis(300),
            ..SessionPolicy::default()
        },
    )
    .await;
    let (session, token) = idle.create(new("frank")).await.expect("create");
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(
        !idle
            .is_active(&session.user_id, &session.id)
            .await
            .expect("store")
    );
    assert_eq!(
        idle.refresh(&token, None).await.expect("store"),
        Refresh::Invalid
    );

    let absolute = store(
        redis,
        SessionPolicy {
            absolute_lifetime: Duration::from_millis(600),
            ..SessionPolicy::default()
        },
    )
    .await;
    let (session, mut token) = absolute.create(new("grace")).await.expect("create");
    // Staying active does not extend a session past its absolute lifetime.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        token = rotate(&absolute, &token).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !absolute
            .is_active(&session.user_id, &session.id)
            .await
            .expect("store")
    );
    assert_eq!(
        absolute.refresh(&token, None).await.expect("store"),
        Refresh::Invalid
    );
}

async fn the_grace_window_admits_a_few_concurrent_refreshes_not_a_stream_of_replays(
    redis: Backend,
) {
    let store = store(redis, SessionPolicy::default()).await;
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
    assert!(
        !store
            .is_active(&session.user_id, &session.id)
            .await
            .expect("store")
    );
}

bff_core::redis_tests!(
    refresh_rotates_and_the_old_token_is_spent,
    replaying_a_rotated_token_after_the_grace_window_revokes_the_session,
    concurrent_refreshes_of_one_token_keep_the_user_logged_in,
    unknown_tokens_are_invalid,
    listing_and_ending_sessions_is_scoped_to_their_owner,
    sessions_end_after_the_idle_timeout_and_the_absolute_lifetime,
    the_grace_window_admits_a_few_concurrent_refreshes_not_a_stream_of_replays,
);
