//! # bff-aggregate
#![deny(missing_docs, unreachable_pub, unsafe_code)]
