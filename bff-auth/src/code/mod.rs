//! One-time verification codes: sign-up, password reset, anything that proves
//! control of an email address or phone number.
//!
//! - A code is 6 digits, drawn uniformly from the operating system's CSPRNG.
//! - It is stored only as a keyed hash: HMAC-SHA-256 over the purpose, the
//!   identifier and the code, under a server secret, so a copy of the store
//!   reveals no codes and a code for one purpose or identifier is worthless for
//!   another. Key names are keyed hashes too, so the store holds no addresses.
//! - It lives for the policy's TTL (at most 10 minutes), allows at most
//!   [`MAX_ATTEMPTS`] checks and is then burnt, and is single use: a correct
//!   check deletes it atomically, so two concurrent checks cannot both succeed.
//!   Issuing a new code replaces the previous one.
//! - Comparison is constant-time.
//! - Sending is throttled per identifier and purpose (a cooldown), per
//!   identifier and client (an hourly cap over all purposes), per identifier
//!   from all clients (a looser hourly cap, so that no one client can starve
//!   the owner of codes), and per client (an hourly cap), in state every
//!   instance shares. Callers throttle unknown and known identifiers alike, so
//!   the throttle reveals nothing either.
//! - Guessing has a lifetime budget: wrong checks of one identifier's codes, all
//!   codes and purposes together, are counted over a day; past
//!   [`CodePolicy::daily_failures_per_identifier`], no new code is sent to it and
//!   no code of it is checked until the day is out.
//!
//! [`CodeStore`] is the seam; `RedisCodeStore` (feature `redis`) keeps the
//! state in Redis with one atomic script per decision.
//!
//! ```
//! use bff_auth::code::{CodePolicy, CodeSecret, OtpCode};
//! use std::time::Duration;
//!
//! let secret = CodeSecret::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
//! let code = OtpCode::generate().unwrap();
//! assert_eq!(code.as_str().len(), 6);
//! // The stored form depends on purpose, identifier and code.
//! assert_ne!(
//!     secret.digest("register", "alice@example.com", &code),
//!     secret.digest("reset_password", "alice@example.com", &code),
//! );
//! assert!(OtpCode::parse("12345").is_err());
//!
//! let policy = CodePolicy { ttl: Duration::from_secs(3600), ..CodePolicy::default() };
//! assert!(policy.validate().is_err(), "codes live 10 minutes at most");
//! ```

use std::fmt;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

use crate::layer::BoxFuture;
use crate::random::RandomError;

#[cfg(feature = "redis")]
mod redis_store;
#[cfg(feature = "redis")]
pub use redis_store::RedisCodeStore;

/// Checks allowed per code; the last wrong one burns it.
pub const MAX_ATTEMPTS: u32 = 5;

/// The longest a code may live.
pub const MAX_TTL: Duration = Duration::from_secs(600);

/// A 6-digit code. Its `Debug` output hides the digits.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpCode(String);

/// Why a presented code was refused before any lookup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be exactly 6 digits")]
pub struct MalformedCode;

impl OtpCode {
    /// A fresh code, uniform over `000000..=999999`.
    pub fn generate() -> Result<Self, RandomError> {
        // Rejection sampling: 4,294,000,000 is the largest multiple of 10^6 that
        // fits in a u32, so values below it map onto the codes evenly.
        const LIMIT: u32 = 4_294_000_000;
        loop {
            let mut bytes = [0u8; 4];
            crate::random::fill(&mut bytes)?;
            let value = u32::from_le_bytes(bytes);
            if value < LIMIT {
                return Ok(Self(format!("{:06}", value % 1_000_000)));
            }
        }
    }

    /// A code as a client presents it: exactly 6 ASCII digits.
    pub fn parse(input: &str) -> Result<Self, MalformedCode> {
        if input.len() == 6 && input.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(input.to_owned()))
        } else {
            Err(MalformedCode)
        }
    }

    /// The digits, for the message that delivers them.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtpCode([REDACTED])")
    }
}

/// The server secret that keys the stored hashes. Its `Debug` output hides it.
#[derive(Clone)]
pub struct CodeSecret(SecretSlice<u8>);

impl fmt::Debug for CodeSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeSecret([REDACTED])")
    }
}

impl CodeSecret {
    /// Shortest accepted secret, in bytes: HMAC-SHA-256's block of security.
    pub const MIN_LEN: usize = 32;

    /// A secret of at least [`Self::MIN_LEN`] bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, CodeError> {
        if bytes.len() < Self::MIN_LEN {
            return Err(CodeError::WeakSecret);
        }
        Ok(Self(bytes.into()))
    }

    fn mac(&self, domain: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        // Any key length is valid for HMAC, so this cannot fail.
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.expose_secret()) else {
            unreachable!("HMAC accepts keys of any length")
        };
        mac.update(domain);
        for part in parts {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") never collide.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The stored form of `code` for `purpose` and `identifier`.
    pub fn digest(&self, purpose: &str, identifier: &str, code: &OtpCode) -> [u8; 32] {
        self.mac(
            b"bff-code-v1",
            &[
                purpose.as_bytes(),
                identifier.as_bytes(),
                code.as_str().as_bytes(),
            ],
        )
    }

    /// A 256-bit key for `label`, derived from the secret: HMAC-SHA-256 of the
    /// label's bytes under the secret. Each label gives an unrelated key, so one
    /// secret can also key, say, the encryption of codes on a message bus,
    /// without reusing the key of the stored hashes.
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.expose_secret()) else {
            unreachable!("HMAC accepts keys of any length")
        };
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A key name for `parts` that reveals none of them (hex HMAC, truncated to
    /// 128 bits, which is plenty to avoid collisions).
    pub fn key_id(&self, parts: &[&str]) -> String {
        let parts: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
        let mac = self.mac(b"bff-code-key-v1", &parts);
        hex(&mac[..16])
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lifetimes and limits of codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodePolicy {
    /// How long a code is valid (default and maximum 10 minutes).
    pub ttl: Duration,
    /// Least time between two codes for one identifier and purpose (default 60 s).
    pub cooldown: Duration,
    /// Codes one identifier may be sent in an hour at one client's request,
    /// all purposes together (default 5).
    pub hourly_per_identifier: u32,
    /// Codes one identifier may be sent in an hour from all clients together
    /// (default 20): looser, so that one client cannot starve its owner.
    pub hourly_per_identifier_all: u32,
    /// Codes one client may request in an hour (default 20).
    pub hourly_per_client: u32,
    /// Wrong checks of one identifier's codes in a day, all together, after
    /// which it gets no new code and no check until the day is out (default 10).
    pub daily_failures_per_identifier: u32,
}

impl Default for CodePolicy {
    fn default() -> Self {
        Self {
            ttl: MAX_TTL,
            cooldown: Duration::from_secs(60),
            hourly_per_identifier: 5,
            hourly_per_identifier_all: 20,
            hourly_per_client: 20,
            daily_failures_per_identifier: 10,
        }
    }
}

impl CodePolicy {
    /// Refuses a TTL of zero or above [`MAX_TTL`], a cooldown under a second,
    /// and caps of zero.
    pub fn validate(&self) -> Result<(), CodeError> {
        let problem = if self.ttl.is_zero() || self.ttl > MAX_TTL {
            "the code TTL must be more than 0 and at most 600 s"
        } else if self.cooldown < Duration::from_secs(1)
            || self.cooldown > Duration::from_secs(3600)
        {
            "the code cooldown must be between 1 s and 1 h"
        } else if self.hourly_per_identifier == 0
            || self.hourly_per_identifier_all == 0
            || self.hourly_per_client == 0
            || self.daily_failures_per_identifier == 0
        {
            "the code limits must be at least 1"
        } else if self.hourly_per_identifier_all < self.hourly_per_identifier {
            "the identifier-wide hourly cap must be at least the per-client one"
        } else {
            return Ok(());
        };
        Err(CodeError::Policy(problem))
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// A code for this identifier and purpose was sent within the cooldown.
    Cooldown,
    /// This identifier was sent its hourly number of codes at this client's request.
    HourlyPerIdentifier,
    /// This identifier was sent its hourly number of codes from all clients.
    HourlyPerIdentifierAll,
    /// This client requested its hourly number of codes.
    HourlyPerClient,
    /// This identifier's codes were guessed wrong too often today.
    FailureBudget,
}

/// The throttle's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Throttle {
    /// Go ahead; the request has been counted.
    Allowed,
    /// Refused; nothing was counted.
    Limited {
        /// The limit in the way.
        limit: Limit,
        /// When a request may succeed again.
        retry_after: Duration,
    },
}

/// The outcome of checking a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum CodeCheck {
    /// It matched, and has been used up.
    Valid,
    /// No match: wrong, expired, burnt, already used or never issued. The
    /// cases are deliberately not told apart.
    Invalid,
}

/// Why a code operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// The secret is shorter than [`CodeSecret::MIN_LEN`].
    #[error("the code secret must be at least 32 bytes")]
    WeakSecret,
    /// The policy is out of bounds.
    #[error("{0}")]
    Policy(&'static str),
    /// The system random generator failed.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The store failed.
    #[error("code store unavailable")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where codes and throttle counters live.
///
/// `purpose` names what a code is for (`"register"`, `"reset_password"`);
/// `identifier` is the normalised address it goes to; `client` identifies the
/// requester for the per-client cap (an IP address, say).
pub trait CodeStore: Send + Sync + fmt::Debug {
    /// Counts a request to send a code, or refuses it. Call it before deciding
    /// what to send, so unknown and known identifiers are throttled alike.
    fn throttle<'a>(
        &'a self,
        purpose: &'a str,
        identifier: &'a str,
        client: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Throttle, CodeError>>;

    /// Gives back a request that [`throttle`](Self::throttle) counted but whose
    /// work could not be done (the database that records it was down, say):
    /// the cooldown is lifted and the hourly counters go down by one, so the
    /// caller may ask again as soon as the outage is over. Call it once, only
    /// after an `Allowed` answer for the same arguments.
    fn release<'a>(
        &'a self,
        purpose: &'a str,
        identifier: &'a str,
        client: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), CodeError>>;

    /// Creates a code, replacing any previous one for this purpose and identifier.
    fn issue<'a>(
        &'a self,
        purpose: &'a str,
        identifier: &'a str,
    ) -> BoxFuture<'a, Result<OtpCode, CodeError>>;

    /// Checks a presented code and uses it up if it matches.
    fn check<'a>(
        &'a self,
        purpose: &'a str,
        identifier: &'a str,
        code: &'a OtpCode,
    ) -> BoxFuture<'a, Result<CodeCheck, CodeError>>;

    /// The policy in force (for `expires_in` and `resend_after` answers).
    fn policy(&self) -> &CodePolicy;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_cover_the_range() {
        let mut first_digits = [0u32; 10];
        for _ in 0..5_000 {
            let code = OtpCode::generate().expect("random");
            assert_eq!(code.as_str().len(), 6);
            assert!(code.as_str().bytes().all(|b| b.is_ascii_digit()));
            first_digits[usize::from(code.as_str().as_bytes()[0] - b'0')] += 1;
        }
        // Leading zeros are kept and every leading digit turns up: each has an
        // expected count of 500, and fewer than 300 is astronomically unlikely.
        assert!(first_digits.iter().all(|&n| n > 300), "{first_digits:?}");
    }

    #[test]
    fn presented_codes_must_be_six_ascii_digits() {
        assert!(OtpCode::parse("012345").is_ok());
        for bad in [
            "",
            "12345",
            "1234567",
            "12345a",
            " 12345",
            "１２３４５６",
            "12 345",
        ] {
            assert_eq!(OtpCode::parse(bad), Err(MalformedCode), "{bad:?}");
        }
        assert_eq!(
            format!("{:?}", OtpCode::parse("123456")),
            "Ok(OtpCode([REDACTED]))"
        );
    }

    #[test]
    fn digests_bind_purpose_identifier_and_secret() {
        let secret = CodeSecret::new(vec![7; 32]).expect("long enough");
        let other = CodeSecret::new(vec![8; 32]).expect("long enough");
        let code = OtpCode::parse("123456").expect("valid");
        let base = secret.digest("register", "a@example.com", &code);
        assert_eq!(base, secret.digest("register", "a@example.com", &code));
        assert_ne!(
            base,
            secret.digest("reset_password", "a@example.com", &code)
        );
        assert_ne!(base, secret.digest("register", "b@example.com", &code));
        assert_ne!(base, other.digest("register", "a@example.com", &code));
        assert_ne!(
            secret.key_id(&["ab", "c"]),
            secret.key_id(&["a", "bc"]),
            "parts are length-prefixed"
        );
        assert!(CodeSecret::new(vec![1; 31]).is_err());
        assert_eq!(format!("{secret:?}"), "CodeSecret([REDACTED])");
    }

    #[test]
    fn policies_are_bounded() {
        assert!(CodePolicy::default().validate().is_ok());
        for bad in [
            CodePolicy {
                ttl: Duration::from_secs(601),
                ..CodePolicy::default()
            },
            CodePolicy {
                ttl: Duration::ZERO,
                ..CodePolicy::default()
            },
            CodePolicy {
                cooldown: Duration::ZERO,
                ..CodePolicy::default()
            },
            CodePolicy {
                hourly_per_identifier: 0,
                ..CodePolicy::default()
            },
            CodePolicy {
                hourly_per_client: 0,
                ..CodePolicy::default()
            },
            CodePolicy {
                daily_failures_per_identifier: 0,
                ..CodePolicy::default()
            },
            CodePolicy {
                hourly_per_identifier: 6,
                hourly_per_identifier_all: 5,
                ..CodePolicy::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
