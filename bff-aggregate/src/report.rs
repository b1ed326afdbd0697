//! What the response tells the frontend about each source.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// How a source ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The source answered, and its part is in the result.
    Ok,
    /// The source's deadline passed before it answered.
    Timeout,
    /// The source failed (after any retries).
    Error,
    /// The source was not asked, because its circuit breaker is open, or it
    /// was cancelled because a required sibling failed first.
    Skipped,
}

impl Status {
    /// The status as it appears in JSON and in metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Timeout => "timeout",
            Self::Error => "error",
            Self::Skipped => "skipped",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One source's line in [`Meta`]: `{"status": "ok", "duration_ms": 12}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct SourceReport {
    /// How the source ended.
    pub status: Status,
    /// Wall time the source took, retries and backoff included, in
    /// milliseconds.
    pub duration_ms: u64,
    /// Calls made (the first and each retry; a hedge is part of its attempt).
    /// Zero when the breaker skipped the source. For logs and tests: the
    /// frontend contract has only `status` and `duration_ms`, so this is not
    /// serialised.
    #[serde(skip)]
    #[cfg_attr(feature = "schemars", schemars(skip))]
    pub attempts: u32,
}

/// How complete an assembled payload is, for the frontend to render partial
/// data honestly.
///
/// Serialised, it is exactly
/// `{"complete": bool, "sources": {"<name>": {"status": "ok" | "timeout" | "error" | "skipped", "duration_ms": n}}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct Meta {
    /// True only when every source is `ok`.
    pub complete: bool,
    /// Each source's report, by name.
    pub sources: BTreeMap<String, SourceReport>,
}

impl Meta {
    /// Meta for these reports, with `complete` computed from them.
    pub fn from_reports(sources: BTreeMap<String, SourceReport>) -> Self {
        let complete = sources.values().all(|r| r.status == Status::Ok);
        Self { complete, sources }
    }
}

#[cfg(all(test, feature = "schemars"))]
mod tests {
    use super::*;

    #[test]
    fn the_schema_has_only_the_contract_fields() {
        let schema = serde_json::to_value(schemars::schema_for!(Meta)).expect("json");
        let report = &schema["$defs"]["SourceReport"]["properties"];
        let mut fields: Vec<&str> = report
            .as_object()
            .expect("properties")
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(fields, ["duration_ms", "status"]);
    }
}
