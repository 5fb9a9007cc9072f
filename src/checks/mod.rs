//! Verdicts: each check takes measured figures and returns a [`Verdict`] with its threshold,
//! the measured value and a message.
//!
//! The stress suites and the fault-detection tests run the same checks, so every check is
//! shown to fail on the fault it exists to catch. Thresholds default to the seed's values.

mod load;
mod server;
mod trends;

pub use load::{
    all_answered, cache_hit_rate, completed, error_rate, latency_p95, no_early_rejections,
    no_server_errors, only_graceful_failures, pool_reached, rejections_fast, rejections_seen,
    rejections_well_formed, served_some,
};
pub use server::{IsolationEvidence, accounted, health_responsive, isolation, recovery};
pub use trends::{memory_growth, no_degradation};

use std::fmt;

use serde::Serialize;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Verdict {
    /// The check's name (`error_rate`, `no_server_errors`, …).
    pub check: String,
    /// Whether the measured value meets the threshold.
    pub passed: bool,
    /// The threshold, as stated (`< 5%`).
    pub threshold: String,
    /// The measured value, with its unit.
    pub measured: String,
    /// What the figure means, and on failure what went wrong.
    pub message: String,
}

impl Verdict {
    /// A verdict; `passed` decides the wording's tone only through `message`.
    pub fn new(
        check: impl Into<String>,
        passed: bool,
        threshold: impl Into<String>,
        measured: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            check: check.into(),
            passed,
            threshold: threshold.into(),
            measured: measured.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {}: measured {}, threshold {} — {}",
            if self.passed { "PASS" } else { "FAIL" },
            self.check,
            self.measured,
            self.threshold,
            self.message
        )
    }
}

/// Whether every verdict passed.
pub fn all_passed(verdicts: &[Verdict]) -> bool {
    verdicts.iter().all(|v| v.passed)
}

/// The failed verdicts, one per line, for an assertion message.
pub fn failures(verdicts: &[Verdict]) -> String {
    verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

pub(crate) fn ms(d: std::time::Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
