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
/// Paced load past what the reference server's pool can serve, requests per second (about
/// twice its capacity for the seed's replies: batches of 8 serve about 180 requests/s). Any other server's overload is
/// sized from its own measured capacity (`suite::calibrate`), unless
/// `SEMANTIC_STRESS_TEST_RATE_LIMIT` sets it.
const REFERENCE_OVERLOAD_RATE: f64 = 400.0;

/// The overload rate: the environment's, the reference server's tuned one, or `None` to
/// calibrate on the server under test.
fn overload_rate(server: &Server) -> Option<f64> {
    overrides().rate.or_else(|| {
        server
            .target()
            .is_reference()
            .then_some(REFERENCE_OVERLOAD_RATE)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "stress"),
    ignore = "stress test: cargo test --features stress"
)]
#[file_serial(stress)]
async fn test_100_plus_concurrent_requests() {
    let server = Server::start(&[]).await;
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
    let server = Server::start(&[]).await;
    let low = Stage {
        concurrency: LOW_WORKERS,
        hold: Duration::from_secs(1),
    };
    let report = suite::graceful_rejection(
        server.target(),
        "test_graceful_429_when_pool_exhausted",
        low,
        overload_rate(&server),
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
    let server = Server::start(&[]).await;
    let report = suite::no_crash(
        server.target(),
        "test_no_crashes_under_load",
        overload_rate(&server),
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
    let server = Server::start(&[]).await;
    // Seed: the pool recovers within 30 s (the target file's thresholds may say otherwise).
    let max = Duration::from_secs_f64(server.target().threshold().recovery_s);
    let window = max + Duration::from_secs(5);
    let report = suite::recovery(
        server.target(),
        "test_pool_recovery_after_load",
        window,
        max,
    );
    let report = report.await;
    finish(&report.expect("valid settings"));
}

/// Ten times the seed's burst: 1,500 connections at once (raise `ulimit -n` past 4,000 for an
/// external server on the same machine).
#[cfg(feature = "resource-intensive")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[file_serial(stress)]
async fn test_1500_concurrent_requests() {
    let server = Server::start(&[]).await;
    let report =
        suite::concurrent_burst(server.target(), "test_1500_concurrent_requests", BURST * 10).await;
    finish(&report.expect("valid settings"));
}
