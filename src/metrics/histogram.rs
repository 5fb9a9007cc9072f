//! Latency distributions in fixed memory: [`LatencyHistogram`] and its [`LatencySummary`].
//!
//! The definitions are stated in the [`metrics`](crate::metrics#percentiles) module docs.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::serde_duration::millis;
use super::tokens::CompactHistogram;

/// Highest trackable latency, in µs: one hour.
const HIGHEST_US: u64 = 3_600_000_000;

/// Significant decimal digits kept.
const SIGNIFICANT_DIGITS: u8 = 3;

/// A latency distribution in µs, fixed-size and mergeable (HdrHistogram, 1 µs .. 1 h, 3
/// significant digits). See the [definitions](crate::metrics#percentiles) for the quantile definition.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
    saturated: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    ///
    /// Time: O(1) (allocates the fixed counter array). Memory: ≈ 190 KiB.
    pub fn new() -> Self {
        // The bounds are constants that satisfy HdrHistogram's rules (1 ≤ low, 2·low ≤ high,
        // sigfig ≤ 5), so creation cannot fail.
        let hist = Histogram::new_with_bounds(1, HIGHEST_US, SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        Self { hist, saturated: 0 }
    }

    /// Records one latency, truncated to µs; values above one hour are clamped to one hour and
    /// counted as saturated.
    ///
    /// Time: O(1).
    pub fn record(&mut self, latency: Duration) {
        // More than u64::MAX µs (585 000 years) saturates like any value above the bound.
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        if us > HIGHEST_US {
            self.saturated += 1;
        }
        self.hist.saturating_record(us.min(HIGHEST_US));
    }

    /// Adds every value of `other` to `self`.
    ///
    /// Time: O(number of counters), independent of the number of values.
    pub fn merge(&mut self, other: &Self) {
        // Both histograms have the same constant bounds, so every value of `other` fits.
        self.hist
            .add(&other.hist)
            .expect("histograms with equal bounds always add");
        self.saturated += other.saturated;
    }

    /// Adds every value of a [`CompactHistogram`], each at its bucket's highest equivalent
    /// value (so the merged figures carry the compact histogram's error, below 1/128).
    ///
    /// Time: O(number of non-empty counters of `other`).
    pub fn record_compact(&mut self, other: &CompactHistogram) {
        for (us, n) in other.iter_recorded() {
            self.hist.saturating_record_n(us.min(HIGHEST_US), n);
        }
        self.saturated += other.saturated();
    }

    /// Number of values recorded.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// Number of values that exceeded one hour and were clamped.
    pub fn saturated(&self) -> u64 {
        self.saturated
    }

    /// The latency at quantile `q` in `[0, 1]` (values above 1 are treated as 1); zero when
    /// empty. See the [definitions](crate::metrics#percentiles) for the definition and error bound.
    ///
    /// Time: O(number of counters).
    pub fn quantile(&self, q: f64) -> Duration {
        quantile(&self.hist, q)
    }

    /// Count, min, mean, p50, p90, p95, p99, p99.9 and max; all zero when empty.
    ///
    /// Time: O(number of counters).
    pub fn summary(&self) -> LatencySummary {
        summarize(&self.hist, self.saturated).unwrap_or_default()
    }
}

/// The value of a µs histogram at quantile `q`; zero when empty.
pub(super) fn quantile<T: hdrhistogram::Counter>(hist: &Histogram<T>, q: f64) -> Duration {
    if hist.is_empty() {
        return Duration::ZERO;
    }
    Duration::from_micros(hist.value_at_quantile(q))
}

/// The summary of a µs histogram with `saturated` clamped values; `None` when empty.
pub(super) fn summarize<T: hdrhistogram::Counter>(
    hist: &Histogram<T>,
    saturated: u64,
) -> Option<LatencySummary> {
    if hist.is_empty() {
        return None;
    }
    Some(LatencySummary {
        count: hist.len(),
        saturated,
        min: Duration::from_micros(hist.min()),
        // The mean of values in [0, 1 h] is finite and non-negative.
        mean: Duration::from_secs_f64(hist.mean() / 1e6),
        p50: quantile(hist, 0.50),
        p90: quantile(hist, 0.90),
        p95: quantile(hist, 0.95),
        p99: quantile(hist, 0.99),
        p999: quantile(hist, 0.999),
        max: Duration::from_micros(hist.max()),
    })
}

/// Summary figures of a [`LatencyHistogram`]. Durations are written to JSON as milliseconds
/// (`p95_ms`, …).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of values.
    pub count: u64,
    /// Number of values above one hour, clamped to one hour.
    pub saturated: u64,
    /// Smallest value (lowest equivalent value of its bucket).
    #[serde(rename = "min_ms", with = "millis")]
    pub min: Duration,
    /// Mean of the recorded values (each counted at its bucket's middle).
    #[serde(rename = "mean_ms", with = "millis")]
    pub mean: Duration,
    /// Median.
    #[serde(rename = "p50_ms", with = "millis")]
    pub p50: Duration,
    /// 90th percentile.
    #[serde(rename = "p90_ms", with = "millis")]
    pub p90: Duration,
    /// 95th percentile.
    #[serde(rename = "p95_ms", with = "millis")]
    pub p95: Duration,
    /// 99th percentile.
    #[serde(rename = "p99_ms", with = "millis")]
    pub p99: Duration,
    /// 99.9th percentile.
    #[serde(rename = "p999_ms", with = "millis")]
    pub p999: Duration,
    /// Largest value (highest equivalent value of its bucket).
    #[serde(rename = "max_ms", with = "millis")]
    pub max: Duration,
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng, rngs::StdRng};

    use super::*;

    /// Exact nearest-rank quantile of sorted values: the `⌈q·N⌉`-th smallest (at least the 1st).
    fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    #[test]
    fn quantiles_are_within_the_stated_error_of_nearest_rank() {
        let mut rng = StdRng::seed_from_u64(7);
        for scale_us in [100_u64, 10_000, 3_000_000] {
            let mut hist = LatencyHistogram::new();
            let mut values: Vec<u64> = (0..20_000)
                .map(|_| {
                    // Heavy-tailed: a product of two uniforms spread over several decades.
                    let a = rng.random_range(1..=scale_us);
                    let b = rng.random_range(1..=100_u64);
                    a * b / 10 + rng.random_range(0..1000_u64)
                })
                .collect();
            for &v in &values {
                // Add sub-µs noise: truncation to µs is part of the definition.
                hist.record(Duration::from_nanos(v * 1000 + 999));
            }
            values.sort_unstable();
            for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
                let exact = nearest_rank(&values, q);
                let got = u64::try_from(hist.quantile(q).as_micros()).unwrap();
                let bound = exact / 1000 + 1;
                assert!(
                    got + bound >= exact && got <= exact + bound,
                    "q={q} exact={exact} got={got} scale={scale_us}"
                );
            }
            let s = hist.summary();
            assert_eq!(s.count, 20_000);
            assert!(s.min <= s.p50 && s.p50 <= s.p90 && s.p90 <= s.p95);
            assert!(s.p95 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.max);
        }
    }

    #[test]
    fn values_above_an_hour_are_clamped_and_counted() {
        let mut hist = LatencyHistogram::new();
        hist.record(Duration::from_secs(7200));
        hist.record(Duration::from_millis(5));
        assert_eq!(hist.saturated(), 1);
        assert_eq!(hist.len(), 2);
        let max = hist.quantile(1.0);
        assert!(max >= Duration::from_secs(3600) && max < Duration::from_secs(3604));
    }

    #[test]
    fn merge_equals_recording_into_one() {
        let (mut a, mut b, mut all) = (
            LatencyHistogram::new(),
            LatencyHistogram::new(),
            LatencyHistogram::new(),
        );
        for i in 0..1000_u64 {
            let d = Duration::from_micros(i * i + 3);
            if i % 3 == 0 { &mut a } else { &mut b }.record(d);
            all.record(d);
        }
        a.merge(&b);
        assert_eq!(a.summary(), all.summary());
    }

    #[test]
    fn empty_summary_is_zero_and_json_uses_milliseconds() {
        let hist = LatencyHistogram::new();
        assert!(hist.is_empty());
        assert_eq!(hist.summary(), LatencySummary::default());
        let mut hist = LatencyHistogram::new();
        // Below 2048 µs every value has its own bucket: the figure is exact.
        hist.record(Duration::from_micros(1500));
        let json = serde_json::to_value(hist.summary()).unwrap();
        assert_eq!(json["p95_ms"], 1.5);
        let back: LatencySummary = serde_json::from_value(json).unwrap();
        assert_eq!(back.p95, Duration::from_micros(1500));
    }
}
