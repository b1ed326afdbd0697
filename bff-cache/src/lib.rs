//! # bff-cache
//!
//! Two tower layers every BFF needs, both keyed state over the same backends,
//! which is why they live in one crate: a distributed token-bucket rate
//! limiter ([`ratelimit`]) and a response cache ([`response`]). Each backend is in
//! memory (single instance, examples, the fallback) or, with the `redis`
//! feature, in Redis, shared by every instance.
#![deny(missing_docs, unreachable_pub, unsafe_code)]

pub mod ratelimit;
pub mod response;
