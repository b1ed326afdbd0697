//! The Postgres pool, database creation and the embedded migrations.

use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres};

use clap::Args;
use secrecy::SecretString;

use crate::config::{Profile, parse_secret};

/// Postgres settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Postgres")]
pub struct DatabaseArgs {
    /// Connection URL; the database is created if it does not exist.
    #[arg(
        long,
        env = "BFF_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/bff",
        value_parser = parse_secret,
        hide_env_values = true
    )]
    pub database_url: SecretString,
    /// Largest number of pooled connections.
    #[arg(long, env = "BFF_DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// How long a request waits for a pooled connection before failing with 503.
    #[arg(long, env = "BFF_DATABASE_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub database_acquire_timeout: Duration,
    /// Longest one SQL statement may run before Postgres cancels it (`0s`: no
    /// limit). It bounds the queries of a request that was already answered
    /// (a dashboard part past its deadline, a client gone); migrations are not
    /// subject to it.
    #[arg(long, env = "BFF_DATABASE_STATEMENT_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub database_statement_timeout: Duration,
    /// Apply pending migrations at start. Default: yes in the dev profile; no in
    /// prod, where `serve` refuses to start on a schema that is behind.
    #[arg(long, env = "BFF_MIGRATE_ON_START")]
    pub migrate_on_start: Option<bool>,
}

impl DatabaseArgs {
    /// Whether migrations are applied at start under `profile`.
    pub fn migrate_on_start(&self, profile: Profile) -> bool {
        self.migrate_on_start.unwrap_or(profile == Profile::Dev)
    }
}

/// The migrations under `reference-app/migrations`, compiled into the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Why the database could not be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The URL is not a Postgres URL.
    #[error("BFF_DATABASE_URL is not a valid Postgres URL")]
    InvalidUrl(#[source] sqlx::Error),
    /// Creating or connecting failed.
    #[error("cannot connect to Postgres")]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("cannot apply migrations")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The schema is older than this binary and migrations were not asked for.
    #[error(
        "the database schema is behind this binary ({pending} pending migration(s)); run `bff migrate` or set BFF_MIGRATE_ON_START=true"
    )]
    PendingMigrations {
        /// How many migrations are not applied.
        pending: usize,
    },
}

/// Creates the database named in the URL if it does not exist.
///
/// It first connects to the database itself, so a role that may open only its
/// own database works when that database exists; only when Postgres answers that
/// it does not exist (SQLSTATE 3D000) does it create it, through the server's
/// maintenance database. A concurrent creator (another instance starting at the
/// same time) is not an error.
pub async fn create_if_missing(url: &str) -> Result<(), DbError> {
    let options = PgConnectOptions::from_str(url).map_err(DbError::InvalidUrl)?;
    match PgConnection::connect_with(&options).await {
        Ok(conn) => {
            // Closing is a courtesy to the server; the pool opens its own connections.
            let _ = conn.close().await;
            return Ok(());
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(INVALID_CATALOG_NAME) => {}
        Err(error) => return Err(DbError::Connect(error)),
    }
    match Postgres::create_database(url).await {
        Ok(()) => {
            tracing::info!("created the database");
            Ok(())
        }
        // Lost a race with another instance: the database exists now, which is the goal.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(DUPLICATE_DATABASE) => Ok(()),
        Err(error) => Err(DbError::Connect(error)),
    }
}

/// SQLSTATE of "database does not exist".
const INVALID_CATALOG_NAME: &str = "3D000";
/// SQLSTATE of "database already exists".
const DUPLICATE_DATABASE: &str = "42P04";

/// A pooled connection idle at least this long is pinged before it is
/// handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The options of every pool of the app: `args`' size and acquire timeout,
/// and a liveness check only where it can matter.
///
/// sqlx pings every connection it hands out by default, one more round trip
/// per query (up to five more per dashboard). A connection returned to the
/// pool a moment ago worked a moment ago; one that sat idle may have died with
/// a Postgres restart or a proxy's idle timeout, so only those are pinged. A
/// connection that breaks in between fails its query, which [`retry_once`]
/// repeats on another one where that is safe, and which is otherwise an
/// outage (503).
pub fn pool_options(args: &DatabaseArgs) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(args.database_max_connections)
        .acquire_timeout(args.database_acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// The connection options of `args`' URL for a pool of `application`: its
/// name in `pg_stat_activity`, and the statement timeout of every session.
pub fn connect_options(
    args: &DatabaseArgs,
    application: &str,
) -> Result<PgConnectOptions, DbError> {
    let timeout_ms = args.database_statement_timeout.as_millis().to_string();
    Ok(
        PgConnectOptions::from_str(args.database_url.expose_secret())
            .map_err(DbError::InvalidUrl)?
            .application_name(application)
            .options([("statement_timeout", timeout_ms.as_str())]),
    )
}

/// Connects the pool, creating the database first if it is missing.
pub async fn connect(args: &DatabaseArgs) -> Result<PgPool, DbError> {
    let url = args.database_url.expose_secret();
    let options = connect_options(args, "bff")?;
    create_if_missing(url).await?;
    pool_options(args)
        .connect_with(options)
        .await
        .map_err(DbError::Connect)
}

/// Applies pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    run_migrations(pool, &MIGRATOR).await
}

/// Applies `migrator`'s pending migrations on a connection of `pool` without
/// a statement timeout (an index on a big table, or the wait for another
/// instance's migration lock, may take longer than a query may), which is
/// closed afterwards rather than returned to the pool with that setting.
pub async fn run_migrations(pool: &PgPool, migrator: &Migrator) -> Result<(), DbError> {
    let mut conn = pool.acquire().await.map_err(DbError::Connect)?;
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut *conn)
        .await
        .map_err(DbError::Connect)?;
    let applied = migrator.run(&mut *conn).await;
    if let Err(error) = conn.close().await {
        tracing::debug!(%error, "closing the migrations' connection");
    }
    applied?;
    Ok(())
}

/// Fails when migrations of this binary are not applied to the database.
pub async fn ensure_migrated(pool: &PgPool) -> Result<(), DbError> {
    ensure_applied(pool, &MIGRATOR).await
}

/// Fails when `migrator`'s migrations are not applied where `pool` connects
/// (its search path decides which bookkeeping table is read).
pub async fn ensure_applied(pool: &PgPool, migrator: &Migrator) -> Result<(), DbError> {
    let applied: Vec<i64> =
        match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(versions) => versions,
            // No bookkeeping table yet: nothing is applied.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
            Err(error) => return Err(DbError::Connect(error)),
        };
    let pending = migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
        .count();
    if pending == 0 {
        Ok(())
    } else {
        Err(DbError::PendingMigrations { pending })
    }
}

/// Whether `error` means Postgres is out of reach or refusing work for now (an
/// outage, a restart, a failover, an exhausted server), not a bug: the client
/// is answered 503 with `Retry-After`.
///
/// That is the pool's own failures (timed out, closed), the transport's (I/O,
/// TLS, a protocol breach such as a server or a PgBouncer that accepts and
/// closes), a crashed connection worker, and the SQLSTATEs of class 08
/// (connection exception), 53 (insufficient resources, `too_many_connections`
/// among them), 57P01-57P03 (administrator or crash shutdown, cannot connect
/// now), 57014 (a statement cancelled, by `statement_timeout` say) and 25006
/// (a read-only transaction: a failover left us on a standby).
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(&*code, "57P01" | "57P02" | "57P03" | "57014" | "25006")
        }),
        _ => false,
    }
}

/// Whether an operation that failed with `error` may be tried once more on
/// another connection: the connection broke (or the server ended it) before
/// anything could be committed. A pool that timed out or closed is not retried:
/// it has already waited, or the process is stopping.
fn is_retryable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || matches!(&*code, "57P01" | "57P02")),
        _ => false,
    }
}

/// Runs `operation`, and once more if it failed on a broken connection.
///
/// Only for operations that are safe to repeat: a read, or a transaction's
/// `BEGIN` (see [`begin`]); never a statement that may have taken effect. The
/// second try usually gets a live connection (the pool pings one that sat
/// idle), or fails as an outage.
pub async fn retry_once<T, F, Fut>(mut operation: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    match operation().await {
        Err(error) if is_retryable(&error) => {
            tracing::warn!(error = %bff_core::problem::ErrorChain(&error), "Postgres connection broke; trying once more");
            metrics::counter!("bff_db_retries_total").increment(1);
            operation().await
        }
        result => result,
    }
}

/// Begins a transaction, once more on another connection if the first one
/// turned out to be broken (nothing has happened yet, so that is safe).
pub async fn begin(pool: &PgPool) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
    retry_once(|| pool.begin()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error Postgres itself returns for `sqlstate`, raised by a real server.
    async fn raised(conn: &mut PgConnection, sqlstate: &str) -> sqlx::Error {
        let sql =
            format!("DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '{sqlstate}'; END $$");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(conn)
            .await
            .expect_err("raised")
    }

    #[tokio::test]
    async fn outages_are_told_from_bugs_and_bad_input() {
        let mut conn = PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres")
            .await
            .expect("postgres is running");
        for sqlstate in [
            "08000", "08003", "08006", "08001", "08P01", "57P01", "57P02", "57P03", "53300",
            "53100", "57014", "25006",
        ] {
            let error = raised(&mut conn, sqlstate).await;
            assert!(is_unavailable(&error), "{sqlstate}");
        }
        for sqlstate in ["23505", "22P02", "40001", "42601", "P0001"] {
            let error = raised(&mut conn, sqlstate).await;
            assert!(!is_unavailable(&error), "{sqlstate}");
            assert!(!is_retryable(&error), "{sqlstate}");
        }
        for error in [
            sqlx::Error::Protocol("unexpected end of stream".into()),
            sqlx::Error::Io(std::io::ErrorKind::UnexpectedEof.into()),
            sqlx::Error::WorkerCrashed,
        ] {
            assert!(is_unavailable(&error) && is_retryable(&error), "{error}");
        }
        // A pool that already waited, or is closing, is answered, not retried.
        for error in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed] {
            assert!(is_unavailable(&error) && !is_retryable(&error), "{error}");
        }
    }

    #[tokio::test]
    async fn a_connection_that_died_while_idle_is_replaced_before_a_query_gets_it() {
        let args = DatabaseArgs {
            database_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            database_max_connections: 1,
            database_acquire_timeout: Duration::from_secs(5),
            database_statement_timeout: Duration::from_secs(15),
            migrate_on_start: None,
        };
        let options = PgConnectOptions::from_str(args.database_url.expose_secret())
            .expect("url")
            .application_name("bff-pool-test");
        let pool = pool_options(&args)
            .connect_with(options)
            .await
            .expect("postgres is running");
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .expect("pid");
        // Another session ends the pooled connection, as a Postgres restart or
        // a proxy's idle timeout would, while it sits idle.
        let mut admin = PgConnection::connect(args.database_url.expose_secret())
            .await
            .expect("admin");
        let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&mut admin)
            .await
            .expect("terminate");
        assert!(ended);
        tokio::time::sleep(PING_IF_IDLE_FOR + Duration::from_millis(200)).await;
        // The ping finds it dead, and the query runs on a new connection.
        let new_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .expect("a live connection");
        assert_ne!(new_pid, pid);
    }

    #[tokio::test]
    async fn a_statement_past_the_timeout_is_cancelled_by_postgres() {
        let args = DatabaseArgs {
            database_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            database_max_connections: 1,
            database_acquire_timeout: Duration::from_secs(5),
            database_statement_timeout: Duration::from_millis(200),
            migrate_on_start: None,
        };
        let pool = pool_options(&args)
            .connect_with(connect_options(&args, "bff-timeout-test").expect("options"))
            .await
            .expect("postgres is running");
        let setting: String = sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(&pool)
            .await
            .expect("show");
        assert_eq!(setting, "200ms");
        let started = std::time::Instant::now();
        let error = sqlx::query("SELECT pg_sleep(5)")
            .execute(&pool)
            .await
            .expect_err("cancelled");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "not run to its end"
        );
        // 57014, query_canceled: an outage to the client (503), not a 500.
        assert!(is_unavailable(&error), "{error}");
        // The pool's connection is fine afterwards.
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&pool)
            .await
            .expect("usable");
        assert_eq!(one, 1);
    }
}
