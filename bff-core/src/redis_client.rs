//! One Redis connection type for every store: a single node or a cluster.
//!
//! [`RedisConnection`] implements redis-rs's
//! `ConnectionLike`, so commands, pipelines and
//! scripts run on it as on any redis-rs connection, whichever mode it is in. It
//! is cheap to clone (every clone shares one multiplexed connection per node)
//! and reconnects on its own:
//!
//! - a single node goes through redis-rs's `ConnectionManager`;
//! - a cluster goes through redis-rs's async cluster client, which routes each
//!   command by its key's hash slot, follows `MOVED` and `ASK` redirections,
//!   re-reads the slot map when a node fails over, and splits multi-key reads
//!   (`MGET`) by slot.
//!
//! In a cluster, a script or a pipeline must touch keys of one hash slot only.
//! The stores of `bff-auth` and `bff-cache` name their keys so that every
//! script's keys share a hash tag (`{...}`), and document their layouts.
//!
//! ```no_run
//! # async fn run() -> Result<(), bff_core::redis_client::RedisConnectError> {
//! use bff_core::redis_client::{RedisConnection, RedisOptions};
//!
//! let options = RedisOptions { cluster: true, ..RedisOptions::default() };
//! let conn = RedisConnection::connect(
//!     "redis://10.0.0.1:6379,redis://10.0.0.2:6379,redis://10.0.0.3:6379",
//!     &options,
//! )
//! .await?;
//! # let _ = conn;
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

#[cfg(feature = "redis-testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis-testing")))]
pub mod testing;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, TlsCertificates, Value};

/// How to reach Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// Cluster mode: the URLs are seed nodes of a Redis Cluster (any of them is
    /// enough to find the rest). Otherwise exactly one URL names the node.
    pub cluster: bool,
    /// How long one connection attempt to a node may take.
    pub connect_timeout: Duration,
    /// How long a command may wait for its answer, retries and redirections
    /// included; past it the command fails and the caller answers 503.
    pub response_timeout: Duration,
    /// How many times a command is retried after a connection error. A
    /// cluster allows two more, for the `MOVED` redirections that follow a
    /// failover.
    pub retries: u32,
    /// For `rediss://` URLs: the PEM certificates of the authorities that sign
    /// the servers' certificates, instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
}

impl Default for RedisOptions {
    /// A single node; 10 s to connect; 2 s per command; 2 retries; the
    /// system's roots for TLS.
    fn default() -> Self {
        Self {
            cluster: false,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(2),
            retries: 2,
            ca_pem: None,
        }
    }
}

/// Redis could not be reached, or the settings do not name it.
///
/// The message never contains a URL (URLs can carry passwords).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisConnectError {
    /// The URL list is empty, or names several nodes outside cluster mode.
    #[error("{0}")]
    Settings(&'static str),
    /// A URL does not parse, or no node answered.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// A connection to a single Redis node or to a Redis Cluster.
#[derive(Clone)]
#[non_exhaustive]
pub enum RedisConnection {
    /// One node, through a connection manager.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "RedisConnection::Single",
            Self::Cluster(_) => "RedisConnection::Cluster",
        })
    }
}

impl From<ConnectionManager> for RedisConnection {
    fn from(conn: ConnectionManager) -> Self {
        Self::Single(conn)
    }
}

impl From<ClusterConnection> for RedisConnection {
    fn from(conn: ClusterConnection) -> Self {
        Self::Cluster(conn)
    }
}

impl RedisConnection {
    /// Connects to `urls`, one URL or a comma-separated list (cluster mode):
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
    ///
    /// A single node is connected to before this returns, so a wrong URL or a
    /// node that is down fails here; in cluster mode at least one seed node must
    /// answer with the cluster's slot map.
    pub async fn connect(urls: &str, options: &RedisOptions) -> Result<Self, RedisConnectError> {
        let urls: Vec<&str> = urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .collect();
        if urls.is_empty() {
            return Err(RedisConnectError::Settings("no Redis URL is set"));
        }
        let certificates = || TlsCertificates {
            client_tls: None,
            root_cert: options.ca_pem.clone(),
        };
        if options.cluster {
            let mut builder = ClusterClientBuilder::new(urls);
            if options.ca_pem.is_some() {
                builder = builder.certs(certificates());
            }
            let client = builder
                .connection_timeout(options.connect_timeout)
                .response_timeout(options.response_timeout)
                .overall_response_timeout(Some(options.response_timeout))
                .retries(options.retries.saturating_add(2))
                .min_retry_wait(50)
                .max_retry_wait(500)
                .build()?;
            return Ok(Self::Cluster(client.get_async_connection().await?));
        }
        let [url] = urls.as_slice() else {
            return Err(RedisConnectError::Settings(
                "several Redis URLs are set but cluster mode is off",
            ));
        };
        let client = if options.ca_pem.is_some() {
            redis::Client::build_with_tls(*url, certificates())?
        } else {
            redis::Client::open(*url)?
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_number_of_retries(usize::try_from(options.retries).unwrap_or(usize::MAX));
        Ok(Self::Single(
            ConnectionManager::new_with_config(client, config).await?,
        ))
    }

    /// Whether this is a cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// The span of one Redis operation (a script, a command or a pipeline) of a
/// store: with OpenTelemetry (feature `otel`), a client span named
/// `operation` (`session.refresh`, `ratelimit.gcra`) with
/// `db.system.name = "redis"`, so a trace shows which of a request's Redis
/// round trips took its time. The stores of `bff-auth` and `bff-cache`
/// instrument each round trip with one.
///
/// ```no_run
/// # async fn run(mut conn: bff_core::redis_client::RedisConnection) -> redis::RedisResult<()> {
/// use tracing::Instrument;
///
/// let _: Option<String> = redis::cmd("GET")
///     .arg("greeting")
///     .query_async(&mut conn)
///     .instrument(bff_core::redis_client::span("greeting.get"))
///     .await?;
/// # Ok(())
/// # }
/// ```
pub fn span(operation: &'static str) -> tracing::Span {
    tracing::info_span!(
        "redis",
        otel.name = operation,
        otel.kind = "client",
        db.system.name = "redis",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settings_that_name_no_node_or_too_many_are_refused_without_the_urls() {
        let error = RedisConnection::connect(" , ", &RedisOptions::default())
            .await
            .expect_err("no URL");
        assert_eq!(error.to_string(), "no Redis URL is set");
        let error = RedisConnection::connect(
            "redis://:secret@127.0.0.1:1,redis://:secret@127.0.0.1:2",
            &RedisOptions::default(),
        )
        .await
        .expect_err("two URLs outside cluster mode");
        assert!(matches!(error, RedisConnectError::Settings(_)));
        assert!(!error.to_string().contains("secret"));
    }
}
