//! Concurrent agents: many agents at once, each with its own cache — all requests complete,
//! no cache leaks between agents, p95 under 2 s, multi-turn hit rate over 80%.
//!
//! Run: `cargo test --features stress --test concurrent_agents`. Reports:
//! `target/stress-reports/`.

mod common;

use common::scenarios;
use common::{Target, env_workers, finish};
use serial_test::file_serial;

/// Seed: 10 agents.
const AGENTS: usize = 10;
/// Seed: 50 rapid requests per agent.
const REQUESTS_PER_AGENT: usize = 50;
/// Turns per multi-turn conversation.
const TURNS: u32 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[file_serial(stress)]
async fn test_10_agents_50_rapid_requests() {
    let target = Target::start(&[]);
    let report = scenarios::rapid_agents(
        &target,
        "test_10_agents_50_rapid_requests",
        env_workers(AGENTS),
        REQUESTS_PER_AGENT,
    )
    .await;
    finish(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[file_serial(stress)]
async fn test_cache_isolation_under_load() {
    let target = Target::start(&[]);
    let report = scenarios::isolation(
        &target,
        "test_cache_isolation_under_load",
        env_workers(AGENTS),
        TURNS,
    )
    .await;
    finish(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[file_serial(stress)]
async fn test_latency_remains_acceptable() {
    let target = Target::start(&[]);
    let report = scenarios::latency_under_load(
        &target,
        "test_latency_remains_acceptable",
        env_workers(AGENTS),
        TURNS,
    )
    .await;
    finish(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[file_serial(stress)]
async fn test_cache_hit_rate_high() {
    let target = Target::start(&[]);
    let report = scenarios::hit_rate(
        &target,
        "test_cache_hit_rate_high",
        env_workers(AGENTS),
        TURNS,
        0.8,
    )
    .await;
    finish(&report);
}
