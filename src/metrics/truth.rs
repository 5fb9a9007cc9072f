//! The harness's own timing error, measured against the server's truth: [`TimingTruth`] on each
//! record read in self-test mode, folded into [`TimingErrors`] by [`TruthCollector`].
//!
//! A server that writes stamps (the reference server when asked with `x-semantic-stamp: 1`)
//! precedes each content delta with `: t=<µs>`, the moment it wrote the delta, measured from the
//! request's arrival. For delta `i` the harness knows its own arrival `aᵢ`, measured from the
//! moment the request was handed to an open connection (its actual start through the shared
//! pool), and the server's write time `sᵢ`; the **per-delta error** is
//! `eᵢ = aᵢ − sᵢ`. Since the request starts before it arrives and a delta is written before it
//! is read, `eᵢ ≥ 0` on one machine: it is the harness's added delay (plus the loopback
//! transit of the request and of the delta).
//!
//! - **TTFT error** = `e₀`: harness TTFT (from the actual start) minus the server's TTFT.
//! - **ITL error** of gap `i` = `|eᵢ − eᵢ₋₁|`: harness gap minus the server's gap; the constant
//!   transit cancels.
//!
//! A delta read before its stamp (`eᵢ < 0`) cannot happen with one clock: it is counted as
//! `early` and recorded as 0, so that a stamping bug shows instead of hiding.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::histogram::LatencySummary;
use super::record::RequestResult;
use super::tokens::CompactHistogram;

/// A record's timing error against the server's stamps, in bounded memory: counts, the TTFT
/// error, maxima and two lazily allocated histograms (4 bytes a value, at most ≈ 13 KiB each).
#[derive(Debug, Clone, Default)]
pub struct TimingTruth {
    /// Content deltas that carried a stamp.
    pub stamped: u32,
    /// Content deltas that carried none (a server that does not stamp, or a frame holding
    /// several events).
    pub unstamped: u32,
    /// Deltas read before their stamp says they were written (impossible with one clock).
    pub early: u32,
    /// The server's TTFT: the first stamped delta's stamp.
    pub server_ttft: Option<Duration>,
    /// Harness TTFT minus server TTFT (`e₀`), when the first delta was stamped.
    pub ttft_error: Option<Duration>,
    /// Largest per-delta error `eᵢ`.
    pub max_error: Duration,
    /// Largest ITL error `|eᵢ − eᵢ₋₁|`.
    pub max_itl_error: Duration,
    /// When the request was handed to an open connection (after any connect): the origin of
    /// the harness's arrival times, so that a TCP connect — client-perceived TTFT, but no
    /// timing error — is left out. `None` through the shared pool, whose connects are not
    /// seen: the request's actual start is the origin then.
    pub sent_at: Option<Instant>,
    /// The previous stamped delta's error, signed µs.
    last_error_us: Option<i64>,
    /// Every per-delta error.
    errors: Option<Box<CompactHistogram>>,
    /// Every ITL error.
    itl_errors: Option<Box<CompactHistogram>>,
}

impl TimingTruth {
    /// Folds one content delta read `arrival` after the request's actual start, stamped
    /// `stamp` (from the request's arrival at the server) if the server stamped it.
    ///
    /// Time: O(1).
    pub fn observe(&mut self, arrival: Duration, stamp: Option<Duration>) {
        let Some(stamp) = stamp else {
            self.unstamped = self.unstamped.saturating_add(1);
            // The next gap spans an unstamped delta: not comparable.
            self.last_error_us = None;
            return;
        };
        let first = self.stamped == 0 && self.unstamped == 0;
        self.stamped = self.stamped.saturating_add(1);
        let error_us = micros(arrival) - micros(stamp);
        if error_us < 0 {
            self.early = self.early.saturating_add(1);
        }
        let error = Duration::from_micros(error_us.max(0).unsigned_abs());
        if first {
            self.server_ttft = Some(stamp);
            self.ttft_error = Some(error);
        }
        self.max_error = self.max_error.max(error);
        self.errors
            .get_or_insert_with(|| Box::new(CompactHistogram::new()))
            .record(error);
        if let Some(previous) = self.last_error_us.replace(error_us) {
            let itl = Duration::from_micros((error_us - previous).unsigned_abs());
            self.max_itl_error = self.max_itl_error.max(itl);
            self.itl_errors
                .get_or_insert_with(|| Box::new(CompactHistogram::new()))
                .record(itl);
        }
    }

    /// Every per-delta error, if a delta was stamped.
    pub fn errors(&self) -> Option<&CompactHistogram> {
        self.errors.as_deref()
    }

    /// Every ITL error, if two consecutive deltas were stamped.
    pub fn itl_errors(&self) -> Option<&CompactHistogram> {
        self.itl_errors.as_deref()
    }
}

/// A duration in signed µs (saturating: no stamp or arrival comes near 2⁶³ µs).
fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The harness's timing error over a run's stamped requests. Per delta, the error is the
/// harness's arrival (since the request was handed to an open connection) minus the server's
/// write stamp (since the request arrived); the TTFT error is the first delta's; the ITL error
/// is the difference of consecutive errors, absolute. A delta read before its stamp is counted
/// in `early_deltas` (it cannot happen with one clock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimingErrors {
    /// Requests with at least one stamped delta.
    pub requests: u64,
    /// Stamped content deltas.
    pub stamped_deltas: u64,
    /// Content deltas of those requests without a stamp.
    pub unstamped_deltas: u64,
    /// Deltas read before their stamp (a clock or stamping fault when non-zero).
    pub early_deltas: u64,
    /// TTFT error, one value per request whose first delta was stamped.
    pub ttft: Option<LatencySummary>,
    /// ITL error of every pair of consecutive stamped deltas.
    pub itl: Option<LatencySummary>,
    /// Per-delta error of every stamped delta.
    pub delta: Option<LatencySummary>,
    /// The server's TTFT, one value per request, from its stamps.
    pub server_ttft: Option<LatencySummary>,
}

impl TimingErrors {
    /// Why the harness's timing cannot be trusted to within `bound`, or `None` when it can: the
    /// TTFT or ITL error at p99 is over `bound`, a delta was read before its stamp, a delta of a
    /// stamped request came without a stamp, or no TTFT or ITL error was measured.
    pub fn exceeds(&self, bound: Duration) -> Option<String> {
        let over = |what: &str, s: &Option<LatencySummary>| match s {
            None => Some(format!("no {what} error was measured")),
            Some(s) if s.p99 > bound => Some(format!(
                "{what} error p99 {:.3} ms is over {:.3} ms",
                ms(s.p99),
                ms(bound)
            )),
            Some(_) => None,
        };
        if self.early_deltas > 0 {
            return Some(format!(
                "{} deltas were read before the server wrote them (clock or stamp fault)",
                self.early_deltas
            ));
        }
        if self.unstamped_deltas > 0 {
            return Some(format!(
                "{} deltas of stamped requests came without a stamp",
                self.unstamped_deltas
            ));
        }
        over("TTFT", &self.ttft).or_else(|| over("ITL", &self.itl))
    }
}

/// A duration in fractional milliseconds, for messages.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Folds records' [`TimingTruth`] into [`TimingErrors`]: fixed memory (four compact
/// histograms), mergeable.
#[derive(Debug, Clone, Default)]
pub struct TruthCollector {
    requests: u64,
    stamped: u64,
    unstamped: u64,
    early: u64,
    ttft: CompactHistogram,
    itl: CompactHistogram,
    delta: CompactHistogram,
    server_ttft: CompactHistogram,
}

impl TruthCollector {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one record (nothing when it carries no stamps).
    ///
    /// Time: O(histogram counters) for a stamped record, O(1) otherwise.
    pub fn record(&mut self, r: &RequestResult) {
        let Some(t) = r.truth.as_deref().filter(|t| t.stamped > 0) else {
            return;
        };
        self.requests += 1;
        self.stamped += u64::from(t.stamped);
        self.unstamped += u64::from(t.unstamped);
        self.early += u64::from(t.early);
        if let Some(e) = t.ttft_error {
            self.ttft.record(e);
        }
        if let Some(s) = t.server_ttft {
            self.server_ttft.record(s);
        }
        if let Some(h) = t.itl_errors() {
            self.itl.merge(h);
        }
        if let Some(h) = t.errors() {
            self.delta.merge(h);
        }
    }

    /// Adds everything `other` has seen.
    pub fn merge(&mut self, other: &Self) {
        self.requests += other.requests;
        self.stamped += other.stamped;
        self.unstamped += other.unstamped;
        self.early += other.early;
        self.ttft.merge(&other.ttft);
        self.itl.merge(&other.itl);
        self.delta.merge(&other.delta);
        self.server_ttft.merge(&other.server_ttft);
    }

    /// The figures, or `None` when no record carried a stamp (nothing was measured).
    pub fn errors(&self) -> Option<TimingErrors> {
        (self.requests > 0).then(|| TimingErrors {
            requests: self.requests,
            stamped_deltas: self.stamped,
            unstamped_deltas: self.unstamped,
            early_deltas: self.early,
            ttft: self.ttft.summary(),
            itl: self.itl.summary(),
            delta: self.delta.summary(),
            server_ttft: self.server_ttft.summary(),
        })
    }

    /// The figures of a slice of records.
    pub fn analyze(results: &[RequestResult]) -> Option<TimingErrors> {
        let mut c = Self::new();
        results.iter().for_each(|r| c.record(r));
        c.errors()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn exceeds_names_the_figure_over_the_bound() {
        let now = Instant::now();
        let mut r = RequestResult::pending(now, now);
        let mut t = TimingTruth::default();
        t.observe(ms(30), Some(ms(10)));
        t.observe(ms(40), Some(ms(20)));
        r.truth = Some(Box::new(t));
        let e = TruthCollector::analyze(&[r]).unwrap();
        assert!(e.exceeds(ms(25)).is_none());
        let why = e.exceeds(ms(5)).unwrap();
        assert!(why.starts_with("TTFT error p99"), "{why}");
    }

    #[test]
    fn errors_are_arrival_minus_stamp_and_gap_differences() {
        let mut t = TimingTruth::default();
        // Server writes at 10, 20, 30 ms; the harness reads at 11, 23, 31 ms.
        t.observe(ms(11), Some(ms(10)));
        t.observe(ms(23), Some(ms(20)));
        t.observe(ms(31), Some(ms(30)));
        assert_eq!(t.stamped, 3);
        assert_eq!(t.server_ttft, Some(ms(10)));
        assert_eq!(t.ttft_error, Some(ms(1)));
        assert_eq!(t.max_error, ms(3));
        // Gaps: harness 12 and 8 vs server 10 and 10: errors 2 and 2.
        assert_eq!(t.max_itl_error, ms(2));
        assert_eq!(t.itl_errors().unwrap().len(), 2);
        assert_eq!(t.early, 0);
    }

    #[test]
    fn unstamped_and_early_deltas_are_counted_not_hidden() {
        let mut t = TimingTruth::default();
        t.observe(ms(5), None);
        t.observe(ms(9), Some(ms(10)));
        assert_eq!((t.unstamped, t.stamped, t.early), (1, 1, 1));
        assert_eq!(t.ttft_error, None, "the first delta was not stamped");
        assert!(t.itl_errors().is_none());
    }

    #[test]
    fn collector_reports_nothing_without_stamps() {
        let now = Instant::now();
        let mut r = RequestResult::pending(now, now);
        assert!(TruthCollector::analyze(std::slice::from_ref(&r)).is_none());
        let mut t = TimingTruth::default();
        t.observe(ms(12), Some(ms(10)));
        t.observe(ms(22), Some(ms(20)));
        r.truth = Some(Box::new(t));
        let e = TruthCollector::analyze(&[r]).unwrap();
        assert_eq!((e.requests, e.stamped_deltas), (1, 2));
        assert!(e.ttft.unwrap().p50 >= ms(2));
        assert_eq!(e.itl.unwrap().max, Duration::ZERO);
    }
}
