//! Runnable examples for the bff crates live beside this file; see `Cargo.toml`.
