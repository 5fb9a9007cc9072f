//! The seed suite as library calls: each scenario runs its load against a [`Target`] and
//! returns a [`Report`] whose verdicts say what held.
//!
//! The integration tests under `tests/` are these calls with the seed's constants; another
//! crate can run the same scenarios against its own server in a few lines.
//!
//! # Scenarios
//! - Pool exhaustion: [`concurrent_burst`], [`graceful_rejection`], [`no_crash`],
//!   [`recovery`], [`streams`].
//! - Concurrent agents: [`rapid_agents`], [`isolation`], [`latency_under_load`], [`hit_rate`].
//! - Over time: [`sustained`] (one run judged by several verdicts) and [`realistic`].
//!
//! Scenarios return [`Err`](crate::Error) only when they cannot run at all (invalid
//! settings); everything the server does is in the report.
//!
//! # Clean-up
//! A scenario that sent load ends by deleting the agents it used
//! ([`Target::delete_agents`]: when the profile declares how, bounded in time and
//! concurrency) and puts the summary in [`Report::cleanup`]; those requests are not in the
//! report's metrics. The profile's cache reset ([`Target::reset_caches`]) is the caller's.
//!
//! # Example
//! The seed's burst of 150 requests against a reference server:
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use reference_server::{ReferenceServer, ServerConfig};
//! use semantic_stress::StressConfig;
//! use semantic_stress::suite::{self, Target};
//!
//! let server = ReferenceServer::start(ServerConfig::default()).await?;
//! let target = Target::new(StressConfig::new(server.base_url()));
//! let report = suite::concurrent_burst(&target, "burst", 150).await?;
//! assert!(report.passed(), "{}", report.failures());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use crate::anthropic::{Message, MessagesRequest};
use crate::{LoadMetrics, MetricsCollector, Report, Request, RequestResult, ServerScraper};

mod agents;
mod calibrate;
mod pool;
mod timed;

pub use crate::Overrides;
pub use crate::target::Target;
pub use agents::{hit_rate, isolation, latency_under_load, rapid_agents};
pub use calibrate::{Calibration, calibrate};
pub use pool::{concurrent_burst, graceful_rejection, no_crash, recovery, streams};
pub use timed::{SustainedRun, SustainedSettings, realistic, sustained};

/// New agents in a row that must be served at baseline latency for the pool to count as
/// recovered.
const RECOVERY_STREAK: u32 = 5;
/// Warm-up of sustained runs (at most half the run): memory and latency before it are not
/// judged.
const SUSTAINED_WARMUP: Duration = Duration::from_secs(20);
/// Share of the offered load a run must apply for its verdicts to judge anything.
const MIN_LOAD_APPLIED: f64 = 0.9;
/// A calibrated overload is this many times the measured capacity (the reference server's
/// tuned 400 requests/s is about 1.25 times its measured capacity for 200-token replies).
const OVERLOAD_FACTOR: f64 = 1.25;
/// Time allowed for calibrating a test's load.
const CALIBRATION_BUDGET: Duration = Duration::from_secs(60);
/// Cap on requests in flight in the exhausting phase.
const HIGH_IN_FLIGHT: usize = 256;
/// Workers of the background traffic that runs beside multi-turn conversations.
const BACKGROUND_WORKERS: usize = 8;

/// A one-message request for the target's model, streamed when the target's settings ask for
/// streams ([`StressConfig::stream`](crate::StressConfig::stream), the default).
fn message(target: &Target, text: &str, max_tokens: u32) -> Request {
    let config = target.config();
    let mut body = MessagesRequest::new(&config.model, vec![Message::user(text)], max_tokens);
    body.stream = config.stream;
    Request::messages(&body)
}

/// The figures of `results`, goodput judged against the target's objectives.
fn analyze(target: &Target, results: &[RequestResult]) -> LoadMetrics {
    let c = target.config();
    MetricsCollector::analyze_with(results, c.slo, c.stall_gap)
}

/// Starts reading the server's `/metrics` every `interval` when the harness's settings name
/// metrics to read (those of the target's profile, see [`Target::harness`]).
fn scrape(harness: &crate::StressHarness, interval: Duration) -> Option<ServerScraper> {
    let names = harness.config().server_metrics.clone()?;
    Some(ServerScraper::start(
        harness.client().clone(),
        names,
        std::time::Instant::now(),
        interval,
    ))
}

/// Stops `scraper` and records what it read in `report` (aligned to its windows, if any), with
/// the queue check when the server exposes its queue.
async fn record_server(report: &mut Report, scraper: Option<ServerScraper>) {
    let Some(scraper) = scraper else {
        return;
    };
    let server = scraper.stop().await;
    if let Some(verdict) = crate::checks::queue_drained(&server) {
        report.verdicts([verdict]);
    }
    report.server_metrics(server);
}

/// The agents `results` used (their `X-Session-ID`s), but for those whose every request was
/// answered 429: a 429 refuses a request before any work is done, so it leaves no agent behind.
fn agents_of<'a>(results: impl IntoIterator<Item = &'a RequestResult>) -> BTreeSet<String> {
    results
        .into_iter()
        .filter(|r| r.status != 429)
        .filter_map(|r| r.agent_id.clone())
        .collect()
}

/// Deletes `agents` after a scenario ([`Target::delete_agents`]) and records the summary in
/// `report`.
async fn clean_up(target: &Target, report: &mut Report, agents: BTreeSet<String>) {
    report.cleanup = Some(target.delete_agents(agents).await);
}

/// A tag that tells this run's agent ids from other runs' (process and clock).
fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{nanos:08x}", std::process::id())
}

fn base_report(name: &str, target: &Target) -> Report {
    let mut r = Report::new(name, target.base_url());
    r.config("reference_server", target.is_reference())
        .config("stream", target.config().stream);
    r
}
