//! A complete service on `bff-core` alone, with no infrastructure:
//!
//! ```text
//! cargo run --example core_stack
//! curl -i localhost:3000/greet/ada          # 200, with X-Request-Id
//! curl -i localhost:3000/greet/x            # 422 problem naming the field
//! curl -i localhost:3000/panic              # 500 problem, the panic only in the log
//! curl -s localhost:3000/healthz/ready      # readiness with one custom check
//! curl -s localhost:3000/metrics            # Prometheus, by route template
//! open http://localhost:3000/docs           # Swagger UI, served offline
//! ```
//!
//! Ctrl-C shuts it down gracefully. `BFF_EXAMPLE_ADDR` changes the address.

use std::time::Duration;

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use aide::openapi::OpenApi;
use axum::extract::Path;
use bff_core::extract::Json;
use bff_core::health::{BoxFuture, CheckError, Readiness, ReadinessCheck};
use bff_core::openapi::ApiDocs;
use bff_core::stack::{HttpConfig, apply, not_found};
use bff_core::{Problem, health, metrics, openapi, server, telemetry};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, JsonSchema)]
struct Name {
    /// Who to greet, 2 to 40 characters.
    name: String,
}

#[derive(Serialize, JsonSchema)]
struct Greeting {
    message: String,
}

async fn greet(Path(Name { name }): Path<Name>) -> Result<Json<Greeting>, Problem> {
    if !(2..=40).contains(&name.chars().count()) {
        return Err(Problem::invalid_field("name", "must be 2 to 40 characters"));
    }
    Ok(Json(Greeting {
        message: format!("Hello, {name}!"),
    }))
}

async fn panics() -> Result<Json<Greeting>, Problem> {
    panic!("this message stays in the log")
}

/// A readiness check of the example's own: the clock works.
struct Clock;

impl ReadinessCheck for Clock {
    fn name(&self) -> &str {
        "clock"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), CheckError>> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok(())
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = telemetry::init(telemetry::LogFormat::Pretty, "info");

    let docs = ApiDocs::new();
    let mut api = OpenApi::default();
    let router = ApiRouter::new()
        .api_route(
            "/greet/{name}",
            get_with(greet, |op| op.summary("Greet someone")),
        )
        .api_route("/panic", get_with(panics, |op| op.summary("Always panics")))
        .merge(health::routes(Readiness::new().with_check(Clock)))
        .merge(metrics::routes(metrics::install_recorder()))
        .merge(openapi::routes(docs.clone()))
        .fallback(not_found)
        .finish_api_with(&mut api, |api| {
            api.title("core_stack example")
                .default_response::<Problem>()
        });
    docs.publish(&api)?;
    let app = apply(router, &HttpConfig::default());

    let addr = std::env::var("BFF_EXAMPLE_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "listening; try /greet/ada, /panic, /healthz/ready, /metrics, /docs; Ctrl-C (SIGINT) or SIGTERM stops it gracefully");
    server::serve(
        listener,
        app,
        server::shutdown_signal(),
        server::ServerConfig::default().with_grace(Duration::from_secs(10)),
    )
    .await?;
    Ok(())
}
