//! The Redis code store against the real Redis on 127.0.0.1:6379 and a local
//! Redis Cluster (each test runs on both); every test
//! uses a key prefix of its own.

use std::sync::Arc;
use std::time::Duration;

use bff_auth::code::{
    CodeCheck, CodePolicy, CodeSecret, CodeStore, Limit, MAX_ATTEMPTS, OtpCode, RedisCodeStore,
    Throttle,
};
use bff_core::redis_client::testing::Backend;
use redis::AsyncCommands;

fn prefix() -> String {
    format!("test:{}:codes:", uuid::Uuid::now_v7().simple())
}

async fn store(redis: Backend, policy: CodePolicy) -> RedisCodeStore {
    RedisCodeStore::new(
        redis.connect().await,
        prefix(),
        CodeSecret::new(vec![42; 32]).expect("secret"),
        policy,
    )
    .expect("valid policy")
}

/// A code that differs from `code`.
fn wrong(code: &OtpCode) -> OtpCode {
    let digit = (code.as_str().as_bytes()[0] - b'0' + 1) % 10;
    OtpCode::parse(&format!("{digit}{}", &code.as_str()[1..])).expect("six digits")
}

const ALICE: &str = "alice@example.com";

async fn a_code_is_single_use(redis: Backend) {
    let store = store(redis, CodePolicy::default()).await;
    let code = store.issue("register", ALICE).await.expect("issued");
    assert_eq!(
        store.check("register", ALICE, &code).await.expect("store"),
        CodeCheck::Valid
    );
    assert_eq!(
        store.check("register", ALICE, &code).await.expect("store"),
        CodeCheck::Invalid,
        "used up"
    );
}

async fn a_code_is_bound_to_its_purpose_and_identifier(redis: Backend) {
    let store = store(redis, CodePolicy::default()).await;
    let code = store.issue("register", ALICE).await.expect("issued");
    assert_eq!(
        store
            .check("reset_password", ALICE, &code)
            .await
            .expect("store"),
        CodeCheck::Invalid
    );
    assert_eq!(
        store
            .check("register", "bob@example.com", &code)
            .await
            .expect("store"),
        CodeCheck::Invalid
    );
    assert_eq!(
        store.check("register", ALICE, &code).await.expect("store"),
        CodeCheck::Valid
    );
}

async fn the_fifth_wrong_check_burns_the_code(redis: Backend) {
    // A budget large enough for this test's wrong checks, all of one identifier.
    let store = store(
        redis,
        CodePolicy {
            daily_failures_per_identifier: 100,
            ..CodePolicy::default()
        },
    )
    .await;
    let code = store.issue("register", ALICE).await.expect("issued");
    for _ in 0..MAX_ATTEMPTS - 1 {
        assert_eq!(
            store
                .check("register", ALICE, &wrong(&code))
                .await
                .expect("store"),
            CodeCheck::Invalid
        );
    }
    // One check left: the right code still works.
    let fresh = store.issue("register", ALICE).await.expect("issued");
    for _ in 0..MAX_ATTEMPTS {
        let _ = store.check("register", ALICE, &wrong(&fresh)).await;
    }
    assert_eq!(
        store.check("register", ALICE, &fresh).await.expect("store"),
        CodeCheck::Invalid,
        "burnt after five wrong checks"
    );

    let last = store.issue("register", ALICE).await.expect("issued");
    for _ in 0..MAX_ATTEMPTS - 1 {
        let _ = store.check("register", ALICE, &wrong(&last)).await;
    }
    assert_eq!(
        store.check("register", ALICE, &last).await.expect("store"),
        CodeCheck::Valid,
        "the fifth check may be the right one"
    );
}

async fn a_new_code_replaces_the_previous_one(redis: Backend) {
    let store = store(redis, CodePolicy::default()).await;
    let first = store.issue("register", ALICE).await.expect("issued");
    let mut second = store.issue("register", ALICE).await.expect("issued");
    // One in a million: the same digits again; draw until they differ.
    while second == first {
        second = store.issue("register", ALICE).await.expect("issued");
    }
    assert_eq!(
        store.check("register", ALICE, &first).await.expect("store"),
        CodeCheck::Invalid
    );
    assert_eq!(
        store
            .check("register", ALICE, &second)
            .await
            .expect("store"),
        CodeCheck::Valid
    );
}

async fn a_code_expires(redis: Backend) {
    let store = store(
        redis,
        CodePolicy {
            ttl: Duration::from_millis(300),
            ..CodePolicy::default()
        },
    )
    .await;
    let code = store.issue("register", ALICE).await.expect("issued");
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        store.check("register", ALICE, &code).await.expect("store"),
        CodeCheck::Invalid
    );
}

async fn concurrent_correct_checks_succeed_once(redis: Backend) {
    let store = Arc::new(store(redis, CodePolicy::default()).await);
    let code = store.issue("register", ALICE).await.expect("issued");
    let checks: Vec<_> = (0..4)
        .map(|_| {
            let (store, code) = (Arc::clone(&store), code.clone());
            tokio::spawn(async move { store.check("register", ALICE, &code).await })
        })
        .collect();
    let mut valid = 0;
    for check in checks {
        if check.await.expect("joins").expect("store") == CodeCheck::Valid {
            valid += 1;
        }
    }
    assert_eq!(valid, 1);
}

async fn the_store_holds_no_codes_or_addresses(redis: Backend) {
    let prefix = prefix();
    let store = RedisCodeStore::new(
        redis.connect().await,
        prefix.clone(),
        CodeSecret::new(vec![42; 32]).expect("secret"),
        CodePolicy::default(),
    )
    .expect("valid policy");
    assert_eq!(
        store
            .throttle("register", ALICE, Some("127.0.0.1"))
            .await
            .expect("store"),
        Throttle::Allowed
    );
    let code = store.issue("register", ALICE).await.expect("issued");
    let mut conn = redis.connect().await;
    let keys: Vec<String> = conn.keys(format!("{prefix}*")).await.expect("keys");
    // The cooldown, the code, and the counters per identifier and client, per
    // identifier and per client.
    assert_eq!(keys.len(), 5, "{keys:?}");
    for key in keys {
        assert!(
            !key.contains("alice") && !key.contains("127.0.0.1"),
            "{key}"
        );
        let dump: Vec<(String, String)> = if key.contains(":c:") {
            conn.hgetall(&key).await.expect("hash")
        } else {
            Vec::new()
        };
        for (_, value) in dump {
            assert!(!value.contains(code.as_str()), "{key}");
        }
    }
}

async fn the_cooldown_refuses_a_second_request_with_the_time_left(redis: Backend) {
    let store = store(
        redis,
        CodePolicy {
            cooldown: Duration::from_secs(60),
            ..CodePolicy::default()
        },
    )
    .await;
    assert_eq!(
        store
            .throttle("register", ALICE, None)
            .await
            .expect("store"),
        Throttle::Allowed
    );
    match store
        .throttle("register", ALICE, None)
        .await
        .expect("store")
    {
        Throttle::Limited {
            limit: Limit::Cooldown,
            retry_after,
        } => assert!(
            retry_after > Duration::from_secs(58) && retry_after <= Duration::from_secs(60),
            "{retry_after:?}"
        ),
        other => panic!("expected the cooldown, got {other:?}"),
    }
    // The cooldown is per purpose.
    assert_eq!(
        store
            .throttle("reset_password", ALICE, None)
            .await
            .expect("store"),
        Throttle::Allowed
    );
}

async fn hourly_caps_hold_per_identifier_and_per_client(redis: Backend) {
    let store = store(
        redis,
        CodePolicy {
            cooldown: Duration::from_secs(1),
            hourly_per_identifier: 3,
            hourly_per_client: 5,
            ..CodePolicy::default()
        },
    )
    .await;
    // Different purposes dodge the cooldown but share the identifier's cap.
    for purpose in ["a", "b", "c"] {
        assert_eq!(
            store
                .throttle(purpose, ALICE, Some("ip1"))
                .await
                .expect("store"),
            Throttle::Allowed
        );
    }
    match store
        .throttle("d", ALICE, Some("ip1"))
        .await
        .expect("store")
    {
        Throttle::Limited {
            limit: Limit::HourlyPerIdentifier,
            retry_after,
        } => assert!(retry_after > Duration::from_secs(3590), "{retry_after:?}"),
        other => panic!("expected the identifier's cap, got {other:?}"),
    }
    // The refused request was not counted against the client: two more pass.
    for who in ["b@example.com", "c@example.com"] {
        assert_eq!(
            store.throttle("a", who, Some("ip1")).await.expect("store"),
            Throttle::Allowed
        );
    }
    assert!(matches!(
        store
            .throttle("a", "d@example.com", Some("ip1"))
            .await
            .expect("store"),
        Throttle::Limited {
            limit: Limit::HourlyPerClient,
            ..
        }
    ));
    assert_eq!(
        store
            .throttle("a", "d@example.com", Some("ip2"))
            .await
            .expect("store"),
        Throttle::Allowed,
        "another client is not affected"
    );
}

async fn two_stores_on_one_redis_share_the_limits(redis: Backend) {
    let prefix = prefix();
    let make = || async {
        RedisCodeStore::new(
            redis.connect().await,
            prefix.clone(),
            CodeSecret::new(vec![42; 32]).expect("secret"),
            CodePolicy::default(),
        )
        .expect("valid policy")
    };
    let (one, two) = (make().await, make().await);
    assert_eq!(
        one.throttle("register", ALICE, None).await.expect("store"),
        Throttle::Allowed
    );
    assert!(matches!(
        two.throttle("register", ALICE, None).await.expect("store"),
        Throttle::Limited { .. }
    ));
    let code = one.issue("register", ALICE).await.expect("issued");
    assert_eq!(
        two.check("register", ALICE, &code).await.expect("store"),
        CodeCheck::Valid
    );
}

async fn the_limit_that_lasts_longest_sets_the_retry_time(redis: Backend) {
    let store = store(
        redis,
        CodePolicy {
            cooldown: Duration::from_secs(60),
            hourly_per_identifier: 1,
            ..CodePolicy::default()
        },
    )
    .await;
    assert_eq!(
        store
            .throttle("register", ALICE, None)
            .await
            .expect("store"),
        Throttle::Allowed
    );
    // Both the cooldown and the hourly cap are in the way: the hour wins.
    match store
        .throttle("register", ALICE, None)
        .await
        .expect("store")
    {
        Throttle::Limited {
            limit: Limit::HourlyPerIdentifier,
            retry_after,
        } => assert!(retry_after > Duration::from_secs(3590), "{retry_after:?}"),
        other => panic!("expected the hourly cap, got {other:?}"),
    }
}

async fn one_client_cannot_starve_the_owner_of_codes(redis: Backend) {
    let store = store(
        redis,
        CodePolicy {
            cooldown: Duration::from_secs(1),
            hourly_per_identifier: 2,
            hourly_per_identifier_all: 3,
            ..CodePolicy::default()
        },
    )
    .await;
    let ask = |purpose: &'static str, client: &'static str| {
        let store = store.clone();
        async move {
            store
                .throttle(purpose, ALICE, Some(client))
                .await
                .expect("store")
        }
    };
    assert_eq!(ask("a", "attacker").await, Throttle::Allowed);
    assert_eq!(ask("b", "attacker").await, Throttle::Allowed);
    assert!(matches!(
        ask("c", "attacker").await,
        Throttle::Limited {
            limit: Limit::HourlyPerIdentifier,
            ..
        }
    ));
    // The owner, elsewhere, still gets a code.
    assert_eq!(ask("c", "owner").await, Throttle::Allowed);
    // Many clients together meet the looser identifier-wide cap.
    assert!(matches!(
        ask("d", "another").await,
        Throttle::Limited {
            limit: Limit::HourlyPerIdentifierAll,
            ..
        }
    ));
}

async fn wrong_checks_spend_a_daily_budget_across_codes(redis: Backend) {
    let store = store(
        redis,
        CodePolicy {
            cooldown: Duration::from_secs(1),
            daily_failures_per_identifier: 3,
            ..CodePolicy::default()
        },
    )
    .await;
    let first = store.issue("register", ALICE).await.expect("issued");
    for _ in 0..2 {
        assert_eq!(
            store
                .check("register", ALICE, &wrong(&first))
                .await
                .expect("store"),
            CodeCheck::Invalid
        );
    }
    // A fresh code for another purpose shares the budget.
    let second = store.issue("reset_password", ALICE).await.expect("issued");
    assert_eq!(
        store
            .check("reset_password", ALICE, &wrong(&second))
            .await
            .expect("store"),
        CodeCheck::Invalid
    );
    // Spent: even the right code no longer passes, and no new code is sent.
    assert_eq!(
        store.check("register", ALICE, &first).await.expect("store"),
        CodeCheck::Invalid
    );
    match store
        .throttle("register", ALICE, Some("owner"))
        .await
        .expect("store")
    {
        Throttle::Limited {
            limit: Limit::FailureBudget,
            retry_after,
        } => assert!(
            retry_after > Duration::from_secs(23 * 3600),
            "{retry_after:?}"
        ),
        other => panic!("expected the failure budget, got {other:?}"),
    }
    // Other identifiers are not affected.
    let bob = store
        .issue("register", "bob@example.com")
        .await
        .expect("issued");
    assert_eq!(
        store
            .check("register", "bob@example.com", &bob)
            .await
            .expect("store"),
        CodeCheck::Valid
    );
}

async fn a_released_request_costs_nothing(redis: Backend) {
    let store = store(
        redis,
        CodePolicy {
            cooldown: Duration::from_secs(60),
            hourly_per_identifier: 2,
            ..CodePolicy::default()
        },
    )
    .await;
    // Released twice over: neither the cooldown nor the identifier's cap of two
    // remembers the requests whose work could not be done.
    for _ in 0..3 {
        assert_eq!(
            store
                .throttle("register", ALICE, Some("ip1"))
                .await
                .expect("store"),
            Throttle::Allowed
        );
        store
            .release("register", ALICE, Some("ip1"))
            .await
            .expect("store");
    }
    // Counted requests still count: the second is inside the cooldown.
    assert_eq!(
        store
            .throttle("register", ALICE, Some("ip1"))
            .await
            .expect("store"),
        Throttle::Allowed
    );
    assert!(matches!(
        store
            .throttle("register", ALICE, Some("ip1"))
            .await
            .expect("store"),
        Throttle::Limited {
            limit: Limit::Cooldown,
            ..
        }
    ));
}

bff_core::redis_tests!(
    a_code_is_single_use,
    a_code_is_bound_to_its_purpose_and_identifier,
    the_fifth_wrong_check_burns_the_code,
    a_new_code_replaces_the_previous_one,
    a_code_expires,
    concurrent_correct_checks_succeed_once,
    the_store_holds_no_codes_or_addresses,
    the_cooldown_refuses_a_second_request_with_the_time_left,
    hourly_caps_hold_per_identifier_and_per_client,
    two_stores_on_one_redis_share_the_limits,
    the_limit_that_lasts_longest_sets_the_retry_time,
    one_client_cannot_starve_the_owner_of_codes,
    wrong_checks_spend_a_daily_budget_across_codes,
    a_released_request_costs_nothing,
);
