//! Graceful shutdown, tested with a real SIGTERM sent to a real process.
//!
//! The signal test re-runs this test binary as a child process that serves a slow
//! route; the parent starts a request, sends the child SIGTERM, and checks that
//! the request still completes and that the child exits cleanly afterwards.
#![allow(
    clippy::print_stdout,
    reason = "the child process reports its port and progress on stdout"
)]

use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bff_core::server::{ServerConfig, serve, shutdown_signal};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

const CHILD_ENV: &str = "BFF_CORE_SHUTDOWN_TEST_CHILD";
const SLOW: Duration = Duration::from_millis(1500);

fn slow_app() -> Router {
    Router::new().route(
        "/slow",
        get(|| async {
            announce("SLOW_STARTED");
            tokio::time::sleep(SLOW).await;
            "finished"
        }),
    )
}

fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn child_server() {
    // Handlers first, then the port: the parent signals as soon as it knows the port.
    let shutdown = shutdown_signal();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    announce(&format!(
        "PORT={}",
        listener.local_addr().expect("addr").port()
    ));
    serve(
        listener,
        slow_app(),
        shutdown,
        ServerConfig::default().with_grace(Duration::from_secs(10)),
    )
    .await
    .expect("serve");
    announce("STOPPED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_in_flight_request_finish() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_server().await;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = tokio::process::Command::new(exe)
        .args([
            "--exact",
            "sigterm_lets_the_in_flight_request_finish",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn child");
    let pid = child.id().expect("child pid");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("child output in time")
            .expect("read")
    };

    let port = loop {
        let line = next_line().await.expect("child printed its port");
        // libtest prints `test NAME ... ` without a newline before the test runs.
        if let Some((_, port)) = line.split_once("PORT=") {
            break port.parse::<u16>().expect("port");
        }
    };
    let url = format!("http://127.0.0.1:{port}/slow");
    let request = tokio::spawn(async move { reqwest::get(url).await?.text().await });
    loop {
        if next_line().await.expect("child output").as_str() == "SLOW_STARTED" {
            break;
        }
    }

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());

    // New connections are refused soon after the signal, while the slow one goes on.
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the listener still accepts after SIGTERM");

    let body = request
        .await
        .expect("join")
        .expect("the in-flight request completes");
    assert_eq!(body, "finished");
    let mut rest = Vec::new();
    while let Some(line) = next_line().await {
        rest.push(line);
    }
    assert!(
        rest.iter().any(|l| l == "STOPPED"),
        "child output: {rest:?}"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exit in time")
        .expect("wait");
    assert!(status.success(), "child exit status {status}");
}

#[tokio::test]
async fn the_grace_period_bounds_the_drain() {
    let started = Arc::new(Notify::new());
    let app = Router::new().route(
        "/stuck",
        get({
            let started = Arc::clone(&started);
            move || async move {
                started.notify_one();
                tokio::time::sleep(Duration::from_secs(60)).await;
                "never"
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let grace = Duration::from_millis(300);
    let server = tokio::spawn(serve(
        listener,
        app,
        async move { drop(stop_rx.await) },
        ServerConfig::default().with_grace(grace),
    ));
    let request = tokio::spawn(reqwest::get(format!("http://127.0.0.1:{port}/stuck")));
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the request reached the handler");

    let stopping = std::time::Instant::now();
    stop_tx.send(()).expect("server listening");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returns")
        .expect("join")
        .expect("serve");
    let drained = stopping.elapsed();
    // It waited for the stuck request for the grace period, and not much longer.
    assert!(
        drained >= grace,
        "returned after {drained:?}, before the grace period"
    );
    assert!(
        drained < grace + Duration::from_secs(2),
        "returned after {drained:?}"
    );
    request.abort();
}
