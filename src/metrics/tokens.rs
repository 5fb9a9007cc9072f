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

/// Values kept one by one before a histogram switches to its counter array: up to 2,048 `u32`s
/// (8 KiB), less than the array's 13 KiB.
const RAW_LIMIT: usize = 2048;

/// A latency distribution in µs at 2 significant digits (HdrHistogram, 1 µs .. 1 h, `u32`
/// counters): small enough to travel with every streamed record and to sit in every time
/// window.
///
/// Up to 2,048 values it keeps the values themselves (4 bytes each: a 200-token reply's gaps
/// take 800 bytes); past that, HdrHistogram's counter array (about 13 KiB, whatever the count).
/// Both answer alike: a quantile is the highest equivalent value of the bucket holding the
/// nearest-rank value, so it is at most 1/128 (0.8%) above the exact value of the µs-truncated
/// data. Values above one hour are clamped and counted as saturated; counters saturate at
/// `u32::MAX`.
#[derive(Debug, Clone)]
pub struct CompactHistogram {
    counts: Counts,
    saturated: u64,
}

/// The values of a [`CompactHistogram`]: listed while few, counted past [`RAW_LIMIT`].
#[derive(Debug, Clone)]
enum Counts {
    /// Each value in µs (at most one hour, so it fits a `u32`).
    Raw(Vec<u32>),
    /// HdrHistogram's counters.
    Dense(Box<Histogram<u32>>),
}

impl Default for CompactHistogram {
    fn default() -> Self {
        Self::new()
    }
}

/// An empty counter array with the constant bounds.
fn dense() -> Histogram<u32> {
    // Constant bounds satisfying HdrHistogram's rules (1 ≤ low, 2·low ≤ high, sigfig ≤ 5).
    Histogram::new_with_bounds(1, HIGHEST_US, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// The highest value of `us`'s bucket, as the counter array would report it.
fn highest_equivalent(us: u32) -> u64 {
    static BUCKETS: std::sync::OnceLock<Histogram<u32>> = std::sync::OnceLock::new();
    BUCKETS.get_or_init(dense).highest_equivalent(u64::from(us))
}

impl CompactHistogram {
    /// An empty histogram.
    ///
    /// Time: O(1); allocates nothing until the first value.
    pub fn new() -> Self {
        Self {
            counts: Counts::Raw(Vec::new()),
            saturated: 0,
        }
    }

    /// Records one value, truncated to µs and clamped to one hour.
    ///
    /// Time: O(1) amortised (the switch to counters, once, is O(2,048)).
    pub fn record(&mut self, value: Duration) {
        // More than u64::MAX µs saturates like any value above the bound.
        let us = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        if us > HIGHEST_US {
            self.saturated += 1;
        }
        // At most one hour in µs: below u32::MAX.
        let us = u32::try_from(us.min(HIGHEST_US)).unwrap_or(u32::MAX);
        match &mut self.counts {
            Counts::Raw(values) if values.len() < RAW_LIMIT => values.push(us),
            _ => self.densify().saturating_record(u64::from(us)),
        }
    }

    /// The counter array, switching to it first if the values are still listed.
    fn densify(&mut self) -> &mut Histogram<u32> {
        if let Counts::Raw(values) = &self.counts {
            let mut hist = dense();
            for &us in values {
                hist.saturating_record(u64::from(us));
            }
            self.counts = Counts::Dense(Box::new(hist));
        }
        match &mut self.counts {
            Counts::Dense(hist) => hist,
            Counts::Raw(_) => unreachable!("switched to counters above"),
        }
    }

    /// The values as a counter array (a temporary one while they are still listed).
    fn counters(&self) -> std::borrow::Cow<'_, Histogram<u32>> {
        match &self.counts {
            Counts::Dense(hist) => std::borrow::Cow::Borrowed(hist),
            Counts::Raw(values) => {
                let mut hist = dense();
                for &us in values {
                    hist.saturating_record(u64::from(us));
                }
                std::borrow::Cow::Owned(hist)
            }
        }
    }

    /// Adds every value of `other`.
    ///
    /// Time: O(number of counters), or O(values) while both are listed.
    pub fn merge(&mut self, other: &Self) {
        self.saturated += other.saturated;
        match (&mut self.counts, &other.counts) {
            (Counts::Raw(mine), Counts::Raw(theirs)) if mine.len() + theirs.len() <= RAW_LIMIT => {
                mine.extend_from_slice(theirs);
            }
            (_, Counts::Raw(theirs)) => {
                let hist = self.densify();
                for &us in theirs {
                    hist.saturating_record(u64::from(us));
                }
            }
            (_, Counts::Dense(theirs)) => {
                // Equal constant bounds: every value of `other` fits, so addition cannot fail.
                self.densify()
                    .add(&**theirs)
                    .expect("histograms with equal bounds always add");
            }
        }
    }

    /// Number of values recorded.
    pub fn len(&self) -> u64 {
        match &self.counts {
            Counts::Raw(values) => values.len() as u64,
            Counts::Dense(hist) => hist.len(),
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at quantile `q` in `[0, 1]`; zero when empty.
    ///
    /// Time: O(number of counters).
    pub fn quantile(&self, q: f64) -> Duration {
        super::histogram::quantile(&self.counters(), q)
    }

    /// The summary, or `None` when nothing was recorded (a figure not measured).
    ///
    /// Time: O(number of counters).
    pub fn summary(&self) -> Option<LatencySummary> {
        super::histogram::summarize(&self.counters(), self.saturated)
    }

    /// The recorded values as `(value, count)` pairs, each value the highest equivalent value of
    /// its bucket (for merging into a finer histogram).
    pub(crate) fn iter_recorded(&self) -> Box<dyn Iterator<Item = (u64, u64)> + '_> {
        match &self.counts {
            Counts::Raw(values) => Box::new(values.iter().map(|&us| (highest_equivalent(us), 1))),
            Counts::Dense(hist) => Box::new(
                hist.iter_recorded()
                    .map(|v| (v.value_iterated_to(), v.count_at_value().into())),
            ),
        }
    }

    /// Values above one hour, clamped.
    pub fn saturated(&self) -> u64 {
        self.saturated
    }

    /// Heap bytes held: the listed values' capacity, or the counter array's.
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        match &self.counts {
            Counts::Raw(values) => values.capacity() * std::mem::size_of::<u32>(),
            Counts::Dense(hist) => {
                std::mem::size_of::<Histogram<u32>>()
                    + hist.distinct_values() * std::mem::size_of::<u32>()
            }
        }
    }
}

/// The arrival times of a streamed reply's content deltas, folded as they arrive: the number of
/// deltas, the last arrival, every gap between consecutive deltas in a [`CompactHistogram`], the
/// largest gap and the number of stalls (gaps longer than the client's stall threshold).
///
/// The first arrival is the record's
/// [`first_token_at`](super::RequestResult::first_token_at). Memory is bounded whatever the
/// reply's length: nothing until the second delta, then 4 bytes a gap, at most ≈ 13 KiB.
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

    /// Values 1 µs .. 10 s, spread over the decades, from a fixed seed.
    fn spread(n: usize, seed: u64) -> Vec<Duration> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let decade = (x >> 60) % 8;
                Duration::from_micros(1 + (x >> 20) % 10_u64.pow(decade as u32 + 1))
            })
            .collect()
    }

    #[test]
    fn listed_and_counted_values_answer_alike() {
        let values = spread(RAW_LIMIT, 3);
        let mut listed = CompactHistogram::new();
        for &v in &values {
            listed.record(v);
        }
        assert!(matches!(listed.counts, Counts::Raw(_)));
        let mut counted = listed.clone();
        counted.densify();
        assert!(matches!(counted.counts, Counts::Dense(_)));
        assert_eq!(listed.summary(), counted.summary());
        for q in [0.0, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(listed.quantile(q), counted.quantile(q), "q {q}");
        }
        let sum = |h: &CompactHistogram| {
            let mut pairs: Vec<(u64, u64)> = h.iter_recorded().collect();
            pairs.sort_unstable();
            pairs.dedup_by(|b, a| {
                let same = a.0 == b.0;
                if same {
                    a.1 += b.1;
                }
                same
            });
            pairs
        };
        assert_eq!(sum(&listed), sum(&counted));
    }

    #[test]
    fn values_switch_to_counters_past_the_limit_and_merge_either_way() {
        let a = spread(1500, 5);
        let b = spread(1500, 9);
        let mut each = CompactHistogram::new();
        for &v in a.iter().chain(&b) {
            each.record(v);
        }
        assert!(
            matches!(each.counts, Counts::Dense(_)),
            "3,000 values are counted"
        );
        let fill = |vals: &[Duration]| {
            let mut h = CompactHistogram::new();
            vals.iter().for_each(|&v| h.record(v));
            h
        };
        // listed + listed past the limit, counted + listed, listed + counted, counted + counted.
        let mut merged = fill(&a);
        merged.merge(&fill(&b));
        let mut counted_a = fill(&a);
        counted_a.densify();
        let mut counted_b = fill(&b);
        counted_b.densify();
        let mut m2 = counted_a.clone();
        m2.merge(&fill(&b));
        let mut m3 = fill(&a);
        m3.merge(&counted_b);
        let mut m4 = counted_a;
        m4.merge(&counted_b);
        for m in [&merged, &m2, &m3, &m4] {
            assert_eq!(m.summary(), each.summary());
        }
        // Small merges stay listed.
        let mut small = fill(&a[..10]);
        small.merge(&fill(&b[..10]));
        assert!(matches!(small.counts, Counts::Raw(ref v) if v.len() == 20));
    }

    #[test]
    fn a_short_reply_holds_bytes_not_kibibytes() {
        let mut h = CompactHistogram::new();
        assert_eq!(h.heap_bytes(), 0);
        for v in spread(199, 11) {
            h.record(v);
        }
        assert!(h.heap_bytes() <= 1024, "{} bytes", h.heap_bytes());
        for v in spread(RAW_LIMIT, 13) {
            h.record(v);
        }
        assert!(
            h.heap_bytes() > 8 * 1024,
            "counted: {} bytes",
            h.heap_bytes()
        );
    }
}
