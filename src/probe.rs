//! [`Probe`]: a request repeated at an interval in the background (health, pool figures), while
//! a load runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::{Client, Request, RequestResult};

/// Shortest interval between probes: a probe must not become load itself.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// A background prober: sends one request every `interval` until stopped, keeping at most
/// `max_samples` records (the first ones; later probes are still sent, and counted).
///
/// Dropping it without [`stop`](Self::stop) ends the probing too.
#[derive(Debug)]
pub struct Probe {
    stop: Arc<Notify>,
    task: Option<JoinHandle<Probed>>,
}

/// What a stopped [`Probe`] saw.
#[derive(Debug, Clone, Default)]
pub struct Probed {
    /// The records kept, in the order sent.
    pub results: Vec<RequestResult>,
    /// Probes sent after `max_samples` records were kept.
    pub not_kept: u64,
}

impl Probe {
    /// Starts probing with `request` through `client` (intervals under 1 ms count as 1 ms).
    pub fn start(client: Client, request: Request, interval: Duration, max_samples: usize) -> Self {
        let interval = interval.max(MIN_INTERVAL);
        let stop = Arc::new(Notify::new());
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut probed = Probed::default();
            let mut next = Instant::now();
            loop {
                // A probe in flight finishes (bounded by the client's timeout) and is recorded.
                let result = client.send(&request, next).await;
                if probed.results.len() < max_samples {
                    probed.results.push(result);
                } else {
                    probed.not_kept += 1;
                }
                next = next
                    .checked_add(interval)
                    .unwrap_or(next)
                    .max(Instant::now());
                tokio::select! {
                    () = tokio::time::sleep_until(next.into()) => {}
                    () = stopped.notified() => break,
                }
            }
            probed
        });
        Self {
            stop,
            task: Some(task),
        }
    }

    /// Stops probing (after the probe in flight, if any, within the client's timeout) and
    /// returns the records kept.
    pub async fn stop(self) -> Vec<RequestResult> {
        self.finish().await.results
    }

    /// Like [`stop`](Self::stop), with the count of probes not kept.
    pub async fn finish(mut self) -> Probed {
        self.stop.notify_one();
        match self.task.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => Probed::default(),
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A pool figure read from a `GET /health` probe: utilization as a 0–1 ratio, when the reply
/// carried `pool.utilization`.
pub fn pool_utilization(probe: &RequestResult) -> Option<f64> {
    let text = probe.text.as_deref()?;
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.pointer("/pool/utilization")
        .and_then(serde_json::Value::as_f64)
}
