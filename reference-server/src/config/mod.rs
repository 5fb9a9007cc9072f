//! Settings of the reference server: one [`ServerConfig`] of grouped, validated settings
//! (model, pool, engine, admission, http), built from a [`Profile`]'s defaults.
//!
//! The command line ([`super::ServerArgs`]) is a flat list of flags converted once into these
//! groups; the rest of the server reads only the groups.
//!
//! The default is a *small, fast* server: a tiny model (4 layers, 2 KV heads, head_dim 64,
//! FP16 → 128 KiB per block-layer) in a 96 MB budget gives 768 blocks; a request with a
//! ~20-token prompt and `max_tokens` 100 reserves 4 blocks, so about 180 requests fit under the
//! 95% admission limit. The seed's burst of 150 such requests is therefore served, and a 429
//! comes only from real exhaustion. Batches of 8 at 2000 tokens/s serve about 180 requests/s of
//! the seed's replies (90 tokens on average), so paced overload (400 requests/s of up to 200
//! tokens, or 200 agents of 400 tokens each) fills the pool within a second.

mod model;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::fault::{Fault, FaultSet};
use super::personality::PersonalitySettings;
use crate::Error;

pub use model::{KvDtype, ModelSpec, PoolGeometry, Profile, TOKENS_PER_BLOCK};

/// The block pool and the agents' caches in it.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    /// KV cache budget in MiB (2^20 bytes); the pool holds budget / bytes per block-layer blocks.
    pub cache_budget_mb: u64,
    /// Idle agents kept cached; beyond it the least recently used are evicted.
    pub max_hot_agents: usize,
    /// Pool utilization (0–1) that admission never passes (default 0.95).
    pub admit_max_utilization: f64,
    /// Pool utilization (0–1) above which `/health/ready` answers 503 (default 0.90).
    pub ready_max_utilization: f64,
}

/// How the engine admits waiting sequences into the running batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Batching {
    /// A free slot is filled at the next step (vLLM, llama.cpp slots, the semantic default).
    #[default]
    Continuous,
    /// A new batch starts only when every sequence of the running one has finished
    /// (agent-memory's scheduler).
    Static,
}

/// The batch engine: how many sequences run together, how long the rest may wait, and how fast
/// they go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineSettings {
    /// Sequences decoded together per engine step.
    pub max_batch_size: usize,
    /// Admitted requests that may wait for a batch slot (beyond it, 429 `overloaded_error`);
    /// `None`: unbounded.
    pub max_queue: Option<usize>,
    /// How waiting sequences join the running batch.
    pub batching: Batching,
    /// Per-sequence decode slows with the batch: `decode / (1 + batch_slowdown × (n − 1))`
    /// tokens/s with `n` sequences running (0: independent of the batch).
    pub batch_slowdown: f64,
    /// Whether a request whose client went away stops running (else it runs to its end and
    /// keeps its batch slot).
    pub cancel_on_disconnect: bool,
    /// Prefill speed per sequence in tokens/s (0 = instant).
    pub prefill_tokens_per_sec: f64,
    /// Decode speed per sequence in tokens/s (0 = instant).
    pub decode_tokens_per_sec: f64,
    /// Period of the batch engine's step while sequences are running.
    pub tick: Duration,
    /// Seed of the deterministic output text.
    pub seed: u64,
}

/// How requests are refused: capacity rejections and rate limits.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionSettings {
    /// Status of an `overloaded_error` rejection: 429 (default), 503 or 529.
    pub reject_status: u16,
    /// `Retry-After` of rejections (rounded up to whole seconds, at least 1).
    pub retry_after: Duration,
    /// Requests per sliding 60 s window over all agents (`None`: unlimited).
    pub global_rate_limit: Option<u32>,
    /// Requests per sliding 60 s window per agent (`None`: unlimited).
    pub agent_rate_limit: Option<u32>,
}

/// The HTTP side: address, keys, limits and timeouts.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// Address to bind (default `127.0.0.1:0`; port 0 picks a free port).
    pub addr: SocketAddr,
    /// Accepted API keys; empty turns authentication off.
    pub api_keys: Vec<String>,
    /// Key for `DELETE /admin/caches` (`None`: admin routes refuse with 403).
    pub admin_key: Option<String>,
    /// Largest accepted request body; larger ones get 413 `request_too_large`.
    pub max_body_bytes: usize,
    /// How long shutdown waits for in-flight requests before closing them.
    pub drain_timeout: Duration,
    /// How long an idle keep-alive connection may wait for its next request head. Keep it
    /// above clients' pool idle timeouts so that clients, not the server, close idle sockets.
    pub keep_alive_timeout: Duration,
}

/// Every setting of the reference server, by group.
///
/// Groups are plain data with public fields; the chained setters take a closure that edits
/// one group.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use reference_server::{Fault, ServerConfig};
///
/// let config = ServerConfig::default()
///     .pool(|p| p.cache_budget_mb = 64)
///     .engine(|e| e.decode_tokens_per_sec = 500.0)
///     .fault(Fault::NoCache);
/// assert_eq!(config.geometry().total_blocks, 512);
/// ```
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Cache geometry of the simulated model.
    pub model: ModelSpec,
    /// The block pool.
    pub pool: PoolSettings,
    /// The batch engine.
    pub engine: EngineSettings,
    /// Rejections and rate limits.
    pub admission: AdmissionSettings,
    /// Address, keys, limits and timeouts of the HTTP side.
    pub http: HttpSettings,
    /// Which real server family the whole behaviour follows, and its options.
    pub personality: PersonalitySettings,
    pub(crate) faults: FaultSet,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::profile(Profile::Small)
    }
}

impl ServerConfig {
    /// The defaults of a profile, bound to `127.0.0.1:0` (an ephemeral port).
    pub fn profile(profile: Profile) -> Self {
        let small = Self {
            model: ModelSpec::tiny(),
            pool: PoolSettings {
                cache_budget_mb: 96,
                max_hot_agents: 64,
                admit_max_utilization: 0.95,
                ready_max_utilization: 0.90,
            },
            engine: EngineSettings {
                max_batch_size: 8,
                max_queue: Some(256),
                batching: Batching::Continuous,
                batch_slowdown: 0.0,
                cancel_on_disconnect: true,
                prefill_tokens_per_sec: 50_000.0,
                decode_tokens_per_sec: 2_000.0,
                tick: Duration::from_millis(5),
                seed: 0x5eed,
            },
            admission: AdmissionSettings {
                reject_status: 429,
                retry_after: Duration::from_secs(1),
                global_rate_limit: None,
                agent_rate_limit: None,
            },
            http: HttpSettings {
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                api_keys: Vec::new(),
                admin_key: None,
                max_body_bytes: 4 << 20,
                drain_timeout: Duration::from_secs(10),
                keep_alive_timeout: Duration::from_secs(120),
            },
            personality: PersonalitySettings::default(),
            faults: FaultSet::default(),
        };
        match profile {
            Profile::Small => small,
            Profile::Realistic => small
                .model(ModelSpec::large())
                .pool(|p| {
                    p.cache_budget_mb = 8192;
                    p.max_hot_agents = 32;
                })
                .engine(|e| {
                    e.max_batch_size = 8;
                    e.prefill_tokens_per_sec = 600.0;
                    e.decode_tokens_per_sec = 30.0;
                    e.tick = Duration::from_millis(20);
                })
                .http(|h| h.drain_timeout = Duration::from_secs(60)),
            Profile::Instant => small
                .pool(|p| {
                    p.cache_budget_mb = 1024;
                    p.max_hot_agents = 4096;
                })
                .engine(|e| {
                    e.max_batch_size = 1024;
                    e.max_queue = Some(4096);
                })
                .instant(),
        }
    }

    /// Cache geometry of the simulated model.
    #[must_use]
    pub fn model(mut self, model: ModelSpec) -> Self {
        self.model = model;
        self
    }

    /// Edits the pool settings.
    #[must_use]
    pub fn pool(mut self, edit: impl FnOnce(&mut PoolSettings)) -> Self {
        edit(&mut self.pool);
        self
    }

    /// Edits the engine settings.
    #[must_use]
    pub fn engine(mut self, edit: impl FnOnce(&mut EngineSettings)) -> Self {
        edit(&mut self.engine);
        self
    }

    /// Edits the admission settings.
    #[must_use]
    pub fn admission(mut self, edit: impl FnOnce(&mut AdmissionSettings)) -> Self {
        edit(&mut self.admission);
        self
    }

    /// Edits the HTTP settings.
    #[must_use]
    pub fn http(mut self, edit: impl FnOnce(&mut HttpSettings)) -> Self {
        edit(&mut self.http);
        self
    }

    /// Address to bind (default `127.0.0.1:0`; port 0 picks a free port).
    #[must_use]
    pub fn addr(self, addr: SocketAddr) -> Self {
        self.http(|h| h.addr = addr)
    }

    /// Zero simulated compute: prefill and decode are instant.
    #[must_use]
    pub fn instant(self) -> Self {
        self.engine(|e| {
            e.prefill_tokens_per_sec = 0.0;
            e.decode_tokens_per_sec = 0.0;
        })
    }

    /// Turns a fault on.
    #[must_use]
    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.insert(fault);
        self
    }

    /// The address to bind.
    pub fn bind_addr(&self) -> SocketAddr {
        self.http.addr
    }

    /// The faults in force.
    pub fn faults(&self) -> Vec<Fault> {
        self.faults.list()
    }

    /// Cache geometry and pool size.
    pub fn geometry(&self) -> PoolGeometry {
        let bytes_per_block_layer = self.model.bytes_per_block_layer().max(1);
        PoolGeometry {
            bytes_per_block_layer,
            total_blocks: self.pool.cache_budget_mb.saturating_mul(1 << 20) / bytes_per_block_layer,
            n_layers: self.model.n_layers,
            tokens_per_block: TOKENS_PER_BLOCK,
        }
    }

    /// Whether both prefill and decode are instant.
    pub(crate) fn is_instant(&self) -> bool {
        self.engine.prefill_tokens_per_sec <= 0.0 && self.engine.decode_tokens_per_sec <= 0.0
    }

    /// Checks every setting once.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field: &'static str, reason: String| Err(Error::InvalidConfig { field, reason });
        let m = &self.model;
        if m.n_layers == 0 || m.n_kv_heads == 0 || m.head_dim == 0 {
            return bad("model", format!("every dimension must be >= 1, got {m:?}"));
        }
        if self.geometry().total_blocks < m.n_layers {
            return bad(
                "cache_budget_mb",
                format!(
                    "{} MB holds {} blocks, fewer than one block per layer ({})",
                    self.pool.cache_budget_mb,
                    self.geometry().total_blocks,
                    m.n_layers
                ),
            );
        }
        let e = &self.engine;
        if e.max_batch_size == 0 {
            return bad("max_batch_size", "must be >= 1".to_owned());
        }
        for (field, rate) in [
            ("prefill_tokens_per_sec", e.prefill_tokens_per_sec),
            ("decode_tokens_per_sec", e.decode_tokens_per_sec),
            ("batch_slowdown", e.batch_slowdown),
        ] {
            if !rate.is_finite() || rate < 0.0 {
                return bad(field, format!("{rate} is not a rate >= 0"));
            }
        }
        if e.tick.is_zero() {
            return bad("engine_tick", "must be > 0".to_owned());
        }
        for (field, ratio) in [
            ("admit_max_utilization", self.pool.admit_max_utilization),
            ("ready_max_utilization", self.pool.ready_max_utilization),
        ] {
            if !(ratio > 0.0 && ratio <= 1.0) {
                return bad(field, format!("{ratio} is not a ratio in (0, 1]"));
            }
        }
        let a = &self.admission;
        if ![429, 503, 529].contains(&a.reject_status) {
            return bad(
                "reject_status",
                format!("{} is not one of 429, 503, 529", a.reject_status),
            );
        }
        if a.global_rate_limit == Some(0) || a.agent_rate_limit == Some(0) {
            return bad(
                "rate_limit",
                "a rate limit must be >= 1 per minute".to_owned(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pool_is_768_blocks_of_128_kib() {
        let g = ServerConfig::default().geometry();
        assert_eq!(g.bytes_per_block_layer, 128 * 1024);
        assert_eq!(g.total_blocks, 768);
        // The seed's burst: 150 requests of ~20 prompt tokens + max_tokens 100 fit under 95%…
        let limit = (768.0 * 0.95) as u64;
        assert!(150 * g.blocks_for(120) <= limit);
        // …and 200 agents of max_tokens 400 (the recovery test's saturation) do not.
        assert!(200 * g.blocks_for(420) > limit);
        // ~20-token prompt + max_tokens 100 → one block in each of 4 layers
        assert_eq!(g.blocks_for(120), 4);
        assert_eq!(g.blocks_for(0), 0);
        assert_eq!(g.blocks_for(257), 8);
    }

    #[test]
    fn q4_adds_a_scale_and_bias_per_group() {
        let spec = ModelSpec::large();
        let elements = 8 * 2 * 256 * 256;
        assert_eq!(
            spec.bytes_per_block_layer(),
            elements / 2 + elements / 64 * 4
        );
        let g = ServerConfig::profile(Profile::Realistic).geometry();
        assert_eq!(g.total_blocks, 8192 * (1 << 20) / 589_824);
    }

    #[test]
    fn profiles_validate_and_bad_settings_are_named() {
        for p in [Profile::Small, Profile::Realistic, Profile::Instant] {
            ServerConfig::profile(p)
                .validate()
                .expect("profile is valid");
        }
        let err = ServerConfig::default()
            .admission(|a| a.reject_status = 500)
            .validate();
        assert!(err.unwrap_err().to_string().contains("reject_status"));
        let err = ServerConfig::default()
            .pool(|p| p.cache_budget_mb = 0)
            .validate();
        assert!(err.unwrap_err().to_string().contains("cache_budget_mb"));
    }
}
