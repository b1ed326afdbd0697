//! The rate-limit layer in front of a router, on tokio's paused clock.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use bff_cache::ratelimit::{
    ClientIp, MemoryBackend, MissingKey, Policy, Quota, RateLimitLayer, from_fn,
};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

fn app() -> Router {
    let limit = RateLimitLayer::new(MemoryBackend::default().with_tokio_clock())
        .policy(Policy::new(
            "per_ip",
            Quota::per_second(2).with_burst(3),
            ClientIp::new(),
        ))
        .policy(
            Policy::new(
                "per_user",
                Quota::per_minute(100),
                from_fn(|r| {
                    r.headers
                        .get("x-user")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                }),
            )
            // Requests without `x-user` pass this policy.
            .on_missing_key(MissingKey::Skip),
        );
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(limit)
}

fn request(ip: &str, user: Option<&str>) -> Request<Body> {
    let mut builder = Request::get("/");
    if let Some(user) = user {
        builder = builder.header("x-user", user);
    }
    let mut request = builder.body(Body::empty()).expect("request");
    let addr: SocketAddr = format!("{ip}:5000").parse().expect("addr");
    request.extensions_mut().insert(ConnectInfo(addr));
    request
}

fn header(response: &http::Response<Body>, name: &str) -> String {
    response.headers()[name].to_str().expect("ascii").to_owned()
}

#[tokio::test(start_paused = true)]
async fn burst_exact_accounting_and_refill() {
    let app = app();
    for remaining in [2, 1, 0] {
        let response = app
            .clone()
            .oneshot(request("203.0.113.1", None))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "ratelimit-policy"), "\"per_ip\";q=3;w=1");
        assert!(
            header(&response, "ratelimit").starts_with(&format!("\"per_ip\";r={remaining};t="))
        );
    }
    let refused = app
        .clone()
        .oneshot(request("203.0.113.1", None))
        .await
        .expect("infallible");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "retry-after"), "1");
    assert_eq!(header(&refused, "content-type"), "application/problem+json");
    assert_eq!(header(&refused, "ratelimit"), "\"per_ip\";r=0;t=2");
    let body = refused
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let problem: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(problem["code"], "rate_limited");

    // Another client is not affected.
    let other = app
        .clone()
        .oneshot(request("203.0.113.2", None))
        .await
        .expect("infallible");
    assert_eq!(other.status(), StatusCode::OK);

    // Half a second refills exactly one token.
    tokio::time::advance(Duration::from_millis(499)).await;
    let early = app
        .clone()
        .oneshot(request("203.0.113.1", None))
        .await
        .expect("infallible");
    assert_eq!(early.status(), StatusCode::TOO_MANY_REQUESTS);
    tokio::time::advance(Duration::from_millis(1)).await;
    let refilled = app
        .clone()
        .oneshot(request("203.0.113.1", None))
        .await
        .expect("infallible");
    assert_eq!(refilled.status(), StatusCode::OK);
    let again = app
        .clone()
        .oneshot(request("203.0.113.1", None))
        .await
        .expect("infallible");
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(start_paused = true)]
async fn every_applicable_policy_is_reported() {
    let app = app();
    let response = app
        .clone()
        .oneshot(request("198.51.100.7", Some("ada")))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "ratelimit-policy"),
        "\"per_ip\";q=3;w=1, \"per_user\";q=100;w=60"
    );
    let state = header(&response, "ratelimit");
    assert!(
        state.contains("\"per_ip\";r=2;") && state.contains("\"per_user\";r=99;"),
        "{state}"
    );
}

/// The limiter on a bare tower service with `http_body_util::Full` bodies both
/// ways (no axum), keyed by a header; gRPC callers are refused with
/// `RESOURCE_EXHAUSTED`.
#[tokio::test(start_paused = true)]
async fn works_on_any_body_and_speaks_grpc_to_grpc_callers() {
    use bff_cache::ratelimit::ResponseBody;
    use bytes::Bytes;
    use http_body_util::Full;
    use tower::ServiceBuilder;

    let service = ServiceBuilder::new()
        .layer(
            RateLimitLayer::new(MemoryBackend::default().with_tokio_clock()).policy(Policy::new(
                "per_client",
                Quota::per_minute(2),
                from_fn(|r| {
                    r.headers
                        .get("x-client")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                }),
            )),
        )
        .service_fn(|_request: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from_static(
                b"ok",
            ))))
        });
    let send = |content_type: &'static str| {
        let service = service.clone();
        async move {
            let request = Request::post("/orders.v1.Orders/ListOrders")
                .header("x-client", "c1")
                .header("content-type", content_type)
                .body(Full::new(Bytes::new()))
                .expect("request");
            let response: http::Response<ResponseBody<Full<Bytes>>> =
                service.oneshot(request).await.expect("infallible");
            response
        }
    };
    let allowed = send("application/json").await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(allowed.headers()["ratelimit"], "\"per_client\";r=1;t=30");
    let body = allowed
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], b"ok");
    assert_eq!(send("application/grpc").await.status(), StatusCode::OK);

    let refused = send("application/json").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let refused = send("application/grpc").await;
    assert_eq!(refused.status(), StatusCode::OK);
    assert_eq!(refused.headers()["grpc-status"], "8", "RESOURCE_EXHAUSTED");
    assert!(refused.headers().contains_key("retry-after"));
}

/// One plain HTTP/1.1 GET to `addr`: the status code and the body.
async fn get_raw(addr: SocketAddr) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status");
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

fn per_ip_two_per_second(missing: Option<MissingKey>) -> Router {
    let mut policy = Policy::new("per_ip", Quota::per_second(2), ClientIp::new());
    if let Some(missing) = missing {
        policy = policy.on_missing_key(missing);
    }
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(RateLimitLayer::new(MemoryBackend::default()).policy(policy))
}

/// The mistake of the issue that asked for this: `ClientIp` behind a plain
/// `axum::serve(listener, app)`, which gives handlers no peer address.
#[tokio::test]
async fn served_without_connect_info_a_client_ip_limit_refuses_instead_of_letting_all_through() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, per_ip_two_per_second(None)).await });
    for _ in 0..3 {
        let (status, body) = get_raw(addr).await;
        assert_eq!(status, 500);
        assert!(
            body.contains("\"code\":\"rate_limit_unavailable\""),
            "{body}"
        );
    }
}

#[tokio::test]
async fn served_with_connect_info_the_same_limit_counts_each_client() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = per_ip_two_per_second(None).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(get_raw(addr).await.0);
    }
    assert_eq!(statuses[..2], [200, 200]);
    assert!(statuses[2..].contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn a_policy_that_skips_requests_without_a_key_lets_them_through_uncounted() {
    let app = per_ip_two_per_second(Some(MissingKey::Skip));
    for _ in 0..5 {
        let response = app
            .clone()
            .oneshot(Request::get("/").body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get("ratelimit").is_none());
    }
    // And the default refuses the same request, as problem+json.
    let refused = per_ip_two_per_second(None)
        .oneshot(Request::get("/").body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(refused.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(header(&refused, "content-type"), "application/problem+json");
}
