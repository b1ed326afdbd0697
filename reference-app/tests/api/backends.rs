//! Backends a test controls: a TCP proxy that can delay or cut a connection,
//! and the orders service run apart from the BFF, as `bff orders` runs it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bff_app::orders::caller::CallerVerifier;
use bff_app::orders::server::{OrdersServer, OrdersSetup};
use secrecy::ExposeSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, JoinHandle};

use crate::helpers::TestApp;

#[derive(Default)]
struct ProxyState {
    upstream: Option<SocketAddr>,
    delay: Duration,
    down: bool,
    connections: Vec<AbortHandle>,
}

/// A loopback TCP proxy. Every chunk the upstream sends is held for the
/// current delay (so each round trip costs it once); `down` cuts every
/// connection and refuses new ones, as a crashed backend would.
pub(crate) struct Proxy {
    addr: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// A proxy with no upstream yet (connections are refused until one is set).
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = {
                    let state = shared.lock().expect("proxy state");
                    if state.down { None } else { state.upstream }
                };
                // Dropping the socket closes it: the client sees a refused backend.
                let Some(upstream) = upstream else { continue };
                let state = Arc::clone(&shared);
                let handle = tokio::spawn(pipe(client, upstream, state));
                shared
                    .lock()
                    .expect("proxy state")
                    .connections
                    .push(handle.abort_handle());
            }
        });
        Self { addr, state, task }
    }

    /// A proxy to `upstream`.
    pub(crate) async fn to(upstream: SocketAddr) -> Self {
        let proxy = Self::start().await;
        proxy.set_upstream(upstream);
        proxy
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn set_upstream(&self, upstream: SocketAddr) {
        self.state.lock().expect("proxy state").upstream = Some(upstream);
    }

    /// Holds every chunk from the upstream for `delay`, from now on.
    pub(crate) fn set_delay(&self, delay: Duration) {
        self.state.lock().expect("proxy state").delay = delay;
    }

    /// Cuts every connection and refuses new ones.
    pub(crate) fn down(&self) {
        let mut state = self.state.lock().expect("proxy state");
        state.down = true;
        for connection in state.connections.drain(..) {
            connection.abort();
        }
    }

    /// Accepts connections again.
    pub(crate) fn up(&self) {
        self.state.lock().expect("proxy state").down = false;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.down();
    }
}

async fn pipe(client: TcpStream, upstream: SocketAddr, state: Arc<Mutex<ProxyState>>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upward = async {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    let downward = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let delay = state.lock().expect("proxy state").delay;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if client_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upward, downward);
}

/// The orders service in its own server (as `bff orders` runs it), on the test
/// app's database, NATS prefix and JWKS.
pub(crate) struct OrdersProcess {
    pub(crate) addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl OrdersProcess {
    /// Starts it for `app`; `loyalty` says whether it answers loyalty requests.
    pub(crate) async fn spawn(app: &TestApp, loyalty: bool) -> Self {
        let config = &app.config;
        // Straight to Postgres, even when the BFF's own URL goes through a proxy.
        let database = bff_app::config::DatabaseArgs {
            database_url: app.direct_database_url(),
            ..config.database.clone()
        };
        let db = bff_app::orders::server::connect(&database, true)
            .await
            .expect("orders schema");
        let nats = async_nats::connect(config.nats.nats_url.expose_secret())
            .await
            .expect("NATS");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let revocations = bff_app::orders::revocations::Revocations::default();
        let callers = CallerVerifier::new(
            &app.url("/.well-known/jwks.json"),
            &config.auth.claims.jwt_issuer,
            &config.auth.claims.orders_audience,
        );
        let server = OrdersServer::new(OrdersSetup {
            db,
            nats,
            topology: app.topology.clone(),
            loyalty_callers: callers
                .for_audience(&config.auth.claims.loyalty_audience)
                .with_revocations(revocations.clone()),
            callers: callers.with_revocations(revocations.clone()),
            revocations,
            relay: Some(config.outbox.relay_config()),
            loyalty,
            reflection: true,
            listener,
            shutdown_timeout: Duration::from_secs(1),
        });
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run_until_stopped(async move {
                    let _ = rx.await;
                })
                .await
                .expect("the orders service runs");
        });
        Self {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops it and waits.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("stops in time")
                .expect("joins");
        }
    }
}

impl Drop for OrdersProcess {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A BFF whose orders service runs apart, behind a proxy the test controls.
pub(crate) struct SplitStack {
    pub(crate) app: TestApp,
    /// Kept running for the stack's lifetime.
    _orders: OrdersProcess,
    pub(crate) proxy: Proxy,
}

impl SplitStack {
    /// Spawns the stack; `configure` adjusts the BFF's settings.
    pub(crate) async fn spawn(
        loyalty: bool,
        configure: impl FnOnce(&mut bff_app::config::ServeArgs),
    ) -> Self {
        let proxy = Proxy::start().await;
        let orders_url = format!("http://{}", proxy.addr());
        let app = TestApp::spawn_with(|config| {
            config.backends.orders_url = Some(orders_url.parse().expect("url"));
            // Each request is measured on its own.
            config.backends.dashboard_cache_ttl = Duration::ZERO;
            configure(config);
        })
        .await;
        let orders = OrdersProcess::spawn(&app, loyalty).await;
        proxy.set_upstream(orders.addr);
        Self {
            app,
            _orders: orders,
            proxy,
        }
    }
}
