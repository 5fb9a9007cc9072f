//! Realistic conversations: the seed's five agent profiles at once — short frequent queries,
//! occasional long contexts, rapid-fire bursts, two intermittent agents — all complete, none
//! hangs, cache behaviour makes sense.
//!
//! Run: `cargo test --features stress --test realistic_conversations`. The span defaults to
//! 30 s (`SEMANTIC_STRESS_REALISTIC_SECONDS` overrides it). Reports: `target/stress-reports/`.

mod common;

use std::time::Duration;

use common::scenarios;
use common::{Target, finish};
use serial_test::file_serial;

/// How long the agents keep talking.
const SPAN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[file_serial(stress)]
async fn test_realistic_conversation_patterns() {
    let span = std::env::var("SEMANTIC_STRESS_REALISTIC_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(SPAN, Duration::from_secs_f64);
    let target = Target::start(&[]);
    let report = scenarios::realistic(&target, "test_realistic_conversation_patterns", span).await;
    finish(&report);
}
