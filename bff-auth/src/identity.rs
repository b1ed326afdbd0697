//! What users sign in with: an email address or a phone number, parsed once at
//! the edge into types that cannot hold an invalid or unnormalised value.
//!
//! ```
//! use bff_auth::identity::Identifier;
//!
//! let email = Identifier::parse("  Alice@Example.COM ").unwrap();
//! assert_eq!(email.as_str(), "alice@example.com");
//!
//! let phone = Identifier::parse("+7 (999) 123-45-67").unwrap();
//! assert_eq!(phone.as_str(), "+79991234567");
//!
//! assert!(Identifier::parse("alice").is_err());
//! ```

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_script::{Script, UnicodeScript};

/// An email address, trimmed, NFKC-normalised and lower-cased, its domain in
/// ASCII (IDNA: `bücher.example` is `xn--bcher-kva.example`), its local part in
/// one script.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// A valid phone number in E.164 form (`+79991234567`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

/// An email address or a phone number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    /// An email address.
    Email(Email),
    /// A phone number.
    Phone(Phone),
}

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an email address or a phone number in international form (+79991234567)")]
pub struct InvalidIdentifier;

/// Whether every letter of `text` is of one script (digits, punctuation and
/// marks are of all scripts).
fn single_script(text: &str) -> bool {
    let mut seen = None;
    text.chars()
        .map(|c| c.script())
        .filter(|script| !matches!(script, Script::Common | Script::Inherited))
        .all(|script| *seen.get_or_insert(script) == script)
}

/// Longest input looked at: the longest email address (RFC 5321) plus room for
/// surrounding spaces. Longer input is refused before any parsing work.
const MAX_INPUT: usize = 320;

impl Email {
    /// Parses an email address: trimmed, NFKC-normalised (so fullwidth and other
    /// compatibility forms are the letters they look like) and lower-cased, one
    /// `@` with a non-empty local part of at most 64 bytes in a single script
    /// (a Latin name with a Cyrillic `а` in it is refused, not a new address)
    /// and a dotted domain of letters, digits and hyphens, converted to ASCII
    /// by IDNA (UTS #46), no spaces or control characters, at most 254 bytes
    /// in all (RFC 5321's limits).
    pub fn parse(input: &str) -> Result<Self, InvalidIdentifier> {
        if input.len() > MAX_INPUT {
            return Err(InvalidIdentifier);
        }
        let normalised: String = input.trim().nfkc().collect();
        let lowered = normalised.to_lowercase();
        let (local, domain) = lowered.split_once('@').ok_or(InvalidIdentifier)?;
        if !single_script(local) || domain.chars().any(char::is_whitespace) {
            return Err(InvalidIdentifier);
        }
        let domain = idna::domain_to_ascii_strict(domain).map_err(|_| InvalidIdentifier)?;
        let email = format!("{local}@{domain}");
        let (local, domain) = (local, domain.as_str());
        let valid = email.len() <= 254
            && !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with(['.', '-'])
            && !domain.ends_with(['.', '-'])
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
            && !email.chars().any(|c| {
                c.is_whitespace()
                    || c.is_control()
                    || matches!(
                        c,
                        '<' | '>' | '"' | ',' | ';' | '(' | ')' | '[' | ']' | '\\'
                    )
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
    /// Parses a phone number in international form (`+` and the country code)
    /// with libphonenumber's rules and metadata, and normalises it to E.164.
    ///
    /// Spaces, dashes, dots and parentheses may separate the digits; letters
    /// (vanity numbers) and national forms without a country code are refused
    /// rather than guessed, and so is a number that is not valid for its
    /// country (wrong length or an unassigned range).
    pub fn parse(input: &str) -> Result<Self, InvalidIdentifier> {
        let input = input.trim();
        if input.len() > 32
            || !input.starts_with('+')
            || !input[1..]
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'))
        {
            return Err(InvalidIdentifier);
        }
        let number = phonenumber::parse(None, input).map_err(|_| InvalidIdentifier)?;
        if !phonenumber::is_valid(&number) {
            return Err(InvalidIdentifier);
        }
        let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
        Ok(Self(e164))
    }

    /// The number, E.164.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The country calling code (`7` for `+79991234567`, `44` for a UK number).
    pub fn country_code(&self) -> u16 {
        phonenumber::parse(None, &self.0)
            .map(|number| number.code().value())
            .unwrap_or(0)
    }
}

impl Identifier {
    /// An email address if the input has an `@`, else a phone number.
    pub fn parse(input: &str) -> Result<Self, InvalidIdentifier> {
        if input.contains('@') {
            Email::parse(input).map(Self::Email)
        } else {
            Phone::parse(input).map(Self::Phone)
        }
    }

    /// The normalised form.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Email(email) => email.as_str(),
            Self::Phone(phone) => phone.as_str(),
        }
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
        assert!(Email::parse("o'brien+tag@sub.example.co.uk").is_ok());
        for bad in [
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@example.com",
            "alice@@example.com",
            "alice@ex..com",
            "alice@-ex.com",
            ".alice@example.com",
            "al..ice@example.com",
            "ali\u{7}ce@example.com",
            "<alice@example.com>",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long_local).is_err());
        let long = format!("a@{}.com", "b".repeat(400));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn look_alikes_are_the_address_they_look_like_or_refused() {
        let parse = |input: &str| Email::parse(input).map(|e| e.as_str().to_owned());
        // Fullwidth forms are the ASCII letters they look like.
        assert_eq!(
            parse("\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}\u{ff20}example.com"),
            Ok("alice@example.com".to_owned())
        );
        assert_eq!(
            parse("alice@\u{ff45}\u{ff58}ample.com"),
            Ok("alice@example.com".to_owned())
        );
        // A domain is kept as DNS knows it.
        assert_eq!(
            parse("hans@B\u{fc}cher.example"),
            Ok("hans@xn--bcher-kva.example".to_owned())
        );
        // A Cyrillic look-alike domain is another domain, spelled so.
        assert_eq!(
            parse("alice@\u{435}xample.com").map(|e| e.starts_with("alice@xn--")),
            Ok(true)
        );
        // One script per local part: Cyrillic alone is fine, mixed is refused.
        assert!(parse("\u{430}\u{43b}\u{438}\u{441}\u{430}@example.com").is_ok());
        for mixed in [
            "p\u{430}ypal@example.com",
            "\u{430}lice@example.com",
            "ali\u{3bf}e@example.com",
        ] {
            assert!(parse(mixed).is_err(), "{mixed:?}");
        }
    }

    #[test]
    fn phones_are_normalised_to_e164() {
        for (input, e164) in [
            ("+7 (999) 123-45-67", "+79991234567"),
            ("+79991234567", "+79991234567"),
            (" +44 20 7946 0958 ", "+442079460958"),
            ("+1 (650) 253-0000", "+16502530000"),
            ("+49 30 901820", "+4930901820"),
        ] {
            assert_eq!(
                Identifier::parse(input).map(|i| i.as_str().to_owned()),
                Ok(e164.to_owned()),
                "{input}"
            );
        }
        for (input, country) in [
            ("+79991234567", 7),
            ("+442079460958", 44),
            ("+16502530000", 1),
        ] {
            assert_eq!(Phone::parse(input).map(|p| p.country_code()), Ok(country));
        }
    }

    #[test]
    fn phones_that_are_not_valid_numbers_are_refused() {
        for bad in [
            // National form: the country would be a guess.
            "89991234567",
            "8 (999) 123-45-67",
            // No such country code, too short, too long for its country.
            "+0123456789",
            "+12",
            "+7999123456789",
            "+1234567890123456",
            // Letters and other characters.
            "+7999abc4567",
            "+1-800-FLOWERS",
            "+7 999 123 45 67 ext. 2",
            "+7\u{0}9991234567",
            "",
            "+",
        ] {
            assert!(Identifier::parse(bad).is_err(), "{bad:?}");
        }
    }
}
