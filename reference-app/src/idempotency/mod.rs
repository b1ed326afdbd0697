//! Safe retries of writes: a client sends an `Idempotency-Key` with a request;
//! a repeat with the same key and the same request replays the first answer,
//! and the same key with another request is a conflict.
//!
//! - [`key`]: what a key may be (the BFF's header and the orders service's
//!   gRPC field follow one rule).
//! - [`persistence`]: claiming a key and remembering its answer inside the
//!   write's own transaction, so the answer exists exactly when the write does.

pub mod key;
pub mod persistence;

pub use self::key::IdempotencyKey;
pub use self::persistence::{Claim, IdempotencyError, KeyClaim, request_hash};
