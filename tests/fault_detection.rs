//! The suite proves itself: for every fault the reference server can inject, a shortened form
//! of the scenario that should catch it runs against a server with that fault, and the right
//! checks must **fail**; the same scenario against a healthy server must pass.
//!
//! One test per fault case (`detects_<fault>_by_<scenario>`) and per fault-free scenario
//! (`fault_free_<scenario>`), so any one runs alone by name. Run:
//! `cargo test --features stress --test fault_detection -- --nocapture`. Always runs against
//! spawned reference servers, whatever `SEMANTIC_BASE_URL` says.

mod common;

use std::time::Duration;

use common::Server;
use semantic_stress::checks::{self, Check};
use semantic_stress::suite::{self, SustainedSettings};
use semantic_stress::{Report, Stage};
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

/// Runs `scenario` against a fresh reference server with `fault` injected (if any).
async fn run(scenario: Scenario, fault: Option<&str>) -> Report {
    let args: Vec<&str> = fault.map(|f| vec!["--fault", f]).unwrap_or_default();
    let mut server = Server::reference(&args);
    let name = format!(
        "fault_{}_{:?}",
        fault.unwrap_or("none").replace(['=', '-'], "_"),
        scenario
    )
    .to_lowercase();
    if scenario == Scenario::BurstShortTimeout {
        server = server.with_timeout(Duration::from_secs(2));
    }
    let target = server.target();
    let report = match scenario {
        Scenario::Burst | Scenario::BurstShortTimeout => {
            suite::concurrent_burst(target, &name, 150).await
        }
        Scenario::Graceful => {
            let low = Stage {
                concurrency: 4,
                hold: Duration::from_millis(700),
            };
            let high_hold = Duration::from_millis(1500);
            suite::graceful_rejection(target, &name, low, Some(400.0), high_hold, 200).await
        }
        Scenario::NoCrash => {
            suite::no_crash(target, &name, Some(400.0), Duration::from_secs(2)).await
        }
        Scenario::Recovery => {
            let (window, max) = (Duration::from_secs(6), Duration::from_secs(5));
            suite::recovery(target, &name, window, max).await
        }
        Scenario::Isolation => suite::isolation(target, &name, 6, 3).await,
        Scenario::HitRate => suite::hit_rate(target, &name, 6, 5, 0.8).await,
        Scenario::Sustained => {
            let settings = SustainedSettings {
                duration: Duration::from_secs(8),
                rate: 25.0,
                agents: 5,
            };
            suite::sustained(target, &name, settings, None)
                .await
                .map(|run| {
                    let s = &run.metrics;
                    let mut report = run.report;
                    report.verdicts([
                        checks::memory_growth(s.memory.as_ref(), 0.05, s.memory_error.as_deref()),
                        checks::no_degradation(s.degradation.as_ref(), 1.5, 0.01),
                    ]);
                    report
                })
        }
        Scenario::Streams => suite::streams(target, &name, 40, 8).await,
    };
    report.expect("valid settings")
}

/// Asserts that `scenario` against a server with `fault` fails every check of `catches`.
async fn detects(fault: &str, scenario: Scenario, catches: &[Check]) {
    let report = run(scenario, Some(fault)).await;
    let missed: Vec<Check> = catches
        .iter()
        .copied()
        .filter(|c| !report.verdicts.iter().any(|v| v.check == *c && !v.passed()))
        .collect();
    for v in report
        .verdicts
        .iter()
        .filter(|v| catches.contains(&v.check) && !v.passed())
    {
        println!("DETECTED {fault} by {scenario:?}: {v}");
    }
    assert!(
        missed.is_empty(),
        "{fault} ({scenario:?}) should fail {missed:?}:\n{}",
        report.text()
    );
}

/// Asserts that `scenario` against a healthy server passes.
async fn passes(scenario: Scenario) {
    let report = run(scenario, None).await;
    println!("{}", report.text());
    assert!(report.passed(), "{scenario:?}:\n{}", report.failures());
}

/// One test per fault case: `fault` → the scenario that should catch it → the checks that must
/// fail.
macro_rules! fault_cases {
    ($($test:ident: $fault:literal, $scenario:ident, [$($check:ident),+];)+) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr(not(feature = "stress"), ignore = "stress test: cargo test --features stress")]
        #[file_serial(stress)]
        async fn $test() {
            detects($fault, Scenario::$scenario, &[$(Check::$check),+]).await;
        }
    )+};
}

fault_cases! {
    detects_leak_by_sustained: "leak=256", Sustained, [MemoryGrowth];
    detects_crash_on_exhaustion_by_no_crash: "crash-on-exhaustion", NoCrash, [NoServerErrors];
    detects_no_retry_after_by_graceful: "no-retry-after", Graceful, [RejectionsWellFormed, RejectionsSeen];
    detects_late_reject_by_graceful: "late-reject", Graceful, [RejectionsFast];
    detects_no_recovery_by_recovery: "no-recovery", Recovery, [PoolRecovery];
    detects_cross_agent_bleed_by_isolation: "cross-agent-bleed", Isolation, [IsolationNoForeignCanary];
    detects_no_cache_by_hit_rate: "no-cache", HitRate, [CacheHitRate];
    detects_no_cache_by_isolation: "no-cache", Isolation, [IsolationSameAgentHits];
    detects_degrade_by_sustained: "degrade=3", Sustained, [NoDegradation];
    detects_hang_by_burst_short_timeout: "hang=20", BurstShortTimeout, [AllAnswered];
    detects_truncate_stream_by_streams: "truncate-stream", Streams, [AllAnswered, Completed];
    detects_drop_connection_by_burst: "drop-connection", Burst, [AllAnswered];
    detects_blocking_health_by_no_crash: "blocking-health", NoCrash, [HealthResponsive];
}

/// One test per scenario the fault cases use: without a fault, it passes.
macro_rules! fault_free {
    ($($test:ident: $scenario:ident;)+) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr(not(feature = "stress"), ignore = "stress test: cargo test --features stress")]
        #[file_serial(stress)]
        async fn $test() {
            passes(Scenario::$scenario).await;
        }
    )+};
}

fault_free! {
    fault_free_burst: Burst;
    fault_free_burst_short_timeout: BurstShortTimeout;
    fault_free_graceful: Graceful;
    fault_free_no_crash: NoCrash;
    fault_free_recovery: Recovery;
    fault_free_isolation: Isolation;
    fault_free_hit_rate: HitRate;
    fault_free_sustained: Sustained;
    fault_free_streams: Streams;
}
