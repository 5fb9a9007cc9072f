//! A short mixed load against `SEMANTIC_BASE_URL` (or an in-process reference server when it
//! is unset), then the text report.
//!
//! ```sh
//! cargo run --example against_server
//! SEMANTIC_BASE_URL=http://localhost:8000 cargo run --example against_server
//! ```

use std::time::Duration;

use reference_server::{ReferenceServer, ServerConfig};
use semantic_stress::anthropic::{Message, MessagesRequest};
use semantic_stress::{
    Agent, Arrivals, Load, MetricsCollector, Report, Request, Stop, StressConfig, StressHarness,
    checks,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let embedded = match std::env::var("SEMANTIC_BASE_URL") {
        Ok(url) if !url.trim().is_empty() => None,
        _ => Some(ReferenceServer::start(ServerConfig::default()).await?),
    };
    let config = match &embedded {
        Some(server) => StressConfig::from_env()?.base_url(server.base_url()),
        None => StressConfig::from_env()?,
    };
    let harness = StressHarness::new(config.workers(20).timeout(Duration::from_secs(30)))?;
    eprintln!("target: {}", harness.config().base_url);

    // 1. A paced mix: Poisson arrivals at 40/s for 3 s, short prompts.
    let body = MessagesRequest::new("test-model", vec![Message::user("Hello, pool")], 32);
    let request = Request::messages(&body);
    let paced = harness
        .run(
            Load::open(
                20,
                Arrivals::Poisson {
                    per_second: 40.0,
                    seed: 7,
                },
                Stop::after(Duration::from_secs(3)),
            ),
            move |_| request.clone(),
        )
        .await?;

    // 2. Five agents, four turns each, growing conversations.
    let by_agent = harness
        .run_agent_workloads(5, |mut agent: Agent| async move {
            agent.max_tokens = 32;
            for turn in 0..4 {
                agent
                    .send_turn(format!("turn {turn}: tell me more about block pools"))
                    .await;
            }
            agent
        })
        .await;

    let conversations: Vec<_> = by_agent.into_values().flatten().collect();
    let cache = MetricsCollector::analyze(&conversations);
    let mut all = paced.results.clone();
    all.extend(conversations);
    let metrics = MetricsCollector::analyze(&all);
    let mut report = Report::new("against_server", harness.config().base_url.clone());
    report.verdicts([
        checks::error_rate(&metrics, 0.05),
        checks::latency_p95(&metrics, Duration::from_secs(2)),
        checks::cache_hit_rate(&cache, 0.8),
    ]);
    report.metrics = Some(metrics);
    report.generator = Some(paced.generator);
    println!("{}", report.text());
    if let Some(server) = embedded {
        server.shutdown().await;
    }
    Ok(())
}
