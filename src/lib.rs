//! Stress tests for LLM inference servers that speak the Anthropic Messages API and keep a KV
//! cache per agent in a fixed block pool (the "semantic caching server").
//!
//! # Overview
//!
//! - [`StressHarness`] sends load: concurrent bursts, agent workloads with growing
//!   conversations, sustained, bursty and ramped runs, in a closed loop or paced open loop.
//! - Every request sent yields exactly one [`RequestResult`], whatever happened, classified into
//!   an [`Outcome`].
//! - [`MetricsCollector`] turns records into numbers: HdrHistogram percentiles, throughput,
//!   tokens/s, error and rejection rates, cache hit rates, windows over time and memory trends.
//! - [`ServerScraper`] reads the server's own Prometheus counters during a run (KV-cache usage,
//!   queue, prefix-cache hits) by the names a [`ServerMetricNames`] gives.
//! - [`checks`] turn figures into [`Verdict`](checks::Verdict)s; [`report`] writes them for
//!   people and machines.
//! - [`suite`] is the seed's stress suite as library calls: each scenario runs against a
//!   [`suite::Target`] and returns a [`Report`].
//!
//! The reference server that models the contract, with injectable faults, is its own crate
//! (`reference-server` in this workspace): the default target of the suite, and the proof that
//! every check fails when it should.
//!
//! # Quick start
//!
//! 150 requests at once against the embedded reference server, whose small default pool they
//! exhaust: every request must be answered, with no 5xx, and every non-2xx must be a graceful
//! rejection.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use semantic_stress::anthropic::{Message, MessagesRequest};
//! use reference_server::{ReferenceServer, ServerConfig};
//! use semantic_stress::{MetricsCollector, Request, StressConfig, StressHarness, checks};
//!
//! let server = ReferenceServer::start(ServerConfig::default()).await?;
//! let harness = StressHarness::new(StressConfig::new(server.base_url()).workers(150))?;
//! let body = MessagesRequest::new("test-model", vec![Message::user("Hello")], 100);
//! let results = harness.run_concurrent_requests(&Request::messages(&body), None).await?;
//! assert_eq!(results.len(), 150, "one record per request");
//!
//! let metrics = MetricsCollector::analyze(&results);
//! for verdict in [
//!     checks::all_answered(&metrics),
//!     checks::no_server_errors(&metrics),
//!     checks::only_graceful_failures(&metrics),
//! ] {
//!     assert!(verdict.passed(), "{verdict}");
//! }
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Crate features
//!
//! - `stress`: the stress suites under `tests/` run (without it they are listed as ignored, and
//!   `cargo test -- --ignored` runs them).
//! - `resource-intensive`: stress tests that need far more than a laptop.

// The library returns reports; printing is for tests and binaries.
#![cfg_attr(
    not(test),
    warn(clippy::print_stdout, clippy::print_stderr, clippy::dbg_macro)
)]

pub mod anthropic;
pub mod checks;
pub mod metrics;
pub mod report;
pub mod server_metrics;
pub mod suite;
pub mod target;
pub mod workload;

mod client;
mod error;
mod harness;
mod sampling;

pub use client::{Client, Expect, Request, ResponseLimits};
pub use error::{Error, Result};
pub use harness::{
    Agent, Arrivals, GeneratorStats, Load, Overrides, Pacing, RunResults, Runtime, Slot, Stage,
    Stop, StreamedRun, StressConfig, StressHarness, Tally, Trust,
};
pub use harness::{DEFAULT_BASE_URL, DEFAULT_DURATION, DEFAULT_TIMEOUT, STAMP_HEADER};
pub use harness::{Progress, ProgressFn, Sustained, SustainedLoadMetrics};
pub use metrics::{
    ConnectionUse, Delivery, LoadMetrics, MemorySample, MetricsCollector, Outcome, RequestResult,
};
pub use report::Report;
pub use sampling::{
    MemorySampler, Probe, Probed, pool_utilization, process_rss_bytes, prometheus_rss_bytes,
};
pub use server_metrics::{
    ServerMetricNames, ServerMetrics, ServerSample, ServerScraper, ServerSummary, ServerWindow,
};

// The README's Rust examples compile as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
