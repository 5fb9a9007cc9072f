//! Figures per time window for sustained runs: [`WindowedSeries`] → [`Window`]s.
//!
//! The definitions are stated in the [`metrics`](crate::metrics#windows) module docs.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::histogram::{LatencyHistogram, LatencySummary};
use super::reservoir::Reservoir;
use super::serde_duration::secs;
use super::tokens::CompactHistogram;
use crate::metrics::{Outcome, RequestResult};

/// Windows kept before neighbours are merged.
const DEFAULT_MAX_WINDOWS: usize = 128;

/// Latency samples kept per window for rank tests.
pub(super) const RESERVOIR_CAPACITY: usize = 512;

/// The figures of one time window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Offset of the window's start from the series' origin.
    #[serde(rename = "start_s", with = "secs")]
    pub start: Duration,
    /// The window's width.
    #[serde(rename = "width_s", with = "secs")]
    pub width: Duration,
    /// Records scheduled in this window.
    pub requests: u64,
    /// Of which successes.
    pub successes: u64,
    /// Of which errors ([`Outcome::is_error`]).
    pub errors: u64,
    /// Of which graceful rejections.
    pub rejected: u64,
    /// Σ `usage.output_tokens`.
    pub output_tokens: u64,
    /// Latency of the successes, from their intended start.
    pub latency: LatencySummary,
    /// Time to first token of the streamed successes, from their intended start; `None` when
    /// none streamed (2 significant digits).
    pub ttft: Option<LatencySummary>,
    /// Gaps between consecutive content deltas of the streamed successes; `None` when none
    /// had two deltas (2 significant digits).
    pub itl: Option<LatencySummary>,
    /// `requests / width`.
    pub throughput_rps: f64,
}

/// One window being accumulated.
#[derive(Debug, Clone)]
pub(super) struct WindowAcc {
    pub(super) requests: u64,
    pub(super) successes: u64,
    pub(super) errors: u64,
    pub(super) rejected: u64,
    pub(super) output_tokens: u64,
    pub(super) latency: LatencyHistogram,
    pub(super) reservoir: Reservoir,
    ttft: CompactHistogram,
    itl: CompactHistogram,
}

impl WindowAcc {
    fn new(seed: u64) -> Self {
        Self {
            requests: 0,
            successes: 0,
            errors: 0,
            rejected: 0,
            output_tokens: 0,
            latency: LatencyHistogram::new(),
            reservoir: Reservoir::new(RESERVOIR_CAPACITY, seed),
            ttft: CompactHistogram::new(),
            itl: CompactHistogram::new(),
        }
    }

    fn merge(&mut self, other: &Self) {
        self.requests += other.requests;
        self.successes += other.successes;
        self.errors += other.errors;
        self.rejected += other.rejected;
        self.output_tokens += other.output_tokens;
        self.latency.merge(&other.latency);
        self.reservoir.merge(&other.reservoir);
        self.ttft.merge(&other.ttft);
        self.itl.merge(&other.itl);
    }
}

/// Records bucketed into fixed-width time windows from an origin. See the
/// [definitions](crate::metrics#windows) for the window rule and the memory bound.
#[derive(Debug, Clone)]
pub struct WindowedSeries {
    origin: Instant,
    width: Duration,
    max_windows: usize,
    seed: u64,
    pub(super) windows: Vec<WindowAcc>,
    /// Windows allocated ahead (last one first), used before allocating new ones.
    spare: Vec<WindowAcc>,
}

impl WindowedSeries {
    /// An empty series of windows of `width` starting at `origin`.
    ///
    /// # Panics
    ///
    /// When `width` is zero.
    pub fn new(origin: Instant, width: Duration) -> Self {
        assert!(!width.is_zero(), "window width must be positive");
        Self {
            origin,
            width,
            max_windows: DEFAULT_MAX_WINDOWS,
            seed: 0x5eed,
            windows: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Allocates the first `n` windows now (at most the window cap), so that a run of known
    /// length grows no memory as it goes: a window's histogram is about 190 KiB, written when
    /// allocated. Call after [`with_seed`](Self::with_seed).
    #[must_use]
    pub fn with_capacity(mut self, n: usize) -> Self {
        let n = n.min(self.max_windows);
        self.spare = (0..n)
            .rev()
            .map(|i| WindowAcc::new(self.window_seed(i)))
            .collect();
        self
    }

    /// A distinct, reproducible seed for window `index`.
    fn window_seed(&self, index: usize) -> u64 {
        // usize → u64 is lossless on every supported target.
        self.seed ^ (index as u64).rotate_left(32)
    }

    /// Keeps at most `max_windows` windows (at least 2) before merging neighbours.
    #[must_use]
    pub fn with_max_windows(mut self, max_windows: usize) -> Self {
        self.max_windows = max_windows.max(2);
        self
    }

    /// Seeds the latency reservoirs (for reproducible rank tests).
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The current window width (doubled at each coalescing).
    pub fn width(&self) -> Duration {
        self.width
    }

    /// Counts one record in its window.
    ///
    /// Time: O(1) amortized (a coalescing is O(max_windows) and halves the window count).
    pub fn record(&mut self, r: &RequestResult) {
        let offset = r.scheduled_at.saturating_duration_since(self.origin);
        let mut index = self.index_of(offset);
        while index >= self.max_windows {
            self.coalesce();
            index = self.index_of(offset);
        }
        while self.windows.len() <= index {
            let acc = match self.spare.pop() {
                Some(acc) => acc,
                None => WindowAcc::new(self.window_seed(self.windows.len())),
            };
            self.windows.push(acc);
        }
        let w = &mut self.windows[index];
        w.requests += 1;
        w.output_tokens += r.usage.map_or(0, |u| u.output_tokens);
        match r.outcome {
            Outcome::Success => {
                // The server's own latency (from the actual send): a generator that falls
                // behind must not read as a server that slows down. Corrected latency is in
                // the run's overall figures, and the generator's lag beside it.
                let latency = r.latency();
                w.successes += 1;
                w.latency.record(latency);
                // Latencies stay far below u64::MAX µs; saturate if not.
                w.reservoir
                    .offer(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
                if let Some(ttft) = r.corrected_ttft() {
                    w.ttft.record(ttft);
                }
                if let Some(gaps) = r.tokens.gaps() {
                    w.itl.merge(gaps);
                }
            }
            Outcome::Rejected => w.rejected += 1,
            _ => w.errors += 1,
        }
    }

    /// Every window from the origin to the last one with a record (empty ones included).
    ///
    /// Time: O(windows × histogram counters).
    pub fn windows(&self) -> Vec<Window> {
        self.windows
            .iter()
            .enumerate()
            .map(|(i, w)| Window {
                start: self.window_start(i),
                width: self.width,
                requests: w.requests,
                successes: w.successes,
                errors: w.errors,
                rejected: w.rejected,
                output_tokens: w.output_tokens,
                latency: w.latency.summary(),
                ttft: w.ttft.summary(),
                itl: w.itl.summary(),
                // Counts stay far below 2^53, where u64 → f64 is exact.
                throughput_rps: w.requests as f64 / self.width.as_secs_f64(),
            })
            .collect()
    }

    /// Offset of window `index`'s start from the origin.
    pub(super) fn window_start(&self, index: usize) -> Duration {
        // Window counts are bounded by max_windows, far below u32::MAX.
        self.width * u32::try_from(index).unwrap_or(u32::MAX)
    }

    /// The window index of an offset from the origin.
    fn index_of(&self, offset: Duration) -> usize {
        // The quotient fits in usize unless the offset is absurd; saturating then still
        // triggers coalescing until it fits.
        usize::try_from(offset.as_nanos() / self.width.as_nanos()).unwrap_or(usize::MAX)
    }

    /// Merges windows in pairs (0+1, 2+3, …) and doubles the width.
    fn coalesce(&mut self) {
        let old = std::mem::take(&mut self.windows);
        for pair in old.chunks(2) {
            let mut merged = pair[0].clone();
            if let Some(second) = pair.get(1) {
                merged.merge(second);
            }
            self.windows.push(merged);
        }
        self.width = self.width.saturating_mul(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(origin: Instant, offset_s: u64, outcome: Outcome, latency_ms: u64) -> RequestResult {
        let t = origin + Duration::from_secs(offset_s);
        let mut r = RequestResult::pending(t, t);
        r.outcome = outcome;
        r.finished_at = t + Duration::from_millis(latency_ms);
        r
    }

    #[test]
    fn windows_allocated_ahead_change_nothing_but_when_memory_is_taken() {
        let origin = Instant::now();
        let mut plain = WindowedSeries::new(origin, Duration::from_secs(10)).with_seed(3);
        let mut ahead = WindowedSeries::new(origin, Duration::from_secs(10))
            .with_seed(3)
            .with_capacity(8);
        assert_eq!(ahead.spare.len(), 8);
        assert!(ahead.windows().is_empty(), "no window before a record");
        for (s, outcome) in [
            (1, Outcome::Success),
            (25, Outcome::Timeout),
            (29, Outcome::Success),
        ] {
            plain.record(&at(origin, s, outcome, 5));
            ahead.record(&at(origin, s, outcome, 5));
        }
        assert_eq!(plain.windows(), ahead.windows());
        assert_eq!(ahead.spare.len(), 5);
    }

    #[test]
    fn records_land_in_their_windows() {
        let origin = Instant::now();
        let mut series = WindowedSeries::new(origin, Duration::from_secs(10));
        series.record(&at(origin, 1, Outcome::Success, 5));
        series.record(&at(origin, 9, Outcome::Rejected, 1));
        series.record(&at(origin, 25, Outcome::Timeout, 30_000));
        series.record(&at(origin, 29, Outcome::Success, 7));
        let w = series.windows();
        assert_eq!(w.len(), 3);
        assert_eq!((w[0].requests, w[0].successes, w[0].rejected), (2, 1, 1));
        assert_eq!(w[1].requests, 0);
        assert_eq!((w[2].requests, w[2].errors), (2, 1));
        assert_eq!(w[2].start, Duration::from_secs(20));
        assert_eq!(w[2].throughput_rps, 0.2);
        // Only the success is in the latency distribution.
        assert_eq!(w[2].latency.count, 1);
        assert!(w[2].latency.max < Duration::from_millis(8));
        let json = serde_json::to_value(&w[2]).unwrap();
        assert_eq!(json["start_s"], 20.0);
    }

    #[test]
    fn a_long_run_coalesces_windows_and_stays_bounded() {
        let origin = Instant::now();
        let mut series = WindowedSeries::new(origin, Duration::from_secs(1)).with_max_windows(8);
        for s in 0..100 {
            series.record(&at(origin, s, Outcome::Success, 1));
        }
        let w = series.windows();
        assert!(w.len() <= 8);
        assert_eq!(series.width(), Duration::from_secs(16));
        assert_eq!(w.iter().map(|w| w.requests).sum::<u64>(), 100);
        assert_eq!(w[0].requests, 16);
        assert_eq!(w[0].latency.count, 16);
    }
}
