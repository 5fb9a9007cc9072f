//! The simulated model's cache geometry and the pool it gives.

use serde::Serialize;

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

impl std::str::FromStr for KvDtype {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "q4" => Ok(Self::Q4),
            "fp16" | "f16" => Ok(Self::Fp16),
            other => Err(format!("unknown dtype {other:?}; expected q4 or fp16")),
        }
    }
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
    /// Small and fast (the default): 768 blocks, ~2000 tokens/s decode per sequence.
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

/// Cache geometry and pool size derived from a [`super::ServerConfig`].
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

    /// Tokens the whole pool holds in every layer (what a slot or paged KV cache can hold).
    pub fn token_capacity(&self) -> u64 {
        self.total_blocks / self.n_layers.max(1) * self.tokens_per_block
    }
}
