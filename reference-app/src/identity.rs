//! Validated identity types: parsed once at the edge, unable to hold a bad value.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An email address, trimmed and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// A phone number in E.164 form (`+79991234567`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

/// What a user signs in with: an email address or a phone number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    /// An email address.
    Email(Email),
    /// A phone number.
    Phone(Phone),
}

/// Why an identifier was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("must be an email address or a phone number in international form (+79991234567)")]
pub struct InvalidIdentifier;

impl Email {
    /// Parses an email address: trimmed, lower-cased, one `@` with a non-empty
    /// local part and a dotted domain, no spaces or control characters, at most 254
    /// characters (RFC 5321's limit).
    pub fn parse(input: &str) -> Result<Self, InvalidIdentifier> {
        let email = input.trim().to_lowercase();
        let (local, domain) = email.split_once('@').ok_or(InvalidIdentifier)?;
        let valid = email.len() <= 254
            && !local.is_empty()
            && local.len() <= 64
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with(['.', '-'])
            && !domain.ends_with(['.', '-'])
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
            && !email.chars().any(|c| {
                c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | ',' | ';')
            });
        if valid {
            Ok(Self(email))
        } else {
            Err(InvalidIdentifier)
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Phone {
    /// Parses a phone number given in international form. Spaces, dashes, dots and
    /// parentheses are dropped; what remains must be `+` and 7 to 15 digits, the
    /// first not 0 (E.164). National forms are refused rather than guessed.
    pub fn parse(input: &str) -> Result<Self, InvalidIdentifier> {
        let compact: String = input
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let digits = compact.strip_prefix('+').ok_or(InvalidIdentifier)?;
        let valid = (7..=15).contains(&digits.len())
            && digits.chars().all(|c| c.is_ascii_digit())
            && !digits.starts_with('0');
        if valid {
            Ok(Self(compact))
        } else {
            Err(InvalidIdentifier)
        }
    }

    /// The number, E.164.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Identifier {
    /// An email if the input has an `@`, else a phone number.
    pub fn parse(input: &str) -> Result<Self, InvalidIdentifier> {
        if input.contains('@') {
            Email::parse(input).map(Self::Email)
        } else {
            Phone::parse(input).map(Self::Phone)
        }
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Email(e) => f.write_str(&e.0),
            Self::Phone(p) => f.write_str(&p.0),
        }
    }
}

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
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            Identifier::parse("  Alice@Example.COM ").ok(),
            Some(Identifier::Email(Email("alice@example.com".into())))
        );
        for bad in [
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@example.com",
            "alice@@example.com",
            "alice@ex..com",
            "alice@-ex.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_must_be_international() {
        assert_eq!(
            Phone::parse("+7 (999) 123-45-67").map(|p| p.0).ok(),
            Some("+79991234567".to_owned())
        );
        for bad in [
            "89991234567",
            "+0123456789",
            "+12",
            "+1234567890123456",
            "+7999abc4567",
            "",
        ] {
            assert!(Identifier::parse(bad).is_err(), "{bad}");
        }
    }

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
