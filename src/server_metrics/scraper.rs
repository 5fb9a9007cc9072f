//! [`ServerScraper`]: reads `GET /metrics` on an interval in the background (one of the crate's
//! periodic samplers: bounded, cancellable), into [`ServerMetrics`].

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{ServerMetricNames, ServerSample, ServerSummary, ServerWindow, align, summarize};
use crate::metrics::Window;
use crate::metrics::serde_duration::secs;
use crate::sampling::{Periodic, Plan, Retention, Source, Tick};
use crate::{Client, Request};

/// Samples kept before the series is decimated (every other one dropped, interval doubled).
const CAPACITY: usize = 4096;
/// Shortest interval between scrapes: `/metrics` is load on the server under test.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Longest wait for one scrape.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
/// Failed scrapes in a row, before any success, after which the target is taken not to expose
/// `/metrics` and no further request is sent.
const GIVE_UP_AFTER: u32 = 3;

/// What the server's `/metrics` said during a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerMetrics {
    /// The names read.
    pub names: ServerMetricNames,
    /// The interval between scrapes at the end of the run (doubled at each decimation).
    #[serde(rename = "interval_s", with = "secs")]
    pub interval: Duration,
    /// Every sample kept, in time order.
    pub samples: Vec<ServerSample>,
    /// The samples aligned to the report's windows (empty when the report has none).
    pub windows: Vec<ServerWindow>,
    /// Figures over the whole run.
    pub summary: ServerSummary,
    /// Why samples are missing or partial (no `/metrics`, none of the names in it, a line that
    /// did not parse), when something went wrong; the last such reason.
    pub error: Option<String>,
}

impl ServerMetrics {
    /// The figures of `samples` (in time order) read with `names` every `interval`, not yet
    /// aligned to windows.
    pub fn from_samples(
        names: ServerMetricNames,
        interval: Duration,
        samples: Vec<ServerSample>,
    ) -> Self {
        Self {
            names,
            interval,
            summary: summarize(&samples),
            samples,
            windows: Vec::new(),
            error: None,
        }
    }

    /// Aligns the samples to `windows` (see the [module docs](super#windows)).
    pub fn align_to(&mut self, windows: &[Window]) {
        self.windows = align(&self.samples, windows);
    }
}

/// One `/metrics` read per tick; gives up after three failures in a row with no sample yet.
struct MetricsSource {
    client: Client,
    names: ServerMetricNames,
    origin: Instant,
    error: Option<String>,
    failures: u32,
    read_any: bool,
}

impl MetricsSource {
    /// One scrape, bounded by 2 s: the sample, or why there is none.
    async fn scrape(&mut self) -> Option<ServerSample> {
        let request = Request::get("/metrics");
        let reply = tokio::time::timeout(SCRAPE_TIMEOUT, self.client.control_text(&request)).await;
        let read = match reply {
            Ok(Ok(text)) => {
                let (sample, warning) =
                    ServerSample::parse(&text, &self.names, self.origin.elapsed());
                if sample.has_any() {
                    if let Some(w) = warning {
                        self.error = Some(format!("GET /metrics: {w}"));
                    }
                    Ok(sample)
                } else {
                    Err(format!(
                        "GET /metrics has none of the configured metric names ({:?})",
                        self.names
                    ))
                }
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("GET /metrics: no reply within {SCRAPE_TIMEOUT:?}")),
        };
        match read {
            Ok(sample) => {
                self.failures = 0;
                self.read_any = true;
                Some(sample)
            }
            Err(e) => {
                self.failures += 1;
                self.error = Some(e);
                None
            }
        }
    }

    /// Whether the target was taken not to expose the metrics.
    fn gave_up(&self) -> bool {
        !self.read_any && self.failures >= GIVE_UP_AFTER
    }
}

impl Source for MetricsSource {
    type Sample = ServerSample;

    async fn read(&mut self, _tick: Tick) -> Option<ServerSample> {
        if self.gave_up() {
            return None;
        }
        self.scrape().await
    }
}

/// Reads the server's `GET /metrics` every interval (at least 100 ms) until stopped or dropped,
/// keeping at most 4096 samples (decimating as [`MemorySampler`](crate::MemorySampler) does).
/// Each scrape waits at most 2 s; after three failures in a row with no sample yet, it sends no
/// more: the target does not expose the metrics. [`stop`](Self::stop) reads once more, after
/// the load.
///
/// # Example
///
/// ```no_run
/// # async fn demo(client: semantic_stress::Client) {
/// use std::time::{Duration, Instant};
/// use semantic_stress::{ServerMetricNames, ServerScraper};
///
/// let scraper = ServerScraper::start(
///     client,
///     ServerMetricNames::default(),
///     Instant::now(),
///     Duration::from_secs(1),
/// );
/// // … run the load …
/// let server = scraper.stop().await;
/// println!("KV usage peaked at {:?}", server.summary.kv_cache_usage_max);
/// # }
/// ```
pub struct ServerScraper {
    names: ServerMetricNames,
    periodic: Periodic<MetricsSource>,
}

impl std::fmt::Debug for ServerScraper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerScraper")
            .field("names", &self.names)
            .field("periodic", &self.periodic)
            .finish()
    }
}

impl ServerScraper {
    /// Starts scraping through `client` every `interval` (at least 100 ms), sample times taken
    /// from `origin` (the run's start).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as `tokio::spawn` does).
    pub fn start(
        client: Client,
        names: ServerMetricNames,
        origin: Instant,
        interval: Duration,
    ) -> Self {
        let source = MetricsSource {
            client,
            names: names.clone(),
            origin,
            error: None,
            failures: 0,
            read_any: false,
        };
        let plan = Plan::every(interval, Retention::Decimate { capacity: CAPACITY })
            .floor(MIN_INTERVAL)
            .origin(origin);
        Self {
            names,
            periodic: Periodic::start(source, plan),
        }
    }

    /// The latest sample, if any.
    pub fn latest(&self) -> Option<ServerSample> {
        self.periodic.latest(|s| *s)
    }

    /// Stops (after the read in flight), reads once more — after the load: did the queue
    /// drain? — and returns everything read. Bounded by two scrapes of at most 2 s.
    pub async fn stop(self) -> ServerMetrics {
        let stopped = self.periodic.stop().await;
        let mut series = stopped.series;
        let interval = series.interval();
        let mut samples = series.take_samples();
        let mut error = None;
        if let Some(mut source) = stopped.source {
            if !source.gave_up()
                && let Some(last) = source.scrape().await
            {
                samples.push(last);
            }
            error = source.error;
        }
        let mut server = ServerMetrics::from_samples(self.names, interval, samples);
        server.error = error;
        server
    }
}
