//! The `bff` binary: parses the command line and runs the chosen subcommand.

use std::process::ExitCode;

use std::io::Write;

use bff_app::config::{
    Cli, Command, CommonArgs, KeysCommand, KeysGenerateArgs, LogFormat, Profile, SeedArgs,
};
use bff_app::db;
use bff_app::startup::Application;
use bff_auth::keys::SigningKey;
use bff_core::problem::ErrorChain;
use bff_core::server::shutdown_signal;
use bff_core::telemetry::otel::Tracing;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let command = Cli::parse().into_command();
    let result = match command {
        Command::Serve(args) => {
            let tracing = init_logs(&args.common, "bff");
            // Installed before the slow start-up, so an early SIGTERM stops cleanly.
            let shutdown = shutdown_signal();
            let result = match Application::build(&args).await {
                Ok(app) => app.run_until_stopped(shutdown).await.map_err(Into::into),
                Err(error) => Err(error.into()),
            };
            if let Some(tracing) = tracing {
                tracing.shutdown();
            }
            result
        }
        Command::Migrate(args) => {
            init_logs(&args.common, "bff-migrate");
            migrate(&args).await
        }
        Command::Seed(args) => {
            init_logs(&args.common, "bff-seed");
            seed(&args).await
        }
        Command::Orders(args) => {
            let tracing = init_logs(&args.common, "bff-orders");
            let result = bff_app::orders::server::run(&args, shutdown_signal())
                .await
                .map_err(Into::into);
            if let Some(tracing) = tracing {
                tracing.shutdown();
            }
            result
        }
        Command::Keys(KeysCommand::Generate(args)) => keys_generate(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %ErrorChain(error.as_ref()), "exiting");
            ExitCode::FAILURE
        }
    }
}

/// Applies the BFF's migrations, then the orders service's in its own schema.
async fn migrate(args: &bff_app::config::MigrateArgs) -> Result<(), Box<dyn std::error::Error>> {
    let pool = db::connect(&args.database).await?;
    db::migrate(&pool).await?;
    pool.close().await;
    tracing::info!("migrations applied");
    let orders =
        bff_app::orders::server::connect(&args.store.database(&args.database), true).await?;
    orders.close().await;
    tracing::info!("orders migrations applied");
    Ok(())
}

async fn seed(args: &SeedArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.common.profile == Profile::Prod {
        // Demo accounts with known passwords have no place in production.
        tracing::info!("the prod profile never seeds demo accounts; nothing to do");
        return Ok(());
    }
    let pool = db::connect(&args.database).await?;
    db::ensure_migrated(&pool).await?;
    let hasher = args.password.hasher()?;
    bff_app::seed::seed(&pool, &hasher, args.seed.seed_password.as_ref()).await?;
    pool.close().await;
    Ok(())
}

/// Writes `<kid>.pem` (private, 0600) and `<kid>.pub.pem`, and prints their paths.
fn keys_generate(args: &KeysGenerateArgs) -> Result<(), Box<dyn std::error::Error>> {
    let generated = SigningKey::generate(args.algorithm)?;
    let private = args.out_dir.join(format!("{}.pem", generated.kid()));
    let public = args.out_dir.join(format!("{}.pub.pem", generated.kid()));
    bff_app::auth::write_private(&private, generated.private_pem())?;
    std::fs::write(&public, generated.public_pem())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "algorithm: {}", generated.algorithm())?;
    writeln!(out, "kid:       {}", generated.kid())?;
    writeln!(
        out,
        "private:   {} (mode 0600; set BFF_JWT_SIGNING_KEY_FILE to it)",
        private.display()
    )?;
    writeln!(out, "public:    {}", public.display())?;
    Ok(())
}

/// Installs logging and, with `BFF_TRACING`, the OTLP trace exporter for
/// `service`; the exporter is returned so that its last spans are flushed at
/// exit.
fn init_logs(common: &CommonArgs, service: &str) -> Option<Tracing> {
    let format = match common.log_format() {
        LogFormat::Pretty => bff_core::telemetry::LogFormat::Pretty,
        LogFormat::Json => bff_core::telemetry::LogFormat::Json,
    };
    let (tracing, error) = if common.tracing {
        match Tracing::from_env(service) {
            Ok(tracing) => (Some(tracing), None),
            Err(error) => (None, Some(error)),
        }
    } else {
        (None, None)
    };
    // The first and only initialisation in this process, so it cannot collide.
    // Postgres's NOTICEs ("... already exists, skipping" from idempotent
    // migrations and setup) reach sqlx at INFO; they are noise at start, so
    // they show only when `RUST_LOG` asks for them.
    let _ = bff_core::telemetry::init_with_tracing(
        format,
        "info,sqlx::postgres::notice=warn",
        tracing.as_ref(),
    );
    if let Some(error) = error {
        // Tracing was asked for and cannot run: say so loudly, and serve on.
        tracing::error!(%error, "BFF_TRACING is on but tracing could not start");
    }
    tracing
}
