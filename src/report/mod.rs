//! [`Report`]: what a run measured and what the checks concluded, as text or JSON.
//!
//! The library never prints: callers choose [`Report::text`] or [`Report::to_json`] and where
//! to write them.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::checks::Verdict;
use crate::metrics::{Degradation, LatencySummary, LoadMetrics, MemoryTrend, Window};
use crate::{Error, GeneratorStats, MemorySample, SustainedLoadMetrics};

/// Version of the JSON layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// One run's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Layout version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The scenario or test name.
    pub name: String,
    /// The server's base URL.
    pub target: String,
    /// Settings that shaped the run (workers, rate, duration, server profile…).
    pub config: serde_json::Map<String, serde_json::Value>,
    /// Figures of the run's requests, if it ran load.
    pub metrics: Option<LoadMetrics>,
    /// How the generator kept up, if known.
    pub generator: Option<GeneratorStats>,
    /// Verdict of every check.
    pub verdicts: Vec<Verdict>,
    /// Time series of a sustained run: windows and server memory.
    pub series: Option<Series>,
    /// Other figures of the scenario (onset utilization, recovery time, per-profile numbers…).
    pub figures: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    /// An empty report for `name` against `target`.
    pub fn new(name: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            name: name.into(),
            target: target.into(),
            config: serde_json::Map::new(),
            metrics: None,
            generator: None,
            verdicts: Vec::new(),
            series: None,
            figures: serde_json::Map::new(),
        }
    }

    /// Records a setting.
    pub fn config(&mut self, key: &str, value: impl Serialize) -> &mut Self {
        self.config.insert(key.to_owned(), to_value(value));
        self
    }

    /// Records a figure.
    pub fn figure(&mut self, key: &str, value: impl Serialize) -> &mut Self {
        self.figures.insert(key.to_owned(), to_value(value));
        self
    }

    /// Adds verdicts.
    pub fn verdicts(&mut self, verdicts: impl IntoIterator<Item = Verdict>) -> &mut Self {
        self.verdicts.extend(verdicts);
        self
    }

    /// Whether every verdict passed (and there is at least one).
    pub fn passed(&self) -> bool {
        !self.verdicts.is_empty() && self.verdicts.iter().all(|v| v.passed)
    }

    /// The failed verdicts, one per line.
    pub fn failures(&self) -> String {
        crate::checks::failures(&self.verdicts)
    }

    /// A short human summary: counts, latency, throughput, cache, verdicts.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "== {} ({})", self.name, self.target);
        if let Some(m) = &self.metrics {
            let c = &m.counts;
            let _ = writeln!(
                s,
                "requests {} | ok {} | rejected {} ({:.1}%) | errors {} ({:.2}%) | statuses {:?}",
                m.total,
                c.success,
                m.rejected,
                m.rejection_rate * 100.0,
                m.errors,
                m.error_rate * 100.0,
                m.status_codes
            );
            let _ = writeln!(s, "latency ok   {}", line(&m.success_latency));
            if m.failure_latency.count > 0 {
                let _ = writeln!(s, "latency fail {}", line(&m.failure_latency));
            }
            if m.ttft.count > 0 {
                let _ = writeln!(s, "ttft         {}", line(&m.ttft));
            }
            let _ = writeln!(
                s,
                "throughput {:.1} req/s, {:.0} output tokens/s over {:.2} s",
                m.throughput_rps,
                m.output_tokens_per_s,
                m.duration.as_secs_f64()
            );
            if let Some(rate) = m.cache.request_hit_rate {
                let _ = writeln!(
                    s,
                    "cache hits {:.1}% of {} follow-ups; token hit rate {}",
                    rate * 100.0,
                    m.cache.eligible,
                    m.cache
                        .token_hit_rate
                        .map_or("n/a".to_owned(), |t| format!("{:.1}%", t * 100.0))
                );
            }
        }
        if let Some(g) = &self.generator
            && (g.saturated || g.late_slots > 0)
        {
            let _ = writeln!(
                s,
                "generator: timer lag p99 {:.2} ms, {} late slots{}",
                g.timer_lag_p99_ms,
                g.late_slots,
                if g.saturated {
                    " — GENERATOR SATURATED"
                } else {
                    ""
                }
            );
        }
        for (k, v) in &self.figures {
            let _ = writeln!(s, "{k}: {v}");
        }
        for v in &self.verdicts {
            let _ = writeln!(s, "{v}");
        }
        s
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialization cannot fail.
        serde_json::to_string_pretty(self).expect("report serializes")
    }

    /// Writes the JSON report to `path`, creating its directory.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the directory or file cannot be written.
    pub fn write_json(&self, path: &Path) -> crate::Result<()> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::write(path, self.to_json()).map_err(io)
    }
}

/// The time series of a run: latency and throughput per window, server memory samples and
/// their fitted trend.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// Windows in time order.
    pub windows: Vec<Window>,
    /// Server resident memory samples (offsets from the run's start).
    pub memory_samples: Vec<MemorySample>,
    /// Growth figures of the memory samples after warm-up.
    pub memory: Option<MemoryTrend>,
    /// Early vs late latency.
    pub degradation: Option<Degradation>,
}

impl Series {
    /// The series of a sustained run.
    pub fn of(s: &SustainedLoadMetrics) -> Self {
        Self {
            windows: s.windows.clone(),
            memory_samples: s.memory_samples.clone(),
            memory: s.memory,
            degradation: s.degradation,
        }
    }
}

fn line(l: &LatencySummary) -> String {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    format!(
        "n {} | p50 {:.1} ms | p90 {:.1} | p95 {:.1} | p99 {:.1} | max {:.1}",
        l.count,
        ms(l.p50),
        ms(l.p90),
        ms(l.p95),
        ms(l.p99),
        ms(l.max)
    )
}

fn to_value(value: impl Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}
