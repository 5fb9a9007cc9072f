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

/// How a finished agent scenario is judged when a real server does not stream, or when the
/// profile leaves the scenario nothing to send. Ungated: seconds, against an in-process
/// reference server or no server at all.
mod finishing {
    use std::time::Duration;

    use reference_server::{ReferenceServer, ServerConfig};
    use semantic_stress::StressConfig;
    use semantic_stress::checks::Status;
    use semantic_stress::suite::{self, Target};
    use semantic_stress::target::Profile;

    use crate::common::finish_streamed;

    /// The hit-rate scenario on a profile without cache fields (vLLM's) sends no load: its
    /// report has no load figures, and says so as not applicable instead of failing the
    /// harness's streaming check.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scenario_that_sent_no_load_is_not_applicable() {
        let target = Target::new(StressConfig::new("http://127.0.0.1:9"))
            .profile(Profile::named("vllm").expect("built-in profile"));
        let report = suite::hit_rate(&target, "finishing_no_load", 2, 2, 0.8)
            .await
            .expect("valid settings");
        assert!(report.metrics.is_none());
        assert_eq!(report.outcome(), Status::NotApplicable);
        finish_streamed(&report);
    }

    /// An agent run whose replies came as whole JSON messages, as a LiteLLM `mock_response`
    /// deployment answers `stream: true` (its handler returns the mock before any streaming,
    /// litellm/llms/anthropic/pass_through/messages/handler.py:570 in 1.108.7).
    async fn unstreamed_run(reference: bool) -> semantic_stress::Report {
        let server = ReferenceServer::start(ServerConfig::default())
            .await
            .expect("reference server");
        let config = StressConfig::new(server.base_url())
            .timeout(Duration::from_secs(10))
            .stream(false);
        let target = Target::new(config).reference(reference);
        let report = suite::rapid_agents(&target, "finishing_unstreamed", 2, 3)
            .await
            .expect("valid settings");
        server.shutdown().await;
        assert!(
            report
                .metrics
                .as_ref()
                .is_some_and(|m| m.serving.ttft.is_none())
        );
        report
    }

    /// From an external server, replies that did not stream are the server's choice: the
    /// report is judged by its verdicts (here all pass) and notes the missing figures.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_external_server_that_does_not_stream_is_judged_by_its_verdicts() {
        finish_streamed(&unstreamed_run(false).await);
    }

    /// From the reference server, which always streams when asked, the same run is a fault of
    /// the suite's own measurement.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[should_panic(expected = "TTFT, ITL and TPOT must be measured")]
    async fn the_reference_server_must_stream() {
        finish_streamed(&unstreamed_run(true).await);
    }
}
