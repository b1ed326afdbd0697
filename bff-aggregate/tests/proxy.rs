//! The remote-API proxy against a hyper upstream on loopback that records
//! what it receives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bff_aggregate::proxy::{Limits, Proxy, ProxyBody, ProxyError, ProxyUpstreams};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path_and_query: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Upstream {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// What the upstream does by path (under its base `/base`): `/redirect`
    /// answers 302 to `/base/elsewhere`, `/away` 303 to another origin, `/slow` answers after five seconds, `/big` answers 100
    /// bytes; anything else 200 with cookies and a hop-by-hop header.
    async fn route(self, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let path = parts.uri.path().to_owned();
        self.seen.lock().expect("lock").push(Seen {
            method: parts.method.to_string(),
            path_and_query: parts
                .uri
                .path_and_query()
                .map(ToString::to_string)
                .unwrap_or_default(),
            headers: parts.headers,
            body,
        });
        let response = match path.as_str() {
            "/base/redirect" => Response::builder()
                .status(StatusCode::FOUND)
                .header("location", "/base/elsewhere")
                .body(Full::default()),
            "/base/away" => Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header("location", "https://login.example.com/authorize")
                .body(Full::default()),
            "/base/slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Response::builder().body(Full::new(Bytes::from_static(b"late")))
            }
            "/base/big" => Response::builder().body(Full::new(Bytes::from(vec![b'x'; 100]))),
            _ => Response::builder()
                .header("set-cookie", "upstream_session=1; Path=/; HttpOnly")
                .header("set-cookie", "tracker=2")
                .header("connection", "x-upstream-hop")
                .header("x-upstream-hop", "1")
                .header("etag", "\"v1\"")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(b"{\"ok\":true}"))),
        };
        Ok(response.expect("response"))
    }
}

async fn serve() -> (SocketAddr, Upstream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let upstream = Upstream::default();
    let serving = upstream.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let upstream = serving.clone();
            let service = service_fn(move |request| upstream.clone().route(request));
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (addr, upstream)
}

fn proxy_to(addr: SocketAddr, limits: Limits) -> Proxy {
    let upstreams = ProxyUpstreams::parse(&format!("catalog=http://{addr}/base"))
        .expect("table")
        .with_default_limits(limits);
    Proxy::new(upstreams)
}

/// The raw rest of the path after `/bff/api/{name}/`, as an app takes it.
fn rest<B>(request: &Request<B>, name: &str) -> String {
    let prefix = format!("/bff/api/{name}/");
    request
        .uri()
        .path()
        .strip_prefix(&prefix)
        .expect("under the prefix")
        .to_owned()
}

async fn forward<B>(
    proxy: &Proxy,
    name: &str,
    request: Request<B>,
) -> Result<Response<ProxyBody>, ProxyError>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = rest(&request, name);
    proxy
        .forward(name, &path, request, |audience| {
            Ok::<_, Infallible>(format!("minted-for-{audience}"))
        })
        .await
}

async fn text(response: Response<ProxyBody>) -> String {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

#[tokio::test]
async fn the_upstream_sees_the_minted_token_and_only_allow_listed_headers() {
    let (addr, upstream) = serve().await;
    let proxy = proxy_to(addr, Limits::default());
    let request = Request::get("/bff/api/catalog/v1/items/42?q=a%20b&page=2")
        .header("host", "app.test")
        .header("cookie", "__Host-bff=browser-session; other=1")
        .header("authorization", "Bearer the-clients-own")
        .header("x-csrf", "1")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-host", "evil.test")
        .header("forwarded", "for=203.0.113.9")
        .header("connection", "accept-language, x-secret")
        .header("x-secret", "hop")
        .header("accept-language", "fr")
        .header("accept", "application/json")
        .header("x-request-id", "req-proxy-1")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .header("tracestate", "congo=t61rcWkgMzE")
        .header("if-none-match", "\"v0\"")
        .body(Empty::<Bytes>::new())
        .expect("request");

    let response = forward(&proxy, "catalog", request).await.expect("proxied");

    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert!(
        headers.get("set-cookie").is_none(),
        "upstream cookies dropped"
    );
    assert!(headers.get("connection").is_none());
    assert!(
        headers.get("x-upstream-hop").is_none(),
        "connection-listed header dropped"
    );
    assert_eq!(headers["etag"], "\"v1\"");
    assert_eq!(text(response).await, "{\"ok\":true}");

    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path_and_query, "/base/v1/items/42?q=a%20b&page=2");
    let got = |name: &str| {
        seen.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_owned())
    };
    assert_eq!(
        got("authorization").as_deref(),
        Some("Bearer minted-for-catalog")
    );
    assert_eq!(seen.headers.get_all("authorization").iter().count(), 1);
    assert_eq!(
        got("host"),
        Some(addr.to_string()),
        "the upstream's host, not the BFF's"
    );
    assert_eq!(got("accept").as_deref(), Some("application/json"));
    assert_eq!(got("x-request-id").as_deref(), Some("req-proxy-1"));
    assert!(got("traceparent").is_some() && got("tracestate").is_some());
    assert_eq!(got("if-none-match").as_deref(), Some("\"v0\""));
    for absent in [
        "cookie",
        "x-csrf",
        "x-forwarded-for",
        "x-forwarded-host",
        "forwarded",
        "x-secret",
        "accept-language",
    ] {
        assert_eq!(got(absent), None, "{absent} must not reach the upstream");
    }
}

#[tokio::test]
async fn traversal_and_encoded_separators_never_reach_the_upstream() {
    let (addr, upstream) = serve().await;
    let proxy = proxy_to(addr, Limits::default());
    for path in [
        "/bff/api/catalog/../admin",
        "/bff/api/catalog/v1/../../admin",
        "/bff/api/catalog/%2e%2e/admin",
        "/bff/api/catalog/v1/%2E%2e/admin",
        "/bff/api/catalog/./items",
        "/bff/api/catalog/v1/..;/admin",
        "/bff/api/catalog/a%2fb",
        "/bff/api/catalog/a%2Fb",
        "/bff/api/catalog/a%5cb",
        "/bff/api/catalog/a%5C..%5Cadmin",
        "/bff/api/catalog/a%252e%252e/b",
        "/bff/api/catalog//evil.test/x",
        "/bff/api/catalog/a%00b",
    ] {
        let request = Request::get(path)
            .body(Empty::<Bytes>::new())
            .expect("request");
        let rest = rest(&request, "catalog");
        let error = proxy
            .forward(
                "catalog",
                &rest,
                request,
                |_: &str| -> Result<String, Infallible> {
                    panic!("no token is minted for a refused path")
                },
            )
            .await
            .expect_err(path);
        assert!(matches!(error, ProxyError::Path(_)), "{path}: {error:?}");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    // A backslash is not even a valid URI character; an app handing one on
    // is refused all the same.
    let request = Request::get("/x")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let error = proxy
        .forward("catalog", "..\\admin", request, |a: &str| {
            Ok::<_, Infallible>(a.to_owned())
        })
        .await
        .expect_err("backslash");
    assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    assert!(upstream.seen().is_empty(), "{:?}", upstream.seen());
}

#[tokio::test]
async fn an_unknown_upstream_is_404_and_mints_nothing() {
    let (addr, upstream) = serve().await;
    let proxy = proxy_to(addr, Limits::default());
    let request = Request::get("/bff/api/admin/users")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let error = proxy
        .forward(
            "admin",
            "users",
            request,
            |_: &str| -> Result<String, Infallible> {
                panic!("no token is minted for an unknown upstream")
            },
        )
        .await
        .expect_err("unknown");
    assert!(matches!(error, ProxyError::UnknownUpstream));
    assert_eq!(
        (error.status(), error.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn a_redirect_is_passed_back_unfollowed() {
    let (addr, upstream) = serve().await;
    let proxy = proxy_to(addr, Limits::default());
    let request = Request::get("/bff/api/catalog/redirect")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = forward(&proxy, "catalog", request).await.expect("proxied");
    assert_eq!(response.status(), StatusCode::FOUND);
    // Into the upstream: back through the proxy's public path.
    assert_eq!(response.headers()["location"], "/bff/api/catalog/elsewhere");
    let away = Request::get("/bff/api/catalog/away")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = forward(&proxy, "catalog", away).await.expect("proxied");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // Elsewhere: as it is, for the browser to follow without a token.
    assert_eq!(
        response.headers()["location"],
        "https://login.example.com/authorize"
    );
    let paths: Vec<_> = upstream
        .seen()
        .into_iter()
        .map(|s| s.path_and_query)
        .collect();
    assert_eq!(
        paths,
        ["/base/redirect", "/base/away"],
        "no Location was followed"
    );
}

#[tokio::test]
async fn a_slow_upstream_is_504_within_its_timeout() {
    let (addr, _upstream) = serve().await;
    let proxy = proxy_to(addr, Limits::default().timeout(Duration::from_millis(200)));
    let request = Request::get("/bff/api/catalog/slow")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let started = Instant::now();
    let error = forward(&proxy, "catalog", request)
        .await
        .expect_err("timeout");
    let took = started.elapsed();
    assert!(matches!(error, ProxyError::Timeout), "{error:?}");
    assert_eq!(
        (error.status(), error.code()),
        (StatusCode::GATEWAY_TIMEOUT, "gateway_timeout")
    );
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_closed_port_is_502() {
    // A port that was just free: nothing listens on it any more.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let proxy = proxy_to(addr, Limits::default());
    let request = Request::get("/bff/api/catalog/items")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let error = forward(&proxy, "catalog", request)
        .await
        .expect_err("refused");
    assert!(matches!(error, ProxyError::Unreachable(_)), "{error:?}");
    assert_eq!(
        (error.status(), error.code()),
        (StatusCode::BAD_GATEWAY, "bad_gateway")
    );
    assert!(
        !error.to_string().contains("127.0.0.1"),
        "the detail names no address"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_never_sent() {
    let (addr, upstream) = serve().await;
    let proxy = proxy_to(addr, Limits::default().request_body(16));

    // Declared too large.
    let request = Request::post("/bff/api/catalog/items")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(vec![b'a'; 17])))
        .expect("request");
    let error = forward(&proxy, "catalog", request)
        .await
        .expect_err("too large");
    assert!(
        matches!(error, ProxyError::RequestTooLarge { limit: 16 }),
        "{error:?}"
    );
    assert_eq!(error.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Streamed without a length, too large once read.
    let chunks = futures_util::stream::iter(
        [&b"0123456789"[..], b"0123456789"]
            .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::from_static(c)))),
    );
    let request = Request::post("/bff/api/catalog/items")
        .body(StreamBody::new(chunks))
        .expect("request");
    let error = forward(&proxy, "catalog", request)
        .await
        .expect_err("too large");
    assert!(
        matches!(error, ProxyError::RequestTooLarge { .. }),
        "{error:?}"
    );
    assert!(upstream.seen().is_empty());

    // At the limit, it goes through whole.
    let request = Request::put("/bff/api/catalog/items/1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"name\":\"tea\"}  ")))
        .expect("request");
    let response = forward(&proxy, "catalog", request).await.expect("proxied");
    assert_eq!(response.status(), StatusCode::OK);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), &seen[0].body[..]),
        ("PUT", &b"{\"name\":\"tea\"}  "[..])
    );
    assert_eq!(seen[0].headers["content-type"], "application/json");
}

#[tokio::test]
async fn a_response_declared_over_its_limit_is_502() {
    let (addr, _upstream) = serve().await;
    let proxy = proxy_to(addr, Limits::default().response_body(Some(10)));
    let request = Request::get("/bff/api/catalog/big")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let error = forward(&proxy, "catalog", request)
        .await
        .expect_err("too large");
    assert!(
        matches!(error, ProxyError::ResponseTooLarge { limit: 10 }),
        "{error:?}"
    );
    assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn trace_and_connect_are_not_proxied_and_a_failed_token_is_500() {
    let (addr, upstream) = serve().await;
    let proxy = proxy_to(addr, Limits::default());
    let request = Request::builder()
        .method("TRACE")
        .uri("/bff/api/catalog/items")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let error = forward(&proxy, "catalog", request)
        .await
        .expect_err("trace");
    assert_eq!(error.status(), StatusCode::METHOD_NOT_ALLOWED);

    let request = Request::get("/bff/api/catalog/items")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let error = proxy
        .forward("catalog", "items", request, |_: &str| {
            Err::<String, _>("signing key unavailable")
        })
        .await
        .expect_err("no token");
    assert!(matches!(error, ProxyError::Token(_)));
    assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);

    let request = Request::get("/bff/api/catalog/items")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let error = proxy
        .forward("catalog", "items", request, |_: &str| {
            Ok::<_, Infallible>("bad\r\ntoken")
        })
        .await
        .expect_err("not a header value");
    assert!(matches!(error, ProxyError::Token(_)));
    assert!(upstream.seen().is_empty());
}
