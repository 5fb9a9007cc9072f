//! The one worker loop every run goes through.
//!
//! `workers` tasks each own an [`Agent`]. A shared [`Scheduler`] hands out slots: in a closed
//! loop a slot is due at once; in an open loop it is due at its arrival time, and a worker that
//! takes it late (all workers were busy) counts it as a *late slot* while a worker that wakes
//! late from its timer adds to the *timer lag*: the generator's own delay. Scheduling stops at
//! the [`Stop`](super::Stop); in-flight steps then get `timeout + grace` before they are
//! cancelled (and cancelled requests are still recorded).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::agent::{Agent, RunShared};
use super::load::{Activity, ArrivalClock, Load, Pacing, worker_active};

/// Timer lag (µs) above which the generator is called saturated, at p99.
const SATURATION_LAG: Duration = Duration::from_millis(2);

/// A scheduled step: its index in the run and when it was due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// 0-based position in the run.
    pub index: u64,
    /// When the step was due.
    pub due: Instant,
}

/// How the generator itself kept up.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct GeneratorStats {
    /// Steps started.
    pub slots: u64,
    /// Open-loop steps taken after their due time because every worker was busy (the
    /// in-flight cap was reached; corrected latency includes this wait).
    pub late_slots: u64,
    /// Timer lag (actual wake-up minus due time) at p50, in milliseconds.
    pub timer_lag_p50_ms: f64,
    /// Timer lag at p99, in milliseconds.
    pub timer_lag_p99_ms: f64,
    /// Largest timer lag, in milliseconds.
    pub timer_lag_max_ms: f64,
    /// Whether the generator fell behind its own schedule (timer lag p99 over 2 ms): the
    /// numbers then describe the generator as much as the server.
    pub saturated: bool,
    /// Steps cancelled at the hard deadline.
    pub cancelled_workers: u64,
}

pub(crate) struct Scheduler {
    start: Instant,
    load: Load,
    issued: AtomicU64,
    clock: Option<Mutex<ArrivalClock>>,
    late: AtomicU64,
}

impl Scheduler {
    pub(crate) fn new(load: Load, start: Instant) -> Self {
        let clock = match &load.pacing {
            Pacing::Closed => None,
            Pacing::Open(arrivals) => Some(Mutex::new(ArrivalClock::new(arrivals.clone()))),
        };
        Self {
            start,
            load,
            issued: AtomicU64::new(0),
            clock,
            late: AtomicU64::new(0),
        }
    }

    fn stop_at(&self) -> Option<Instant> {
        self.load.stop.after.map(|d| self.start + d)
    }

    /// The next slot for `worker`, or `None` when the run stops scheduling. `lag` receives the
    /// timer lag of open-loop waits.
    async fn next(&self, worker: usize, lag: &mut Histogram<u64>) -> Option<Slot> {
        loop {
            match worker_active(&self.load.stages, self.start, worker, Instant::now()) {
                Activity::Active => break,
                Activity::Done => return None,
                Activity::Later(t) => tokio::time::sleep_until(t.into()).await,
            }
        }
        let stop_at = self.stop_at();
        let (index, due) = match &self.clock {
            None => {
                if stop_at.is_some_and(|s| Instant::now() >= s) {
                    return None;
                }
                let index = self.issued.fetch_add(1, Ordering::Relaxed);
                (index, Instant::now())
            }
            Some(clock) => {
                // Index and arrival time are taken together so arrivals stay in order.
                let mut clock = clock.lock().unwrap_or_else(PoisonError::into_inner);
                let index = self.issued.fetch_add(1, Ordering::Relaxed);
                (index, self.start + clock.next_offset())
            }
        };
        if self.load.stop.requests.is_some_and(|n| index >= n) || stop_at.is_some_and(|s| due >= s)
        {
            return None;
        }
        if self.clock.is_some() {
            let now = Instant::now();
            if due > now {
                tokio::time::sleep_until(due.into()).await;
                let late = Instant::now().saturating_duration_since(due);
                // Microseconds fit in u64 for any lag a run can have; clamp to the histogram.
                let us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX).max(1);
                lag.saturating_record(us);
            } else {
                self.late.fetch_add(1, Ordering::Relaxed);
            }
        }
        Some(Slot { index, due })
    }
}

/// Runs `step` on `agents` under `load` until it stops; returns the agents and generator
/// figures. Every request is recorded through the agents' run sink.
pub(crate) async fn run_steps<F, Fut>(
    load: Load,
    agents: Vec<Agent>,
    run: &Arc<RunShared>,
    grace: Duration,
    step: F,
) -> GeneratorStats
where
    F: Fn(Agent, Slot) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Agent> + Send + 'static,
{
    let start = Instant::now();
    let scheduler = Arc::new(Scheduler::new(load, start));
    let step = Arc::new(step);
    let mut tasks = tokio::task::JoinSet::new();
    for (worker, mut agent) in agents.into_iter().enumerate() {
        let scheduler = Arc::clone(&scheduler);
        let step = Arc::clone(&step);
        tasks.spawn(async move {
            let mut lag = new_lag_histogram();
            let mut slots = 0u64;
            while let Some(slot) = scheduler.next(worker, &mut lag).await {
                slots += 1;
                agent.schedule(slot.due);
                agent = step(agent, slot).await;
            }
            (lag, slots)
        });
    }
    let hard_deadline = run.deadline + grace;
    let mut lag = new_lag_histogram();
    let mut stats = GeneratorStats::default();
    loop {
        match tokio::time::timeout_at(hard_deadline.into(), tasks.join_next()).await {
            Ok(Some(Ok((worker_lag, slots)))) => {
                // Same bounds on both sides: adding cannot fail.
                let _ = lag.add(&worker_lag);
                stats.slots += slots;
            }
            // A panicking workload step loses nothing already recorded; the panic is counted.
            Ok(Some(Err(_))) => stats.cancelled_workers += 1,
            Ok(None) => break,
            Err(_) => {
                stats.cancelled_workers += tasks.len() as u64;
                tasks.abort_all();
                // Wait for the aborted tasks so their in-flight records are written.
                while tasks.join_next().await.is_some() {}
                break;
            }
        }
    }
    stats.late_slots = scheduler.late.load(Ordering::Relaxed);
    let ms = |us: u64| us as f64 / 1000.0;
    if !lag.is_empty() {
        stats.timer_lag_p50_ms = ms(lag.value_at_quantile(0.5));
        stats.timer_lag_p99_ms = ms(lag.value_at_quantile(0.99));
        stats.timer_lag_max_ms = ms(lag.max());
    }
    stats.saturated = stats.timer_lag_p99_ms > SATURATION_LAG.as_secs_f64() * 1000.0;
    stats
}

fn new_lag_histogram() -> Histogram<u64> {
    // 1 µs .. 1 h at 3 significant digits: valid bounds, cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Runs `f` once per agent, all at once; bounded by the run's deadline plus `grace`.
pub(crate) async fn run_once<F, Fut>(
    agents: Vec<Agent>,
    run: &Arc<RunShared>,
    grace: Duration,
    f: F,
) -> u64
where
    F: Fn(Agent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Agent> + Send + 'static,
{
    let f = Arc::new(f);
    let mut tasks = tokio::task::JoinSet::new();
    for agent in agents {
        let f = Arc::clone(&f);
        tasks.spawn(async move { f(agent).await });
    }
    let hard_deadline = run.deadline + grace;
    let mut cancelled = 0u64;
    loop {
        match tokio::time::timeout_at(hard_deadline.into(), tasks.join_next()).await {
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) => cancelled += 1,
            Ok(None) => break,
            Err(_) => {
                cancelled += tasks.len() as u64;
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                break;
            }
        }
    }
    cancelled
}
