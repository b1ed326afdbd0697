//! The endpoints that work with one-time codes: sign-up and password reset.
//!
//! Enumeration: `verify-code` answers the same whether or not the identifier
//! has an account (an existing one gets an `account_exists` notice instead of a
//! code), and `reset-password` answers the same for an unknown identifier (and
//! sends nothing). Throttling happens before the lookup, so it treats unknown
//! and known identifiers alike too.

pub mod routes;
pub mod service;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use self::service::CodeService;

/// What a code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Sign-up.
    Register,
    /// Password reset.
    ResetPassword,
}

impl Purpose {
    /// The purpose as the code store names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::ResetPassword => "reset_password",
        }
    }
}

/// A code was sent, or would have been.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CodeSent {
    /// Seconds before another code can be asked for.
    resend_after: u64,
    /// Seconds the code is valid.
    expires_in: u64,
}
