//! Sustained runs: records are folded as they arrive into fixed-size aggregates (a collector
//! and a windowed series), so an hour costs no more memory than a minute; server memory is
//! sampled beside them.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Tally;
use super::agent::Sink;
use crate::metrics::{
    Degradation, LoadMetrics, MemoryTrend, MetricsCollector, Window, WindowedSeries,
};
use crate::sampling::{First, Periodic, Plan, Retention, ServerMemory, Source, Tick};
use crate::target::Reading;
use crate::{GeneratorStats, MemorySample, RequestResult};

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
    /// Without a pid, read the server's memory (bytes) from this route: a Prometheus gauge or a
    /// JSON figure.
    pub memory_reading: Option<Reading>,
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
            .field("memory_reading", &self.memory_reading)
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
            memory_reading: None,
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

    /// Without a pid, reads server memory from `GET /metrics`'s
    /// `process_resident_memory_bytes` gauge instead (or stops reading it).
    #[must_use]
    pub fn memory_from_metrics(mut self, yes: bool) -> Self {
        self.memory_reading = yes.then(|| Reading::Prometheus {
            path: "/metrics".to_owned(),
            metric: "process_resident_memory_bytes".to_owned(),
            scale: 1.0,
        });
        self
    }

    /// Without a pid, reads server memory (bytes) as `reading` says.
    #[must_use]
    pub fn memory_reading(mut self, reading: Option<Reading>) -> Self {
        self.memory_reading = reading;
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

/// Progress is never reported more often than this.
const PROGRESS_FLOOR: Duration = Duration::from_millis(100);

/// The progress of a sustained run as a [`Source`]: each read gathers the run's live figures and
/// hands them to the callback.
pub(crate) struct ProgressSource {
    callback: ProgressFn,
    started: Instant,
    total: Duration,
    tally: Arc<Tally>,
    memory: Arc<ServerMemory>,
    streaming: Arc<Streaming>,
}

impl ProgressSource {
    /// Calls `options.progress`, if set, every `options.progress_interval` (at least 100 ms,
    /// the first call one interval after now) with the figures of the run `started` then.
    pub(crate) fn start(
        options: &Sustained,
        started: Instant,
        tally: &Arc<Tally>,
        memory: &Arc<ServerMemory>,
        streaming: &Arc<Streaming>,
    ) -> Option<Periodic<Self>> {
        let source = Self {
            callback: options.progress.clone()?,
            started,
            total: options.duration,
            tally: Arc::clone(tally),
            memory: Arc::clone(memory),
            streaming: Arc::clone(streaming),
        };
        let plan = Plan::every(
            options.progress_interval,
            Retention::KeepFirst { capacity: 0 },
        )
        .floor(PROGRESS_FLOOR)
        .first(First::AfterInterval);
        Some(Periodic::start(source, plan))
    }
}

impl Source for ProgressSource {
    type Sample = Progress;

    async fn read(&mut self, _: Tick) -> Option<Progress> {
        let progress = Progress {
            elapsed: self.started.elapsed(),
            total: self.total,
            sent: self.tally.sent(),
            errors: self.tally.errors(),
            rejected: self.tally.rejected(),
            server_rss_bytes: self.memory.latest(),
            recent_p95: self.streaming.recent_p95(),
        };
        (self.callback)(&progress);
        Some(progress)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn progress_is_reported_every_interval_after_the_first() {
        let seen = Arc::new(Mutex::new(Vec::<Duration>::new()));
        let log = Arc::clone(&seen);
        let options = Sustained::new(Duration::from_secs(60))
            .progress(Duration::from_millis(100), move |p: &Progress| {
                log.lock().unwrap().push(p.elapsed)
            });
        let started = Instant::now();
        let streaming = Arc::new(Streaming::new(
            started,
            options.duration,
            options.window,
            1,
            MetricsCollector::new(),
        ));
        let memory = Arc::new(ServerMemory::Off(None));
        let tally = Arc::new(Tally::default());
        let progress = ProgressSource::start(&options, started, &tally, &memory, &streaming)
            .expect("a callback was given");
        tokio::time::timeout(Duration::from_secs(10), async {
            while seen.lock().unwrap().len() < 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("no progress reported");
        let stopped = progress.stop().await;
        let seen = seen.lock().unwrap().clone();
        assert!(seen[0] >= Duration::from_millis(100), "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert!(
            stopped.series.samples().is_empty(),
            "progress keeps no series"
        );
        assert_eq!(
            stopped.series.latest().map(|p| p.elapsed),
            seen.last().copied()
        );
        drop(stopped);
        assert_eq!(
            Arc::strong_count(&memory),
            1,
            "the source let go of the memory"
        );
        let none = ProgressSource::start(
            &Sustained::new(Duration::from_secs(1)),
            started,
            &tally,
            &memory,
            &streaming,
        );
        assert!(none.is_none());
    }
}
