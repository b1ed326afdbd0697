//! Field validation shared by the handlers: every error of a request is
//! collected so one 422 names them all.

use bff_core::Problem;
use bff_core::problem::FieldError;

/// Collects field errors.
#[derive(Debug, Default)]
pub(crate) struct Fields(Vec<FieldError>);

impl Fields {
    /// The value, or `None` with the error recorded under `field`.
    pub(crate) fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        parsed: Result<T, E>,
    ) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(error) => {
                self.0.push(FieldError::new(field, error.to_string()));
                None
            }
        }
    }

    /// Like [`Self::check`] for an optional value: `None` stays `None`.
    pub(crate) fn check_opt<T, U, E: std::fmt::Display>(
        &mut self,
        field: &str,
        value: Option<T>,
        parse: impl FnOnce(T) -> Result<U, E>,
    ) -> Option<U> {
        value.and_then(|v| self.check(field, parse(v)))
    }

    /// Records that `field` is wrong.
    pub(crate) fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// The errors recorded, if any.
    pub(crate) fn errors(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }

    /// `Ok` when no field failed.
    pub(crate) fn finish(self) -> Result<(), Problem> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.problem())
        }
    }

    /// The 422 naming every failed field.
    pub(crate) fn problem(self) -> Problem {
        Problem::validation(self.0)
    }
}

/// JSON Schema pattern of one line of text with a visible character: what
/// [`text`] accepts with `min` of 1 and `multiline` off (with `maxLength` for
/// `max`). Control characters are U+0000 to U+001F and U+007F to U+009F.
pub(crate) const LINE: &str =
    r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$";

/// JSON Schema pattern of one line of text, possibly empty: what [`text`]
/// accepts with `min` of 0 and `multiline` off.
pub(crate) const OPTIONAL_LINE: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";

/// JSON Schema pattern of text with line breaks, possibly empty: what
/// [`text`] accepts with `min` of 0 and `multiline` on.
pub(crate) const LINES: &str = r"^[^\x00-\x09\x0B-\x1F\x7F-\x9F]*$";

/// JSON Schema pattern of an identifier as the API takes it: an ASCII email
/// address or an international phone number. `Identifier::parse` also accepts
/// internationalised addresses and checks a number against its country's
/// numbering plan, which no pattern can.
pub(crate) const IDENTIFIER: &str = concat!(
    r"^(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,32}(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,30}){0,1}",
    r"@(?:[A-Za-z0-9](?:-?[A-Za-z0-9]){0,30}\.){1,4}[A-Za-z]{2,24}",
    r"|\+[1-9][0-9]{7,14})$"
);

/// Trimmed text of `min..=max` characters without control characters (line
/// breaks allowed only when `multiline`).
pub(crate) fn text(value: &str, min: usize, max: usize, multiline: bool) -> Result<String, String> {
    let value = value.trim();
    let count = value.chars().count();
    if count < min || count > max {
        return Err(if min > 0 {
            format!("must be {min} to {max} characters")
        } else {
            format!("must be at most {max} characters")
        });
    }
    if value
        .chars()
        .any(|c| c.is_control() && !(multiline && c == '\n'))
    {
        return Err("must not contain control characters".to_owned());
    }
    Ok(value.to_owned())
}

/// Property tests that what a schema pattern admits, the check behind it
/// accepts: the document never calls valid what the API refuses.
#[cfg(test)]
pub(crate) mod patterns {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;

    /// Checks `accepts` on 512 strings generated from `pattern` (anchored
    /// with `^...$`) that are at most `max_chars` long.
    pub(crate) fn admitted_are_accepted(
        pattern: &str,
        max_chars: usize,
        accepts: impl Fn(&str) -> bool,
    ) {
        let unanchored = pattern
            .strip_prefix('^')
            .and_then(|p| p.strip_suffix('$'))
            .unwrap_or_else(|| panic!("an anchored pattern: {pattern}"));
        let strategy = proptest::string::string_regex(unanchored)
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
            .prop_filter("within maxLength", move |s| s.chars().count() <= max_chars);
        let mut runner = TestRunner::deterministic();
        for _ in 0..512 {
            let value = strategy.new_tree(&mut runner).expect("a value").current();
            assert!(accepts(&value), "{pattern} admits {value:?}, refused");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::patterns::admitted_are_accepted;
    use super::*;
    use crate::identity::Identifier;

    #[test]
    fn text_patterns_admit_only_accepted_text() {
        admitted_are_accepted(LINE, 50, |t| text(t, 1, 50, false).is_ok());
        admitted_are_accepted(OPTIONAL_LINE, 50, |t| text(t, 0, 50, false).is_ok());
        admitted_are_accepted(LINES, 50, |t| text(t, 0, 50, true).is_ok());
    }

    #[test]
    fn the_identifier_pattern_admits_only_accepted_emails() {
        // Phone numbers also depend on the numbering plan, which it cannot say.
        admitted_are_accepted(IDENTIFIER, 320, |id| {
            !id.contains('@') || Identifier::parse(id).is_ok()
        });
    }

    #[test]
    fn text_is_trimmed_bounded_and_printable() {
        assert_eq!(text("  Home ", 1, 50, false).as_deref(), Ok("Home"));
        assert!(text("   ", 1, 50, false).is_err());
        assert!(text(&"x".repeat(51), 1, 50, false).is_err());
        assert_eq!(
            text(&"я".repeat(50), 1, 50, false).map(|t| t.chars().count()),
            Ok(50)
        );
        assert!(text("a\u{7}b", 0, 50, false).is_err());
        assert!(text("a\nb", 0, 50, false).is_err());
        assert!(text("a\nb", 0, 50, true).is_ok());
    }
}
