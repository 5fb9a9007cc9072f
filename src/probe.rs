//! [`Probe`]: a request repeated at an interval in the background (health, pool figures), while
//! a load runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::{Client, Request, RequestResult};

/// A background prober: sends one request every `interval` until stopped, keeping at most
/// `max_samples` records (the oldest are kept; later probes are still sent but counted only).
#[derive(Debug)]
pub struct Probe {
    stop: Arc<AtomicBool>,
    task: JoinHandle<(Vec<RequestResult>, u64)>,
}

impl Probe {
    /// Starts probing with `request` through `client`.
    pub fn start(client: Client, request: Request, interval: Duration, max_samples: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut kept = Vec::new();
            let mut dropped = 0u64;
            let mut next = Instant::now();
            // Acquire pairs with the Release store in `stop`.
            while !flag.load(Ordering::Acquire) {
                let r = client.send(&request, next).await;
                if kept.len() < max_samples {
                    kept.push(r);
                } else {
                    dropped += 1;
                }
                next += interval;
                let now = Instant::now();
                if next < now {
                    next = now;
                }
                tokio::time::sleep_until(next.into()).await;
            }
            (kept, dropped)
        });
        Self { stop, task }
    }

    /// Stops probing and returns the records (the probe in flight, bounded by the client's
    /// timeout, is waited for).
    pub async fn stop(self) -> Vec<RequestResult> {
        self.stop.store(true, Ordering::Release);
        self.task.await.map(|(kept, _)| kept).unwrap_or_default()
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
