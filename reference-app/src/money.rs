//! Money amounts: exact decimals (`rust_decimal`), JSON strings at the edge,
//! `NUMERIC` in Postgres, never floating point.

use std::str::FromStr;

use rust_decimal::Decimal;

/// A positive amount, as a client sent it, not yet checked against a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount(Decimal);

/// Why an amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAmount {
    /// Not a plain decimal number.
    #[error("must be a decimal number as a string, such as \"10.50\"")]
    Format,
    /// Zero or negative.
    #[error("must be more than zero")]
    NotPositive,
    /// Too many digits before the point.
    #[error("is too large")]
    TooLarge,
    /// More decimals than the currency has.
    #[error("has more decimal places than {currency} allows ({minor_units})")]
    Scale {
        /// The currency.
        currency: String,
        /// Its minor units.
        minor_units: u32,
    },
}

/// JSON Schema pattern of an [`Amount`]: a decimal string above zero, up to 15
/// digits before the point and 4 after, without sign, exponent or leading
/// zeros. The currency may allow fewer decimal places (`EUR` two, `JPY` none).
pub const AMOUNT_PATTERN: &str = concat!(
    r"^(?:[1-9][0-9]{0,14}(?:\.[0-9]{1,4})?",
    r"|0\.(?:[1-9][0-9]{0,3}|0[1-9][0-9]{0,2}|00[1-9][0-9]?|000[1-9]))$"
);

/// Digits allowed before the point: far beyond any real balance, and well
/// inside `Decimal`'s 28 digits, so sums of many amounts cannot overflow.
const MAX_INTEGER_DIGITS: usize = 15;

/// Decimal places any amount may have before the currency is known.
const MAX_SCALE: usize = 4;

impl Amount {
    /// Parses `digits[.digits]`: no sign, exponent, spaces or separators.
    pub fn parse(input: &str) -> Result<Self, InvalidAmount> {
        let (integer, fraction) = input.split_once('.').unwrap_or((input, ""));
        let plain = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if integer.is_empty()
            || !plain(integer)
            || !plain(fraction)
            || (input.contains('.') && fraction.is_empty())
        {
            return Err(InvalidAmount::Format);
        }
        if integer.trim_start_matches('0').len() > MAX_INTEGER_DIGITS {
            return Err(InvalidAmount::TooLarge);
        }
        if fraction.len() > MAX_SCALE {
            // Checked again against the currency; this bound only keeps
            // nonsense out of the arithmetic.
            return Err(InvalidAmount::Scale {
                currency: "any currency".to_owned(),
                minor_units: MAX_SCALE as u32,
            });
        }
        let value = Decimal::from_str(input).map_err(|_| InvalidAmount::Format)?;
        if value <= Decimal::ZERO {
            return Err(InvalidAmount::NotPositive);
        }
        Ok(Self(value))
    }

    /// The amount.
    pub fn value(self) -> Decimal {
        self.0
    }

    /// Checks the scale against `currency`'s minor units.
    pub fn for_currency(self, currency: &str, minor_units: u32) -> Result<Decimal, InvalidAmount> {
        if self.0.scale() > minor_units {
            return Err(InvalidAmount::Scale {
                currency: currency.to_owned(),
                minor_units,
            });
        }
        Ok(self.0)
    }
}

/// An amount as the API writes it: a string with exactly the currency's
/// decimal places (`"10.50"` for EUR, `"1000"` for JPY).
pub fn format(value: Decimal, minor_units: u32) -> String {
    let mut value = value;
    value.rescale(minor_units);
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::validation::patterns::admitted_are_accepted;

    #[test]
    fn the_schema_pattern_admits_only_accepted_amounts() {
        admitted_are_accepted(AMOUNT_PATTERN, 64, |a| Amount::parse(a).is_ok());
    }

    #[test]
    fn plain_decimals_only() {
        for good in ["1", "10.5", "10.50", "0.01", "007", "999999999999999.99"] {
            assert!(Amount::parse(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("", InvalidAmount::Format),
            ("1e3", InvalidAmount::Format),
            ("-5", InvalidAmount::Format),
            ("+5", InvalidAmount::Format),
            (" 5", InvalidAmount::Format),
            ("5.", InvalidAmount::Format),
            (".5", InvalidAmount::Format),
            ("1,000", InvalidAmount::Format),
            ("NaN", InvalidAmount::Format),
            ("0", InvalidAmount::NotPositive),
            ("0.00", InvalidAmount::NotPositive),
            ("1000000000000000", InvalidAmount::TooLarge),
        ] {
            assert_eq!(Amount::parse(bad), Err(why), "{bad:?}");
        }
    }

    #[test]
    fn the_scale_is_the_currencys() {
        let amount = Amount::parse("10.005").expect("parses");
        assert!(amount.for_currency("RUB", 2).is_err());
        assert!(amount.for_currency("BHD", 3).is_ok());
        assert!(
            Amount::parse("10")
                .expect("parses")
                .for_currency("JPY", 0)
                .is_ok()
        );
        assert!(
            Amount::parse("10.5")
                .expect("parses")
                .for_currency("JPY", 0)
                .is_err()
        );
    }

    #[test]
    fn amounts_are_written_at_the_currencys_scale() {
        let value = Decimal::from_str("10.5").expect("decimal");
        assert_eq!(format(value, 2), "10.50");
        assert_eq!(
            format(Decimal::from_str("10.5000").expect("decimal"), 2),
            "10.50"
        );
        assert_eq!(
            format(Decimal::from_str("1000").expect("decimal"), 0),
            "1000"
        );
        assert_eq!(
            format(Decimal::from_str("-3.2").expect("decimal"), 3),
            "-3.200"
        );
    }
}
