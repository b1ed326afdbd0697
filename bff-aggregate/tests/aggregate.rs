//! The combinator with in-process sources on tokio's paused clock, so every
//! duration below is exact and no test waits in real time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bff_aggregate::{
    Aggregate, AggregateError, BreakerConfig, BreakerState, Call, CircuitBreaker, ErrorKind, Meta,
    Retry, Source, SourceError, Status,
};
use serde_json::json;
use tokio::time::{Instant, sleep};

const MS: Duration = Duration::from_millis(1);

/// One boxed call, so a helper can name its source's closure type.
type BoxedCall<T> = std::pin::Pin<Box<dyn Future<Output = Result<T, SourceError>> + Send>>;

/// A source body that answers `value` after `after`.
async fn answer<T>(after: Duration, value: T) -> Result<T, SourceError> {
    sleep(after).await;
    Ok(value)
}

/// A source body that fails with `kind` after `after`.
async fn fail<T>(after: Duration, kind: ErrorKind) -> Result<T, SourceError> {
    sleep(after).await;
    Err(SourceError::msg(kind, "backend said no"))
}

fn status(meta: &Meta, name: &str) -> Status {
    meta.sources[name].status
}

#[tokio::test(start_paused = true)]
async fn all_ok_is_complete_with_typed_parts() {
    let user = Source::required("user", 100 * MS, |_| answer(10 * MS, "ada"));
    let orders = Source::optional("orders", 100 * MS, |_| answer(20 * MS, vec![1_u32, 2]));
    let assembled = Aggregate::new(200 * MS)
        .run((user, orders))
        .await
        .expect("all ok");

    let (user, orders): (&str, Option<Vec<u32>>) = assembled.parts;
    assert_eq!(user, "ada");
    assert_eq!(orders, Some(vec![1, 2]));
    assert!(assembled.meta.complete);
    assert_eq!(status(&assembled.meta, "user"), Status::Ok);
    assert_eq!(assembled.meta.sources["orders"].duration_ms, 20);
    assert_eq!(assembled.meta.sources["orders"].attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn a_slow_optional_source_times_out_at_its_deadline() {
    let user = Source::required("user", 100 * MS, |_| answer(10 * MS, 1));
    let slow = Source::optional("slow", 50 * MS, |_| answer(10_000 * MS, 2));
    let started = Instant::now();
    let assembled = Aggregate::new(200 * MS)
        .run((user, slow))
        .await
        .expect("optional failures do not fail the run");

    assert_eq!(started.elapsed(), 50 * MS);
    assert_eq!(assembled.parts, (1, None));
    assert!(!assembled.meta.complete);
    assert_eq!(status(&assembled.meta, "slow"), Status::Timeout);
    assert_eq!(assembled.meta.sources["slow"].duration_ms, 50);
}

#[tokio::test(start_paused = true)]
async fn a_failing_optional_source_is_an_error() {
    let user = Source::required("user", 100 * MS, |_| answer(10 * MS, 1));
    let broken = Source::optional("broken", 100 * MS, |_| fail::<u8>(MS, ErrorKind::Permanent));
    let assembled = Aggregate::new(200 * MS)
        .run((user, broken))
        .await
        .expect("optional failures do not fail the run");

    assert_eq!(assembled.parts, (1, None));
    assert!(!assembled.meta.complete);
    assert_eq!(status(&assembled.meta, "broken"), Status::Error);
    assert_eq!(status(&assembled.meta, "user"), Status::Ok);
}

#[tokio::test(start_paused = true)]
async fn a_required_failure_returns_without_waiting_for_siblings() {
    let fast = Source::optional("fast", 100 * MS, |_| answer(5 * MS, 0));
    let user = Source::required("user", 100 * MS, |_| {
        fail::<u8>(10 * MS, ErrorKind::Transient)
    });
    let slow = Source::optional("slow", 1000 * MS, |_| answer(500 * MS, 2));
    let started = Instant::now();
    let error = Aggregate::new(1000 * MS)
        .run((fast, user, slow))
        .await
        .expect_err("a required source failed");

    assert_eq!(started.elapsed(), 10 * MS);
    let AggregateError::Required {
        source,
        status: failed,
        error,
        meta,
    } = error
    else {
        panic!("not a required failure");
    };
    assert_eq!(source, "user");
    assert_eq!(failed, Status::Error);
    assert_eq!(
        error.expect("the source's error").to_string(),
        "backend said no"
    );
    assert!(!meta.complete);
    assert_eq!(status(&meta, "fast"), Status::Ok);
    assert_eq!(status(&meta, "user"), Status::Error);
    assert_eq!(status(&meta, "slow"), Status::Skipped);
    assert_eq!(meta.sources["slow"].duration_ms, 10);
}

#[tokio::test(start_paused = true)]
async fn a_required_timeout_fails_the_run_at_the_deadline() {
    let user = Source::required("user", 30 * MS, |_| answer(100 * MS, 1));
    let started = Instant::now();
    let error = Aggregate::new(1000 * MS)
        .run((user,))
        .await
        .expect_err("timed out");

    assert_eq!(started.elapsed(), 30 * MS);
    assert!(matches!(
        error,
        AggregateError::Required {
            source: "user",
            status: Status::Timeout,
            error: None,
            ..
        }
    ));
    assert_eq!(error.to_string(), "required source `user` failed (timeout)");
}

#[tokio::test(start_paused = true)]
async fn the_whole_deadline_caps_each_source() {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let remembered = Arc::clone(&seen);
    let patient = Source::optional("patient", 10_000 * MS, move |call: Call| {
        *remembered.lock().expect("lock") = Some(call.remaining());
        answer(5_000 * MS, 1)
    });
    let started = Instant::now();
    let assembled = Aggregate::new(80 * MS)
        .run((patient,))
        .await
        .expect("optional");

    assert_eq!(started.elapsed(), 80 * MS);
    assert_eq!(*seen.lock().expect("lock"), Some(80 * MS));
    assert_eq!(assembled.parts, (None,));
    assert_eq!(status(&assembled.meta, "patient"), Status::Timeout);
}

#[tokio::test(start_paused = true)]
async fn sources_run_concurrently() {
    let a = Source::required("a", 500 * MS, |_| answer(50 * MS, 'a'));
    let b = Source::required("b", 500 * MS, |_| answer(80 * MS, 'b'));
    let c = Source::optional("c", 500 * MS, |_| answer(120 * MS, 'c'));
    let started = Instant::now();
    let assembled = Aggregate::new(500 * MS)
        .run((a, b, c))
        .await
        .expect("all ok");

    // Sequentially this would take 250 ms.
    assert_eq!(started.elapsed(), 120 * MS);
    assert_eq!(assembled.parts, ('a', 'b', Some('c')));
}

#[tokio::test(start_paused = true)]
async fn eight_sources_of_both_kinds() {
    let assembled = Aggregate::new(100 * MS)
        .run((
            Source::required("s0", 50 * MS, |_| answer(MS, 0_u8)),
            Source::optional("s1", 50 * MS, |_| answer(MS, 1_u16)),
            Source::required("s2", 50 * MS, |_| answer(MS, "2")),
            Source::optional("s3", 50 * MS, |_| fail::<u8>(MS, ErrorKind::Permanent)),
            Source::required("s4", 50 * MS, |_| answer(MS, 4_i64)),
            Source::optional("s5", 50 * MS, |_| answer(MS, 5_u32)),
            Source::required("s6", 50 * MS, |_| answer(MS, '6')),
            Source::optional("s7", 10 * MS, |_| answer(20 * MS, 7_u8)),
        ))
        .await
        .expect("required ones are ok");

    assert_eq!(
        assembled.parts,
        (0, Some(1), "2", None, 4, Some(5), '6', None)
    );
    assert_eq!(assembled.meta.sources.len(), 8);
    assert_eq!(status(&assembled.meta, "s7"), Status::Timeout);
}

/// Flips its flag when dropped: a source's future holds one to show whether
/// the future was dropped before it finished.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_run_cancels_sources_in_flight() {
    let dropped = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (flag, done) = (Arc::clone(&dropped), Arc::clone(&finished));
    let slow = Source::required("slow", 1000 * MS, move |_| {
        let guard = DropFlag(Arc::clone(&flag));
        let done = Arc::clone(&done);
        async move {
            let _guard = guard;
            sleep(500 * MS).await;
            done.store(true, Ordering::SeqCst);
            Ok::<_, SourceError>(())
        }
    });
    let aggregate = Aggregate::new(1000 * MS);
    let run = aggregate.run((slow,));

    // The client goes away after 100 ms: the handler's future is dropped.
    let outcome = tokio::time::timeout(100 * MS, run).await;
    assert!(outcome.is_err(), "the run was cut short");
    assert!(dropped.load(Ordering::SeqCst), "the call was dropped");
    sleep(1000 * MS).await;
    assert!(!finished.load(Ordering::SeqCst), "the call never finished");
}

#[tokio::test(start_paused = true)]
async fn a_required_failure_cancels_its_siblings() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&dropped);
    let sibling = Source::optional("sibling", 1000 * MS, move |_| {
        let guard = DropFlag(Arc::clone(&flag));
        async move {
            let _guard = guard;
            answer(500 * MS, ()).await
        }
    });
    let user = Source::required("user", 100 * MS, |_| fail::<()>(MS, ErrorKind::Permanent));
    let result = Aggregate::new(1000 * MS).run((sibling, user)).await;

    assert!(result.is_err());
    assert!(dropped.load(Ordering::SeqCst));
}

/// A source body that fails transiently `failures` times, then answers;
/// `calls` counts every call.
fn flaky(
    calls: &Arc<AtomicUsize>,
    failures: usize,
    kind: ErrorKind,
) -> impl FnMut(Call) -> BoxedCall<u32> + Send + use<> {
    let calls = Arc::clone(calls);
    move |call: Call| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            sleep(MS).await;
            if n < failures {
                Err(SourceError::msg(kind, format!("failure {n}")))
            } else {
                Ok(call.attempt())
            }
        })
    }
}

#[tokio::test(start_paused = true)]
async fn retry_a_transient_error_then_succeed() {
    let calls = Arc::new(AtomicUsize::new(0));
    let source = Source::required("flaky", 500 * MS, flaky(&calls, 2, ErrorKind::Transient))
        .retry(Retry::new(3).backoff(10 * MS));
    let assembled = Aggregate::new(500 * MS)
        .run((source,))
        .await
        .expect("the third attempt succeeds");

    assert_eq!(assembled.parts, (2,), "the closure saw attempt 2");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(assembled.meta.sources["flaky"].attempts, 3);
    assert!(assembled.meta.complete);
}

#[tokio::test(start_paused = true)]
async fn retries_are_bounded_by_max_retries() {
    let calls = Arc::new(AtomicUsize::new(0));
    let source = Source::optional("flaky", 500 * MS, flaky(&calls, 10, ErrorKind::Transient))
        .retry(Retry::new(2).backoff(MS));
    let assembled = Aggregate::new(500 * MS)
        .run((source,))
        .await
        .expect("optional");

    assert_eq!(assembled.parts, (None,));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(status(&assembled.meta, "flaky"), Status::Error);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_is_not_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let source = Source::optional("missing", 500 * MS, flaky(&calls, 10, ErrorKind::Permanent))
        .retry(Retry::new(5).backoff(MS));
    let assembled = Aggregate::new(500 * MS)
        .run((source,))
        .await
        .expect("optional");

    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(status(&assembled.meta, "missing"), Status::Error);
    assert_eq!(assembled.meta.sources["missing"].attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_when_the_deadline_leaves_no_room() {
    // Up to a thousand retries, each wait up to 40 ms: only the deadline can
    // stop them in 100 ms. With the deadline ignored, the thousand retries
    // would outlast it and the source would time out instead. The calls fail
    // at once, so that no call can be cut short by the deadline.
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let source = Source::optional("flaky", 100 * MS, move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Err::<(), _>(SourceError::msg(
            ErrorKind::Transient,
            "unavailable",
        )))
    })
    .retry(Retry::new(1000).backoff(40 * MS).max_backoff(40 * MS));
    let started = Instant::now();
    let assembled = Aggregate::new(100 * MS)
        .run((source,))
        .await
        .expect("optional");

    assert!(started.elapsed() <= 100 * MS, "{:?}", started.elapsed());
    assert_eq!(status(&assembled.meta, "flaky"), Status::Error);
    let calls = calls.load(Ordering::SeqCst);
    assert!((2..1000).contains(&calls), "{calls} calls");
}

#[tokio::test(start_paused = true)]
async fn a_fast_hedge_wins_over_a_slow_first_call() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let source = Source::required("search", 500 * MS, move |call: Call| {
        counted.fetch_add(1, Ordering::SeqCst);
        let (delay, who) = if call.is_hedge() {
            (10 * MS, "hedge")
        } else {
            (400 * MS, "first")
        };
        answer(delay, who)
    })
    .hedge(30 * MS);
    let started = Instant::now();
    let assembled = Aggregate::new(500 * MS)
        .run((source,))
        .await
        .expect("the hedge answers");

    assert_eq!(assembled.parts, ("hedge",));
    assert_eq!(started.elapsed(), 40 * MS);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(assembled.meta.sources["search"].attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn no_hedge_when_the_first_call_is_quick() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let source = Source::required("search", 500 * MS, move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        answer(20 * MS, ())
    })
    .hedge(30 * MS);
    Aggregate::new(500 * MS).run((source,)).await.expect("ok");

    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_hedge_leaves_the_first_call_to_answer() {
    let source = Source::required("search", 500 * MS, |call: Call| async move {
        if call.is_hedge() {
            fail(MS, ErrorKind::Transient).await
        } else {
            answer(100 * MS, "first").await
        }
    })
    .hedge(30 * MS);
    let started = Instant::now();
    let assembled = Aggregate::new(500 * MS)
        .run((source,))
        .await
        .expect("the first call answers");

    assert_eq!(assembled.parts, ("first",));
    assert_eq!(started.elapsed(), 100 * MS);
}

/// A source behind `breaker` that counts calls and fails transiently while
/// `failing` is set.
fn guarded(
    breaker: &CircuitBreaker,
    calls: &Arc<AtomicUsize>,
    failing: &Arc<AtomicBool>,
) -> Source<impl FnMut(Call) -> BoxedCall<()> + Send + use<>, bff_aggregate::Optional> {
    let (calls, failing) = (Arc::clone(calls), Arc::clone(failing));
    Source::optional("backend", 100 * MS, move |_| {
        calls.fetch_add(1, Ordering::SeqCst);
        let failing = failing.load(Ordering::SeqCst);
        Box::pin(async move {
            sleep(MS).await;
            if failing {
                Err(SourceError::msg(ErrorKind::Transient, "unavailable"))
            } else {
                Ok(())
            }
        }) as BoxedCall<()>
    })
    .breaker(breaker.clone())
}

async fn run_once(source: impl bff_aggregate::Sources<Parts = (Option<()>,)>) -> Status {
    let assembled = Aggregate::new(100 * MS)
        .run(source)
        .await
        .expect("optional");
    assembled.meta.sources["backend"].status
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_skips_probes_and_closes() {
    let breaker = CircuitBreaker::new(BreakerConfig {
        failure_threshold: 3,
        open_for: Duration::from_secs(5),
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(true));

    for _ in 0..3 {
        assert_eq!(
            run_once((guarded(&breaker, &calls, &failing),)).await,
            Status::Error
        );
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // Open: skipped at once, without a call.
    let started = Instant::now();
    let assembled = Aggregate::new(100 * MS)
        .run((guarded(&breaker, &calls, &failing),))
        .await
        .expect("optional");
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(assembled.meta.sources["backend"].status, Status::Skipped);
    assert_eq!(assembled.meta.sources["backend"].attempts, 0);
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // After `open_for`, two requests at once: exactly one probe goes out,
    // the other is skipped.
    sleep(Duration::from_secs(5)).await;
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    failing.store(false, Ordering::SeqCst);
    let (first, second) = tokio::join!(
        run_once((guarded(&breaker, &calls, &failing),)),
        run_once((guarded(&breaker, &calls, &failing),)),
    );
    assert_eq!((first, second), (Status::Ok, Status::Skipped));
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(
        run_once((guarded(&breaker, &calls, &failing),)).await,
        Status::Ok
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_opens_the_breaker_again() {
    let breaker = CircuitBreaker::new(BreakerConfig {
        failure_threshold: 1,
        open_for: Duration::from_secs(5),
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(true));

    assert_eq!(
        run_once((guarded(&breaker, &calls, &failing),)).await,
        Status::Error
    );
    assert_eq!(breaker.state(), BreakerState::Open);
    sleep(Duration::from_secs(5)).await;
    assert_eq!(
        run_once((guarded(&breaker, &calls, &failing),)).await,
        Status::Error
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(breaker.state(), BreakerState::Open);

    // Open for another full `open_for`.
    sleep(Duration::from_secs(4)).await;
    assert_eq!(
        run_once((guarded(&breaker, &calls, &failing),)).await,
        Status::Skipped
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    sleep(Duration::from_secs(1)).await;
    failing.store(false, Ordering::SeqCst);
    assert_eq!(
        run_once((guarded(&breaker, &calls, &failing),)).await,
        Status::Ok
    );
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_does_not_wedge_the_breaker() {
    let breaker = CircuitBreaker::new(BreakerConfig {
        failure_threshold: 1,
        open_for: Duration::from_secs(5),
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(true));
    assert_eq!(
        run_once((guarded(&breaker, &calls, &failing),)).await,
        Status::Error
    );
    sleep(Duration::from_secs(5)).await;

    // The probe's request goes away before the probe answers.
    let hung =
        Source::optional("backend", 1000 * MS, |_| answer(1000 * MS, ())).breaker(breaker.clone());
    let aggregate = Aggregate::new(1000 * MS);
    let cut = tokio::time::timeout(10 * MS, aggregate.run((hung,))).await;
    assert!(cut.is_err());

    // The next request probes, at once.
    failing.store(false, Ordering::SeqCst);
    assert_eq!(
        run_once((guarded(&breaker, &calls, &failing),)).await,
        Status::Ok
    );
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_does_not_open_the_breaker() {
    let breaker = CircuitBreaker::new(BreakerConfig {
        failure_threshold: 2,
        open_for: Duration::from_secs(5),
    });
    for _ in 0..5 {
        let source = Source::optional("backend", 100 * MS, |_| {
            fail::<()>(MS, ErrorKind::Permanent)
        })
        .breaker(breaker.clone());
        assert_eq!(run_once((source,)).await, Status::Error);
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn timeouts_open_the_breaker() {
    let breaker = CircuitBreaker::new(BreakerConfig {
        failure_threshold: 2,
        open_for: Duration::from_secs(5),
    });
    for _ in 0..2 {
        let source =
            Source::optional("backend", 10 * MS, |_| answer(50 * MS, ())).breaker(breaker.clone());
        assert_eq!(run_once((source,)).await, Status::Timeout);
    }
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn meta_serialises_to_the_contract() {
    let user = Source::required("user", 100 * MS, |_| answer(12 * MS, ()));
    let offers = Source::optional("offers", 30 * MS, |_| answer(100 * MS, ()));
    let broken = Source::optional("broken", 100 * MS, |_| {
        fail::<()>(7 * MS, ErrorKind::Transient)
    });
    let assembled = Aggregate::new(100 * MS)
        .run((user, offers, broken))
        .await
        .expect("required ok");

    assert_eq!(
        serde_json::to_value(&assembled.meta).expect("serialise"),
        json!({
            "complete": false,
            "sources": {
                "user": {"status": "ok", "duration_ms": 12},
                "offers": {"status": "timeout", "duration_ms": 30},
                "broken": {"status": "error", "duration_ms": 7},
            }
        })
    );

    let breaker = CircuitBreaker::new(BreakerConfig {
        failure_threshold: 1,
        open_for: Duration::from_secs(5),
    });
    let failed = Source::optional("a", 100 * MS, |_| fail::<()>(MS, ErrorKind::Transient))
        .breaker(breaker.clone());
    Aggregate::new(100 * MS)
        .run((failed,))
        .await
        .expect("optional");
    let skipped = Source::optional("a", 100 * MS, |_| answer(MS, ())).breaker(breaker);
    let assembled = Aggregate::new(100 * MS)
        .run((skipped,))
        .await
        .expect("optional");
    assert_eq!(
        serde_json::to_value(&assembled.meta).expect("serialise"),
        json!({"complete": false, "sources": {"a": {"status": "skipped", "duration_ms": 0}}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_can_be_spawned_like_a_handler() {
    // Handlers on the multi-threaded runtime need `Send` futures.
    let handler = tokio::spawn(async {
        let aggregate = Aggregate::new(100 * MS);
        let user = Source::required("user", 100 * MS, |_| answer(MS, "ada"));
        let orders = Source::optional("orders", 100 * MS, |_| answer(MS, 3_u8))
            .retry(Retry::new(1))
            .hedge(50 * MS)
            .breaker(CircuitBreaker::new(BreakerConfig::default()));
        aggregate.run((user, orders)).await
    });
    let assembled = handler.await.expect("joined").expect("ok");
    assert_eq!(assembled.parts, ("ada", Some(3)));
}
