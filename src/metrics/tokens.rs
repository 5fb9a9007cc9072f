//! Per-token timing of a streamed reply in bounded memory: [`TokenTiming`] on each record, and
//! [`CompactHistogram`], the small mergeable distribution it keeps of its gaps.
//!
//! The definitions are stated in the [`metrics`](crate::metrics#serving-figures) module docs.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::histogram::LatencySummary;

/// Highest trackable value, in µs: one hour (as [`LatencyHistogram`](super::LatencyHistogram)).
const HIGHEST_US: u64 = 3_600_000_000;

/// Significant decimal digits kept: 2 (256 sub-buckets per power of two, relative error below
/// 1/128).
const SIGNIFICANT_DIGITS: u8 = 2;

/// A latency distribution in µs at 2 significant digits (HdrHistogram, 1 µs .. 1 h, `u32`
/// counters, about 13 KiB): small enough to travel with every streamed record and to sit in
/// every time window.
///
/// A quantile is the highest equivalent value of the bucket holding the nearest-rank value, so
/// it is at most 1/128 (0.8%) above the exact value of the µs-truncated data. Values above one
/// hour are clamped and counted as saturated; counters saturate at `u32::MAX`.
#[derive(Debug, Clone)]
pub struct CompactHistogram {
    hist: Histogram<u32>,
    saturated: u64,
}

impl Default for CompactHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl CompactHistogram {
    /// An empty histogram.
    ///
    /// Time: O(1) (allocates the fixed counter array). Memory: ≈ 13 KiB.
    pub fn new() -> Self {
        // Constant bounds satisfying HdrHistogram's rules (1 ≤ low, 2·low ≤ high, sigfig ≤ 5).
        let hist = Histogram::new_with_bounds(1, HIGHEST_US, SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        Self { hist, saturated: 0 }
    }

    /// Records one value, truncated to µs and clamped to one hour.
    ///
    /// Time: O(1).
    pub fn record(&mut self, value: Duration) {
        // More than u64::MAX µs saturates like any value above the bound.
        let us = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        if us > HIGHEST_US {
            self.saturated += 1;
        }
        self.hist.saturating_record(us.min(HIGHEST_US));
    }

    /// Adds every value of `other`.
    ///
    /// Time: O(number of counters).
    pub fn merge(&mut self, other: &Self) {
        // Equal constant bounds: every value of `other` fits, so addition cannot fail.
        self.hist
            .add(&other.hist)
            .expect("histograms with equal bounds always add");
        self.saturated += other.saturated;
    }

    /// Number of values recorded.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// The value at quantile `q` in `[0, 1]`; zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        super::histogram::quantile(&self.hist, q)
    }

    /// The summary, or `None` when nothing was recorded (a figure not measured).
    ///
    /// Time: O(number of counters).
    pub fn summary(&self) -> Option<LatencySummary> {
        super::histogram::summarize(&self.hist, self.saturated)
    }

    /// The recorded values as `(value, count)` pairs, each value the highest equivalent value of
    /// its bucket (for merging into a finer histogram).
    pub(crate) fn iter_recorded(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.hist
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value().into()))
    }

    /// Values above one hour, clamped.
    pub fn saturated(&self) -> u64 {
        self.saturated
    }
}

/// The arrival times of a streamed reply's content deltas, folded as they arrive: the number of
/// deltas, the last arrival, every gap between consecutive deltas in a [`CompactHistogram`], the
/// largest gap and the number of stalls (gaps longer than the client's stall threshold).
///
/// The first arrival is the record's
/// [`first_token_at`](super::RequestResult::first_token_at). Memory is bounded whatever the
/// reply's length: nothing until the second delta, then one ≈ 13 KiB histogram.
#[derive(Debug, Clone, Default)]
pub struct TokenTiming {
    /// Content deltas (`content_block_delta` events carrying text) received.
    pub deltas: u32,
    /// Arrival of the last content delta.
    pub last_at: Option<Instant>,
    /// Largest gap between two consecutive deltas; `None` with fewer than two deltas.
    pub max_gap: Option<Duration>,
    /// Gaps longer than the stall threshold the client was given.
    pub stalls: u32,
    /// Every gap between consecutive deltas; `None` with fewer than two deltas.
    gaps: Option<Box<CompactHistogram>>,
}

impl TokenTiming {
    /// Folds the arrival of one content delta at `at`; a gap longer than `stall` is a stall.
    /// Returns whether this was the first delta.
    ///
    /// Time: O(1).
    pub fn arrived(&mut self, at: Instant, stall: Duration) -> bool {
        self.deltas = self.deltas.saturating_add(1);
        let Some(previous) = self.last_at.replace(at) else {
            return true;
        };
        let gap = at.saturating_duration_since(previous);
        self.gaps
            .get_or_insert_with(|| Box::new(CompactHistogram::new()))
            .record(gap);
        self.max_gap = Some(self.max_gap.map_or(gap, |m| m.max(gap)));
        if gap > stall {
            self.stalls = self.stalls.saturating_add(1);
        }
        false
    }

    /// The gaps between consecutive deltas, if there were two deltas or more.
    pub fn gaps(&self) -> Option<&CompactHistogram> {
        self.gaps.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_max_and_stalls_are_folded() {
        let t0 = Instant::now();
        let mut t = TokenTiming::default();
        let stall = Duration::from_millis(100);
        assert!(t.arrived(t0, stall));
        assert!(t.gaps().is_none() && t.max_gap.is_none());
        for (i, ms) in [10_u64, 20, 250, 10].iter().enumerate() {
            let at = t0 + Duration::from_millis([10, 30, 280, 290][i]);
            assert!(!t.arrived(at, stall), "gap {ms}");
        }
        assert_eq!(t.deltas, 5);
        assert_eq!(t.stalls, 1);
        assert_eq!(t.max_gap, Some(Duration::from_millis(250)));
        assert_eq!(t.last_at, Some(t0 + Duration::from_millis(290)));
        let gaps = t.gaps().unwrap();
        assert_eq!(gaps.len(), 4);
        let p50 = gaps.quantile(0.5);
        // 2 significant digits: at most 1/128 above the exact nearest-rank value.
        assert!(p50 >= Duration::from_millis(10) && p50 <= Duration::from_micros(10_079));
    }

    #[test]
    fn compact_quantiles_are_within_one_128th() {
        let mut h = CompactHistogram::new();
        assert!(h.summary().is_none());
        for us in 1..=10_000_u64 {
            h.record(Duration::from_micros(us * 37));
        }
        for q in [0.5, 0.9, 0.99] {
            let exact = (q * 10_000.0_f64).ceil() as u64 * 37;
            let got = u64::try_from(h.quantile(q).as_micros()).unwrap();
            assert!(
                got >= exact && got <= exact + exact / 128,
                "q {q}: {got} vs {exact}"
            );
        }
        let mut other = CompactHistogram::new();
        other.record(Duration::from_secs(7200));
        h.merge(&other);
        assert_eq!(h.len(), 10_001);
        assert_eq!(h.saturated(), 1);
    }
}
