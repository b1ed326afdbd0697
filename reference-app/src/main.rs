//! The `bff` binary: parses the command line and runs the chosen subcommand.

use std::process::ExitCode;

use bff_app::config::{Cli, Command, CommonArgs, LogFormat};
use bff_app::db;
use bff_app::startup::Application;
use bff_core::problem::ErrorChain;
use bff_core::server::shutdown_signal;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let command = Cli::parse().into_command();
    let result = match command {
        Command::Serve(args) => {
            init_logs(&args.common);
            // Installed before the slow start-up, so an early SIGTERM stops cleanly.
            let shutdown = shutdown_signal();
            match Application::build(&args).await {
                Ok(app) => app.run_until_stopped(shutdown).await.map_err(Into::into),
                Err(error) => Err(error.into()),
            }
        }
        Command::Migrate(args) => {
            init_logs(&args.common);
            migrate(&args.database).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %ErrorChain(error.as_ref()), "exiting");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(args: &bff_app::config::DatabaseArgs) -> Result<(), Box<dyn std::error::Error>> {
    let pool = db::connect(args).await?;
    db::migrate(&pool).await?;
    tracing::info!("migrations applied");
    pool.close().await;
    Ok(())
}

fn init_logs(common: &CommonArgs) {
    let format = match common.log_format() {
        LogFormat::Pretty => bff_core::telemetry::LogFormat::Pretty,
        LogFormat::Json => bff_core::telemetry::LogFormat::Json,
    };
    // The first and only initialisation in this process, so it cannot collide.
    let _ = bff_core::telemetry::init(format, "info");
}
