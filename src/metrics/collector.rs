//! Streaming aggregation of records into run figures: [`MetricsCollector`] → [`LoadMetrics`].
//!
//! The definitions are stated in the [`metrics`](crate::metrics#run-figures) module docs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cache::CacheStats;
use super::histogram::{LatencyHistogram, LatencySummary};
use super::serde_duration::secs;
use super::serving::{ServingCollector, ServingMetrics, Slo};
use super::truth::{TimingErrors, TruthCollector};
use crate::metrics::{Outcome, RequestResult};

/// Number of records in each [`Outcome`] class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeCounts {
    /// [`Outcome::Success`].
    pub success: u64,
    /// [`Outcome::Rejected`].
    pub rejected: u64,
    /// [`Outcome::ClientError`].
    pub client_error: u64,
    /// [`Outcome::ServerError`].
    pub server_error: u64,
    /// [`Outcome::Timeout`].
    pub timeout: u64,
    /// [`Outcome::Connect`].
    pub connect: u64,
    /// [`Outcome::Protocol`].
    pub protocol: u64,
}

impl OutcomeCounts {
    /// The count of one class.
    pub fn get(&self, outcome: Outcome) -> u64 {
        match outcome {
            Outcome::Success => self.success,
            Outcome::Rejected => self.rejected,
            Outcome::ClientError => self.client_error,
            Outcome::ServerError => self.server_error,
            Outcome::Timeout => self.timeout,
            Outcome::Connect => self.connect,
            Outcome::Protocol => self.protocol,
        }
    }

    /// The sum over every class.
    pub fn total(&self) -> u64 {
        Outcome::ALL.iter().map(|&o| self.get(o)).sum()
    }

    /// The sum over the classes that count as errors ([`Outcome::is_error`]).
    pub fn errors(&self) -> u64 {
        Outcome::ALL
            .iter()
            .filter(|o| o.is_error())
            .map(|&o| self.get(o))
            .sum()
    }

    /// Adds `n` to one class.
    fn add(&mut self, outcome: Outcome, n: u64) {
        let slot = match outcome {
            Outcome::Success => &mut self.success,
            Outcome::Rejected => &mut self.rejected,
            Outcome::ClientError => &mut self.client_error,
            Outcome::ServerError => &mut self.server_error,
            Outcome::Timeout => &mut self.timeout,
            Outcome::Connect => &mut self.connect,
            Outcome::Protocol => &mut self.protocol,
        };
        *slot += n;
    }
}

/// The figures of a run (or part of one). See the [definitions](crate::metrics#run-figures) for the definitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadMetrics {
    /// Records seen: one per request sent.
    pub total: u64,
    /// Records per outcome class.
    pub counts: OutcomeCounts,
    /// Records of class [`Outcome::Success`].
    pub successful: u64,
    /// Records whose class counts as an error (everything but success and rejection).
    pub errors: u64,
    /// Graceful rejections.
    pub rejected: u64,
    /// `errors / total` (rejections excluded); 0 for an empty run.
    pub error_rate: f64,
    /// `rejected / total`; 0 for an empty run.
    pub rejection_rate: f64,
    /// Records per HTTP status; 0 = no HTTP response.
    pub status_codes: BTreeMap<u16, u64>,
    /// Latency of successes, from the actual start.
    pub success_latency: LatencySummary,
    /// Latency of every other class, from the actual start.
    pub failure_latency: LatencySummary,
    /// Latency of every record from its intended start (coordinated omission corrected).
    pub corrected_latency: LatencySummary,
    /// Latency of every record from its actual start, beside `corrected_latency`.
    pub uncorrected_latency: LatencySummary,
    /// TTFT, ITL, TPOT, end-to-end latency, per-request output rate, stalls and goodput.
    pub serving: ServingMetrics,
    /// Intended vs actual start of every record.
    pub scheduler_lag: LatencySummary,
    /// Last end − first actual start.
    #[serde(rename = "duration_s", with = "secs")]
    pub duration: Duration,
    /// `total / duration`.
    pub throughput_rps: f64,
    /// Σ `usage.output_tokens`.
    pub output_tokens: u64,
    /// `output_tokens / duration`.
    pub output_tokens_per_s: f64,
    /// Successful requests per second: `successful / duration` (beside `throughput_rps`, which
    /// counts every answered or failed request, so that fast rejections cannot pass for
    /// service). Not goodput: goodput counts the requests that met every objective
    /// ([`ServingMetrics::goodput`]).
    pub success_rps: f64,
    /// Cache hit rates.
    pub cache: CacheStats,
    /// 429, 503 and 529 responses without `Retry-After`.
    pub retry_after_missing: u64,
    /// The harness's own TTFT and ITL error against the server's write stamps, in timing
    /// self-test mode ([`StressConfig::timing_truth`](crate::StressConfig::timing_truth));
    /// absent when no record carried a stamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing_errors: Option<TimingErrors>,
}

/// Streaming, fixed-size, mergeable aggregator of [`RequestResult`]s.
///
/// # Example
///
/// ```
/// use std::time::{Duration, Instant};
/// use semantic_stress::metrics::{MetricsCollector, Outcome, RequestResult};
///
/// let start = Instant::now();
/// let mut ok = RequestResult::pending(start, start);
/// ok.finished_at = start + Duration::from_millis(20);
/// ok.outcome = Outcome::Success;
/// ok.status = 200;
/// let mut refused = RequestResult::pending(start, start);
/// refused.finished_at = start + Duration::from_millis(1);
///
/// let metrics = MetricsCollector::analyze(&[ok, refused]);
/// assert_eq!(metrics.total, 2);
/// assert_eq!(metrics.error_rate, 0.5);
/// // 3 significant digits: within 0.1% above the exact value.
/// let p50 = metrics.success_latency.p50.as_secs_f64();
/// assert!((0.020..0.020_02).contains(&p50));
/// ```
#[derive(Debug, Clone, Default)]
pub struct MetricsCollector {
    counts: OutcomeCounts,
    status_codes: BTreeMap<u16, u64>,
    success: LatencyHistogram,
    failure: LatencyHistogram,
    corrected: LatencyHistogram,
    uncorrected: LatencyHistogram,
    serving: ServingCollector,
    scheduler_lag: LatencyHistogram,
    first_start: Option<Instant>,
    last_end: Option<Instant>,
    output_tokens: u64,
    cache: CacheStats,
    retry_after_missing: u64,
    truth: TruthCollector,
}

impl MetricsCollector {
    /// An empty collector judging goodput under the default [`Slo`] with the default stall
    /// threshold ([`DEFAULT_STALL_GAP`](super::DEFAULT_STALL_GAP)).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty collector judging goodput under `slo`, reporting `stall_gap` as the stall
    /// threshold the records were taken with.
    pub fn with_slo(slo: Slo, stall_gap: Duration) -> Self {
        Self {
            serving: ServingCollector::new(slo, stall_gap),
            ..Self::default()
        }
    }

    /// Counts one record.
    ///
    /// Time: O(1) (amortized; O(log s) in the number `s` of distinct statuses).
    pub fn record(&mut self, r: &RequestResult) {
        self.counts.add(r.outcome, 1);
        *self.status_codes.entry(r.status).or_default() += 1;
        let latency = r.latency();
        if r.outcome == Outcome::Success {
            self.success.record(latency);
        } else {
            self.failure.record(latency);
        }
        self.corrected.record(r.corrected_latency());
        self.uncorrected.record(latency);
        self.scheduler_lag.record(r.scheduler_lag());
        self.serving.record(r);
        self.first_start = min_instant(self.first_start, Some(r.started_at));
        self.last_end = max_instant(self.last_end, Some(r.finished_at));
        // Tokens and cache figures come from whole replies only: a cut stream's `message_start`
        // usage describes a reply that never arrived.
        if r.outcome == Outcome::Success {
            self.output_tokens = self
                .output_tokens
                .saturating_add(r.usage.map_or(0, |u| u.output_tokens));
            self.cache.record(r);
        }
        if r.has_rejection_status() && r.retry_after.is_none() {
            self.retry_after_missing += 1;
        }
        self.truth.record(r);
    }

    /// Adds everything `other` has seen to `self`: the result is the collector of the
    /// concatenation of both record streams.
    ///
    /// Time: O(number of histogram counters + distinct statuses).
    pub fn merge(&mut self, other: &Self) {
        for outcome in Outcome::ALL {
            self.counts.add(outcome, other.counts.get(outcome));
        }
        for (&status, &n) in &other.status_codes {
            *self.status_codes.entry(status).or_default() += n;
        }
        self.success.merge(&other.success);
        self.failure.merge(&other.failure);
        self.corrected.merge(&other.corrected);
        self.uncorrected.merge(&other.uncorrected);
        self.serving.merge(&other.serving);
        self.scheduler_lag.merge(&other.scheduler_lag);
        self.first_start = min_instant(self.first_start, other.first_start);
        self.last_end = max_instant(self.last_end, other.last_end);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cache.merge(&other.cache);
        self.retry_after_missing += other.retry_after_missing;
        self.truth.merge(&other.truth);
    }

    /// The figures so far.
    ///
    /// Time: O(number of histogram counters).
    pub fn metrics(&self) -> LoadMetrics {
        let total = self.counts.total();
        let errors = self.counts.errors();
        let duration = match (self.first_start, self.last_end) {
            (Some(start), Some(end)) => end.saturating_duration_since(start),
            _ => Duration::ZERO,
        };
        LoadMetrics {
            total,
            counts: self.counts,
            successful: self.counts.success,
            errors,
            rejected: self.counts.rejected,
            error_rate: fraction(errors, total),
            rejection_rate: fraction(self.counts.rejected, total),
            status_codes: self.status_codes.clone(),
            success_latency: self.success.summary(),
            failure_latency: self.failure.summary(),
            corrected_latency: self.corrected.summary(),
            uncorrected_latency: self.uncorrected.summary(),
            serving: self.serving.metrics(total, duration),
            scheduler_lag: self.scheduler_lag.summary(),
            duration,
            throughput_rps: per_second(total, duration),
            success_rps: per_second(self.counts.success, duration),
            output_tokens: self.output_tokens,
            output_tokens_per_s: per_second(self.output_tokens, duration),
            cache: self.cache,
            retry_after_missing: self.retry_after_missing,
            timing_errors: self.truth.errors(),
        }
    }

    /// The figures of a slice of records (goodput under the default [`Slo`]).
    ///
    /// Time: O(n).
    pub fn analyze(results: &[RequestResult]) -> LoadMetrics {
        Self::collect(Self::new(), results).metrics()
    }

    /// The figures of a slice of records, goodput judged under `slo` (see
    /// [`with_slo`](Self::with_slo)).
    ///
    /// Time: O(n).
    pub fn analyze_with(results: &[RequestResult], slo: Slo, stall_gap: Duration) -> LoadMetrics {
        Self::collect(Self::with_slo(slo, stall_gap), results).metrics()
    }

    /// The latency summary of the successes in a slice of records.
    ///
    /// Time: O(n).
    pub fn analyze_latency(results: &[RequestResult]) -> LatencySummary {
        let mut hist = LatencyHistogram::new();
        results
            .iter()
            .filter(|r| r.outcome == Outcome::Success)
            .for_each(|r| hist.record(r.latency()));
        hist.summary()
    }

    /// `collector` after recording every record of the slice.
    fn collect(mut collector: Self, results: &[RequestResult]) -> Self {
        results.iter().for_each(|r| collector.record(r));
        collector
    }
}

/// `num / den`, 0 when `den` is 0.
fn fraction(num: u64, den: u64) -> f64 {
    // Counts stay far below 2^53, where u64 → f64 is exact.
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// `n / duration` in units per second, 0 for a zero duration.
fn per_second(n: u64, duration: Duration) -> f64 {
    let secs = duration.as_secs_f64();
    // Counts stay far below 2^53, where u64 → f64 is exact.
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// The earlier of two optional instants.
fn min_instant(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The later of two optional instants.
fn max_instant(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
#[path = "collector_tests.rs"]
mod tests;
