use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::TestApp;

#[tokio::test]
async fn metrics_are_labelled_by_route_template() {
    let app = TestApp::spawn().await;
    for code in ["EUR", "USD", "JPY"] {
        assert_eq!(
            app.get(&format!("/api/v1/currencies/{code}"))
                .await
                .status(),
            200
        );
    }
    assert_eq!(app.get("/api/v1/currencies/ZZZ").await.status(), 404);
    assert_eq!(app.get("/no/such/route/12345").await.status(), 404);
    let invented = reqwest::Method::from_bytes(b"BREW").expect("method");
    assert_eq!(
        app.client
            .request(invented, app.url("/api/v1/currencies"))
            .send()
            .await
            .expect("sent")
            .status(),
        405
    );

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|c| c.starts_with("text/plain"))
    );
    let text = response.text().await.expect("text");
    // The metrics registry is per process and tests run in parallel, so counts can
    // only be asserted from below; labels exactly.
    let count = |needle: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(
        count(
            r#"http_server_requests_total{method="GET",route="/api/v1/currencies/{code}",status="200"}"#
        ) >= 3.0,
        "{text}"
    );
    assert!(
        count(
            r#"http_server_requests_total{method="GET",route="/api/v1/currencies/{code}",status="404"}"#
        ) >= 1.0,
        "{text}"
    );
    assert!(
        count(r#"http_server_requests_total{method="GET",route="unmatched",status="404"}"#) >= 1.0,
        "{text}"
    );
    assert!(text.contains(r#"http_server_request_duration_seconds_bucket{method="GET",route="/api/v1/currencies/{code}",status="200",le="0.005"}"#), "{text}");
    assert!(text.contains("http_server_requests_in_flight"), "{text}");
    // Invented methods share one label value, so clients cannot grow the label set.
    assert!(text.contains(r#"method="_OTHER""#), "{text}");
    assert!(!text.contains("BREW"), "{text}");
    assert!(
        !text.contains(r#"route="/api/v1/currencies/EUR""#),
        "raw paths never become labels"
    );
    assert!(
        !text.contains(r#"route="/no/such"#),
        "raw paths never become labels"
    );
}

/// Every route the app serves, as OpenAPI paths.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/.well-known/jwks.json"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("post", "/api/v1/auth/logout-all"),
    ("get", "/api/v1/auth/sessions"),
    ("delete", "/api/v1/auth/sessions/{id}"),
    ("post", "/api/v1/auth/update-password"),
    ("post", "/api/v1/auth/verify-code"),
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/reset-password"),
    ("post", "/api/v1/auth/confirm-reset-password"),
    ("get", "/api/v1/me"),
    ("patch", "/api/v1/me"),
    ("get", "/api/v1/admin/users"),
    ("get", "/api/v1/admin/users/{id}"),
    ("put", "/api/v1/admin/users/{id}/role"),
    ("post", "/api/v1/admin/users/{id}/block"),
    ("post", "/api/v1/admin/users/{id}/unblock"),
    ("post", "/api/v1/admin/users/{id}/unlock-login"),
    ("get", "/api/v1/admin/audit-log"),
    ("get", "/api/v1/addresses"),
    ("post", "/api/v1/addresses"),
    ("get", "/api/v1/addresses/{id}"),
    ("patch", "/api/v1/addresses/{id}"),
    ("delete", "/api/v1/addresses/{id}"),
    ("post", "/api/v1/addresses/{id}/restore"),
    ("get", "/api/v1/admin/users/{id}/addresses"),
    ("get", "/api/v1/wishlist"),
    ("post", "/api/v1/wishlist"),
    ("get", "/api/v1/wishlist/{id}"),
    ("patch", "/api/v1/wishlist/{id}"),
    ("delete", "/api/v1/wishlist/{id}"),
    ("post", "/api/v1/wishlist/{id}/restore"),
    ("get", "/api/v1/admin/users/{id}/wishlist"),
    ("get", "/api/v1/wallets"),
    ("post", "/api/v1/wallets"),
    ("get", "/api/v1/wallets/{id}"),
    ("get", "/api/v1/wallets/{id}/transactions"),
    ("post", "/api/v1/transfers"),
    ("post", "/api/v1/admin/wallets/{id}/deposit"),
    ("get", "/api/v1/orders"),
    ("post", "/api/v1/orders"),
    ("get", "/api/v1/orders/{id}"),
    ("post", "/api/v1/orders/{id}/cancel"),
    ("get", "/api/v1/dashboard"),
    ("get", "/api/v1/auth/oauth/{provider}/start"),
    ("get", "/api/v1/auth/oauth/{provider}/callback"),
    ("post", "/api/v1/auth/oauth/exchange"),
    ("get", "/api/v1/me/identities"),
    ("post", "/api/v1/me/identities/{provider}"),
    ("delete", "/api/v1/me/identities/{provider}"),
    ("post", "/bff/login"),
    ("get", "/bff/login/{provider}"),
    ("get", "/bff/user"),
    ("post", "/bff/logout"),
    ("post", "/bff/logout-all"),
    ("get", "/bff/api/{name}/{path}"),
    ("post", "/bff/api/{name}/{path}"),
    ("put", "/bff/api/{name}/{path}"),
    ("patch", "/bff/api/{name}/{path}"),
    ("delete", "/bff/api/{name}/{path}"),
    ("get", "/api/v1/currencies"),
    ("get", "/api/v1/currencies/{code}"),
    ("get", "/healthz/live"),
    ("get", "/healthz/ready"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
    ("get", "/docs/{asset}"),
];

#[tokio::test]
async fn the_openapi_document_lists_every_route_with_its_responses() {
    let app = TestApp::spawn().await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    let spec: Value = response.json().await.expect("json");
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        spec["openapi"]
    );

    let paths = spec["paths"].as_object().expect("paths");
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flatten()
                .map(move |(method, _)| (method.clone(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, expected);

    for (method, path) in ROUTES {
        let operation = &spec["paths"][path][method];
        let responses = operation["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} has responses"));
        assert!(
            // A redirect is the success of the social-login start and callback.
            responses
                .keys()
                .any(|k| k.starts_with('2') || k.starts_with('3')),
            "{method} {path} documents its success: {responses:?}"
        );
        let problem = responses
            .get("default")
            .and_then(|r| r["content"].get("application/problem+json"))
            .unwrap_or_else(|| {
                panic!("{method} {path} documents its errors as problems: {responses:?}")
            });
        assert!(
            problem["schema"]["$ref"]
                .as_str()
                .is_some_and(|r| r.ends_with("/Problem")),
            "{problem}"
        );

        // Every `{name}` in the path is a documented path parameter.
        for name in path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split('}').next())
        {
            let documented = operation["parameters"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["in"] == "path" && p["name"] == name && p["required"] == true)
            });
            assert!(
                documented,
                "{method} {path} documents its path parameter {name}: {operation}"
            );
        }
    }
    // The Problem schema itself carries the contract's members.
    let problem = &spec["components"]["schemas"]["Problem"]["properties"];
    for member in [
        "type",
        "title",
        "status",
        "detail",
        "code",
        "request_id",
        "errors",
    ] {
        assert!(problem.get(member).is_some(), "Problem.{member}");
    }
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_app_itself() {
    let app = TestApp::spawn().await;
    let response = app.get("/docs").await;
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let html = response.text().await.expect("html");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no outside references: {html}"
    );

    // Every asset the page references loads from the app.
    let references: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.starts_with("/docs/") || s.starts_with("/openapi"))
        .collect();
    assert!(references.len() >= 4, "{references:?}");
    for reference in references {
        let asset = app.get(reference).await;
        assert_eq!(asset.status(), 200, "{reference}");
        assert!(
            !asset.bytes().await.expect("bytes").is_empty(),
            "{reference}"
        );
    }
    assert_eq!(app.get("/docs/not-an-asset.js").await.status(), 404);
}

#[tokio::test]
async fn metrics_can_live_on_a_listener_of_their_own() {
    let app = TestApp::spawn_with(|c| {
        c.http.metrics_addr = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    assert_eq!(app.get("/api/v1/currencies").await.status(), 200);
    // Not on the API's listener, nor in its OpenAPI document...
    assert_eq!(app.get("/metrics").await.status(), 404);
    let document: Value = app.get("/openapi.json").await.json().await.expect("json");
    assert!(document["paths"].get("/metrics").is_none());
    // ...but on its own, and only there.
    let metrics = app.metrics_address.clone().expect("a metrics listener");
    let response = app
        .client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .expect("text")
            .contains("http_server_requests_total")
    );
    let api = app
        .client
        .get(format!("{metrics}/api/v1/currencies"))
        .send()
        .await
        .expect("sent");
    assert_eq!(api.status(), 404);
}
