//! The suite proves itself: for every fault the reference server can inject, a shortened form
//! of the scenario that should catch it runs against a server with that fault, and the right
//! checks must **fail**; the same scenario against a healthy server must pass.
//!
//! Run: `cargo test --features stress --test fault_detection -- --nocapture` (prints the
//! detection score). Always runs against spawned reference servers, whatever
//! `SEMANTIC_BASE_URL` says.

mod common;

use std::time::{Duration, Instant};

use common::Target;
use common::scenarios;
use semantic_stress::{Report, Stage, checks};
use serial_test::file_serial;

/// A shortened scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// 150 requests at once.
    Burst,
    /// 150 requests at once with a 2 s request timeout.
    BurstShortTimeout,
    /// Low phase, then exhausting phase.
    Graceful,
    /// Paced overload with health probes.
    NoCrash,
    /// Saturate, stop, time the recovery (5 s allowed instead of 30 s, to stay quick).
    Recovery,
    /// Paired isolation with canaries.
    Isolation,
    /// Multi-turn hit rate.
    HitRate,
    /// Eight seconds of sustained load with memory sampling.
    Sustained,
    /// Streamed replies.
    Streams,
}

/// Fault → the scenario that should catch it → the checks that must fail.
const CASES: &[(&str, Scenario, &[&str])] = &[
    ("leak=256", Scenario::Sustained, &["memory_growth"]),
    (
        "crash-on-exhaustion",
        Scenario::Burst,
        &["no_server_errors", "only_graceful_failures"],
    ),
    (
        "no-retry-after",
        Scenario::Graceful,
        &["rejections_well_formed", "rejections_seen"],
    ),
    ("late-reject", Scenario::Graceful, &["rejections_fast"]),
    ("no-recovery", Scenario::Recovery, &["pool_recovery"]),
    (
        "cross-agent-bleed",
        Scenario::Isolation,
        &["isolation_no_foreign_canary"],
    ),
    ("no-cache", Scenario::HitRate, &["cache_hit_rate"]),
    (
        "no-cache",
        Scenario::Isolation,
        &["isolation_same_agent_hits"],
    ),
    ("degrade=3", Scenario::Sustained, &["no_degradation"]),
    ("hang=20", Scenario::BurstShortTimeout, &["all_answered"]),
    (
        "truncate-stream",
        Scenario::Streams,
        &["all_answered", "completed"],
    ),
    ("drop-connection", Scenario::Burst, &["all_answered"]),
    ("blocking-health", Scenario::NoCrash, &["health_responsive"]),
];

async fn run(scenario: Scenario, fault: Option<&str>) -> Report {
    let args: Vec<String> = fault
        .map(|f| vec!["--fault".to_owned(), f.to_owned()])
        .unwrap_or_default();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut target = Target::reference(&args);
    let name = format!(
        "fault_{}_{:?}",
        fault.unwrap_or("none").replace(['=', '-'], "_"),
        scenario
    )
    .to_lowercase();
    match scenario {
        Scenario::Burst => scenarios::concurrent_burst(&target, &name, 150).await,
        Scenario::BurstShortTimeout => {
            target = target.with_timeout(Duration::from_secs(2));
            scenarios::concurrent_burst(&target, &name, 150).await
        }
        Scenario::Graceful => {
            let low = Stage {
                concurrency: 4,
                hold: Duration::from_millis(700),
            };
            scenarios::graceful_rejection(
                &target,
                &name,
                low,
                400.0,
                Duration::from_millis(1500),
                200,
            )
            .await
        }
        Scenario::NoCrash => {
            scenarios::no_crash(&mut target, &name, 400.0, Duration::from_secs(2)).await
        }
        Scenario::Recovery => {
            scenarios::recovery(
                &target,
                &name,
                Duration::from_secs(6),
                Duration::from_secs(5),
            )
            .await
        }
        Scenario::Isolation => scenarios::isolation(&target, &name, 6, 3).await,
        Scenario::HitRate => scenarios::hit_rate(&target, &name, 6, 5, 0.8).await,
        Scenario::Sustained => {
            let (mut report, s) =
                scenarios::sustained(&target, &name, Duration::from_secs(8), 25.0, 5).await;
            report.verdicts([
                checks::memory_growth(s.memory.as_ref(), 0.05, s.memory_error.as_deref()),
                checks::no_degradation(s.degradation.as_ref(), 1.5, 0.01),
            ]);
            report
        }
        Scenario::Streams => scenarios::streams(&target, &name, 40, 8).await,
    }
}

fn failed<'a>(report: &'a Report, check: &str) -> Option<&'a semantic_stress::checks::Verdict> {
    report
        .verdicts
        .iter()
        .find(|v| v.check == check && !v.passed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[file_serial(stress)]
async fn every_fault_is_detected() {
    let started = Instant::now();
    let mut detected = 0;
    let mut missed = Vec::new();
    for (fault, scenario, catches) in CASES {
        let report = run(*scenario, Some(fault)).await;
        let caught: Vec<&str> = catches
            .iter()
            .copied()
            .filter(|c| failed(&report, c).is_some())
            .collect();
        if caught.len() == catches.len() {
            detected += 1;
            for c in &caught {
                let v = failed(&report, c).expect("failed verdict");
                println!("DETECTED {fault:<22} by {scenario:?}: {v}");
            }
        } else {
            println!("MISSED   {fault:<22} by {scenario:?}:\n{}", report.text());
            missed.push(format!("{fault} ({scenario:?}) should fail {catches:?}"));
        }
    }
    println!(
        "fault detection score: {detected}/{} in {:.1} s",
        CASES.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        missed.is_empty(),
        "undetected faults:\n{}",
        missed.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[file_serial(stress)]
async fn fault_free_runs_pass() {
    let mut scenarios: Vec<Scenario> = CASES.iter().map(|(_, s, _)| *s).collect();
    scenarios.dedup();
    scenarios.sort_by_key(|s| format!("{s:?}"));
    scenarios.dedup();
    let mut failures = Vec::new();
    for scenario in scenarios {
        let report = run(scenario, None).await;
        println!("{}", report.text());
        if !report.passed() {
            failures.push(format!("{scenario:?}:\n{}", report.failures()));
        }
    }
    assert!(
        failures.is_empty(),
        "fault-free runs failed:\n{}",
        failures.join("\n")
    );
}
