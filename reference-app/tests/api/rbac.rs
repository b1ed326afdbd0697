//! Roles: the matrix of admin and manager endpoints against every role, the
//! grant rule, and blocking.

use bff_app::identity::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{SEED_PASSWORD, TestApp, assert_problem};

async fn token(app: &TestApp, email: &str) -> String {
    app.login(email, SEED_PASSWORD).await["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// A deleted record of `owner`'s in collection `path`, for the restore routes.
async fn deleted_record(app: &TestApp, owner: &str, path: &str, body: Value) -> String {
    let response = app.call(Method::POST, path, Some(owner), Some(&body)).await;
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let deleted = app
        .call(Method::DELETE, &format!("{path}/{id}"), Some(owner), None)
        .await;
    assert_eq!(deleted.status(), 204);
    id
}

#[tokio::test]
async fn every_admin_and_manager_endpoint_against_every_role() {
    let app = TestApp::spawn().await;
    let target = app.user("target@example.com", Role::Customer).await;
    let customer = token(&app, "customer@example.com").await;
    let manager = token(&app, "manager@example.com").await;
    let admin = token(&app, "admin@example.com").await;
    let wallet = app
        .call(
            Method::POST,
            "/api/v1/wallets",
            Some(&target.token),
            Some(&json!({"currency": "EUR"})),
        )
        .await
        .json::<Value>()
        .await
        .expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let address = deleted_record(
        &app,
        &target.token,
        "/api/v1/addresses",
        json!({"label": "Home", "country": "DE", "city": "Berlin", "street": "Unter den Linden 1", "postal_code": "10117"}),
    )
    .await;
    let item = deleted_record(
        &app,
        &target.token,
        "/api/v1/wishlist",
        json!({"sku": "SKU-1"}),
    )
    .await;

    let t = &target.id;
    // (method, path, body, [anonymous, customer, manager, admin])
    let matrix: Vec<(Method, String, Option<Value>, [u16; 4])> = vec![
        (
            Method::GET,
            "/api/v1/admin/users".into(),
            None,
            [401, 403, 200, 200],
        ),
        (
            Method::GET,
            format!("/api/v1/admin/users/{t}"),
            None,
            [401, 403, 200, 200],
        ),
        (
            Method::GET,
            format!("/api/v1/admin/users/{t}/addresses"),
            None,
            [401, 403, 200, 200],
        ),
        (
            Method::GET,
            format!("/api/v1/admin/users/{t}/wishlist"),
            None,
            [401, 403, 200, 200],
        ),
        (
            Method::GET,
            "/api/v1/admin/audit-log".into(),
            None,
            // Admins only: the log names every user's security events.
            [401, 403, 403, 200],
        ),
        (
            Method::GET,
            format!("/api/v1/wallets/{wallet}"),
            None,
            [401, 404, 200, 200],
        ),
        (
            Method::GET,
            format!("/api/v1/wallets/{wallet}/transactions"),
            None,
            [401, 404, 200, 200],
        ),
        (
            Method::POST,
            format!("/api/v1/admin/wallets/{wallet}/deposit"),
            Some(json!({"amount": "1.00"})),
            [401, 403, 201, 201],
        ),
        (
            Method::PUT,
            format!("/api/v1/admin/users/{t}/role"),
            Some(json!({"role": "customer"})),
            [401, 403, 403, 200],
        ),
        (
            Method::POST,
            format!("/api/v1/admin/users/{t}/block"),
            None,
            [401, 403, 403, 200],
        ),
        (
            Method::POST,
            format!("/api/v1/admin/users/{t}/unblock"),
            None,
            [401, 403, 403, 200],
        ),
        (
            Method::POST,
            format!("/api/v1/admin/users/{t}/unlock-login"),
            None,
            [401, 403, 403, 204],
        ),
        (
            Method::POST,
            format!("/api/v1/addresses/{address}/restore"),
            None,
            [401, 403, 403, 200],
        ),
        (
            Method::POST,
            format!("/api/v1/wishlist/{item}/restore"),
            None,
            [401, 403, 403, 200],
        ),
    ];
    for (method, path, body, expected) in matrix {
        let callers = [
            ("anonymous", None),
            ("customer", Some(customer.as_str())),
            ("manager", Some(manager.as_str())),
            ("admin", Some(admin.as_str())),
        ];
        for ((who, caller), status) in callers.into_iter().zip(expected) {
            let response = app.call(method.clone(), &path, caller, body.as_ref()).await;
            assert_eq!(
                response.status().as_u16(),
                status,
                "{method} {path} as {who}"
            );
            if status >= 400 {
                let code = match status {
                    401 => "unauthorized",
                    403 => "forbidden",
                    _ => "not_found",
                };
                assert_problem(response, status, code).await;
            }
        }
    }
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_removed() {
    let app = TestApp::spawn().await;
    let other = app.user("second.admin@example.com", Role::Admin).await;
    let admin = app.login("admin@example.com", SEED_PASSWORD).await;
    let (admin_id, admin_token) = (
        admin["user"]["id"].as_str().expect("id").to_owned(),
        admin["access_token"].as_str().expect("token").to_owned(),
    );
    let demote = |actor: String, target: String| {
        let app = &app;
        async move {
            app.call(
                Method::PUT,
                &format!("/api/v1/admin/users/{target}/role"),
                Some(&actor),
                Some(&json!({"role": "customer"})),
            )
            .await
            .status()
            .as_u16()
        }
    };
    // Two admins demote each other at once: the rows are locked and the
    // actor's role read again, so exactly one demotion happens.
    let (first, second) = tokio::join!(
        demote(admin_token.clone(), other.id.clone()),
        demote(other.token.clone(), admin_id.clone()),
    );
    // The loser is refused: 403 when its request was already past the token
    // check, 401 when its sessions had been ended by then.
    let mut outcomes = [first, second];
    outcomes.sort_unstable();
    assert!(matches!(outcomes, [200, 401 | 403]), "{outcomes:?}");
    let admins: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM users WHERE role = 'admin' AND blocked_at IS NULL AND deleted_at IS NULL",
    )
    .fetch_one(&app.db)
    .await
    .expect("count");
    assert_eq!(admins, 1);
    // The one left can neither demote nor block itself.
    let last = if first == 200 {
        &admin_token
    } else {
        &other.token
    };
    let last_id = if first == 200 { &admin_id } else { &other.id };
    assert_eq!(demote(last.clone(), last_id.clone()).await, 403);
    let block = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/users/{last_id}/block"),
            Some(last),
            None,
        )
        .await;
    assert_eq!(block.status(), 403);
}

#[tokio::test]
async fn nobody_grants_a_role_above_their_own() {
    let app = TestApp::spawn().await;
    let target = app.user("climber@example.com", Role::Customer).await;
    let manager = token(&app, "manager@example.com").await;
    let admin = app.login("admin@example.com", SEED_PASSWORD).await;
    let admin_token = admin["access_token"].as_str().expect("token");
    let path = format!("/api/v1/admin/users/{}/role", target.id);

    let response = app
        .call(
            Method::PUT,
            &path,
            Some(&manager),
            Some(&json!({"role": "admin"})),
        )
        .await;
    assert_problem(response, 403, "forbidden").await;
    let own = format!(
        "/api/v1/admin/users/{}/role",
        admin["user"]["id"].as_str().expect("id")
    );
    let response = app
        .call(
            Method::PUT,
            &own,
            Some(admin_token),
            Some(&json!({"role": "customer"})),
        )
        .await;
    assert_problem(response, 403, "forbidden").await;
    let response = app
        .call(
            Method::PUT,
            &path,
            Some(admin_token),
            Some(&json!({"role": "overlord"})),
        )
        .await;
    assert_problem(response, 422, "validation_failed").await;

    // An admin promotes; the target's old token (with the old role) stops working.
    let response = app
        .call(
            Method::PUT,
            &path,
            Some(admin_token),
            Some(&json!({"role": "manager"})),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.expect("json")["role"],
        "manager"
    );
    assert_eq!(app.me_status(&target.token).await, 401);
    let fresh = app.login("climber@example.com", SEED_PASSWORD).await;
    assert_eq!(fresh["user"]["role"], "manager");

    let audit = app
        .get_json_authed(
            "/api/v1/admin/audit-log?action=user.role_changed",
            admin_token,
        )
        .await;
    let entry = &audit["items"][0];
    assert_eq!(entry["target_id"], target.id.as_str());
    assert_eq!(
        entry["details"],
        json!({"from": "customer", "to": "manager"})
    );
    assert_eq!(entry["actor_id"], admin["user"]["id"]);
    assert!(entry["request_id"].is_string());
}

#[tokio::test]
async fn a_blocked_users_tokens_stop_working_at_once() {
    let app = TestApp::spawn().await;
    let target = app.user("blocked@example.com", Role::Customer).await;
    let admin = token(&app, "admin@example.com").await;
    assert_eq!(app.me_status(&target.token).await, 200);

    let response = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/users/{}/block", target.id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.json::<Value>().await.expect("json")["blocked_at"].is_string());
    assert_eq!(app.me_status(&target.token).await, 401);
    assert_problem(
        app.post_json(
            "/api/v1/auth/login",
            &json!({"identifier": "blocked@example.com", "password": SEED_PASSWORD}),
        )
        .await,
        403,
        "account_blocked",
    )
    .await;

    let response = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/users/{}/unblock", target.id),
            Some(&admin),
            None,
        )
        .await;
    assert!(response.json::<Value>().await.expect("json")["blocked_at"].is_null());
    app.login("blocked@example.com", SEED_PASSWORD).await;
}

#[tokio::test]
async fn the_user_list_filters_and_pages() {
    let app = TestApp::spawn().await;
    let manager = token(&app, "manager@example.com").await;
    for i in 0..3 {
        app.user(&format!("page{i}@example.com"), Role::Customer)
            .await;
    }
    let all = app
        .get_json_authed("/api/v1/admin/users?limit=2&q=PAGE", &manager)
        .await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(2));
    let cursor = all["next_cursor"].as_str().expect("more");
    let rest = app
        .get_json_authed(
            &format!("/api/v1/admin/users?limit=2&q=page&cursor={cursor}"),
            &manager,
        )
        .await;
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1));
    assert!(rest["next_cursor"].is_null());
    let admins = app
        .get_json_authed("/api/v1/admin/users?role=admin", &manager)
        .await;
    assert_eq!(admins["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(admins["items"][0]["email"], "admin@example.com");
    // A LIKE wildcard is matched literally.
    let none = app
        .get_json_authed("/api/v1/admin/users?q=%25", &manager)
        .await;
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0));
    let response = app
        .call(
            Method::GET,
            "/api/v1/admin/users?role=root",
            Some(&manager),
            None,
        )
        .await;
    assert_problem(response, 422, "validation_failed").await;
}
