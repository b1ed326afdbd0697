//! Validated identity types: parsed once at the edge, unable to hold a bad value.
//! Identifiers come from `bff-auth`; roles and the password policy are the app's.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use bff_auth::identity::{Email, Identifier, InvalidIdentifier, Phone};

/// A role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Reads everyone's data, deposits.
    Manager,
    /// Their own data (the default).
    Customer,
}

impl Role {
    /// The stored and token form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Manager => "manager",
            Self::Customer => "customer",
        }
    }

    /// Parses the stored form.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "admin" => Some(Self::Admin),
            "manager" => Some(Self::Manager),
            "customer" => Some(Self::Customer),
            _ => None,
        }
    }
}

/// A password that meets the policy: 8 to 128 characters (Unicode allowed, no
/// composition rules) and not one of the 10,000 most common passwords.
#[derive(Clone)]
pub struct NewPassword(secrecy::SecretString);

/// Why a new password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    /// Fewer than 8 characters.
    #[error("must be at least 8 characters")]
    TooShort,
    /// More than 128 characters.
    #[error("must be at most 128 characters")]
    TooLong,
    /// On the common-passwords list.
    #[error("is too common; choose one that is harder to guess")]
    TooCommon,
}

/// The 10,000 most common passwords of 8 or more characters, lower-cased, from
/// the zxcvbn-ts frequency list (MIT; see `auth/common-passwords.LICENSE.txt`).
static COMMON: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
    std::sync::LazyLock::new(|| include_str!("auth/common-passwords.txt").lines().collect());

impl NewPassword {
    /// Checks `password` against the policy.
    pub fn parse(password: &str) -> Result<Self, WeakPassword> {
        let chars = password.chars().count();
        if chars < 8 {
            return Err(WeakPassword::TooShort);
        }
        if chars > 128 {
            return Err(WeakPassword::TooLong);
        }
        if COMMON.contains(password.to_lowercase().as_str()) {
            return Err(WeakPassword::TooCommon);
        }
        Ok(Self(password.to_owned().into()))
    }

    /// The password, for hashing.
    pub fn into_secret(self) -> secrecy::SecretString {
        self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_follow_the_policy() {
        assert!(NewPassword::parse("correct horse battery staple").is_ok());
        assert!(
            NewPassword::parse("пароль-дракон").is_ok(),
            "Unicode allowed"
        );
        assert_eq!(
            NewPassword::parse("short").err(),
            Some(WeakPassword::TooShort)
        );
        assert_eq!(
            NewPassword::parse("ÿ".repeat(129).as_str()).err(),
            Some(WeakPassword::TooLong)
        );
        assert!(
            NewPassword::parse(&"ÿ".repeat(128)).is_ok(),
            "counted in characters, not bytes"
        );
        for common in ["password", "PASSWORD", "12345678", "qwertyuiop", "iloveyou"] {
            assert_eq!(
                NewPassword::parse(common).err(),
                Some(WeakPassword::TooCommon),
                "{common}"
            );
        }
    }
}
