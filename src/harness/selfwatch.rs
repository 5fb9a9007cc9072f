//! The harness watching itself during a run: how busy its event loop was, how late a task that
//! asked to run got to run, and how much CPU the process used. These figures go into
//! [`GeneratorStats`] beside the timer lag, and decide whether the run's timing can be trusted.
//!
//! - **Event-loop busy share**: Σ over the runtime's workers of the time each spent running
//!   tasks (tokio's stable `RuntimeMetrics::worker_total_busy_duration`), divided by
//!   `workers × wall time`. A loop busy all the time polls sockets late.
//! - **Wake-up lag**: a probe task, every millisecond, notes the time, yields to the scheduler
//!   (`tokio::task::yield_now`, which puts it at the back of its run queue) and measures how
//!   long it took to be polled again: the delay any ready task — a socket with a delta on it —
//!   waits for its turn. A measured figure, not the timer's 1 ms resolution.
//! - **CPU**: user + system time of this process from `/proc/self/stat` over the run, and its
//!   share of `wall time × cores available`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::engine::GeneratorStats;

/// How often the probe measures its wake-up lag.
const PROBE_EVERY: Duration = Duration::from_millis(1);

/// A running watch, finished into [`GeneratorStats`].
#[derive(Debug)]
pub(crate) struct SelfWatch {
    start: Instant,
    cpu_start: Option<Duration>,
    busy_start: Option<Duration>,
    stop: Arc<AtomicBool>,
    probe: Option<JoinHandle<Histogram<u64>>>,
}

impl SelfWatch {
    /// Starts watching (the probe runs on the current runtime, if any).
    pub(crate) fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let probe = Handle::try_current()
            .ok()
            .map(|h| h.spawn(probe(Arc::clone(&stop))));
        Self {
            start: Instant::now(),
            cpu_start: process_cpu(),
            busy_start: busy_total(),
            stop,
            probe,
        }
    }

    /// Stops the probe and returns what was watched, to be merged with other threads' and
    /// written into [`GeneratorStats`] with [`Watched::apply`].
    pub(crate) async fn finish(self) -> Watched {
        let wall = self.start.elapsed();
        self.stop.store(true, Ordering::Relaxed);
        let mut wake_lag = None;
        if let Some(probe) = self.probe
            && let Ok(lag) = probe.await
            && !lag.is_empty()
        {
            wake_lag = Some(lag);
        }
        let cpu = match (self.cpu_start, process_cpu()) {
            (Some(before), Some(after)) => Some(after.saturating_sub(before)),
            _ => None,
        };
        let busy = match (self.busy_start, busy_total(), Handle::try_current()) {
            (Some(before), Some(after), Ok(handle)) => Some((
                after.saturating_sub(before),
                handle.metrics().num_workers().max(1),
            )),
            _ => None,
        };
        Watched {
            wall,
            cpu,
            busy,
            wake_lag,
        }
    }
}

/// What a [`SelfWatch`] saw on one runtime, before it is turned into figures.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    wall: Duration,
    /// The whole process's CPU time over the watch.
    cpu: Option<Duration>,
    /// Σ of the runtime workers' busy time, and how many workers.
    busy: Option<(Duration, usize)>,
    /// Wake-up lags of the probe, µs.
    wake_lag: Option<Histogram<u64>>,
}

impl Watched {
    /// Folds `other` (another runtime of the same run) in: busy times and workers add up,
    /// wake-up lags are merged sample for sample, and wall and CPU time (both of the whole
    /// process, over nearly the same interval) keep the longer reading.
    pub(crate) fn merge(&mut self, other: Self) {
        self.wall = self.wall.max(other.wall);
        self.cpu = match (self.cpu, other.cpu) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.busy = match (self.busy, other.busy) {
            (Some((a, n)), Some((b, m))) => Some((a + b, n + m)),
            (a, b) => a.or(b),
        };
        match (&mut self.wake_lag, other.wake_lag) {
            // Same bounds on both sides: adding cannot fail.
            (Some(a), Some(b)) => drop(a.add(&b)),
            (a @ None, b) => *a = b,
            (Some(_), None) => {}
        }
    }

    /// Writes the figures into `stats`.
    pub(crate) fn apply(&self, stats: &mut GeneratorStats) {
        let ms = |us: u64| us as f64 / 1000.0;
        if let Some(lag) = &self.wake_lag {
            stats.wake_lag_p99_ms = Some(ms(lag.value_at_quantile(0.99)));
            stats.wake_lag_max_ms = Some(ms(lag.max()));
        }
        let secs = self.wall.as_secs_f64();
        if secs <= 0.0 {
            return;
        }
        if let Some(cpu) = self.cpu {
            let cpu = cpu.as_secs_f64();
            stats.cpu_s = Some(cpu);
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            // Core counts are tiny: exact in f64.
            stats.cpu_share = Some(cpu / (secs * cores as f64));
        }
        if let Some((busy, workers)) = self.busy {
            stats.busy_share = Some((busy.as_secs_f64() / (secs * workers as f64)).min(1.0));
        }
    }
}

/// Measures, every [`PROBE_EVERY`], how long a yielded task waits to be polled again.
async fn probe(stop: Arc<AtomicBool>) -> Histogram<u64> {
    // 1 µs .. 1 h at 3 significant digits: valid bounds, cannot fail.
    let mut lag = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let asked = Instant::now();
        tokio::task::yield_now().await;
        let us = u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX);
        lag.saturating_record(us.max(1));
    }
    lag
}

/// Σ of every runtime worker's busy time, when running on a runtime with 64-bit metrics.
fn busy_total() -> Option<Duration> {
    let metrics = Handle::try_current().ok()?.metrics();
    Some(
        (0..metrics.num_workers())
            .map(|w| metrics.worker_total_busy_duration(w))
            .sum(),
    )
}

/// User + system CPU time of this process, from `/proc/self/stat` (Linux; `None` elsewhere).
pub(crate) fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // The kernel's USER_HZ is 100 on every Linux ABI in use.
    Some(Duration::from_millis((utime + stime) * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn figures_are_measured_on_a_runtime() {
        let watch = SelfWatch::start();
        // Some work to measure.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        tokio::time::sleep(Duration::from_millis(30)).await;
        let mut stats = GeneratorStats::default();
        watch.finish().await.apply(&mut stats);
        assert!(stats.wake_lag_p99_ms.is_some_and(|v| v >= 0.0));
        assert!(stats.busy_share.is_some_and(|b| (0.0..=1.0).contains(&b)));
        if cfg!(target_os = "linux") {
            assert!(stats.cpu_s.is_some() && stats.cpu_share.is_some());
        }
    }
}
