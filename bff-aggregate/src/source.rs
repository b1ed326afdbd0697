//! One backend call and its policy: deadline, retries, hedge, breaker.

use std::fmt;
use std::marker::PhantomData;
use std::pin::pin;
use std::time::Duration;

use tokio::time::{Instant, sleep_until, timeout_at};
use tracing::Instrument;

use crate::breaker::{BreakerState, CircuitBreaker, Permit, deadline_after};
use crate::error::SourceError;
use crate::metric_names::{HEDGES_TOTAL, RETRIES_TOTAL, SOURCE_DURATION, SOURCE_TOTAL};
use crate::report::{SourceReport, Status};
use crate::retry::Retry;

/// What a source's closure gets on every call it is asked to make.
///
/// Pass its [`remaining`](Call::remaining) time on to the backend (the
/// protocol helpers do: `grpc-timeout`, the NATS request timeout, the HTTP
/// client's timeout) so the backend stops working when nobody waits for the
/// answer any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    deadline: Instant,
    attempt: u32,
    hedge: bool,
}

impl Call {
    /// A first call (attempt 0, not a hedge) due by `deadline`. The
    /// aggregate makes these; this is for calling a source's closure or a
    /// protocol helper directly, in tests for example.
    pub fn new(deadline: Instant) -> Self {
        Self {
            deadline,
            attempt: 0,
            hedge: false,
        }
    }

    /// A first call due `timeout` from now, for calling a protocol helper
    /// outside an aggregate (one backend call of an endpoint, say). A timeout
    /// too large to add to the clock means no deadline in practice.
    pub fn within(timeout: Duration) -> Self {
        Self::new(deadline_after(timeout))
    }

    /// When the source's deadline passes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Time left until the deadline; zero once it has passed.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// 0 for the first call, 1 for the first retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether this is the hedge: a second call running beside a slow first
    /// one.
    pub fn is_hedge(&self) -> bool {
        self.hedge
    }
}

/// Marks a source whose failure fails the whole aggregate. Its part is `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Required;

/// Marks a source the payload can do without. Its part is `Option<T>`:
/// `None` when it timed out, failed or was skipped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Optional;

mod sealed {
    // The seal: only this crate's markers and tuples implement `Kind` and
    // `Sources`, so their hidden methods can change without breaking anyone.
    #[allow(unreachable_pub)]
    pub trait Sealed {}
}
pub(crate) use sealed::Sealed;

impl Sealed for Required {}
impl Sealed for Optional {}

/// [`Required`] or [`Optional`]: what a source contributes and whether its
/// failure is fatal. Sealed.
pub trait Kind: Sealed + Send + 'static {
    /// Whether a failure of the source fails the whole aggregate.
    const REQUIRED: bool;

    /// The source's part of the result, given its value type: `T` for a
    /// required source, `Option<T>` for an optional one.
    type Part<T>;

    /// The part of a source that answered.
    #[doc(hidden)]
    fn present<T>(value: T) -> Self::Part<T>;

    /// The part of a source that did not answer, or `None` if that fails
    /// the aggregate.
    #[doc(hidden)]
    fn absent<T>() -> Option<Self::Part<T>>;
}

impl Kind for Required {
    const REQUIRED: bool = true;
    type Part<T> = T;

    fn present<T>(value: T) -> T {
        value
    }

    fn absent<T>() -> Option<T> {
        None
    }
}

impl Kind for Optional {
    const REQUIRED: bool = false;
    type Part<T> = Option<T>;

    fn present<T>(value: T) -> Option<T> {
        Some(value)
    }

    fn absent<T>() -> Option<Option<T>> {
        Some(None)
    }
}

/// A source's closure: called with a [`Call`] for every attempt (and hedge),
/// it returns the future of one call to the backend.
///
/// Implemented for every `FnMut(Call) -> Fut` where
/// `Fut: Future<Output = Result<T, SourceError>> + Send`; there is no need to
/// implement it by hand.
pub trait MakeCall {
    /// What a successful call returns.
    type Output;
    /// One call's future.
    type Future: Future<Output = Result<Self::Output, SourceError>> + Send;

    /// Starts a call.
    fn make(&mut self, call: Call) -> Self::Future;
}

impl<F, Fut, T> MakeCall for F
where
    F: FnMut(Call) -> Fut,
    Fut: Future<Output = Result<T, SourceError>> + Send,
{
    type Output = T;
    type Future = Fut;

    fn make(&mut self, call: Call) -> Fut {
        self(call)
    }
}

/// One backend call in an aggregate: a name (for the meta, logs and
/// metrics), a deadline, the closure that makes the call, and optionally a
/// [`Retry`], a hedge delay and a [`CircuitBreaker`].
///
/// The closure is called once per attempt, so it clones what each call needs
/// (a client handle, the request) into the future it returns:
///
/// ```
/// use std::time::Duration;
/// use bff_aggregate::{Retry, Source, SourceError};
///
/// let user_id = 7_u64;
/// let profile = Source::required("profile", Duration::from_millis(300), move |_call| async move {
///     Ok::<_, SourceError>(format!("user {user_id}"))
/// })
/// .retry(Retry::new(1));
/// ```
pub struct Source<F, K> {
    name: &'static str,
    deadline: Duration,
    make: F,
    retry: Option<Retry>,
    hedge: Option<Duration>,
    breaker: Option<CircuitBreaker>,
    kind: PhantomData<fn() -> K>,
}

impl<F> Source<F, Required> {
    /// A source the payload cannot do without: if it fails, times out or is
    /// skipped, the whole aggregate fails at once.
    ///
    /// `deadline` is its own budget from the start of the run; the
    /// aggregate's deadline caps it.
    pub fn required<Fut, T>(name: &'static str, deadline: Duration, make: F) -> Self
    where
        F: FnMut(Call) -> Fut,
        Fut: Future<Output = Result<T, SourceError>> + Send,
    {
        Source::with_kind(name, deadline, make)
    }
}

impl<F> Source<F, Optional> {
    /// A source the payload can do without: if it fails, times out or is
    /// skipped, its part is `None` and the meta says why.
    ///
    /// `deadline` is its own budget from the start of the run; the
    /// aggregate's deadline caps it.
    pub fn optional<Fut, T>(name: &'static str, deadline: Duration, make: F) -> Self
    where
        F: FnMut(Call) -> Fut,
        Fut: Future<Output = Result<T, SourceError>> + Send,
    {
        Source::with_kind(name, deadline, make)
    }
}

impl<F, K> Source<F, K> {
    fn with_kind(name: &'static str, deadline: Duration, make: F) -> Self {
        Self {
            name,
            deadline,
            make,
            retry: None,
            hedge: None,
            breaker: None,
            kind: PhantomData,
        }
    }

    /// Retries transient failures. Only for idempotent calls: see [`Retry`].
    #[must_use]
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Puts calls behind a breaker, usually a clone of one shared by every
    /// request to this backend.
    #[must_use]
    pub fn breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// Hedges slow calls: if an attempt has not finished after `delay`, a
    /// second call starts beside it ([`Call::is_hedge`] is true), the first
    /// success wins and the other call is dropped; if one fails, the other
    /// still running decides.
    ///
    /// This trades backend load for tail latency: a delay near the backend's
    /// 95th percentile costs about 5% more calls and cuts the slowest 5%.
    /// **Only for idempotent reads**, since both calls may take effect.
    #[must_use]
    pub fn hedge(mut self, delay: Duration) -> Self {
        self.hedge = Some(delay);
        self
    }

    /// The source's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl<F, K: Kind> fmt::Debug for Source<F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("required", &K::REQUIRED)
            .field("deadline", &self.deadline)
            .field("retry", &self.retry)
            .field("hedge", &self.hedge)
            .field("breaker", &self.breaker.as_ref().map(CircuitBreaker::state))
            .finish_non_exhaustive()
    }
}

/// Why a source produced no value.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: Status,
    pub(crate) error: Option<SourceError>,
}

impl Failure {
    fn new(status: Status, error: Option<SourceError>) -> Self {
        Self { status, error }
    }
}

/// A source's end: its report and, for a required source that failed, why.
pub(crate) struct Settled<P> {
    pub(crate) name: &'static str,
    pub(crate) report: SourceReport,
    pub(crate) part: Result<P, Failure>,
}

impl<F: MakeCall, K: Kind> Source<F, K> {
    /// Runs the source to its end: every attempt, under its deadline capped
    /// by `whole`, recording the report, metrics and span.
    pub(crate) async fn drive(mut self, whole: Instant) -> Settled<K::Part<F::Output>> {
        let name = self.name;
        let started = Instant::now();
        let deadline = deadline_after(self.deadline).min(whole);
        // With OpenTelemetry (bff-core's `otel`), this span is the source's
        // span: named by the source, with its deadline and final status, an
        // error status for anything but `ok`.
        let span = tracing::info_span!(
            "aggregate.source",
            otel.name = format!("source {name}"),
            otel.status_code = tracing::field::Empty,
            source = name,
            required = K::REQUIRED,
            deadline_ms = u64::try_from(deadline.saturating_duration_since(started).as_millis())
                .unwrap_or(u64::MAX),
            status = tracing::field::Empty,
            attempts = tracing::field::Empty,
        );
        let (outcome, attempts) = self.attempts(deadline).instrument(span.clone()).await;
        let elapsed = started.elapsed();

        let status = match &outcome {
            Ok(_) => Status::Ok,
            Err(failure) => failure.status,
        };
        span.record("status", status.as_str());
        span.record("attempts", attempts);
        if status != Status::Ok {
            span.record("otel.status_code", "error");
        }
        metrics::histogram!(SOURCE_DURATION, "source" => name, "status" => status.as_str())
            .record(elapsed.as_secs_f64());
        metrics::counter!(SOURCE_TOTAL, "source" => name, "status" => status.as_str()).increment(1);
        if let Err(failure) = &outcome {
            span.in_scope(|| log_failure(name, K::REQUIRED, failure));
        }

        let report = SourceReport {
            status,
            duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            attempts,
        };
        let part = match outcome {
            Ok(value) => Ok(K::present(value)),
            Err(failure) => K::absent().ok_or(failure),
        };
        Settled { name, report, part }
    }

    /// Makes attempts until one succeeds, one fails for good, the breaker or
    /// the retry policy says stop, or the deadline passes. Returns the
    /// outcome and the number of attempts made.
    async fn attempts(&mut self, deadline: Instant) -> (Result<F::Output, Failure>, u32) {
        let mut attempt = 0;
        let mut last_error = None;
        loop {
            let permit = match &self.breaker {
                Some(breaker) => match breaker.acquire(self.name) {
                    Some(permit) => Some(permit),
                    None => {
                        // Skipped if nothing was tried; if the breaker opened
                        // between retries (other requests failed as well),
                        // the last failure is the honest answer.
                        let status = match last_error {
                            Some(_) => Status::Error,
                            None => Status::Skipped,
                        };
                        return (Err(Failure::new(status, last_error)), attempt);
                    }
                },
                None => None,
            };
            if attempt > 0 {
                metrics::counter!(RETRIES_TOTAL, "source" => self.name).increment(1);
            }
            // A probe is one call, so that it gets exactly one answer.
            let hedge = self
                .hedge
                .filter(|_| !permit.as_ref().is_some_and(Permit::is_probe));
            let call = Call {
                deadline,
                attempt,
                hedge: false,
            };
            let attempt_future = one_attempt(&mut self.make, call, hedge, self.name);
            let result = timeout_at(deadline, attempt_future).await;
            attempt += 1;
            let error = match result {
                Ok(Ok(value)) => {
                    settle_permit(permit, true);
                    return (Ok(value), attempt);
                }
                Err(_elapsed) => {
                    settle_permit(permit, false);
                    return (Err(Failure::new(Status::Timeout, None)), attempt);
                }
                Ok(Err(error)) => error,
            };
            // A permanent error means the backend answered: healthy.
            settle_permit(permit, !error.is_transient());
            if error.is_timeout() {
                return (Err(Failure::new(Status::Timeout, Some(error))), attempt);
            }
            match self.backoff(&error, attempt, deadline) {
                Some(wait) => {
                    tracing::debug!(error = %error, ?wait, "retrying after a transient error");
                    last_error = Some(error);
                    tokio::time::sleep(wait).await;
                }
                None => return (Err(Failure::new(Status::Error, Some(error))), attempt),
            }
        }
    }

    /// The wait before the next attempt, or `None` if there is to be none:
    /// the error is permanent, retries are used up or not configured, the
    /// breaker is no longer closed, or the wait would not end before the
    /// deadline.
    fn backoff(&self, error: &SourceError, attempts: u32, deadline: Instant) -> Option<Duration> {
        let retry = self.retry?;
        if !error.is_transient() || attempts > retry.max_retries() {
            return None;
        }
        // Once the breaker has opened (perhaps on this very failure), a retry
        // would be refused after its wait: give up now instead.
        if let Some(breaker) = &self.breaker
            && breaker.state() != BreakerState::Closed
        {
            return None;
        }
        let wait = retry.delay(attempts);
        let wakes = Instant::now().checked_add(wait);
        wakes.is_some_and(|at| at < deadline).then_some(wait)
    }
}

/// One attempt: a call, and its hedge if the call is slower than `hedge`.
async fn one_attempt<F: MakeCall>(
    make: &mut F,
    call: Call,
    hedge: Option<Duration>,
    name: &'static str,
) -> Result<F::Output, SourceError> {
    let first = make.make(call.clone());
    let Some(delay) = hedge else {
        return first.await;
    };
    let hedge_at = Instant::now().checked_add(delay);
    let Some(hedge_at) = hedge_at.filter(|at| *at < call.deadline) else {
        // The hedge would start after the deadline: there is no hedge.
        return first.await;
    };
    let mut first = pin!(first);
    tokio::select! {
        biased;
        result = &mut first => return result,
        () = sleep_until(hedge_at) => {}
    }
    metrics::counter!(HEDGES_TOTAL, "source" => name).increment(1);
    tracing::debug!("hedging a slow call");
    let mut second = pin!(make.make(Call {
        hedge: true,
        ..call
    }));
    // The first success wins and the other call is dropped (cancelled). A
    // failure leaves the other call to decide, so when both fail the later
    // error is returned.
    tokio::select! {
        biased;
        result = &mut first => match result {
            Ok(value) => Ok(value),
            Err(_) => second.await,
        },
        result = &mut second => match result {
            Ok(value) => Ok(value),
            Err(_) => first.await,
        },
    }
}

fn settle_permit(permit: Option<Permit>, healthy: bool) {
    match permit {
        Some(permit) if healthy => permit.healthy(),
        Some(permit) => permit.unhealthy(),
        None => {}
    }
}

// Backend errors are logged in full: they come from the backend or its
// client, never from the frontend's credentials.
fn log_failure(name: &'static str, required: bool, failure: &Failure) {
    let status = failure.status.as_str();
    match (&failure.error, required) {
        (Some(error), true) => {
            tracing::warn!(source = name, status, error = %error, "required source failed");
        }
        (Some(error), false) => {
            tracing::warn!(source = name, status, error = %error, "optional source failed");
        }
        // Skipped by an open breaker: the breaker logged the outage once when
        // it opened; a line per request would flood the log at request rate.
        (None, _) if failure.status == Status::Skipped => {
            tracing::debug!(source = name, required, status, "source skipped");
        }
        (None, true) => tracing::warn!(source = name, status, "required source failed"),
        (None, false) => tracing::warn!(source = name, status, "optional source failed"),
    }
}
