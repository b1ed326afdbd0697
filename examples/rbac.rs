//! Role-based access control with no infrastructure:
//!
//! ```text
//! cargo run --example rbac
//! ```
//!
//! It declares `customer`, `manager` (inherits customer) and `admin` (inherits
//! manager), guards `/admin/users` with `RequirePermissionLayer`, and lets
//! `/wallets/{owner}` pick its scope with the `Authz` extractor. Requests carry
//! their caller in a demo header that a tiny layer turns into a `DemoCaller`
//! (any type implementing `bff_rbac::Subject` will do); in a real service
//! `bff_auth::layer::JwtLayer` puts a `Principal` there from a token.

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use bff_core::Problem;
use bff_rbac::{Authz, Policy, RequirePermissionLayer, Scope, Subject};
use http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

fn policy() -> Result<Policy, bff_rbac::PolicyError> {
    Policy::builder()
        .role("customer", [], ["wallets:read"])
        .role(
            "manager",
            ["customer"],
            ["users:read_any", "wallets:read_any"],
        )
        .role("admin", ["manager"], ["users:manage"])
        .build()
}

/// The caller, as the demo layer records it.
#[derive(Clone)]
struct DemoCaller {
    user: String,
    role: String,
}

impl Subject for DemoCaller {
    fn subject_id(&self) -> &str {
        &self.user
    }

    fn role(&self) -> &str {
        &self.role
    }
}

async fn wallets(authz: Authz<DemoCaller>, Path(owner): Path<String>) -> Result<String, Problem> {
    authz.require("wallets:read")?;
    match authz.scope("wallets:read_any") {
        Scope::Any => Ok(format!("{owner}'s wallets (any owner allowed)")),
        Scope::Own(me) if me == owner => Ok(format!("{owner}'s wallets (your own)")),
        // Someone else's records are 404, never 403: existence must not leak.
        Scope::Own(_) => Err(Problem::not_found()),
    }
}

/// Stands in for `JwtLayer`: `x-demo-caller: <user>:<role>` becomes a `DemoCaller`.
async fn demo_caller(
    mut req: Request<Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let caller = req
        .headers()
        .get("x-demo-caller")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(':'))
        .map(|(user, role)| DemoCaller {
            user: user.to_owned(),
            role: role.to_owned(),
        });
    if let Some(principal) = caller {
        req.extensions_mut().insert(principal);
    }
    next.run(req).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = policy()?;
    let admin_routes = Router::new()
        .route("/admin/users", get(|| async { "every user" }))
        .layer(RequirePermissionLayer::<DemoCaller>::new(
            policy.clone(),
            "users:read_any",
        ));
    let app = Router::new()
        .route("/wallets/{owner}", get(wallets))
        .with_state(policy)
        .merge(admin_routes)
        .layer(axum::middleware::from_fn(demo_caller));

    for (path, caller) in [
        ("/admin/users", None),
        ("/admin/users", Some("ada:customer")),
        ("/admin/users", Some("max:manager")),
        ("/wallets/ada", Some("ada:customer")),
        ("/wallets/bob", Some("ada:customer")),
        ("/wallets/bob", Some("max:manager")),
    ] {
        let mut request = Request::get(path);
        if let Some(caller) = caller {
            request = request.header("x-demo-caller", caller);
        }
        let response = app.clone().oneshot(request.body(Body::empty())?).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let body = String::from_utf8_lossy(&body);
        let summary = if body.starts_with('{') {
            "(problem+json)"
        } else {
            body.as_ref()
        };
        println_line(&format!(
            "{:16} {:14} {status}  {summary}",
            caller.unwrap_or("anonymous"),
            path
        ));
    }
    Ok(())
}

fn println_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}
