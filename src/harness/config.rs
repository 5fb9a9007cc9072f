//! [`StressConfig`]: the harness's settings, from code or from `SEMANTIC_*` environment
//! variables, validated once.

use std::path::PathBuf;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};

use super::Runtime;
use crate::metrics::{DEFAULT_STALL_GAP, MetricsCollector, Slo};
use crate::{Error, ResponseLimits, ServerMetricNames};

/// Default base URL: the seed's server address.
pub const DEFAULT_BASE_URL: &str = "http://localhost:8000";
/// Default sustained-run duration: one hour (the seed's `SEMANTIC_STRESS_TEST_DURATION`).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(3600);
/// Default request timeout: the seed's 30 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Slowest pacing accepted, requests per second (one a day).
const MIN_RATE: f64 = 1.0 / 86_400.0;
/// Longest request timeout accepted: an hour.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest sustained run accepted: thirty days.
const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Settings of a [`StressHarness`](crate::StressHarness).
///
/// ```
/// use std::time::Duration;
/// use semantic_stress::StressConfig;
///
/// let config = StressConfig::new("http://127.0.0.1:8000")
///     .workers(150)
///     .timeout(Duration::from_secs(10));
/// assert_eq!(config.workers, 150);
/// ```
#[derive(Debug, Clone)]
pub struct StressConfig {
    /// Server base URL (`http://HOST:PORT` or `https://HOST[:PORT]`, optionally with a path
    /// prefix; the port defaults to 80 or 443).
    pub base_url: String,
    /// Concurrent workers: at most this many requests in flight.
    pub workers: usize,
    /// Open-loop pacing in requests per second; `None` is a closed loop.
    pub rate_limit: Option<f64>,
    /// Per-request timeout (the whole exchange, stream included).
    pub timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Length of sustained runs.
    pub duration: Duration,
    /// `x-api-key` sent with every request.
    pub api_key: Option<String>,
    /// Extra headers sent with every request.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Model name put in generated requests.
    pub model: String,
    /// Statuses that count as graceful rejections (with `Retry-After` and the envelope).
    pub graceful_statuses: Vec<u16>,
    /// Bytes of reply text kept per request when a request asks to keep text.
    pub text_limit: usize,
    /// Seed of every random choice (arrivals, workloads).
    pub seed: u64,
    /// Extra time past a run's end for in-flight requests, on top of the timeout.
    pub grace: Duration,
    /// Bounds on what one response may make the harness read and hold.
    pub limits: ResponseLimits,
    /// Whether generated Messages requests (agent turns, the suite's scenarios) ask for a
    /// stream, as real clients do; on by default.
    pub stream: bool,
    /// The service-level objectives goodput is judged against.
    pub slo: Slo,
    /// A gap between two content deltas longer than this is a stall.
    pub stall_gap: Duration,
    /// The names read from the server's `GET /metrics` during runs (vLLM's by default);
    /// `None` reads nothing.
    pub server_metrics: Option<ServerMetricNames>,
    /// PEM bundle of CA certificates trusted for `https://`, on top of Mozilla's roots (for a
    /// private CA or a self-signed server). Read when the harness is built.
    pub ca_file: Option<PathBuf>,
    /// Self-test mode: ask the server for write stamps (`x-semantic-stamp: 1`, which the
    /// reference server honours) and measure the harness's own TTFT and ITL error against them
    /// ([`TimingTruth`](crate::metrics::TimingTruth) on each streamed record, [`TimingErrors`](
    /// crate::metrics::TimingErrors) in the run's figures). Off by default: a real server
    /// ignores the header, and the records then carry no stamps.
    pub timing_truth: bool,
    /// The header that names a request's agent (default `X-Session-ID`; a profile may name
    /// another, see [`Profile::agent_header`](crate::target::Profile::agent_header)).
    pub agent_header: HeaderName,
    /// Streamed requests ask `Connection: close`: for a server that closes the connection
    /// after each streamed reply whatever keep-alive it advertised (see
    /// [`Profile::closes_after_stream`](crate::target::Profile::closes_after_stream)). Off by
    /// default.
    pub close_after_stream: bool,
    /// A delay injected into the receive path after each stream frame is read, before its
    /// arrival is taken: for the self-test that shows a slow receive path is caught. Zero
    /// (none) by default; not for use outside tests.
    #[doc(hidden)]
    pub receive_delay: Duration,
    /// Where a run's workers run: on the runtime that awaits the run (the default) or on
    /// threads of the run's own, one single-threaded runtime each ([`Runtime`]).
    pub runtime: Runtime,
}

impl Default for StressConfig {
    fn default() -> Self {
        Self::new(DEFAULT_BASE_URL)
    }
}

impl StressConfig {
    /// Defaults against `base_url`: 10 workers, closed loop, 30 s timeout, one-hour sustained
    /// runs, 429 as the graceful status.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            workers: 10,
            rate_limit: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: Duration::from_secs(5),
            duration: DEFAULT_DURATION,
            api_key: None,
            headers: Vec::new(),
            model: "test-model".to_owned(),
            graceful_statuses: vec![429],
            text_limit: 4096,
            seed: 0x5eed,
            grace: Duration::from_secs(5),
            limits: ResponseLimits::default(),
            stream: true,
            slo: Slo::default(),
            stall_gap: DEFAULT_STALL_GAP,
            server_metrics: Some(ServerMetricNames::default()),
            ca_file: None,
            timing_truth: false,
            receive_delay: Duration::ZERO,
            agent_header: HeaderName::from_static("x-session-id"),
            close_after_stream: false,
            runtime: Runtime::Caller,
        }
    }

    /// Reads the target's settings ([`TargetSettings`](crate::target::TargetSettings): the
    /// file of `SEMANTIC_TARGET_FILE`, `SEMANTIC_BASE_URL`, `SEMANTIC_MODEL`,
    /// `SEMANTIC_API_KEY`, `SEMANTIC_AUTH`, `SEMANTIC_HEADERS`, `SEMANTIC_STRESS_TIMEOUT`,
    /// `SEMANTIC_CONNECT_TIMEOUT`, `SEMANTIC_CA_FILE`), the sizes ([`Overrides`](crate::Overrides):
    /// `SEMANTIC_STRESS_TEST_WORKERS`, `…_RATE_LIMIT`, `…_DURATION`) and
    /// `SEMANTIC_GRACEFUL_STATUSES` (comma list), `SEMANTIC_STREAM` (`true`/`false`) and the
    /// objectives `SEMANTIC_SLO_TTFT_MS`, `SEMANTIC_SLO_TPOT_MS`, `SEMANTIC_SLO_MAX_ITL_MS`,
    /// `SEMANTIC_SLO_E2E_MS` (milliseconds, or `none`) over the defaults.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the variable when a value does not parse.
    pub fn from_env() -> crate::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any variable source (for tests and embedding).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the variable when a value does not parse.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> crate::Result<Self> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let target = crate::target::TargetSettings::from_lookup(get)?;
        let mut config = target.apply(Self::new(DEFAULT_BASE_URL))?;
        let sizes = super::Overrides::from_lookup(get)?;
        config.workers = sizes.workers_or(config.workers);
        config.rate_limit = sizes.rate.or(config.rate_limit);
        config.duration = sizes.duration_or(config.duration);
        if let Some(v) = get("SEMANTIC_GRACEFUL_STATUSES") {
            config.graceful_statuses = v
                .split(',')
                .map(|s| parse(s.trim(), "SEMANTIC_GRACEFUL_STATUSES"))
                .collect::<crate::Result<_>>()?;
        }
        if let Some(v) = get("SEMANTIC_STREAM") {
            config.stream = parse(&v.to_ascii_lowercase(), "SEMANTIC_STREAM")?;
        }
        let slo = &mut config.slo;
        for (var, limit) in [
            ("SEMANTIC_SLO_TTFT_MS", &mut slo.ttft),
            ("SEMANTIC_SLO_TPOT_MS", &mut slo.tpot),
            ("SEMANTIC_SLO_MAX_ITL_MS", &mut slo.max_itl),
            ("SEMANTIC_SLO_E2E_MS", &mut slo.e2e),
        ] {
            if let Some(v) = get(var) {
                *limit = limit_ms(&v, var)?;
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Sets where a run's workers run ([`Runtime::per_core`]: one single-threaded runtime per
    /// core, the workers partitioned among them).
    #[must_use]
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = runtime;
        self
    }

    /// Sets the base URL.
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Sets the number of concurrent workers.
    #[must_use]
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Paces requests at `per_second` (open loop); `None` for a closed loop.
    #[must_use]
    pub fn rate_limit(mut self, per_second: Option<f64>) -> Self {
        self.rate_limit = per_second;
        self
    }

    /// Sets the per-request timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the connect timeout.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the sustained-run duration.
    #[must_use]
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// Sets the API key sent as `x-api-key`.
    #[must_use]
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Adds a header sent with every request.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Sets the model name of generated requests.
    #[must_use]
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// Sets the statuses counted as graceful rejections.
    #[must_use]
    pub fn graceful_statuses(mut self, statuses: Vec<u16>) -> Self {
        self.graceful_statuses = statuses;
        self
    }

    /// Sets the bounds on one response.
    #[must_use]
    pub fn limits(mut self, limits: ResponseLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether generated Messages requests ask for a stream (default: yes).
    #[must_use]
    pub fn stream(mut self, stream: bool) -> Self {
        self.stream = stream;
        self
    }

    /// Sets the objectives goodput is judged against.
    #[must_use]
    pub fn slo(mut self, slo: Slo) -> Self {
        self.slo = slo;
        self
    }

    /// Sets the gap between deltas above which a gap is a stall.
    #[must_use]
    pub fn stall_gap(mut self, gap: Duration) -> Self {
        self.stall_gap = gap;
        self
    }

    /// Sets the header that names a request's agent.
    #[must_use]
    pub fn agent_header(mut self, name: HeaderName) -> Self {
        self.agent_header = name;
        self
    }

    /// Whether streamed requests ask `Connection: close` (see
    /// [`close_after_stream`](Self::close_after_stream)).
    #[must_use]
    pub fn close_after_stream(mut self, close: bool) -> Self {
        self.close_after_stream = close;
        self
    }

    /// Sets the names read from the server's `/metrics` (`None`: read nothing).
    #[must_use]
    pub fn server_metrics(mut self, names: Option<ServerMetricNames>) -> Self {
        self.server_metrics = names;
        self
    }

    /// An empty collector judging goodput against these settings' objectives.
    pub fn collector(&self) -> MetricsCollector {
        MetricsCollector::with_slo(self.slo, self.stall_gap)
    }

    /// Trusts the CA certificates of the PEM file at `path` for `https://`, on top of
    /// Mozilla's roots.
    #[must_use]
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Turns the timing self-test mode on or off (see
    /// [`timing_truth`](Self::timing_truth)).
    #[must_use]
    pub fn timing_truth(mut self, on: bool) -> Self {
        self.timing_truth = on;
        self
    }

    /// Sets the seed of random choices.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks every setting once.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the first bad setting.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |field, reason: String| Err(Error::InvalidConfig { field, reason });
        if self.workers == 0 {
            return bad("workers", "must be at least 1".to_owned());
        }
        if self.runtime == Runtime::PerThread(0) {
            return bad("runtime", "needs at least one thread".to_owned());
        }
        if let Some(r) = self.rate_limit
            && !(r.is_finite() && r >= MIN_RATE)
        {
            return bad(
                "rate_limit",
                format!("{r} is not a rate of at least {MIN_RATE} per second"),
            );
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return bad(
                "timeout",
                format!("{:?} is not between 0 and {MAX_TIMEOUT:?}", self.timeout),
            );
        }
        if self.duration > MAX_DURATION {
            return bad(
                "duration",
                format!("{:?} is longer than {MAX_DURATION:?}", self.duration),
            );
        }
        self.limits.validate()?;
        if self.stall_gap.is_zero() {
            return bad("stall_gap", "must be positive".to_owned());
        }
        if self.connect_timeout.is_zero() {
            return bad("connect_timeout", "must be positive".to_owned());
        }
        if self
            .graceful_statuses
            .iter()
            .any(|s| !(100..600).contains(s))
        {
            return bad(
                "graceful_statuses",
                format!("{:?} holds a non-HTTP status", self.graceful_statuses),
            );
        }
        Ok(())
    }
}

/// An objective in milliseconds, or `none`.
fn limit_ms(value: &str, field: &'static str) -> crate::Result<Option<Duration>> {
    if value.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let ms: f64 = parse(value, field)?;
    Duration::try_from_secs_f64(ms / 1e3)
        .map(Some)
        .map_err(|e| Error::InvalidConfig {
            field,
            reason: format!("{value:?}: {e}"),
        })
}

fn parse<T: std::str::FromStr>(value: &str, field: &'static str) -> crate::Result<T>
where
    T::Err: std::fmt::Display,
{
    value.trim().parse().map_err(|e| Error::InvalidConfig {
        field,
        reason: format!("{value:?}: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn env_overrides_defaults() {
        let c = StressConfig::from_lookup(lookup(&[
            ("SEMANTIC_BASE_URL", "http://127.0.0.1:9"),
            ("SEMANTIC_STRESS_TEST_WORKERS", "42"),
            ("SEMANTIC_STRESS_TEST_RATE_LIMIT", "2.5"),
            ("SEMANTIC_STRESS_TEST_DURATION", "30"),
            ("SEMANTIC_API_KEY", "k"),
        ]))
        .unwrap();
        assert_eq!(c.base_url, "http://127.0.0.1:9");
        assert_eq!(c.workers, 42);
        assert_eq!(c.rate_limit, Some(2.5));
        assert_eq!(c.duration, Duration::from_secs(30));
        assert_eq!(c.api_key.as_deref(), Some("k"));
        assert!(c.stream, "streams by default");
        let c = StressConfig::from_lookup(lookup(&[
            ("SEMANTIC_STREAM", "False"),
            ("SEMANTIC_SLO_TTFT_MS", "250"),
            ("SEMANTIC_SLO_E2E_MS", "none"),
        ]))
        .unwrap();
        assert!(!c.stream);
        assert_eq!(c.slo.ttft, Some(Duration::from_millis(250)));
        assert_eq!(c.slo.e2e, None);
        assert_eq!(c.slo.tpot, Slo::default().tpot);
        assert!(StressConfig::from_lookup(lookup(&[("SEMANTIC_SLO_TPOT_MS", "-3")])).is_err());
        let d = StressConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(d.duration, DEFAULT_DURATION);
        assert_eq!(d.base_url, DEFAULT_BASE_URL);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = StressConfig::from_lookup(lookup(&[("SEMANTIC_STRESS_TEST_WORKERS", "many")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SEMANTIC_STRESS_TEST_WORKERS") && err.contains("many"),
            "{err}"
        );
        let err = StressConfig::from_lookup(lookup(&[("SEMANTIC_STRESS_TEST_RATE_LIMIT", "-1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SEMANTIC_STRESS_TEST_RATE_LIMIT"), "{err}");
        assert!(StressConfig::new("x").workers(0).validate().is_err());
    }
}
