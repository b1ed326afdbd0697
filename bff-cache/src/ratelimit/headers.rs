//! What a decision tells the caller: the `RateLimit-Policy` and `RateLimit`
//! headers, and the 429.

use std::sync::Arc;
use std::time::Duration;

use bff_core::Problem;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::{Decision, Quota};

/// One policy's decision about one request.
pub(super) struct Applied {
    pub(super) name: Arc<str>,
    pub(super) quota: Quota,
    pub(super) decision: Decision,
}

/// Whole seconds, rounded up (headers carry integers).
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn headers(applied: &[Applied]) -> [(HeaderName, Option<HeaderValue>); 2] {
    let policy = applied
        .iter()
        .map(|a| {
            format!(
                "\"{}\";q={};w={}",
                a.name,
                a.quota.burst(),
                ceil_secs(a.quota.period())
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let state = applied
        .iter()
        .map(|a| {
            format!(
                "\"{}\";r={};t={}",
                a.name,
                a.decision.remaining,
                ceil_secs(a.decision.reset)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    [
        (
            HeaderName::from_static("ratelimit-policy"),
            HeaderValue::from_str(&policy).ok(),
        ),
        (
            HeaderName::from_static("ratelimit"),
            HeaderValue::from_str(&state).ok(),
        ),
    ]
}

/// Adds the rate-limit headers of `applied` to an inner service's answer.
pub(super) fn append(response_headers: &mut HeaderMap, applied: &[Applied]) {
    if applied.is_empty() {
        return;
    }
    // Appended, not set: an inner limiter's fields stay, and the lines
    // together form one list (RFC 9110 field combination).
    for (name, value) in headers(applied) {
        if let Some(value) = value {
            response_headers.append(name, value);
        }
    }
}

/// The 429 of a refusal: `Retry-After` in whole seconds (at least 1) and the
/// rate-limit headers of every policy checked, the refusing one last.
pub(super) fn refusal(applied: &[Applied], refused: &Decision, detail: String) -> Problem {
    let retry = ceil_secs(refused.retry_after).max(1);
    let mut problem = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Too many requests",
    )
    .with_detail(format!("{detail} Retry in {retry} s."))
    .with_header(http::header::RETRY_AFTER, HeaderValue::from(retry));
    for (name, value) in headers(applied) {
        if let Some(value) = value {
            problem = problem.with_header(name, value);
        }
    }
    problem
}

/// The 429 problem for one policy's refusal, with `Retry-After` and the
/// rate-limit headers, for limits a handler checks itself (where the key, a
/// login identifier say, is only known from the body).
pub fn rejection(policy: &str, quota: &Quota, decision: &Decision, detail: &str) -> Problem {
    let applied = [Applied {
        name: Arc::from(policy),
        quota: *quota,
        decision: *decision,
    }];
    refusal(&applied, decision, detail.to_owned())
}
