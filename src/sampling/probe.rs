//! [`Probe`]: a request repeated at an interval in the background (health, pool figures), while
//! a load runs.

use std::time::Duration;

use super::periodic::{Periodic, Plan, Source, Tick};
use super::series::Retention;
use crate::{Client, Request, RequestResult};

/// A background prober: sends one request every `interval` until stopped, keeping at most
/// `max_samples` records (the first ones; later probes are still sent, and counted).
///
/// The first probe is sent at once. Each probe is sent at its scheduled time (or at once when
/// the previous one took longer than the interval), and that time is its record's
/// `scheduled_at`. Intervals under 1 ms count as 1 ms.
///
/// Dropping it without [`stop`](Self::stop) ends the probing too.
#[derive(Debug)]
pub struct Probe {
    sampler: Periodic<Sender>,
}

/// What a stopped [`Probe`] saw.
#[derive(Debug, Clone, Default)]
pub struct Probed {
    /// The records kept, in the order sent.
    pub results: Vec<RequestResult>,
    /// Probes sent after `max_samples` records were kept.
    pub not_kept: u64,
}

/// Sends the probe request: one record per read.
struct Sender {
    client: Client,
    request: Request,
}

impl Source for Sender {
    type Sample = RequestResult;

    async fn read(&mut self, tick: Tick) -> Option<RequestResult> {
        Some(self.client.send(&self.request, tick.scheduled).await)
    }
}

impl Probe {
    /// Starts probing with `request` through `client` (intervals under 1 ms count as 1 ms).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn start(client: Client, request: Request, interval: Duration, max_samples: usize) -> Self {
        let plan = Plan::every(
            interval,
            Retention::KeepFirst {
                capacity: max_samples,
            },
        );
        Self {
            sampler: Periodic::start(Sender { client, request }, plan),
        }
    }

    /// Stops probing (after the probe in flight, if any, within the client's timeout) and
    /// returns the records kept.
    pub async fn stop(self) -> Vec<RequestResult> {
        self.finish().await.results
    }

    /// Like [`stop`](Self::stop), with the count of probes not kept.
    pub async fn finish(self) -> Probed {
        let mut series = self.sampler.stop().await.series;
        Probed {
            not_kept: series.not_kept(),
            results: series.take_samples(),
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
