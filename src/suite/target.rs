//! [`Target`]: the server a suite scenario runs against, and how to reach it.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};

use crate::{Request, StressConfig, StressHarness};

/// Bound on the cache reset after a test.
const RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// The server under test: the harness settings that reach it (base URL, API key, timeouts,
/// model) and what is known about it (its process id, an admin key for resetting caches,
/// whether it is a reference server spawned for this run).
///
/// # Example
/// ```
/// use semantic_stress::StressConfig;
/// use semantic_stress::suite::Target;
///
/// let target = Target::new(StressConfig::new("http://127.0.0.1:8000")).pid(Some(4242));
/// assert_eq!(target.base_url(), "http://127.0.0.1:8000");
/// ```
#[derive(Debug, Clone)]
pub struct Target {
    config: StressConfig,
    pid: Option<u32>,
    admin_key: Option<String>,
    reference: bool,
}

impl Target {
    /// A target reached with `config`; nothing else known about it.
    pub fn new(config: StressConfig) -> Self {
        Self {
            config,
            pid: None,
            admin_key: None,
            reference: false,
        }
    }

    /// The target the environment names: [`StressConfig::from_env`] (`SEMANTIC_BASE_URL`,
    /// `SEMANTIC_API_KEY`, …), `SEMANTIC_SERVER_PID` and `SEMANTIC_ADMIN_KEY`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) naming the variable whose value
    /// cannot be used.
    pub fn from_env() -> crate::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any lookup (for tests).
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> crate::Result<Self> {
        let config = StressConfig::from_lookup(&get)?;
        let pid = match get("SEMANTIC_SERVER_PID") {
            Some(v) => Some(
                v.trim()
                    .parse::<u32>()
                    .map_err(|e| crate::Error::InvalidConfig {
                        field: "SEMANTIC_SERVER_PID",
                        reason: format!("{v:?}: {e}"),
                    })?,
            ),
            None => None,
        };
        Ok(Self::new(config)
            .pid(pid)
            .admin_key(get("SEMANTIC_ADMIN_KEY").filter(|k| !k.is_empty())))
    }

    /// Sets the server's process id (for memory sampling and liveness).
    #[must_use]
    pub fn pid(mut self, pid: Option<u32>) -> Self {
        self.pid = pid;
        self
    }

    /// Sets the admin key that lets [`reset_caches`](Self::reset_caches) run.
    #[must_use]
    pub fn admin_key(mut self, key: Option<String>) -> Self {
        self.admin_key = key;
        self
    }

    /// Marks the target as a reference server spawned for this run (recorded in reports).
    #[must_use]
    pub fn reference(mut self, spawned: bool) -> Self {
        self.reference = spawned;
        self
    }

    /// Uses `timeout` per request (scenarios against a server that stops answering).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.config = self.config.timeout(timeout);
        self
    }

    /// Base URL of the server.
    pub fn base_url(&self) -> &str {
        &self.config.base_url
    }

    /// The server's process id, when known.
    pub fn server_pid(&self) -> Option<u32> {
        self.pid
    }

    /// Whether this is a reference server spawned for this run.
    pub fn is_reference(&self) -> bool {
        self.reference
    }

    /// The harness settings that reach this target.
    pub fn config(&self) -> &StressConfig {
        &self.config
    }

    /// A harness with `adjust` applied to this target's settings.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) or
    /// [`Error::InvalidUrl`](crate::Error::InvalidUrl) when the adjusted settings are invalid.
    pub fn harness(
        &self,
        adjust: impl FnOnce(StressConfig) -> StressConfig,
    ) -> crate::Result<StressHarness> {
        StressHarness::new(adjust(self.config.clone()))
    }

    /// Whether the server process is still running: `true` when its pid is unknown (nothing
    /// to judge), `false` once it has exited (a zombie counts as exited).
    pub fn is_alive(&self) -> bool {
        self.pid.is_none_or(crate::memory::process_running)
    }

    /// Resets the server's caches with `DELETE /admin/caches` (with `X-Admin-Key` and the
    /// target's API key), bounded by 5 s. Does nothing without an admin key.
    ///
    /// # Errors
    /// [`Error::Server`](crate::Error::Server) when the server refuses or does not answer.
    pub async fn reset_caches(&self) -> crate::Result<()> {
        let Some(key) = &self.admin_key else {
            return Ok(());
        };
        let value = HeaderValue::from_str(key).map_err(|e| crate::Error::InvalidConfig {
            field: "SEMANTIC_ADMIN_KEY",
            reason: e.to_string(),
        })?;
        let harness = self.harness(|c| c.workers(1).timeout(RESET_TIMEOUT))?;
        let request = Request::bare(Method::DELETE, "/admin/caches")
            .header(HeaderName::from_static("x-admin-key"), value);
        harness.client().control_text(&request).await.map(drop)
    }
}
