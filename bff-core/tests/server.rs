//! The server's bounds, seen from raw sockets: slow headers and idle
//! connections are closed, connections past the limit wait, and bad request
//! heads get problem+json.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use bff_core::server::{ServerConfig, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(configure: impl FnOnce(&mut ServerConfig)) -> Running {
    let app = Router::new().route(
        "/",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut config = ServerConfig::default().with_grace(Duration::from_millis(200));
    configure(&mut config);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(
        listener,
        app,
        async move {
            let _ = stopped.await;
        },
        config,
    ));
    Running {
        addr,
        stop: Some(stop),
    }
}

/// Reads until the server closes the connection or `wait` passes; returns
/// what was read and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> (String, bool) {
    let mut seen = Vec::new();
    let mut buffer = [0_u8; 4096];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&seen).into_owned(), true),
            Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
            Err(_) => return (String::from_utf8_lossy(&seen).into_owned(), false),
        }
    }
}

/// Sends `head` and reads the first response (the server closes after it, or
/// it is read until a pause).
async fn exchange(addr: SocketAddr, head: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write");
    read_until_closed(&mut stream, Duration::from_millis(500))
        .await
        .0
}

fn status_of(response: &str) -> &str {
    response.split(' ').nth(1).unwrap_or("")
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let server = start(|c| c.header_read_timeout = Duration::from_millis(300)).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
    assert!(closed, "still open after 3 s");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let server = start(|c| {
        c.header_read_timeout = Duration::from_secs(30);
        c.idle_timeout = Duration::from_millis(300);
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("127.0.0.1"), "{response}");
    assert!(closed, "still open after 3 s");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn connections_past_the_limit_wait_for_a_free_one() {
    let server = start(|c| c.max_connections = 2).await;
    let first = TcpStream::connect(server.addr).await.expect("connect");
    let _second = TcpStream::connect(server.addr).await.expect("connect");
    // The third is queued in the backlog: connected, but not served.
    let mut third = TcpStream::connect(server.addr).await.expect("connect");
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let (response, _) = read_until_closed(&mut third, Duration::from_millis(400)).await;
    assert_eq!(response, "", "served past the limit");
    drop(first);
    let (response, closed) = read_until_closed(&mut third, Duration::from_secs(3)).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(closed);
}

#[tokio::test]
async fn requests_without_exactly_one_host_are_400_problems() {
    let server = start(|_| {}).await;
    for head in [
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
    ] {
        let response = exchange(server.addr, head).await;
        assert_eq!(status_of(&response), "400", "{head:?}: {response}");
        let lower = response.to_ascii_lowercase();
        assert!(
            lower.contains("content-type: application/problem+json"),
            "{response}"
        );
        assert!(lower.contains("x-request-id: "), "{response}");
        assert!(response.contains(r#""code":"bad_request""#), "{response}");
        assert!(response.contains(r#""request_id":""#), "{response}");
    }
    // HTTP/1.0 may leave the host out.
    let response = exchange(server.addr, "GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(status_of(&response), "200", "{response}");
}

#[tokio::test]
async fn oversized_heads_are_414_and_431_problems_with_the_callers_request_id() {
    let server = start(|_| {}).await;
    let long_target = format!(
        "GET /?q={} HTTP/1.1\r\nHost: x\r\nX-Request-Id: caller-1\r\n\r\n",
        "a".repeat(9000)
    );
    let response = exchange(server.addr, &long_target).await;
    assert_eq!(status_of(&response), "414", "{response}");
    assert!(response.contains(r#""code":"uri_too_long""#), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("x-request-id: caller-1"),
        "{response}"
    );
    assert!(
        response.contains(r#""request_id":"caller-1""#),
        "{response}"
    );

    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
        "c".repeat(40 * 1024)
    );
    let response = exchange(server.addr, &big_header).await;
    assert_eq!(status_of(&response), "431", "{response}");
    assert!(
        response.contains(r#""code":"headers_too_large""#),
        "{response}"
    );

    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let response = exchange(
        server.addr,
        &format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n"),
    )
    .await;
    assert_eq!(status_of(&response), "431", "{response}");
}
