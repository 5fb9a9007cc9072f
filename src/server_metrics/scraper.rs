//! [`ServerScraper`]: reads `GET /metrics` on an interval in the background, bounded and
//! cancellable, into [`ServerMetrics`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{ServerMetricNames, ServerSample, ServerSummary, ServerWindow, align, summarize};
use crate::memory::Series;
use crate::metrics::Window;
use crate::metrics::serde_duration::secs;
use crate::{Client, Request};

/// Samples kept before the series is decimated (every other one dropped, interval doubled).
const CAPACITY: usize = 4096;
/// Shortest interval between scrapes: `/metrics` is load on the server under test.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Longest wait for one scrape.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
/// Failed scrapes in a row, before any success, after which the target is taken not to expose
/// `/metrics` and scraping stops.
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

    /// Whether at least one sample had one of the configured figures.
    pub fn measured(&self) -> bool {
        !self.samples.is_empty()
    }
}

#[derive(Debug)]
struct State {
    series: Series<ServerSample>,
    error: Option<String>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // Each update is one push or one assignment: a poisoned lock is still consistent.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads the server's `GET /metrics` every interval until stopped (or dropped), keeping at most
/// 4096 samples (decimating as [`MemorySampler`](crate::MemorySampler) does). Each scrape waits
/// at most 2 s; after three failures in a row with no sample yet, it stops: the target does not
/// expose the metrics.
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
#[derive(Debug)]
pub struct ServerScraper {
    names: ServerMetricNames,
    state: Arc<Mutex<State>>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    _stop_on_drop: DropGuard,
}

impl ServerScraper {
    /// Starts scraping through `client` every `interval` (at least 100 ms), sample times taken
    /// from `origin` (the run's start). Must be called within a tokio runtime.
    pub fn start(
        client: Client,
        names: ServerMetricNames,
        origin: Instant,
        interval: Duration,
    ) -> Self {
        let interval = interval.max(MIN_INTERVAL);
        let state = Arc::new(Mutex::new(State {
            series: Series::new(CAPACITY, interval),
            error: None,
        }));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(scrape_until_cancelled(
            client,
            names.clone(),
            Arc::clone(&state),
            cancel.clone(),
            origin,
        ));
        Self {
            names,
            state,
            _stop_on_drop: cancel.clone().drop_guard(),
            cancel,
            task,
        }
    }

    /// The latest sample, if any.
    pub fn latest(&self) -> Option<ServerSample> {
        lock(&self.state).series.samples.last().copied()
    }

    /// Takes one more sample now (after the load: did the queue drain?), then stops and returns
    /// everything read. The last scrape is bounded by 2 s.
    pub async fn stop(self) -> ServerMetrics {
        self.cancel.cancel();
        // The task ends at its next await point; a join error (a panic in a parse) still
        // leaves the samples gathered so far.
        let _ = self.task.await;
        let mut state = lock(&self.state);
        let samples = std::mem::take(&mut state.series.samples);
        let mut server = ServerMetrics::from_samples(self.names, state.series.interval, samples);
        server.error = state.error.take();
        server
    }
}

/// One scrape: the sample, or why there is none.
async fn scrape(
    client: &Client,
    names: &ServerMetricNames,
    origin: Instant,
) -> Result<(ServerSample, Option<String>), String> {
    let request = Request::get("/metrics");
    let text = match tokio::time::timeout(SCRAPE_TIMEOUT, client.control_text(&request)).await {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("GET /metrics: no reply within {SCRAPE_TIMEOUT:?}")),
    };
    let (sample, parse_error) = ServerSample::parse(&text, names, origin.elapsed());
    if !sample.has_any() {
        return Err(format!(
            "GET /metrics has none of the configured metric names ({names:?})"
        ));
    }
    Ok((sample, parse_error.map(|e| format!("GET /metrics: {e}"))))
}

async fn scrape_until_cancelled(
    client: Client,
    names: ServerMetricNames,
    state: Arc<Mutex<State>>,
    cancel: CancellationToken,
    origin: Instant,
) {
    let mut failures = 0;
    let mut last = false;
    loop {
        let reading = scrape(&client, &names, origin).await;
        let interval = {
            let mut s = lock(&state);
            match reading {
                Ok((sample, warning)) => {
                    failures = 0;
                    s.series.push(sample);
                    if warning.is_some() {
                        s.error = warning;
                    }
                }
                Err(e) => {
                    failures += 1;
                    s.error = Some(e);
                    if s.series.samples.is_empty() && failures >= GIVE_UP_AFTER {
                        return;
                    }
                }
            }
            s.series.interval
        };
        if last {
            return;
        }
        tokio::select! {
            // Stopped: one last sample, after the load, then end.
            () = cancel.cancelled() => last = true,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
