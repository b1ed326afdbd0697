use std::collections::HashSet;

use serde_json::Value;

use crate::helpers::{TestApp, assert_problem};

#[tokio::test]
async fn lists_the_seeded_currencies_with_their_minor_units() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/v1/currencies?limit=100").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let items = body["items"].as_array().expect("items");
    let units = |code: &str| {
        items
            .iter()
            .find(|c| c["code"] == code)
            .map(|c| c["minor_units"].clone())
    };
    assert_eq!(units("EUR"), Some(Value::from(2)));
    assert_eq!(units("RUB"), Some(Value::from(2)));
    assert_eq!(units("JPY"), Some(Value::from(0)));
    assert_eq!(units("KWD"), Some(Value::from(3)));
    assert_eq!(body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn pages_walk_the_whole_list_once_in_order() {
    let app = TestApp::spawn().await;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM currencies")
        .fetch_one(&app.db)
        .await
        .expect("count");
    let default_page: Value = app
        .get("/api/v1/currencies")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        default_page["items"].as_array().map(Vec::len),
        Some(20),
        "default limit"
    );

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/currencies?limit=7&cursor={c}"),
            None => "/api/v1/currencies?limit=7".to_owned(),
        };
        let page: Value = app.get(&path).await.json().await.expect("json");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 7);
        seen.extend(
            items
                .iter()
                .map(|c| c["code"].as_str().expect("code").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len() as i64, total);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        seen.len(),
        "no duplicates"
    );
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "ordered by code");
}

#[tokio::test]
async fn bad_page_parameters_are_422_naming_the_parameter() {
    let app = TestApp::spawn().await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        // A well-formed cursor holding a value that is not a currency code.
        ("cursor=ImV1ciI", "cursor"),
    ] {
        let body = assert_problem(
            app.get(&format!("/api/v1/currencies?{query}")).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
}

#[tokio::test]
async fn one_currency_by_code() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/v1/currencies/JPY").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({"code": "JPY", "name": "Yen", "minor_units": 0})
    );

    assert_problem(app.get("/api/v1/currencies/ZZZ").await, 404, "not_found").await;
    for bad in ["eur", "EURO", "E1R", "%20EUR"] {
        let body = assert_problem(
            app.get(&format!("/api/v1/currencies/{bad}")).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "code");
    }
}
