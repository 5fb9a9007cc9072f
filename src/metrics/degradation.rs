//! Whether latency got worse over a run: [`WindowedSeries::degradation`] → [`Degradation`].
//!
//! The definitions are stated in the [`metrics`](crate::metrics#degradation) module docs.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use statrs::stats_tests::Alternative;
use statrs::stats_tests::mannwhitneyu::{MannWhitneyUMethod, mannwhitneyu};

use super::histogram::LatencyHistogram;
use super::reservoir::{SplitMix64, choose_in_place};
use super::serde_duration::{millis, secs};
use super::trend::{Trend, fit_trend};
use super::windows::{WindowAcc, WindowedSeries};

/// Values per side given to the rank test (its tie handling is quadratic in the total).
const MAX_RANK_SAMPLES: usize = 2048;

/// The Mann–Whitney U test of late against early latencies. See the [definitions](crate::metrics#degradation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RankTest {
    /// Early values tested.
    pub n_early: usize,
    /// Late values tested.
    pub n_late: usize,
    /// U statistic of the late sample.
    pub u_late: f64,
    /// `u_late / (n_early · n_late)`: P(late > early) + ½ P(tie).
    pub prob_late_slower: f64,
    /// One-sided p-value, H₁: late latencies are greater.
    pub p_greater: f64,
    /// Two-sided p-value.
    pub p_two_sided: f64,
}

/// Early vs late latency of a windowed run. See the [definitions](crate::metrics#degradation) for the method.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Degradation {
    /// Windows per side (`k`).
    pub windows_per_side: usize,
    /// Window width.
    #[serde(rename = "window_width_s", with = "secs")]
    pub window_width: Duration,
    /// Offset of the early side's start (the start of window 1).
    #[serde(rename = "early_start_s", with = "secs")]
    pub early_start: Duration,
    /// Offset of the late side's start (the start of window `n − k`).
    #[serde(rename = "late_start_s", with = "secs")]
    pub late_start: Duration,
    /// Successes on the early side.
    pub early_count: u64,
    /// Successes on the late side.
    pub late_count: u64,
    /// Early median.
    #[serde(rename = "early_p50_ms", with = "millis")]
    pub early_p50: Duration,
    /// Late median.
    #[serde(rename = "late_p50_ms", with = "millis")]
    pub late_p50: Duration,
    /// Early 95th percentile.
    #[serde(rename = "early_p95_ms", with = "millis")]
    pub early_p95: Duration,
    /// Late 95th percentile.
    #[serde(rename = "late_p95_ms", with = "millis")]
    pub late_p95: Duration,
    /// `late_p50 / early_p50`; `None` when a side has no success or the early p50 is zero.
    pub p50_ratio: Option<f64>,
    /// `late_p95 / early_p95`; `None` when a side has no success or the early p95 is zero.
    pub p95_ratio: Option<f64>,
    /// Mann–Whitney U test; `None` when a side has no success.
    pub rank_test: Option<RankTest>,
    /// Per-window p95 (ms) against window midpoint (s); `None` with fewer than 3 such windows.
    pub p95_trend: Option<Trend>,
}

impl WindowedSeries {
    /// Compares the first `k` windows after the warm-up window with the last `k`.
    ///
    /// Returns `None` when `k` is zero or there are fewer than `2k + 1` windows.
    ///
    /// Time: O(k × histogram counters + m²) with `m ≤ 4096` values in the rank test.
    pub fn degradation(&self, k: usize) -> Option<Degradation> {
        let n = self.windows.len();
        if k == 0 || n < 2 * k + 1 {
            return None;
        }
        let early = Side::merge(&self.windows[1..=k]);
        let late = Side::merge(&self.windows[n - k..]);
        let both = !early.latency.is_empty() && !late.latency.is_empty();
        let ratio = |a: Duration, b: Duration| {
            (both && !a.is_zero()).then(|| b.as_secs_f64() / a.as_secs_f64())
        };
        let (early_p50, late_p50) = (early.latency.quantile(0.5), late.latency.quantile(0.5));
        let (early_p95, late_p95) = (early.latency.quantile(0.95), late.latency.quantile(0.95));
        Some(Degradation {
            windows_per_side: k,
            window_width: self.width(),
            early_start: self.window_start(1),
            late_start: self.window_start(n - k),
            early_count: early.latency.len(),
            late_count: late.latency.len(),
            early_p50,
            late_p50,
            early_p95,
            late_p95,
            p50_ratio: ratio(early_p50, late_p50),
            p95_ratio: ratio(early_p95, late_p95),
            rank_test: rank_test(early.samples, late.samples),
            p95_trend: self.p95_trend(),
        })
    }

    /// OLS of each post-warm-up window's p95 (ms) against its midpoint (s).
    fn p95_trend(&self) -> Option<Trend> {
        let half = self.width() / 2;
        let points: Vec<(f64, f64)> = self
            .windows
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, w)| !w.latency.is_empty())
            .map(|(i, w)| {
                let mid = self.window_start(i) + half;
                (
                    mid.as_secs_f64(),
                    w.latency.quantile(0.95).as_secs_f64() * 1e3,
                )
            })
            .collect();
        fit_trend(&points)
    }
}

/// One side of the comparison: merged histogram and reservoir values.
struct Side {
    latency: LatencyHistogram,
    samples: Vec<u64>,
}

impl Side {
    fn merge(windows: &[WindowAcc]) -> Self {
        let mut latency = LatencyHistogram::new();
        let mut samples = Vec::new();
        for w in windows {
            latency.merge(&w.latency);
            samples.extend_from_slice(w.reservoir.values());
        }
        Self { latency, samples }
    }
}

/// The Mann–Whitney U test of `late` against `early` (µs), each thinned to
/// [`MAX_RANK_SAMPLES`]; `None` when either is empty.
fn rank_test(mut early: Vec<u64>, mut late: Vec<u64>) -> Option<RankTest> {
    if early.is_empty() || late.is_empty() {
        return None;
    }
    // A fixed seed: the thinning, hence the p-value, is reproducible.
    let mut rng = SplitMix64::new(0x5eed);
    choose_in_place(&mut early, MAX_RANK_SAMPLES, &mut rng);
    choose_in_place(&mut late, MAX_RANK_SAMPLES, &mut rng);
    // See the `metrics` docs (# Degradation) for why the exact method is avoided.
    let method = || MannWhitneyUMethod::AsymptoticInclContinuityCorrection;
    // u64 values are always comparable and both samples are non-empty: no error can occur.
    let (u_late, p_greater) = mannwhitneyu(&late, &early, method(), Alternative::Greater).ok()?;
    let (_, p_two_sided) = mannwhitneyu(&late, &early, method(), Alternative::TwoSided).ok()?;
    // Sample sizes ≤ 2048 convert exactly to f64.
    let pairs = early.len() as f64 * late.len() as f64;
    Some(RankTest {
        n_early: early.len(),
        n_late: late.len(),
        u_late,
        prob_late_slower: u_late / pairs,
        p_greater,
        p_two_sided,
    })
}

#[cfg(test)]
#[path = "degradation_tests.rs"]
mod tests;
