//! Integration tests of the reference app against real Postgres, Redis and NATS.
//! One test binary (rather than one per file) keeps link time down.

mod auth;
mod backends;
mod browser;
mod cache;
mod cli;
mod codes;
mod currencies;
mod dashboard;
mod errors;
mod health;
mod helpers;
mod limits;
mod money;
mod nats_auth;
mod nats_cluster;
mod notifier;
mod oauth;
mod observability;
mod openapi;
mod orders;
mod outages;
mod outbox;
mod rbac;
mod records;
mod redis_cluster;
mod traces;
