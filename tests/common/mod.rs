//! Fixtures shared by the test binaries: the target server (a spawned reference server, or the
//! external one named by `SEMANTIC_BASE_URL`), the environment's overrides, and reports.
//!
//! Each test binary uses a subset of these helpers.
#![allow(dead_code, unreachable_pub)]

mod reference;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use semantic_stress::checks::Status;
use semantic_stress::report::progress::ProgressPrinter;
use semantic_stress::suite::{self, SustainedRun, SustainedSettings, Target};
use semantic_stress::target::{TargetSettings, Thresholds};
use semantic_stress::{Overrides, Report};

pub use reference::ReferenceProcess;

/// The server a test runs against, alive until dropped: an external server (its caches reset
/// on drop when `SEMANTIC_ADMIN_KEY` is set) or a reference server spawned for this test
/// (stopped on drop).
#[derive(Debug)]
pub struct Server {
    target: Target,
    process: Option<ReferenceProcess>,
}

impl Server {
    /// The external server of `SEMANTIC_BASE_URL` if set (once it is idle: the previous
    /// test's backlog must not spill into this one), else a fresh reference server started
    /// with `args` (a profile for this test: pool size, speeds, faults).
    pub async fn start(args: &[&str]) -> Self {
        let server = if external() {
            let target = Target::from_env()
                .await
                .expect("valid SEMANTIC_* environment");
            let max = target.config().timeout * 2;
            match target.wait_idle(max).await {
                Ok(waited) if waited > std::time::Duration::from_secs(1) => {
                    eprintln!("semantic-stress: waited {waited:.1?} for the server to be idle");
                }
                Ok(_) => {}
                Err(e) => eprintln!("semantic-stress: {e}; starting anyway"),
            }
            Self {
                target,
                process: None,
            }
        } else {
            Self::reference(args)
        };
        announce(&server.target);
        server
    }

    /// A fresh reference server started with `args`, whatever the environment says.
    pub fn reference(args: &[&str]) -> Self {
        let process = ReferenceProcess::spawn(args);
        // The environment's harness settings (API key, timeouts…), pointed at this server.
        let config = semantic_stress::StressConfig::from_lookup(|name| {
            (name != "SEMANTIC_BASE_URL")
                .then(|| std::env::var(name).ok())
                .flatten()
        })
        .expect("valid SEMANTIC_* environment")
        .base_url(process.base_url());
        Self {
            target: Target::new(config).pid(Some(process.pid())).reference(true),
            process: Some(process),
        }
    }

    /// The target to hand to a scenario.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The same server, requests timing out after `timeout`.
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.target = self.target.clone().with_timeout(timeout);
        self
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.process.is_some() {
            return;
        }
        // Bounded (5 s) by `reset_caches`; runs after a failed test too.
        let target = self.target.clone();
        let outcome = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(target.reset_caches())
                .map_err(|e| e.to_string())
        })
        .join();
        if let Ok(Err(e)) = outcome {
            eprintln!("cleanup: {e}");
        }
    }
}

/// The thresholds of this run: the seed's, or the target file's `[thresholds]`.
pub fn thresholds() -> Thresholds {
    TargetSettings::from_env()
        .expect("valid SEMANTIC_* environment")
        .thresholds
}

/// Whether the tests run against an external server (`SEMANTIC_BASE_URL` is set).
pub fn external() -> bool {
    std::env::var("SEMANTIC_BASE_URL").is_ok_and(|u| !u.trim().is_empty())
}

/// The environment's size overrides (`SEMANTIC_STRESS_TEST_WORKERS`, …), parsed once.
pub fn overrides() -> Overrides {
    static OVERRIDES: OnceLock<Overrides> = OnceLock::new();
    *OVERRIDES.get_or_init(|| Overrides::from_env().expect("valid SEMANTIC_STRESS_* environment"))
}

/// Says once per test binary which server the tests run against and where reports go.
fn announce(target: &Target) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let what = if target.is_reference() {
            format!(
                "the embedded reference server (a fresh one per test; this one at {}); set SEMANTIC_BASE_URL to test your own",
                target.base_url()
            )
        } else {
            format!(
                "{} (SEMANTIC_BASE_URL), model {:?}, profile {} ({}); memory from {}",
                target.base_url(),
                target.config().model,
                target.profile_ref().name,
                target.profile_reason(),
                target
                    .server_pid()
                    .map_or("/metrics or nowhere: set SEMANTIC_SERVER_PID".to_owned(), |p| format!("pid {p}"))
            )
        };
        eprintln!("semantic-stress: testing {what}");
        eprintln!("semantic-stress: reports go to {}", reports_dir().display());
    });
}

/// The sustained run with `settings`, shared by the tests of one process: the first test that
/// asks runs it (against a fresh server), later tests with the same settings and target judge
/// the same run. Its report says which test recorded it.
pub async fn sustained_run(test: &str, settings: SustainedSettings) -> SustainedRun {
    type Shared = Vec<(String, SustainedSettings, Arc<(String, SustainedRun)>)>;
    static RUNS: Mutex<Shared> = Mutex::new(Vec::new());
    let key = if external() {
        std::env::var("SEMANTIC_BASE_URL").unwrap_or_default()
    } else {
        "reference".to_owned()
    };
    let recorded = RUNS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|(k, s, _)| *k == key && *s == settings)
        .map(|(_, _, run)| Arc::clone(run));
    let (by, run) = match recorded {
        Some(shared) => (shared.0.clone(), shared.1.clone()),
        None => {
            let server = Server::start(&[]).await;
            let progress = ProgressPrinter::stderr(test).into_callback();
            let run = suite::sustained(server.target(), test, settings, Some(Arc::new(progress)))
                .await
                .expect("valid sustained run");
            drop(server);
            RUNS.lock().unwrap_or_else(PoisonError::into_inner).push((
                key,
                settings,
                Arc::new((test.to_owned(), run.clone())),
            ));
            (test.to_owned(), run)
        }
    };
    let mut run = run;
    run.report.name = test.to_owned();
    run.report.config("recorded_by", &by);
    run
}

/// Where reports go: `target/stress-reports/` (or under `CARGO_TARGET_DIR`).
pub fn reports_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("stress-reports")
}

/// Compares with the baseline named by `SEMANTIC_STRESS_BASELINE` (if set), prints the
/// report's summary, writes its JSON, Markdown and charts to `target/stress-reports/` (and
/// updates the index there), and ends the test by the report's outcome: a failure fails it
/// with every failed verdict; an inconclusive run fails it with `INCONCLUSIVE: …` (unless
/// `SEMANTIC_ALLOW_INCONCLUSIVE=1`); a run whose checks do not apply to the server's profile
/// says `NOT APPLICABLE` and passes.
pub fn finish(report: &Report) {
    let mut report = report.clone();
    report.compare_with_env_baseline();
    println!("{}", report.text());
    let dir = reports_dir();
    report.write_all(&dir).expect("write the reports");
    println!(
        "report: {}",
        dir.join(format!("{}.md", report.file_stem())).display()
    );
    match report.outcome() {
        Status::Pass => {}
        Status::NotApplicable => println!("NOT APPLICABLE: {}", report.name),
        Status::Inconclusive if allow_inconclusive() => {
            println!(
                "INCONCLUSIVE (allowed): {}\n{}",
                report.name,
                report.failures()
            );
        }
        Status::Inconclusive => panic!(
            "INCONCLUSIVE: {} could not judge the server:\n{}",
            report.name,
            report.failures()
        ),
        Status::Fail => panic!("{} failed:\n{}", report.name, report.failures()),
    }
}

/// `SEMANTIC_ALLOW_INCONCLUSIVE=1`: an inconclusive test passes (its report still says so).
fn allow_inconclusive() -> bool {
    std::env::var("SEMANTIC_ALLOW_INCONCLUSIVE").is_ok_and(|v| v.trim() == "1")
}

/// [`finish`], after checking that the run streamed: its report has time to first token,
/// inter-token latency and time per output token (agents stream, as real clients do).
///
/// Against the reference server, which always streams when asked, a run without these figures
/// is a fault of the suite's own measurement and fails the test. Against an external server it
/// is the server's choice (a LiteLLM `mock_response` deployment answers `stream: true` with one
/// JSON message): the report says so and the test is judged by its verdicts.
pub fn finish_streamed(report: &Report) {
    let Some(metrics) = &report.metrics else {
        // A scenario whose checks do not apply to the profile sends no load (the hit rate on a
        // server without cache fields): nothing streamed, nothing to check.
        assert!(
            report.outcome() == Status::NotApplicable,
            "{}: no load figures",
            report.name
        );
        return finish(report);
    };
    let serving = &metrics.serving;
    let measured = serving.ttft.is_some() && serving.itl.is_some() && serving.tpot.is_some();
    if measured || !report_is_external(report) {
        assert!(
            measured,
            "{}: TTFT, ITL and TPOT must be measured for streamed agents: {serving:?}",
            report.name
        );
        return finish(report);
    }
    let note = format!(
        "streamed requests, but {} of the successes streamed (the rest came as whole JSON messages): TTFT, ITL and TPOT not measured",
        serving.streamed
    );
    println!("note: {note}");
    let mut report = report.clone();
    report.config("stream_note", note);
    finish(&report);
}

/// Whether `report` judged an external server (not a reference server spawned for the test).
fn report_is_external(report: &Report) -> bool {
    report
        .config
        .get("reference_server")
        .is_some_and(|v| v == &serde_json::Value::Bool(false))
}
