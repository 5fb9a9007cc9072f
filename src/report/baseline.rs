//! Comparing a run with a saved baseline report: [`compare`] → [`Comparison`] and its
//! `baseline_regression` [`Verdict`].
//!
//! # Figures compared
//!
//! Each figure is a [`Delta`] `current − baseline`, absolute and relative
//! (`(current − baseline) / |baseline|`, `None` when the baseline is 0):
//!
//! - `p95_ms`, `p99_ms`: latency of successes ([`LoadMetrics::success_latency`]), in ms;
//! - `throughput_rps`: requests per second;
//! - `error_rate`: errors per request (rejections excluded), as a fraction;
//! - `memory_slope_bytes_per_hour`: the server memory trend of the run's [`Series`] after warm-up.
//!
//! A figure is `None` when either report lacks it (no load, no memory trend).
//!
//! # Regression rule
//!
//! With the default [`Tolerance`], the run **regressed** when any of these holds:
//!
//! - p95 or p99 grew by more than 20% **and** by more than 5 ms (both, so that a 1 ms → 2 ms
//!   change on an idle server and 5% noise on a slow one are not regressions);
//! - throughput dropped by more than 20%;
//! - the error rate rose by more than 1 percentage point (0.01);
//! - the memory slope grew by more than `memory_slope_bytes_per_hour`, when that limit is set
//!   (unset by default: the slope's confidence interval is wide on short runs, so the delta is
//!   shown but does not gate).
//!
//! Improvements never fail. When neither report has load figures, there is nothing to compare
//! and the verdict passes, saying so.
//!
//! # Choosing the baseline
//!
//! [`from_env`] reads [`ENV`] (`SEMANTIC_STRESS_BASELINE`): a report file, or a directory, in
//! which case the baseline is the file named after the current report
//! (`<dir>/<file_stem>.json`, see [`Report::file_stem`]): point it at a saved copy of
//! `target/stress-reports/` to compare a whole suite run with an earlier one.
//!
//! [`LoadMetrics::success_latency`]: crate::LoadMetrics::success_latency
//! [`Series`]: super::Series

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Report;
use crate::checks::{Check, Verdict};
use crate::metrics::serde_duration::millis;
use crate::{Error, LoadMetrics};

/// The environment variable naming the baseline: a report file or a directory of reports.
pub const ENV: &str = "SEMANTIC_STRESS_BASELINE";

/// The name of the verdict a comparison gives.
pub const CHECK: Check = Check::BaselineRegression;

/// How much worse than the baseline a run may be before it counts as a regression.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    /// Largest relative growth of p95 and p99 latency (0.20 = 20%).
    pub latency_relative: f64,
    /// Largest absolute growth of p95 and p99 latency; a regression must exceed both.
    #[serde(rename = "latency_absolute_ms", with = "millis")]
    pub latency_absolute: Duration,
    /// Largest relative drop of throughput (0.20 = 20%).
    pub throughput_relative: f64,
    /// Largest rise of the error rate, as a fraction of requests (0.01 = 1 percentage point).
    pub error_rate_points: f64,
    /// Largest growth of the memory slope in bytes per hour; `None` shows the delta without
    /// gating on it.
    pub memory_slope_bytes_per_hour: Option<f64>,
}

impl Default for Tolerance {
    fn default() -> Self {
        Self {
            latency_relative: 0.20,
            latency_absolute: Duration::from_millis(5),
            throughput_relative: 0.20,
            error_rate_points: 0.01,
            memory_slope_bytes_per_hour: None,
        }
    }
}

/// One figure in both runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// The baseline's value.
    pub baseline: f64,
    /// The current run's value.
    pub current: f64,
    /// `current − baseline`.
    pub absolute: f64,
    /// `(current − baseline) / |baseline|`; `None` when the baseline is 0.
    pub relative: Option<f64>,
}

impl Delta {
    /// The change from `baseline` to `current`.
    pub fn new(baseline: f64, current: f64) -> Self {
        Self {
            baseline,
            current,
            absolute: current - baseline,
            relative: (baseline != 0.0).then(|| (current - baseline) / baseline.abs()),
        }
    }
}

/// A run compared with its baseline. See the [module docs](self) for the figures and the rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The baseline report's name.
    pub baseline_name: String,
    /// The baseline report's target.
    pub baseline_target: String,
    /// The tolerance applied.
    pub tolerance: Tolerance,
    /// p95 latency of successes, in milliseconds.
    pub p95_ms: Option<Delta>,
    /// p99 latency of successes, in milliseconds.
    pub p99_ms: Option<Delta>,
    /// Requests per second.
    pub throughput_rps: Option<Delta>,
    /// Errors per request (a fraction).
    pub error_rate: Option<Delta>,
    /// Server memory slope after warm-up, in bytes per hour.
    pub memory_slope_bytes_per_hour: Option<Delta>,
    /// What regressed, one phrase each; empty when nothing did.
    pub regressions: Vec<String>,
    /// The `baseline_regression` verdict: passed when nothing regressed.
    pub verdict: Verdict,
}

impl Comparison {
    /// Whether the run regressed against its baseline.
    pub fn regressed(&self) -> bool {
        !self.regressions.is_empty()
    }
}

/// Compares `current` with `baseline` under `tolerance`.
///
/// # Example
///
/// ```
/// use semantic_stress::Report;
/// use semantic_stress::report::baseline::{Tolerance, compare};
///
/// let report = Report::new("smoke", "http://127.0.0.1:8000");
/// let same = compare(&report, &report.clone(), &Tolerance::default());
/// assert!(same.verdict.passed());
/// ```
pub fn compare(current: &Report, baseline: &Report, tolerance: &Tolerance) -> Comparison {
    let load = |f: fn(&LoadMetrics) -> f64| {
        Some(Delta::new(
            f(baseline.metrics.as_ref()?),
            f(current.metrics.as_ref()?),
        ))
    };
    let slope = |r: &Report| Some(r.series.as_ref()?.memory?.slope_bytes_per_hour);
    let mut c = Comparison {
        baseline_name: baseline.name.clone(),
        baseline_target: baseline.target.clone(),
        tolerance: *tolerance,
        p95_ms: load(|m| ms(m.success_latency.p95)),
        p99_ms: load(|m| ms(m.success_latency.p99)),
        throughput_rps: load(|m| m.throughput_rps),
        error_rate: load(|m| m.error_rate),
        memory_slope_bytes_per_hour: slope(baseline)
            .zip(slope(current))
            .map(|(b, c)| Delta::new(b, c)),
        regressions: Vec::new(),
        verdict: Verdict::new(CHECK, true, "", "", ""),
    };
    c.regressions = regressions(&c, tolerance);
    c.verdict = verdict(&c, tolerance);
    c
}

/// The comparison with the baseline named by [`ENV`], under the default [`Tolerance`];
/// `None` when the variable is unset or empty.
///
/// # Errors
///
/// [`Error::InvalidConfig`] (field `SEMANTIC_STRESS_BASELINE`) when the baseline file is
/// missing, unreadable or not a report; the message names the file.
pub fn from_env(current: &Report) -> Option<crate::Result<Comparison>> {
    let path = std::env::var_os(ENV).filter(|p| !p.is_empty())?;
    Some(load(Path::new(&path), current).map(|b| compare(current, &b, &Tolerance::default())))
}

/// Reads the baseline of `current` from `path`: the report file itself, or in a directory the
/// file named `<file_stem>.json` after `current`.
///
/// # Errors
///
/// [`Error::InvalidConfig`] (field `SEMANTIC_STRESS_BASELINE`) when the file is missing,
/// unreadable or not a report; the message names the file.
pub fn load(path: &Path, current: &Report) -> crate::Result<Report> {
    let invalid = |reason: String| Error::InvalidConfig { field: ENV, reason };
    let file: PathBuf = if path.is_dir() {
        let file = path.join(format!("{}.json", current.file_stem()));
        if !file.is_file() {
            return Err(invalid(format!(
                "no baseline for {:?} in {}: {} does not exist",
                current.name,
                path.display(),
                file.display()
            )));
        }
        file
    } else {
        path.to_owned()
    };
    Report::read_json(&file).map_err(|e| match e {
        Error::InvalidConfig { reason, .. } => invalid(reason),
        other => invalid(other.to_string()),
    })
}

/// The failed verdict of a comparison that could not be made.
pub(crate) fn unreadable(error: &Error) -> Verdict {
    Verdict::new(
        CHECK,
        false,
        "a readable baseline report",
        "n/a",
        format!("cannot compare with the baseline: {error}"),
    )
}

/// What regressed under `t`.
fn regressions(c: &Comparison, t: &Tolerance) -> Vec<String> {
    let mut out = Vec::new();
    let abs_ms = ms(t.latency_absolute);
    for (name, delta) in [("p95", c.p95_ms), ("p99", c.p99_ms)] {
        if let Some(d) = delta
            && d.absolute > abs_ms
            && d.current > d.baseline * (1.0 + t.latency_relative)
        {
            out.push(format!(
                "{name} {:.1} ms → {:.1} ms ({})",
                d.baseline,
                d.current,
                signed_pct(d.relative)
            ));
        }
    }
    if let Some(d) = c.throughput_rps
        && d.current < d.baseline * (1.0 - t.throughput_relative)
    {
        out.push(format!(
            "throughput {:.1} → {:.1} req/s ({})",
            d.baseline,
            d.current,
            signed_pct(d.relative)
        ));
    }
    if let Some(d) = c.error_rate
        && d.absolute > t.error_rate_points
    {
        out.push(format!(
            "error rate {:.2}% → {:.2}% ({:+.2} pt)",
            d.baseline * 100.0,
            d.current * 100.0,
            d.absolute * 100.0
        ));
    }
    if let (Some(d), Some(max)) = (c.memory_slope_bytes_per_hour, t.memory_slope_bytes_per_hour)
        && d.absolute > max
    {
        out.push(format!(
            "memory slope {:+.1} MiB/h more than the baseline",
            d.absolute / MIB
        ));
    }
    out
}

/// The verdict of a comparison whose regressions are known.
fn verdict(c: &Comparison, t: &Tolerance) -> Verdict {
    let threshold = format!(
        "p95/p99 ≤ +{:.0}% or ≤ +{:.1} ms; throughput ≥ −{:.0}%; error rate ≤ +{:.2} pt",
        t.latency_relative * 100.0,
        ms(t.latency_absolute),
        t.throughput_relative * 100.0,
        t.error_rate_points * 100.0
    );
    let mut measured = Vec::new();
    for (name, d) in [("p95", c.p95_ms), ("p99", c.p99_ms)] {
        if let Some(d) = d {
            measured.push(format!(
                "{name} {} ({:+.1} ms)",
                signed_pct(d.relative),
                d.absolute
            ));
        }
    }
    if let Some(d) = c.throughput_rps {
        measured.push(format!("throughput {}", signed_pct(d.relative)));
    }
    if let Some(d) = c.error_rate {
        measured.push(format!("error rate {:+.2} pt", d.absolute * 100.0));
    }
    if let Some(d) = c.memory_slope_bytes_per_hour {
        measured.push(format!("memory slope {:+.1} MiB/h", d.absolute / MIB));
    }
    let (measured, message) = if measured.is_empty() {
        (
            "n/a".to_owned(),
            format!("no load figures to compare with {:?}", c.baseline_name),
        )
    } else if c.regressions.is_empty() {
        (
            measured.join(", "),
            format!("no regression against {:?}", c.baseline_name),
        )
    } else {
        (
            measured.join(", "),
            format!(
                "regressed against {:?}: {}",
                c.baseline_name,
                c.regressions.join("; ")
            ),
        )
    };
    Verdict::new(
        CHECK,
        c.regressions.is_empty(),
        threshold,
        measured,
        message,
    )
}

const MIB: f64 = 1024.0 * 1024.0;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `+12.3%`, or `n/a` when the baseline was 0.
fn signed_pct(relative: Option<f64>) -> String {
    relative.map_or("n/a".to_owned(), |r| format!("{:+.1}%", r * 100.0))
}
