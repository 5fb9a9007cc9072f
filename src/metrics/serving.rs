//! The serving figures LLM engineers read: TTFT, ITL, TPOT, end-to-end latency, per-request
//! output rate, stalls, and goodput under [`Slo`]s: [`ServingCollector`] → [`ServingMetrics`].
//!
//! The definitions, and the published ones they follow, are stated in the
//! [`metrics`](crate::metrics#serving-figures) module docs and in `docs/serving-metrics.md`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::histogram::{LatencyHistogram, LatencySummary};
use super::serde_duration::{millis, opt_millis};
use crate::metrics::{Outcome, RequestResult};

/// Service-level objectives of one request: each set limit must hold for the request to count
/// toward goodput; `None` is not judged.
///
/// Defaults: TTFT ≤ 2 s and TPOT ≤ 200 ms (the limits MLPerf Inference sets for its
/// Llama-2-70B server scenario), end-to-end ≤ 2 s (the seed's latency bound), no limit on the
/// longest gap between deltas.
///
/// ```
/// use std::time::Duration;
/// use semantic_stress::metrics::Slo;
///
/// let slo = Slo::default().ttft(Some(Duration::from_millis(500))).e2e(None);
/// assert_eq!(slo.tpot, Some(Duration::from_millis(200)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slo {
    /// Time to first token, from the intended start.
    #[serde(rename = "ttft_ms", with = "opt_millis")]
    pub ttft: Option<Duration>,
    /// Time per output token after the first.
    #[serde(rename = "tpot_ms", with = "opt_millis")]
    pub tpot: Option<Duration>,
    /// Longest gap between two consecutive content deltas of the request.
    #[serde(rename = "max_itl_ms", with = "opt_millis")]
    pub max_itl: Option<Duration>,
    /// End-to-end latency, from the intended start.
    #[serde(rename = "e2e_ms", with = "opt_millis")]
    pub e2e: Option<Duration>,
}

impl Default for Slo {
    fn default() -> Self {
        Self {
            ttft: Some(Duration::from_secs(2)),
            tpot: Some(Duration::from_millis(200)),
            max_itl: None,
            e2e: Some(Duration::from_secs(2)),
        }
    }
}

impl Slo {
    /// No objective at all: goodput is not defined.
    pub const NONE: Self = Self {
        ttft: None,
        tpot: None,
        max_itl: None,
        e2e: None,
    };

    /// Sets the TTFT limit.
    #[must_use]
    pub fn ttft(mut self, limit: Option<Duration>) -> Self {
        self.ttft = limit;
        self
    }

    /// Sets the TPOT limit.
    #[must_use]
    pub fn tpot(mut self, limit: Option<Duration>) -> Self {
        self.tpot = limit;
        self
    }

    /// Sets the limit on the longest gap between deltas.
    #[must_use]
    pub fn max_itl(mut self, limit: Option<Duration>) -> Self {
        self.max_itl = limit;
        self
    }

    /// Sets the end-to-end limit.
    #[must_use]
    pub fn e2e(mut self, limit: Option<Duration>) -> Self {
        self.e2e = limit;
        self
    }

    /// Whether any limit is set.
    pub fn is_set(&self) -> bool {
        self.limits().iter().any(|(_, l)| l.is_some())
    }

    /// The limits by name, in report order.
    fn limits(&self) -> [(&'static str, Option<Duration>); 4] {
        [
            ("ttft", self.ttft),
            ("tpot", self.tpot),
            ("max_itl", self.max_itl),
            ("e2e", self.e2e),
        ]
    }

    /// The request's figure for each objective, in the order of [`limits`](Self::limits):
    /// `None` when the record does not measure it (a reply that did not stream has no TTFT,
    /// TPOT or gaps).
    fn figures(r: &RequestResult) -> [Option<Duration>; 4] {
        let streamed = r.corrected_ttft().is_some();
        [
            r.corrected_ttft(),
            // As vLLM's serve.py: a streamed reply of fewer than 2 tokens has TPOT 0 for goodput.
            r.tpot().or(streamed.then_some(Duration::ZERO)),
            // A stream of one delta has no gap: nothing exceeded the limit.
            r.tokens.max_gap.or(streamed.then_some(Duration::ZERO)),
            Some(r.corrected_latency()),
        ]
    }
}

/// How many requests met one objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloShare {
    /// `ttft`, `tpot`, `max_itl` or `e2e`.
    pub slo: String,
    /// The limit.
    #[serde(rename = "limit_ms", with = "millis")]
    pub limit: Duration,
    /// Successes whose figure is at most the limit.
    pub met: u64,
    /// Successes whose figure was measured.
    pub measured: u64,
    /// `met / total requests` (a failed request meets nothing); `None` with no request.
    pub share: Option<f64>,
}

/// Goodput: requests per second that met every objective (DistServe's and vLLM's definition),
/// beside the share that met each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goodput {
    /// The objectives judged.
    pub slo: Slo,
    /// Successes that met every set objective.
    pub met_all: u64,
    /// Successes lacking a figure some set objective needs (a reply that did not stream,
    /// under a TTFT objective): they cannot be judged.
    pub unjudged: u64,
    /// `met_all / duration`; `None` when no objective is set, when some success could not be
    /// judged, or for a zero duration.
    pub goodput_rps: Option<f64>,
    /// `met_all / total requests`; `None` under the same conditions or with no request.
    pub met_share: Option<f64>,
    /// One entry per set objective.
    pub per_slo: Vec<SloShare>,
}

/// Per-request output rate: `1 / TPOT`, tokens per second after the first token (AIPerf's
/// "output token throughput per user"). Low percentiles are the slow requests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateSummary {
    /// Requests with a TPOT.
    pub count: u64,
    /// Mean of the per-request rates.
    pub mean: f64,
    /// Median rate (`1 / TPOT p50`).
    pub p50: f64,
    /// Rate that 90% of requests beat (`1 / TPOT p90`).
    pub p10: f64,
    /// Rate that 99% of requests beat (`1 / TPOT p99`).
    pub p1: f64,
    /// Slowest request (`1 / TPOT max`).
    pub min: f64,
    /// Fastest request (`1 / TPOT min`).
    pub max: f64,
}

/// The serving figures of a run. A figure that was not measured is `None` (`null` in JSON),
/// never another figure under its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingMetrics {
    /// Successes that streamed at least one content delta (the population of TTFT).
    pub streamed: u64,
    /// Time to first token of streamed successes, from the intended start.
    pub ttft: Option<LatencySummary>,
    /// Gaps between consecutive content deltas, over every streamed success.
    pub itl: Option<LatencySummary>,
    /// Time per output token after the first, one value per streamed success of 2+ tokens.
    pub tpot: Option<LatencySummary>,
    /// End-to-end latency of successes, from the intended start.
    pub e2e_latency: Option<LatencySummary>,
    /// Per-request output rate (`1 / TPOT`).
    pub output_tokens_per_s_per_request: Option<RateSummary>,
    /// The gap between deltas above which a gap counts as a stall.
    #[serde(rename = "stall_gap_ms", with = "millis")]
    pub stall_gap: Duration,
    /// Gaps longer than `stall_gap`, over every streamed success.
    pub stalls: u64,
    /// Streamed successes with at least one stall.
    pub requests_with_stalls: u64,
    /// Goodput under the run's objectives.
    pub goodput: Goodput,
}

/// Default stall threshold: a gap of more than a second between two deltas.
pub const DEFAULT_STALL_GAP: Duration = Duration::from_secs(1);

/// Fixed-size, mergeable aggregator of the serving figures (part of
/// [`MetricsCollector`](super::MetricsCollector)).
#[derive(Debug, Clone)]
pub(crate) struct ServingCollector {
    slo: Slo,
    stall_gap: Duration,
    streamed: u64,
    ttft: LatencyHistogram,
    itl: LatencyHistogram,
    tpot: LatencyHistogram,
    e2e: LatencyHistogram,
    /// Σ per-request rates in millionths of a token per second: an integer, so that merging in
    /// any order gives the same sum.
    rate_sum_micro: u128,
    stalls: u64,
    requests_with_stalls: u64,
    met_all: u64,
    unjudged: u64,
    met: [u64; 4],
    measured: [u64; 4],
}

impl Default for ServingCollector {
    fn default() -> Self {
        Self::new(Slo::default(), DEFAULT_STALL_GAP)
    }
}

impl ServingCollector {
    pub(crate) fn new(slo: Slo, stall_gap: Duration) -> Self {
        Self {
            slo,
            stall_gap,
            streamed: 0,
            ttft: LatencyHistogram::new(),
            itl: LatencyHistogram::new(),
            tpot: LatencyHistogram::new(),
            e2e: LatencyHistogram::new(),
            rate_sum_micro: 0,
            stalls: 0,
            requests_with_stalls: 0,
            met_all: 0,
            unjudged: 0,
            met: [0; 4],
            measured: [0; 4],
        }
    }

    /// Counts one record (only successes carry serving figures).
    ///
    /// Time: O(counters of the record's gap histogram), O(1) for a reply that did not stream.
    pub(crate) fn record(&mut self, r: &RequestResult) {
        if r.outcome != Outcome::Success {
            return;
        }
        self.e2e.record(r.corrected_latency());
        if let Some(ttft) = r.corrected_ttft() {
            self.streamed += 1;
            self.ttft.record(ttft);
            if let Some(gaps) = r.tokens.gaps() {
                self.itl.record_compact(gaps);
            }
            self.stalls += u64::from(r.tokens.stalls);
            self.requests_with_stalls += u64::from(r.tokens.stalls > 0);
        }
        if let Some(tpot) = r.tpot() {
            self.tpot.record(tpot);
            // A rate is at most 10^6 tokens/s (TPOT ≥ 1 µs): 10^12 millionths, exact in f64.
            self.rate_sum_micro += (rate(tpot) * 1e6).round() as u128;
        }
        let figures = Slo::figures(r);
        let mut all = true;
        let mut judged = true;
        for (i, (_, limit)) in self.slo.limits().iter().enumerate() {
            let Some(limit) = limit else { continue };
            match figures[i] {
                Some(v) => {
                    self.measured[i] += 1;
                    let ok = v <= *limit;
                    self.met[i] += u64::from(ok);
                    all &= ok;
                }
                None => judged = false,
            }
        }
        if !judged {
            self.unjudged += 1;
        } else if all {
            self.met_all += 1;
        }
    }

    /// Adds everything `other` has seen (both must judge the same objectives).
    pub(crate) fn merge(&mut self, other: &Self) {
        self.streamed += other.streamed;
        self.ttft.merge(&other.ttft);
        self.itl.merge(&other.itl);
        self.tpot.merge(&other.tpot);
        self.e2e.merge(&other.e2e);
        self.rate_sum_micro += other.rate_sum_micro;
        self.stalls += other.stalls;
        self.requests_with_stalls += other.requests_with_stalls;
        self.met_all += other.met_all;
        self.unjudged += other.unjudged;
        for i in 0..4 {
            self.met[i] += other.met[i];
            self.measured[i] += other.measured[i];
        }
    }

    /// The figures, with `total` requests over `duration`.
    pub(crate) fn metrics(&self, total: u64, duration: Duration) -> ServingMetrics {
        let some = |h: &LatencyHistogram| (!h.is_empty()).then(|| h.summary());
        let tpot = some(&self.tpot);
        let rates = tpot.map(|t| RateSummary {
            count: t.count,
            // Counts stay far below 2^53, where u64 → f64 is exact; the sum's rounding is far
            // below the rates' own resolution.
            mean: self.rate_sum_micro as f64 / 1e6 / t.count as f64,
            p50: rate(t.p50),
            p10: rate(t.p90),
            p1: rate(t.p99),
            min: rate(t.max),
            max: rate(t.min),
        });
        let secs = duration.as_secs_f64();
        let defined = self.slo.is_set() && self.unjudged == 0;
        let share = |n: u64| {
            // Counts stay far below 2^53, where u64 → f64 is exact.
            (total > 0).then(|| n as f64 / total as f64)
        };
        let per_slo = self
            .slo
            .limits()
            .iter()
            .enumerate()
            .filter_map(|(i, (name, limit))| {
                limit.map(|limit| SloShare {
                    slo: (*name).to_owned(),
                    limit,
                    met: self.met[i],
                    measured: self.measured[i],
                    share: share(self.met[i]),
                })
            })
            .collect();
        ServingMetrics {
            streamed: self.streamed,
            ttft: some(&self.ttft),
            itl: some(&self.itl),
            tpot,
            e2e_latency: some(&self.e2e),
            output_tokens_per_s_per_request: rates,
            stall_gap: self.stall_gap,
            stalls: self.stalls,
            requests_with_stalls: self.requests_with_stalls,
            goodput: Goodput {
                slo: self.slo,
                met_all: self.met_all,
                unjudged: self.unjudged,
                goodput_rps: (defined && secs > 0.0).then(|| self.met_all as f64 / secs),
                met_share: if defined { share(self.met_all) } else { None },
                per_slo,
            },
        }
    }
}

/// Tokens per second of a time per token; a TPOT under 1 µs counts as 1 µs (the histogram's
/// resolution), so the rate stays finite.
fn rate(tpot: Duration) -> f64 {
    1.0 / tpot.as_secs_f64().max(1e-6)
}

#[cfg(test)]
#[path = "serving_tests.rs"]
mod tests;
