//! What a source's call returns when it fails, and whether trying again can help.

use std::error::Error as StdError;
use std::fmt;

/// Whether a failed call is worth repeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The backend could not be reached or could not answer now: connection
    /// refused, unavailable, no responders, a 5xx, a timeout. Retried when the
    /// source has a [`Retry`](crate::Retry), and counted against its
    /// [`CircuitBreaker`](crate::CircuitBreaker).
    Transient,
    /// The backend answered, and the answer is no: not found, invalid
    /// argument, a 4xx. Asking again would get the same answer, so it is never
    /// retried, and it counts as a success for the breaker because the backend
    /// is evidently alive.
    Permanent,
}

impl ErrorKind {
    /// The kind as a lower-case word, for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed call to a backend, classified as [`ErrorKind::Transient`] or
/// [`ErrorKind::Permanent`].
///
/// It wraps the client's own error, so its message and chain survive for
/// logs: `Display` shows the wrapped error's message and
/// [`source`](std::error::Error::source) continues with the wrapped error's
/// own cause.
///
/// ```
/// use bff_aggregate::{ErrorKind, SourceError};
///
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// assert_eq!(SourceError::transient(refused).kind(), ErrorKind::Transient);
///
/// let missing = SourceError::msg(ErrorKind::Permanent, "no such account");
/// assert_eq!(missing.to_string(), "no such account");
/// ```
pub struct SourceError {
    kind: ErrorKind,
    timeout: bool,
    inner: Box<dyn StdError + Send + Sync>,
}

impl SourceError {
    /// An error of the given kind wrapping `error`.
    pub fn new(kind: ErrorKind, error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            kind,
            timeout: false,
            inner: error.into(),
        }
    }

    /// A failure worth retrying: the backend was unreachable or overloaded.
    pub fn transient(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::new(ErrorKind::Transient, error)
    }

    /// A definite answer that retrying would not change.
    pub fn permanent(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::new(ErrorKind::Permanent, error)
    }

    /// An error of the given kind with a plain message.
    pub fn msg(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::new(kind, message.into())
    }

    /// The backend or its client gave up because the deadline passed: a
    /// transient error that the source reports as
    /// [`Status::Timeout`](crate::Status::Timeout) rather than
    /// [`Status::Error`](crate::Status::Error).
    ///
    /// The protocol helpers return this when their own timeout (which is the
    /// call's deadline) fires first or the backend says the deadline was
    /// exceeded, so the status is the same whichever of the two timers wins.
    pub fn timeout(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            timeout: true,
            ..Self::transient(error)
        }
    }

    /// Whether the call may be retried.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the error is [`ErrorKind::Transient`].
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    /// Whether the error means the deadline passed (see [`SourceError::timeout`]).
    pub fn is_timeout(&self) -> bool {
        self.timeout
    }

    /// The wrapped error.
    pub fn get_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.inner
    }

    /// The wrapped error, by value.
    pub fn into_inner(self) -> Box<dyn StdError + Send + Sync> {
        self.inner
    }
}

impl fmt::Debug for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceError")
            .field("kind", &self.kind)
            .field("timeout", &self.timeout)
            .field("error", &self.inner)
            .finish()
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

// Transparent like `#[error(transparent)]`: the wrapped error's message is
// this error's message, so its cause comes next in the chain, not the wrapped
// error itself (which would print the same message twice).
impl StdError for SourceError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source()
    }
}
