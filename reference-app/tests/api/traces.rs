//! OpenTelemetry traces: `bff serve` runs as its own process with
//! `BFF_TRACING=true` and the standard `OTEL_*` variables, exporting over OTLP
//! to a receiver of this test's own (a tonic server implementing the
//! collector's trace service, keeping spans in memory).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use secrecy::ExposeSecret;

use crate::helpers::{SEED_PASSWORD, TestDatabase, default_config};

/// The spans received, with their service's name.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.keep(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    /// Keeps the spans of one export request.
    fn keep(&self, request: ExportTraceServiceRequest) {
        let mut spans = self.spans.lock().expect("spans");
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|value| match value {
                    Value::StringValue(name) => name.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                spans.extend(scope.spans.into_iter().map(|span| (service.clone(), span)));
            }
        }
    }

    /// Serves OTLP/HTTP (`POST /v1/traces`, protobuf) on a free loopback
    /// port; returns its endpoint.
    async fn start_http(&self) -> String {
        use prost::Message;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let receiver = self.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let receiver = receiver.clone();
                async move {
                    match ExportTraceServiceRequest::decode(body) {
                        Ok(request) => {
                            receiver.keep(request);
                            (
                                http::StatusCode::OK,
                                [("content-type", "application/x-protobuf")],
                                ExportTraceServiceResponse::default().encode_to_vec(),
                            )
                        }
                        Err(_) => (
                            http::StatusCode::BAD_REQUEST,
                            [("content-type", "text/plain")],
                            b"not an export request".to_vec(),
                        ),
                    }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}")
    }

    /// Serves on a free loopback port; returns its endpoint.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        format!("http://{address}")
    }

    /// Waits until a span matching `find` has arrived.
    async fn wait_for(&self, what: &str, find: impl Fn(&Span) -> bool) -> (String, Span) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(found) = self
                .spans
                .lock()
                .expect("spans")
                .iter()
                .find(|(_, span)| find(span))
            {
                return found.clone();
            }
            assert!(Instant::now() < deadline, "{what} arrived");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|value| match value {
            Value::StringValue(text) => text.clone(),
            Value::IntValue(number) => number.to_string(),
            other => format!("{other:?}"),
        })
}

/// Whether `span` descends from the span `ancestor` (through the spans
/// received so far).
fn is_within(receiver: &Receiver, span: &Span, ancestor: &[u8]) -> bool {
    let spans = receiver.spans.lock().expect("spans");
    let mut parent = span.parent_span_id.clone();
    for _ in 0..32 {
        if parent == ancestor {
            return true;
        }
        match spans.iter().find(|(_, s)| s.span_id == parent) {
            Some((_, next)) => parent = next.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}

/// The name of `span`'s parent, among the spans received so far.
fn parent_of(receiver: &Receiver, span: &Span) -> Option<String> {
    let spans = receiver.spans.lock().expect("spans");
    spans
        .iter()
        .find(|(_, s)| s.span_id == span.parent_span_id)
        .map(|(_, parent)| parent.name.clone())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `bff serve` with tracing to `endpoint`, on a free port; killed on drop.
struct Served {
    address: String,
    /// Its log (JSON lines).
    log: std::path::PathBuf,
    _child: tokio::process::Child,
    _database: TestDatabase,
}

async fn serve(endpoint: &str, extra: &[(&str, &str)]) -> Served {
    let config = default_config();
    let database = TestDatabase::new(&config);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let run = uuid::Uuid::now_v7().simple().to_string();
    let log = std::env::temp_dir().join(format!("bff-traces-{run}.log"));
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_bff"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("BFF_") || key.starts_with("OTEL_") {
            command.env_remove(key);
        }
    }
    command
        .env("RUST_LOG", "info")
        .env("BFF_DATABASE_URL", database.url.expose_secret())
        .env("BFF_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("BFF_REDIS_PREFIX", format!("test:{run}:"))
        .env("BFF_NATS_PREFIX", format!("TEST_{run}_"))
        .env("BFF_NOTIFIER", "false")
        .env("BFF_PASSWORD_MEMORY_KIB", "1024")
        .env("BFF_PASSWORD_ITERATIONS", "1")
        .env("BFF_SEED_PASSWORD", SEED_PASSWORD)
        .env("BFF_TRACING", "true")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_SERVICE_NAME", "bff-under-test")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("BFF_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .kill_on_drop(true);
    for (key, value) in extra {
        command.env(key, value);
    }
    let child = command.spawn().expect("bff starts");
    let address = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if client
            .get(format!("{address}/healthz/live"))
            .send()
            .await
            .is_ok_and(|response| response.status() == 200)
        {
            break;
        }
        assert!(Instant::now() < deadline, "bff serves");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Served {
        address,
        log,
        _child: child,
        _database: database,
    }
}

impl Served {
    /// Logs the seeded customer in; its access token.
    async fn login(&self) -> String {
        let login: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/login", self.address))
            .json(&serde_json::json!({"identifier": "customer@example.com", "password": SEED_PASSWORD}))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        login["access_token"].as_str().expect("token").to_owned()
    }

    /// `GET path`, with `token` as the bearer and `trace` as the caller's
    /// trace id (with [`PARENT_ID`] its span) when given; asserts a 200.
    async fn get(&self, path: &str, token: Option<&str>, trace: Option<&str>) -> reqwest::Response {
        let mut request = reqwest::Client::new().get(format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(trace) = trace {
            request = request.header("traceparent", format!("00-{trace}-{PARENT_ID}-01"));
        }
        let response = request.send().await.expect("sent");
        assert_eq!(response.status(), 200, "GET {path}");
        response
    }

    /// The first log line (JSON) of the request in trace `trace`.
    fn log_line(&self, trace: &str) -> serde_json::Value {
        self.log_lines()
            .into_iter()
            .find(|line| line["span"]["trace_id"] == trace)
            .expect("a log line of the request")
    }

    /// Every log line so far (JSON).
    fn log_lines(&self) -> Vec<serde_json::Value> {
        let log = std::fs::read_to_string(&self.log).expect("log");
        log.lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn a_request_is_a_server_span_that_continues_the_callers_trace() {
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    // Deadlines no loaded test machine misses: this is about traces.
    let served = serve(
        &endpoint,
        &[
            ("BFF_TRACE_PARENT", "always"),
            ("BFF_DASHBOARD_DEADLINE", "20s"),
            ("BFF_DASHBOARD_DATABASE_DEADLINE", "10s"),
            ("BFF_DASHBOARD_ORDERS_DEADLINE", "10s"),
            ("BFF_DASHBOARD_LOYALTY_DEADLINE", "10s"),
        ],
    )
    .await;

    served
        .get("/api/v1/currencies/EUR", None, Some(TRACE_ID))
        .await;
    let (service, span) = receiver
        .wait_for("the request's server span", |span| {
            hex(&span.trace_id) == TRACE_ID && span.name == "GET /api/v1/currencies/{code}"
        })
        .await;
    assert_eq!(service, "bff-under-test");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(
        hex(&span.parent_span_id),
        PARENT_ID,
        "a child of the caller's span"
    );
    assert_eq!(
        attribute(&span, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attribute(&span, "http.route").as_deref(),
        Some("/api/v1/currencies/{code}")
    );
    assert_eq!(
        attribute(&span, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert!(attribute(&span, "request_id").is_some_and(|id| !id.is_empty()));
    // Building the OpenAPI document at start (aide) makes no traces.
    assert!(
        !receiver
            .spans
            .lock()
            .expect("spans")
            .iter()
            .any(|(_, span)| span.name == "api_route" || span.name == "description"),
        "no spans of aide's"
    );
    // The request's log lines carry its trace and span ids.
    let line = served.log_line(TRACE_ID);
    assert_eq!(line["span"]["span_id"], hex(&span.span_id));
    assert_eq!(
        line["span"]["request_id"].as_str(),
        attribute(&span, "request_id").as_deref()
    );

    // The dashboard: one trace, its server span the parent of a span per
    // source, each with its status and deadline.
    let token = served.login().await;
    const DASHBOARD_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    served
        .get("/api/v1/dashboard", Some(&token), Some(DASHBOARD_TRACE))
        .await;
    let (_, server) = receiver
        .wait_for("the dashboard's server span", |span| {
            hex(&span.trace_id) == DASHBOARD_TRACE && span.name == "GET /api/v1/dashboard"
        })
        .await;
    let mut sources = std::collections::HashMap::new();
    for source in ["profile", "wallets", "recent_orders", "loyalty"] {
        let name = format!("source {source}");
        let (_, span) = receiver
            .wait_for(&name, |span| {
                hex(&span.trace_id) == DASHBOARD_TRACE && span.name == name
            })
            .await;
        assert!(
            is_within(&receiver, &span, &server.span_id),
            "{name} is inside the server span"
        );
        assert_eq!(attribute(&span, "status").as_deref(), Some("ok"), "{name}");
        assert!(attribute(&span, "deadline_ms").is_some(), "{name}");
        sources.insert(source, span.span_id);
    }
    // The orders service's span continues the trace through gRPC metadata,
    // the loyalty responder's through NATS headers.
    let (_, call) = receiver
        .wait_for("the orders service's span", |span| {
            hex(&span.trace_id) == DASHBOARD_TRACE && span.name.starts_with("bff.orders.v1.Orders/")
        })
        .await;
    assert_eq!(call.kind, SpanKind::Server as i32);
    assert_eq!(attribute(&call, "rpc.system").as_deref(), Some("grpc"));
    assert!(is_within(&receiver, &call, &sources["recent_orders"]));
    let (_, answer) = receiver
        .wait_for("the loyalty responder's span", |span| {
            hex(&span.trace_id) == DASHBOARD_TRACE && span.name == "loyalty.points.get process"
        })
        .await;
    assert!(is_within(&receiver, &answer, &sources["loyalty"]));

    // Inside the request: the token's verification (the login's token, not
    // cached yet), the session check in Redis, and each source's Postgres
    // queries named by statement.
    let (_, verify) = receiver
        .wait_for("the token's verification", |span| {
            hex(&span.trace_id) == DASHBOARD_TRACE && span.name == "jwt.verify"
        })
        .await;
    assert_eq!(
        parent_of(&receiver, &verify).as_deref(),
        Some("GET /api/v1/dashboard")
    );
    assert_eq!(attribute(&verify, "outcome").as_deref(), Some("verified"));
    assert_eq!(attribute(&server, "user.id"), None, "no user id by default");
    let (_, session) = receiver
        .wait_for("the session check", |span| {
            hex(&span.trace_id) == DASHBOARD_TRACE && span.name == "session.is_active"
        })
        .await;
    assert_eq!(
        attribute(&session, "db.system.name").as_deref(),
        Some("redis")
    );
    assert_eq!(session.kind, SpanKind::Client as i32);
    assert!(is_within(&receiver, &session, &server.span_id));
    let (_, query) = receiver
        .wait_for("the profile's query", |span| {
            hex(&span.trace_id) == DASHBOARD_TRACE && span.name == "users.find_by_id"
        })
        .await;
    assert_eq!(
        attribute(&query, "db.system.name").as_deref(),
        Some("postgresql")
    );
    assert!(is_within(&receiver, &query, &sources["profile"]));
    // The login hashed: its password check is a span of the login's trace.
    let (_, hash) = receiver
        .wait_for("the login's password check", |span| {
            span.name == "password.verify"
        })
        .await;
    let (_, lookup) = receiver
        .wait_for("the login's user lookup", |span| {
            span.name == "users.find_by_identifier"
        })
        .await;
    assert_eq!(hash.trace_id, lookup.trace_id);
    assert_eq!(
        parent_of(&receiver, &hash).as_deref(),
        Some("POST /api/v1/auth/login")
    );

    // Without a traceparent, a request starts a trace of its own.
    served.get("/api/v1/currencies/USD", None, None).await;
    let (_, own) = receiver
        .wait_for("a root span", |span| {
            span.name == "GET /api/v1/currencies/{code}" && hex(&span.trace_id) != TRACE_ID
        })
        .await;
    assert!(own.parent_span_id.is_empty(), "a root span");
}

#[tokio::test]
async fn the_user_id_is_on_the_request_span_only_when_asked_for() {
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    let served = serve(
        &endpoint,
        &[
            ("BFF_TRACE_PARENT", "always"),
            ("BFF_TRACE_USER_ID", "true"),
        ],
    )
    .await;
    let token = served.login().await;
    const ME_TRACE: &str = "6e0c63257de34c926f9efcd03899aae1";
    let response = served.get("/api/v1/me", Some(&token), Some(ME_TRACE)).await;
    let me: serde_json::Value = response.json().await.expect("json");
    let user_id = me["id"].as_str().expect("id");
    let (_, server) = receiver
        .wait_for("the request's server span", |span| {
            hex(&span.trace_id) == ME_TRACE && span.name == "GET /api/v1/me"
        })
        .await;
    assert_eq!(attribute(&server, "user.id").as_deref(), Some(user_id));
    // The request's log line names the user too.
    let line = served.log_line(ME_TRACE);
    assert_eq!(line["span"]["user.id"], user_id);
    // A request without a caller has none.
    let (_, login_span) = receiver
        .wait_for("the login's server span", |span| {
            span.name == "POST /api/v1/auth/login"
        })
        .await;
    assert_eq!(attribute(&login_span, "user.id"), None);
}

#[tokio::test]
async fn a_line_logged_inside_a_source_leads_to_its_request_and_trace() {
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    // A loyalty source that cannot answer in time logs its failure inside
    // its own span.
    let served = serve(
        &endpoint,
        &[
            ("BFF_TRACE_PARENT", "always"),
            ("BFF_DASHBOARD_LOYALTY_DEADLINE", "1ms"),
        ],
    )
    .await;
    let token = served.login().await;
    const LOG_TRACE: &str = "2c1f0e7b9d8a4c3b8f6e5d4c3b2a1908";
    served
        .get("/api/v1/dashboard", Some(&token), Some(LOG_TRACE))
        .await;
    let line = served
        .log_lines()
        .into_iter()
        .find(|line| {
            line["fields"]["source"] == "loyalty"
                && line["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.ends_with("source failed"))
        })
        .expect("the loyalty source's failure is logged");
    assert_eq!(
        line["span"]["source"], "loyalty",
        "logged inside the source"
    );
    let request = &line["spans"][0];
    assert_eq!(request["trace_id"], LOG_TRACE, "{line}");
    assert!(
        request["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{line}"
    );
    assert_eq!(request["http.route"], "/api/v1/dashboard");
}

#[tokio::test]
async fn an_untrusted_traceparent_is_ignored() {
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    // The default: only BFF_TRUSTED_PROXIES are trusted, and there are none.
    let served = serve(&endpoint, &[]).await;
    served
        .get("/api/v1/currencies/EUR", None, Some(TRACE_ID))
        .await;
    let (_, span) = receiver
        .wait_for("the request's server span", |span| {
            span.name == "GET /api/v1/currencies/{code}"
        })
        .await;
    assert_ne!(hex(&span.trace_id), TRACE_ID, "a trace of its own");
    assert!(span.parent_span_id.is_empty());
}

#[tokio::test]
async fn a_collector_that_is_down_costs_requests_nothing_and_drops_are_counted() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let served = serve(&format!("http://127.0.0.1:{port}"), &[]).await;
    let client = reqwest::Client::new();
    for _ in 0..20 {
        served.get("/api/v1/currencies/EUR", None, None).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = client
            .get(format!("{}/metrics", served.address))
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("text");
        let dropped: f64 = metrics
            .lines()
            .find_map(|line| line.strip_prefix("bff_trace_spans_dropped_total "))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0.0);
        if dropped >= 20.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dropped spans are counted ({dropped})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn with_tracing_off_nothing_is_exported() {
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    let served = serve(&endpoint, &[("BFF_TRACING", "false")]).await;
    served.get("/api/v1/currencies/EUR", None, None).await;
    // Ten times the batch delay the exporter would have had.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(receiver.spans.lock().expect("spans").is_empty());
}

#[tokio::test]
async fn a_sign_up_code_is_traced_through_the_outbox_to_the_notifiers_send() {
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    // The dev profile's log sender stands in for SMTP; RUST_LOG=warn quiets
    // the logs but not the traces.
    let served = serve(
        &endpoint,
        &[
            ("BFF_TRACE_PARENT", "always"),
            ("BFF_NOTIFIER", "true"),
            ("RUST_LOG", "warn"),
        ],
    )
    .await;
    const SIGN_UP_TRACE: &str = "5b8efff798038103d269b633813fc60c";
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/verify-code", served.address))
        .header("traceparent", format!("00-{SIGN_UP_TRACE}-{PARENT_ID}-01"))
        .json(&serde_json::json!({"identifier": "newcomer@example.com", "purpose": "register"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let (_, server) = receiver
        .wait_for("the request's server span", |span| {
            hex(&span.trace_id) == SIGN_UP_TRACE && span.name == "POST /api/v1/auth/verify-code"
        })
        .await;
    let (_, publish) = receiver
        .wait_for("the relay's publish span", |span| {
            hex(&span.trace_id) == SIGN_UP_TRACE && span.name.ends_with(" publish")
        })
        .await;
    assert_eq!(publish.kind, SpanKind::Producer as i32);
    assert!(is_within(&receiver, &publish, &server.span_id));
    let (_, send) = receiver
        .wait_for("the notifier's send span", |span| {
            hex(&span.trace_id) == SIGN_UP_TRACE && span.name.ends_with(" process")
        })
        .await;
    assert_eq!(send.kind, SpanKind::Consumer as i32);
    assert_eq!(
        send.parent_span_id, publish.span_id,
        "the send follows the publish"
    );
}

#[tokio::test]
async fn spans_go_out_over_otlp_http_too() {
    let receiver = Receiver::default();
    let endpoint = receiver.start_http().await;
    let served = serve(
        &endpoint,
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")],
    )
    .await;
    served.get("/api/v1/currencies/EUR", None, None).await;
    let (service, span) = receiver
        .wait_for("the request's server span over HTTP", |span| {
            span.name == "GET /api/v1/currencies/{code}"
        })
        .await;
    assert_eq!(service, "bff-under-test");
    assert_eq!(span.kind, SpanKind::Server as i32);
}
