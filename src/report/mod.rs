//! [`Report`]: what a run measured and what the checks concluded, for people and for machines.
//!
//! # Overview
//!
//! - [`Report::text`]: a short plain-text summary for a test's output.
//! - [`Report::to_json`] / [`Report::from_json`]: the machine-readable report. Its layout is a
//!   contract, versioned by [`SCHEMA_VERSION`] and documented field by field in
//!   `docs/report-schema.md`.
//! - [`Report::markdown`]: a summary a person reads at a glance (verdict table, counts, latency,
//!   throughput, cache, generator, figures).
//! - [`Report::charts`]: SVG charts of a run's [`Series`] and server metrics (see [`charts`]).
//! - [`Report::html`]: one self-contained HTML page (charts inline, every verdict listed).
//! - [`Report::write_all`]: every file above under one directory, plus an `index.md` listing
//!   every run found there (see [`index`]).
//! - [`baseline`]: compares a report with a saved one and gives a `baseline_regression` verdict.
//! - [`progress`]: live progress lines of a long run, for the caller to opt into.
//!
//! The library never prints: callers choose the format and where to write it.

mod html;
mod markdown;
mod serving_charts;
mod text;

pub mod baseline;
pub mod charts;
pub mod index;
pub mod progress;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::checks::{Status, Verdict};
use crate::metrics::{Degradation, LoadMetrics, MemoryTrend, Window};
use crate::target::Cleanup;
use crate::{Error, GeneratorStats, MemorySample, ServerMetrics, SustainedLoadMetrics, Trust};

pub use baseline::Comparison;
pub use charts::Chart;

/// Version of the JSON layout; bumped on any incompatible change (a field removed, renamed or
/// retyped). Adding an optional field is compatible and keeps the version.
pub const SCHEMA_VERSION: u32 = 3;

/// One run's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Comparison with a saved baseline report, when one was made
    /// ([`Report::compare_with_baseline`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Comparison>,
    /// What the server's own `/metrics` said during the run, when it was read.
    pub server: Option<ServerMetrics>,
    /// Whether the run's timing can be trusted ([`Report::trust`]); written by
    /// [`to_json`](Self::to_json), absent in reports from before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<Trust>,
    /// What deleting the run's agents after it did ([`Target::delete_agents`]); absent when
    /// the run deleted none (or predates clean-up). Not part of the run's metrics.
    ///
    /// [`Target::delete_agents`]: crate::target::Target::delete_agents
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<Cleanup>,
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
            baseline: None,
            server: None,
            trust: None,
            cleanup: None,
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

    /// The run's outcome, [`Status::combine`] of its verdicts: a failure fails, a check that
    /// could not judge makes it inconclusive, a run without verdicts is inconclusive.
    pub fn outcome(&self) -> Status {
        Status::combine(self.verdicts.iter().map(|v| v.status))
    }

    /// Whether the run passed: every verdict passed or does not apply, and at least one passed.
    pub fn passed(&self) -> bool {
        self.outcome() == Status::Pass
    }

    /// `PASS`, `FAIL`, `INCONCLUSIVE`, `N/A`, or `NO CHECKS` when there is no verdict.
    pub fn status(&self) -> &'static str {
        if self.verdicts.is_empty() {
            "NO CHECKS"
        } else {
            self.outcome().label()
        }
    }

    /// The failed verdicts, one per line.
    pub fn failures(&self) -> String {
        crate::checks::failures(&self.verdicts)
    }

    /// Records what the server's `/metrics` said, aligned to this report's windows when it has
    /// a [`Series`].
    pub fn server_metrics(&mut self, mut server: ServerMetrics) -> &mut Self {
        if let Some(series) = &self.series {
            server.align_to(&series.windows);
        }
        self.server = Some(server);
        self
    }

    /// Records a comparison with a baseline: keeps it in [`baseline`](Self::baseline) and adds
    /// its `baseline_regression` verdict.
    pub fn compare_with_baseline(&mut self, comparison: Comparison) -> &mut Self {
        self.verdicts.push(comparison.verdict.clone());
        self.baseline = Some(comparison);
        self
    }

    /// Compares with the baseline named by the `SEMANTIC_STRESS_BASELINE` environment variable
    /// ([`baseline::from_env`]) and records the outcome; does nothing when the variable is unset.
    ///
    /// A baseline that cannot be read or parsed does not panic: it becomes a failed
    /// `baseline_regression` verdict whose message is the error, so the run still writes its
    /// report and says why the comparison was not made.
    pub fn compare_with_env_baseline(&mut self) -> &mut Self {
        match baseline::from_env(self) {
            None => self,
            Some(Ok(comparison)) => self.compare_with_baseline(comparison),
            Some(Err(e)) => self.verdicts([baseline::unreadable(&e)]),
        }
    }

    /// The file name stem of this report's files: the name with every character other than
    /// ASCII letters, digits, `-`, `_` and `.` replaced by `_`.
    pub fn file_stem(&self) -> String {
        self.name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        let mut report = self.clone();
        report.trust = Some(self.trust());
        // Plain data with string keys: serialization cannot fail.
        serde_json::to_string_pretty(&report).expect("report serializes")
    }

    /// Whether the run's timing can be trusted, judged from the harness's own figures
    /// ([`Trust::judge`]: the generator's figures and, in timing self-test mode, the error
    /// measured against the server's stamps).
    pub fn trust(&self) -> Trust {
        Trust::judge(
            self.generator.as_ref(),
            self.metrics.as_ref().and_then(|m| m.timing_errors.as_ref()),
        )
    }

    /// Reads a report written by [`to_json`](Self::to_json).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] (field `report`) when `json` is not a report or was written
    /// with another [`SCHEMA_VERSION`].
    pub fn from_json(json: &str) -> crate::Result<Self> {
        parse(json).map_err(|reason| Error::InvalidConfig {
            field: "report",
            reason,
        })
    }

    /// Reads the report in the file `path`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read, [`Error::InvalidConfig`] when it is not a
    /// report of this [`SCHEMA_VERSION`] (the message names the file).
    pub fn read_json(path: &Path) -> crate::Result<Self> {
        let json = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        parse(&json).map_err(|reason| Error::InvalidConfig {
            field: "report",
            reason: format!("{}: {reason}", path.display()),
        })
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Series {
    /// Windows in time order.
    pub windows: Vec<Window>,
    /// Server resident memory samples (offsets from the run's start).
    pub memory_samples: Vec<MemorySample>,
    /// Growth figures of the memory samples after warm-up.
    pub memory: Option<MemoryTrend>,
    /// Early vs late latency.
    pub degradation: Option<Degradation>,
    /// Growth of the harness's own memory after warm-up, when it was sampled.
    #[serde(default)]
    pub harness_memory: Option<MemoryTrend>,
}

impl Series {
    /// The series of a sustained run.
    pub fn of(s: &SustainedLoadMetrics) -> Self {
        Self {
            windows: s.windows.clone(),
            memory_samples: s.memory_samples.clone(),
            memory: s.memory,
            degradation: s.degradation,
            harness_memory: s.harness_memory,
        }
    }
}

/// Parses a report, checking its layout version first so that the message says why.
fn parse(json: &str) -> Result<Report, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    match value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64)
    {
        Some(v) if v == u64::from(SCHEMA_VERSION) => {}
        Some(v) => {
            return Err(format!(
                "schema_version {v}, this build reads {SCHEMA_VERSION}"
            ));
        }
        None => return Err("no schema_version: not a report".to_owned()),
    }
    serde_json::from_value(value).map_err(|e| format!("not a report: {e}"))
}

fn to_value(value: impl Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}
