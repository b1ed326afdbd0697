//! gRPC sources against a real tonic server (the standard health service) on
//! loopback: what arrives at the server, and how failures map.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bff_aggregate::{
    Aggregate, AggregateError, Call, ErrorKind, Forward, Source, SourceError, Status, grpc,
};
use http::HeaderValue;
use tokio::net::TcpListener;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint, Server, server::TcpIncoming};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use tonic_health::server::{HealthReporter, HealthService};

type Seen = Arc<Mutex<Vec<MetadataMap>>>;

/// One boxed call, so a helper can name its source's closure type.
type BoxedCall<T> = std::pin::Pin<Box<dyn Future<Output = Result<T, SourceError>> + Send>>;

/// A health server on a free loopback port that records the metadata of
/// every request it receives.
async fn serve() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Seen::default();
    let recorded = Arc::clone(&seen);
    let health = HealthServer::with_interceptor(
        HealthService::from_health_reporter(HealthReporter::new()),
        move |request: tonic::Request<()>| {
            recorded
                .lock()
                .expect("lock")
                .push(request.metadata().clone());
            Ok(request)
        },
    );
    tokio::spawn(
        Server::builder()
            .add_service(health)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    (addr, seen)
}

fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy()
}

fn forward() -> Forward {
    Forward::new()
        .with_request_id(HeaderValue::from_static("req-grpc-1"))
        .with_authorization(HeaderValue::from_static("Bearer t0ken"))
}

/// A source that checks the health of `service` on `channel`.
fn health_source(
    channel: Channel,
    service: &'static str,
    forward: Forward,
) -> Source<impl FnMut(Call) -> BoxedCall<i32> + Send + use<>, bff_aggregate::Required> {
    Source::required("health", Duration::from_secs(2), move |call: Call| {
        let mut client = HealthClient::new(channel.clone());
        let message = HealthCheckRequest {
            service: service.to_owned(),
        };
        let request = grpc::request(message, &forward, &call);
        Box::pin(async move { Ok(client.check(request).await?.into_inner().status) })
            as BoxedCall<i32>
    })
}

/// `grpc-timeout` is digits and a unit: H, M, S, m, u or n.
fn parse_grpc_timeout(value: &str) -> Duration {
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().expect("digits");
    match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        other => panic!("unknown grpc-timeout unit {other}"),
    }
}

#[tokio::test]
async fn deadline_and_identity_reach_the_server() {
    let (addr, seen) = serve().await;
    let assembled = Aggregate::new(Duration::from_secs(5))
        .run((health_source(channel(addr), "", forward()),))
        .await
        .expect("the health check answers");

    assert_eq!(assembled.parts, (ServingStatus::Serving as i32,));
    let seen = seen.lock().expect("lock");
    let metadata = seen.first().expect("one request arrived");
    let text = |key: &str| {
        metadata
            .get(key)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(text("authorization"), "Bearer t0ken");
    assert_eq!(text("x-request-id"), "req-grpc-1");
    let timeout = parse_grpc_timeout(&text("grpc-timeout"));
    assert!(timeout <= Duration::from_secs(2), "{timeout:?}");
    assert!(timeout > Duration::from_secs(1), "{timeout:?}");
}

#[tokio::test]
async fn the_whole_deadline_is_what_the_server_gets() {
    let (addr, seen) = serve().await;
    Aggregate::new(Duration::from_millis(500))
        .run((health_source(channel(addr), "", Forward::new()),))
        .await
        .expect("the health check answers");

    let seen = seen.lock().expect("lock");
    let metadata = seen.first().expect("one request arrived");
    let value = metadata.get("grpc-timeout").expect("grpc-timeout");
    let timeout = parse_grpc_timeout(value.to_str().expect("ascii"));
    assert!(timeout <= Duration::from_millis(500), "{timeout:?}");
    assert!(metadata.get("authorization").is_none());
}

#[tokio::test]
async fn not_found_is_permanent() {
    let (addr, _seen) = serve().await;
    let error = Aggregate::new(Duration::from_secs(5))
        .run((health_source(channel(addr), "no.such.Service", forward()),))
        .await
        .expect_err("unknown service");

    let AggregateError::Required { status, error, .. } = error else {
        panic!("not a required failure");
    };
    assert_eq!(status, Status::Error);
    assert_eq!(error.expect("an error").kind(), ErrorKind::Permanent);
}

#[tokio::test]
async fn a_closed_port_is_transient() {
    // A port that was just free: nothing listens on it.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);

    let error = Aggregate::new(Duration::from_secs(5))
        .run((health_source(channel(addr), "", forward()),))
        .await
        .expect_err("nothing listens");

    let AggregateError::Required { status, error, .. } = error else {
        panic!("not a required failure");
    };
    assert_eq!(status, Status::Error);
    let error = error.expect("an error");
    assert_eq!(error.kind(), ErrorKind::Transient, "{error}");
}

#[test]
fn status_codes_map_to_kinds() {
    use tonic::Code;
    for code in [
        Code::Unavailable,
        Code::Unknown,
        Code::ResourceExhausted,
        Code::Aborted,
        Code::Internal,
    ] {
        let error = grpc::status_error(tonic::Status::new(code, "x"));
        assert_eq!(error.kind(), ErrorKind::Transient, "{code:?}");
        assert!(!error.is_timeout());
    }
    let deadline = SourceError::from(tonic::Status::deadline_exceeded("slow"));
    assert!(deadline.is_transient() && deadline.is_timeout());
    // What tonic's channel answers when the request's grpc-timeout runs out.
    let expired = tonic::Status::from_error(Box::new(tonic::TimeoutExpired(())));
    assert_eq!(expired.code(), Code::Cancelled);
    assert!(grpc::status_error(expired).is_timeout());
    let cancelled = grpc::status_error(tonic::Status::cancelled("the caller went away"));
    assert!(!cancelled.is_timeout() && !cancelled.is_transient());
    for code in [
        Code::NotFound,
        Code::InvalidArgument,
        Code::PermissionDenied,
        Code::Unauthenticated,
        Code::FailedPrecondition,
    ] {
        let error = grpc::status_error(tonic::Status::new(code, "x"));
        assert_eq!(error.kind(), ErrorKind::Permanent, "{code:?}");
    }
}
