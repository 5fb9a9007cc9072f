//! The reference server: a faithful, fault-injectable model of the semantic caching server.
//!
//! It speaks the Anthropic Messages API (JSON and SSE streaming), keeps a KV cache per agent in
//! a fixed block pool with longest-common-prefix reuse and LRU eviction, admits requests by
//! reserving blocks for prompt + `max_tokens` and rejects at once with 429 `overloaded_error` +
//! `Retry-After` when the pool would pass 95%, and simulates compute with a batch engine whose
//! prefill and decode speeds are settings. Every fault of the contract can be switched on by
//! name ([`Fault`]) so that each stress check can be shown to fail when it should.
//!
//! # Pieces
//! - [`ServerConfig`]: grouped settings ([`PoolSettings`], [`EngineSettings`],
//!   [`AdmissionSettings`], [`HttpSettings`]), profiles ([`Profile`]) and faults;
//!   [`ServerArgs`], the flat flags and environment variables, converts into it once.
//! - [`App`]: the service, apart from any socket; [`App::handle`] answers one request.
//! - [`ReferenceServer`]: binds and serves an [`App`]; [`Stats`] is what it counted.
//!
//! # Example
//! ```no_run
//! use reference_server::{Fault, ReferenceServer, ServerConfig};
//!
//! # async fn demo() -> Result<(), reference_server::Error> {
//! let server = ReferenceServer::start(ServerConfig::default().fault(Fault::NoCache)).await?;
//! let url = format!("{}/v1/messages", server.base_url());
//! // ... send load to `url` ...
//! let stats = server.stats();
//! assert_eq!(stats.pool.used_blocks, stats.pool.cached_blocks);
//! server.shutdown().await;
//! # let _ = url;
//! # Ok(())
//! # }
//! ```

pub mod chaos;

mod agents;
mod app;
mod cli;
mod config;
mod engine;
mod error;
mod fault;
mod generate;
mod messages;
mod metrics;
mod personality;
mod pool;
mod ratelimit;
mod response;
mod routes;
mod serve;
mod sse;
mod stamp;
mod stats;
mod stream;
mod tokenizer;
mod validate;

pub use app::{App, Dropped};
pub use cli::{DEFAULT_PORT, ServerArgs};
pub use config::{
    AdmissionSettings, Batching, EngineSettings, HttpSettings, KvDtype, ModelSpec, PoolGeometry,
    PoolSettings, Profile, ServerConfig, TOKENS_PER_BLOCK,
};
pub use error::{Error, Result};
pub use fault::{Fault, ParseFaultError};
pub use personality::{Personality, PersonalitySettings};
pub use response::Body;
pub use serve::{ConnectionLimits, ReferenceServer};
pub use stamp::STAMP_HEADER;
pub use stats::{AgentStats, PoolStats, Stats};
