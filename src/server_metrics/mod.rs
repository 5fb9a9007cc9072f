//! The server's own counters during a run: its Prometheus `GET /metrics` read on an interval
//! ([`ServerScraper`]), parsed into [`ServerSample`]s by the names a [`ServerMetricNames`]
//! gives, and aligned to the report's time windows ([`ServerWindow`]).
//!
//! # Reading a sample
//!
//! The exposition text is parsed with `prom_text_format_parser`. For each configured name, the
//! samples whose metric name equals it exactly (labels ignored) are combined: a ratio gauge
//! (KV-cache usage) is the **mean** over its label sets (one per engine in vLLM), every other
//! figure the **sum**. A name absent from the text gives `None`, never 0. Values that are not
//! finite are ignored.
//!
//! # Windows
//!
//! A sample belongs to window `i` when `start_i ≤ at < start_i + width` (the offsets of samples
//! and windows share the run's origin). Per window: the mean and maximum of the gauges, and the
//! increase of each counter from the last sample before the window (or the window's first
//! sample) to the window's last sample; a counter that went down was reset (a restart), and its
//! increase is then its value after the reset. The server-side prefix-cache hit rate of a
//! window is `Δhits / Δqueries` (`None` when no query was counted).

mod scraper;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::metrics::Window;
use crate::metrics::serde_duration::secs;

pub use scraper::{ServerMetrics, ServerScraper};

/// The metric names read from the server's `/metrics`; `None` skips a figure.
///
/// The defaults are vLLM's (`vllm/v1/metrics/loggers.py`); other servers name them
/// differently (SGLang: `sglang:token_usage`, `sglang:num_running_reqs`,
/// `sglang:num_queue_reqs`; llama.cpp: `llamacpp:requests_processing`,
/// `llamacpp:requests_deferred`, no KV-cache or prefix-cache metric).
///
/// ```
/// use semantic_stress::ServerMetricNames;
///
/// let sglang = ServerMetricNames {
///     kv_cache_usage: Some("sglang:token_usage".into()),
///     requests_running: Some("sglang:num_running_reqs".into()),
///     requests_waiting: Some("sglang:num_queue_reqs".into()),
///     prefix_cache_hits: None,
///     prefix_cache_queries: None,
///     preemptions: Some("sglang:num_retracted_requests_total".into()),
/// };
/// assert_ne!(sglang, ServerMetricNames::default());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerMetricNames {
    /// KV-cache usage, a ratio gauge in `[0, 1]`.
    pub kv_cache_usage: Option<String>,
    /// Prefix-cache hits, a counter (vLLM counts tokens).
    pub prefix_cache_hits: Option<String>,
    /// Prefix-cache queries, a counter in the same unit as the hits.
    pub prefix_cache_queries: Option<String>,
    /// Requests running, a gauge.
    pub requests_running: Option<String>,
    /// Requests waiting in the server's queue, a gauge.
    pub requests_waiting: Option<String>,
    /// Preemptions, a counter.
    pub preemptions: Option<String>,
}

impl Default for ServerMetricNames {
    fn default() -> Self {
        let name = |n: &str| Some(n.to_owned());
        Self {
            kv_cache_usage: name("vllm:kv_cache_usage_perc"),
            prefix_cache_hits: name("vllm:prefix_cache_hits_total"),
            prefix_cache_queries: name("vllm:prefix_cache_queries_total"),
            requests_running: name("vllm:num_requests_running"),
            requests_waiting: name("vllm:num_requests_waiting"),
            preemptions: name("vllm:num_preemptions_total"),
        }
    }
}

/// One reading of the server's metrics; a figure the text did not have is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerSample {
    /// When the reply arrived, from the run's start.
    #[serde(rename = "at_s", with = "secs")]
    pub at: Duration,
    /// KV-cache usage, ratio in `[0, 1]`.
    pub kv_cache_usage: Option<f64>,
    /// Prefix-cache hits so far (counter).
    pub prefix_cache_hits: Option<f64>,
    /// Prefix-cache queries so far (counter).
    pub prefix_cache_queries: Option<f64>,
    /// Requests running.
    pub requests_running: Option<f64>,
    /// Requests waiting.
    pub requests_waiting: Option<f64>,
    /// Preemptions so far (counter).
    pub preemptions: Option<f64>,
}

impl ServerSample {
    /// Reads the configured figures from an exposition text taken at `at`; also says whether
    /// the text parsed whole (a line it could not read is reported, the rest still counts).
    pub fn parse(text: &str, names: &ServerMetricNames, at: Duration) -> (Self, Option<String>) {
        let (metrics, error) = prom_text_format_parser::parse_scrape(text);
        let read = |name: &Option<String>, mean: bool| -> Option<f64> {
            let name = name.as_deref()?;
            let values: Vec<f64> = metrics
                .iter()
                .filter(|m| m.name == name)
                .flat_map(|m| &m.samples)
                .filter(|s| s.value.value_type == prom_text_format_parser::ValueType::Sample)
                .filter_map(|s| s.value.value.parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .collect();
            if values.is_empty() {
                return None;
            }
            let sum: f64 = values.iter().sum();
            // Label sets are few (one per engine): the count is exact in f64.
            Some(if mean { sum / values.len() as f64 } else { sum })
        };
        let sample = Self {
            at,
            kv_cache_usage: read(&names.kv_cache_usage, true),
            prefix_cache_hits: read(&names.prefix_cache_hits, false),
            prefix_cache_queries: read(&names.prefix_cache_queries, false),
            requests_running: read(&names.requests_running, false),
            requests_waiting: read(&names.requests_waiting, false),
            preemptions: read(&names.preemptions, false),
        };
        (sample, error.map(|e| format!("{e:?}")))
    }

    /// Whether any configured figure was found.
    pub fn has_any(&self) -> bool {
        [
            self.kv_cache_usage,
            self.prefix_cache_hits,
            self.prefix_cache_queries,
            self.requests_running,
            self.requests_waiting,
            self.preemptions,
        ]
        .iter()
        .any(Option::is_some)
    }
}

/// The server's figures over one report window (see the [module docs](self#windows)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerWindow {
    /// The window's start, from the run's start.
    #[serde(rename = "start_s", with = "secs")]
    pub start: Duration,
    /// Samples in the window.
    pub samples: u64,
    /// Mean KV-cache usage (ratio).
    pub kv_cache_usage_mean: Option<f64>,
    /// Highest KV-cache usage (ratio).
    pub kv_cache_usage_max: Option<f64>,
    /// Mean requests running.
    pub requests_running_mean: Option<f64>,
    /// Mean requests waiting.
    pub requests_waiting_mean: Option<f64>,
    /// Most requests waiting.
    pub requests_waiting_max: Option<f64>,
    /// Prefix-cache hits counted in the window.
    pub prefix_cache_hits: Option<f64>,
    /// Prefix-cache queries counted in the window.
    pub prefix_cache_queries: Option<f64>,
    /// `prefix_cache_hits / prefix_cache_queries`; `None` without queries.
    pub prefix_cache_hit_rate: Option<f64>,
    /// Preemptions counted in the window.
    pub preemptions: Option<f64>,
}

/// The server's figures over a whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerSummary {
    /// Samples read.
    pub samples: u64,
    /// Highest KV-cache usage (ratio).
    pub kv_cache_usage_max: Option<f64>,
    /// Most requests running.
    pub requests_running_max: Option<f64>,
    /// Most requests waiting.
    pub requests_waiting_max: Option<f64>,
    /// Requests waiting in the last sample (after the load: the queue should be empty).
    pub requests_waiting_last: Option<f64>,
    /// Prefix-cache hit rate over the run: `Δhits / Δqueries` between the first and last
    /// samples.
    pub prefix_cache_hit_rate: Option<f64>,
    /// Prefix-cache queries counted over the run.
    pub prefix_cache_queries: Option<f64>,
    /// Preemptions over the run.
    pub preemptions: Option<f64>,
}

/// The increase of a counter between two readings; a decrease is a reset (the counter started
/// again from 0), so the increase is then the later reading.
fn increase(before: f64, after: f64) -> f64 {
    if after >= before {
        after - before
    } else {
        after
    }
}

/// The increase of the counter `field` over `samples` (in time order), from `before` (the last
/// reading preceding them) if given.
fn counter_increase(
    before: Option<&ServerSample>,
    samples: &[ServerSample],
    field: fn(&ServerSample) -> Option<f64>,
) -> Option<f64> {
    let mut previous = before.and_then(field);
    let mut total: Option<f64> = None;
    for v in samples.iter().filter_map(field) {
        if let Some(p) = previous {
            *total.get_or_insert(0.0) += increase(p, v);
        }
        previous = Some(v);
    }
    total.or_else(|| samples.iter().find_map(field).map(|_| 0.0))
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (n, sum) = values.fold((0_u32, 0.0), |(n, s), v| (n + 1, s + v));
    (n > 0).then(|| sum / f64::from(n))
}

fn max(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
}

fn rate(hits: Option<f64>, queries: Option<f64>) -> Option<f64> {
    match (hits, queries) {
        (Some(h), Some(q)) if q > 0.0 => Some(h / q),
        _ => None,
    }
}

/// The samples of each window (see the [module docs](self#windows)).
///
/// Time: O(windows + samples) for samples in time order.
pub(crate) fn align(samples: &[ServerSample], windows: &[Window]) -> Vec<ServerWindow> {
    windows
        .iter()
        .map(|w| {
            let end = w.start + w.width;
            let first = samples.partition_point(|s| s.at < w.start);
            let last = samples.partition_point(|s| s.at < end);
            let inside = &samples[first..last];
            let before = first.checked_sub(1).map(|i| &samples[i]);
            let hits = counter_increase(before, inside, |s| s.prefix_cache_hits);
            let queries = counter_increase(before, inside, |s| s.prefix_cache_queries);
            ServerWindow {
                start: w.start,
                samples: inside.len() as u64,
                kv_cache_usage_mean: mean(inside.iter().filter_map(|s| s.kv_cache_usage)),
                kv_cache_usage_max: max(inside.iter().filter_map(|s| s.kv_cache_usage)),
                requests_running_mean: mean(inside.iter().filter_map(|s| s.requests_running)),
                requests_waiting_mean: mean(inside.iter().filter_map(|s| s.requests_waiting)),
                requests_waiting_max: max(inside.iter().filter_map(|s| s.requests_waiting)),
                prefix_cache_hits: hits,
                prefix_cache_queries: queries,
                prefix_cache_hit_rate: rate(hits, queries),
                preemptions: counter_increase(before, inside, |s| s.preemptions),
            }
        })
        .collect()
}

/// The run's summary of `samples` (in time order).
pub(crate) fn summarize(samples: &[ServerSample]) -> ServerSummary {
    let hits = counter_increase(None, samples, |s| s.prefix_cache_hits);
    let queries = counter_increase(None, samples, |s| s.prefix_cache_queries);
    ServerSummary {
        samples: samples.len() as u64,
        kv_cache_usage_max: max(samples.iter().filter_map(|s| s.kv_cache_usage)),
        requests_running_max: max(samples.iter().filter_map(|s| s.requests_running)),
        requests_waiting_max: max(samples.iter().filter_map(|s| s.requests_waiting)),
        requests_waiting_last: samples.iter().rev().find_map(|s| s.requests_waiting),
        prefix_cache_hit_rate: rate(hits, queries),
        prefix_cache_queries: queries,
        preemptions: counter_increase(None, samples, |s| s.preemptions),
    }
}

#[cfg(test)]
mod tests;
