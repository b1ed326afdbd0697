//! The OpenAPI document declares what the API enforces, so that a generated
//! client or a fuzzer can make valid requests: bounds, patterns and lengths of
//! the inputs, the headers the operations read, and every error status.

use serde_json::Value;

use crate::helpers::TestApp;

async fn document() -> Value {
    let app = TestApp::spawn().await;
    app.get("/openapi.json").await.json().await.expect("json")
}

/// Every (method, path, operation) of the document.
fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let paths = spec["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flatten()
                .map(move |(method, op)| (method.clone(), path.clone(), op.clone()))
        })
        .collect()
}

fn parameter<'a>(op: &'a Value, location: &str, name: &str) -> Option<&'a Value> {
    op["parameters"]
        .as_array()?
        .iter()
        .find(|p| p["in"] == location && p["name"] == name)
}

/// The schema `reference` names in the document's components.
fn component<'a>(spec: &'a Value, reference: &Value) -> &'a Value {
    let name = reference["$ref"]
        .as_str()
        .and_then(|r| r.rsplit('/').next())
        .unwrap_or_else(|| panic!("a reference: {reference}"));
    &spec["components"]["schemas"][name]
}

fn body_schema<'a>(spec: &'a Value, op: &'a Value) -> &'a Value {
    component(
        spec,
        &op["requestBody"]["content"]["application/json"]["schema"],
    )
}

#[tokio::test]
async fn every_api_operation_declares_its_error_statuses_as_problems() {
    let spec = document().await;
    let mut checked = 0;
    for (method, path, op) in operations(&spec) {
        if !(path.starts_with("/api/") || path.starts_with("/.well-known/")) {
            continue;
        }
        checked += 1;
        // A bad query is 422 (bff_core's `Query`), or 400 where a route reads
        // it with axum's own extractor.
        let has_query = op["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
        if has_query {
            assert!(
                ["400", "422"]
                    .iter()
                    .any(|s| op["responses"][s].is_object()),
                "{method} {path} declares how it refuses a bad query: {}",
                op["responses"]
            );
        }
        let mut expected = vec!["429", "503"];
        if op["security"].is_array() {
            expected.push("401");
        }
        if op.get("requestBody").is_some() {
            expected.extend(["400", "413", "415", "422"]);
        }
        for status in expected {
            let response = &op["responses"][status];
            assert!(
                component(
                    &spec,
                    &response["content"]["application/problem+json"]["schema"]
                )
                .is_object(),
                "{method} {path} declares {status} as a problem: {}",
                op["responses"]
            );
        }
    }
    assert!(checked >= 45, "{checked} API operations");
    // Statuses that only some operations answer.
    for (method, path, status) in [
        ("post", "/api/v1/transfers", "409"),
        ("post", "/api/v1/transfers", "404"),
        ("post", "/api/v1/admin/wallets/{id}/deposit", "409"),
        ("patch", "/api/v1/addresses/{id}", "412"),
        ("patch", "/api/v1/wishlist/{id}", "412"),
        ("post", "/api/v1/auth/login", "403"),
        ("post", "/api/v1/auth/register", "409"),
        ("get", "/api/v1/admin/audit-log", "403"),
        ("get", "/api/v1/admin/audit-log", "422"),
    ] {
        assert!(
            spec["paths"][path][method]["responses"][status].is_object(),
            "{method} {path} declares {status}"
        );
    }
}

#[tokio::test]
async fn the_headers_operations_read_are_declared() {
    let spec = document().await;
    let key = |method: &str, path: &str| {
        parameter(&spec["paths"][path][method], "header", "Idempotency-Key")
            .unwrap_or_else(|| panic!("{method} {path} declares Idempotency-Key"))
            .clone()
    };
    let transfer = key("post", "/api/v1/transfers");
    assert_eq!(transfer["required"], true, "{transfer}");
    assert_eq!(transfer["schema"]["maxLength"], 255, "{transfer}");
    assert!(transfer["schema"]["pattern"].is_string(), "{transfer}");
    for (method, path) in [
        ("post", "/api/v1/orders"),
        ("post", "/api/v1/admin/wallets/{id}/deposit"),
    ] {
        let optional = key(method, path);
        assert_ne!(optional["required"], true, "{method} {path}: {optional}");
    }
    for path in ["/api/v1/addresses/{id}", "/api/v1/wishlist/{id}"] {
        let if_match = parameter(&spec["paths"][path]["patch"], "header", "If-Match");
        assert!(if_match.is_some(), "PATCH {path} declares If-Match");
    }
}

#[tokio::test]
async fn inputs_declare_the_bounds_and_patterns_the_api_enforces() {
    let spec = document().await;
    // Every list takes a page of 1 to 100.
    let mut lists = 0;
    for (method, path, op) in operations(&spec) {
        if let Some(limit) = parameter(&op, "query", "limit") {
            lists += 1;
            assert_eq!(limit["schema"]["minimum"], 1, "{method} {path}: {limit}");
            assert_eq!(limit["schema"]["maximum"], 100, "{method} {path}: {limit}");
            let cursor = parameter(&op, "query", "cursor").expect("a cursor");
            assert_eq!(cursor["schema"]["maxLength"], 512, "{method} {path}");
        }
    }
    assert!(lists >= 9, "{lists} lists");

    let paths = &spec["paths"];
    let transfer = body_schema(&spec, &paths["/api/v1/transfers"]["post"]);
    assert!(
        transfer["properties"]["amount"]["pattern"].is_string(),
        "{transfer}"
    );
    let order = body_schema(&spec, &paths["/api/v1/orders"]["post"]);
    assert_eq!(order["properties"]["items"]["minItems"], 1, "{order}");
    assert_eq!(order["properties"]["items"]["maxItems"], 100, "{order}");
    let item = component(&spec, &order["properties"]["items"]["items"]);
    assert_eq!(item["properties"]["quantity"]["minimum"], 1, "{item}");
    assert_eq!(item["properties"]["quantity"]["maximum"], 10_000, "{item}");
    let login = body_schema(&spec, &paths["/api/v1/auth/login"]["post"]);
    assert!(
        login["properties"]["identifier"]["pattern"].is_string(),
        "{login}"
    );
    let register = body_schema(&spec, &paths["/api/v1/auth/register"]["post"]);
    assert_eq!(register["properties"]["password"]["minLength"], 8);
    assert_eq!(register["properties"]["password"]["maxLength"], 128);
    assert_eq!(register["properties"]["code"]["pattern"], "^[0-9]{6}$");
    let wishlist = body_schema(&spec, &paths["/api/v1/wishlist"]["post"]);
    assert_eq!(wishlist["properties"]["priority"]["minimum"], 1);
    assert_eq!(wishlist["properties"]["priority"]["maximum"], 5);
    let me = body_schema(&spec, &paths["/api/v1/me"]["patch"]);
    assert_eq!(me["properties"]["name"]["maxLength"], 100, "{me}");
    let currency =
        parameter(&paths["/api/v1/currencies/{code}"]["get"], "path", "code").expect("the code");
    assert_eq!(currency["schema"]["pattern"], "^[A-Z]{3}$");
    // Ids in paths are UUIDs (anything else is a 404).
    let wallet = parameter(&paths["/api/v1/wallets/{id}"]["get"], "path", "id").expect("an id");
    assert_eq!(wallet["schema"]["format"], "uuid");
}
