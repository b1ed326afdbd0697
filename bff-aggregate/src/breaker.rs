//! A circuit breaker per backend, shared by every request that calls it.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::metric_names::BREAKER_OPEN;

/// When a [`CircuitBreaker`] opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures (transient errors or timeouts) that open the
    /// breaker. Zero is taken as one.
    pub failure_threshold: u32,
    /// How long the breaker stays open before it lets one probe through.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    /// Five failures in a row open it for five seconds.
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(5),
        }
    }
}

/// Where a [`CircuitBreaker`] is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls go through; consecutive failures are counted.
    Closed,
    /// Calls are not made; sources report `skipped` at once.
    Open,
    /// `open_for` has passed: the next call is a probe, or one is in flight.
    /// Other calls are skipped until the probe ends.
    HalfOpen,
}

/// Stops calling a backend that keeps failing, so a dead dependency costs
/// nothing instead of a full deadline on every request, and gets room to
/// recover.
///
/// ```text
///            threshold consecutive failures
///   Closed ─────────────────────────────────▶ Open ◀──────────┐
///     ▲                                        │ open_for     │ probe fails
///     │ probe succeeds                         ▼              │
///     └───────────────────────────────────── HalfOpen ────────┘
/// ```
///
/// - **Closed**: every call is made. A transient error or a timeout adds one
///   to the count of consecutive failures; anything else (success or a
///   permanent error: the backend answered) resets it. Reaching
///   `failure_threshold` opens the breaker.
/// - **Open**: no call is made; the source reports `skipped` at once.
/// - **Half-open**: after `open_for`, exactly one call goes through as a
///   probe (without a hedge); calls meanwhile are skipped. The probe's success
///   closes the breaker, its failure opens it for another `open_for`. A probe
///   that is cancelled (its request went away) neither closes nor punishes the
///   breaker: the next call becomes the probe.
///
/// A breaker is cheap to clone (an `Arc`), and clones share state: build one
/// per backend at startup and give a clone to the source of every request.
/// The gauge `bff_aggregate_breaker_open{source}` is labelled with the name of
/// the source that moved the breaker, so give a breaker to sources of one
/// name. Timing uses tokio's clock, so tests can pause it.
///
/// ```
/// use std::time::Duration;
/// use bff_aggregate::{BreakerConfig, BreakerState, CircuitBreaker};
///
/// let breaker = CircuitBreaker::new(BreakerConfig {
///     failure_threshold: 3,
///     open_for: Duration::from_secs(10),
/// });
/// assert_eq!(breaker.state(), BreakerState::Closed);
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: BreakerConfig,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    // Half-open always has its probe out: a probe's end or drop moves the
    // state on, so there is no half-open state without a probe in flight.
    Probing,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config: BreakerConfig {
                    failure_threshold: config.failure_threshold.max(1),
                    ..config
                },
                state: Mutex::new(State::Closed { failures: 0 }),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> BreakerConfig {
        self.inner.config
    }

    /// The current state. An open breaker whose `open_for` has passed is
    /// reported half-open: the next call will be its probe.
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() < until => BreakerState::Open,
            State::Open { .. } | State::Probing => BreakerState::HalfOpen,
        }
    }

    /// Asks to make a call. `None` means the call must not be made.
    pub(crate) fn acquire(&self, source: &'static str) -> Option<Permit> {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Some(Permit::new(self, source, false)),
            State::Open { until } if Instant::now() >= until => {
                *state = State::Probing;
                Some(Permit::new(self, source, true))
            }
            State::Open { .. } | State::Probing => None,
        }
    }

    // A panic while the lock is held cannot leave `State` half-written (every
    // update is one assignment), so a poisoned lock is still a valid state.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, source: &'static str, probe: bool, healthy: bool) {
        let mut state = self.lock();
        let open_for = self.inner.config.open_for;
        let next = match (*state, probe, healthy) {
            (State::Probing, true, true) => Some(State::Closed { failures: 0 }),
            (State::Probing, true, false) => Some(State::Open {
                until: deadline_after(open_for),
            }),
            (State::Closed { .. }, false, true) => Some(State::Closed { failures: 0 }),
            (State::Closed { failures }, false, false) => {
                let failures = failures.saturating_add(1);
                Some(if failures >= self.inner.config.failure_threshold {
                    State::Open {
                        until: deadline_after(open_for),
                    }
                } else {
                    State::Closed { failures }
                })
            }
            // A call that started while the breaker was closed and ends after
            // it opened says nothing the breaker does not already know; only
            // the probe decides how an open breaker closes.
            _ => None,
        };
        if let Some(next) = next {
            let was_closed = matches!(*state, State::Closed { .. });
            let now_closed = matches!(next, State::Closed { .. });
            *state = next;
            drop(state);
            if was_closed != now_closed {
                let open = if now_closed { 0.0 } else { 1.0 };
                metrics::gauge!(BREAKER_OPEN, "source" => source).set(open);
                if now_closed {
                    tracing::info!(source, "circuit breaker closed");
                } else {
                    tracing::warn!(source, "circuit breaker opened");
                }
            } else if !now_closed && probe {
                tracing::warn!(source, "circuit breaker probe failed; open again");
            }
        }
    }

    fn release_probe(&self) {
        let mut state = self.lock();
        if matches!(*state, State::Probing) {
            // Open with the wait already over: the next call is the probe.
            *state = State::Open {
                until: Instant::now(),
            };
        }
    }
}

/// Leave to make one call; reports the outcome to the breaker.
///
/// Dropping a probe's permit without an outcome (the call was cancelled)
/// hands the probe to the next call instead of leaving the breaker half-open
/// with no probe that will ever finish.
#[derive(Debug)]
pub(crate) struct Permit {
    breaker: CircuitBreaker,
    source: &'static str,
    probe: bool,
    settled: bool,
}

impl Permit {
    fn new(breaker: &CircuitBreaker, source: &'static str, probe: bool) -> Self {
        Self {
            breaker: breaker.clone(),
            source,
            probe,
            settled: false,
        }
    }

    /// Whether this call is the half-open probe.
    pub(crate) fn is_probe(&self) -> bool {
        self.probe
    }

    /// The backend answered (a success or a permanent error).
    pub(crate) fn healthy(mut self) {
        self.settled = true;
        self.breaker.record(self.source, self.probe, true);
    }

    /// The backend failed transiently or did not answer in time.
    pub(crate) fn unhealthy(mut self) {
        self.settled = true;
        self.breaker.record(self.source, self.probe, false);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            self.breaker.release_probe();
        }
    }
}

/// `now + after`, or far in the future when that overflows.
pub(crate) fn deadline_after(after: Duration) -> Instant {
    let now = Instant::now();
    // About 30 years, as tokio does for a sleep that never ends.
    now.checked_add(after)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: 2,
            open_for: Duration::from_secs(1),
        })
    }

    fn call(breaker: &CircuitBreaker, healthy: bool) {
        let permit = breaker
            .acquire("s")
            .expect("a closed breaker lets calls through");
        if healthy {
            permit.healthy();
        } else {
            permit.unhealthy();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_healthy_answer_resets_the_count() {
        let b = breaker();
        call(&b, false);
        call(&b, true);
        call(&b, false);
        assert_eq!(b.state(), BreakerState::Closed);
        call(&b, false);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.acquire("s").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_success_does_not_close_an_open_breaker() {
        let b = breaker();
        let stale = b.acquire("s").expect("closed");
        call(&b, false);
        call(&b, false);
        stale.healthy();
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn a_zero_threshold_is_one() {
        let b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 0,
            open_for: Duration::from_secs(1),
        });
        assert_eq!(b.config().failure_threshold, 1);
    }
}
