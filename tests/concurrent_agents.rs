//! Concurrent agents: many agents at once, each with its own cache — all requests complete,
//! no cache leaks between agents, p95 under 2 s, multi-turn hit rate over 80%.
//!
//! Run: `cargo test --features stress --test concurrent_agents`. Without the feature the tests
//! are listed as ignored and `-- --ignored` (or an IDE's run button) runs them. Reports:
//! `target/stress-reports/`.

mod common;

use common::{Server, finish_streamed, overrides};
use semantic_stress::suite;
use serial_test::file_serial;

/// Seed: 10 agents.
const AGENTS: usize = 10;
/// Seed: 50 rapid requests per agent.
const REQUESTS_PER_AGENT: usize = 50;
/// Turns per multi-turn conversation.
const TURNS: u32 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "stress"),
    ignore = "stress test: cargo test --features stress"
)]
#[file_serial(stress)]
async fn test_10_agents_50_rapid_requests() {
    let server = Server::start(&[]).await;
    let report = suite::rapid_agents(
        server.target(),
        "test_10_agents_50_rapid_requests",
        overrides().workers_or(AGENTS),
        REQUESTS_PER_AGENT,
    )
    .await;
    finish_streamed(&report.expect("valid settings"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "stress"),
    ignore = "stress test: cargo test --features stress"
)]
#[file_serial(stress)]
async fn test_cache_isolation_under_load() {
    let server = Server::start(&[]).await;
    let report = suite::isolation(
        server.target(),
        "test_cache_isolation_under_load",
        overrides().workers_or(AGENTS),
        TURNS,
    )
    .await;
    finish_streamed(&report.expect("valid settings"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "stress"),
    ignore = "stress test: cargo test --features stress"
)]
#[file_serial(stress)]
async fn test_latency_remains_acceptable() {
    let server = Server::start(&[]).await;
    let report = suite::latency_under_load(
        server.target(),
        "test_latency_remains_acceptable",
        overrides().workers_or(AGENTS),
        TURNS,
    )
    .await;
    finish_streamed(&report.expect("valid settings"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "stress"),
    ignore = "stress test: cargo test --features stress"
)]
#[file_serial(stress)]
async fn test_cache_hit_rate_high() {
    let server = Server::start(&[]).await;
    let report = suite::hit_rate(
        server.target(),
        "test_cache_hit_rate_high",
        overrides().workers_or(AGENTS),
        TURNS,
        // Seed: more than 80% (the target file's thresholds may say otherwise).
        server.target().threshold().cache_hit_rate,
    )
    .await;
    finish_streamed(&report.expect("valid settings"));
}
