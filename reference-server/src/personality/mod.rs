//! Personalities: whole behaviour sets modelled on real server families, so that the suite's
//! verdicts can be proved against each shape of server it will meet.
//!
//! - [`Personality::Semantic`]: the intended contract (`docs/server-contract.md`), the default.
//! - [`Personality::AgentMemory`]: the original semantic caching server
//!   (yshk-mxim/agent-memory): static batches of two, no cancellation, a pool that never frees
//!   idle agents' blocks, 503 `{"detail"}` after the generation ran, a global rate limiter.
//! - [`Personality::LlamaCpp`]: llama.cpp's `llama-server`: fixed slots, an unbounded deferred
//!   queue, per-slot prompt caches reused by one owner at a time, OpenAI-style errors.
//! - [`Personality::Vllm`]: vLLM: continuous batching of up to 256 sequences, an unbounded
//!   waiting queue, preemption when the KV cache is full, automatic prefix caching shared by all
//!   requests, `vllm:` metrics.
//!
//! Each module cites the file and line of the real project it models; `docs/personalities.md`
//! lists them with the suite's verdicts. Speeds, batch sizes and pool sizes are settings whose
//! defaults keep the tests fast; who queues, who rejects, when and with what is the real
//! server's.

pub(crate) mod agent_memory;
pub(crate) mod llamacpp;
mod stream;
pub(crate) mod vllm;

use std::error::Error as StdError;
use std::str::FromStr;

use bytes::Bytes;
use http::{Request, Response};

use super::app::{App, Failure};
use super::config::{Batching, ServerConfig};
use super::messages::{read_body, tokenize};
use super::response::{ApiError, Body};
use super::tokenizer::Prompt;
use super::validate::{Endpoint, ParsedRequest, parse_request};

pub(crate) use agent_memory::Store as AgentMemoryStore;
pub(crate) use llamacpp::Slots;
pub(crate) use vllm::PrefixCache;

/// A whole behaviour set of the reference server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Personality {
    /// The intended contract: admission by reservation, graceful 429 with `Retry-After`.
    #[default]
    Semantic,
    /// The original semantic caching server, yshk-mxim/agent-memory.
    AgentMemory,
    /// llama.cpp's `llama-server`.
    LlamaCpp,
    /// vLLM's OpenAI-compatible server with its Anthropic route.
    Vllm,
}

impl Personality {
    /// Whether the server closes the connection after each streamed reply, whatever
    /// keep-alive it advertised: llama-server does (`tools/server/server-http.cpp:445-458`).
    pub fn closes_after_stream(self) -> bool {
        self == Self::LlamaCpp
    }

    /// Every personality, by its command-line name.
    pub const NAMES: [&'static str; 4] = ["semantic", "agent-memory", "llama.cpp", "vllm"];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Semantic => "semantic",
            Self::AgentMemory => "agent-memory",
            Self::LlamaCpp => "llama.cpp",
            Self::Vllm => "vllm",
        }
    }
}

impl FromStr for Personality {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "semantic" | "default" => Ok(Self::Semantic),
            "agent-memory" | "agent_memory" | "agentmemory" => Ok(Self::AgentMemory),
            "llama.cpp" | "llamacpp" | "llama-cpp" | "llama-server" => Ok(Self::LlamaCpp),
            "vllm" => Ok(Self::Vllm),
            other => Err(format!(
                "unknown personality {other:?}; expected one of {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

impl std::fmt::Display for Personality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The personality and its own options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PersonalitySettings {
    /// The behaviour set.
    pub kind: Personality,
    /// llama.cpp: replies begin with a `thinking` block, as a reasoning model's do
    /// (`tools/server/server-task.cpp:1136-1200`).
    pub thinking: bool,
    /// llama.cpp: `/metrics` is served (its `--metrics`); without it, 501.
    pub metrics: bool,
}

impl ServerConfig {
    /// Takes on `kind`'s defaults for the engine, admission and pool; call it before editing
    /// those groups. The default speeds keep tests fast; the shape is the real server's.
    #[must_use]
    pub fn personality(mut self, kind: Personality) -> Self {
        self.personality.kind = kind;
        let e = &mut self.engine;
        match kind {
            Personality::Semantic => {}
            Personality::AgentMemory => {
                // `src/adapters/config/settings.py:43-48`: max_batch_size 2;
                // `src/application/scheduler.py:257-274`: admission only when none decodes;
                // `scheduler.py:80-81`: unbounded queues; no cancel path in `scheduler.py`.
                e.max_batch_size = 2;
                e.batching = Batching::Static;
                e.max_queue = None;
                e.cancel_on_disconnect = false;
                // `benchmarks/analysis/BENCHMARK_REPORT.md:30-47`: 26 tok/s alone, 11 per
                // sequence in pairs (2.36×); `README.md:39-43`: cold TTFT 4 s at 1K tokens
                // (about 250 tok/s prefill). Scaled by 300 to keep tests fast.
                e.decode_tokens_per_sec = 26.0 * 300.0;
                e.batch_slowdown = 26.0 / 11.0 - 1.0;
                e.prefill_tokens_per_sec = 250.0 * 300.0;
                // `settings.py:257-269`: 1000 requests/min global, 60 per X-Agent-ID.
                self.admission.global_rate_limit = Some(1000);
                self.admission.agent_rate_limit = Some(60);
                // `settings.py:191-196`: 12 hot agents (eviction frees no blocks).
                self.pool.max_hot_agents = 12;
            }
            Personality::LlamaCpp => {
                // `tools/server/server.cpp:101-106`: auto -np is 4 slots;
                // `server-queue.h:22-23`: an unbounded deferred deque. About 37 tok/s per slot
                // measured on this project's machine (SmolLM2-135M Q4), scaled by 100.
                e.max_batch_size = 4;
                e.decode_tokens_per_sec = 3_700.0;
                e.max_queue = None;
                e.cancel_on_disconnect = true;
            }
            Personality::Vllm => {
                // `vllm/engine/arg_utils.py:2315-2366`: max_num_seqs 256;
                // `v1/core/sched/request_queue.py:75-146`: an unbounded FCFS queue.
                e.max_batch_size = 256;
                e.max_queue = None;
                e.cancel_on_disconnect = true;
            }
        }
        self
    }

    /// Edits the personality's own options.
    #[must_use]
    pub fn personality_options(mut self, edit: impl FnOnce(&mut PersonalitySettings)) -> Self {
        edit(&mut self.personality);
        self
    }
}

/// What a personality keeps beside the shared state.
#[derive(Debug)]
pub(crate) enum State {
    /// Nothing: the semantic caches serve.
    Semantic,
    /// The original's pool: agents' blocks, never freed while idle.
    AgentMemory(std::sync::Mutex<AgentMemoryStore>),
    /// llama.cpp's slots and host-RAM prompt cache.
    LlamaCpp(Slots),
    /// vLLM's global prefix cache.
    Vllm(std::sync::Mutex<PrefixCache>),
}

impl State {
    /// The state `config`'s personality starts with.
    pub(crate) fn new(config: &ServerConfig) -> Self {
        let g = config.geometry();
        match config.personality.kind {
            Personality::Semantic => Self::Semantic,
            Personality::AgentMemory => {
                Self::AgentMemory(std::sync::Mutex::new(AgentMemoryStore::new(g)))
            }
            Personality::LlamaCpp => {
                Self::LlamaCpp(Slots::new(config.engine.max_batch_size, g.token_capacity()))
            }
            Personality::Vllm => Self::Vllm(std::sync::Mutex::new(PrefixCache::new(
                vllm::kv(&g).capacity_blocks,
            ))),
        }
    }
}

/// The paged KV cache of the engine, for the personalities that have one.
pub(crate) fn paged_kv(config: &ServerConfig) -> Option<super::engine::PagedKv> {
    (config.personality.kind == Personality::Vllm).then(|| vllm::kv(&config.geometry()))
}

/// Answers any route of a personality other than [`Personality::Semantic`].
pub(crate) async fn route<B>(
    app: &App,
    req: Request<B>,
) -> (&'static str, Result<Response<Body>, Failure>)
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    match app.config().personality.kind {
        Personality::AgentMemory => agent_memory::route(app, req).await,
        Personality::LlamaCpp => llamacpp::route(app, req).await,
        Personality::Vllm => vllm::route(app, req).await,
        // The semantic routes are `App::route`'s own; nothing reaches here with them.
        Personality::Semantic => {
            let e = ApiError::not_found(format!("no route {}", req.uri().path()));
            ("unmatched", Err(e.into()))
        }
    }
}

/// A messages request read, validated and tokenized.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) parts: http::request::Parts,
    pub(crate) parsed: ParsedRequest,
    pub(crate) prompt: Prompt,
}

/// Reads, validates and tokenizes a messages request; applies the `degrade` fault.
pub(crate) async fn incoming<B>(app: &App, req: Request<B>) -> Result<Incoming, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    let bytes = read_body(app, &parts, body).await?;
    let parsed = parse_request(&bytes, Endpoint::Messages).map_err(ApiError::invalid)?;
    let prompt = tokenize(&parsed);
    if let Some(step) = app.config().faults.degrade_step {
        let served = super::stats::read(&app.inner.counters.completed);
        let served = u32::try_from(served).unwrap_or(u32::MAX);
        tokio::time::sleep(step.saturating_mul(served)).await;
    }
    Ok(Incoming {
        parts,
        parsed,
        prompt,
    })
}

#[cfg(test)]
mod tests;
