//! `http::Backend`, the pooled HTTP/1.1 client, against servers on loopback.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bff_aggregate::http::{Backend, PooledBody};
use bff_aggregate::{Aggregate, Call, ErrorKind, Forward, Source};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// By path: `/echo` answers the host, request id and authorization headers
/// and the request's body, `/status/N` answers status N with no body,
/// `/slow` answers after five seconds, `/big` answers 64 KiB.
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
        let line = format!(
            "{}|{}|{}|{}|",
            request.uri(),
            header("host"),
            header("x-request-id"),
            header("authorization")
        );
        let sent = request.into_body().collect().await.map(|b| b.to_bytes());
        let sent = String::from_utf8_lossy(&sent.unwrap_or_default()).into_owned();
        (StatusCode::OK, line + &sent)
    } else if let Some(code) = path.strip_prefix("/status/") {
        let status = code.parse().ok().and_then(|c| StatusCode::from_u16(c).ok());
        (status.unwrap_or(StatusCode::BAD_REQUEST), String::new())
    } else if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(5)).await;
        (StatusCode::OK, "late".to_owned())
    } else if path == "/big" {
        (StatusCode::OK, "x".repeat(64 * 1024))
    } else {
        (StatusCode::NOT_FOUND, String::new())
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    Ok(response)
}

/// A hyper server; the counter counts the connections it accepted.
async fn serve() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(
                http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(route)),
            );
        }
    });
    (addr, accepted)
}

fn backend(addr: SocketAddr) -> Backend {
    Backend::new(&format!("http://{addr}")).expect("origin")
}

fn forward() -> Forward {
    Forward::new()
        .with_request_id(HeaderValue::from_static("req-backend-1"))
        .with_authorization(HeaderValue::from_static("Bearer b4ck"))
}

fn call() -> Call {
    Call::within(Duration::from_secs(2))
}

fn get(path: &str) -> Request<Bytes> {
    Request::get(path).body(Bytes::new()).expect("request")
}

async fn text(response: Response<PooledBody>) -> String {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

#[tokio::test]
async fn a_path_goes_out_in_origin_form_with_host_and_forwarded_headers() {
    let (addr, _) = serve().await;
    let backend = backend(addr);
    let response = backend
        .send(get("/echo?x=1"), &forward(), &call())
        .await
        .expect("200");
    assert_eq!(
        text(response).await,
        format!("/echo?x=1|{addr}|req-backend-1|Bearer b4ck|")
    );

    // An absolute URI of the same origin is sent in origin form too, and a
    // body and the caller's own headers go as given.
    let mut request = Request::post(format!("http://{addr}/echo"))
        .body(Bytes::from_static(b"payload"))
        .expect("request");
    request
        .headers_mut()
        .insert("authorization", HeaderValue::from_static("Bearer minted"));
    let response = backend
        .send(request, &forward(), &call())
        .await
        .expect("200");
    assert_eq!(
        text(response).await,
        format!("/echo|{addr}|req-backend-1|Bearer minted|payload")
    );
}

#[tokio::test]
async fn connections_are_reused_once_a_body_is_read() {
    let (addr, accepted) = serve().await;
    let backend = backend(addr);
    for _ in 0..5 {
        let response = backend
            .send(get("/big"), &forward(), &call())
            .await
            .expect("200");
        assert_eq!(text(response).await.len(), 64 * 1024);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection, reused");
    assert_eq!(backend.idle_connections(), 1);

    // An empty answer frees its connection even if its body is never polled.
    let response = backend
        .send(get("/status/204"), &forward(), &call())
        .await
        .expect("204");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    drop(response);
    assert_eq!(backend.idle_connections(), 1);

    // Concurrent calls open more connections, all kept afterwards.
    let calls = (0..4).map(|_| {
        let backend = backend.clone();
        async move {
            let response = backend.send(get("/echo"), &forward(), &call()).await?;
            Ok::<_, bff_aggregate::SourceError>(text(response).await)
        }
    });
    for answer in futures_util::future::join_all(calls).await {
        answer.expect("200");
    }
    assert!(backend.idle_connections() >= 2);

    // A body dropped unread closes its connection rather than pooling a dirty one.
    let before = backend.idle_connections();
    let response = backend
        .send(get("/big"), &forward(), &call())
        .await
        .expect("200");
    drop(response);
    assert_eq!(backend.idle_connections(), before - 1);
}

#[tokio::test]
async fn bodies_larger_than_the_sockets_buffers_go_both_ways() {
    // The connection has no task of its own: the caller's polls of the
    // response, then of the body, move the bytes. 4 MiB each way is far more
    // than loopback's socket buffers, so this stalls if any poll is missed.
    let (addr, accepted) = serve().await;
    let backend = backend(addr);
    let payload = Bytes::from(vec![b'p'; 4 << 20]);
    for _ in 0..2 {
        let request = Request::post("/echo")
            .body(payload.clone())
            .expect("request");
        let response = backend
            .send(request, &forward(), &call())
            .await
            .expect("200");
        // The body read in another task than the one that sent the request.
        let read = tokio::time::timeout(Duration::from_secs(10), text(response));
        let echoed = tokio::spawn(read)
            .await
            .expect("task")
            .expect("the body within 10 s");
        assert!(echoed.ends_with(&"p".repeat(1024)));
        assert_eq!(
            echoed.len(),
            format!("/echo|{addr}|req-backend-1|Bearer b4ck|").len() + payload.len()
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection, reused");
}

#[tokio::test]
async fn statuses_map_to_kinds() {
    let (addr, _) = serve().await;
    let backend = backend(addr);
    for (code, kind) in [
        (503, ErrorKind::Transient),
        (500, ErrorKind::Transient),
        (429, ErrorKind::Transient),
        (404, ErrorKind::Permanent),
        (400, ErrorKind::Permanent),
    ] {
        let error = backend
            .send(get(&format!("/status/{code}")), &forward(), &call())
            .await
            .expect_err("an error status");
        assert_eq!(error.kind(), kind, "{code}: {error}");
        assert!(error.to_string().starts_with(&format!("HTTP {code}")));
    }
    let moved = backend
        .send(get("/status/304"), &forward(), &call())
        .await
        .expect("3xx is an answer");
    assert_eq!(moved.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn a_closed_port_is_transient_and_a_slow_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let closed = listener.local_addr().expect("addr");
    drop(listener);
    let error = backend(closed)
        .send(get("/echo"), &forward(), &call())
        .await
        .expect_err("nothing listens");
    assert_eq!(error.kind(), ErrorKind::Transient);
    assert!(!error.is_timeout());

    let (addr, _) = serve().await;
    let started = std::time::Instant::now();
    let error = backend(addr)
        .send(
            get("/slow"),
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

/// A raw HTTP/1.1 server that answers each connection's first request with a
/// keep-alive response and then closes the connection quietly, as a backend
/// whose keep-alive timeout is shorter than the client's does.
async fn serve_closing_after_one() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn a_connection_the_backend_closed_while_idle_is_replaced_and_nothing_is_lost() {
    let (addr, accepted) = serve_closing_after_one().await;
    let backend = backend(addr);
    for round in 0..3 {
        let response = backend
            .send(get("/"), &forward(), &call())
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(text(response).await, "ok");
        // The server closes its end while the connection sits in the pool.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn other_origins_and_bad_origins_are_refused() {
    let (addr, accepted) = serve().await;
    let backend = backend(addr);
    let request = Request::get("http://127.0.0.2:1/echo")
        .body(Bytes::new())
        .expect("request");
    let error = backend
        .send(request, &forward(), &call())
        .await
        .expect_err("another origin");
    assert_eq!(error.kind(), ErrorKind::Permanent);
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing was sent");

    for origin in [
        "https://127.0.0.1:8443",
        "http://127.0.0.1:8080/api",
        "http://user@127.0.0.1:8080",
        "127.0.0.1:8080",
        "",
    ] {
        assert!(Backend::new(origin).is_err(), "{origin:?}");
    }
    assert!(Backend::new("http://localhost:8080/").is_ok());
    assert!(Backend::new("http://[::1]:8080").is_ok());
}

#[tokio::test]
async fn in_an_aggregate() {
    let (addr, accepted) = serve().await;
    let backend = backend(addr);
    let forward = forward();
    let source = |name, path: &'static str| {
        let (backend, forward) = (backend.clone(), forward.clone());
        Source::required(name, Duration::from_secs(1), move |call| {
            let (backend, forward) = (backend.clone(), forward.clone());
            async move {
                let response = backend.send(get(path), &forward, &call).await?;
                Ok(text(response).await)
            }
        })
    };
    for _ in 0..3 {
        let assembled = Aggregate::new(Duration::from_secs(1))
            .run((source("a", "/echo"), source("b", "/big")))
            .await
            .expect("both answer");
        let (a, b) = assembled.parts;
        assert!(a.starts_with("/echo|"));
        assert_eq!(b.len(), 64 * 1024);
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "two at once, then reused"
    );
}
