//! [`ServerMemory`]: the server's resident memory during a run, by pid or from its `/metrics`.

use std::time::Duration;

use super::memory::MemorySampler;
use super::periodic::{Periodic, Plan};
use super::scrape::{Parse, SCRAPE_FLOOR, Scrape};
use super::series::Retention;
use crate::metrics::MemorySample;
use crate::target::Reading;
use crate::{Client, Request};

/// Samples kept by the `/metrics` scraper before it decimates (as the pid sampler does).
const SCRAPE_CAPACITY: usize = 4096;

/// What to do when `/metrics` gives no memory figure.
const PID_HINT: &str = "set SEMANTIC_SERVER_PID to the server's pid";

/// Where the server's memory comes from during a run.
#[derive(Debug)]
pub(crate) enum ServerMemory {
    /// Not sampled (with the reason, when one was asked for and failed).
    Off(Option<String>),
    /// By pid, from the operating system.
    Pid(MemorySampler),
    /// From the server's Prometheus gauge (`process_resident_memory_bytes`).
    Metrics(Periodic<Scrape<MemorySample>>),
}

impl ServerMemory {
    /// Samples process `pid` every `interval` when given; else, when `reading` names a route
    /// (a Prometheus gauge or a JSON figure, in bytes), scrapes it through `client` (at most
    /// every 100 ms); else nothing.
    pub(crate) fn start(
        pid: Option<u32>,
        reading: Option<&Reading>,
        interval: Duration,
        client: &Client,
    ) -> Self {
        if let Some(pid) = pid {
            return match MemorySampler::start(pid, interval) {
                Ok(s) => Self::Pid(s),
                Err(e) => Self::Off(Some(e.to_string())),
            };
        }
        let Some((reading, path)) = reading.and_then(|r| Some((r.clone(), r.path()?.to_owned())))
        else {
            return Self::Off(None);
        };
        let parse: Parse<MemorySample> = Box::new(move |text, at| {
            reading
                .extract(text)
                .filter(|b| *b >= 0.0)
                // Byte counts are integral and far below 2^53.
                .map(|b| MemorySample {
                    at,
                    rss_bytes: b as u64,
                })
                .ok_or_else(|| format!("{} gave no memory figure", reading.describe()))
        });
        let scrape = Scrape::new(client.clone(), Request::get(path), parse);
        let plan = Plan::every(
            interval,
            Retention::Decimate {
                capacity: SCRAPE_CAPACITY,
            },
        )
        .floor(SCRAPE_FLOOR);
        Self::Metrics(Periodic::start(scrape, plan))
    }

    /// The latest reading in bytes.
    pub(crate) fn latest(&self) -> Option<u64> {
        match self {
            Self::Off(_) => None,
            Self::Pid(s) => s.latest().map(|m| m.rss_bytes),
            Self::Metrics(s) => s.latest(|m| m.rss_bytes),
        }
    }

    /// Stops sampling: the samples, and why there are none when there are none.
    pub(crate) async fn stop(self) -> (Vec<MemorySample>, Option<String>) {
        match self {
            Self::Off(reason) => (Vec::new(), reason),
            Self::Pid(s) => (s.stop().await, None),
            Self::Metrics(s) => {
                let mut stopped = s.stop().await;
                let samples = stopped.series.take_samples();
                let error = if samples.is_empty() {
                    let why = stopped.source.and_then(Scrape::into_error);
                    why.map(|e| format!("{e}: {PID_HINT}"))
                } else {
                    None
                };
                (samples, error)
            }
        }
    }
}
