//! Sustained runs: records are folded as they arrive into fixed-size aggregates (a collector
//! and a windowed series), so an hour costs no more memory than a minute; server memory is
//! sampled beside them.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::agent::Sink;
use crate::memory::Series;
use crate::metrics::{
    Degradation, LoadMetrics, MemoryTrend, MetricsCollector, Window, WindowedSeries,
};
use crate::{Client, GeneratorStats, MemorySample, MemorySampler, Request, RequestResult};

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How a sustained run is measured (its load comes from the harness's settings).
#[derive(Clone)]
pub struct Sustained {
    /// How long to run (seed: one hour).
    pub duration: Duration,
    /// Width of the time windows of the latency series.
    pub window: Duration,
    /// Memory samples and windows before this offset are warm-up: excluded from trends.
    pub warmup: Duration,
    /// The server process whose resident memory is sampled, if known.
    pub memory_pid: Option<u32>,
    /// Without a pid, read the server's memory from its Prometheus `GET /metrics`
    /// (`process_resident_memory_bytes`).
    pub memory_from_metrics: bool,
    /// Interval between memory samples.
    pub memory_interval: Duration,
    /// Windows compared on each side (early vs late) for degradation.
    pub degradation_windows: usize,
    /// Called every `progress_interval` while the run goes on.
    pub progress: Option<ProgressFn>,
    /// Interval between progress calls.
    pub progress_interval: Duration,
}

impl std::fmt::Debug for Sustained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sustained")
            .field("duration", &self.duration)
            .field("window", &self.window)
            .field("warmup", &self.warmup)
            .field("memory_pid", &self.memory_pid)
            .field("memory_from_metrics", &self.memory_from_metrics)
            .field("memory_interval", &self.memory_interval)
            .field("degradation_windows", &self.degradation_windows)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Sustained {
    /// A run of `duration`: windows of a tenth of it (at most a minute), warm-up of the first
    /// window, memory sampled 100 times (at least every 100 ms, at most every 5 s), the first
    /// and last two windows compared.
    pub fn new(duration: Duration) -> Self {
        let window = (duration / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let memory_interval =
            (duration / 100).clamp(Duration::from_millis(100), Duration::from_secs(5));
        Self {
            duration,
            window,
            warmup: window,
            memory_pid: None,
            memory_from_metrics: false,
            memory_interval,
            degradation_windows: 2,
            progress: None,
            progress_interval: Duration::from_secs(10),
        }
    }

    /// Samples the memory of process `pid`.
    #[must_use]
    pub fn memory_pid(mut self, pid: Option<u32>) -> Self {
        self.memory_pid = pid;
        self
    }

    /// Without a pid, reads server memory from `GET /metrics` instead.
    #[must_use]
    pub fn memory_from_metrics(mut self, yes: bool) -> Self {
        self.memory_from_metrics = yes;
        self
    }

    /// Calls `f` with live figures every `every`.
    #[must_use]
    pub fn progress(
        mut self,
        every: Duration,
        f: impl Fn(&Progress) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(Arc::new(f));
        self.progress_interval = every;
        self
    }
}

/// Live figures of a running sustained run.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// Time since the run started.
    pub elapsed: Duration,
    /// The run's planned length.
    pub total: Duration,
    /// Requests sent.
    pub sent: u64,
    /// Errors so far.
    pub errors: u64,
    /// Graceful rejections so far.
    pub rejected: u64,
    /// Latest server resident memory, if sampled.
    pub server_rss_bytes: Option<u64>,
    /// p95 latency of successes in the latest window that has any.
    pub recent_p95: Option<Duration>,
}

/// What a sustained run measured.
#[derive(Debug, Clone, Serialize)]
pub struct SustainedLoadMetrics {
    /// Figures of every request of the run.
    pub load: LoadMetrics,
    /// The run in time windows.
    pub windows: Vec<Window>,
    /// Early vs late latency, when there were enough windows.
    pub degradation: Option<Degradation>,
    /// Server memory samples (offsets from the run's start).
    pub memory_samples: Vec<MemorySample>,
    /// Server memory growth after warm-up, when there were enough samples.
    pub memory: Option<MemoryTrend>,
    /// Why memory could not be sampled, when a pid was given and sampling failed.
    pub memory_error: Option<String>,
    /// The harness's own memory growth over the run, after the same warm-up: it must stay
    /// flat too (records fold into fixed-size aggregates).
    pub harness_memory: Option<MemoryTrend>,
    /// How the generator kept up.
    pub generator: GeneratorStats,
    /// Requests sent (equals `load.total`).
    pub sent: u64,
}

impl SustainedLoadMetrics {
    /// Requests recorded.
    pub fn total_requests(&self) -> u64 {
        self.load.total
    }

    /// Successful requests.
    pub fn successful_requests(&self) -> u64 {
        self.load.successful
    }

    /// Error rate, graceful rejections not counted.
    pub fn error_rate(&self) -> f64 {
        self.load.error_rate
    }

    /// Mean latency of successes in milliseconds.
    pub fn avg_latency_ms(&self) -> f64 {
        self.load.success_latency.mean.as_secs_f64() * 1000.0
    }

    /// p95 latency of successes in milliseconds.
    pub fn p95_latency_ms(&self) -> f64 {
        self.load.success_latency.p95.as_secs_f64() * 1000.0
    }

    /// p99 latency of successes in milliseconds.
    pub fn p99_latency_ms(&self) -> f64 {
        self.load.success_latency.p99.as_secs_f64() * 1000.0
    }

    /// Completed requests per second.
    pub fn throughput_rps(&self) -> f64 {
        self.load.throughput_rps
    }
}

/// Folds records into a collector and a windowed series as they arrive.
pub(crate) struct Streaming {
    state: Mutex<(MetricsCollector, WindowedSeries)>,
}

impl Streaming {
    /// Aggregates for a run of `duration` in windows of `window`, all allocated now so that
    /// the harness's memory stays flat while the run goes on.
    pub(crate) fn new(
        origin: Instant,
        duration: Duration,
        window: Duration,
        seed: u64,
        collector: MetricsCollector,
    ) -> Self {
        // The window count fits in usize for any accepted duration; +2 covers the partial
        // last window and in-flight requests that end after the schedule.
        let n =
            usize::try_from(duration.as_nanos() / window.as_nanos().max(1)).unwrap_or(usize::MAX);
        Self {
            state: Mutex::new((
                collector,
                WindowedSeries::new(origin, window)
                    .with_seed(seed)
                    .with_capacity(n.saturating_add(2)),
            )),
        }
    }

    pub(crate) fn finish(&self, k: usize) -> (LoadMetrics, Vec<Window>, Option<Degradation>) {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (state.0.metrics(), state.1.windows(), state.1.degradation(k))
    }
}

impl Streaming {
    /// p95 of successes in the latest window that has any. Time: O(windows).
    pub(crate) fn recent_p95(&self) -> Option<Duration> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .1
            .windows()
            .iter()
            .rev()
            .find(|w| w.latency.count > 0)
            .map(|w| w.latency.p95)
    }
}

impl Sink for Streaming {
    fn record(&self, result: &RequestResult) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0.record(result);
        state.1.record(result);
    }
}

/// Shortest interval between `/metrics` scrapes.
const MIN_SCRAPE_INTERVAL: Duration = Duration::from_millis(100);
/// Samples kept by the `/metrics` scraper before it decimates (as the pid sampler does).
const SCRAPE_CAPACITY: usize = 4096;

/// Where the server's memory comes from during a sustained run.
#[derive(Debug)]
pub(crate) enum ServerMemory {
    /// Not sampled (with the reason, when one was asked for and failed).
    Off(Option<String>),
    /// By pid, from the operating system.
    Pid(MemorySampler),
    /// From the server's Prometheus gauge.
    Metrics(Scraper),
}

#[derive(Debug)]
pub(crate) struct Scraper {
    state: Arc<Mutex<ScrapeState>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct ScrapeState {
    series: Series,
    error: Option<String>,
}

impl ServerMemory {
    pub(crate) fn start(options: &Sustained, client: &Client) -> Self {
        if let Some(pid) = options.memory_pid {
            return match MemorySampler::start(pid, options.memory_interval) {
                Ok(s) => Self::Pid(s),
                Err(e) => Self::Off(Some(e.to_string())),
            };
        }
        if !options.memory_from_metrics {
            return Self::Off(None);
        }
        // A zero interval would scrape back to back: load on the server under test.
        let every = options.memory_interval.max(MIN_SCRAPE_INTERVAL);
        let state = Arc::new(Mutex::new(ScrapeState {
            series: Series::new(SCRAPE_CAPACITY, every),
            error: None,
        }));
        let shared = Arc::clone(&state);
        let client = client.clone();
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let request = Request::get("/metrics");
            loop {
                let reading = client.control_text(&request).await;
                let every = {
                    let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
                    match reading.map(|t| crate::prometheus_rss_bytes(&t)) {
                        Ok(Some(rss_bytes)) => s.series.push(MemorySample {
                            at: start.elapsed(),
                            rss_bytes,
                        }),
                        Ok(None) => {
                            s.error = Some(
                                "GET /metrics has no process_resident_memory_bytes gauge: set SEMANTIC_SERVER_PID to the server's pid".to_owned(),
                            );
                        }
                        Err(e) => {
                            s.error =
                                Some(format!("{e}: set SEMANTIC_SERVER_PID to the server's pid"))
                        }
                    }
                    s.series.interval
                };
                tokio::time::sleep(every).await;
            }
        });
        Self::Metrics(Scraper { state, task })
    }

    pub(crate) fn latest(&self) -> Option<u64> {
        match self {
            Self::Off(_) => None,
            Self::Pid(s) => s.latest().map(|m| m.rss_bytes),
            Self::Metrics(s) => s
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .series
                .samples
                .last()
                .map(|m| m.rss_bytes),
        }
    }

    /// Stops sampling: the samples, and why there are none when there are none.
    pub(crate) async fn stop(self) -> (Vec<MemorySample>, Option<String>) {
        match self {
            Self::Off(reason) => (Vec::new(), reason),
            Self::Pid(s) => (s.stop().await, None),
            Self::Metrics(s) => {
                s.task.abort();
                let _ = s.task.await;
                let mut state = s.state.lock().unwrap_or_else(PoisonError::into_inner);
                let samples = std::mem::take(&mut state.series.samples);
                let error = if samples.is_empty() {
                    state.error.take()
                } else {
                    None
                };
                (samples, error)
            }
        }
    }
}
