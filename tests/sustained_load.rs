//! Sustained load: an hour (by default) of steady multi-agent traffic — error rate under 1%,
//! memory growth under 5%, no latency degradation over time.
//!
//! Slow by design, so every test is ignored by default. Run:
//! `cargo test --test sustained_load -- --ignored`, and shorten with
//! `SEMANTIC_STRESS_TEST_DURATION=60` (seconds). The three stability tests judge **one** run:
//! the first of them to run records it, the others judge the same run when the target and
//! settings match (within one test process; under nextest each test runs its own). Any one of
//! them runs alone too. Thresholds are the seed's (error rate < 1%, memory growth < 5%,
//! degraded when late p95 / early p95 > 1.5 and a one-sided Mann–Whitney test is significant
//! at 0.01) unless the target file's `[thresholds]` say otherwise. Reports:
//! `target/stress-reports/`.

mod common;

use std::time::Duration;

use common::{Server, finish, overrides, sustained_run, thresholds};
use semantic_stress::checks;
use semantic_stress::report::progress::ProgressPrinter;
use semantic_stress::suite::{self, SustainedSettings};
use serial_test::file_serial;

/// Seed: one hour.
const DURATION: Duration = Duration::from_secs(3600);
/// Agents of the sustained runs (seed: 5).
const AGENTS: usize = 5;
/// Steady load of the stability tests, requests per second.
const RATE: f64 = 5.0;
/// Seed: 10 requests per minute.
const RATE_10_PER_MINUTE: f64 = 10.0 / 60.0;

/// The run the three stability tests judge.
fn stability() -> SustainedSettings {
    let o = overrides();
    SustainedSettings {
        duration: o.duration_or(DURATION),
        rate: o.rate_or(RATE),
        agents: o.workers_or(AGENTS),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[file_serial(stress)]
#[ignore = "slow (1 h): cargo test --test sustained_load -- --ignored; SEMANTIC_STRESS_TEST_DURATION=60 shortens it"]
async fn test_one_hour_sustained_load() {
    let run = sustained_run("test_one_hour_sustained_load", stability()).await;
    let mut report = run.report;
    report.verdicts([checks::error_rate(
        &run.metrics.load,
        thresholds().sustained_error_rate,
    )]);
    finish(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[file_serial(stress)]
#[ignore = "slow (1 h): cargo test --test sustained_load -- --ignored; SEMANTIC_STRESS_TEST_DURATION=60 shortens it"]
async fn test_memory_stable_no_leaks() {
    let run = sustained_run("test_memory_stable_no_leaks", stability()).await;
    let s = &run.metrics;
    let mut report = run.report.clone();
    report.verdicts([checks::memory_growth(
        s.memory.as_ref(),
        thresholds().memory_growth,
        s.memory_error.as_deref(),
    )]);
    finish(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[file_serial(stress)]
#[ignore = "slow (1 h): cargo test --test sustained_load -- --ignored; SEMANTIC_STRESS_TEST_DURATION=60 shortens it"]
async fn test_no_performance_degradation_over_time() {
    let run = sustained_run("test_no_performance_degradation_over_time", stability()).await;
    let mut report = run.report.clone();
    report.verdicts([checks::no_degradation(
        run.metrics.degradation.as_ref(),
        thresholds().degradation_ratio,
        thresholds().degradation_alpha,
    )]);
    finish(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[file_serial(stress)]
#[ignore = "slow (1 h): cargo test --test sustained_load -- --ignored; SEMANTIC_STRESS_TEST_DURATION=60 shortens it"]
async fn test_10_requests_per_minute_across_5_agents() {
    let name = "test_10_requests_per_minute_across_5_agents";
    let server = Server::start(&[]).await;
    let settings = SustainedSettings {
        duration: overrides().duration_or(DURATION),
        rate: RATE_10_PER_MINUTE,
        agents: AGENTS,
    };
    let progress = ProgressPrinter::stderr(name).into_callback();
    let run = suite::sustained(
        server.target(),
        name,
        settings,
        Some(std::sync::Arc::new(progress)),
    )
    .await
    .expect("valid settings");
    // Open-loop pacing: one request at t = 0, then one every 6 s.
    let expected = (settings.duration.as_secs_f64() * RATE_10_PER_MINUTE).ceil() as u64;
    let mut report = run.report;
    report.verdicts([
        checks::error_rate(&run.metrics.load, thresholds().sustained_error_rate),
        checks::completed(&run.metrics.load, expected),
    ]);
    finish(&report);
}
