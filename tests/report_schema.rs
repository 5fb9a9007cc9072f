//! The report formats are contracts: the JSON matches `docs/report-schema.md` field by field and
//! reads back unchanged; `write_all` writes the Markdown, the SVG charts and an index listing
//! the run; a baseline comparison flags a doubled p95 and passes an identical run.
//!
//! Ungated and fast (synthetic data, no server): `cargo test --test report_schema`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use semantic_stress::anthropic::Usage;
use semantic_stress::checks::{self, Check, Verdict};
use semantic_stress::metrics::{
    MemoryTrend, MetricsCollector, Outcome, RequestResult, TimingTruth, WindowedSeries,
};
use semantic_stress::report::baseline::{self, Tolerance};
use semantic_stress::report::charts::{
    LATENCY_SERIES, MEMORY_SERIES, SERVER_SERIES, SERVING_SERIES, THROUGHPUT_SERIES,
};
use semantic_stress::report::{SCHEMA_VERSION, Series};
use semantic_stress::target::Cleanup;
use semantic_stress::{
    GeneratorStats, MemorySample, Report, ServerMetricNames, ServerMetrics, ServerSample,
};
use serde_json::Value;

/// The schema document the JSON is checked against.
const SCHEMA_DOC: &str = include_str!("../docs/report-schema.md");

/// Length of the synthetic run.
const RUN: Duration = Duration::from_secs(600);
/// One request every this many milliseconds.
const SPACING_MS: u64 = 500;
/// Window width of the synthetic series.
const WINDOW: Duration = Duration::from_secs(30);
/// Memory growth of the synthetic server, MiB per hour.
const GROWTH_MIB_PER_HOUR: f64 = 60.0;
const MIB: f64 = 1024.0 * 1024.0;

// ---------------------------------------------------------------------------------------------
// Synthetic runs

/// A sustained-looking run of `RUN` whose success latency is about `20–45 ms × scale` with a
/// slow tail, a burst of rejections in the middle, a few errors, and a server whose memory grows
/// by `GROWTH_MIB_PER_HOUR` after a warm-up ramp.
fn synthetic(name: &str, scale: f64) -> Report {
    let origin = Instant::now();
    let mut collector = MetricsCollector::new();
    let mut windows = WindowedSeries::new(origin, WINDOW).with_seed(7);
    let n = RUN.as_millis() as u64 / SPACING_MS;
    for i in 0..n {
        let at = origin + Duration::from_millis(i * SPACING_MS);
        let t = i as f64 / n as f64;
        let jitter = (i * 7919 % 100) as f64 / 10.0;
        let tail = if i % 25 == 0 { 3.0 } else { 1.0 };
        let ms = (20.0 + 15.0 * t + jitter) * tail * scale;
        let mut r = RequestResult::pending(at, at);
        r.finished_at = at + Duration::from_secs_f64(ms / 1000.0);
        let rejecting = (0.45..0.55).contains(&t) && i % 3 == 0;
        if rejecting {
            r.outcome = Outcome::Rejected;
            r.status = 429;
            r.retry_after = Some(Duration::from_secs(1));
            r.finished_at = at + Duration::from_millis(2);
        } else if i % 97 == 0 {
            r.outcome = Outcome::ServerError;
            r.status = 500;
        } else {
            r.outcome = Outcome::Success;
            r.status = 200;
            // A streamed reply: 40 deltas from a quarter of the latency to the end.
            r.streamed = true;
            let first = at + Duration::from_secs_f64(ms / 4000.0);
            let gap = (r.finished_at - first) / 39;
            let mut truth = TimingTruth::default();
            for k in 0..40 {
                r.delta_arrived(first + gap * k, Duration::from_secs(1));
                // The server wrote each delta 300 µs (plus a little jitter) before it was read.
                let written = first + gap * k - Duration::from_micros(300 + (k as u64 % 3) * 50);
                truth.observe(
                    (first + gap * k) - at,
                    Some(written.saturating_duration_since(at)),
                );
            }
            r.truth = Some(Box::new(truth));
            r.turn = Some(1 + (i % 5) as u32);
            r.usage = Some(Usage {
                input_tokens: 400,
                output_tokens: 40,
                cache_read_input_tokens: if i % 5 == 0 { 0 } else { 300 },
                ..Usage::default()
            });
        }
        collector.record(&r);
        windows.record(&r);
    }
    let samples: Vec<MemorySample> = (0..=RUN.as_secs() / 5)
        .map(|k| {
            let s = (k * 5) as f64;
            let warm = if s < 40.0 {
                -30.0 * (1.0 - s / 40.0)
            } else {
                0.0
            };
            let noise = ((k * 31 % 17) as f64 - 8.0) / 8.0;
            let mib = 120.0 + GROWTH_MIB_PER_HOUR * s / 3600.0 + warm + noise;
            MemorySample {
                at: Duration::from_secs(k * 5),
                rss_bytes: (mib * MIB) as u64,
            }
        })
        .collect();
    let metrics = collector.metrics();
    let mut report = Report::new(name, "http://127.0.0.1:8000");
    report
        .config("duration_s", RUN.as_secs_f64())
        .config("rate_per_s", 1000.0 / SPACING_MS as f64)
        .config("profile", "synthetic")
        .figure("note", "synthetic | with a pipe");
    report.verdicts([
        checks::error_rate(&metrics, 0.05),
        checks::latency_p95(&metrics, Duration::from_millis(500)),
        Verdict::new(Check::Completed, true, "< 1", "0", "multi\nline | message").about("custom"),
    ]);
    report.generator = Some(GeneratorStats {
        slots: n,
        late_slots: 3,
        timer_lag_p50_ms: 0.1,
        timer_lag_p99_ms: 0.9,
        timer_lag_max_ms: 4.2,
        saturated: false,
        cancelled_workers: 0,
        busy_share: Some(0.42),
        wake_lag_p99_ms: Some(0.3),
        wake_lag_max_ms: Some(1.7),
        cpu_s: Some(12.5),
        cpu_share: Some(0.35),
    });
    report.series = Some(Series {
        windows: windows.windows(),
        memory: MemoryTrend::from_samples(&samples, Duration::from_secs(60)),
        harness_memory: MemoryTrend::from_samples(&samples, Duration::from_secs(60)),
        memory_samples: samples,
        degradation: windows.degradation(3),
    });
    report.metrics = Some(metrics);
    report.cleanup = Some(Cleanup {
        agents: 12,
        deleted: 9,
        already_gone: 2,
        failed: 1,
        not_sent: 0,
        first_failure: Some("DELETE /v1/agents/sess_a-3: status 500".to_owned()),
        took: Duration::from_millis(35),
        budget: Duration::from_secs(10),
        concurrency: 8,
        skipped: None,
    });
    let server: Vec<ServerSample> = (0..=RUN.as_secs() / 10)
        .map(|k| ServerSample {
            at: Duration::from_secs(k * 10),
            kv_cache_usage: Some(0.3 + 0.5 * (k % 7) as f64 / 7.0),
            prefix_cache_hits: Some((k * 80) as f64),
            prefix_cache_queries: Some((k * 100) as f64),
            requests_running: Some((k % 5) as f64),
            requests_waiting: Some((k % 3) as f64),
            preemptions: None,
        })
        .collect();
    report.server_metrics(ServerMetrics::from_samples(
        ServerMetricNames::default(),
        Duration::from_secs(10),
        server,
    ));
    report
}

/// A synthetic run with a baseline comparison recorded (so the JSON has every object).
fn compared() -> Report {
    let mut report = synthetic("soak", 1.0);
    let base = synthetic("soak", 1.0);
    let c = baseline::compare(&report, &base, &Tolerance::default());
    report.compare_with_baseline(c);
    report
}

// ---------------------------------------------------------------------------------------------
// The documented schema

/// One documented field: its JSON type, whether `null` is allowed and whether it may be absent.
#[derive(Debug)]
struct Field {
    ty: String,
    nullable: bool,
    optional: bool,
}

/// The `### Object` tables of the schema document: object → field → type.
fn documented() -> BTreeMap<String, BTreeMap<String, Field>> {
    let mut objects = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in SCHEMA_DOC.lines() {
        if let Some(name) = line.strip_prefix("### ") {
            current = Some(name.trim().to_owned());
            objects.insert(name.trim().to_owned(), BTreeMap::new());
            continue;
        }
        let (Some(object), Some(row)) = (&current, line.strip_prefix("| `")) else {
            continue;
        };
        let cells: Vec<&str> = row.split(" | ").collect();
        let field = cells[0].trim_end_matches('`').to_owned();
        let spec = cells[1].trim();
        let optional = spec.ends_with(", optional");
        let spec = spec.trim_end_matches(", optional");
        let nullable = spec.ends_with(" or null");
        let ty = spec.trim_end_matches(" or null").to_owned();
        let fields: &mut BTreeMap<String, Field> = objects.get_mut(object).expect("section");
        fields.insert(
            field,
            Field {
                ty,
                nullable,
                optional,
            },
        );
    }
    objects
}

/// Checks `value` against the documented type `ty` at `path`, recursing into documented objects.
fn check(
    value: &Value,
    ty: &str,
    docs: &BTreeMap<String, BTreeMap<String, Field>>,
    path: &str,
    errors: &mut Vec<String>,
) {
    let ok = match ty {
        "integer" => value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        _ => {
            if let Some(item) = ty.strip_prefix("array of ") {
                match value.as_array() {
                    Some(items) => {
                        for (i, v) in items.iter().enumerate() {
                            check(v, item, docs, &format!("{path}[{i}]"), errors);
                        }
                        true
                    }
                    None => false,
                }
            } else {
                let Some(fields) = docs.get(ty) else {
                    errors.push(format!("{path}: type {ty:?} is not documented"));
                    return;
                };
                let Some(map) = value.as_object() else {
                    errors.push(format!("{path}: expected a {ty} object, got {value}"));
                    return;
                };
                for key in map.keys() {
                    if !fields.contains_key(key) {
                        errors.push(format!("{path}.{key}: not documented in {ty}"));
                    }
                }
                for (key, f) in fields {
                    match map.get(key) {
                        None if f.optional => {}
                        None => errors.push(format!("{path}.{key}: missing")),
                        Some(Value::Null) if f.nullable => {}
                        Some(v) => check(v, &f.ty, docs, &format!("{path}.{key}"), errors),
                    }
                }
                true
            }
        }
    };
    if !ok {
        errors.push(format!("{path}: expected {ty}, got {value}"));
    }
}

/// Every documented object type reached from `Report` in `value`.
fn reached(
    value: &Value,
    ty: &str,
    docs: &BTreeMap<String, BTreeMap<String, Field>>,
) -> Vec<String> {
    let mut out = vec![ty.to_owned()];
    let Some(fields) = docs.get(ty) else {
        return out;
    };
    for (key, f) in fields {
        let Some(v) = value.get(key).filter(|v| !v.is_null()) else {
            continue;
        };
        let item = f.ty.strip_prefix("array of ").unwrap_or(&f.ty);
        if docs.contains_key(item) {
            match v.as_array() {
                Some(items) => items
                    .iter()
                    .take(1)
                    .for_each(|i| out.extend(reached(i, item, docs))),
                None => out.extend(reached(v, item, docs)),
            }
        }
    }
    out
}

#[test]
fn json_matches_the_documented_schema() {
    let report = compared();
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    let docs = documented();
    assert!(docs.len() >= 15, "schema tables parsed: {:?}", docs.keys());
    let mut errors = Vec::new();
    check(&json, "Report", &docs, "report", &mut errors);
    assert!(
        errors.is_empty(),
        "schema mismatches:\n{}",
        errors.join("\n")
    );
    assert_eq!(json["schema_version"], SCHEMA_VERSION);
    // The trust line is in the JSON, the text summary and the Markdown report alike.
    let line = report.trust().line();
    assert!(
        line.starts_with("measurement trustworthy: yes — "),
        "{line}"
    );
    assert_eq!(json["trust"]["trustworthy"], true);
    assert!(report.text().contains(&line), "{}", report.text());
    assert!(report.markdown().contains(&line));
    // So is the cleanup summary.
    let cleanup = report.cleanup.as_ref().unwrap().to_string();
    assert!(cleanup.contains("12 agents: 9 deleted, 2 already gone, 1 failed"));
    assert!(report.text().contains(&cleanup) && report.markdown().contains(&cleanup));
    // The synthetic report reaches every documented object, so no table goes unchecked.
    let seen = reached(&json, "Report", &docs);
    let unseen: Vec<_> = docs.keys().filter(|k| !seen.contains(k)).collect();
    assert!(
        unseen.is_empty(),
        "documented but never checked: {unseen:?}"
    );
}

/// Whether two JSON values are equal, numbers within a relative 1e-12: serde_json's default
/// float parser may be off by one unit in the last place, and durations written as fractional
/// ms or s are read back to the nanosecond.
fn same(a: &Value, b: &Value, path: &str, errors: &mut Vec<String>) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            if (x - y).abs() > 1e-12 * x.abs().max(y.abs()) {
                errors.push(format!("{path}: {x} != {y}"));
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                same(x, y, &format!("{path}[{i}]"), errors);
            }
        }
        (Value::Object(x), Value::Object(y)) if x.len() == y.len() => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => same(v, w, &format!("{path}.{k}"), errors),
                    None => errors.push(format!("{path}.{k}: missing")),
                }
            }
        }
        _ if a == b => {}
        _ => errors.push(format!("{path}: {a} != {b}")),
    }
}

#[test]
fn json_reads_back_unchanged() {
    let report = compared();
    let json = report.to_json();
    let back = Report::from_json(&json).expect("the report reads back");
    let (a, b): (Value, Value) = (
        serde_json::from_str(&json).unwrap(),
        serde_json::from_str(&back.to_json()).unwrap(),
    );
    let mut errors = Vec::new();
    same(&a, &b, "report", &mut errors);
    assert!(
        errors.is_empty(),
        "changed on the way back:\n{}",
        errors.join("\n")
    );
    assert_eq!(back.verdicts, report.verdicts);
    assert_eq!(
        back.baseline.unwrap().regressions,
        report.baseline.unwrap().regressions
    );
    assert_eq!(
        back.series.unwrap().memory_samples,
        report.series.unwrap().memory_samples
    );
}

#[test]
fn other_layouts_are_refused_with_a_reason() {
    let mut json: Value = serde_json::from_str(&synthetic("x", 1.0).to_json()).unwrap();
    json["schema_version"] = Value::from(SCHEMA_VERSION + 1);
    let err = Report::from_json(&json.to_string())
        .unwrap_err()
        .to_string();
    assert!(err.contains("schema_version"), "{err}");
    let err = Report::from_json("{\"rows\": []}").unwrap_err().to_string();
    assert!(err.contains("not a report"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Files

/// The text of every `<text>` element of an SVG document.
fn svg_texts(svg: &str) -> Vec<&str> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0))
        .collect()
}

#[test]
fn write_all_writes_markdown_charts_and_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let report = compared();
    let mut failing = synthetic("failing run", 1.0);
    failing.verdicts([Verdict::new(
        Check::MemoryGrowth,
        false,
        "< 5%",
        "12%",
        "grew",
    )]);
    // Another JSON file in the directory must not break the index.
    std::fs::write(dir.path().join("other.json"), "{\"rows\": []}").unwrap();

    let written = report.write_all(dir.path()).expect("write the report");
    failing
        .write_all(dir.path())
        .expect("write the second report");
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "soak.json",
        "soak.md",
        "soak-latency.svg",
        "soak-throughput.svg",
        "soak-memory.svg",
        "soak-serving.svg",
        "soak-server.svg",
        "soak.html",
        "index.md",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }

    let json = std::fs::read_to_string(dir.path().join("soak.json")).unwrap();
    assert_eq!(json, report.to_json());
    Report::from_json(&json).expect("the written report reads back");

    let md = std::fs::read_to_string(dir.path().join("soak.md")).unwrap();
    for needle in [
        "# soak — PASS",
        "| PASS | `error_rate` |",
        "| successes |",
        "## Throughput",
        "## Cache",
        "## Generator",
        "## Against baseline",
        "multi<br>line \\| message",
        "(soak-memory.svg)",
    ] {
        assert!(md.contains(needle), "{needle:?} not in the Markdown:\n{md}");
    }

    for (kind, labels) in [
        ("latency", &LATENCY_SERIES[..]),
        ("throughput", &THROUGHPUT_SERIES[..]),
        ("memory", &MEMORY_SERIES[..]),
        ("serving", &SERVING_SERIES[..]),
        ("server", &SERVER_SERIES[..]),
    ] {
        let svg = std::fs::read_to_string(dir.path().join(format!("soak-{kind}.svg"))).unwrap();
        let head = svg.trim_start();
        assert!(
            head.starts_with("<svg") || head.starts_with("<?xml"),
            "{kind}: {head:.60}"
        );
        assert!(svg.trim_end().ends_with("</svg>"), "{kind}: not closed");
        assert_eq!(svg.matches("<svg").count(), 1, "{kind}");
        let texts = svg_texts(&svg);
        for label in labels {
            assert!(
                texts.iter().any(|t| t.contains(label)),
                "{kind}: no legend label {label:?} in {texts:?}"
            );
        }
        let lines = svg.matches("<polyline").count() + svg.matches("<path").count();
        assert!(
            lines >= labels.len(),
            "{kind}: {lines} lines for {labels:?}"
        );
    }

    let index = std::fs::read_to_string(dir.path().join("index.md")).unwrap();
    let row = |name: &str| {
        index
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
    };
    let soak = row("soak").unwrap_or_else(|| panic!("soak not listed:\n{index}"));
    assert!(
        soak.contains("| PASS |") && soak.contains("[md](soak.md)"),
        "{soak}"
    );
    assert!(soak.contains("[latency](soak-latency.svg)"), "{soak}");
    assert!(soak.contains("[html](soak.html)"), "{soak}");
    let failing = row("failing run").unwrap_or_else(|| panic!("failing run not listed:\n{index}"));
    assert!(failing.contains("**FAIL**") && failing.contains("[json](failing_run.json)"));
    assert!(index.contains("2 runs: 1 passed, 1 failed"), "{index}");
    assert!(index.contains("1 other JSON files"), "{index}");
}

#[test]
fn runs_finishing_together_are_all_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let mut base = synthetic("run", 1.0);
    base.series = None;
    std::thread::scope(|scope| {
        for i in 0..8 {
            let (dir, mut report) = (dir.path(), base.clone());
            report.name = format!("run-{i}");
            scope.spawn(move || report.write_all(dir).expect("write the report"));
        }
    });
    let index = std::fs::read_to_string(dir.path().join("index.md")).unwrap();
    for i in 0..8 {
        assert!(
            index.contains(&format!("| run-{i} |")),
            "run-{i} missing:\n{index}"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_report_without_series_has_no_charts() {
    let dir = tempfile::tempdir().unwrap();
    let mut report = synthetic("burst", 1.0);
    report.series = None;
    report.server = None;
    let written = report.write_all(dir.path()).unwrap();
    assert_eq!(
        written.len(),
        4,
        "md, html, json and the index: {written:?}"
    );
    assert!(!report.markdown().contains(".svg"));
}

// ---------------------------------------------------------------------------------------------
// Baseline

#[test]
fn baseline_flags_a_doubled_p95_and_passes_an_identical_run() {
    let base = synthetic("soak", 1.0);
    let slow = synthetic("soak", 2.0);
    let tolerance = Tolerance::default();

    let same = baseline::compare(&base, &base.clone(), &tolerance);
    assert!(same.verdict.passed(), "{}", same.verdict);
    assert_eq!(same.verdict.check, baseline::CHECK);
    assert_eq!(same.p95_ms.unwrap().absolute, 0.0);

    let worse = baseline::compare(&slow, &base, &tolerance);
    assert!(!worse.verdict.passed(), "{}", worse.verdict);
    let p95 = worse.p95_ms.unwrap();
    assert!((0.9..1.1).contains(&p95.relative.unwrap()), "{p95:?}");
    assert!(
        worse.regressions.iter().any(|r| r.starts_with("p95")),
        "{:?}",
        worse.regressions
    );
    assert!(worse.memory_slope_bytes_per_hour.is_some());

    // Getting faster is never a regression.
    let better = baseline::compare(&base, &slow, &tolerance);
    assert!(better.verdict.passed(), "{}", better.verdict);
}

#[test]
fn baseline_is_read_from_a_file_or_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let base = synthetic("soak", 1.0);
    base.write_all(dir.path()).unwrap();
    let current = synthetic("soak", 2.0);
    let from_dir = baseline::load(dir.path(), &current).expect("baseline in the directory");
    assert_eq!(from_dir.name, "soak");
    let from_file = baseline::load(&dir.path().join("soak.json"), &current).unwrap();
    let mut report = current.clone();
    report.compare_with_baseline(baseline::compare(
        &current,
        &from_file,
        &Tolerance::default(),
    ));
    assert!(!report.passed(), "{}", report.text());
    assert!(report.markdown().contains("**Regressed**"));

    let other = synthetic("never saved", 1.0);
    let err = baseline::load(dir.path(), &other).unwrap_err().to_string();
    assert!(
        err.contains("SEMANTIC_STRESS_BASELINE") && err.contains("never_saved.json"),
        "{err}"
    );
    std::fs::write(dir.path().join("broken.json"), "{").unwrap();
    let err = baseline::load(&dir.path().join("broken.json"), &other)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("broken.json") && err.contains("not JSON"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// HTML

/// The HTML page, parsed as a browser would: every chart inline and every verdict listed.
#[test]
fn html_page_has_every_chart_and_every_verdict() {
    use scraper::{Html, Selector};

    let dir = tempfile::tempdir().unwrap();
    let mut report = compared();
    report.verdicts([Verdict::new(
        Check::MemoryGrowth,
        false,
        "< 5%",
        "12%",
        "grew <fast> & \"far\"",
    )]);
    report.write_all(dir.path()).unwrap();
    let page = std::fs::read_to_string(dir.path().join("soak.html")).unwrap();
    let html = Html::parse_document(&page);
    assert!(
        html.errors.is_empty(),
        "HTML parse errors: {:?}",
        html.errors
    );
    let select = |css: &str| Selector::parse(css).unwrap();

    let charts = report.charts().unwrap();
    assert_eq!(charts.len(), 5, "every chart kind of the synthetic run");
    for chart in &charts {
        let figure = select(&format!("figure#chart-{} svg", chart.kind));
        assert_eq!(
            html.select(&figure).count(),
            1,
            "chart {} not inline exactly once",
            chart.kind
        );
    }
    assert_eq!(html.select(&select("figure.chart")).count(), charts.len());

    let rows: Vec<_> = html.select(&select("#verdicts tr.verdict")).collect();
    assert_eq!(rows.len(), report.verdicts.len(), "every verdict listed");
    for (row, verdict) in rows.iter().zip(&report.verdicts) {
        assert_eq!(
            row.value().attr("data-check"),
            Some(verdict.label().as_str())
        );
        let cells: Vec<String> = row
            .select(&select("td"))
            .map(|td| td.text().collect::<String>())
            .collect();
        assert_eq!(cells[0], verdict.status.label());
        assert_eq!(cells[3], verdict.measured);
        assert_eq!(cells[4], verdict.message, "text escaped and read back");
    }
    let status = html.select(&select("#status")).next().unwrap();
    assert_eq!(status.text().collect::<String>(), "FAIL");
    let summary: String = html
        .select(&select("#summary"))
        .next()
        .unwrap()
        .text()
        .collect();
    for needle in ["ttft", "itl", "tpot", "goodput"] {
        assert!(
            summary.contains(needle),
            "{needle} not in the summary:\n{summary}"
        );
    }
}
