//! Runnable examples of the bff crates, one thing each.
//!
//! Run them from the repository root with `cargo run --example NAME`:
//!
//! | example | shows | needs |
//! |---|---|---|
//! | `core_stack` | a whole service on `bff-core`: problems, request ids, metrics, readiness, graceful shutdown, OpenAPI and Swagger UI | nothing |
//! | `jwt_layer` | `bff-auth`'s `JwtLayer`: 401 without a token, the principal with one, the verified-token cache | nothing |
//! | `hyper_stack` | `JwtLayer`, `RequirePermissionLayer` and `RateLimitLayer` on a bare hyper service (no axum): 401, 403, 200, 429, and a gRPC caller's `grpc-status` | nothing |
//! | `jwks_client` | verifying another issuer's tokens from its JWKS URL, through a key rotation | nothing |
//! | `oauth_flow` | `bff-auth`'s social login (`oauth` feature): start, callback and profile against an in-process fake OpenID provider that checks PKCE and `redirect_uri`; a replayed callback refused | nothing |
//! | `aggregate` | `bff-aggregate`: three backends at once, one slow and one down, a partial payload and its meta; then a required failure | nothing |
//!
//! Examples whose name says so (none yet) need Postgres, Redis or NATS on loopback.
