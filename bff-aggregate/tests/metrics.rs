//! What an operator sees on `/metrics` after a run.

use std::time::Duration;

use bff_aggregate::{
    Aggregate, BreakerConfig, CircuitBreaker, ErrorKind, Retry, Source, SourceError,
};
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::time::sleep;

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_run_is_counted_timed_and_its_breaker_shown() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        bff_aggregate::describe_metrics();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let breaker = CircuitBreaker::new(BreakerConfig {
                failure_threshold: 1,
                open_for: Duration::from_secs(5),
            });
            let user =
                Source::required("user", 100 * MS, |_| async { Ok::<_, SourceError>("ada") });
            let slow = Source::optional("slow", 100 * MS, |call: bff_aggregate::Call| async move {
                let delay = if call.is_hedge() { MS } else { 50 * MS };
                sleep(delay).await;
                Ok::<_, SourceError>(())
            })
            .hedge(10 * MS);
            let down = Source::optional("down", 100 * MS, |_| async {
                Err::<(), _>(SourceError::msg(ErrorKind::Transient, "refused"))
            })
            .retry(Retry::new(2).backoff(MS))
            .breaker(breaker);
            let mut failures = 1;
            let flaky = Source::optional("flaky", 100 * MS, move |_| {
                let fail = failures > 0;
                failures -= 1;
                async move {
                    if fail {
                        Err(SourceError::msg(ErrorKind::Transient, "reset"))
                    } else {
                        Ok(())
                    }
                }
            })
            .retry(Retry::new(2).backoff(MS));
            Aggregate::new(100 * MS)
                .run((user, slow, down, flaky))
                .await
                .expect("required ok");
        });
    });

    let text = handle.render();
    for line in [
        r#"bff_aggregate_source_total{source="user",status="ok"} 1"#,
        r#"bff_aggregate_source_total{source="slow",status="ok"} 1"#,
        r#"bff_aggregate_source_total{source="down",status="error"} 1"#,
        r#"bff_aggregate_source_hedges_total{source="slow"} 1"#,
        r#"bff_aggregate_source_retries_total{source="flaky"} 1"#,
        r#"bff_aggregate_source_total{source="flaky",status="ok"} 1"#,
        r#"bff_aggregate_breaker_open{source="down"} 1"#,
        r#"bff_aggregate_source_duration_seconds_count{source="user",status="ok"} 1"#,
        "# HELP bff_aggregate_source_total",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    // The breaker opened on the first failure, so no retry was made.
    assert!(
        !text.contains(r#"bff_aggregate_source_retries_total{source="down"}"#),
        "{text}"
    );
}
