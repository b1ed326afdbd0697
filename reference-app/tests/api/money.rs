//! Money: exact amounts end to end, bad inputs, concurrency, idempotency.

use std::str::FromStr;
use std::sync::Arc;

use bff_app::identity::Role;
use bff_app::money::{Amount, format};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::helpers::{SEED_PASSWORD, TestApp, TestUser, assert_problem};

async fn manager(app: &TestApp) -> String {
    app.login("manager@example.com", SEED_PASSWORD).await["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

async fn open_wallet(app: &TestApp, user: &TestUser, currency: &str) -> String {
    let response = app
        .call(
            Method::POST,
            "/api/v1/wallets",
            Some(&user.token),
            Some(&json!({"currency": currency})),
        )
        .await;
    assert_eq!(response.status(), 201);
    let wallet: Value = response.json().await.expect("json");
    assert_eq!(
        wallet["balance"],
        if currency == "JPY" { "0" } else { "0.00" }
    );
    wallet["id"].as_str().expect("id").to_owned()
}

async fn deposit(app: &TestApp, token: &str, wallet: &str, amount: &str) {
    let response = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/wallets/{wallet}/deposit"),
            Some(token),
            Some(&json!({"amount": amount, "note": "test funds"})),
        )
        .await;
    assert_eq!(response.status(), 201);
}

async fn balance(app: &TestApp, user: &TestUser, wallet: &str) -> String {
    app.get_json_authed(&format!("/api/v1/wallets/{wallet}"), &user.token)
        .await["balance"]
        .as_str()
        .expect("balance")
        .to_owned()
}

fn transfer_request(
    app: &TestApp,
    user: &TestUser,
    key: &str,
    body: &Value,
) -> reqwest::RequestBuilder {
    app.client
        .post(app.url("/api/v1/transfers"))
        .bearer_auth(&user.token)
        .header("Idempotency-Key", key)
        .json(body)
}

#[tokio::test]
async fn amounts_at_a_currencys_scale_survive_json_rust_and_postgres() {
    let app = TestApp::spawn().await;
    let mut runner = TestRunner::default();
    // Any amount up to 15 integer digits at scales 0 to 3 (JPY, EUR, BHD ...).
    let strategy = (1u64..1_000_000_000_000_000, 0u32..=3);
    let mut cases = Vec::new();
    for _ in 0..512 {
        let (mantissa, scale) = strategy.new_tree(&mut runner).expect("value").current();
        let text = format(
            Decimal::from_i128_with_scale(i128::from(mantissa), scale),
            scale,
        );
        cases.push((text, scale));
    }
    for (text, scale) in &cases {
        // JSON: a string in, the same string out.
        let json = serde_json::to_string(&json!({ "amount": text })).expect("json");
        let back: Value = serde_json::from_str(&json).expect("json");
        assert_eq!(back["amount"], text.as_str());
        // Rust: parsed, checked at the scale, written back.
        let value = Amount::parse(text)
            .expect("valid")
            .for_currency("XXX", *scale)
            .expect("at scale");
        assert_eq!(&format(value, *scale), text);
    }
    // Postgres: through NUMERIC and back.
    let values: Vec<Decimal> = cases
        .iter()
        .map(|(text, _)| Decimal::from_str(text).expect("decimal"))
        .collect();
    let stored: Vec<Decimal> = sqlx::query_scalar("SELECT unnest($1::numeric[])")
        .bind(&values)
        .fetch_all(&app.db)
        .await
        .expect("round trip");
    for ((text, scale), value) in cases.iter().zip(stored) {
        assert_eq!(&format(value, *scale), text);
    }
}

#[tokio::test]
async fn bad_transfers_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let manager = manager(&app).await;
    let alice = app.user("alice@example.com", Role::Customer).await;
    let bob = app.user("bob@example.com", Role::Customer).await;
    let alice_rub = open_wallet(&app, &alice, "RUB").await;
    let alice_usd = open_wallet(&app, &alice, "USD").await;
    let bob_rub = open_wallet(&app, &bob, "RUB").await;
    deposit(&app, &manager, &alice_rub, "100.00").await;
    deposit(&app, &manager, &bob_rub, "50.00").await;

    let body = |from: &str, to: &str, amount: Value| json!({"from_wallet_id": from, "to_wallet_id": to, "amount": amount});
    let cases: Vec<(&TestUser, Value, u16, &str)> = vec![
        (
            &alice,
            body(&alice_rub, &bob_rub, json!(10.5)),
            422,
            "validation_failed",
        ),
        (
            &alice,
            body(&alice_rub, &bob_rub, json!("10.005")),
            422,
            "validation_failed",
        ),
        (
            &alice,
            body(&alice_rub, &bob_rub, json!("-5.00")),
            422,
            "validation_failed",
        ),
        (
            &alice,
            body(&alice_rub, &bob_rub, json!("0")),
            422,
            "validation_failed",
        ),
        (
            &alice,
            body(&alice_rub, &bob_rub, json!("1e2")),
            422,
            "validation_failed",
        ),
        (
            &alice,
            body(&alice_rub, &alice_rub, json!("1.00")),
            422,
            "validation_failed",
        ),
        (
            &alice,
            body(&alice_rub, &alice_usd, json!("1.00")),
            422,
            "currency_mismatch",
        ),
        (
            &alice,
            body(&bob_rub, &alice_rub, json!("1.00")),
            404,
            "not_found",
        ),
        (
            &alice,
            body(&alice_rub, &uuid::Uuid::now_v7().to_string(), json!("1.00")),
            404,
            "not_found",
        ),
        (
            &alice,
            body(&alice_rub, &bob_rub, json!("100.01")),
            422,
            "insufficient_funds",
        ),
    ];
    for (i, (user, body, status, code)) in cases.into_iter().enumerate() {
        let response = transfer_request(&app, user, &format!("bad-{i}"), &body)
            .send()
            .await
            .expect("sent");
        assert_problem(response, status, code).await;
    }
    // Without an Idempotency-Key.
    let response = app
        .call(
            Method::POST,
            "/api/v1/transfers",
            Some(&alice.token),
            Some(&body(&alice_rub, &bob_rub, json!("1.00"))),
        )
        .await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");

    assert_eq!(balance(&app, &alice, &alice_rub).await, "100.00");
    assert_eq!(balance(&app, &bob, &bob_rub).await, "50.00");
    let transfers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transfers WHERE kind = 'transfer'")
            .fetch_one(&app.db)
            .await
            .expect("count");
    assert_eq!(transfers, 0);
    // Customers cannot deposit.
    let response = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/wallets/{alice_rub}/deposit"),
            Some(&alice.token),
            Some(&json!({"amount": "1.00"})),
        )
        .await;
    assert_problem(response, 403, "forbidden").await;
}

#[tokio::test]
async fn a_replayed_key_returns_the_first_answer_and_another_body_is_409() {
    let app = TestApp::spawn().await;
    let manager = manager(&app).await;
    let alice = app.user("alice@example.com", Role::Customer).await;
    let bob = app.user("bob@example.com", Role::Customer).await;
    let from = open_wallet(&app, &alice, "EUR").await;
    let to = open_wallet(&app, &bob, "EUR").await;
    deposit(&app, &manager, &from, "20.00").await;

    let body = json!({"from_wallet_id": from, "to_wallet_id": to, "amount": "7.25"});
    let first = transfer_request(&app, &alice, "key-1", &body)
        .send()
        .await
        .expect("sent");
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    assert_eq!(first["amount"], "7.25");
    let again = transfer_request(&app, &alice, "key-1", &body)
        .send()
        .await
        .expect("sent");
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.expect("json"), first);
    assert_eq!(balance(&app, &alice, &from).await, "12.75", "moved once");

    let other = json!({"from_wallet_id": from, "to_wallet_id": to, "amount": "1.00"});
    let response = transfer_request(&app, &alice, "key-1", &other)
        .send()
        .await
        .expect("sent");
    assert_problem(response, 409, "conflict").await;
    assert_eq!(balance(&app, &alice, &from).await, "12.75");

    // The ledger: two entries per transfer, summing to zero.
    let history = app
        .get_json_authed(
            &format!("/api/v1/wallets/{from}/transactions"),
            &alice.token,
        )
        .await;
    let items = history["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["amount"], "-7.25");
    assert_eq!(items[0]["balance_after"], "12.75");
    assert_eq!(items[0]["counterparty_wallet_id"], to.as_str());
    assert_eq!(items[1]["kind"], "deposit");
}

#[tokio::test]
async fn concurrent_transfers_in_a_ring_keep_every_invariant() {
    let app = Arc::new(TestApp::spawn().await);
    let manager = manager(&app).await;
    let mut users = Vec::new();
    let mut wallets = Vec::new();
    for i in 0..10 {
        let user = app
            .user(&format!("ring{i}@example.com"), Role::Customer)
            .await;
        let wallet = open_wallet(&app, &user, "EUR").await;
        deposit(&app, &manager, &wallet, "100.00").await;
        users.push(Arc::new(user));
        wallets.push(wallet);
    }
    let wallets = Arc::new(wallets);
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let (app, wallets) = (Arc::clone(&app), Arc::clone(&wallets));
            let user = Arc::clone(&users[n % 10]);
            tokio::spawn(async move {
                let from = &wallets[n % 10];
                let to = &wallets[(n + 1) % 10];
                // 1.00 to 73.00: large enough that some transfers must fail.
                let amount = format!("{}.{:02}", 1 + (n * 37) % 73, (n * 13) % 100);
                let body = json!({"from_wallet_id": from, "to_wallet_id": to, "amount": amount});
                let response = transfer_request(&app, &user, &format!("ring-{n}"), &body)
                    .send()
                    .await
                    .expect("sent");
                let status = response.status().as_u16();
                let body: Value = response.json().await.expect("json");
                (status, body)
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for task in tasks {
        let (status, body) = task.await.expect("joins");
        match status {
            201 => ok += 1,
            422 if body["code"] == "insufficient_funds" => refused += 1,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ok + refused, 200);
    assert!(ok > 0);
    eprintln!("ring: {ok} transfers made, {refused} refused for insufficient funds");

    let (negative, total): (i64, Decimal) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE balance < 0), coalesce(sum(balance), 0)
         FROM wallets WHERE user_id IS NOT NULL AND currency = 'EUR'",
    )
    .fetch_one(&app.db)
    .await
    .expect("sums");
    assert_eq!(negative, 0);
    assert_eq!(total, Decimal::from(1000), "only deposits change the total");
    let system: Decimal = sqlx::query_scalar(
        "SELECT balance FROM wallets WHERE user_id IS NULL AND currency = 'EUR'",
    )
    .fetch_one(&app.db)
    .await
    .expect("system wallet");
    assert_eq!(system, Decimal::from(-1000));
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM wallets w
         WHERE w.balance <> (SELECT coalesce(sum(amount), 0) FROM ledger_entries e WHERE e.wallet_id = w.id)",
    )
    .fetch_one(&app.db)
    .await
    .expect("ledger");
    assert_eq!(mismatched, 0, "the ledger sums to the balances");
    let unbalanced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT transfer_id FROM ledger_entries GROUP BY transfer_id
                               HAVING sum(amount) <> 0 OR count(*) <> 2) t",
    )
    .fetch_one(&app.db)
    .await
    .expect("entries");
    assert_eq!(
        unbalanced, 0,
        "every transfer is two entries summing to zero"
    );
    let transfers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transfers WHERE kind = 'transfer'")
            .fetch_one(&app.db)
            .await
            .expect("count");
    assert_eq!(transfers, ok);
}

#[tokio::test]
async fn one_wallet_per_currency_and_only_real_currencies() {
    let app = TestApp::spawn().await;
    let user = app.user("wallets@example.com", Role::Customer).await;
    open_wallet(&app, &user, "JPY").await;
    let again = app
        .call(
            Method::POST,
            "/api/v1/wallets",
            Some(&user.token),
            Some(&json!({"currency": "JPY"})),
        )
        .await;
    assert_problem(again, 409, "conflict").await;
    for bad in [
        json!({"currency": "XYZ"}),
        json!({"currency": "eur"}),
        json!({"currency": 978}),
    ] {
        let response = app
            .call(
                Method::POST,
                "/api/v1/wallets",
                Some(&user.token),
                Some(&bad),
            )
            .await;
        assert_problem(response, 422, "validation_failed").await;
    }
    let mine = app.get_json_authed("/api/v1/wallets", &user.token).await;
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn someone_elses_wallet_in_another_currency_is_as_absent_as_an_unknown_one() {
    let app = TestApp::spawn().await;
    let manager = manager(&app).await;
    let alice = app.user("alice@example.com", Role::Customer).await;
    let bob = app.user("bob@example.com", Role::Customer).await;
    let alice_rub = open_wallet(&app, &alice, "RUB").await;
    let alice_usd = open_wallet(&app, &alice, "USD").await;
    let bob_usd = open_wallet(&app, &bob, "USD").await;
    deposit(&app, &manager, &alice_rub, "10.00").await;
    let body =
        |to: &str| json!({"from_wallet_id": alice_rub, "to_wallet_id": to, "amount": "1.00"});

    // Between one's own wallets the mismatch is worth saying.
    let own = transfer_request(&app, &alice, "own", &body(&alice_usd))
        .send()
        .await
        .expect("sent");
    assert_problem(own, 422, "currency_mismatch").await;
    // Someone else's answers exactly like a wallet that does not exist.
    let theirs = transfer_request(&app, &alice, "theirs", &body(&bob_usd))
        .send()
        .await
        .expect("sent");
    let theirs = assert_problem(theirs, 404, "not_found").await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let unknown = transfer_request(&app, &alice, "unknown", &body(&unknown))
        .send()
        .await
        .expect("sent");
    let unknown = assert_problem(unknown, 404, "not_found").await;
    assert_eq!(theirs["detail"], unknown["detail"]);
    assert_eq!(balance(&app, &alice, &alice_rub).await, "10.00");
}

#[tokio::test]
async fn deposits_never_go_to_the_depositor_and_stay_under_the_cap() {
    let app = TestApp::spawn().await;
    let manager = app.user("treasurer@example.com", Role::Manager).await;
    let alice = app.user("alice@example.com", Role::Customer).await;
    let own = open_wallet(&app, &manager, "EUR").await;
    let alice_eur = open_wallet(&app, &alice, "EUR").await;
    let deposit_to = async |wallet: &str, amount: &str| {
        let path = format!("/api/v1/admin/wallets/{wallet}/deposit");
        app.call(
            Method::POST,
            &path,
            Some(&manager.token),
            Some(&json!({"amount": amount})),
        )
        .await
    };

    let response = deposit_to(&own, "5.00").await;
    assert_problem(response, 403, "forbidden").await;
    // The default cap is 10000 per deposit.
    let response = deposit_to(&alice_eur, "10000.01").await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "amount");
    assert_eq!(balance(&app, &manager, &own).await, "0.00");
    assert_eq!(balance(&app, &alice, &alice_eur).await, "0.00");

    let response = deposit_to(&alice_eur, "10000.00").await;
    assert_eq!(response.status(), 201);
    assert_eq!(balance(&app, &alice, &alice_eur).await, "10000.00");
}
