//! Every setting as a command-line flag and an environment variable (clap `env`).
//!
//! [`ServerArgs`] is the single flat list of flags: the `reference-server` binary flattens it
//! into its parser, and [`ServerConfig::from_env`] reads the same variables. It is converted
//! once, by [`ServerArgs::into_config`], into the grouped settings of [`ServerConfig`]; a flag
//! left unset keeps the chosen profile's default.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;

use super::config::{KvDtype, Profile, ServerConfig};
use super::fault::Fault;
use super::personality::Personality;
use crate::Error;

/// Port of the binary when none is given.
pub const DEFAULT_PORT: u16 = 8000;

/// Flags (and environment variables) of the reference server.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "SEMANTIC_HOST", default_value = "127.0.0.1")]
    pub host: Option<IpAddr>,
    /// Port to listen on (0 picks a free port) [default: 8000].
    #[arg(long, env = "SEMANTIC_PORT")]
    pub port: Option<u16>,
    /// Defaults to start from: small (fast, 768 blocks), realistic (seconds per request,
    /// large model, 8 GB) or instant (zero simulated compute, 1 GB).
    #[arg(long, env = "SEMANTIC_PROFILE", default_value = "small")]
    pub profile: Option<Profile>,
    /// Whole behaviour set modelled on a real server family: semantic (the intended contract),
    /// agent-memory (the original server), llama.cpp or vllm [default: semantic].
    #[arg(long, env = "SEMANTIC_PERSONALITY")]
    pub personality: Option<Personality>,
    /// llama.cpp personality: replies begin with a `thinking` block.
    #[arg(long, env = "SEMANTIC_THINKING")]
    pub thinking: bool,
    /// llama.cpp personality: serve /metrics (llama-server's --metrics).
    #[arg(long, env = "SEMANTIC_LLAMACPP_METRICS")]
    pub llamacpp_metrics: bool,
    /// Model name reported by /v1/models.
    #[arg(long, env = "SEMANTIC_MODEL_NAME")]
    pub model_name: Option<String>,
    /// Layers of the simulated model.
    #[arg(long, env = "SEMANTIC_MODEL_LAYERS")]
    pub n_layers: Option<u64>,
    /// KV heads per layer.
    #[arg(long, env = "SEMANTIC_MODEL_KV_HEADS")]
    pub n_kv_heads: Option<u64>,
    /// Elements per head.
    #[arg(long, env = "SEMANTIC_MODEL_HEAD_DIM")]
    pub head_dim: Option<u64>,
    /// KV cache element type: q4 or fp16.
    #[arg(long, env = "SEMANTIC_KV_DTYPE")]
    pub kv_dtype: Option<KvDtype>,
    /// KV cache budget in MB (also read from SEMANTIC_CACHE_BUDGET_MB).
    #[arg(long, env = "SEMANTIC_MLX_CACHE_BUDGET_MB")]
    pub cache_budget_mb: Option<u64>,
    /// Sequences decoded together per engine step.
    #[arg(long, env = "SEMANTIC_MAX_BATCH_SIZE")]
    pub max_batch_size: Option<usize>,
    /// Admitted requests that may wait for a batch slot (beyond: 429).
    #[arg(long, env = "SEMANTIC_MAX_QUEUE")]
    pub max_queue: Option<usize>,
    /// Idle agents that keep a cache (beyond: LRU eviction).
    #[arg(long, env = "SEMANTIC_MAX_HOT_AGENTS")]
    pub max_hot_agents: Option<usize>,
    /// Prefill speed per sequence, tokens/s (0 = instant).
    #[arg(long, env = "SEMANTIC_PREFILL_TOKENS_PER_SEC")]
    pub prefill_tokens_per_sec: Option<f64>,
    /// Decode speed per sequence, tokens/s (0 = instant).
    #[arg(long, env = "SEMANTIC_DECODE_TOKENS_PER_SEC")]
    pub decode_tokens_per_sec: Option<f64>,
    /// Zero simulated compute (same as both speeds 0).
    #[arg(long, env = "SEMANTIC_INSTANT")]
    pub instant: bool,
    /// Period of the engine's step, e.g. 5ms.
    #[arg(long, env = "SEMANTIC_ENGINE_TICK", value_parser = parse_duration)]
    pub engine_tick: Option<Duration>,
    /// Pool utilization (0-1) admission never passes [default: 0.95].
    #[arg(long, env = "SEMANTIC_ADMIT_MAX_UTILIZATION")]
    pub admit_max_utilization: Option<f64>,
    /// Pool utilization (0-1) above which /health/ready is 503 [default: 0.90].
    #[arg(long, env = "SEMANTIC_READY_MAX_UTILIZATION")]
    pub ready_max_utilization: Option<f64>,
    /// Status of overloaded rejections: 429, 503 or 529 [default: 429].
    #[arg(long, env = "SEMANTIC_REJECT_STATUS")]
    pub reject_status: Option<u16>,
    /// Retry-After of rejections, e.g. 1s (whole seconds, at least 1).
    #[arg(long, env = "SEMANTIC_RETRY_AFTER", value_parser = parse_duration)]
    pub retry_after: Option<Duration>,
    /// Requests per sliding minute over all agents (default: unlimited).
    #[arg(long, env = "SEMANTIC_RATE_LIMIT_RPM")]
    pub rate_limit_rpm: Option<u32>,
    /// Requests per sliding minute per agent (default: unlimited).
    #[arg(long, env = "SEMANTIC_AGENT_RATE_LIMIT_RPM")]
    pub agent_rate_limit_rpm: Option<u32>,
    /// Accepted API keys, comma-separated; none turns authentication off.
    #[arg(
        long = "api-key",
        env = "ANTHROPIC_API_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,
    /// Key for DELETE /admin/caches (X-Admin-Key).
    #[arg(long, env = "SEMANTIC_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Largest request body in bytes (beyond: 413) [default: 4194304].
    #[arg(long, env = "SEMANTIC_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// How long shutdown waits for in-flight requests, e.g. 10s.
    #[arg(long, env = "SEMANTIC_DRAIN_TIMEOUT", value_parser = parse_duration)]
    pub drain_timeout: Option<Duration>,
    /// Idle time before a keep-alive connection is closed, e.g. 120s.
    #[arg(long, env = "SEMANTIC_KEEP_ALIVE_TIMEOUT", value_parser = parse_duration)]
    pub keep_alive_timeout: Option<Duration>,
    /// Seed of the deterministic output text.
    #[arg(long, env = "SEMANTIC_SEED")]
    pub seed: Option<u64>,
    /// Fault to inject, NAME[=VALUE] (repeatable; comma-separated in the variable): leak[=KB],
    /// crash-on-exhaustion, no-retry-after, late-reject, no-recovery, cross-agent-bleed,
    /// no-cache, degrade[=MS], hang[=N], truncate-stream, drop-connection[=N], blocking-health.
    #[arg(long = "fault", env = "SEMANTIC_FAULTS", value_delimiter = ',')]
    pub faults: Vec<Fault>,
}

/// Parser used by [`ServerConfig::from_env`]: the flags with no arguments.
#[derive(Debug, Parser)]
struct EnvOnly {
    #[command(flatten)]
    args: ServerArgs,
}

impl ServerArgs {
    /// The configuration these flags describe.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first bad setting.
    pub fn into_config(self) -> Result<ServerConfig, Error> {
        let mut c = ServerConfig::profile(self.profile.unwrap_or_default())
            .personality(self.personality.unwrap_or_default());
        c.personality.thinking = self.thinking;
        c.personality.metrics = self.llamacpp_metrics;
        /// `target = value` for every flag that was given.
        macro_rules! set {
            ($($target:expr => $value:expr),* $(,)?) => {
                $( if let Some(v) = $value { $target = v; } )*
            };
        }
        let ip = self.host.unwrap_or(IpAddr::from([127, 0, 0, 1]));
        c.http.addr = SocketAddr::new(ip, self.port.unwrap_or(DEFAULT_PORT));
        let budget = match self.cache_budget_mb {
            Some(mb) => Some(mb),
            None => budget_from_seed_variable()?,
        };
        set! {
            c.model.name => self.model_name,
            c.model.n_layers => self.n_layers,
            c.model.n_kv_heads => self.n_kv_heads,
            c.model.head_dim => self.head_dim,
            c.model.dtype => self.kv_dtype,
            c.pool.cache_budget_mb => budget,
            c.pool.max_hot_agents => self.max_hot_agents,
            c.pool.admit_max_utilization => self.admit_max_utilization,
            c.pool.ready_max_utilization => self.ready_max_utilization,
            c.engine.max_batch_size => self.max_batch_size,
            c.engine.max_queue => self.max_queue.map(Some),
            c.engine.prefill_tokens_per_sec => self.prefill_tokens_per_sec,
            c.engine.decode_tokens_per_sec => self.decode_tokens_per_sec,
            c.engine.tick => self.engine_tick,
            c.engine.seed => self.seed,
            c.admission.reject_status => self.reject_status,
            c.admission.retry_after => self.retry_after,
            c.http.max_body_bytes => self.max_body_bytes,
            c.http.drain_timeout => self.drain_timeout,
            c.http.keep_alive_timeout => self.keep_alive_timeout,
        }
        if self.instant {
            c = c.instant();
        }
        let a = &mut c.admission;
        a.global_rate_limit = self.rate_limit_rpm.or(a.global_rate_limit);
        a.agent_rate_limit = self.agent_rate_limit_rpm.or(a.agent_rate_limit);
        c.http.admin_key = self.admin_key.filter(|k| !k.is_empty());
        c.http.api_keys = self
            .api_keys
            .into_iter()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect();
        for fault in self.faults {
            c = c.fault(fault);
        }
        c.validate()?;
        Ok(c)
    }
}

impl ServerConfig {
    /// The configuration the binary would build from the environment alone (no flags),
    /// except that the port defaults to 0 (an ephemeral port) unless `SEMANTIC_PORT` is set.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if a variable cannot be parsed or a setting is out of range.
    pub fn from_env() -> Result<Self, Error> {
        let parsed =
            EnvOnly::try_parse_from(["reference-server"]).map_err(|e| Error::InvalidConfig {
                field: "environment",
                reason: e.to_string().trim().to_owned(),
            })?;
        let mut args = parsed.args;
        args.port = args.port.or(Some(0));
        args.into_config()
    }
}

/// `SEMANTIC_CACHE_BUDGET_MB`, the seed's name for the budget.
fn budget_from_seed_variable() -> Result<Option<u64>, Error> {
    let Ok(raw) = std::env::var("SEMANTIC_CACHE_BUDGET_MB") else {
        return Ok(None);
    };
    raw.trim()
        .parse()
        .map(Some)
        .map_err(|e| Error::InvalidConfig {
            field: "SEMANTIC_CACHE_BUDGET_MB",
            reason: format!("{raw:?}: {e}"),
        })
}

/// A duration: `250ms`, `2s`, `1.5s`, `3m`, or bare seconds (`2`, `0.5`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 250ms, 2s, 1m)"))?;
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServerConfig, Error> {
        let mut argv = vec!["reference-server"];
        argv.extend_from_slice(args);
        EnvOnly::try_parse_from(argv)
            .map_err(|e| Error::InvalidConfig {
                field: "args",
                reason: e.to_string(),
            })?
            .args
            .into_config()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn flags_override_the_profile() {
        let c = parse(&[
            "--port",
            "0",
            "--profile",
            "realistic",
            "--decode-tokens-per-sec",
            "99",
            "--fault",
            "hang=3",
            "--fault",
            "no-cache",
            "--kv-dtype",
            "fp16",
        ])
        .unwrap();
        assert_eq!(c.bind_addr().port(), 0);
        assert!((c.engine.decode_tokens_per_sec - 99.0).abs() < f64::EPSILON);
        assert_eq!(c.model.n_layers, 48);
        assert_eq!(c.model.dtype, KvDtype::Fp16);
        assert_eq!(
            c.faults(),
            vec![Fault::NoCache, Fault::Hang { after_requests: 3 }]
        );
    }

    #[test]
    fn defaults_are_the_small_server_on_8000() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.bind_addr().port(), DEFAULT_PORT);
        assert_eq!(c.geometry().total_blocks, 768);
        assert!(parse(&["--instant"]).unwrap().is_instant());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["--fault", "explode"]).is_err());
        assert!(parse(&["--reject-status", "500"]).is_err());
        assert!(parse(&["--profile", "huge"]).is_err());
    }
}
