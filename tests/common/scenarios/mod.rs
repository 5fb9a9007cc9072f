//! The scenarios behind the stress suites, shared with the fault-detection tests: each runs
//! load against a [`Target`] and returns a [`Report`] whose verdicts say what held.

use std::time::Duration;

use semantic_stress::anthropic::{Message, MessagesRequest};
use semantic_stress::{Report, Request};

use super::Target;

/// Model name in generated requests.
const MODEL: &str = "test-model";
/// New agents in a row that must be served at baseline latency for the pool to count as
/// recovered.
const RECOVERY_STREAK: u32 = 5;
/// Warm-up of sustained runs (at most half the run): memory and latency before it are not
/// judged.
const SUSTAINED_WARMUP: Duration = Duration::from_secs(20);
/// Cap on requests in flight in the exhausting phase.
const HIGH_IN_FLIGHT: usize = 256;
/// Workers of the background traffic that runs beside multi-turn conversations.
const BACKGROUND_WORKERS: usize = 8;

fn message(text: &str, max_tokens: u32) -> Request {
    Request::messages(&MessagesRequest::new(
        MODEL,
        vec![Message::user(text)],
        max_tokens,
    ))
}

fn base_report(name: &str, target: &Target) -> Report {
    let mut r = Report::new(name, target.base_url());
    r.config("reference_server", target.is_reference());
    r
}

mod agents;
mod pool;
mod timed;

// Each test binary uses a subset of the scenarios.
#[allow(unused_imports)]
pub use agents::*;
#[allow(unused_imports)]
pub use pool::*;
#[allow(unused_imports)]
pub use timed::*;
