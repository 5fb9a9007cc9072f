//! Verdicts: each check takes measured figures and returns a [`Verdict`] with its threshold,
//! the measured value and a message.
//!
//! The stress suites and the fault-detection tests run the same checks, so every check is
//! shown to fail on the fault it exists to catch. Thresholds default to the seed's values.

mod load;
mod server;
mod trends;

pub use load::{
    all_answered, cache_hit_rate, completed, error_rate, latency_p95, load_applied,
    no_early_rejections, no_server_errors, only_graceful_failures, pool_reached, rejections_fast,
    rejections_seen, rejections_well_formed, served_some,
};
pub use server::{
    IsolationEvidence, accounted, health_responsive, isolation, queue_drained, recovery,
};
pub use trends::{memory_growth, no_degradation};

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a verdict judges: every check the suites run, by name.
///
/// Written to JSON and shown as its snake_case name (`error_rate`, `pool_recovery`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Check {
    /// Share of requests that failed, graceful rejections not counted.
    ErrorRate,
    /// No 5xx answer.
    NoServerErrors,
    /// Every request got an answer: no timeout, connection failure or broken reply.
    AllAnswered,
    /// Every non-2xx answer was a graceful rejection.
    OnlyGracefulFailures,
    /// At least some requests were served.
    ServedSome,
    /// The load brought rejections.
    RejectionsSeen,
    /// Every rejection carried `Retry-After` and the error envelope.
    RejectionsWellFormed,
    /// Rejections came at once, not after the work ran.
    RejectionsFast,
    /// Success latency p95 under a limit.
    LatencyP95,
    /// Follow-up turns reused the agent's cache.
    CacheHitRate,
    /// The expected number of requests completed.
    Completed,
    /// The load pushed the pool past the utilization asked for.
    PoolReached,
    /// No rejection while the pool was far from full.
    NoEarlyRejections,
    /// An agent repeating its own prefix hits its cache.
    IsolationSameAgentHits,
    /// Another agent sending the identical prefix does not read the first agent's cache.
    IsolationCrossAgentMisses,
    /// No reply carries another agent's canary.
    IsolationNoForeignCanary,
    /// After saturation, new agents are served at baseline latency in time.
    PoolRecovery,
    /// Health probes answered quickly during and after the load.
    HealthResponsive,
    /// Every request sent was recorded exactly once.
    Accounted,
    /// Server memory growth after warm-up under a limit.
    MemoryGrowth,
    /// Late latency windows no worse than early ones, by a stated test.
    NoDegradation,
    /// The server process still runs after the load.
    ServerAlive,
    /// The load the test meant to apply was applied (else its other verdicts judge nothing).
    LoadApplied,
    /// No regression against a saved baseline report.
    BaselineRegression,
    /// The server's own queue (`/metrics`) was empty once the load ended.
    ServerQueueDrained,
}

impl Check {
    /// Every check, in a stable order.
    pub const ALL: &[Self] = &[
        Self::ErrorRate,
        Self::NoServerErrors,
        Self::AllAnswered,
        Self::OnlyGracefulFailures,
        Self::ServedSome,
        Self::RejectionsSeen,
        Self::RejectionsWellFormed,
        Self::RejectionsFast,
        Self::LatencyP95,
        Self::CacheHitRate,
        Self::Completed,
        Self::PoolReached,
        Self::NoEarlyRejections,
        Self::IsolationSameAgentHits,
        Self::IsolationCrossAgentMisses,
        Self::IsolationNoForeignCanary,
        Self::PoolRecovery,
        Self::HealthResponsive,
        Self::Accounted,
        Self::MemoryGrowth,
        Self::NoDegradation,
        Self::ServerAlive,
        Self::BaselineRegression,
        Self::ServerQueueDrained,
    ];

    /// The check's snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ErrorRate => "error_rate",
            Self::NoServerErrors => "no_server_errors",
            Self::AllAnswered => "all_answered",
            Self::OnlyGracefulFailures => "only_graceful_failures",
            Self::ServedSome => "served_some",
            Self::RejectionsSeen => "rejections_seen",
            Self::RejectionsWellFormed => "rejections_well_formed",
            Self::RejectionsFast => "rejections_fast",
            Self::LatencyP95 => "latency_p95",
            Self::CacheHitRate => "cache_hit_rate",
            Self::Completed => "completed",
            Self::PoolReached => "pool_reached",
            Self::NoEarlyRejections => "no_early_rejections",
            Self::IsolationSameAgentHits => "isolation_same_agent_hits",
            Self::IsolationCrossAgentMisses => "isolation_cross_agent_misses",
            Self::IsolationNoForeignCanary => "isolation_no_foreign_canary",
            Self::PoolRecovery => "pool_recovery",
            Self::HealthResponsive => "health_responsive",
            Self::Accounted => "accounted",
            Self::MemoryGrowth => "memory_growth",
            Self::NoDegradation => "no_degradation",
            Self::ServerAlive => "server_alive",
            Self::LoadApplied => "load_applied",
            Self::BaselineRegression => "baseline_regression",
            Self::ServerQueueDrained => "server_queue_drained",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a check concluded.
///
/// Only [`Pass`](Self::Pass) is a pass. [`Inconclusive`](Self::Inconclusive) means the check
/// could not judge (no pool figures, exhaustion never reached, load not applied, nothing
/// eligible): it never shows as a pass. [`NotApplicable`](Self::NotApplicable) means the
/// server's profile declares the capability absent, so the question does not arise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The measured value meets the threshold.
    Pass,
    /// The measured value misses the threshold.
    Fail,
    /// The check had nothing to judge; the message says why.
    Inconclusive,
    /// The server's profile declares the capability absent.
    NotApplicable,
}

impl Status {
    /// `PASS`, `FAIL`, `INCONCLUSIVE` or `N/A`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::Inconclusive => "INCONCLUSIVE",
            Self::NotApplicable => "N/A",
        }
    }

    /// The outcome of several statuses: any failure fails; else any inconclusive is
    /// inconclusive; else any pass passes; else (only not-applicable) not applicable. No status
    /// at all is inconclusive: nothing was judged.
    pub fn combine(statuses: impl IntoIterator<Item = Self>) -> Self {
        let (mut fail, mut inconclusive, mut pass, mut na) = (false, false, false, false);
        for s in statuses {
            match s {
                Self::Fail => fail = true,
                Self::Inconclusive => inconclusive = true,
                Self::Pass => pass = true,
                Self::NotApplicable => na = true,
            }
        }
        if fail {
            Self::Fail
        } else if inconclusive {
            Self::Inconclusive
        } else if pass {
            Self::Pass
        } else if na {
            Self::NotApplicable
        } else {
            Self::Inconclusive
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// What was judged.
    pub check: Check,
    /// What the check was applied to, when a run judges it more than once (an agent profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// What the check concluded.
    pub status: Status,
    /// The threshold, as stated (`< 5%`).
    pub threshold: String,
    /// The measured value, with its unit.
    pub measured: String,
    /// What the figure means, and on failure what went wrong.
    pub message: String,
}

impl Verdict {
    /// A pass or a fail: `passed` says which.
    pub fn new(
        check: Check,
        passed: bool,
        threshold: impl Into<String>,
        measured: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            check,
            subject: None,
            status: if passed { Status::Pass } else { Status::Fail },
            threshold: threshold.into(),
            measured: measured.into(),
            message: message.into(),
        }
    }
}

impl Verdict {
    /// A check that could not judge: `why` says what was missing.
    pub fn inconclusive(
        check: Check,
        threshold: impl Into<String>,
        measured: impl Into<String>,
        why: impl Into<String>,
    ) -> Self {
        Self {
            status: Status::Inconclusive,
            ..Self::new(check, false, threshold, measured, why)
        }
    }

    /// A check that does not apply to this server: `why` names what its profile declares.
    pub fn not_applicable(check: Check, why: impl Into<String>) -> Self {
        Self {
            status: Status::NotApplicable,
            ..Self::new(check, false, "", "", why)
        }
    }

    /// Whether the check passed.
    pub fn passed(&self) -> bool {
        self.status == Status::Pass
    }

    /// The same verdict about `subject`.
    #[must_use]
    pub fn about(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// The check's name, with its subject when there is one (`completed[short_frequent]`).
    pub fn label(&self) -> String {
        match &self.subject {
            Some(s) => format!("{}[{s}]", self.check),
            None => self.check.to_string(),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {}: measured {}, threshold {} — {}",
            self.status,
            self.label(),
            self.measured,
            self.threshold,
            self.message
        )
    }
}

/// Whether every verdict passed.
pub fn all_passed(verdicts: &[Verdict]) -> bool {
    verdicts.iter().all(Verdict::passed)
}

/// The verdicts that failed or could not judge, one per line, for an assertion message.
pub fn failures(verdicts: &[Verdict]) -> String {
    verdicts
        .iter()
        .filter(|v| matches!(v.status, Status::Fail | Status::Inconclusive))
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
