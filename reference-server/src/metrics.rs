//! `GET /metrics`: Prometheus text exposition.
//!
//! Counters of requests by method, route and status, a latency histogram (time to response
//! headers), and gauges read live when scraped: pool blocks and utilization, active agents,
//! cache-read tokens and the process's resident memory (from `/proc/self/status`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::stamp::TokenTimes;
use super::stats::Stats;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Request counters and the latency histogram.
#[derive(Debug)]
pub(crate) struct HttpMetrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    latency: Histogram,
    /// The server's own time to first token and inter-token gaps of streamed replies.
    pub(crate) tokens: TokenTimes,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Mutex::default(),
            latency: Histogram::new(&BUCKETS),
            tokens: TokenTimes::default(),
        }
    }
}

/// A fixed-bucket histogram of durations, lock-free, written in the Prometheus text format.
#[derive(Debug)]
pub(crate) struct Histogram {
    /// Upper bounds of the buckets, in seconds.
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last slot is `+Inf`.
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// An empty histogram with buckets up to each of `bounds` (seconds, ascending) and `+Inf`.
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Counts one observation. Counters are independent: `Relaxed` suffices.
    pub(crate) fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let slot = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Appends the histogram as `name`, with its help line.
    pub(crate) fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, "histogram", help);
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(self.buckets.iter()) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        // Microsecond sums stay far below 2^52 for any realistic run, so the conversion is exact.
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {}", self.count.load(Ordering::Relaxed));
    }
}

impl HttpMetrics {
    /// Counts one answered request. Counters are independent: `Relaxed` suffices.
    pub(crate) fn observe(
        &self,
        method: &'static str,
        route: &'static str,
        status: u16,
        took: Duration,
    ) {
        {
            let mut r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            *r.entry((method, route, status)).or_default() += 1;
        }
        self.latency.observe(took);
    }

    /// The exposition text, with gauges from `stats` and the resident memory `rss_bytes`.
    pub(crate) fn render(&self, stats: &Stats, rss_bytes: Option<u64>) -> String {
        let mut out = String::with_capacity(4096);
        header(
            &mut out,
            "semantic_request_total",
            "counter",
            "Requests answered, by method, route and status.",
        );
        {
            let r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            for ((method, path, status), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "semantic_request_total{{method=\"{method}\",path=\"{path}\",status_code=\"{status}\"}} {n}"
                );
            }
        }
        self.latency.render(
            &mut out,
            "semantic_request_duration_seconds",
            "Time from request to response headers.",
        );
        self.tokens.render(&mut out);
        let p = &stats.pool;
        gauge(
            &mut out,
            "semantic_pool_utilization_ratio",
            "Fraction of the block pool in use.",
            p.utilization,
        );
        gauge_u(
            &mut out,
            "semantic_pool_blocks_total",
            "Blocks in the pool.",
            p.total_blocks,
        );
        gauge_u(
            &mut out,
            "semantic_pool_blocks_used",
            "Blocks in use.",
            p.used_blocks,
        );
        let agents = u64::try_from(stats.agents.total_count).unwrap_or(u64::MAX);
        gauge_u(
            &mut out,
            "semantic_agents_active",
            "Agents holding a cache or a request.",
            agents,
        );
        let name = "semantic_cache_read_tokens_total";
        header(
            &mut out,
            name,
            "counter",
            "Prompt tokens reused from agents' caches.",
        );
        let _ = writeln!(out, "{name} {}", stats.cache_read_tokens);
        if let Some(rss) = rss_bytes {
            gauge_u(
                &mut out,
                "process_resident_memory_bytes",
                "Resident memory of the server.",
                rss,
            );
        }
        out
    }
}

/// What a serving engine exposes beside request counters: load, KV usage, prefix-cache hits,
/// preemptions.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ServingFigures {
    /// Sequences running.
    pub(crate) running: usize,
    /// Sequences waiting.
    pub(crate) waiting: usize,
    /// Fraction of the KV cache in use, 0–1.
    pub(crate) kv_usage: f64,
    /// Prompt tokens found in the cache.
    pub(crate) prefix_hits: u64,
    /// Prompt tokens looked up.
    pub(crate) prefix_queries: u64,
    /// Sequences preempted.
    pub(crate) preemptions: u64,
}

/// The families vLLM exports (`vllm/v1/metrics/loggers.py:452-620`) under `prefix`
/// (`vllm:`), each sample with `labels` (may be empty).
pub(crate) fn serving_families(prefix: &str, labels: &str, f: &ServingFigures) -> String {
    let mut out = String::with_capacity(1024);
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    // Counts far below 2^52: the conversions are exact.
    let families: [(&str, &str, &str, f64); 6] = [
        (
            "num_requests_running",
            "gauge",
            "Requests in the running batch.",
            f.running as f64,
        ),
        (
            "num_requests_waiting",
            "gauge",
            "Requests waiting to run.",
            f.waiting as f64,
        ),
        (
            "kv_cache_usage_perc",
            "gauge",
            "KV-cache usage. 1 means 100 percent usage.",
            f.kv_usage,
        ),
        (
            "prefix_cache_queries_total",
            "counter",
            "Prompt tokens looked up in the prefix cache.",
            f.prefix_queries as f64,
        ),
        (
            "prefix_cache_hits_total",
            "counter",
            "Prompt tokens found in the prefix cache.",
            f.prefix_hits as f64,
        ),
        (
            "num_preemptions_total",
            "counter",
            "Preemptions of running requests.",
            f.preemptions as f64,
        ),
    ];
    for (name, kind, help, value) in families {
        header(&mut out, &format!("{prefix}{name}"), kind, help);
        let _ = writeln!(out, "{prefix}{name}{braces} {value}");
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

fn gauge_u(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

/// Resident memory of this process, from the `VmRSS` line of `/proc/self/status`.
pub(crate) fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family() {
        let m = HttpMetrics::default();
        m.observe("POST", "/v1/messages", 200, Duration::from_millis(3));
        m.observe("POST", "/v1/messages", 429, Duration::from_secs(100));
        let text = m.render(&Stats::default(), Some(1024));
        for family in [
            "semantic_request_total{method=\"POST\",path=\"/v1/messages\",status_code=\"429\"} 1",
            "semantic_request_duration_seconds_bucket{le=\"0.005\"} 1",
            "semantic_request_duration_seconds_bucket{le=\"+Inf\"} 2",
            "semantic_request_duration_seconds_count 2",
            "semantic_pool_utilization_ratio 0",
            "semantic_pool_blocks_total 0",
            "semantic_pool_blocks_used 0",
            "semantic_agents_active 0",
            "semantic_cache_read_tokens_total 0",
            "process_resident_memory_bytes 1024",
        ] {
            assert!(text.contains(family), "missing {family}\n{text}");
        }
    }

    #[test]
    fn resident_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(resident_memory_bytes().is_some_and(|b| b > 0));
        }
    }
}
