use std::process::Command;

use bff_app::startup::{Application, StartupError};
use secrecy::ExposeSecret;

use crate::helpers::{TestDatabase, default_config};

fn bff() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bff"));
    // The tests' own environment must not leak into the binary's settings.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BFF_") {
            command.env_remove(key);
        }
    }
    command.env("RUST_LOG", "warn");
    command
}

/// Runs `bff ARGS --database-url <database>` (cheap hashing, a known seed
/// password) and asserts it succeeds.
async fn run_against(database: &TestDatabase, args: &[&str]) {
    let mut command = bff();
    command
        .args(args)
        .args(["--database-url", database.url.expose_secret()])
        .env("BFF_SEED_PASSWORD", "a demo password")
        .env("BFF_PASSWORD_MEMORY_KIB", "1024")
        .env("BFF_PASSWORD_ITERATIONS", "1");
    let output = tokio::process::Command::from(command)
        .output()
        .await
        .expect("runs");
    assert!(
        output.status.success(),
        "bff {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn serve_help_lists_every_setting_with_its_variable() {
    let output = bff()
        .args(["serve", "--help"])
        .env("BFF_DATABASE_URL", "postgres://u:hunter2@db/x")
        .output()
        .expect("runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for variable in [
        "BFF_PROFILE",
        "BFF_LOG_FORMAT",
        "BFF_HTTP_ADDR",
        "BFF_BODY_LIMIT",
        "BFF_REQUEST_TIMEOUT",
        "BFF_SHUTDOWN_TIMEOUT",
        "BFF_CORS_ORIGINS",
        "BFF_READINESS_TIMEOUT",
        "BFF_DATABASE_URL",
        "BFF_DATABASE_MAX_CONNECTIONS",
        "BFF_DATABASE_ACQUIRE_TIMEOUT",
        "BFF_MIGRATE_ON_START",
        "BFF_REDIS_URL",
        "BFF_REDIS_PREFIX",
        "BFF_NATS_URL",
        "BFF_NATS_PREFIX",
        "BFF_ORDERS_URL",
        "BFF_ORDERS_DATABASE_URL",
        "BFF_DASHBOARD_DEADLINE",
        "BFF_BREAKER_FAILURES",
    ] {
        assert!(help.contains(variable), "{variable} missing from:\n{help}");
    }
    assert!(
        !help.contains("hunter2"),
        "secret values are not echoed in help"
    );
}

#[tokio::test]
async fn bad_settings_are_refused_before_anything_starts() {
    let mut command = tokio::process::Command::from(bff());
    command
        .args(["serve", "--cors-origins", "https://x.example/path"])
        .kill_on_drop(true);
    // Were the setting accepted, the server would start and never exit: bounded.
    let output = tokio::time::timeout(std::time::Duration::from_secs(30), command.output())
        .await
        .expect("refused at once, not started")
        .expect("runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("origin"));
}

#[tokio::test]
async fn migrate_creates_the_database_and_is_idempotent() {
    let database = TestDatabase::new(&default_config());
    for _ in 0..2 {
        run_against(&database, &["migrate"]).await;
    }
    let pool = sqlx::PgPool::connect(database.url.expose_secret())
        .await
        .expect("database exists");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM currencies")
        .fetch_one(&pool)
        .await
        .expect("migrated");
    assert!(count > 30);
    // The orders service's schema, with its own bookkeeping.
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders._sqlx_migrations")
        .fetch_one(&pool)
        .await
        .expect("orders migrated");
    assert!(orders >= 1);
    pool.close().await;
}

#[tokio::test]
async fn prod_refuses_a_schema_that_is_behind_unless_asked_to_migrate() {
    let mut config = default_config();
    let database = TestDatabase::new(&config);
    config.database.database_url = database.url.clone();
    config.http.http_addr = "127.0.0.1:0".parse().expect("addr");
    config.common.profile = bff_app::config::Profile::Prod;
    let key =
        bff_auth::keys::SigningKey::generate(bff_auth::keys::Algorithm::EdDsa).expect("keygen");
    let pem = String::from_utf8(key.private_pem().to_vec()).expect("PEM");
    config.auth.jwt_signing_key = Some(secrecy::SecretString::from(pem));
    let run = uuid::Uuid::now_v7().simple().to_string();
    config.redis.redis_prefix = format!("test:{run}:");
    config.nats.nats_prefix = format!("TEST_{run}_");
    let _streams = crate::helpers::TestStreams::new(&config);

    let error = Application::build(&config)
        .await
        .expect_err("pending migrations");
    assert!(
        matches!(
            error,
            StartupError::Database(bff_app::db::DbError::PendingMigrations { .. })
        ),
        "{error:?}"
    );

    config.database.migrate_on_start = Some(true);
    let error = Application::build(&config)
        .await
        .expect_err("no code secret");
    assert!(
        matches!(
            error,
            StartupError::Auth(bff_app::auth::AuthSetupError::NoCodeSecret)
        ),
        "{error:?}"
    );
    config.codes.code_secret = Some(secrecy::SecretString::from(
        "a production code secret of 32+ bytes",
    ));
    let error = Application::build(&config)
        .await
        .expect_err("no senders for the notifier");
    assert!(matches!(error, StartupError::Senders(_)), "{error:?}");
    config.notifier.email_sender = Some(bff_app::config::EmailSenderKind::Log);
    config.notifier.sms_sender = Some(bff_app::config::SmsSenderKind::Log);
    let error = Application::build(&config)
        .await
        .expect_err("the log sender is refused in prod");
    assert!(matches!(error, StartupError::Senders(_)), "{error:?}");
    // Delivery elsewhere: this instance runs no notifier and needs no senders.
    config.notifier.notifier = false;
    let app = Application::build(&config)
        .await
        .expect("migrates when asked");
    drop(app);
    config.database.migrate_on_start = None;
    let app = Application::build(&config)
        .await
        .expect("starts on a current schema");
    drop(app);
}

#[test]
fn keys_generate_writes_a_private_key_only_its_owner_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("bff-keys-{}", uuid::Uuid::now_v7().simple()));
    for algorithm in ["eddsa", "es256", "rs256"] {
        let output = bff()
            .args(["keys", "generate", "--algorithm", algorithm, "--out-dir"])
            .arg(&dir)
            .output()
            .expect("runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let kid = stdout
            .lines()
            .find_map(|l| l.strip_prefix("kid:"))
            .map(str::trim)
            .expect("prints the kid")
            .to_owned();
        let private = dir.join(format!("{kid}.pem"));
        let mode = std::fs::metadata(&private)
            .expect("private key written")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{algorithm}");
        let key = bff_auth::keys::SigningKey::from_pem(&std::fs::read(&private).expect("read"))
            .expect("loads");
        assert_eq!(key.kid(), kid);
        let public = bff_auth::keys::PublicKey::from_pem(
            &std::fs::read(dir.join(format!("{kid}.pub.pem"))).expect("read"),
        )
        .expect("loads");
        assert_eq!(public.kid(), kid);
    }
    let refused = bff()
        .args(["keys", "generate", "--algorithm", "hs256"])
        .output()
        .expect("runs");
    assert!(!refused.status.success(), "HMAC is not an option");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn seed_creates_the_demo_accounts_once() {
    let database = TestDatabase::new(&default_config());
    run_against(&database, &["migrate"]).await;
    for _ in 0..2 {
        run_against(&database, &["seed"]).await;
    }
    let pool = sqlx::PgPool::connect(database.url.expose_secret())
        .await
        .expect("connect");
    let roles: Vec<(String, String)> =
        sqlx::query_as("SELECT email, role FROM users ORDER BY email")
            .fetch_all(&pool)
            .await
            .expect("query");
    assert_eq!(
        roles,
        vec![
            ("admin@example.com".to_owned(), "admin".to_owned()),
            ("customer@example.com".to_owned(), "customer".to_owned()),
            ("manager@example.com".to_owned(), "manager".to_owned()),
        ]
    );
    // In prod, seeding is a successful no-op.
    run_against(&database, &["seed", "--profile", "prod"]).await;

    // A later BFF_SEED_PASSWORD is the demo accounts' password from then on
    // (the README's walkthrough seeds first without one).
    let hashes = || async {
        sqlx::query_scalar::<_, String>("SELECT password_hash FROM users ORDER BY email")
            .fetch_all(&pool)
            .await
            .expect("query")
    };
    let before = hashes().await;
    run_against(&database, &["seed"]).await;
    assert_eq!(hashes().await, before, "the same password rewrites nothing");
    run_against(
        &database,
        &["seed", "--seed-password", "another demo password"],
    )
    .await;
    let hasher = bff_auth::password::PasswordHasher::new(Default::default()).expect("hasher");
    for hash in hashes().await {
        for (password, expected) in [("another demo password", true), ("a demo password", false)] {
            let verification = hasher
                .verify(password.to_owned().into(), Some(hash.clone()))
                .await
                .expect("verifies");
            assert_eq!(verification.matches, expected, "{password}");
        }
    }
    pool.close().await;
}

#[tokio::test]
async fn bff_orders_runs_as_its_own_process() {
    use bff_app::identity::Role;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let orders_url = format!("http://127.0.0.1:{port}");
    let app = crate::helpers::TestApp::spawn_with(|config| {
        config.backends.orders_url = Some(orders_url.parse().expect("url"));
        config.backends.dashboard_cache_ttl = std::time::Duration::ZERO;
    })
    .await;
    let mut command = tokio::process::Command::from(bff());
    command
        .args(["orders", "--orders-addr", &format!("127.0.0.1:{port}")])
        .args(["--orders-jwks-url", &app.url("/.well-known/jwks.json")])
        .args(["--database-url", app.direct_database_url().expose_secret()])
        .args(["--nats-prefix", &app.config.nats.nats_prefix])
        .kill_on_drop(true);
    let mut child = command.spawn().expect("starts");

    let mut serving = false;
    for _ in 0..200 {
        let endpoint = tonic::transport::Endpoint::from_shared(orders_url.clone()).expect("url");
        if let Ok(channel) = endpoint.connect().await
            && let Ok(reply) = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: "bff.orders.v1.Orders".to_owned(),
                })
                .await
        {
            serving = reply.get_ref().status() == ServingStatus::Serving;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(serving, "`bff orders` serves gRPC health");

    let alice = app.user("alice@example.com", Role::Customer).await;
    let created = app
        .call(
            reqwest::Method::POST,
            "/api/v1/orders",
            Some(&alice.token),
            Some(&serde_json::json!({"currency": "EUR", "items": [{"sku": "A", "quantity": 1, "unit_price": "2.50"}]})),
        )
        .await;
    assert_eq!(created.status(), 201);
    let dashboard: serde_json::Value = app.get_json_authed("/api/v1/dashboard", &alice.token).await;
    assert_eq!(dashboard["meta"]["complete"], true, "{dashboard}");
    assert_eq!(dashboard["loyalty"]["points"], 2);

    // SIGTERM: a clean, prompt exit.
    let pid = child.id().expect("running");
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
        .await
        .expect("stops in time")
        .expect("waits");
    assert!(status.success(), "{status:?}");
}
