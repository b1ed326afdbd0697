//! ISO 4217 currencies: the reference table money amounts are checked against.
//!
//! [`routes`] serves `GET /currencies` (cached, public), [`service`] reads
//! through [`store`]; other features ask [`CurrencyService::find`].

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod error;
pub mod routes;
pub mod service;
pub mod store;

pub use self::error::CurrencyError;
pub use self::service::CurrencyService;

/// An ISO 4217 alphabetic code: exactly three upper-case ASCII letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String", description = "ISO 4217 alphabetic code, e.g. `EUR`.")]
pub struct CurrencyCode(String);

/// JSON Schema pattern of a [`CurrencyCode`].
pub const CODE_PATTERN: &str = "^[A-Z]{3}$";

/// The text is not an ISO 4217 code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("must be an ISO 4217 code: three upper-case letters such as `EUR`")]
pub struct InvalidCurrencyCode;

impl CurrencyCode {
    /// Parses a code.
    pub fn parse(code: &str) -> Result<Self, InvalidCurrencyCode> {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(code.to_owned()))
        } else {
            Err(InvalidCurrencyCode)
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CurrencyCode {
    type Error = InvalidCurrencyCode;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<CurrencyCode> for String {
    fn from(code: CurrencyCode) -> Self {
        code.0
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Currency {
    /// ISO 4217 alphabetic code.
    pub code: String,
    /// English name.
    pub name: String,
    /// Decimal places an amount in this currency may have (2 for EUR, 0 for JPY).
    pub minor_units: i16,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::validation::patterns::admitted_are_accepted;

    #[test]
    fn the_schema_pattern_admits_only_accepted_codes() {
        admitted_are_accepted(CODE_PATTERN, 3, |c| CurrencyCode::parse(c).is_ok());
    }

    #[test]
    fn codes_are_three_upper_case_letters() {
        assert!(CurrencyCode::parse("EUR").is_ok());
        for bad in ["eur", "EU", "EURO", "E1R", "", "ÉUR"] {
            assert!(CurrencyCode::parse(bad).is_err(), "{bad}");
        }
    }
}
