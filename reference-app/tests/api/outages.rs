//! Postgres failing in the ways production sees (a server that accepts and
//! closes, backends terminated under load): always a 503 with `Retry-After`,
//! never a 500, and what is safe to retry is retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::backends::Proxy;
use crate::helpers::{SEED_PASSWORD, TestApp, assert_problem, retry_after};

/// The app with its database behind `proxy`.
async fn behind(proxy: &Proxy) -> TestApp {
    let port = proxy.addr().port();
    TestApp::spawn_with(|config| {
        let url = config
            .database
            .database_url
            .expose_secret()
            .replace(":5432/", &format!(":{port}/"));
        config.database.database_url = url.into();
        config.database.database_acquire_timeout = Duration::from_millis(500);
    })
    .await
}

#[tokio::test]
async fn a_database_that_accepts_and_closes_is_503() {
    let postgres = Proxy::to("127.0.0.1:5432".parse().expect("addr")).await;
    let app = behind(&postgres).await;
    let token = app.login("customer@example.com", SEED_PASSWORD).await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();

    // Every pooled connection is cut, and each new one is accepted and closed
    // at once, as a PgBouncer without a server or a restarting server does.
    postgres.down();
    for _ in 0..3 {
        let login = app
            .post_json(
                "/api/v1/auth/login",
                &json!({"identifier": "customer@example.com", "password": SEED_PASSWORD}),
            )
            .await;
        assert_eq!(retry_after(&login), 1);
        assert_problem(login, 503, "unavailable").await;
        let me = app
            .call(Method::GET, "/api/v1/me", Some(&token), None)
            .await;
        assert_eq!(retry_after(&me), 1);
        assert_problem(me, 503, "unavailable").await;
    }
    postgres.up();
    let me = app
        .call(Method::GET, "/api/v1/me", Some(&token), None)
        .await;
    assert_eq!(me.status(), 200);
}

#[tokio::test]
async fn backends_terminated_under_load_never_make_a_500() {
    let app = TestApp::spawn().await;
    let token = app.login("customer@example.com", SEED_PASSWORD).await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&app.db)
        .await
        .expect("name");

    // Every 20 ms, every backend of the app's database but the killer's own
    // is terminated (SQLSTATE 57P01 on its next use).
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (db, stop) = (app.db.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut killed = 0_i64;
            while !stop.load(Ordering::Relaxed) {
                let ended: Vec<bool> = sqlx::query_scalar(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = $1 AND pid <> pg_backend_pid() AND application_name = 'bff'",
                )
                .bind(&database)
                .fetch_all(&db)
                .await
                .unwrap_or_default();
                killed += i64::try_from(ended.len()).unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            killed
        })
    };
    let mut ok = 0;
    for round in 0..60 {
        let response = if round % 2 == 0 {
            app.call(Method::GET, "/api/v1/me", Some(&token), None)
                .await
        } else {
            app.post_json(
                "/api/v1/auth/login",
                &json!({"identifier": "customer@example.com", "password": SEED_PASSWORD}),
            )
            .await
        };
        match response.status().as_u16() {
            200 => ok += 1,
            503 => assert_eq!(retry_after(&response), 1),
            status => panic!(
                "round {round}: {status} {}",
                response.text().await.unwrap_or_default()
            ),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let killed = killer.await.expect("killer");
    assert!(killed > 0, "no backend was terminated");
    // A broken connection is retried once on a fresh one, so most succeed.
    assert!(ok >= 30, "{ok} of 60 succeeded");
}

/// A login flood past the password hasher's queue: the overflow is refused
/// at once (503 with `Retry-After`), never a 500 and never an unbounded wait,
/// and the hasher serves again as soon as the flood is over.
#[tokio::test]
async fn a_full_password_hashing_queue_answers_503_at_once() {
    let app = TestApp::spawn_with(|config| {
        // One thread, nothing waiting, hashes slow enough to overlap.
        config.password.password_memory_kib = 16 * 1024;
        config.password.password_iterations = 6;
        config.password.password_threads = Some(1);
        config.password.password_queue = Some(0);
    })
    .await;
    let logins = (0..8).map(|_| {
        let client = app.client.clone();
        let url = app.url("/api/v1/auth/login");
        tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"identifier": "customer@example.com", "password": SEED_PASSWORD}))
                .send()
                .await
                .expect("sent")
        })
    });
    let (mut ok, mut refused) = (0, 0);
    for login in logins.collect::<Vec<_>>() {
        let response = login.await.expect("joined");
        match response.status().as_u16() {
            200 => ok += 1,
            503 => {
                assert!(retry_after(&response) >= 1);
                assert_problem(response, 503, "unavailable").await;
                refused += 1;
            }
            other => panic!("status {other}"),
        }
    }
    assert!(ok >= 1 && refused >= 1, "{ok} logged in, {refused} refused");
    let after = app.login("customer@example.com", SEED_PASSWORD).await;
    assert!(after["access_token"].is_string());
}
