//! The path an upstream is asked for: checked so that it cannot leave the
//! upstream's base, however the upstream or a proxy in front of it decodes it.

/// The longest path accepted, in bytes of its percent-encoded form.
pub const MAX_PATH_LEN: usize = 2048;

/// Why a path was refused. Every variant is a 400 for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is longer than [`MAX_PATH_LEN`].
    #[error("the path is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    /// A segment is `.` or `..`, plainly or percent-encoded (`%2e%2e`), or
    /// would be read as one by a server that cuts path parameters (`..;x`).
    #[error("the path has a `.` or `..` segment")]
    DotSegment,
    /// Two slashes in a row, or a leading slash: an empty segment that some
    /// servers collapse and others route differently.
    #[error("the path has an empty segment")]
    EmptySegment,
    /// An encoded `/` (`%2f`), a backslash, or an encoded backslash (`%5c`):
    /// separators that the proxy cannot see but the upstream might obey.
    #[error("the path has an encoded `/` or a `\\`")]
    Separator,
    /// An encoded `%` (`%25`): a second round of decoding would turn
    /// `%252e%252e` into `..`.
    #[error("the path is encoded twice")]
    DoubleEncoded,
    /// A `%` not followed by two hex digits.
    #[error("the path has a malformed percent-encoding")]
    BadEncoding,
    /// A control character (NUL, CR, LF, ...), plainly or percent-encoded.
    #[error("the path has a control character")]
    ControlCharacter,
    /// A segment whose percent-decoded bytes are not UTF-8.
    #[error("the path is not UTF-8 once decoded")]
    NotUtf8,
    /// A character that is not allowed unencoded in a URI path (space, `?`,
    /// `#`, `"`, non-ASCII, ...).
    #[error("the path has a character that must be percent-encoded")]
    Character,
}

/// Checks the part of a request path that names a resource on an upstream,
/// still percent-encoded as it came in (`v1/items/42`, without a leading
/// slash), and returns it to be appended to the upstream's base.
///
/// The check decodes each segment once, the way the upstream will, and
/// refuses what could make the upstream serve something outside its base or
/// something the proxy did not see: `.` and `..` segments (plain,
/// percent-encoded or followed by `;`), encoded `/` and `\` as well as a plain
/// `\`, double encoding (`%25`), control characters, empty segments (a
/// single trailing `/` is allowed), malformed percent-encodings, characters
/// that are not allowed in a URI path, and paths longer than
/// [`MAX_PATH_LEN`]. An empty path (the upstream's base itself) is allowed.
///
/// Nothing is rewritten: what is accepted is passed on exactly as the client
/// sent it, so the upstream sees the same bytes the check saw.
///
/// ```
/// use bff_aggregate::proxy::{PathError, normalize_path};
///
/// assert_eq!(normalize_path("v1/items/42").as_deref(), Ok("v1/items/42"));
/// assert_eq!(normalize_path("v1/%2e%2e/admin"), Err(PathError::DotSegment));
/// assert_eq!(normalize_path("files/a%2Fb"), Err(PathError::Separator));
/// ```
///
/// The path must come from the request's URI, not from a router's decoded
/// path parameter: once decoded, `a%2Fb` and `a/b` look alike.
pub fn normalize_path(path: &str) -> Result<String, PathError> {
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if path.is_empty() {
        return Ok(String::new());
    }
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len() - 1;
    for (index, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            // `a/` ends with an empty segment: a trailing slash, which many
            // APIs give a meaning. Any other empty segment is refused.
            if index == last && index > 0 {
                continue;
            }
            return Err(PathError::EmptySegment);
        }
        check_segment(segment)?;
    }
    Ok(path.to_owned())
}

fn check_segment(segment: &str) -> Result<(), PathError> {
    let raw = segment.as_bytes();
    let mut decoded = Vec::with_capacity(raw.len());
    let mut at = 0;
    while at < raw.len() {
        let byte = raw[at];
        if byte == b'%' {
            let (Some(high), Some(low)) = (
                raw.get(at + 1).copied().and_then(hex),
                raw.get(at + 2).copied().and_then(hex),
            ) else {
                return Err(PathError::BadEncoding);
            };
            let value = high << 4 | low;
            match value {
                b'/' | b'\\' => return Err(PathError::Separator),
                b'%' => return Err(PathError::DoubleEncoded),
                value if value.is_ascii_control() => return Err(PathError::ControlCharacter),
                _ => {}
            }
            decoded.push(value);
            at += 3;
        } else {
            match byte {
                b'\\' => return Err(PathError::Separator),
                byte if byte.is_ascii_control() => return Err(PathError::ControlCharacter),
                byte if !is_pchar(byte) => return Err(PathError::Character),
                _ => {}
            }
            decoded.push(byte);
            at += 1;
        }
    }
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
    // Servlet containers (Tomcat, Jetty) drop a `;` path parameter before
    // resolving dots, so `..;x` climbs like `..` behind them.
    let before_parameter = decoded.split(';').next().unwrap_or_default();
    if matches!(before_parameter, "." | "..") {
        return Err(PathError::DotSegment);
    }
    Ok(())
}

/// RFC 3986 `pchar` less `%`: unreserved, sub-delims, `:` and `@`.
fn is_pchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_paths_pass_unchanged() {
        for path in [
            "",
            "items",
            "v1/items/42",
            "v1/items/",
            "search/caf%C3%A9",
            "a-b_c~d/e.f/..g/g../...",
            "users/me@example.com/keys:rotate",
            "list;v=2/x,y+z",
            "a%20b",
        ] {
            assert_eq!(normalize_path(path).as_deref(), Ok(path), "{path}");
        }
    }

    #[test]
    fn dot_segments_are_refused_however_spelled() {
        for path in [
            "..",
            ".",
            "../etc/passwd",
            "a/../b",
            "a/./b",
            "a/..",
            "a/.",
            "a/../",
            "%2e%2e/x",
            "%2E%2E/x",
            "a/.%2e/b",
            "a/%2e./b",
            "a/%2e/b",
            "a/..;/b",
            "a/..;jsessionid=1/b",
            "a/.;x/b",
            "a/%2e%2e%3bx/b",
        ] {
            assert_eq!(normalize_path(path), Err(PathError::DotSegment), "{path}");
        }
    }

    #[test]
    fn encoded_and_backward_separators_are_refused() {
        for path in [
            "a%2fb",
            "a%2Fb",
            "a/%2f/b",
            "%2F..%2Fadmin",
            "a\\b",
            "..\\admin",
            "a%5cb",
            "a%5Cb",
        ] {
            assert_eq!(normalize_path(path), Err(PathError::Separator), "{path}");
        }
    }

    #[test]
    fn empty_segments_are_refused_but_a_trailing_slash_is_not() {
        for path in ["/", "/a", "a//b", "a/b//", "//evil.test/x"] {
            assert_eq!(normalize_path(path), Err(PathError::EmptySegment), "{path}");
        }
        assert!(normalize_path("a/b/").is_ok());
    }

    #[test]
    fn double_encoding_is_refused() {
        for path in ["%252e%252e/admin", "a%252fb", "100%25"] {
            assert_eq!(
                normalize_path(path),
                Err(PathError::DoubleEncoded),
                "{path}"
            );
        }
    }

    #[test]
    fn control_characters_and_bad_encodings_are_refused() {
        assert_eq!(normalize_path("%ff%fe"), Err(PathError::NotUtf8));
        for path in ["a%00b", "a%0d%0aSet-Cookie:x", "a\0b", "a\nb", "a%7f"] {
            assert_eq!(
                normalize_path(path),
                Err(PathError::ControlCharacter),
                "{path}"
            );
        }
        for path in ["a%", "a%2", "a%zz", "a%2g/b", "%%"] {
            assert_eq!(normalize_path(path), Err(PathError::BadEncoding), "{path}");
        }
        for path in [
            "a b", "a?b", "a#b", "a\"b", "café", "a<b>", "a{b}", "a|b", "a^b",
        ] {
            assert_eq!(normalize_path(path), Err(PathError::Character), "{path}");
        }
    }

    #[test]
    fn very_long_paths_are_refused() {
        let long = "a/".repeat(MAX_PATH_LEN / 2) + "a";
        assert_eq!(normalize_path(&long), Err(PathError::TooLong));
        let fits = "a".repeat(MAX_PATH_LEN);
        assert!(normalize_path(&fits).is_ok());
    }
}
