//! Owner-scoped records: IDOR, soft delete, ETags, validation.

use bff_app::identity::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{SEED_PASSWORD, TestApp, TestUser, assert_problem};

fn address(label: &str, is_default: bool) -> Value {
    json!({"label": label, "country": "de", "city": "Berlin", "street": "Unter den Linden 1",
           "postal_code": "10117", "is_default": is_default})
}

async fn create(app: &TestApp, user: &TestUser, path: &str, body: &Value) -> Value {
    let response = app
        .call(Method::POST, path, Some(&user.token), Some(body))
        .await;
    assert_eq!(response.status(), 201, "{path} {body}");
    assert!(response.headers().contains_key("etag"));
    response.json().await.expect("json")
}

async fn list_ids(app: &TestApp, user: &TestUser, path: &str) -> Vec<String> {
    let page = app.get_json_authed(path, &user.token).await;
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn someone_elses_records_are_404_for_every_verb_and_stay_unchanged() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com", Role::Customer).await;
    let mallory = app.user("mallory@example.com", Role::Customer).await;
    let records = [
        (
            "/api/v1/addresses",
            address("Home", true),
            json!({"label": "Mine now"}),
        ),
        (
            "/api/v1/wishlist",
            json!({"sku": "SKU-1", "note": "for me"}),
            json!({"note": "mine now"}),
        ),
    ];
    for (path, body, patch) in records {
        let record = create(&app, &alice, path, &body).await;
        let item = format!("{path}/{}", record["id"].as_str().expect("id"));
        for (method, body) in [
            (Method::GET, None),
            (Method::PATCH, Some(&patch)),
            (Method::DELETE, None),
        ] {
            let response = app
                .call(method.clone(), &item, Some(&mallory.token), body)
                .await;
            assert_problem(response, 404, "not_found").await;
        }
        // Not in Mallory's list either, and Alice's record is as it was.
        assert!(list_ids(&app, &mallory, path).await.is_empty());
        let after = app.get_json_authed(&item, &alice.token).await;
        assert_eq!(after, record, "{path}");
        // A malformed id is as absent as someone else's.
        let response = app
            .call(
                Method::GET,
                &format!("{path}/not-a-uuid"),
                Some(&alice.token),
                None,
            )
            .await;
        assert_problem(response, 404, "not_found").await;
    }
}

#[tokio::test]
async fn soft_deleted_rows_vanish_from_reads_and_uniqueness_and_come_back() {
    let app = TestApp::spawn().await;
    let user = app.user("soft@example.com", Role::Customer).await;
    let admin = app.login("admin@example.com", SEED_PASSWORD).await;
    let admin = admin["access_token"].as_str().expect("token");

    let first = create(&app, &user, "/api/v1/addresses", &address("Home", true)).await;
    let first_id = first["id"].as_str().expect("id");
    assert_eq!(first["country"], "DE", "normalised");
    // Another address beside it.
    let response = app
        .call(
            Method::POST,
            "/api/v1/addresses",
            Some(&user.token),
            Some(&address("Office", false)),
        )
        .await;
    assert_eq!(response.status(), 201, "a non-default one is fine");
    let path = format!("/api/v1/addresses/{first_id}");
    let deleted = app
        .call(Method::DELETE, &path, Some(&user.token), None)
        .await;
    assert_eq!(deleted.status(), 204);
    assert_problem(
        app.call(Method::DELETE, &path, Some(&user.token), None)
            .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.call(Method::GET, &path, Some(&user.token), None).await,
        404,
        "not_found",
    )
    .await;
    assert!(
        !list_ids(&app, &user, "/api/v1/addresses")
            .await
            .contains(&first_id.to_owned())
    );
    let kept: bool =
        sqlx::query_scalar("SELECT deleted_at IS NOT NULL FROM addresses WHERE id = $1::uuid")
            .bind(first_id)
            .fetch_one(&app.db)
            .await
            .expect("the row stays");
    assert!(kept);

    // The deleted default does not count; restoring it while another default
    // is live would make two, which the partial unique index refuses.
    let second = create(&app, &user, "/api/v1/addresses", &address("New home", true)).await;
    let restore = format!("/api/v1/addresses/{first_id}/restore");
    assert_problem(
        app.call(Method::POST, &restore, Some(admin), None).await,
        409,
        "conflict",
    )
    .await;
    let second_path = format!("/api/v1/addresses/{}", second["id"].as_str().expect("id"));
    app.call(Method::DELETE, &second_path, Some(&user.token), None)
        .await;
    let restored = app.call(Method::POST, &restore, Some(admin), None).await;
    assert_eq!(restored.status(), 200);
    assert!(
        list_ids(&app, &user, "/api/v1/addresses")
            .await
            .contains(&first_id.to_owned())
    );
    assert_eq!(
        app.get_json_authed(&path, &user.token).await["label"],
        "Home"
    );

    // Wishlist: a SKU once per live list.
    let item = create(&app, &user, "/api/v1/wishlist", &json!({"sku": "SKU-9"})).await;
    assert_problem(
        app.call(
            Method::POST,
            "/api/v1/wishlist",
            Some(&user.token),
            Some(&json!({"sku": "SKU-9"})),
        )
        .await,
        409,
        "conflict",
    )
    .await;
    let item_path = format!("/api/v1/wishlist/{}", item["id"].as_str().expect("id"));
    app.call(Method::DELETE, &item_path, Some(&user.token), None)
        .await;
    create(&app, &user, "/api/v1/wishlist", &json!({"sku": "SKU-9"})).await;
    assert_problem(
        app.call(
            Method::POST,
            &format!("{item_path}/restore"),
            Some(admin),
            None,
        )
        .await,
        409,
        "conflict",
    )
    .await;
}

#[tokio::test]
async fn a_stale_if_match_is_412() {
    let app = TestApp::spawn().await;
    let user = app.user("etag@example.com", Role::Customer).await;
    let item = create(
        &app,
        &user,
        "/api/v1/wishlist",
        &json!({"sku": "SKU-1", "priority": 2}),
    )
    .await;
    let path = format!("/api/v1/wishlist/{}", item["id"].as_str().expect("id"));
    let read = app.call(Method::GET, &path, Some(&user.token), None).await;
    let etag = read.headers()["etag"].to_str().expect("ascii").to_owned();
    assert_eq!(etag, "\"1\"");

    let patch = |tag: &str, body: Value| {
        let request = app
            .client
            .patch(app.url(&path))
            .bearer_auth(&user.token)
            .header("If-Match", tag)
            .json(&body);
        async move { request.send().await.expect("sent") }
    };
    let updated = patch(&etag, json!({"priority": 5})).await;
    assert_eq!(updated.status(), 200);
    assert_eq!(updated.headers()["etag"], "\"2\"");
    assert_eq!(updated.json::<Value>().await.expect("json")["priority"], 5);
    assert_problem(
        patch(&etag, json!({"priority": 1})).await,
        412,
        "precondition_failed",
    )
    .await;
    assert_eq!(
        app.get_json_authed(&path, &user.token).await["priority"],
        5,
        "unchanged"
    );
    assert_eq!(
        patch("*", json!({"note": "any version"})).await.status(),
        200
    );
}

#[tokio::test]
async fn invalid_fields_are_named_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let user = app.user("fields@example.com", Role::Customer).await;
    let cases = [
        (
            "/api/v1/addresses",
            json!({"label": "", "country": "Germany", "city": "B", "street": "S", "postal_code": "10117!"}),
            vec!["label", "country", "postal_code"],
        ),
        ("/api/v1/addresses", json!({"label": "x"}), vec!["country"]),
        (
            "/api/v1/wishlist",
            json!({"sku": "-bad", "priority": 9}),
            vec!["sku", "priority"],
        ),
        (
            "/api/v1/wishlist",
            json!({"sku": "ok", "note": "n".repeat(501)}),
            vec!["note"],
        ),
        (
            "/api/v1/wishlist",
            json!({"sku": "ok", "colour": "red"}),
            vec!["colour"],
        ),
    ];
    for (path, body, fields) in cases {
        let response = app
            .call(Method::POST, path, Some(&user.token), Some(&body))
            .await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        let named: Vec<&str> = problem["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        for field in fields {
            assert!(named.contains(&field), "{path} {body}: {problem}");
        }
    }
    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM addresses) + (SELECT count(*) FROM wishlist_items)",
    )
    .fetch_one(&app.db)
    .await
    .expect("count");
    assert_eq!(rows, 0);
}
