//! The reference BFF: the `bff` binary's library.
//!
//! [`startup::Application`] wires the configuration, the pools and the router;
//! `main.rs` only parses the command line and starts it. [`startup::app`] builds
//! the HTTP application alone, for tests.
#![deny(missing_docs, unreachable_pub, unsafe_code)]

pub mod admin;
pub mod audit;
pub mod auth;
pub mod config;
pub mod currencies;
pub mod dashboard;
pub mod db;
pub mod error;
pub mod identity;
mod ids;
pub mod limits;
pub mod messaging;
pub mod money;
mod ops;
pub mod orders;
pub mod rbac;
pub mod records;
pub mod seed;
pub mod startup;
pub mod users;
mod validation;
pub mod wallets;
