//! The orders endpoints through gRPC, and the orders service's own guard.

use std::time::Duration;

use bff_app::identity::Role;
use bff_app::orders::proto::orders_client::OrdersClient;
use bff_app::orders::proto::{CreateOrderRequest, ListOrdersRequest, OrderItem};
use bff_auth::keys::{Algorithm, SigningKey};
use reqwest::Method;
use serde_json::{Value, json};
use tonic::Code;

use crate::backends::OrdersProcess;
use crate::helpers::{TestApp, assert_problem, forge};

fn order(currency: &str, items: Value) -> Value {
    json!({"currency": currency, "items": items})
}

#[tokio::test]
async fn orders_are_placed_listed_read_and_cancelled_through_grpc() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com", Role::Customer).await;
    let bob = app.user("bob@example.com", Role::Customer).await;
    let mut events = app.events().await;

    let created = app
        .call(
            Method::POST,
            "/api/v1/orders",
            Some(&alice.token),
            Some(&order(
                "EUR",
                json!([
                    {"sku": "TEA-1", "quantity": 3, "unit_price": "0.1"},
                    {"sku": "cup_2", "quantity": 1, "unit_price": "19.99"}
                ]),
            )),
        )
        .await;
    assert_eq!(created.status(), 201);
    let first: Value = created.json().await.expect("order");
    assert_eq!(first["status"], "created");
    assert_eq!(first["user_id"], alice.id.as_str());
    assert_eq!(first["currency"], "EUR");
    // Exact decimals, at the currency's scale.
    assert_eq!(first["total"], "20.29");
    assert_eq!(first["items"][0]["unit_price"], "0.10");
    assert_eq!(first["items"][1]["quantity"], 1);
    let id = first["id"].as_str().expect("id").to_owned();

    // The request id travels with the gRPC call into the service's outbox.
    let second: Value = app
        .authed(Method::POST, "/api/v1/orders", &alice.token)
        .header("x-request-id", "order-test-42")
        .json(&order(
            "JPY",
            json!([{"sku": "X", "quantity": 2, "unit_price": "500"}]),
        ))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("order");
    assert_eq!(second["total"], "1000");

    // Newest first, a page at a time.
    let page: Value = app
        .get_json_authed("/api/v1/orders?limit=1", &alice.token)
        .await;
    assert_eq!(page["items"][0]["id"], second["id"]);
    let cursor = page["next_cursor"].as_str().expect("more").to_owned();
    let page: Value = app
        .get_json_authed(
            &format!("/api/v1/orders?limit=1&cursor={cursor}"),
            &alice.token,
        )
        .await;
    assert_eq!(page["items"][0]["id"], id.as_str());
    assert!(page["next_cursor"].is_null());

    let read: Value = app
        .get_json_authed(&format!("/api/v1/orders/{id}"), &alice.token)
        .await;
    assert_eq!(read, first);

    // Another user's order does not exist for them, to read or to cancel.
    for (method, path) in [
        (Method::GET, format!("/api/v1/orders/{id}")),
        (Method::POST, format!("/api/v1/orders/{id}/cancel")),
    ] {
        let response = app.call(method, &path, Some(&bob.token), None).await;
        assert_problem(response, 404, "not_found").await;
    }
    let theirs: Value = app.get_json_authed("/api/v1/orders", &bob.token).await;
    assert_eq!(theirs["items"], json!([]));

    let cancel = format!("/api/v1/orders/{id}/cancel");
    let cancelled = app
        .call(Method::POST, &cancel, Some(&alice.token), None)
        .await;
    assert_eq!(cancelled.status(), 200);
    let cancelled: Value = cancelled.json().await.expect("order");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["total"], "20.29");
    // Cancelling again changes nothing and announces nothing.
    let again: Value = app
        .call(Method::POST, &cancel, Some(&alice.token), None)
        .await
        .json()
        .await
        .expect("order");
    assert_eq!(again, cancelled);

    let mut seen = Vec::new();
    let mut request_ids = Vec::new();
    while let Some(event) = events.next_within(Duration::from_secs(5)).await {
        request_ids.push(event.request_id.clone());
        seen.push((event.subject, event.payload["data"]["order_id"].clone()));
        if seen.len() == 3 {
            break;
        }
    }
    let prefix = app.topology.subject("");
    assert_eq!(
        seen,
        [
            (format!("{prefix}events.order.created"), json!(id)),
            (
                format!("{prefix}events.order.created"),
                second["id"].clone()
            ),
            (format!("{prefix}events.order.cancelled"), json!(id)),
        ]
    );
    assert!(
        events
            .next_within(Duration::from_millis(500))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn bad_orders_are_422_naming_the_field_and_create_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com", Role::Customer).await;
    let line = json!({"sku": "A", "quantity": 1, "unit_price": "1.00"});
    let many: Vec<Value> = (0..101).map(|_| line.clone()).collect();
    let cases = [
        (order("XXX", json!([line])), "currency"),
        (order("eur!", json!([line])), "currency"),
        (order("EUR", json!([])), "items"),
        (order("EUR", json!(many)), "items"),
        (
            order(
                "EUR",
                json!([{"sku": "A", "quantity": 1, "unit_price": 1.5}]),
            ),
            "items[0].unit_price",
        ),
        (
            order(
                "EUR",
                json!([{"sku": "A", "quantity": 1, "unit_price": "1.005"}]),
            ),
            "items[0].unit_price",
        ),
        (
            order(
                "JPY",
                json!([{"sku": "A", "quantity": 1, "unit_price": "1.5"}]),
            ),
            "items[0].unit_price",
        ),
        (
            order(
                "EUR",
                json!([{"sku": "A", "quantity": 1, "unit_price": "-1"}]),
            ),
            "items[0].unit_price",
        ),
        (
            order(
                "EUR",
                json!([{"sku": "A", "quantity": 1, "unit_price": "0"}]),
            ),
            "items[0].unit_price",
        ),
        (
            order(
                "EUR",
                json!([{"sku": "A", "quantity": 0, "unit_price": "1"}]),
            ),
            "items[0].quantity",
        ),
        (
            order(
                "EUR",
                json!([{"sku": "A", "quantity": -1, "unit_price": "1"}]),
            ),
            "items[0].quantity",
        ),
        (
            order(
                "EUR",
                json!([{"sku": "A", "quantity": 10001, "unit_price": "1"}]),
            ),
            "items[0].quantity",
        ),
        (
            order(
                "EUR",
                json!([{"sku": "a b", "quantity": 1, "unit_price": "1"}]),
            ),
            "items[0].sku",
        ),
        (
            order(
                "EUR",
                json!([{"sku": "", "quantity": 1, "unit_price": "1"}]),
            ),
            "items[0].sku",
        ),
        (
            order(
                "EUR",
                json!([{"sku": "A", "quantity": 1, "unit_price": "1", "extra": 1}]),
            ),
            "items[0].extra",
        ),
        (
            json!({"currency": "EUR", "items": [line], "user_id": alice.id}),
            "user_id",
        ),
        (json!({"items": [line]}), "currency"),
    ];
    for (body, field) in cases {
        let response = app
            .call(
                Method::POST,
                "/api/v1/orders",
                Some(&alice.token),
                Some(&body),
            )
            .await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{body}: {fields:?}");
    }
    for path in [
        "/api/v1/orders?limit=0",
        "/api/v1/orders?limit=101",
        "/api/v1/orders?cursor=nonsense",
    ] {
        let response = app.call(Method::GET, path, Some(&alice.token), None).await;
        assert_problem(response, 422, "validation_failed").await;
    }
    for path in [
        "/api/v1/orders/not-an-id",
        "/api/v1/orders/0190b5a4-0000-7000-8000-000000000000",
    ] {
        let response = app.call(Method::GET, path, Some(&alice.token), None).await;
        assert_problem(response, 404, "not_found").await;
    }
    let response = app.call(Method::GET, "/api/v1/orders", None, None).await;
    assert_problem(response, 401, "unauthorized").await;

    let listed: Value = app.get_json_authed("/api/v1/orders", &alice.token).await;
    assert_eq!(listed["items"], json!([]));
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM orders.orders")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(rows, 0);
}

/// A one-line EUR order for the gRPC API.
fn one_line_order(unit_price: &str) -> CreateOrderRequest {
    CreateOrderRequest {
        currency: "EUR".to_owned(),
        items: vec![OrderItem {
            sku: "A".to_owned(),
            quantity: 1,
            unit_price: unit_price.to_owned(),
        }],
        minor_units: 2,
        idempotency_key: String::new(),
    }
}

/// A gRPC request to the orders service with `authorization` as given.
fn with_token<T>(message: T, authorization: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().expect("metadata"));
    }
    request
}

#[tokio::test]
async fn the_orders_service_verifies_every_token_itself() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com", Role::Customer).await;
    let orders = OrdersProcess::spawn(&app, false).await;
    let mut client = OrdersClient::connect(orders.url()).await.expect("connects");

    let list = ListOrdersRequest {
        limit: 10,
        cursor: String::new(),
    };
    let minted = app.backend_token(&alice.token, "orders");
    let valid = format!("Bearer {minted}");
    // A token minted for a backend opens nothing at the BFF.
    assert_eq!(app.me_status(&minted).await, 401);
    let ok = client
        .list_orders(with_token(list.clone(), Some(&valid)))
        .await
        .expect("a valid token is served");
    assert!(ok.get_ref().orders.is_empty());

    // Forged tokens: the app's own key with an expired `exp`, and a key the
    // BFF never published.
    let mut parts = minted.split('.');
    let decode = |p: &str| -> Value {
        use base64::Engine;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .expect("b64"),
        )
        .expect("json")
    };
    let header = decode(parts.next().expect("header"));
    let claims = decode(parts.next().expect("claims"));
    let key = SigningKey::from_pem(app.signing_key_pem.as_bytes()).expect("the app's key");
    let mut expired = claims.clone();
    expired["exp"] = json!(claims["iat"].as_i64().expect("iat") - 3600);
    let stranger = SigningKey::generate(Algorithm::EdDsa)
        .expect("gen")
        .signing_key()
        .expect("load");
    let foreign = forge(
        &stranger,
        &json!({"alg": "EdDSA", "typ": "JWT", "kid": stranger.kid()}),
        &claims,
    );
    let refused = [
        ("missing", None),
        ("not bearer", Some(format!("Basic {minted}"))),
        // The user's own token is for the BFF, and the loyalty responder's
        // for the loyalty responder: neither opens the orders service.
        ("the user's own", Some(format!("Bearer {}", alice.token))),
        (
            "another backend's",
            Some(format!(
                "Bearer {}",
                app.backend_token(&alice.token, "loyalty")
            )),
        ),
        (
            "expired",
            Some(format!("Bearer {}", forge(&key, &header, &expired))),
        ),
        ("foreign key", Some(format!("Bearer {foreign}"))),
        ("garbage", Some("Bearer not.a.token".to_owned())),
    ];
    for (what, authorization) in refused {
        let status = client
            .list_orders(with_token(list.clone(), authorization.as_deref()))
            .await
            .expect_err(what);
        assert_eq!(status.code(), Code::Unauthenticated, "{what}");
        let status = client
            .create_order(with_token(one_line_order("1.00"), authorization.as_deref()))
            .await
            .expect_err(what);
        assert_eq!(status.code(), Code::Unauthenticated, "{what}");
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM orders.orders")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(rows, 0, "no refused call placed an order");

    // Bad input straight to the service: INVALID_ARGUMENT naming the field.
    let status = client
        .create_order(with_token(one_line_order("1.001"), Some(&valid)))
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status
            .metadata()
            .get("bff-field")
            .and_then(|v| v.to_str().ok()),
        Some("items[0].unit_price")
    );
    orders.stop().await;
}

#[tokio::test]
async fn a_logout_or_a_block_reaches_the_orders_service_before_tokens_expire() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com", Role::Customer).await;
    let bob = app.user("bob@example.com", Role::Customer).await;
    let admin = app
        .login("admin@example.com", crate::helpers::SEED_PASSWORD)
        .await;
    let admin = admin["access_token"].as_str().expect("token").to_owned();
    let orders = OrdersProcess::spawn(&app, false).await;
    let mut client = OrdersClient::connect(orders.url()).await.expect("connects");
    let list = ListOrdersRequest {
        limit: 10,
        cursor: String::new(),
    };
    let alices = format!("Bearer {}", app.backend_token(&alice.token, "orders"));
    let bobs = format!("Bearer {}", app.backend_token(&bob.token, "orders"));
    for token in [&alices, &bobs] {
        client
            .list_orders(with_token(list.clone(), Some(token)))
            .await
            .expect("served before");
    }
    let logout = app
        .authed(Method::POST, "/api/v1/auth/logout", &alice.token)
        .send()
        .await
        .expect("sent");
    assert_eq!(logout.status(), 204);
    let block = app
        .authed(
            Method::POST,
            &format!("/api/v1/admin/users/{}/block", bob.id),
            &admin,
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(block.status(), 200);
    // The minted tokens are still within their minute, but refused once the
    // revocation events arrive (the relay publishes them at once).
    for token in [&alices, &bobs] {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let result = client
                .list_orders(with_token(list.clone(), Some(token)))
                .await;
            match result {
                Err(status) if status.code() == Code::Unauthenticated => break,
                _ => {
                    assert!(std::time::Instant::now() < deadline, "still accepted");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    orders.stop().await;
}

#[tokio::test]
async fn the_orders_service_keeps_its_own_currencies_and_scales() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com", Role::Customer).await;
    let orders = OrdersProcess::spawn(&app, false).await;
    let mut client = OrdersClient::connect(orders.url()).await.expect("connects");
    let token = format!("Bearer {}", app.backend_token(&alice.token, "orders"));
    let bad = [
        // No such currency, whatever scale the caller claims for it.
        ("ZZZ", 4, "1.0001"),
        // A real currency with a scale of the caller's choosing.
        ("EUR", 4, "1.0001"),
        ("JPY", 2, "1.50"),
    ];
    for (currency, minor_units, price) in bad {
        let order = CreateOrderRequest {
            currency: currency.to_owned(),
            minor_units,
            ..one_line_order(price)
        };
        let status = client
            .create_order(with_token(order, Some(&token)))
            .await
            .expect_err(currency);
        assert_eq!(status.code(), Code::InvalidArgument, "{currency}");
        assert_eq!(
            status
                .metadata()
                .get("bff-field")
                .and_then(|v| v.to_str().ok()),
            Some("currency"),
            "{currency}"
        );
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM orders.orders")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(rows, 0);
    orders.stop().await;
}

#[tokio::test]
async fn the_orders_service_serves_grpc_health_and_reflection() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = TestApp::spawn().await;
    let orders = OrdersProcess::spawn(&app, false).await;
    let channel = tonic::transport::Endpoint::from_shared(orders.url())
        .expect("url")
        .connect()
        .await
        .expect("connects");
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "bff.orders.v1.Orders".to_owned(),
        })
        .await
        .expect("health");
    assert_eq!(health.get_ref().status(), ServingStatus::Serving);

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream_once(request))
        .await
        .expect("reflection")
        .into_inner();
    let reply = replies.message().await.expect("reply").expect("one reply");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"bff.orders.v1.Orders".to_owned()),
        "{names:?}"
    );
    orders.stop().await;
}

/// A request stream of one message.
fn tokio_stream_once<T: Send + 'static>(item: T) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::iter([item])
}

#[tokio::test]
async fn an_idempotency_key_makes_placing_an_order_safe_to_retry() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com", Role::Customer).await;
    let bob = app.user("bob@example.com", Role::Customer).await;
    let place = |token: String, key: &'static str, body: Value| {
        let app = &app;
        async move {
            app.authed(Method::POST, "/api/v1/orders", &token)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .expect("sent")
        }
    };
    let body = order(
        "EUR",
        json!([{"sku": "A", "quantity": 1, "unit_price": "5.5"}]),
    );
    // The same order spelled differently is the same order.
    let same = order(
        "EUR",
        json!([{"sku": "A", "quantity": 1, "unit_price": "5.50"}]),
    );

    let (first, second) = tokio::join!(
        place(alice.token.clone(), "order-1", body.clone()),
        place(alice.token.clone(), "order-1", same.clone())
    );
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (201, 201)
    );
    let first: Value = first.json().await.expect("order");
    let second: Value = second.json().await.expect("order");
    assert_eq!(first["id"], second["id"], "one order for one key");

    let other = order(
        "EUR",
        json!([{"sku": "B", "quantity": 1, "unit_price": "5.50"}]),
    );
    let reused = place(alice.token.clone(), "order-1", other).await;
    assert_problem(reused, 409, "conflict").await;
    // Keys are per user.
    let theirs = place(bob.token.clone(), "order-1", body.clone()).await;
    assert_eq!(theirs.status(), 201);
    for bad in ["", "has space", "é"] {
        let response = app
            .authed(Method::POST, "/api/v1/orders", &alice.token)
            .header("idempotency-key", bad)
            .json(&body)
            .send()
            .await
            .expect("sent");
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "Idempotency-Key", "{bad:?}");
    }

    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orders.orders WHERE user_id = $1::uuid")
            .bind(&alice.id)
            .fetch_one(&app.db)
            .await
            .expect("count");
    assert_eq!(rows, 1);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM orders.outbox")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(events, 2, "one event for Alice's order, one for Bob's");
}
