//! Runnable examples of the bff crates, one thing each.
//!
//! Run them from the repository root with `cargo run --example NAME`:
//!
//! | example | shows | needs |
//! |---|---|---|
//! | `core_stack` | a whole service on `bff-core`: problems, request ids, metrics, readiness, graceful shutdown, OpenAPI and Swagger UI | nothing |
//!
//! Examples whose name says so (none yet) need Postgres, Redis or NATS on loopback.
