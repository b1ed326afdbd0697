//! Two app instances on a Redis Cluster of three masters and three replicas:
//! under a loop of refreshes and authenticated requests spread over both
//! instances, one master is killed. Its replica takes over; meanwhile the app
//! answers 503 (with `Retry-After`) at worst, never 500, and recovers by
//! itself; users whose keys live on the surviving masters are served
//! throughout and none of their sessions is disturbed. Afterwards a logout on
//! one instance is seen by the other, a write through one is seen in the
//! other's cached reads, and a per-user limit holds exactly across both.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bff_app::identity::Role;
use bff_auth::session::session_tag;
use bff_core::redis_client::testing::{Node, RedisCluster};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::TestApp;

const USERS: usize = 12;
/// The per-user limit: a day's worth, so that nothing refills during the test.
const PER_USER: u32 = 1_000;

/// What one request got, by phase.
#[derive(Debug, Default)]
struct Tally {
    /// Status code counts.
    statuses: BTreeMap<u16, usize>,
    /// 503s without a `Retry-After`.
    without_retry_after: usize,
    /// 503s to users whose keys are on the surviving masters.
    refused_on_survivors: usize,
    /// When the last answer other than 200 came.
    last_refusal: Option<Instant>,
    /// Users whose session ended (a 401) although its keys were not on the
    /// killed master.
    lost_on_survivors: Vec<(usize, String)>,
    /// Users on the killed master's slots whose session ended.
    lost_on_failed: Vec<(usize, String)>,
}

impl Tally {
    fn record(&mut self, response: &reqwest::Response, on_failed_master: bool) {
        let status = response.status();
        if status == StatusCode::SERVICE_UNAVAILABLE && !on_failed_master {
            self.refused_on_survivors += 1;
        }
        *self.statuses.entry(status.as_u16()).or_default() += 1;
        if status != StatusCode::OK {
            self.last_refusal = Some(Instant::now());
        }
        if status == StatusCode::SERVICE_UNAVAILABLE
            && !response.headers().contains_key("retry-after")
        {
            self.without_retry_after += 1;
        }
    }
}

/// Records that user `index`'s session ended, with the problem's code.
async fn lost(
    tally: &Mutex<Tally>,
    index: usize,
    on_failed_master: bool,
    response: reqwest::Response,
) {
    let url = response.url().path().to_owned();
    let problem: serde_json::Value = response.json().await.unwrap_or_default();
    let why = format!("{url}: {}", problem["code"]);
    let mut tally = tally.lock().expect("tally");
    if on_failed_master {
        tally.lost_on_failed.push((index, why));
    } else {
        tally.lost_on_survivors.push((index, why));
    }
}

/// One user's loop: refresh on one instance, use the new access token on the
/// other, and again the other way round, until `stop`.
async fn user_loop(
    index: usize,
    on_failed_master: bool,
    instances: [Arc<TestApp>; 2],
    mut refresh_token: String,
    tally: Arc<Mutex<Tally>>,
    stop: Instant,
) {
    let mut round = 0usize;
    while Instant::now() < stop {
        let (one, two) = (&instances[round % 2], &instances[(round + 1) % 2]);
        round += 1;
        let response = one
            .call(
                Method::POST,
                "/api/v1/auth/refresh",
                None,
                Some(&json!({"refresh_token": refresh_token})),
            )
            .await;
        tally
            .lock()
            .expect("tally")
            .record(&response, on_failed_master);
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            lost(&tally, index, on_failed_master, response).await;
            return;
        }
        if status != StatusCode::OK {
            // Refused: the same token is presented again next round.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let tokens: serde_json::Value = response.json().await.expect("json");
        refresh_token = tokens["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned();
        let access = tokens["access_token"].as_str().expect("access");
        let me = two
            .call(Method::GET, "/api/v1/me", Some(access), None)
            .await;
        tally.lock().expect("tally").record(&me, on_failed_master);
        if me.status() == StatusCode::UNAUTHORIZED {
            lost(&tally, index, on_failed_master, me).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

#[tokio::test]
async fn a_master_dies_under_load_and_the_app_recovers_by_itself() {
    let cluster = RedisCluster::start(3, 1, Duration::from_millis(2000))
        .await
        .expect("a local Redis Cluster starts");
    let urls = cluster.urls();
    let app = TestApp::spawn_with(|c| {
        c.redis.redis_url = SecretString::from(urls.clone());
        c.redis.redis_cluster = true;
        c.rate_limit.rate_limit_per_user =
            bff_cache::ratelimit::Quota::new(PER_USER, Duration::from_secs(24 * 3600));
    })
    .await;
    let sibling = app.spawn_sibling().await;
    let instances = [Arc::new(app), Arc::new(sibling)];

    // Users and their first refresh tokens; the victim is the master of the
    // first user's slot.
    let mut users = Vec::new();
    for index in 0..USERS {
        let email = format!("cluster{index}@example.com");
        let user = instances[0].user(&email, Role::Customer).await;
        let tokens = instances[index % 2]
            .login(&email, crate::helpers::SEED_PASSWORD)
            .await;
        let refresh = tokens["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned();
        users.push((user.id, refresh));
    }
    let master_of = |user_id: &str| -> Node {
        cluster
            .master_of(&format!("{{{}}}", session_tag(user_id)))
            .expect("slot owner")
    };
    let victim = master_of(&users[0].0);
    let on_victim: Vec<bool> = users
        .iter()
        .map(|(id, _)| master_of(id) == victim)
        .collect();

    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let stop = started + Duration::from_secs(16);
    let loops: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(index, (_, refresh))| {
            tokio::spawn(user_loop(
                index,
                on_victim[index],
                instances.clone(),
                refresh.clone(),
                Arc::clone(&tally),
                stop,
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(3)).await;
    let before_kill = tally.lock().expect("tally").statuses.clone();
    assert_eq!(
        before_kill.keys().copied().collect::<Vec<_>>(),
        vec![200],
        "all well before the kill"
    );
    cluster.kill(victim);
    let killed_at = Instant::now();
    for task in loops {
        task.await.expect("the loop ends");
    }

    let tally = Arc::try_unwrap(tally)
        .expect("the loops are done")
        .into_inner()
        .expect("tally");
    let recovered_after = tally
        .last_refusal
        .map(|at| at.saturating_duration_since(killed_at));
    eprintln!(
        "{USERS} users ({} on the killed master's slots), two instances, master on port {} killed {:?} in: answers {:?} ({} of the 503s to users on the surviving masters); last refusal {recovered_after:?} after the kill; sessions lost on the survivors {:?}, on the failed-over slots {:?}",
        on_victim.iter().filter(|on| **on).count(),
        victim.port,
        killed_at.duration_since(started),
        tally.statuses,
        tally.refused_on_survivors,
        tally.lost_on_survivors,
        tally.lost_on_failed,
    );
    // A 401 can only be a session whose latest write the killed master had
    // not yet replicated (replication is asynchronous): those are counted
    // apart, and none may be on the surviving masters.
    assert!(
        tally
            .statuses
            .keys()
            .all(|status| [200, 401, 503].contains(status)),
        "only 200, 503 and lost sessions: {:?}",
        tally.statuses
    );
    assert_eq!(tally.without_retry_after, 0, "every 503 has a Retry-After");
    assert!(
        tally.lost_on_survivors.is_empty(),
        "sessions on the surviving masters live on: {:?}",
        tally.lost_on_survivors
    );
    assert_eq!(
        tally.refused_on_survivors, 0,
        "users on the surviving masters are served throughout"
    );
    let recovered_after = recovered_after.unwrap_or_default();
    assert!(
        recovered_after < Duration::from_secs(10),
        "recovered {recovered_after:?} after the kill"
    );

    // Readiness is back, on both instances.
    for instance in &instances {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if instance.get("/healthz/ready").await.status() == StatusCode::OK {
                break;
            }
            assert!(Instant::now() < deadline, "readiness came back");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // A logout on one instance ends the session on the other.
    let email = "after@example.com";
    instances[0].user(email, Role::Customer).await;
    let tokens = instances[1]
        .login(email, crate::helpers::SEED_PASSWORD)
        .await;
    let access = tokens["access_token"].as_str().expect("access");
    assert_eq!(instances[0].me_status(access).await, 200);
    let logout = instances[0]
        .call(Method::POST, "/api/v1/auth/logout", Some(access), None)
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(instances[1].me_status(access).await, 401);

    // The response cache is shared, and a write is seen by both instances.
    let email = "cached@example.com";
    let cached = instances[0].user(email, Role::Customer).await;
    let me = |instance: usize| {
        let request = instances[instance].authed(Method::GET, "/api/v1/me", &cached.token);
        async move {
            let response = request.send().await.expect("sent");
            let hit = response.headers()["x-cache"]
                .to_str()
                .expect("ascii")
                .to_owned();
            let body: serde_json::Value = response.json().await.expect("json");
            (hit, body["name"].as_str().unwrap_or_default().to_owned())
        }
    };
    assert_eq!(me(0).await.0, "MISS");
    assert_eq!(
        me(1).await.0,
        "HIT",
        "the other instance reads the shared tier"
    );
    let renamed = instances[0]
        .authed(Method::PATCH, "/api/v1/me", &cached.token)
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(renamed.status(), StatusCode::OK);
    for instance in [0, 1] {
        assert_eq!(
            me(instance).await.1,
            "Renamed",
            "fresh on instance {instance}"
        );
    }

    // The per-user limit holds exactly across both instances.
    let email = "limited@example.com";
    let limited = instances[0].user(email, Role::Customer).await;
    let allowed = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let attempts = PER_USER + 100;
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            let instances = instances.clone();
            let token = limited.token.clone();
            let allowed = Arc::clone(&allowed);
            tokio::spawn(async move {
                for attempt in (worker..attempts).step_by(8) {
                    let instance = &instances[attempt as usize % 2];
                    match instance.me_status(&token).await {
                        200 => {
                            allowed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        429 => {}
                        other => panic!("unexpected {other}"),
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    // The login made one authenticated request's worth of nothing: the limit
    // counts only these calls.
    assert_eq!(
        allowed.load(std::sync::atomic::Ordering::Relaxed),
        PER_USER,
        "exactly the limit passed across two instances"
    );

    for instance in instances {
        Arc::try_unwrap(instance)
            .ok()
            .expect("no other owner")
            .stop()
            .await;
    }
}
