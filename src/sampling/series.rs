//! [`Series`]: the bounded samples of one [`Periodic`](super::Periodic) sampler, kept by a
//! stated [`Retention`] policy.

use std::time::Duration;

/// Samples allocated up front by a decimating series (its capacity when smaller): over an hour
/// at one sample per second, so that a sustained run's own memory stays flat.
const PREALLOCATED: usize = 4096;

/// Which samples a [`Series`] keeps once it is full. Either way it never holds more than
/// `capacity` samples (at least 2 when decimating).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retention {
    /// Keeps samples evenly spaced over the whole run: when a new sample would exceed
    /// `capacity`, every other sample is dropped (the first is kept) and the interval doubles.
    /// A run at 1 s with a capacity of 4096 is decimated only after 68 minutes.
    ///
    /// For series judged as a whole over time (memory trends).
    Decimate {
        /// Samples kept at most (raised to 2).
        capacity: usize,
    },
    /// Keeps the first `capacity` samples in the order read; later ones are counted, and the
    /// newest is still [`latest`](Series::latest).
    ///
    /// For records that must stay as read (probes); `capacity: 0` keeps only the latest.
    KeepFirst {
        /// Samples kept at most.
        capacity: usize,
    },
}

/// A bounded series of samples taken every [`interval`](Self::interval).
///
/// Memory: O(capacity).
#[derive(Debug, Clone)]
pub(crate) struct Series<T> {
    samples: Vec<T>,
    /// The newest sample when it was not kept (`KeepFirst` past its capacity).
    newest_not_kept: Option<T>,
    not_kept: u64,
    retention: Retention,
    interval: Duration,
}

impl<T> Series<T> {
    /// An empty series of samples taken every `interval`, kept by `retention`.
    pub(crate) fn new(retention: Retention, interval: Duration) -> Self {
        let retention = match retention {
            Retention::Decimate { capacity } => Retention::Decimate {
                capacity: capacity.max(2),
            },
            keep @ Retention::KeepFirst { .. } => keep,
        };
        let preallocated = match retention {
            Retention::Decimate { capacity } => capacity.min(PREALLOCATED),
            Retention::KeepFirst { .. } => 0,
        };
        Self {
            samples: Vec::with_capacity(preallocated),
            newest_not_kept: None,
            not_kept: 0,
            retention,
            interval,
        }
    }

    /// Adds a sample by the retention policy.
    ///
    /// Time: O(1) amortized (a decimation is O(capacity) and halves the series).
    pub(crate) fn push(&mut self, sample: T) {
        match self.retention {
            Retention::Decimate { capacity } => {
                if self.samples.len() >= capacity {
                    let mut index = 0;
                    self.samples.retain(|_| {
                        index += 1;
                        index % 2 == 1
                    });
                    self.interval = self.interval.saturating_mul(2);
                }
                self.samples.push(sample);
            }
            Retention::KeepFirst { capacity } => {
                if self.samples.len() < capacity {
                    self.samples.push(sample);
                } else {
                    self.newest_not_kept = Some(sample);
                    self.not_kept += 1;
                }
            }
        }
    }

    /// The interval between kept samples: the sampler's, doubled at each decimation.
    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// The samples kept, oldest first.
    pub(crate) fn samples(&self) -> &[T] {
        &self.samples
    }

    /// The newest sample, kept or not.
    pub(crate) fn latest(&self) -> Option<&T> {
        self.newest_not_kept.as_ref().or(self.samples.last())
    }

    /// Samples read but not kept (`KeepFirst` past its capacity; always 0 when decimating).
    pub(crate) fn not_kept(&self) -> u64 {
        self.not_kept
    }

    /// The samples kept, leaving the series empty.
    pub(crate) fn take_samples(&mut self) -> Vec<T> {
        std::mem::take(&mut self.samples)
    }

    /// The whole series, leaving an empty one with the same retention and interval.
    pub(crate) fn take(&mut self) -> Self {
        let empty = Self::new(self.retention, self.interval);
        std::mem::replace(self, empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimation_keeps_every_other_sample() {
        let mut series = Series::new(Retention::Decimate { capacity: 4 }, Duration::from_secs(1));
        for i in 0..5 {
            series.push(i);
        }
        assert_eq!(series.samples(), [0, 2, 4]);
        assert_eq!(series.interval(), Duration::from_secs(2));
        assert_eq!(series.latest(), Some(&4));
        assert_eq!(series.not_kept(), 0);
    }

    #[test]
    fn keep_first_counts_the_rest_and_knows_the_newest() {
        let mut series = Series::new(Retention::KeepFirst { capacity: 2 }, Duration::from_secs(1));
        for i in 0..5 {
            series.push(i);
        }
        assert_eq!(series.samples(), [0, 1]);
        assert_eq!(series.not_kept(), 3);
        assert_eq!(series.latest(), Some(&4));
        assert_eq!(series.interval(), Duration::from_secs(1));
        assert_eq!(series.take_samples(), [0, 1]);
        assert!(series.samples().is_empty());
    }

    #[test]
    fn keep_none_still_has_a_latest() {
        let mut series = Series::new(Retention::KeepFirst { capacity: 0 }, Duration::from_secs(1));
        assert_eq!(series.latest(), None);
        series.push('a');
        series.push('b');
        assert!(series.samples().is_empty());
        assert_eq!(series.latest(), Some(&'b'));
    }
}
