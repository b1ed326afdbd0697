//! `TestApp`: the whole application on port 0 with its own database, Redis key
//! prefix and NATS prefix, so tests run in parallel against the shared services.

use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use bff_app::config::{Cli, Command, ServeArgs};
use bff_app::messaging::Topology;
use bff_app::startup::Application;
use bff_auth::keys::{Algorithm, SigningKey};
use clap::Parser;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

static TRACING: Once = Once::new();

/// Logs only when `TEST_LOG` is set, so test output stays quiet.
fn init_tracing() {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = bff_core::telemetry::init(
                bff_core::telemetry::LogFormat::Pretty,
                "info,bff_app=debug,bff_core=debug",
            );
        }
    });
}

/// The default settings, as `bff` would read them from this environment.
pub(crate) fn default_config() -> ServeArgs {
    match Cli::parse_from(["bff"]).into_command() {
        Command::Serve(args) => *args,
        _ => unreachable!("no subcommand means serve"),
    }
}

/// A database of its own: a fresh name on the configured server, dropped when
/// the value is dropped.
pub(crate) struct TestDatabase {
    pub(crate) url: SecretString,
    pub(crate) name: String,
    server: PgConnectOptions,
}

impl TestDatabase {
    pub(crate) fn new(config: &ServeArgs) -> Self {
        let server: PgConnectOptions = config
            .database
            .database_url
            .expose_secret()
            .parse()
            .expect("BFF_DATABASE_URL parses");
        let name = format!("bff_test_{}", uuid::Uuid::now_v7().simple());
        let url = server.clone().database(&name).to_url_lossy().to_string();
        Self {
            url: SecretString::from(url),
            name,
            server,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server = self.server.clone().database("postgres");
        let name = self.name.clone();
        // Drop cannot await, and the test's runtime may be shutting down: a thread
        // with its own small runtime does the cleanup.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut conn = PgConnection::connect_with(&server).await?;
                // The name is generated above from a UUID: nothing in it needs escaping.
                let sql = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        });
        if let Ok(Err(error)) = cleanup.join() {
            eprintln!("could not drop test database {}: {error}", self.name);
        }
    }
}

/// The JetStream streams of one test run (its NATS prefix), deleted when the
/// value is dropped so runs leave nothing behind on the shared server.
pub(crate) struct TestStreams {
    url: String,
    topology: Topology,
}

impl TestStreams {
    /// The streams `config` names.
    pub(crate) fn new(config: &ServeArgs) -> Self {
        Self {
            url: config.nats.nats_url.expose_secret().to_owned(),
            topology: Topology::new(config.nats.nats_prefix.clone()),
        }
    }
}

impl Drop for TestStreams {
    fn drop(&mut self) {
        let url = self.url.clone();
        let names = [
            self.topology.notifications(),
            self.topology.events(),
            self.topology.dead_letters(),
        ];
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let connect = async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(2))
                    .connect(url.split(',').collect::<Vec<_>>());
                // A test that stopped its own server leaves nothing to delete.
                let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(3), connect).await
                else {
                    return;
                };
                let js = async_nats::jetstream::new(client);
                for name in names {
                    let _ = js.delete_stream(name).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

pub(crate) struct TestApp {
    pub(crate) address: String,
    /// Where `/metrics` is served, when it has a listener of its own.
    pub(crate) metrics_address: Option<String>,
    pub(crate) client: reqwest::Client,
    pub(crate) db: PgPool,
    /// The settings it runs with (a sibling instance reuses them).
    pub(crate) config: ServeArgs,
    /// The PEM of the key that signs its tokens.
    pub(crate) signing_key_pem: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), bff_app::startup::StartupError>>>,
    /// Stream and subject names of this run.
    pub(crate) topology: Topology,
    // Declared last: dropped after the pool above is closed; shared with siblings.
    _streams: Arc<TestStreams>,
    _database: Arc<TestDatabase>,
}

/// The demo accounts' password in tests.
pub(crate) const SEED_PASSWORD: &str = "demo password for tests";

impl TestApp {
    pub(crate) async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns the app after `configure` has adjusted its settings.
    pub(crate) async fn spawn_with(configure: impl FnOnce(&mut ServeArgs)) -> Self {
        init_tracing();
        let mut config = default_config();
        let database = TestDatabase::new(&config);
        config.database.database_url = database.url.clone();
        config.http.http_addr = "127.0.0.1:0".parse().expect("addr");
        let run = uuid::Uuid::now_v7().simple().to_string();
        config.redis.redis_prefix = format!("test:{run}:");
        config.nats.nats_prefix = format!("TEST_{run}_");
        let generated = SigningKey::generate(Algorithm::EdDsa).expect("keygen");
        let signing_key_pem =
            String::from_utf8(generated.private_pem().to_vec()).expect("PEM is text");
        config.auth.jwt_signing_key = Some(SecretString::from(signing_key_pem.clone()));
        config.seed.seed_password = Some(SecretString::from(SEED_PASSWORD));
        // Cheap hashing keeps the suite fast; the production parameters have their own test.
        config.password.password_memory_kib = 1024;
        config.password.password_iterations = 1;
        config.codes.code_secret = Some(SecretString::from(format!("test code secret {run}")));
        // Tests read notifications off the stream as a consumer would; the ones
        // about delivery switch the notifier on.
        config.notifier.notifier = false;
        // Suites make many requests from one address; the limits have tests of
        // their own that set them low.
        let generous = bff_cache::ratelimit::Quota::per_minute(1_000_000);
        config.rate_limit.rate_limit_per_ip = generous;
        config.rate_limit.rate_limit_per_user = generous;
        config.rate_limit.rate_limit_login_per_ip = generous;
        config.rate_limit.login_failures_per_identifier = generous;
        config.rate_limit.rate_limit_code_failures_per_ip = generous;
        config.rate_limit.rate_limit_sms = generous;
        config.rate_limit.rate_limit_sms_per_country = generous;
        configure(&mut config);
        let streams = TestStreams::new(&config);
        Self::start(
            config,
            signing_key_pem,
            Arc::new(database),
            Arc::new(streams),
        )
        .await
    }

    /// A second instance sharing this one's database, Redis prefix and keys, as
    /// two replicas behind a load balancer do.
    pub(crate) async fn spawn_sibling(&self) -> Self {
        Self::start(
            self.config.clone(),
            self.signing_key_pem.clone(),
            Arc::clone(&self._database),
            Arc::clone(&self._streams),
        )
        .await
    }

    async fn start(
        config: ServeArgs,
        signing_key_pem: String,
        database: Arc<TestDatabase>,
        streams: Arc<TestStreams>,
    ) -> Self {
        let app = Application::build(&config)
            .await
            .unwrap_or_else(|e| panic!("the app builds: {}", bff_core::problem::ErrorChain(&e)));
        let address = format!("http://{}", app.local_addr().expect("bound"));
        let metrics_address = app.metrics_addr().map(|addr| format!("http://{addr}"));
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        let db = PgPool::connect(database.url.expose_secret())
            .await
            .expect("test pool");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            address,
            metrics_address,
            client,
            db,
            config,
            signing_key_pem,
            shutdown: Some(tx),
            server: Some(server),
            topology: streams.topology.clone(),
            _streams: streams,
            _database: database,
        }
    }

    /// The test database's URL, not through any proxy the app was given.
    pub(crate) fn direct_database_url(&self) -> SecretString {
        self._database.url.clone()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub(crate) async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// A request with `Authorization: Bearer <token>`.
    pub(crate) fn authed(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// `GET path` with a bearer token, as JSON.
    pub(crate) async fn get_json_authed(&self, path: &str, token: &str) -> serde_json::Value {
        let response = self
            .authed(reqwest::Method::GET, path, token)
            .send()
            .await
            .expect("sent");
        response.json().await.expect("a JSON body")
    }

    /// Logs in and returns the token response, asserting success.
    pub(crate) async fn login(&self, identifier: &str, password: &str) -> serde_json::Value {
        let response = self
            .post_json(
                "/api/v1/auth/login",
                &serde_json::json!({"identifier": identifier, "password": password}),
            )
            .await;
        assert_eq!(response.status(), 200, "login as {identifier}");
        response.json().await.expect("token response")
    }

    /// The code a notification carries: sealed on the bus, opened here with
    /// the code secret as the notifier opens it.
    pub(crate) fn code_in(&self, payload: &serde_json::Value) -> String {
        let secret = self
            .config
            .codes
            .code_secret
            .as_ref()
            .expect("a code secret");
        let secret = bff_auth::code::CodeSecret::new(secret.expose_secret().as_bytes().to_vec())
            .expect("a long secret");
        let id = payload["id"]
            .as_str()
            .expect("an id")
            .parse()
            .expect("a uuid");
        let to = payload["to"].as_str().expect("an address");
        let sealed = payload["code"].as_str().expect("a sealed code");
        bff_app::messaging::seal::CodeSeal::new(&secret)
            .open(id, to, sealed)
            .expect("the code opens")
    }

    /// A token for a backend's `audience` on behalf of the holder of
    /// `user_token`, as the BFF mints them (for calling a backend directly).
    pub(crate) fn backend_token(&self, user_token: &str, audience: &str) -> String {
        let claims = token_claims(user_token);
        let key = bff_auth::keys::SigningKey::from_pem(self.signing_key_pem.as_bytes())
            .expect("the app's key");
        let keys = bff_auth::keys::KeySet::new(key, vec![]).expect("keys");
        let issuer = bff_auth::token::TokenIssuer::new(
            keys,
            &self.config.auth.claims.jwt_issuer,
            &self.config.auth.claims.jwt_audience,
            Duration::from_secs(900),
        );
        let text = |name: &str| claims[name].as_str().expect("a claim").to_owned();
        issuer
            .issue_for(
                audience,
                Duration::from_secs(60),
                &text("sub"),
                &text("sid"),
                &text("role"),
            )
            .expect("minted")
            .access_token
    }

    /// A client whose requests come from `ip` (any address of 127.0.0.0/8),
    /// to play several clients against one app.
    pub(crate) fn client_from(&self, ip: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().expect("an address"))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    /// Status of `GET /api/v1/me` with `token`.
    pub(crate) async fn me_status(&self, token: &str) -> u16 {
        self.authed(reqwest::Method::GET, "/api/v1/me", token)
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16()
    }

    /// The sum of the values of the `/metrics` series starting with `series`
    /// (a name, or a name and its labels' opening), 0 when there is none.
    pub(crate) async fn metric(&self, series: &str) -> f64 {
        let text = self.get("/metrics").await.text().await.expect("metrics");
        text.lines()
            .filter(|line| line.starts_with(series))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .fold(0.0, |sum, value| sum + value)
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// Stops the server gracefully and waits for it.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("stops in time")
                .expect("joins")
                .expect("runs cleanly");
        }
        self.db.close().await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The `Retry-After` of a response, in seconds.
pub(crate) fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds")
}

/// Asserts a problem+json answer and returns its body.
pub(crate) async fn assert_problem(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("X-Request-Id");
    let body: serde_json::Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["type"], format!("urn:bff:problem:{code}"), "{body}");
    assert!(body["title"].is_string(), "{body}");
    assert_eq!(body["request_id"], request_id, "{body}");
    body
}

/// A free TCP port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Starts `command` quietly and waits up to 10 s for it to listen on `port`.
fn spawn_listening(command: &mut std::process::Command, port: u16) -> std::process::Child {
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{command:?} is installed on every development and CI machine: {e}")
        });
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{command:?} did not start listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Kills and reaps a child process, if there is one.
fn kill(child: &mut Option<std::process::Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A Redis server of this test's own, so it can be stopped without disturbing
/// the tests that share the machine's Redis.
pub(crate) struct PrivateRedis {
    pub(crate) port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    pub(crate) fn start() -> Self {
        let port = free_port();
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    pub(crate) fn restart(&mut self) {
        let mut command = std::process::Command::new("redis-server");
        command.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        self.child = Some(spawn_listening(&mut command, self.port));
    }

    pub(crate) fn stop(&mut self) {
        kill(&mut self.child);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A message read off a stream.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) subject: String,
    pub(crate) msg_id: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) payload: serde_json::Value,
}

/// A durable pull consumer of the test's own, reading a stream the way the
/// notifier (or any other service) would.
pub(crate) struct StreamReader {
    messages: async_nats::jetstream::consumer::pull::Stream,
}

impl StreamReader {
    /// Reads `stream` through the NATS server at `url`.
    pub(crate) async fn open(url: &str, stream: &str) -> Self {
        let client = async_nats::connect(url).await.expect("NATS is running");
        let js = async_nats::jetstream::new(client);
        let stream = js
            .get_stream(stream)
            .await
            .expect("the app created the stream");
        let consumer: async_nats::jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                "test-reader",
                async_nats::jetstream::consumer::pull::Config {
                    durable_name: Some("test-reader".to_owned()),
                    ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                    ..Default::default()
                },
            )
            .await
            .expect("consumer");
        let messages = consumer.messages().await.expect("messages");
        Self { messages }
    }

    /// The next message (acked), or `None` after `wait`.
    pub(crate) async fn next_within(&mut self, wait: Duration) -> Option<Received> {
        use futures_util::StreamExt;
        let message = tokio::time::timeout(wait, self.messages.next())
            .await
            .ok()??
            .expect("a message");
        message.ack().await.expect("acked");
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        };
        Some(Received {
            subject: message.subject.to_string(),
            msg_id: header("Nats-Msg-Id"),
            request_id: header("X-Request-Id"),
            payload: serde_json::from_slice(&message.payload).expect("JSON payload"),
        })
    }

    /// The next message, which must come within 10 seconds.
    pub(crate) async fn next(&mut self) -> Received {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("a message within 10 s")
    }
}

impl TestApp {
    /// Reads this app's NOTIFICATIONS stream.
    pub(crate) async fn notifications(&self) -> StreamReader {
        StreamReader::open(
            self.config.nats.nats_url.expose_secret(),
            &self.topology.notifications(),
        )
        .await
    }

    /// Reads this app's NOTIFICATIONS_DEAD stream.
    pub(crate) async fn dead_letters(&self) -> StreamReader {
        StreamReader::open(
            self.config.nats.nats_url.expose_secret(),
            &self.topology.dead_letters(),
        )
        .await
    }

    /// Reads this app's EVENTS stream.
    pub(crate) async fn events(&self) -> StreamReader {
        StreamReader::open(
            self.config.nats.nats_url.expose_secret(),
            &self.topology.events(),
        )
        .await
    }
}

/// A NATS server (with JetStream) of this test's own, so it can be stopped and
/// started again without disturbing the tests that share the machine's server.
/// Its store is a directory of its own, kept across restarts.
pub(crate) struct PrivateNats {
    pub(crate) port: u16,
    store: std::path::PathBuf,
    /// A configuration file (accounts, users, permissions), if any.
    config: Option<std::path::PathBuf>,
    /// More command line arguments (a cluster's name, routes).
    args: Vec<String>,
    child: Option<std::process::Child>,
}

impl PrivateNats {
    pub(crate) fn start() -> Self {
        Self::start_with(None)
    }

    /// A server with `config` (nats-server's configuration syntax) added to
    /// its command line settings.
    pub(crate) fn start_with_config(config: &str) -> Self {
        Self::start_with(Some(config))
    }

    fn start_with(config: Option<&str>) -> Self {
        let port = free_port();
        let store = std::env::temp_dir().join(format!("bff-test-nats-{}", uuid::Uuid::now_v7()));
        let config = config.map(|text| {
            std::fs::create_dir_all(&store).expect("store directory");
            let path = store.join("nats.conf");
            std::fs::write(&path, text).expect("config written");
            path
        });
        let mut nats = Self {
            port,
            store,
            config,
            args: Vec::new(),
            child: None,
        };
        nats.restart();
        nats
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub(crate) fn restart(&mut self) {
        // Debian installs it in /usr/sbin, which is not on every PATH.
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("nats-server");
        let mut command = std::process::Command::new(binary);
        command
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store);
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        command.args(&self.args);
        self.child = Some(spawn_listening(&mut command, self.port));
    }

    pub(crate) fn stop(&mut self) {
        kill(&mut self.child);
    }

    /// Freezes the server (SIGSTOP): its socket stays open and takes bytes,
    /// but nothing answers, as with a hung process.
    pub(crate) fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub(crate) fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }
}

/// A cluster of NATS servers with JetStream, routed to each other on
/// loopback, each with a store of its own, so one can be killed and started
/// again.
pub(crate) struct NatsCluster {
    pub(crate) servers: Vec<PrivateNats>,
}

impl NatsCluster {
    /// `size` servers; returns once JetStream has a leader and can place a
    /// stream with `size` replicas.
    pub(crate) async fn start(size: usize) -> Self {
        let name = format!("bfftest{}", uuid::Uuid::now_v7().simple());
        let route_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let routes = route_ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let servers = route_ports
            .iter()
            .enumerate()
            .map(|(index, route_port)| {
                let store =
                    std::env::temp_dir().join(format!("bff-test-nats-{}", uuid::Uuid::now_v7()));
                let mut nats = PrivateNats {
                    port: free_port(),
                    store,
                    config: None,
                    args: [
                        "--name",
                        &format!("{name}-{index}"),
                        "--cluster_name",
                        &name,
                        "--cluster",
                        &format!("nats://127.0.0.1:{route_port}"),
                        "--routes",
                        &routes,
                    ]
                    .map(str::to_owned)
                    .to_vec(),
                    child: None,
                };
                nats.restart();
                nats
            })
            .collect();
        let cluster = Self { servers };
        cluster.wait_for_jetstream(size).await;
        cluster
    }

    /// Every server's URL, comma-separated, as `BFF_NATS_URL` takes them.
    pub(crate) fn urls(&self) -> String {
        self.servers
            .iter()
            .map(PrivateNats::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until JetStream can place a stream with `replicas` replicas.
    pub(crate) async fn wait_for_jetstream(&self, replicas: usize) {
        let client = async_nats::connect(self.urls().split(',').collect::<Vec<_>>())
            .await
            .expect("the cluster accepts clients");
        let js = async_nats::jetstream::new(client);
        let name = format!("PROBE_{}", uuid::Uuid::now_v7().simple());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let created = js
                .create_stream(async_nats::jetstream::stream::Config {
                    name: name.clone(),
                    subjects: vec![format!("probe.{name}")],
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await;
            if created.is_ok() {
                let _ = js.delete_stream(&name).await;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the NATS cluster's JetStream did not come up: {created:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        // SIGKILL ends a paused server too; a test that failed while it was
        // paused leaves nothing behind either way.
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// A minimal SMTP server on loopback that keeps what it is sent, answering the
/// end of each message with `reply` (e.g. `250 OK` or `451 try later`).
pub(crate) struct SmtpSink {
    pub(crate) port: u16,
    messages: Arc<std::sync::Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl SmtpSink {
    pub(crate) async fn start(reply: &'static str) -> Self {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let messages = Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = Arc::clone(&messages);
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                        let answer = match verb.as_str() {
                            "EHLO" => "250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n".to_owned(),
                            "DATA" => {
                                let _ = write.write_all(b"354 go ahead\r\n").await;
                                let mut message = String::new();
                                while let Ok(Some(line)) = lines.next_line().await {
                                    if line == "." {
                                        break;
                                    }
                                    message.push_str(&line);
                                    message.push('\n');
                                }
                                if reply.starts_with('2') {
                                    store.lock().expect("lock").push(message);
                                }
                                format!("{reply}\r\n")
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => "250 OK\r\n".to_owned(),
                        };
                        if write.write_all(answer.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self {
            port,
            messages,
            task,
        }
    }

    /// The messages received so far (headers and body as sent).
    pub(crate) fn messages(&self) -> Vec<String> {
        self.messages.lock().expect("lock").clone()
    }

    /// Waits up to 10 s for `n` messages.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<String> {
        self.wait_for_within(n, Duration::from_secs(10)).await
    }

    /// Waits up to `wait` for `n` messages.
    pub(crate) async fn wait_for_within(&self, n: usize, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{n} messages within {wait:?}, {} came",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A user made for a test.
pub(crate) struct TestUser {
    pub(crate) id: String,
    pub(crate) token: String,
}

impl TestApp {
    /// Creates an account with `role` straight in the database (with the seed
    /// password) and logs it in.
    pub(crate) async fn user(&self, email: &str, role: bff_app::identity::Role) -> TestUser {
        let hasher = bff_auth::password::PasswordHasher::new(bff_auth::password::HashParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        })
        .expect("hasher");
        let hash = hasher
            .hash(SecretString::from(SEED_PASSWORD))
            .await
            .expect("hash");
        bff_app::users::store::insert_if_absent(
            &self.db,
            &bff_app::users::NewUser {
                email: Some(email.to_owned()),
                phone: None,
                name: email.to_owned(),
                role,
                password_hash: Some(hash),
                verified: true,
            },
        )
        .await
        .expect("insert")
        .expect("a new account");
        let tokens = self.login(email, SEED_PASSWORD).await;
        TestUser {
            id: tokens["user"]["id"].as_str().expect("id").to_owned(),
            token: tokens["access_token"].as_str().expect("token").to_owned(),
        }
    }

    /// Sends `method path` with `token` and an optional JSON body.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("sent")
    }
}

/// A JWT signed by `key` with `header` and `claims` exactly as given.
pub(crate) fn forge(
    key: &SigningKey,
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let encode =
        |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"));
    let input = format!("{}.{}", encode(header), encode(claims));
    let signature = key.sign(input.as_bytes()).expect("sign");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The claims of a JWT, unverified (the test made or received it).
pub(crate) fn token_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}
