//! Resident memory of a process, by pid: one-off reads ([`process_rss_bytes`]) and a background
//! [`MemorySampler`].
//!
//! The sampling rule is stated on [`MemorySampler`].

use std::time::{Duration, Instant};

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, RefreshKind, System};

use super::periodic::{First, Periodic, Plan, Source, Tick};
use super::series::Retention;
use crate::metrics::MemorySample;
use crate::{Error, Result};

/// Samples kept before the series is decimated: over an hour at one sample per second.
const DEFAULT_CAPACITY: usize = 4096;

/// The resident set size of process `pid` in bytes, or `None` when no such process is visible.
///
/// Blocking: reads `/proc` (or the platform's equivalent) once.
pub fn process_rss_bytes(pid: u32) -> Option<u64> {
    ProcessReader::new(pid).read()
}

/// Whether process `pid` is running: visible and neither a zombie nor dead (a crashed child
/// that its parent has not reaped yet is a zombie).
///
/// Blocking: reads `/proc` (or the platform's equivalent) once.
pub(crate) fn process_running(pid: u32) -> bool {
    let pid = Pid::from_u32(pid);
    let mut system = System::new_with_specifics(RefreshKind::nothing());
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing(),
    );
    system.process(pid).is_some_and(|p| {
        !matches!(
            p.status(),
            sysinfo::ProcessStatus::Zombie | sysinfo::ProcessStatus::Dead
        )
    })
}

/// Reads one process's memory, keeping sysinfo's state between reads.
#[derive(Debug)]
struct ProcessReader {
    pid: Pid,
    system: System,
}

impl ProcessReader {
    /// A reader for `pid`; reads nothing yet.
    fn new(pid: u32) -> Self {
        Self {
            pid: Pid::from_u32(pid),
            system: System::new_with_specifics(RefreshKind::nothing()),
        }
    }

    /// The process's RSS in bytes, `None` when it is gone. Blocking.
    fn read(&mut self) -> Option<u64> {
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[self.pid]),
            true,
            ProcessRefreshKind::nothing().with_memory().without_tasks(),
        );
        self.system.process(self.pid).map(sysinfo::Process::memory)
    }
}

/// Samples a process's resident memory in the background until stopped. Dropping the sampler
/// stops the task too.
///
/// # Sampling rule
///
/// The sampler reads the resident set size (RSS, via `sysinfo`) once at start (`at = 0`), then
/// once per interval in a tokio task, until stopped. The read is a blocking `/proc` access, so it
/// runs on tokio's blocking pool. A read that fails (the process has exited) yields no sample.
///
/// Memory stays bounded: at most `capacity` samples are kept. When a new sample would exceed the
/// capacity, the series is *decimated*: every other sample is dropped (the first is kept) and the
/// interval doubles, so the kept samples stay evenly spaced and cover the whole run. A one-hour
/// run at 1 s with the default capacity of 4096 is never decimated.
///
/// The samples are plain data; [`MemoryTrend`](crate::metrics::MemoryTrend) judges them.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use semantic_stress::MemorySampler;
///
/// let sampler = MemorySampler::start(std::process::id(), Duration::from_millis(10))?;
/// tokio::time::sleep(Duration::from_millis(50)).await;
/// let samples = sampler.stop().await;
/// assert!(samples[0].rss_bytes > 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct MemorySampler {
    pid: u32,
    sampler: Periodic<PidReader>,
}

impl MemorySampler {
    /// Starts sampling process `pid` every `interval`, keeping up to 4096 samples.
    ///
    /// Must be called within a tokio runtime. Reads once synchronously to check the process.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when no process `pid` is visible or when called outside a tokio
    /// runtime; [`Error::InvalidConfig`] for a zero interval.
    pub fn start(pid: u32, interval: Duration) -> Result<Self> {
        Self::start_with_capacity(pid, interval, DEFAULT_CAPACITY)
    }

    /// Like [`start`](Self::start), keeping at most `capacity` samples before decimating.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start); also [`Error::InvalidConfig`] when `capacity < 2`.
    pub fn start_with_capacity(pid: u32, interval: Duration, capacity: usize) -> Result<Self> {
        if interval.is_zero() {
            return Err(invalid("memory sample interval", "must be positive"));
        }
        if capacity < 2 {
            return Err(invalid("memory sample capacity", "must be at least 2"));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Memory {
                pid,
                reason: "the sampler must be started within a tokio runtime".to_owned(),
            });
        }
        let started = Instant::now();
        let mut reader = ProcessReader::new(pid);
        let rss_bytes = reader.read().ok_or_else(|| Error::Memory {
            pid,
            reason: "no such process".to_owned(),
        })?;
        let first = MemorySample {
            at: started.elapsed(),
            rss_bytes,
        };
        let plan = Plan::every(interval, Retention::Decimate { capacity })
            .origin(started)
            .first(First::Given(first));
        Ok(Self {
            pid,
            sampler: Periodic::start(PidReader(Some(reader)), plan),
        })
    }

    /// The process being sampled.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The current interval between samples (doubled at each decimation).
    pub fn interval(&self) -> Duration {
        self.sampler.interval()
    }

    /// A copy of the samples so far, oldest first.
    ///
    /// Time: O(n).
    pub fn samples(&self) -> Vec<MemorySample> {
        self.sampler.samples()
    }

    /// The most recent sample.
    pub fn latest(&self) -> Option<MemorySample> {
        self.sampler.latest(|s| *s)
    }

    /// Stops sampling, waits for the task to finish, and returns every sample kept.
    pub async fn stop(self) -> Vec<MemorySample> {
        self.sampler.stop().await.series.take_samples()
    }
}

/// The pid sampler's [`Source`]: one `/proc` read on tokio's blocking pool per tick. The reader
/// is `None` once a read panicked inside sysinfo: later ticks yield nothing, and the samples so
/// far stay available.
struct PidReader(Option<ProcessReader>);

impl Source for PidReader {
    type Sample = MemorySample;

    async fn read(&mut self, tick: Tick) -> Option<MemorySample> {
        let mut reader = self.0.take()?;
        let read = tokio::task::spawn_blocking(move || {
            let rss = reader.read();
            (reader, rss)
        });
        let (back, rss) = read.await.ok()?;
        self.0 = Some(back);
        Some(MemorySample {
            at: tick.at,
            rss_bytes: rss?,
        })
    }
}

/// An [`Error::InvalidConfig`] for the sampler's settings.
fn invalid(field: &'static str, reason: &str) -> Error {
    Error::InvalidConfig {
        field,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn samples_this_process() {
        let sampler = MemorySampler::start(std::process::id(), Duration::from_millis(5)).unwrap();
        assert_eq!(sampler.pid(), std::process::id());
        tokio::time::timeout(Duration::from_secs(10), async {
            while sampler.samples().len() < 4 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the sampler took no samples");
        assert!(sampler.latest().unwrap().rss_bytes > 0);
        let samples = sampler.stop().await;
        assert!(samples.len() >= 4);
        assert_eq!(samples[0].at.min(Duration::from_secs(1)), samples[0].at);
        assert!(samples.windows(2).all(|w| w[0].at < w[1].at));
        assert!(samples.iter().all(|s| s.rss_bytes > 1024 * 1024));
    }

    #[tokio::test]
    async fn a_missing_process_is_an_error() {
        // Linux pids stay below pid_max ≤ 2^22, so this one cannot exist.
        let missing = 1 << 22;
        let err = MemorySampler::start(missing, Duration::from_millis(5)).unwrap_err();
        assert!(matches!(err, Error::Memory { .. }), "{err}");
        assert!(process_rss_bytes(missing).is_none());
        assert!(process_rss_bytes(std::process::id()).is_some());
    }

    #[tokio::test]
    async fn a_full_series_is_decimated_and_the_interval_doubles() {
        let sampler =
            MemorySampler::start_with_capacity(std::process::id(), Duration::from_millis(1), 8)
                .unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while sampler.interval() < Duration::from_millis(4) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("no decimation");
        let samples = sampler.stop().await;
        assert!(samples.len() <= 8);
        assert_eq!(samples[0].at, samples[0].at.min(Duration::from_millis(100)));
    }

    #[test]
    fn zero_interval_and_tiny_capacity_are_rejected() {
        let pid = std::process::id();
        assert!(matches!(
            MemorySampler::start(pid, Duration::ZERO),
            Err(Error::InvalidConfig { .. })
        ));
        assert!(matches!(
            MemorySampler::start_with_capacity(pid, Duration::from_secs(1), 1),
            Err(Error::InvalidConfig { .. })
        ));
    }
}
