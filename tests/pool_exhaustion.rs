//! Pool exhaustion: the server degrades gracefully when its block pool fills — 429 with
//! `Retry-After`, never a crash — and recovers when load subsides.
//!
//! Run: `cargo test --features stress --test pool_exhaustion` (against the embedded reference
//! server, or the server at `SEMANTIC_BASE_URL`). Without the feature the tests are listed as
//! ignored and `-- --ignored` (or an IDE's run button) runs them. Reports:
//! `target/stress-reports/`. With `--features resource-intensive`, a burst ten times larger
//! runs too.

mod common;

use std::time::Duration;

use common::{Server, finish, overrides};
use semantic_stress::{Stage, suite};
use serial_test::file_serial;

/// Requests sent at once (seed: more than 100).
const BURST: usize = 150;
/// Workers of the low-load phase: far from exhausting the pool.
const LOW_WORKERS: usize = 4;
/// Paced load far past what the pool can serve, requests per second (the reference server's
/// small profile serves about 180 requests/s of these replies).
const OVERLOAD_RATE: f64 = 400.0;
/// Seed: the pool recovers within 30 s.
const RECOVERY_MAX: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "stress"),
    ignore = "stress test: cargo test --features stress"
)]
#[file_serial(stress)]
async fn test_100_plus_concurrent_requests() {
    let server = Server::start(&[]);
    let name = "test_100_plus_concurrent_requests";
    let n = overrides().workers_or(BURST);
    let report = suite::concurrent_burst(server.target(), name, n).await;
    finish(&report.expect("valid settings"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "stress"),
    ignore = "stress test: cargo test --features stress"
)]
#[file_serial(stress)]
async fn test_graceful_429_when_pool_exhausted() {
    let server = Server::start(&[]);
    let low = Stage {
        concurrency: LOW_WORKERS,
        hold: Duration::from_secs(1),
    };
    let report = suite::graceful_rejection(
        server.target(),
        "test_graceful_429_when_pool_exhausted",
        low,
        overrides().rate_or(OVERLOAD_RATE),
        Duration::from_secs(3),
        200,
    )
    .await;
    finish(&report.expect("valid settings"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "stress"),
    ignore = "stress test: cargo test --features stress"
)]
#[file_serial(stress)]
async fn test_no_crashes_under_load() {
    let server = Server::start(&[]);
    let report = suite::no_crash(
        server.target(),
        "test_no_crashes_under_load",
        overrides().rate_or(OVERLOAD_RATE),
        Duration::from_secs(5),
    )
    .await;
    finish(&report.expect("valid settings"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "stress"),
    ignore = "stress test: cargo test --features stress"
)]
#[file_serial(stress)]
async fn test_pool_recovery_after_load() {
    let server = Server::start(&[]);
    let report = suite::recovery(
        server.target(),
        "test_pool_recovery_after_load",
        RECOVERY_MAX + Duration::from_secs(5),
        RECOVERY_MAX,
    )
    .await;
    finish(&report.expect("valid settings"));
}

/// Ten times the seed's burst: 1,500 connections at once (raise `ulimit -n` past 4,000 for an
/// external server on the same machine).
#[cfg(feature = "resource-intensive")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[file_serial(stress)]
async fn test_1500_concurrent_requests() {
    let server = Server::start(&[]);
    let report =
        suite::concurrent_burst(server.target(), "test_1500_concurrent_requests", BURST * 10).await;
    finish(&report.expect("valid settings"));
}
