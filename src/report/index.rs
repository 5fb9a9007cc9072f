//! A report's files under a directory ([`Report::write_all`]) and the directory's
//! [`INDEX`] (`index.md`), a table of every run found there.
//!
//! # Several processes at once
//!
//! Test binaries finish in parallel and share the directory. So:
//!
//! - every file is written to a temporary file in the same directory and renamed over its
//!   target: a reader sees the old file or the new one, never half of one;
//! - the index is not edited but **rebuilt** from the `*.json` reports present, under an
//!   exclusive lock on `.index.lock` in the directory ([`std::fs::File::lock`]): a process that
//!   rebuilds after writing its report sees its own report and every report whose writer took
//!   the lock before, so the last rebuild lists every run.
//!
//! JSON files that are not reports of this [`SCHEMA_VERSION`](super::SCHEMA_VERSION) are left
//! out of the table and counted below it.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use super::Report;
use crate::Error;

/// The index's file name.
pub const INDEX: &str = "index.md";

/// The lock file serializing index rebuilds.
const LOCK: &str = ".index.lock";

/// Chart kinds whose files may exist for a report (see [`charts`](super::charts)).
const CHART_KINDS: [&str; 5] = ["latency", "throughput", "serving", "server", "memory"];

impl Report {
    /// Writes `DIR/STEM.json`, `DIR/STEM.md`, `DIR/STEM.html` (the page for a browser, charts
    /// inline) and one `DIR/STEM-KIND.svg` per chart
    /// ([`charts`](Self::charts)), where `STEM` is [`file_stem`](Self::file_stem); removes the
    /// charts of an earlier run of the same name that this run does not have; then rebuilds
    /// `DIR/index.md` ([`rebuild_index`]). Creates `DIR` if needed.
    ///
    /// Returns the paths written, the index last.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when a file cannot be written or a chart cannot be drawn.
    pub fn write_all(&self, dir: &Path) -> crate::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let stem = self.file_stem();
        let charts = self.charts()?;
        let mut written = Vec::new();
        let mut put = |name: String, contents: &str| -> crate::Result<()> {
            let path = dir.join(name);
            write_atomic(&path, contents.as_bytes())?;
            written.push(path);
            Ok(())
        };
        put(format!("{stem}.md"), &self.markdown())?;
        put(format!("{stem}.html"), &self.html_with(&charts))?;
        for chart in &charts {
            put(chart.file_name(&stem), &chart.svg)?;
        }
        for kind in CHART_KINDS {
            if !charts.iter().any(|c| c.kind == kind) {
                let stale = dir.join(format!("{stem}-{kind}.svg"));
                match std::fs::remove_file(&stale) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(io(&stale)(e));
                    }
                    _ => {}
                }
            }
        }
        // The JSON goes last: the index lists a run once its JSON exists, and by then its other
        // files are in place.
        put(format!("{stem}.json"), &self.to_json())?;
        written.push(rebuild_index(dir)?);
        Ok(written)
    }
}

/// Rebuilds `dir/index.md` from the reports (`*.json`) in `dir` and returns its path.
///
/// The table has one row per report, sorted by name: name, target, `PASS`/`FAIL`/`NO CHECKS`
/// ([`Report::status`]), when its JSON was written (UTC) and links to its files.
///
/// # Errors
///
/// [`Error::Io`] when the directory cannot be read or the index cannot be written.
pub fn rebuild_index(dir: &Path) -> crate::Result<PathBuf> {
    let lock_path = dir.join(LOCK);
    let lock = File::create(&lock_path).map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;
    let mut json: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json") && p.is_file())
        .collect();
    json.sort();
    let mut rows = Vec::new();
    let mut skipped = 0_usize;
    for path in &json {
        match Report::read_json(path) {
            Ok(report) => rows.push((report, path)),
            Err(_) => skipped += 1,
        }
    }
    rows.sort_by(|a, b| a.0.name.cmp(&b.0.name).then(a.1.cmp(b.1)));
    let failed = rows.iter().filter(|(r, _)| r.status() == "FAIL").count();
    let mut s = String::from("# Stress reports\n\n");
    let _ = writeln!(
        s,
        "{} runs: {} passed, {} failed, {} inconclusive, {} not applicable, {} without checks.\n",
        rows.len(),
        rows.iter().filter(|(r, _)| r.passed()).count(),
        failed,
        rows.iter()
            .filter(|(r, _)| r.status() == "INCONCLUSIVE")
            .count(),
        rows.iter().filter(|(r, _)| r.status() == "N/A").count(),
        rows.iter().filter(|(r, _)| r.verdicts.is_empty()).count()
    );
    let _ = writeln!(s, "| run | target | verdict | written (UTC) | files |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    for (report, path) in &rows {
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {} |",
            report.name.replace('|', "\\|"),
            report.target,
            match report.status() {
                "FAIL" => "**FAIL**",
                "INCONCLUSIVE" => "**INCONCLUSIVE**",
                other => other,
            },
            written_at(path),
            links(dir, path)
        );
    }
    if skipped > 0 {
        let _ = writeln!(
            s,
            "\n{skipped} other JSON files here are not reports of this layout version."
        );
    }
    let index = dir.join(INDEX);
    write_atomic(&index, s.as_bytes())?;
    // Dropping the file releases the lock; unlocking first makes the order explicit.
    lock.unlock().map_err(io(&lock_path))?;
    Ok(index)
}

/// Links to the files of the report in `json`: html, md, json and svg files present beside it.
fn links(dir: &Path, json: &Path) -> String {
    let stem = json
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut links = Vec::new();
    if dir.join(format!("{stem}.html")).is_file() {
        links.push(format!("[html]({stem}.html)"));
    }
    if dir.join(format!("{stem}.md")).is_file() {
        links.push(format!("[md]({stem}.md)"));
    }
    links.push(format!("[json]({stem}.json)"));
    for kind in CHART_KINDS {
        if dir.join(format!("{stem}-{kind}.svg")).is_file() {
            links.push(format!("[{kind}]({stem}-{kind}.svg)"));
        }
    }
    links.join(" · ")
}

/// When `path` was last modified, as `YYYY-MM-DD HH:MM:SS` UTC; `?` when unknown.
fn written_at(path: &Path) -> String {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or_else(|| "?".to_owned(), |d| utc(d.as_secs()))
}

/// Seconds since the Unix epoch as a UTC date and time (proleptic Gregorian calendar).
fn utc(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, shifted to start eras on 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> crate::Result<()> {
    // Uniqueness only: no other memory is ordered by this counter.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path)(e));
    }
    Ok(())
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_767_225_599), "2025-12-31 23:59:59");
    }
}
