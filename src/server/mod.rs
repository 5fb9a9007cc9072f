//! The reference server: a faithful, fault-injectable model of the semantic caching server.

mod agents;
mod config;
mod engine;
mod fault;
mod generate;
mod pool;
mod ratelimit;
mod tokenizer;
mod validate;

pub use config::{KvDtype, ModelSpec, PoolGeometry, Profile, ServerConfig, TOKENS_PER_BLOCK};
pub use fault::{Fault, ParseFaultError};
