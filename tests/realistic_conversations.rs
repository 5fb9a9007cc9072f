//! Realistic conversations: the seed's five agent profiles at once — short frequent queries,
//! occasional long contexts, rapid-fire bursts, two intermittent agents — all complete, none
//! hangs, cache behaviour makes sense.
//!
//! Run: `cargo test --features stress --test realistic_conversations`. The span defaults to
//! 30 s (`SEMANTIC_STRESS_REALISTIC_SECONDS` overrides it). Without the feature the test is
//! listed as ignored and `-- --ignored` (or an IDE's run button) runs it. Reports:
//! `target/stress-reports/`.

mod common;

use std::time::Duration;

use common::{Server, finish_streamed, overrides};
use semantic_stress::suite;
use serial_test::file_serial;

/// How long the agents keep talking.
const SPAN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "stress"),
    ignore = "stress test: cargo test --features stress"
)]
#[file_serial(stress)]
async fn test_realistic_conversation_patterns() {
    let server = Server::start(&[]).await;
    let span = overrides().realistic_span_or(SPAN);
    let report = suite::realistic(
        server.target(),
        "test_realistic_conversation_patterns",
        span,
    );
    finish_streamed(&report.await.expect("valid settings"));
}
