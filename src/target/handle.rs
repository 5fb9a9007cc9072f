//! [`Target`]: the server a suite scenario runs against, and what is known about it.

use std::time::Duration;

use super::cleanup::delete_all;
use super::{Cleanup, CleanupLimits, Profile, TargetSettings, Thresholds};
use crate::{StressConfig, StressHarness};

/// Bound on the cache reset after a test.
const RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// The server under test: the harness settings that reach it (base URL, auth, timeouts, model),
/// its [`Profile`] (what it offers and how to read it), the seed's [`Thresholds`] (or the
/// target's own), and its process id when known.
///
/// # Example
/// ```
/// use semantic_stress::StressConfig;
/// use semantic_stress::target::{Profile, Target};
///
/// let target = Target::new(StressConfig::new("http://127.0.0.1:8000"))
///     .profile(Profile::named("llama.cpp")?)
///     .pid(Some(4242));
/// assert_eq!(target.base_url(), "http://127.0.0.1:8000");
/// assert!(target.profile_ref().shared_prefix);
/// # Ok::<(), semantic_stress::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Target {
    config: StressConfig,
    profile: Profile,
    profile_reason: String,
    thresholds: Thresholds,
    pid: Option<u32>,
    admin_key: Option<String>,
    reference: bool,
    cleanup: CleanupLimits,
}

impl Target {
    /// A target reached with `config`, described by the `semantic` profile (the contract).
    pub fn new(config: StressConfig) -> Self {
        Self {
            config,
            profile: Profile::default(),
            profile_reason: "the default (the semantic caching server's contract)".to_owned(),
            thresholds: Thresholds::default(),
            pid: None,
            admin_key: None,
            reference: false,
            cleanup: CleanupLimits::default(),
        }
    }

    /// The target the environment names ([`TargetSettings::from_env`]: `SEMANTIC_BASE_URL`,
    /// `SEMANTIC_MODEL`, `SEMANTIC_API_KEY`, `SEMANTIC_PROFILE`, `SEMANTIC_TARGET_FILE`, …).
    /// A profile of `auto` — the default when a base URL is given and no profile is — is
    /// detected by probing the server (bounded).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) naming the variable whose value
    /// cannot be used.
    pub async fn from_env() -> crate::Result<Self> {
        let settings = TargetSettings::from_env()?;
        let config = StressConfig::from_env()?;
        Self::from_settings(config, &settings).await
    }

    /// A target from `settings` applied on `config`.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub async fn from_settings(
        config: StressConfig,
        settings: &TargetSettings,
    ) -> crate::Result<Self> {
        let mut target = Self::new(settings.apply(config)?)
            .pid(settings.server_pid)
            .admin_key(settings.admin_key.clone());
        target.thresholds = settings.thresholds;
        // A server named by URL alone is probed for its profile: assuming the contract of a
        // server that does not keep it would judge the suite's assumptions, not the server.
        let profile = settings
            .profile
            .as_deref()
            .or(settings.base_url.is_some().then_some("auto"));
        match profile {
            None => {}
            Some("auto") => {
                let harness = target.harness(|c| c.workers(1).timeout(RESET_TIMEOUT))?;
                let (profile, why) = Profile::detect(harness.client()).await;
                target.profile = profile;
                target.profile_reason = format!("detected: {why}");
            }
            Some(name) => {
                target.profile = Profile::resolve(name)?;
                target.profile_reason = format!("SEMANTIC_PROFILE={name}");
            }
        }
        Ok(target)
    }

    /// Sets the server's profile.
    #[must_use]
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile_reason = format!("set to {}", profile.name);
        self.profile = profile;
        self
    }

    /// Sets the thresholds.
    #[must_use]
    pub fn thresholds(mut self, thresholds: Thresholds) -> Self {
        self.thresholds = thresholds;
        self
    }

    /// Sets the server's process id (for memory sampling and liveness).
    #[must_use]
    pub fn pid(mut self, pid: Option<u32>) -> Self {
        self.pid = pid;
        self
    }

    /// Sets the admin key that the profile's cache reset may name (`${SEMANTIC_ADMIN_KEY}`).
    #[must_use]
    pub fn admin_key(mut self, key: Option<String>) -> Self {
        self.admin_key = key.filter(|k| !k.is_empty());
        self
    }

    /// Bounds the deletion of a test's agents ([`delete_agents`](Self::delete_agents)).
    #[must_use]
    pub fn cleanup_limits(mut self, limits: CleanupLimits) -> Self {
        self.cleanup = limits;
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

    /// The server's profile.
    pub fn profile_ref(&self) -> &Profile {
        &self.profile
    }

    /// How the profile was chosen (`SEMANTIC_PROFILE=vllm`, `detected: …`).
    pub fn profile_reason(&self) -> &str {
        &self.profile_reason
    }

    /// The thresholds the checks use.
    pub fn threshold(&self) -> &Thresholds {
        &self.thresholds
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

    /// A harness with `adjust` applied to this target's settings, sending and reading as the
    /// profile says: its agent header, `Connection: close` on streams for a server that closes
    /// after each, the server metrics it names.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) or
    /// [`Error::InvalidUrl`](crate::Error::InvalidUrl) when the adjusted settings are invalid.
    pub fn harness(
        &self,
        adjust: impl FnOnce(StressConfig) -> StressConfig,
    ) -> crate::Result<StressHarness> {
        let agent_header = http::HeaderName::from_bytes(self.profile.agent_header.as_bytes())
            .map_err(|e| crate::Error::InvalidConfig {
                field: "profile.agent_header",
                reason: format!("{:?}: {e}", self.profile.agent_header),
            })?;
        let config = self
            .config
            .clone()
            .server_metrics(self.profile.server_metrics.clone())
            .agent_header(agent_header)
            .close_after_stream(self.profile.closes_after_stream);
        StressHarness::new(adjust(config))
    }

    /// Whether the server process is still running: `true` when its pid is unknown (nothing
    /// to judge), `false` once it has exited (a zombie counts as exited).
    pub fn is_alive(&self) -> bool {
        self.pid.is_none_or(crate::sampling::process_running)
    }

    /// Waits (at most `max`) until the server is idle, so that one test's backlog does not
    /// spill into the next (servers that never cancel keep decoding after their clients left).
    /// With a queue figure in the profile: until it reads 0. Without: until one tiny request
    /// (one output token) is served, which a first-come-first-served server does only after
    /// the work queued before it has started. Returns how long it waited, or why it gave up.
    ///
    /// # Errors
    /// [`Error::Server`](crate::Error::Server) when the server was not idle within `max`.
    pub async fn wait_idle(&self, max: Duration) -> crate::Result<Duration> {
        let started = std::time::Instant::now();
        let harness = self.harness(|c| c.workers(1).timeout(max))?;
        let what = |reason: String| crate::Error::Server {
            what: "waiting for the server to be idle".to_owned(),
            reason,
        };
        if let Some(queue) = &self.profile.queue
            && queue.read(harness.client()).await.is_ok()
        {
            loop {
                match queue.read(harness.client()).await {
                    Ok(waiting) if waiting <= 0.0 => return Ok(started.elapsed()),
                    Ok(waiting) if started.elapsed() >= max => {
                        return Err(what(format!(
                            "{waiting} requests still waiting after {max:?} ({})",
                            queue.describe()
                        )));
                    }
                    Ok(_) => tokio::time::sleep(Duration::from_millis(250)).await,
                    Err(e) => return Err(e),
                }
            }
        }
        let tiny = crate::Request::messages(&crate::anthropic::MessagesRequest::new(
            self.config.model.clone(),
            vec![crate::anthropic::Message::user("ping")],
            1,
        ));
        let r = harness
            .client()
            .send(&tiny, std::time::Instant::now())
            .await;
        if r.status == 0 {
            return Err(what(format!(
                "a one-token request got no answer within {max:?}: {}",
                r.error.as_deref().unwrap_or("no detail")
            )));
        }
        Ok(started.elapsed())
    }

    /// Resets the server's caches with the profile's reset request (with the target's auth),
    /// bounded by 5 s. Does nothing when the profile has none, or when it names a key (such as
    /// `${SEMANTIC_ADMIN_KEY}`) that is not set.
    ///
    /// # Errors
    /// [`Error::Server`](crate::Error::Server) when the server refuses or does not answer.
    pub async fn reset_caches(&self) -> crate::Result<()> {
        let Some(reset) = &self.profile.reset else {
            return Ok(());
        };
        let Some(request) = reset.request(self.lookup())? else {
            return Ok(());
        };
        let harness = self.harness(|c| c.workers(1).timeout(RESET_TIMEOUT))?;
        harness.client().control_text(&request).await.map(drop)
    }

    /// Deletes the agents `ids` (a test's `X-Session-ID`s) with the profile's
    /// [`Deletion`](super::Deletion) and the target's credentials, bounded by the
    /// [`CleanupLimits`] (by default 10 s in all, 8 at once), a 404 counting as already gone.
    /// Never fails: the summary says what was deleted, what failed and why, or why nothing was
    /// sent (the profile declares no deletion, or its header names an unset variable).
    pub async fn delete_agents(&self, ids: impl IntoIterator<Item = String>) -> Cleanup {
        let ids: Vec<String> = ids.into_iter().collect();
        let limits = self.cleanup;
        let Some(deletion) = &self.profile.agents.delete else {
            return Cleanup::skipped(
                ids.len(),
                limits,
                format!(
                    "the {} profile declares no agent deletion",
                    self.profile.name
                ),
            );
        };
        let template = match deletion.template(self.lookup()) {
            Ok(Some(t)) => t,
            Ok(None) => {
                return Cleanup::skipped(
                    ids.len(),
                    limits,
                    "a header of the profile's agent deletion names an unset variable",
                );
            }
            Err(e) => return Cleanup::skipped(ids.len(), limits, e.to_string()),
        };
        if ids.is_empty() {
            return Cleanup {
                budget: limits.budget,
                concurrency: limits.concurrency as u64,
                ..Cleanup::default()
            };
        }
        let width = limits.concurrency.max(1);
        let harness = match self.harness(|c| c.workers(width).timeout(limits.budget)) {
            Ok(h) => h,
            Err(e) => return Cleanup::skipped(ids.len(), limits, e.to_string()),
        };
        delete_all(harness.client(), &template, ids, limits).await
    }

    /// Values of `${NAME}` in the profile's headers: the admin key, else the environment.
    fn lookup(&self) -> impl Fn(&str) -> Option<String> + use<> {
        let admin = self.admin_key.clone();
        move |name: &str| match name {
            "SEMANTIC_ADMIN_KEY" => admin.clone(),
            other => std::env::var(other).ok(),
        }
    }
}
