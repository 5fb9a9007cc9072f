//! Settings of the reference server: one typed [`ServerConfig`] with `Default`, chained
//! setters and three documented profiles.
//!
//! The default is a *small, fast* server whose pool a burst of about 150 concurrent requests
//! clearly exhausts: a tiny model (4 layers, 2 KV heads, head_dim 64, FP16 → 128 KiB per
//! block-layer) in a 32 MB budget gives 256 blocks; a request with a ~20-token prompt and
//! `max_tokens` 100 reserves 4 blocks, so about 60 requests fit under the 95% admission limit.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use super::fault::{Fault, FaultSet};
use crate::Error;

/// Tokens held by one block (of one layer).
pub const TOKENS_PER_BLOCK: u64 = 256;

/// Element type of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KvDtype {
    /// 4-bit quantised: half a byte per element plus 4 bytes (scale and bias) per 64 elements.
    Q4,
    /// 16-bit floats: 2 bytes per element.
    Fp16,
}

/// The cache geometry of the simulated model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelSpec {
    /// Name reported by `GET /v1/models`.
    pub name: String,
    /// Transformer layers; each holds its own blocks.
    pub n_layers: u64,
    /// Key/value heads per layer.
    pub n_kv_heads: u64,
    /// Elements per head.
    pub head_dim: u64,
    /// Element type.
    pub dtype: KvDtype,
}

impl ModelSpec {
    /// The tiny default model: 4 layers, 2 KV heads, head_dim 64, FP16 (128 KiB per block-layer).
    pub fn tiny() -> Self {
        Self {
            name: "semantic-reference-tiny".to_owned(),
            n_layers: 4,
            n_kv_heads: 2,
            head_dim: 64,
            dtype: KvDtype::Fp16,
        }
    }

    /// A laptop-sized model like the original's (48 layers, 8 KV heads, head_dim 256, Q4:
    /// 576 KiB per block-layer).
    pub fn large() -> Self {
        Self {
            name: "semantic-reference-large".to_owned(),
            n_layers: 48,
            n_kv_heads: 8,
            head_dim: 256,
            dtype: KvDtype::Q4,
        }
    }

    /// Bytes of one block of one layer: n_kv_heads × 2 (K and V) × head_dim × 256 elements,
    /// at 2 bytes each (FP16) or half a byte plus 4 bytes per 64-element group (Q4).
    pub fn bytes_per_block_layer(&self) -> u64 {
        let elements = self.n_kv_heads * 2 * self.head_dim * TOKENS_PER_BLOCK;
        match self.dtype {
            KvDtype::Fp16 => elements * 2,
            KvDtype::Q4 => elements.div_ceil(2) + elements.div_ceil(64) * 4,
        }
    }
}

/// Canned sets of defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Small and fast (the default): 256 blocks, ~2000 tokens/s decode per sequence.
    #[default]
    Small,
    /// Seconds per request like the original on a laptop: the large model, a 8 GB budget,
    /// 30 tokens/s decode and 600 tokens/s prefill, batches of 8.
    Realistic,
    /// Zero simulated compute and a roomy pool (1 GB), for measuring the server's own overhead.
    Instant,
}

impl std::str::FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "small" | "default" => Ok(Self::Small),
            "realistic" => Ok(Self::Realistic),
            "instant" => Ok(Self::Instant),
            other => Err(format!(
                "unknown profile {other:?}; expected small, realistic or instant"
            )),
        }
    }
}

/// Cache geometry and pool size derived from a [`ServerConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolGeometry {
    /// Bytes of one block of one layer.
    pub bytes_per_block_layer: u64,
    /// Blocks in the pool (each 256 tokens of one layer).
    pub total_blocks: u64,
    /// Layers; an agent caching T tokens holds ceil(T/256) × n_layers blocks.
    pub n_layers: u64,
    /// Tokens per block (256).
    pub tokens_per_block: u64,
}

impl PoolGeometry {
    /// Blocks needed to hold `tokens` tokens in every layer.
    pub fn blocks_for(&self, tokens: u64) -> u64 {
        tokens.div_ceil(self.tokens_per_block) * self.n_layers
    }
}

/// Every setting of the reference server.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use reference_server::{Fault, ServerConfig};
///
/// let config = ServerConfig::default()
///     .cache_budget_mb(64)
///     .decode_tokens_per_sec(500.0)
///     .fault(Fault::NoCache);
/// assert_eq!(config.geometry().total_blocks, 512);
/// ```
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub(crate) addr: SocketAddr,
    pub(crate) model: ModelSpec,
    pub(crate) cache_budget_mb: u64,
    pub(crate) max_batch_size: usize,
    pub(crate) max_queue: usize,
    pub(crate) max_hot_agents: usize,
    pub(crate) prefill_tokens_per_sec: f64,
    pub(crate) decode_tokens_per_sec: f64,
    pub(crate) engine_tick: Duration,
    pub(crate) admit_max_utilization: f64,
    pub(crate) ready_max_utilization: f64,
    pub(crate) reject_status: u16,
    pub(crate) retry_after: Duration,
    pub(crate) global_rate_limit: Option<u32>,
    pub(crate) agent_rate_limit: Option<u32>,
    pub(crate) api_keys: Vec<String>,
    pub(crate) admin_key: Option<String>,
    pub(crate) max_body_bytes: usize,
    pub(crate) drain_timeout: Duration,
    pub(crate) keep_alive_timeout: Duration,
    pub(crate) seed: u64,
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
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            model: ModelSpec::tiny(),
            cache_budget_mb: 32,
            max_batch_size: 16,
            max_queue: 256,
            max_hot_agents: 64,
            prefill_tokens_per_sec: 50_000.0,
            decode_tokens_per_sec: 2_000.0,
            engine_tick: Duration::from_millis(5),
            admit_max_utilization: 0.95,
            ready_max_utilization: 0.90,
            reject_status: 429,
            retry_after: Duration::from_secs(1),
            global_rate_limit: None,
            agent_rate_limit: None,
            api_keys: Vec::new(),
            admin_key: None,
            max_body_bytes: 4 << 20,
            drain_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(120),
            seed: 0x5eed,
            faults: FaultSet::default(),
        };
        match profile {
            Profile::Small => small,
            Profile::Realistic => Self {
                model: ModelSpec::large(),
                cache_budget_mb: 8192,
                max_batch_size: 8,
                max_hot_agents: 32,
                prefill_tokens_per_sec: 600.0,
                decode_tokens_per_sec: 30.0,
                engine_tick: Duration::from_millis(20),
                drain_timeout: Duration::from_secs(60),
                ..small
            },
            Profile::Instant => Self {
                cache_budget_mb: 1024,
                max_batch_size: 1024,
                max_queue: 4096,
                max_hot_agents: 4096,
                prefill_tokens_per_sec: 0.0,
                decode_tokens_per_sec: 0.0,
                ..small
            },
        }
    }

    /// Address to bind (default `127.0.0.1:0`; port 0 picks a free port).
    #[must_use]
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Cache geometry of the simulated model.
    #[must_use]
    pub fn model(mut self, model: ModelSpec) -> Self {
        self.model = model;
        self
    }

    /// KV cache budget in MiB (2^20 bytes); the pool holds budget / bytes per block-layer blocks.
    #[must_use]
    pub fn cache_budget_mb(mut self, mb: u64) -> Self {
        self.cache_budget_mb = mb;
        self
    }

    /// Sequences decoded together per engine step.
    #[must_use]
    pub fn max_batch_size(mut self, n: usize) -> Self {
        self.max_batch_size = n;
        self
    }

    /// Admitted requests that may wait for a batch slot; beyond it, 429 `overloaded_error`.
    #[must_use]
    pub fn max_queue(mut self, n: usize) -> Self {
        self.max_queue = n;
        self
    }

    /// Idle agents kept cached; beyond it the least recently used are evicted.
    #[must_use]
    pub fn max_hot_agents(mut self, n: usize) -> Self {
        self.max_hot_agents = n;
        self
    }

    /// Prefill speed per sequence in tokens/s (0 = instant).
    #[must_use]
    pub fn prefill_tokens_per_sec(mut self, rate: f64) -> Self {
        self.prefill_tokens_per_sec = rate;
        self
    }

    /// Decode speed per sequence in tokens/s (0 = instant).
    #[must_use]
    pub fn decode_tokens_per_sec(mut self, rate: f64) -> Self {
        self.decode_tokens_per_sec = rate;
        self
    }

    /// Zero simulated compute: prefill and decode are instant.
    #[must_use]
    pub fn instant(self) -> Self {
        self.prefill_tokens_per_sec(0.0).decode_tokens_per_sec(0.0)
    }

    /// Period of the batch engine's step while sequences are running.
    #[must_use]
    pub fn engine_tick(mut self, tick: Duration) -> Self {
        self.engine_tick = tick;
        self
    }

    /// Pool utilization (0–1) that admission never passes (default 0.95).
    #[must_use]
    pub fn admit_max_utilization(mut self, ratio: f64) -> Self {
        self.admit_max_utilization = ratio;
        self
    }

    /// Pool utilization (0–1) above which `/health/ready` answers 503 (default 0.90).
    #[must_use]
    pub fn ready_max_utilization(mut self, ratio: f64) -> Self {
        self.ready_max_utilization = ratio;
        self
    }

    /// Status of an `overloaded_error` rejection: 429 (default), 503 or 529.
    #[must_use]
    pub fn reject_status(mut self, status: u16) -> Self {
        self.reject_status = status;
        self
    }

    /// `Retry-After` of rejections (rounded up to whole seconds, at least 1).
    #[must_use]
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// Requests per sliding 60 s window over all agents (`None`: unlimited).
    #[must_use]
    pub fn global_rate_limit(mut self, per_minute: Option<u32>) -> Self {
        self.global_rate_limit = per_minute;
        self
    }

    /// Requests per sliding 60 s window per agent (`None`: unlimited).
    #[must_use]
    pub fn agent_rate_limit(mut self, per_minute: Option<u32>) -> Self {
        self.agent_rate_limit = per_minute;
        self
    }

    /// Accepted API keys; empty turns authentication off.
    #[must_use]
    pub fn api_keys(mut self, keys: Vec<String>) -> Self {
        self.api_keys = keys;
        self
    }

    /// Key for `DELETE /admin/caches` (`None`: admin routes refuse with 403).
    #[must_use]
    pub fn admin_key(mut self, key: Option<String>) -> Self {
        self.admin_key = key;
        self
    }

    /// Largest accepted request body; larger ones get 413 `request_too_large`.
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// How long shutdown waits for in-flight requests before closing them.
    #[must_use]
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// How long an idle keep-alive connection may wait for its next request head. Keep it
    /// above clients' pool idle timeouts so that clients, not the server, close idle sockets.
    #[must_use]
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.keep_alive_timeout = timeout;
        self
    }

    /// Seed of the deterministic output text.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Turns a fault on.
    #[must_use]
    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.insert(fault);
        self
    }

    /// The address to bind.
    pub fn bind_addr(&self) -> SocketAddr {
        self.addr
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
            total_blocks: self.cache_budget_mb.saturating_mul(1 << 20) / bytes_per_block_layer,
            n_layers: self.model.n_layers,
            tokens_per_block: TOKENS_PER_BLOCK,
        }
    }

    /// Whether both prefill and decode are instant.
    pub(crate) fn is_instant(&self) -> bool {
        self.prefill_tokens_per_sec <= 0.0 && self.decode_tokens_per_sec <= 0.0
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
                    self.cache_budget_mb,
                    self.geometry().total_blocks,
                    m.n_layers
                ),
            );
        }
        if self.max_batch_size == 0 {
            return bad("max_batch_size", "must be >= 1".to_owned());
        }
        for (field, rate) in [
            ("prefill_tokens_per_sec", self.prefill_tokens_per_sec),
            ("decode_tokens_per_sec", self.decode_tokens_per_sec),
        ] {
            if !rate.is_finite() || rate < 0.0 {
                return bad(field, format!("{rate} is not a rate >= 0"));
            }
        }
        for (field, ratio) in [
            ("admit_max_utilization", self.admit_max_utilization),
            ("ready_max_utilization", self.ready_max_utilization),
        ] {
            if !(ratio > 0.0 && ratio <= 1.0) {
                return bad(field, format!("{ratio} is not a ratio in (0, 1]"));
            }
        }
        if ![429, 503, 529].contains(&self.reject_status) {
            return bad(
                "reject_status",
                format!("{} is not one of 429, 503, 529", self.reject_status),
            );
        }
        if self.engine_tick.is_zero() {
            return bad("engine_tick", "must be > 0".to_owned());
        }
        if self.global_rate_limit == Some(0) || self.agent_rate_limit == Some(0) {
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
    fn default_pool_is_256_blocks_of_128_kib() {
        let g = ServerConfig::default().geometry();
        assert_eq!(g.bytes_per_block_layer, 128 * 1024);
        assert_eq!(g.total_blocks, 256);
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
        let err = ServerConfig::default().reject_status(500).validate();
        assert!(err.unwrap_err().to_string().contains("reject_status"));
        let err = ServerConfig::default().cache_budget_mb(0).validate();
        assert!(err.unwrap_err().to_string().contains("cache_budget_mb"));
    }
}
