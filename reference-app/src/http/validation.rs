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

#[cfg(test)]
mod tests {
    use super::*;

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
