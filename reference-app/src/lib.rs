//! The reference BFF: the `bff` binary's library.
//!
//! The app is organised by feature; each feature folder has `routes.rs`
//! (extract, call one service function, map), `service.rs` (rules,
//! transactions, audit, cache invalidation), `store.rs` (the SQL) and a
//! domain error mapped to problem+json in one place:
//! [`auth`], [`users`], [`records`], [`wallets`], [`currencies`], [`orders`],
//! [`dashboard`], [`audit`], [`oauth`]. Shared HTTP plumbing lives in [`http`], safe
//! retries in [`idempotency`], and [`startup`] wires it all: `main.rs` only
//! parses the command line and starts it. `docs/architecture.md` walks one
//! request through the layers.
#![deny(missing_docs, unreachable_pub, unsafe_code)]

pub mod audit;
pub mod auth;
pub mod browser;
pub mod config;
pub mod currencies;
pub mod dashboard;
pub mod db;
pub mod http;
pub mod idempotency;
pub mod identity;
pub mod limits;
pub mod messaging;
pub mod money;
pub mod oauth;
pub mod orders;
pub mod rbac;
pub mod records;
pub mod seed;
pub mod startup;
pub mod users;
pub mod wallets;
