//! [`StressHarness`]: sends load and returns one record per request.
//!
//! Every operation is a [`Load`] (workers, pacing, stop, ramp) run by one worker loop; the
//! seed's operations are named shapes of it:
//!
//! | operation | load |
//! |---|---|
//! | [`run_concurrent_requests`](StressHarness::run_concurrent_requests) | `n` requests, `workers` at once, closed loop (or paced by `rate_limit`) |
//! | [`run_agent_workloads`](StressHarness::run_agent_workloads) | one async workload per agent, all at once |
//! | [`run_bursty`](StressHarness::run_bursty) | open loop, bursts of `size` every `every` |
//! | [`run_ramp_up`](StressHarness::run_ramp_up) | closed loop through concurrency stages |
//! | [`run`](StressHarness::run) / [`run_agents`](StressHarness::run_agents) | any [`Load`] |
//! | [`run_streaming`](StressHarness::run_streaming) | any [`Load`], figures only: fixed memory for any length |

mod agent;
mod config;
mod engine;
mod load;
mod overrides;
mod pacer;
mod percore;
mod selfwatch;
mod shards;
mod sustained;
mod trust;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use agent::{Agent, Tally};
pub use config::{DEFAULT_BASE_URL, DEFAULT_DURATION, DEFAULT_TIMEOUT, StressConfig};
pub use engine::{GeneratorStats, Slot};
pub use load::{Arrivals, Load, Pacing, Stage, Stop};
pub use overrides::Overrides;
pub use percore::Runtime;
pub use sustained::{Progress, ProgressFn, Sustained, SustainedLoadMetrics};
pub use trust::Trust;

use agent::{RunShared, Sink};

use crate::client::ClientConfig;
use crate::metrics::MemoryTrend;
use crate::sampling::ServerMemory;
use crate::{Client, LoadMetrics, Request, RequestResult};
use shards::ShardedCollector;
use sustained::{ProgressSource, Streaming};

/// Hard bound on a run that has no duration of its own (count-bounded or agent workloads),
/// unless [`StressConfig::duration`] is shorter.
const UNTIMED_RUN_BOUND: Duration = Duration::from_secs(600);

/// Runs load against one server.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use semantic_stress::anthropic::{Message, MessagesRequest};
/// use semantic_stress::{MetricsCollector, Request, StressConfig, StressHarness};
///
/// let harness = StressHarness::new(StressConfig::new("http://127.0.0.1:8000").workers(150))?;
/// let body = MessagesRequest::new("test-model", vec![Message::user("Hello")], 100);
/// let results = harness.run_concurrent_requests(&Request::messages(&body), None).await?;
/// let metrics = MetricsCollector::analyze(&results);
/// assert!(metrics.error_rate < 0.05);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct StressHarness {
    config: StressConfig,
    client: Client,
}

/// The headers every request carries: the configured ones, and in timing self-test mode the
/// request for the server's write stamps.
fn headers(config: &StressConfig) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let mut headers = config.headers.clone();
    if config.timing_truth {
        headers.push((
            http::HeaderName::from_static(STAMP_HEADER),
            http::HeaderValue::from_static("1"),
        ));
    }
    headers
}

/// The request header asking a server for write stamps on streamed deltas (self-test mode).
pub const STAMP_HEADER: &str = "x-semantic-stamp";

/// What a record-keeping run returns.
#[derive(Debug, Clone)]
pub struct RunResults {
    /// One record per request sent, in completion order.
    pub results: Vec<RequestResult>,
    /// Requests sent (equals `results.len()`: every request is recorded once).
    pub sent: u64,
    /// How the generator kept up.
    pub generator: GeneratorStats,
    /// When the run started.
    pub started: Instant,
}

/// What a streamed run returns: figures folded as records arrived; no record is kept.
#[derive(Debug, Clone, Serialize)]
pub struct StreamedRun {
    /// Figures of every request of the run.
    pub load: LoadMetrics,
    /// Requests sent (equals `load.total`: every request is recorded once).
    pub sent: u64,
    /// How the generator kept up.
    pub generator: GeneratorStats,
}

struct KeepAll(Mutex<Vec<RequestResult>>);

impl Sink for KeepAll {
    fn record(&self, result: &RequestResult) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(result.clone());
    }
}

impl StressHarness {
    /// A harness for `config`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) or
    /// [`Error::InvalidUrl`](crate::Error::InvalidUrl) for a bad setting.
    pub fn new(config: StressConfig) -> crate::Result<Self> {
        config.validate()?;
        let client = Client::new(ClientConfig {
            base_url: config.base_url.clone(),
            connections: config.workers,
            connect_timeout: config.connect_timeout,
            request_timeout: config.timeout,
            api_key: config.api_key.clone(),
            headers: headers(&config),
            graceful_statuses: config.graceful_statuses.clone(),
            text_limit: config.text_limit,
            limits: config.limits,
            stall_gap: config.stall_gap,
            ca_file: config.ca_file.clone(),
            timing_truth: config.timing_truth,
            receive_delay: config.receive_delay,
            policy: crate::client::Policy {
                agent_header: config.agent_header.clone(),
                close_after_stream: config.close_after_stream,
            },
        })?;
        Ok(Self { config, client })
    }

    /// A harness configured from `SEMANTIC_*` environment variables
    /// ([`StressConfig::from_env`]).
    ///
    /// # Errors
    ///
    /// As [`StressConfig::from_env`] and [`new`](Self::new).
    pub fn from_env() -> crate::Result<Self> {
        Self::new(StressConfig::from_env()?)
    }

    /// The settings.
    pub fn config(&self) -> &StressConfig {
        &self.config
    }

    /// The HTTP client, for single requests (health probes, admin calls).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends `n` copies of `request` (default: one per worker) with `workers` in flight,
    /// closed loop, or paced at `rate_limit` when set.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for an invalid load (none comes
    /// from the settings a harness accepted).
    pub async fn run_concurrent_requests(
        &self,
        request: &Request,
        n: Option<usize>,
    ) -> crate::Result<Vec<RequestResult>> {
        let n = n.unwrap_or(self.config.workers) as u64;
        let load = match self.config.rate_limit {
            None => Load::closed(self.config.workers, Stop::requests(n)),
            Some(per_second) => Load::open(
                self.config.workers,
                Arrivals::Constant { per_second },
                Stop::requests(n),
            ),
        };
        let request = request.clone();
        self.run(load, move |_| request.clone())
            .await
            .map(|r| r.results)
    }

    /// Runs `workload` once for each of `n_agents` session agents, all at once, and returns
    /// each agent's records by agent id. Each agent has its own `X-Session-ID` and
    /// conversation.
    ///
    /// Bounded by [`StressConfig::duration`] (at most 10 minutes) plus the request timeout:
    /// requests still in flight then are cancelled and recorded as timeouts.
    pub async fn run_agent_workloads<F, Fut>(
        &self,
        n_agents: usize,
        workload: F,
    ) -> BTreeMap<String, Vec<RequestResult>>
    where
        F: Fn(Agent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Agent> + Send + 'static,
    {
        let bound = self.config.duration.min(UNTIMED_RUN_BOUND);
        let (run, sink) = self.shared_keep_all(later(
            Instant::now(),
            bound.saturating_add(self.config.timeout),
        ));
        let agents = self.agents(n_agents, true, &run);
        let ids: Vec<String> = agents.iter().map(|a| a.id().to_owned()).collect();
        engine::run_once(agents, &run, self.config.grace, workload).await;
        let mut by_agent: BTreeMap<String, Vec<RequestResult>> =
            ids.into_iter().map(|id| (id, Vec::new())).collect();
        for r in take(&sink) {
            let id = r.agent_id.clone().unwrap_or_default();
            by_agent.entry(id).or_default().push(r);
        }
        by_agent
    }

    /// Sends bursts: `size` requests at once every `every`, `count` bursts, open loop.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for no burst, empty bursts or a
    /// zero interval.
    pub async fn run_bursty<F>(
        &self,
        count: usize,
        size: usize,
        every: Duration,
        request_fn: F,
    ) -> crate::Result<Vec<RequestResult>>
    where
        F: Fn(Slot) -> Request + Send + Sync + 'static,
    {
        let load = Load::open(
            size.max(self.config.workers),
            Arrivals::Bursts { size, every },
            Stop::requests((count * size) as u64),
        );
        self.run(load, request_fn).await.map(|r| r.results)
    }

    /// Closed-loop load through `stages` of rising (or falling) concurrency.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) when no stage has a worker.
    pub async fn run_ramp_up<F>(
        &self,
        stages: Vec<Stage>,
        request_fn: F,
    ) -> crate::Result<Vec<RequestResult>>
    where
        F: Fn(Slot) -> Request + Send + Sync + 'static,
    {
        self.run(Load::ramp(stages), request_fn)
            .await
            .map(|r| r.results)
    }

    /// Runs any [`Load`] with anonymous workers, `request_fn` building each request.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for an invalid load.
    pub async fn run<F>(&self, load: Load, request_fn: F) -> crate::Result<RunResults>
    where
        F: Fn(Slot) -> Request + Send + Sync + 'static,
    {
        self.run_workers(load, false, move |agent, slot| {
            send_one(agent, request_fn(slot))
        })
        .await
    }

    /// Runs any [`Load`] like [`run`](Self::run), but folds each record into fixed-size
    /// aggregates as it arrives (per runtime thread, merged at the end) instead of keeping it:
    /// memory stays flat however long the run, and recording takes no shared lock.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for an invalid load;
    /// [`Error::Runtime`](crate::Error::Runtime) when the run's own threads cannot start.
    pub async fn run_streaming<F>(&self, load: Load, request_fn: F) -> crate::Result<StreamedRun>
    where
        F: Fn(Slot) -> Request + Send + Sync + 'static,
    {
        load.validate()?;
        let deadline = self.deadline_for(&load, Instant::now());
        let empty = self.config.collector();
        let driven = self
            .drive(
                load,
                false,
                deadline,
                |cells| ShardedCollector::new(empty.clone(), cells),
                move |agent, slot| send_one(agent, request_fn(slot)),
            )
            .await?;
        Ok(StreamedRun {
            load: ShardedCollector::merge_all(&driven.sinks, empty).metrics(),
            sent: driven.sent,
            generator: driven.generator,
        })
    }

    /// Runs any [`Load`] with one session agent per worker; `step` is called once per slot
    /// with the worker's agent (its conversation persists across steps).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for an invalid load.
    pub async fn run_agents<F, Fut>(&self, load: Load, step: F) -> crate::Result<RunResults>
    where
        F: Fn(Agent, Slot) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Agent> + Send + 'static,
    {
        self.run_workers(load, true, step).await
    }

    /// Runs `step` with one session agent per worker for `options.duration`, paced at
    /// `rate_limit` when set (else a closed loop), folding records into fixed-size aggregates
    /// as they arrive and sampling the server's memory when its pid is given.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for a zero duration or window.
    pub async fn run_sustained<F, Fut>(
        &self,
        options: Sustained,
        step: F,
    ) -> crate::Result<SustainedLoadMetrics>
    where
        F: Fn(Agent, Slot) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Agent> + Send + 'static,
    {
        if options.duration.is_zero() || options.window.is_zero() {
            return Err(crate::Error::InvalidConfig {
                field: "sustained",
                reason: "duration and window must be positive".to_owned(),
            });
        }
        let workers = self.config.workers;
        let stop = Stop::after(options.duration);
        let load = match self.config.rate_limit {
            None => Load::closed(workers, stop),
            Some(per_second) => Load::open(workers, Arrivals::Constant { per_second }, stop),
        };
        load.validate()?;
        let started = Instant::now();
        let streaming = Arc::new(Streaming::new(
            started,
            options.duration,
            options.window,
            self.config.seed,
            self.config.collector(),
        ));
        let run = self.shared(
            later(
                started,
                options.duration.saturating_add(self.config.timeout),
            ),
            Arc::clone(&streaming) as Arc<dyn Sink>,
        );
        let memory = Arc::new(ServerMemory::start(
            options.memory_pid,
            options.memory_reading.as_ref(),
            options.memory_interval,
            &self.client,
        ));
        // The harness's own memory, beside the server's (a failure to sample only loses it).
        let own = crate::MemorySampler::start(std::process::id(), options.memory_interval).ok();
        let progress = ProgressSource::start(&options, started, &run.tally, &memory, &streaming);
        let agents = self.agents(workers, true, &run);
        let generator = engine::run_steps(load, agents, &run, self.config.grace, step).await;
        if let Some(progress) = progress {
            // Ends the progress source, and with it its reference to `memory`.
            drop(progress.stop().await);
        }
        // The progress task was joined above, so this is the only reference left.
        let (memory_samples, memory_error) = match Arc::try_unwrap(memory) {
            Ok(memory) => memory.stop().await,
            Err(shared) => (
                Vec::new(),
                Some(format!("memory sampler still shared: {shared:?}")),
            ),
        };
        let harness_memory = match own {
            Some(sampler) => MemoryTrend::from_samples(&sampler.stop().await, options.warmup),
            None => None,
        };
        let (load, windows, degradation) = streaming.finish(options.degradation_windows);
        let memory = MemoryTrend::from_samples(&memory_samples, options.warmup);
        Ok(SustainedLoadMetrics {
            sent: run.tally.sent(),
            load,
            windows,
            degradation,
            memory_samples,
            memory,
            memory_error,
            harness_memory,
            generator,
        })
    }

    async fn run_workers<F, Fut>(
        &self,
        load: Load,
        sessions: bool,
        step: F,
    ) -> crate::Result<RunResults>
    where
        F: Fn(Agent, Slot) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Agent> + Send + 'static,
    {
        load.validate()?;
        let started = Instant::now();
        let deadline = self.deadline_for(&load, started);
        let keep_all = |_| KeepAll(Mutex::new(Vec::new()));
        let driven = self.drive(load, sessions, deadline, keep_all, step).await?;
        let mut results: Vec<RequestResult> = driven.sinks.iter().flat_map(|s| take(s)).collect();
        if driven.sinks.len() > 1 {
            // Each thread's records are in its completion order: interleave them.
            results.sort_by_key(|r| r.finished_at);
        }
        Ok(RunResults {
            sent: driven.sent,
            results,
            generator: driven.generator,
            started,
        })
    }

    /// The hard deadline of a run: its duration plus the timeout, or for count-bounded runs
    /// the time the schedule needs (when the last arrival falls due, in an open loop) plus
    /// enough rounds of timeouts to finish, the rounds capped at 10 minutes.
    fn deadline_for(&self, load: &Load, start: Instant) -> Instant {
        let bound = match load.stop.after {
            Some(d) => d,
            None => {
                let n = load.stop.requests.unwrap_or(1);
                let rounds = n.div_ceil(load.workers.max(1) as u64);
                let rounds = u32::try_from(rounds).unwrap_or(u32::MAX);
                let service = self
                    .config
                    .timeout
                    .saturating_mul(rounds)
                    .min(UNTIMED_RUN_BOUND);
                schedule_span(&load.pacing, n).saturating_add(service)
            }
        };
        later(start, bound.saturating_add(self.config.timeout))
    }

    fn shared_keep_all(&self, deadline: Instant) -> (Arc<RunShared>, Arc<KeepAll>) {
        let sink = Arc::new(KeepAll(Mutex::new(Vec::new())));
        (self.shared(deadline, sink.clone()), sink)
    }

    fn shared(&self, deadline: Instant, sink: Arc<dyn Sink>) -> Arc<RunShared> {
        self.run_shared(self.client.clone(), deadline, sink)
    }

    fn agents(&self, n: usize, sessions: bool, run: &Arc<RunShared>) -> Vec<Agent> {
        percore::agents_of((0..n).collect(), sessions, &run_tag(self.config.seed), run)
    }
}

/// The step of anonymous runs: send the slot's request.
async fn send_one(mut agent: Agent, request: Request) -> Agent {
    agent.send(request).await;
    agent
}

/// When the last of `n` arrivals falls due, from the start: exact for constant and burst
/// arrivals, with six standard deviations of margin for Poisson ones.
fn schedule_span(pacing: &Pacing, n: u64) -> Duration {
    // Request counts stay far below 2^53: the conversions are exact.
    let n = n as f64;
    let secs = match pacing {
        Pacing::Closed => 0.0,
        Pacing::Open(Arrivals::Constant { per_second }) => n / per_second,
        Pacing::Open(Arrivals::Poisson { per_second, .. }) => {
            (n + 6.0 * n.sqrt()) / per_second + 1.0
        }
        Pacing::Open(Arrivals::Bursts { size, every }) => {
            (n / (*size).max(1) as f64).ceil() * every.as_secs_f64()
        }
    };
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// `t + d`, or a time so far ahead that no run reaches it when that would overflow.
pub(crate) fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(FAR_FUTURE))
        .unwrap_or(t)
}

/// A century: "never" for a deadline.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn take(sink: &KeepAll) -> Vec<RequestResult> {
    std::mem::take(&mut *sink.0.lock().unwrap_or_else(PoisonError::into_inner))
}

/// A short tag that makes agent ids unique per run, so runs against a long-lived server never
/// share caches.
fn run_tag(seed: u64) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mix = seed ^ u64::from(nanos) ^ (u64::from(std::process::id()) << 32) ^ (n << 20);
    format!("{:08x}", mix & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_bounds_count_bounded_open_runs() {
        let bursts = Pacing::Open(Arrivals::Bursts {
            size: 2,
            every: Duration::from_secs(2),
        });
        assert_eq!(schedule_span(&bursts, 20), Duration::from_secs(20));
        let constant = Pacing::Open(Arrivals::Constant { per_second: 2.0 });
        assert_eq!(schedule_span(&constant, 150), Duration::from_secs(75));
        let poisson = Pacing::Open(Arrivals::Poisson {
            per_second: 100.0,
            seed: 1,
        });
        assert!(schedule_span(&poisson, 10_000) > Duration::from_secs(100));
        assert_eq!(schedule_span(&Pacing::Closed, 10), Duration::ZERO);
    }

    #[test]
    fn far_deadlines_do_not_overflow() {
        let now = Instant::now();
        assert!(later(now, Duration::MAX) > now + Duration::from_secs(3600 * 24 * 365));
        let harness = StressHarness::new(StressConfig::new("http://127.0.0.1:9")).unwrap();
        let load = Load::open(
            1,
            Arrivals::Constant { per_second: 1e-300 },
            Stop::requests(3),
        );
        assert!(harness.deadline_for(&load, now) > now);
    }

    #[tokio::test]
    async fn an_invalid_load_is_an_error_not_an_empty_run() {
        let harness = StressHarness::new(StressConfig::new("http://127.0.0.1:9")).unwrap();
        let request = || Request::get("/health");
        let err = harness
            .run_bursty(2, 0, Duration::from_millis(10), move |_| request())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("bursts"), "{err}");
        let stage = Stage {
            concurrency: 0,
            hold: Duration::from_millis(10),
        };
        let err = harness
            .run_ramp_up(vec![stage], move |_| request())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("workers"), "{err}");
    }

    #[test]
    fn absurd_settings_are_refused_with_their_name() {
        let err =
            StressHarness::new(StressConfig::new("http://127.0.0.1:9").timeout(Duration::MAX))
                .unwrap_err()
                .to_string();
        assert!(err.contains("timeout"), "{err}");
        let err =
            StressHarness::new(StressConfig::new("http://127.0.0.1:9").rate_limit(Some(1e-19)))
                .unwrap_err()
                .to_string();
        assert!(err.contains("rate_limit"), "{err}");
    }
}
