//! Retries of transient failures with exponential backoff and full jitter.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::Duration;

/// How a source retries [transient](crate::ErrorKind::Transient) failures.
///
/// The n-th retry waits a random time between zero and
/// `min(max_backoff, backoff * 2^(n-1))` ("full jitter"), so that clients
/// failing together do not retry together. A retry is made only while the
/// source's deadline leaves room for its wait and while its breaker (if any)
/// is closed; permanent errors and timeouts are never retried.
///
/// **Only for idempotent calls.** A call that failed with a transient error
/// may still have taken effect (the request arrived, the answer was lost), so
/// retrying a write can apply it twice.
///
/// ```
/// use std::time::Duration;
/// use bff_aggregate::Retry;
///
/// let retry = Retry::new(2)
///     .backoff(Duration::from_millis(20))
///     .max_backoff(Duration::from_millis(100));
/// assert_eq!(retry.max_retries(), 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    max_retries: u32,
    base: Duration,
    max_backoff: Duration,
}

impl Retry {
    /// Up to `max_retries` retries after the first call, with a 25 ms base
    /// backoff capped at 1 s.
    pub fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            base: Duration::from_millis(25),
            max_backoff: Duration::from_secs(1),
        }
    }

    /// The longest wait before the first retry; each further retry doubles it.
    #[must_use]
    pub fn backoff(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// The cap on the doubled wait.
    #[must_use]
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// Retries after the first call, at most.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The wait before retry number `retry` (1 for the first retry): uniform
    /// in `[0, min(max_backoff, backoff * 2^(retry-1))]`.
    pub(crate) fn delay(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        let cap = self
            .base
            .checked_mul(1 << doublings)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff);
        jitter(cap)
    }
}

/// A uniformly random duration in `[0, cap]`.
///
/// Jitter needs spread, not unpredictability, so std's randomly keyed hasher
/// is enough: every `RandomState` gets fresh keys, and hashing nothing with
/// them gives a well-mixed 64-bit value without a dependency on `rand`.
fn jitter(cap: Duration) -> Duration {
    let random = RandomState::new().build_hasher().finish();
    let cap_nanos = cap.as_nanos().min(u128::from(u64::MAX));
    // Scales `random / 2^64` by the cap in integers: no float rounding, and
    // the product of two values below 2^64 fits in u128.
    let nanos = (cap_nanos * u128::from(random)) >> 64;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_the_doubling_cap() {
        let retry = Retry::new(10)
            .backoff(Duration::from_millis(10))
            .max_backoff(Duration::from_millis(50));
        for _ in 0..200 {
            assert!(retry.delay(1) <= Duration::from_millis(10));
            assert!(retry.delay(2) <= Duration::from_millis(20));
            assert!(retry.delay(3) <= Duration::from_millis(40));
            assert!(retry.delay(4) <= Duration::from_millis(50));
            assert!(retry.delay(40) <= Duration::from_millis(50));
        }
    }

    #[test]
    fn jitter_spreads() {
        let cap = Duration::from_millis(100);
        let draws: Vec<Duration> = (0..200).map(|_| jitter(cap)).collect();
        let low = draws.iter().filter(|d| **d < cap / 2).count();
        // Uniform draws land in each half about 100 times; 40 either way
        // would be a broken generator, not bad luck (p < 1e-8).
        assert!((60..=140).contains(&low), "{low} of 200 below half");
    }
}
