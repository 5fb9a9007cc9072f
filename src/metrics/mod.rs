//! Numbers only: records in, figures out.
//!
//! # Overview
//!
//! - [`RequestResult`] and [`Outcome`]: one record per request sent, and its class.
//! - [`LatencyHistogram`] → [`LatencySummary`]: latency distributions in fixed memory.
//! - [`MetricsCollector`] → [`LoadMetrics`]: streaming, mergeable run figures, including
//!   [`CacheStats`].
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
mod record;
mod serde_duration;

pub use cache::CacheStats;
pub use collector::{LoadMetrics, MetricsCollector, OutcomeCounts};
pub use histogram::{LatencyHistogram, LatencySummary};
pub use record::{Outcome, RequestResult};
