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
//! | `rbac` | `bff-rbac`'s permission layer and extractor: 401, 403 and 200 by role | nothing |
//! | `rate_limit` | `bff-cache`'s GCRA rate limiter in memory: a burst, 429 with `Retry-After`, another client unaffected | nothing |
//! | `response_cache` | `bff-cache`'s response cache in memory in front of a slow route: a miss, then hits | nothing |
//! | `browser_session` | `bff-auth`'s cookie sessions through `JwtLayer`: login, the CSRF rule (403 without `X-CSRF` or cross-site), bearer plus cookie 400, logout | nothing |
//! | `proxy` | `bff-aggregate`'s remote-API proxy: a minted token for the upstream, headers filtered, traversal refused | nothing |
//! | `password_hashing` | `bff-auth`'s `PasswordHasher`: its rate against argon2's ceiling, flat memory, `Busy` when the queue is full (run with `--release`) | nothing |
//! | `aggregate_load`, `load_target` | the servers of `scripts/load/aggregate.sh`, `scripts/load/peers.sh` and `scripts/load/cache.sh` | nothing |
//!
//! Examples whose name says so (none yet) need Postgres, Redis or NATS on loopback.
