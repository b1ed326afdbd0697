//! Tests on a single Redis node and on a real Redis Cluster of local
//! `redis-server` processes (feature `redis-testing`; for tests only).
//!
//! [`RedisCluster::start`] creates a cluster on free loopback ports with
//! `redis-cli --cluster create`, each node watched by a small shell loop that
//! stops it when the test process exits, however it exits. [`Backend`] names
//! the two setups a store's tests run on, and [`redis_tests!`](crate::redis_tests)
//! runs each test on both:
//!
//! ```no_run
//! use bff_core::redis_client::testing::Backend;
//!
//! async fn a_value_round_trips(redis: Backend) {
//!     let mut conn = redis.connect().await;
//!     let () = redis::cmd("SET").arg("k").arg("v").query_async(&mut conn).await.unwrap();
//! }
//!
//! bff_core::redis_tests!(a_value_round_trips);
//! ```

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::{RedisConnection, RedisOptions};

/// Where a test's Redis is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The node at `BFF_REDIS_URL` (default `redis://127.0.0.1:6379`).
    Single,
    /// This test process's cluster of 3 masters and 3 replicas, started at
    /// first use ([`shared_cluster`]).
    Cluster,
}

impl Backend {
    /// A new connection (each test has its own runtime, so each connects).
    ///
    /// # Panics
    ///
    /// When Redis is not there: a test cannot go on without it.
    pub async fn connect(self) -> RedisConnection {
        let (urls, cluster) = match self {
            Self::Single => (
                std::env::var("BFF_REDIS_URL")
                    .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned()),
                false,
            ),
            Self::Cluster => (shared_cluster().await.urls(), true),
        };
        let options = RedisOptions {
            cluster,
            ..RedisOptions::default()
        };
        RedisConnection::connect(&urls, &options)
            .await
            .expect("Redis is running")
    }
}

/// Runs each named `async fn(Backend)` as two tests, in modules `single` and
/// `cluster`.
#[macro_export]
macro_rules! redis_tests {
    ($($name:ident),* $(,)?) => {
        mod single {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::redis_client::testing::Backend::Single).await
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::redis_client::testing::Backend::Cluster).await
                }
            )*
        }
    };
}

/// The cluster shared by the tests of this process: 3 masters, 3 replicas.
///
/// # Panics
///
/// When the cluster cannot be started (no `redis-server` or `redis-cli`).
pub async fn shared_cluster() -> &'static RedisCluster {
    static CLUSTER: OnceCell<RedisCluster> = OnceCell::const_new();
    CLUSTER
        .get_or_init(|| async {
            RedisCluster::start(3, 1, Duration::from_millis(2000))
                .await
                .expect("a local Redis Cluster starts")
        })
        .await
}

/// One `redis-server` of a [`RedisCluster`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// Its client port on 127.0.0.1 (the cluster bus is 10000 above).
    pub port: u16,
}

/// A Redis Cluster of local processes, stopped when dropped (or when the test
/// process exits).
#[derive(Debug)]
pub struct RedisCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

/// A free loopback port whose cluster bus port (10000 above) is free too.
fn free_port() -> std::io::Result<u16> {
    for _ in 0..100 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        if port > 55_000 {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("no free port pair"))
}

fn run(command: &mut Command) -> std::io::Result<String> {
    let output = command.stdin(Stdio::null()).output()?;
    if !output.status.success() {
        return Err(std::io::Error::other(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas` replicas each, with
    /// `node_timeout` (how long a node may be silent before a failover), and
    /// waits until every slot is served. The nodes serve their slots while
    /// another master is down (`cluster-require-full-coverage no`).
    pub async fn start(
        masters: usize,
        replicas: usize,
        node_timeout: Duration,
    ) -> std::io::Result<Self> {
        static SEQUENCE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("bff-redis-cluster-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut cluster = Self {
            dir,
            nodes: Vec::new(),
        };
        for _ in 0..masters * (1 + replicas) {
            let port = free_port()?;
            cluster.spawn(port, node_timeout)?;
            cluster.nodes.push(Node { port });
        }
        for node in &cluster.nodes {
            cluster.wait_for_ping(node.port).await?;
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        create
            .arg("--cluster-replicas")
            .arg(replicas.to_string())
            .arg("--cluster-yes");
        run(&mut create)?;
        cluster.wait_until_ok(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    /// Starts one node, watched by a shell loop that stops it and removes its
    /// files when this test process is gone (or the node was killed).
    fn spawn(&self, port: u16, node_timeout: Duration) -> std::io::Result<()> {
        let dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&dir)?;
        let server = format!(
            "redis-server --port {port} --bind 127.0.0.1 --cluster-enabled yes \
             --cluster-config-file nodes.conf --cluster-node-timeout {} \
             --cluster-require-full-coverage no --repl-diskless-sync-delay 0 \
             --save '' --appendonly no --dir {} --logfile redis.log",
            node_timeout.as_millis(),
            dir.display()
        );
        let watcher = format!(
            "{server} & child=$!; echo $child > {pid}; \
             while kill -0 {parent} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.5; done; \
             kill -9 $child 2>/dev/null; wait $child 2>/dev/null; \
             rm -rf {dir}; rmdir {parent_dir} 2>/dev/null",
            pid = dir.join("pid").display(),
            parent = std::process::id(),
            dir = dir.display(),
            parent_dir = self.dir.display(),
        );
        Command::new("sh")
            .arg("-c")
            .arg(watcher)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(())
    }

    async fn wait_for_ping(&self, port: u16) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ping = run(Command::new("redis-cli").args(["-p", &port.to_string(), "PING"]));
            if ping.is_ok_and(|answer| answer.trim() == "PONG") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "redis-server on port {port} did not start (see {})",
                    self.dir.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every live node reports `cluster_state:ok` and every live
    /// replica has finished its initial sync (a replica promoted before that
    /// would come up without its master's data).
    pub async fn wait_until_ok(&self, within: Duration) -> std::io::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let states: Vec<bool> = self
                .live_nodes()
                .iter()
                .map(|node| {
                    let port = node.port.to_string();
                    let cluster_ok =
                        run(Command::new("redis-cli").args(["-p", &port, "CLUSTER", "INFO"]))
                            .is_ok_and(|info| info.contains("cluster_state:ok"));
                    let synced =
                        run(Command::new("redis-cli").args(["-p", &port, "INFO", "replication"]))
                            .is_ok_and(|info| {
                                info.contains("role:master")
                                    || (info.contains("master_link_status:up")
                                        && info.contains("master_sync_in_progress:0"))
                            });
                    cluster_ok && synced
                })
                .collect();
            if states.iter().all(|ok| *ok) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other("the cluster did not become ok"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every node's URL, comma-separated (`BFF_REDIS_URL` in cluster mode).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("redis://127.0.0.1:{}", node.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The nodes, masters first as created.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    fn pid(&self, node: Node) -> Option<String> {
        std::fs::read_to_string(self.dir.join(node.port.to_string()).join("pid"))
            .ok()
            .map(|pid| pid.trim().to_owned())
    }

    fn is_alive(&self, node: Node) -> bool {
        self.pid(node).is_some_and(|pid| {
            Command::new("kill")
                .args(["-0", &pid])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        })
    }

    /// The nodes whose process runs.
    pub fn live_nodes(&self) -> Vec<Node> {
        self.nodes
            .iter()
            .copied()
            .filter(|node| self.is_alive(*node))
            .collect()
    }

    /// The node that serves `key`'s slot now, as a live node sees it.
    pub fn master_of(&self, key: &str) -> std::io::Result<Node> {
        let asker = self
            .live_nodes()
            .first()
            .copied()
            .ok_or_else(|| std::io::Error::other("no live node"))?;
        let port = asker.port.to_string();
        let slot: u16 =
            run(Command::new("redis-cli").args(["-p", &port, "CLUSTER", "KEYSLOT", key]))?
                .trim()
                .parse()
                .map_err(std::io::Error::other)?;
        let nodes = run(Command::new("redis-cli").args(["-p", &port, "CLUSTER", "NODES"]))?;
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| match range.split_once('-') {
                Some((low, high)) => {
                    low.parse::<u16>().is_ok_and(|low| low <= slot)
                        && high.parse::<u16>().is_ok_and(|high| slot <= high)
                }
                None => range.parse::<u16>().is_ok_and(|one| one == slot),
            });
            let address = fields[1].split('@').next().unwrap_or_default();
            if serves && let Some(port) = address.rsplit(':').next() {
                let port = port.parse().map_err(std::io::Error::other)?;
                return Ok(Node { port });
            }
        }
        Err(std::io::Error::other(format!(
            "no master serves slot {slot}"
        )))
    }

    /// Kills `node` at once (`SIGKILL`), as a crash would.
    pub fn kill(&self, node: Node) {
        if let Some(pid) = self.pid(node) {
            let _ = Command::new("kill")
                .args(["-9", &pid])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in self.nodes.clone() {
            self.kill(node);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
