//! The combinator: run sources side by side and assemble their parts.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::breaker::deadline_after;
use crate::error::SourceError;
use crate::report::{Meta, SourceReport, Status};
use crate::source::{Failure, Kind, MakeCall, Sealed, Settled, Source};

/// Runs several [`Source`]s concurrently under one deadline and assembles
/// their parts with a [`Meta`] that says how complete the result is.
///
/// See the [crate documentation](crate) for an example and for how
/// deadlines, cancellation and failures behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aggregate {
    deadline: Duration,
}

/// The parts of a successful run and how each source ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembled<P> {
    /// One part per source, in the order the sources were given: `T` for a
    /// required source, `Option<T>` for an optional one.
    pub parts: P,
    /// Every source's report.
    pub meta: Meta,
}

/// Why an aggregate produced no payload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AggregateError {
    /// A required source failed, timed out or was skipped by its breaker.
    /// The run stopped at once and cancelled the sources still in flight.
    #[error("required source `{source}` failed ({status})")]
    Required {
        /// The source's name.
        source: &'static str,
        /// How it ended: `timeout`, `error` or `skipped`.
        status: Status,
        /// The last error, if the source got one (a timeout or a skip has
        /// none, unless the client reported the timeout).
        #[source]
        error: Option<SourceError>,
        /// The reports known when the run stopped: sources that had ended
        /// as they ended, those cancelled as `skipped` with the time they ran.
        meta: Meta,
    },
}

impl AggregateError {
    /// The reports known when the run stopped.
    pub fn meta(&self) -> &Meta {
        match self {
            Self::Required { meta, .. } => meta,
        }
    }
}

impl Aggregate {
    /// An aggregate whose whole run takes at most `deadline`. Each source's
    /// own deadline is capped by it.
    pub fn new(deadline: Duration) -> Self {
        Self { deadline }
    }

    /// The whole run's deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Runs every source concurrently on the current task and returns their
    /// parts, or the first required failure.
    ///
    /// Nothing is spawned: dropping the returned future (the client went
    /// away, an outer timeout fired) drops, and so cancels, every call in
    /// flight. Source names should be unique; they key the meta.
    pub async fn run<S: Sources>(&self, sources: S) -> Result<Assembled<S::Parts>, AggregateError> {
        let deadline = deadline_after(self.deadline);
        let (parts, meta) = sources.run(deadline).await?;
        Ok(Assembled { parts, meta })
    }
}

/// A tuple of 1 to 8 [`Source`]s, required and optional mixed, that
/// [`Aggregate::run`] runs together. Sealed.
///
/// The sources' closures and futures must be `Send` so that the run can be
/// awaited in a handler on a multi-threaded runtime.
pub trait Sources: Sealed {
    /// The tuple of parts, one per source in the same order.
    type Parts;

    /// Runs the sources until `deadline`.
    #[doc(hidden)]
    fn run(
        self,
        deadline: Instant,
    ) -> impl Future<Output = Result<(Self::Parts, Meta), AggregateError>> + Send;
}

/// Reports of the sources that have ended, so that a run stopped by a
/// required failure can still say how every source fared.
pub(crate) struct Reports {
    started: Instant,
    names: Vec<&'static str>,
    ended: Mutex<BTreeMap<&'static str, SourceReport>>,
}

impl Reports {
    pub(crate) fn new(names: Vec<&'static str>) -> Self {
        debug_assert!(
            names
                .iter()
                .enumerate()
                .all(|(i, name)| !names[..i].contains(name)),
            "source names must be unique in an aggregate: {names:?}"
        );
        Self {
            started: Instant::now(),
            names,
            ended: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records a source's end; a required failure becomes the run's error.
    pub(crate) fn settle<P>(&self, settled: Settled<P>) -> Result<P, Failed> {
        self.ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(settled.name, settled.report);
        settled.part.map_err(|failure| Failed {
            source: settled.name,
            failure,
        })
    }

    /// The meta, with sources that have not ended reported `skipped`.
    pub(crate) fn meta(self) -> Meta {
        let ended = self
            .ended
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let cut_short = SourceReport {
            status: Status::Skipped,
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            attempts: 0,
        };
        let sources = self
            .names
            .iter()
            .map(|name| {
                let report = ended.get(name).copied().unwrap_or(cut_short);
                ((*name).to_owned(), report)
            })
            .collect();
        Meta::from_reports(sources)
    }
}

/// The required source that stopped a run.
pub(crate) struct Failed {
    source: &'static str,
    failure: Failure,
}

impl Failed {
    pub(crate) fn into_error(self, reports: Reports) -> AggregateError {
        AggregateError::Required {
            source: self.source,
            status: self.failure.status,
            error: self.failure.error,
            meta: reports.meta(),
        }
    }
}

macro_rules! tuple_sources {
    ($(($idx:tt, $F:ident, $K:ident, $s:ident)),+) => {
        impl<$($F, $K),+> Sealed for ($(Source<$F, $K>,)+) {}

        impl<$($F, $K),+> Sources for ($(Source<$F, $K>,)+)
        where
            $(
                $F: MakeCall + Send,
                $F::Output: Send,
                $K: Kind,
                $K::Part<$F::Output>: Send,
            )+
        {
            type Parts = ($($K::Part<$F::Output>,)+);

            fn run(
                self,
                deadline: Instant,
            ) -> impl Future<Output = Result<(Self::Parts, Meta), AggregateError>> + Send {
                async move {
                    let reports = Reports::new(vec![$(self.$idx.name()),+]);
                    let ($($s,)+) = self;
                    let record = &reports;
                    // `try_join!` polls every source on this task and
                    // returns at the first required failure, dropping (and
                    // so cancelling) the sources still running.
                    let joined = tokio::try_join!(
                        $(async move { record.settle($s.drive(deadline).await) }),+
                    );
                    match joined {
                        Ok(parts) => Ok((parts, reports.meta())),
                        Err(failed) => Err(failed.into_error(reports)),
                    }
                }
            }
        }
    };
}

tuple_sources!((0, F0, K0, s0));
tuple_sources!((0, F0, K0, s0), (1, F1, K1, s1));
tuple_sources!((0, F0, K0, s0), (1, F1, K1, s1), (2, F2, K2, s2));
tuple_sources!(
    (0, F0, K0, s0),
    (1, F1, K1, s1),
    (2, F2, K2, s2),
    (3, F3, K3, s3)
);
tuple_sources!(
    (0, F0, K0, s0),
    (1, F1, K1, s1),
    (2, F2, K2, s2),
    (3, F3, K3, s3),
    (4, F4, K4, s4)
);
tuple_sources!(
    (0, F0, K0, s0),
    (1, F1, K1, s1),
    (2, F2, K2, s2),
    (3, F3, K3, s3),
    (4, F4, K4, s4),
    (5, F5, K5, s5)
);
tuple_sources!(
    (0, F0, K0, s0),
    (1, F1, K1, s1),
    (2, F2, K2, s2),
    (3, F3, K3, s3),
    (4, F4, K4, s4),
    (5, F5, K5, s5),
    (6, F6, K6, s6)
);
tuple_sources!(
    (0, F0, K0, s0),
    (1, F1, K1, s1),
    (2, F2, K2, s2),
    (3, F3, K3, s3),
    (4, F4, K4, s4),
    (5, F5, K5, s5),
    (6, F6, K6, s6),
    (7, F7, K7, s7)
);
