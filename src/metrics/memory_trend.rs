//! Whether a process's memory grows: [`MemoryTrend`] over [`MemorySample`]s.
//!
//! The definitions are stated in the [`metrics`](crate::metrics#memory-growth) module docs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::serde_duration::secs;
use super::trend::{ConfidenceInterval, Trend, fit_trend};

/// Seconds per hour, to express the slope in bytes per hour.
const SECS_PER_HOUR: f64 = 3600.0;

/// One reading of a process's resident memory (taken by the crate's samplers: by pid, or from a
/// server's `GET /metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemorySample {
    /// When it was read, since the sampler started (written to JSON as seconds).
    #[serde(rename = "at_s", with = "secs")]
    pub at: Duration,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
}

/// Growth figures of a memory series after its warm-up. See the [definitions](crate::metrics#memory-growth).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MemoryTrend {
    /// Samples after the warm-up.
    pub n_samples: usize,
    /// Samples before this offset were ignored.
    #[serde(rename = "warmup_s", with = "secs")]
    pub warmup: Duration,
    /// Time between the first and the last sample kept.
    #[serde(rename = "span_s", with = "secs")]
    pub span: Duration,
    /// RSS of the first sample kept.
    pub first_bytes: u64,
    /// RSS of the last sample.
    pub last_bytes: u64,
    /// Smallest RSS after the warm-up.
    pub min_bytes: u64,
    /// Largest RSS after the warm-up.
    pub max_bytes: u64,
    /// Mean RSS of the first tenth of the samples kept.
    pub head_mean_bytes: f64,
    /// Mean RSS of the last tenth of the samples.
    pub tail_mean_bytes: f64,
    /// `(tail_mean_bytes − head_mean_bytes) / head_mean_bytes`; 0.05 is 5% growth.
    pub relative_growth: f64,
    /// RSS in bytes against time in seconds: the slope is in bytes per second.
    pub trend: Trend,
    /// The slope in bytes per hour.
    pub slope_bytes_per_hour: f64,
    /// The slope's 95% confidence interval in bytes per hour.
    pub slope_ci_bytes_per_hour: ConfidenceInterval,
}

impl MemoryTrend {
    /// The growth figures of the samples taken at or after `warmup`.
    ///
    /// Returns `None` with fewer than 3 such samples, when they were all taken at the same
    /// time, or when the first tenth averages zero bytes (no growth ratio is defined).
    ///
    /// Time: O(n log n) (sorting a copy by time). Memory: O(n).
    pub fn from_samples(samples: &[MemorySample], warmup: Duration) -> Option<Self> {
        let mut kept: Vec<MemorySample> =
            samples.iter().filter(|s| s.at >= warmup).copied().collect();
        kept.sort_by_key(|s| s.at);
        let (first, last) = (*kept.first()?, *kept.last()?);
        let n = kept.len();
        let m = n.div_ceil(10).max(1);
        let head_mean_bytes = mean_bytes(&kept[..m]);
        let tail_mean_bytes = mean_bytes(&kept[n - m..]);
        if head_mean_bytes <= 0.0 {
            return None;
        }
        // RSS values stay far below 2^53 bytes, where u64 → f64 is exact.
        let points: Vec<(f64, f64)> = kept
            .iter()
            .map(|s| (s.at.as_secs_f64(), s.rss_bytes as f64))
            .collect();
        let trend = fit_trend(&points)?;
        Some(Self {
            n_samples: n,
            warmup,
            span: last.at - first.at,
            first_bytes: first.rss_bytes,
            last_bytes: last.rss_bytes,
            min_bytes: kept.iter().map(|s| s.rss_bytes).min()?,
            max_bytes: kept.iter().map(|s| s.rss_bytes).max()?,
            head_mean_bytes,
            tail_mean_bytes,
            relative_growth: (tail_mean_bytes - head_mean_bytes) / head_mean_bytes,
            trend,
            slope_bytes_per_hour: trend.slope * SECS_PER_HOUR,
            slope_ci_bytes_per_hour: trend.slope_ci.scaled(SECS_PER_HOUR),
        })
    }
}

/// Mean RSS of a non-empty slice of samples.
fn mean_bytes(samples: &[MemorySample]) -> f64 {
    // See above: exact conversions; the slice is non-empty, so the divisor is positive.
    samples.iter().map(|s| s.rss_bytes as f64).sum::<f64>() / samples.len() as f64
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng, rngs::StdRng};

    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    /// One sample per second for an hour: `base + growth·t/3600 ± noise` bytes, with a warm-up
    /// ramp from 10 MiB in the first minute.
    fn series(base: f64, growth_per_hour: f64, noise: f64) -> Vec<MemorySample> {
        let mut rng = StdRng::seed_from_u64(42);
        (0..3600_u64)
            .map(|t| {
                let warm = if t < 60 {
                    -50.0 * MIB * (1.0 - t as f64 / 60.0)
                } else {
                    0.0
                };
                let jitter = rng.random_range(-noise..=noise);
                let bytes = base + growth_per_hour * t as f64 / 3600.0 + jitter + warm;
                MemorySample {
                    at: Duration::from_secs(t),
                    rss_bytes: bytes as u64,
                }
            })
            .collect()
    }

    #[test]
    fn a_flat_series_shows_no_growth() {
        let samples = series(100.0 * MIB, 0.0, 2.0 * MIB);
        let trend = MemoryTrend::from_samples(&samples, Duration::from_secs(60)).unwrap();
        assert_eq!(trend.n_samples, 3540);
        assert!(trend.relative_growth.abs() < 0.01, "{trend:?}");
        assert!(trend.slope_ci_bytes_per_hour.contains(0.0), "{trend:?}");
        assert!(trend.min_bytes >= (98.0 * MIB) as u64);
    }

    #[test]
    fn a_leak_shows_as_growth_and_slope() {
        // 100 MiB growing by 20 MiB over the hour.
        let samples = series(100.0 * MIB, 20.0 * MIB, 2.0 * MIB);
        let trend = MemoryTrend::from_samples(&samples, Duration::from_secs(60)).unwrap();
        // Head ≈ 100 + 20·(60 + 177)/3600, tail ≈ 100 + 20·(3600 − 177)/3600 → ≈ 17.5% growth.
        assert!((0.15..0.20).contains(&trend.relative_growth), "{trend:?}");
        let per_hour = trend.slope_bytes_per_hour / MIB;
        assert!((19.0..21.0).contains(&per_hour), "{per_hour}");
        assert!(trend.slope_ci_bytes_per_hour.lower > 0.0);
        assert!(trend.last_bytes > trend.first_bytes);
    }

    #[test]
    fn the_warm_up_is_excluded() {
        let samples = series(100.0 * MIB, 0.0, 0.0);
        let with_warmup = MemoryTrend::from_samples(&samples, Duration::ZERO).unwrap();
        assert!(with_warmup.min_bytes < (60.0 * MIB) as u64);
        let without = MemoryTrend::from_samples(&samples, Duration::from_secs(60)).unwrap();
        assert_eq!(without.relative_growth, 0.0);
        assert_eq!(without.span, Duration::from_secs(3539));
    }

    #[test]
    fn too_few_samples_have_no_trend() {
        let samples = series(100.0 * MIB, 0.0, 0.0);
        assert!(MemoryTrend::from_samples(&samples[..2], Duration::ZERO).is_none());
        assert!(MemoryTrend::from_samples(&samples, Duration::from_secs(3599)).is_none());
    }
}
