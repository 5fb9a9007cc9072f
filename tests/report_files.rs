//! The report's files: `write_all` writes the Markdown, the SVG charts, the HTML page and an
//! index listing the run; a baseline comparison flags a doubled p95 and passes an identical run.
//!
//! Ungated and fast (synthetic data, no server): `cargo test --test report_files`.

use semantic_stress::Report;
use semantic_stress::checks::{Check, Verdict};
use semantic_stress::report::baseline::{self, Tolerance};
use semantic_stress::report::charts::{
    LATENCY_SERIES, MEMORY_SERIES, SERVER_SERIES, SERVING_SERIES, THROUGHPUT_SERIES,
};

#[path = "report/synthetic.rs"]
mod synthetic;
use synthetic::{compared, synthetic};

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
