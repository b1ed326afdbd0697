//! HTTP sources against a hyper server on loopback.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bff_aggregate::{Aggregate, Call, ErrorKind, Forward, Source, SourceError, Status, http::send};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// What the test server does by path: `/echo` answers the forwarded headers,
/// `/status/N` answers status N, `/slow` answers after five seconds.
async fn route(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let (status, body) = if path == "/echo" {
        (
            StatusCode::OK,
            format!("{}|{}", header("x-request-id"), header("authorization")),
        )
    } else if let Some(code) = path.strip_prefix("/status/") {
        let status = code.parse().ok().and_then(|c| StatusCode::from_u16(c).ok());
        (status.unwrap_or(StatusCode::BAD_REQUEST), String::new())
    } else if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(5)).await;
        (StatusCode::OK, "late".to_owned())
    } else {
        (StatusCode::NOT_FOUND, String::new())
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    Ok(response)
}

async fn serve() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(
                http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(route)),
            );
        }
    });
    addr
}

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn forward() -> Forward {
    Forward::new()
        .with_request_id(HeaderValue::from_static("req-http-1"))
        .with_authorization(HeaderValue::from_static("Bearer h77p"))
}

fn get(addr: SocketAddr, path: &str) -> Request<Empty<Bytes>> {
    Request::get(format!("http://{addr}{path}"))
        .body(Empty::new())
        .expect("request")
}

async fn body(response: Response<Incoming>) -> String {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

#[tokio::test]
async fn forwarded_headers_arrive() {
    let addr = serve().await;
    let response = send(
        &client(),
        get(addr, "/echo"),
        &forward(),
        &Call::within(Duration::from_secs(2)),
    )
    .await
    .expect("200");
    assert_eq!(body(response).await, "req-http-1|Bearer h77p");
}

#[tokio::test]
async fn headers_the_caller_set_are_kept() {
    let addr = serve().await;
    let mut request = get(addr, "/echo");
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_static("Bearer service-token"),
    );
    let response = send(
        &client(),
        request,
        &forward(),
        &Call::within(Duration::from_secs(2)),
    )
    .await
    .expect("200");
    assert_eq!(body(response).await, "req-http-1|Bearer service-token");
}

#[tokio::test]
async fn statuses_map_to_kinds() {
    let addr = serve().await;
    let client = client();
    let call = Call::within(Duration::from_secs(2));
    for (code, kind) in [
        (503, ErrorKind::Transient),
        (500, ErrorKind::Transient),
        (429, ErrorKind::Transient),
        (404, ErrorKind::Permanent),
        (400, ErrorKind::Permanent),
    ] {
        let error = send(
            &client,
            get(addr, &format!("/status/{code}")),
            &forward(),
            &call,
        )
        .await
        .expect_err("an error status");
        assert_eq!(error.kind(), kind, "{code}: {error}");
        assert!(error.to_string().starts_with(&format!("HTTP {code}")));
    }
    let moved = send(&client, get(addr, "/status/304"), &forward(), &call)
        .await
        .expect("3xx is an answer");
    assert_eq!(moved.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn a_closed_port_is_transient() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);

    let error = send(
        &client(),
        get(addr, "/echo"),
        &forward(),
        &Call::within(Duration::from_secs(2)),
    )
    .await
    .expect_err("nothing listens");
    assert_eq!(error.kind(), ErrorKind::Transient);
    assert!(!error.is_timeout());
}

#[tokio::test]
async fn a_slow_server_times_out_at_the_deadline() {
    let addr = serve().await;
    let started = std::time::Instant::now();
    let error = send(
        &client(),
        get(addr, "/slow"),
        &forward(),
        &Call::within(Duration::from_millis(200)),
    )
    .await
    .expect_err("too slow");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert!(error.is_timeout() && error.is_transient());
}

#[tokio::test]
async fn in_an_aggregate() {
    let addr = serve().await;
    let client = client();
    let forward = forward();
    let source = |name, path: &'static str, deadline| {
        let (client, forward) = (client.clone(), forward.clone());
        Source::optional(name, deadline, move |call| {
            let (client, forward) = (client.clone(), forward.clone());
            async move {
                let response = send(&client, get(addr, path), &forward, &call).await?;
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(SourceError::transient)?
                    .to_bytes();
                Ok(bytes)
            }
        })
    };
    let started = std::time::Instant::now();
    let assembled = Aggregate::new(Duration::from_secs(1))
        .run((
            source("echo", "/echo", Duration::from_secs(1)),
            source("slow", "/slow", Duration::from_millis(200)),
            source("down", "/status/503", Duration::from_secs(1)),
        ))
        .await
        .expect("all optional");

    assert!(started.elapsed() < Duration::from_secs(1));
    let (echo, slow, down) = assembled.parts;
    assert_eq!(echo.as_deref(), Some(&b"req-http-1|Bearer h77p"[..]));
    assert_eq!((slow, down), (None, None));
    let status = |name: &str| assembled.meta.sources[name].status;
    assert_eq!(status("echo"), Status::Ok);
    assert_eq!(status("slow"), Status::Timeout);
    assert_eq!(status("down"), Status::Error);
}
