//! Numbers only: records in, figures out.
//!
//! # Overview
//!
//! - [`RequestResult`] and [`Outcome`]: one record per request sent, and its class.
//! - [`LatencyHistogram`] → [`LatencySummary`]: latency distributions in fixed memory.
//! - [`MetricsCollector`] → [`LoadMetrics`]: streaming, mergeable run figures, including
//!   [`CacheStats`].
//! - [`fit_trend`] → [`Trend`], and [`MemoryTrend`] over [`MemorySample`](crate::MemorySample)s.
//!
//! # Percentiles
//!
//! Every percentile is HdrHistogram's `value_at_quantile(q)` over latencies truncated to whole
//! microseconds (1 µs .. 1 h, 3 significant digits): the nearest rank `⌈q·N⌉` (at least 1),
//! reported as the *highest equivalent value* of its bucket. It is never below the exact
//! nearest-rank value and exceeds it by less than 0.1% (1/1024). See [`LatencyHistogram`].

mod cache;
mod collector;
mod histogram;
mod memory_trend;
mod record;
pub(crate) mod serde_duration;
mod trend;

pub use cache::CacheStats;
pub use collector::{LoadMetrics, MetricsCollector, OutcomeCounts};
pub use histogram::{LatencyHistogram, LatencySummary};
pub use memory_trend::MemoryTrend;
pub use record::{Outcome, RequestResult};
pub use trend::{ConfidenceInterval, Trend, fit_trend};
