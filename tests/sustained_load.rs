//! Sustained load: an hour (by default) of steady multi-agent traffic — error rate under 1%,
//! memory growth under 5%, no latency degradation over time.
//!
//! Slow by design, so every test is ignored by default. Run:
//! `cargo test --features stress --test sustained_load -- --ignored --test-threads=1`, and
//! shorten with `SEMANTIC_STRESS_TEST_DURATION=60` (seconds). Reports:
//! `target/stress-reports/`.

mod common;

use std::time::Duration;

use common::scenarios;
use common::{Target, env_duration, env_rate, env_workers, finish};
use semantic_stress::checks;
use serial_test::file_serial;

/// Seed: one hour.
const DURATION: Duration = Duration::from_secs(3600);
/// Agents of the sustained runs (seed: 5).
const AGENTS: usize = 5;
/// Steady load of the stability tests, requests per second.
const RATE: f64 = 5.0;
/// Seed: 10 requests per minute.
const RATE_10_PER_MINUTE: f64 = 10.0 / 60.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[file_serial(stress)]
#[ignore = "slow (1 h): cargo test --features stress --test sustained_load -- --ignored; SEMANTIC_STRESS_TEST_DURATION=60 shortens it"]
async fn test_one_hour_sustained_load() {
    let target = Target::start(&[]);
    let (mut report, s) = scenarios::sustained(
        &target,
        "test_one_hour_sustained_load",
        env_duration(DURATION),
        env_rate(RATE),
        env_workers(AGENTS),
    )
    .await;
    report.verdicts([checks::error_rate(&s.load, 0.01)]);
    finish(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[file_serial(stress)]
#[ignore = "slow (1 h): cargo test --features stress --test sustained_load -- --ignored; SEMANTIC_STRESS_TEST_DURATION=60 shortens it"]
async fn test_10_requests_per_minute_across_5_agents() {
    let target = Target::start(&[]);
    let duration = env_duration(DURATION);
    let (mut report, s) = scenarios::sustained(
        &target,
        "test_10_requests_per_minute_across_5_agents",
        duration,
        RATE_10_PER_MINUTE,
        AGENTS,
    )
    .await;
    // Open-loop pacing: one request at t = 0, then one every 6 s.
    let expected = (duration.as_secs_f64() * RATE_10_PER_MINUTE).ceil() as u64;
    report.verdicts([
        checks::error_rate(&s.load, 0.01),
        checks::completed(&s.load, expected),
    ]);
    finish(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[file_serial(stress)]
#[ignore = "slow (1 h): cargo test --features stress --test sustained_load -- --ignored; SEMANTIC_STRESS_TEST_DURATION=60 shortens it"]
async fn test_memory_stable_no_leaks() {
    let target = Target::start(&[]);
    let (mut report, s) = scenarios::sustained(
        &target,
        "test_memory_stable_no_leaks",
        env_duration(DURATION),
        env_rate(RATE),
        env_workers(AGENTS),
    )
    .await;
    report.verdicts([checks::memory_growth(
        s.memory.as_ref(),
        0.05,
        s.memory_error.as_deref(),
    )]);
    finish(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[file_serial(stress)]
#[ignore = "slow (1 h): cargo test --features stress --test sustained_load -- --ignored; SEMANTIC_STRESS_TEST_DURATION=60 shortens it"]
async fn test_no_performance_degradation_over_time() {
    let target = Target::start(&[]);
    let (mut report, s) = scenarios::sustained(
        &target,
        "test_no_performance_degradation_over_time",
        env_duration(DURATION),
        env_rate(RATE),
        env_workers(AGENTS),
    )
    .await;
    report.verdicts([checks::no_degradation(s.degradation.as_ref(), 1.5, 0.01)]);
    finish(&report);
}
