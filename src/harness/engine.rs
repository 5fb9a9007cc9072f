//! The one worker loop every run goes through.
//!
//! `workers` tasks each own an [`Agent`]. A shared [`Scheduler`] hands out slots: in a closed
//! loop a slot is due at once; in an open loop it is due at its arrival time, and a worker that
//! takes it late (all workers were busy) counts it as a *late slot* while a worker that wakes
//! late from its timer adds to the *timer lag*: the generator's own delay. Open-loop wake-ups
//! come from a [`Pacer`] thread (sub-millisecond) rather than the runtime's 1 ms timer; the
//! generator is *saturated* when either figure passes its bound. Scheduling stops at
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
use super::pacer::Pacer;
use super::selfwatch::{SelfWatch, Watched};
use super::shards::Shards;

/// Timer lag above which the generator is called saturated, at p99: at least this…
const SATURATION_LAG: Duration = Duration::from_millis(2);
/// …or this share of the mean gap between slots, if larger: a few milliseconds of lag do not
/// change a schedule of one request a second, and flagging them would cry wolf.
const SATURATION_LAG_SHARE_OF_GAP: f64 = 0.05;
/// How far past its due time a slot must be taken to count as late (every worker was busy).
const LATE_SLOT: Duration = Duration::from_millis(1);
/// Share of open-loop slots taken late (every worker busy: the in-flight cap was reached) above
/// which the generator is called saturated. A few late slots happen in any paced run (a worker
/// that frees up just after a due time); one in a hundred does not.
const SATURATION_LATE_SHARE: f64 = 0.01;

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
    /// Whether the generator fell behind its own schedule: timer lag p99 over 2 ms (or over 5%
    /// of the mean gap between slots, if larger), more than 1% of open-loop slots taken late
    /// because the in-flight cap was reached, or a ready task waiting over 2 ms at p99 to be
    /// polled (`wake_lag_p99_ms`). The numbers
    /// then describe the generator (its timers or its worker count) as much as the server.
    pub saturated: bool,
    /// Steps cancelled at the hard deadline.
    pub cancelled_workers: u64,
    /// Share of the runtime workers' time spent running tasks over the run, 0–1 (the
    /// event loop's busy share, one of the figures [`Trust::judge`](crate::Trust::judge)
    /// weighs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_share: Option<f64>,
    /// How long a task that yielded waited to be polled again, p99, in milliseconds: the delay
    /// a ready socket waits for its turn (a probe task measures it every millisecond).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_lag_p99_ms: Option<f64>,
    /// Largest such wake-up lag, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_lag_max_ms: Option<f64>,
    /// CPU time (user + system) of the generator process over the run, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_s: Option<f64>,
    /// `cpu_s / (wall time × cores available)`: the share of the machine the generator used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_share: Option<f64>,
}

/// The share of a run's slots one scheduler hands out: slot indices `shard, shard + of,
/// shard + 2·of, …` (the whole run when `of` is 1). Parts of one run partition its slots: a
/// count-bounded run sends exactly its count, and open-loop parts keep the whole schedule's due
/// times, each part taking every `of`-th arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) shard: u64,
    pub(crate) of: u64,
}

impl Part {
    /// The whole run.
    pub(crate) const WHOLE: Self = Self { shard: 0, of: 1 };

    /// The run's index of this part's `local`-th slot.
    fn index(self, local: u64) -> u64 {
        local.saturating_mul(self.of).saturating_add(self.shard)
    }
}

pub(crate) struct Scheduler {
    start: Instant,
    load: Load,
    part: Part,
    /// Slots handed out by this scheduler.
    issued: AtomicU64,
    clock: Option<Mutex<ArrivalClock>>,
    /// Precise wake-ups of open-loop slots (absent in a closed loop, or when no thread could
    /// be started: the runtime's 1 ms timer is used then).
    pacer: Option<Pacer>,
    late: AtomicU64,
    /// Timer lag of open-loop waits, per runtime thread (one histogram per worker would cost
    /// 190 KiB a worker).
    lag: Shards<Histogram<u64>>,
}

impl Scheduler {
    /// The scheduler of `part` of `load`, started at `start`; its timer-lag histogram has
    /// `cells` shards (one per runtime thread that records into it).
    pub(crate) fn new(load: Load, start: Instant, part: Part, cells: usize) -> Self {
        let clock = match &load.pacing {
            Pacing::Closed => None,
            Pacing::Open(arrivals) => Some(Mutex::new(ArrivalClock::new(arrivals.clone()))),
        };
        let pacer = clock.as_ref().and_then(|_| Pacer::start());
        Self {
            start,
            load,
            part,
            issued: AtomicU64::new(0),
            clock,
            pacer,
            late: AtomicU64::new(0),
            lag: Shards::with_cells(cells, new_lag_histogram),
        }
    }

    /// Whether slot `index`, due at `due`, is past the run's stop.
    fn past_stop(&self, index: u64, due: Instant, stop_at: Option<Instant>) -> bool {
        self.load.stop.requests.is_some_and(|n| index >= n) || stop_at.is_some_and(|s| due >= s)
    }

    fn stop_at(&self) -> Option<Instant> {
        self.load.stop.after.map(|d| super::later(self.start, d))
    }

    /// The next slot for `worker`, or `None` when the run stops scheduling. Open-loop waits
    /// record their timer lag.
    async fn next(&self, worker: usize) -> Option<Slot> {
        loop {
            match worker_active(&self.load.stages, self.start, worker, Instant::now()) {
                Activity::Active => break,
                Activity::Done => return None,
                Activity::Later(t) => tokio::time::sleep_until(t.into()).await,
            }
        }
        let stop_at = self.stop_at();
        let (index, due, wake) = match &self.clock {
            None => {
                // One clock read: due now, and past the stop time or not.
                let now = Instant::now();
                if stop_at.is_some_and(|s| now >= s) {
                    return None;
                }
                let index = self.part.index(self.issued.fetch_add(1, Ordering::Relaxed));
                (index, now, None)
            }
            Some(clock) => {
                // Index and arrival time are taken together so arrivals stay in order, and the
                // pacer is told under the same lock so that it gets them in due order.
                let mut clock = clock.lock().unwrap_or_else(PoisonError::into_inner);
                let index = self.part.index(self.issued.fetch_add(1, Ordering::Relaxed));
                let due = super::later(self.start, clock.offset_at(index));
                if self.past_stop(index, due, stop_at) {
                    return None;
                }
                let wake = match &self.pacer {
                    Some(pacer) if due > Instant::now() => Some(pacer.wake_at(due)),
                    _ => None,
                };
                (index, due, wake)
            }
        };
        if self.past_stop(index, due, stop_at) {
            return None;
        }
        if self.clock.is_some() {
            if due > Instant::now() {
                // The pacer fires at `due`; if its thread is gone, the runtime's timer does.
                let fired = match wake {
                    Some(rx) => rx.await.is_ok(),
                    None => false,
                };
                if !fired {
                    tokio::time::sleep_until(due.into()).await;
                }
                self.record_lag(Instant::now().saturating_duration_since(due));
            } else {
                let behind = Instant::now().saturating_duration_since(due);
                if behind <= LATE_SLOT {
                    // Taken as it fell due (the run's first slot, or a worker freed just then):
                    // on time, with that small lag.
                    self.record_lag(behind);
                } else {
                    self.late.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Some(Slot { index, due })
    }
}

impl Scheduler {
    fn record_lag(&self, lag: Duration) {
        // Microseconds fit in u64 for any lag a run can have; clamp to the histogram.
        let us = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX).max(1);
        self.lag.with(|h| h.saturating_record(us));
    }
}

/// Runs `step` on `agents` under `load` until it stops, on the current runtime; returns the
/// generator figures. Every request is recorded through the agents' run sink.
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
    let cells = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let scheduler = Scheduler::new(load, start, Part::WHOLE, cells);
    let part = run_part(scheduler, agents, run.deadline + grace, Arc::new(step)).await;
    PartRun::finish(vec![part], start)
}

/// What one part of a run did (one runtime's workers), before figures are computed.
#[derive(Debug)]
pub(crate) struct PartRun {
    slots: u64,
    cancelled: u64,
    late: u64,
    /// Timer lag of open-loop waits, µs.
    lag: Histogram<u64>,
    watched: Watched,
}

/// Runs `step` on `agents` with `scheduler`'s slots on the current runtime until the
/// scheduler stops; steps still running at `hard_deadline` are cancelled (their requests are
/// still recorded).
pub(crate) async fn run_part<F, Fut>(
    scheduler: Scheduler,
    agents: Vec<Agent>,
    hard_deadline: Instant,
    step: Arc<F>,
) -> PartRun
where
    F: Fn(Agent, Slot) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Agent> + Send + 'static,
{
    let watch = SelfWatch::start();
    let scheduler = Arc::new(scheduler);
    let mut tasks = tokio::task::JoinSet::new();
    for mut agent in agents {
        let scheduler = Arc::clone(&scheduler);
        let step = Arc::clone(&step);
        let worker = agent.index();
        tasks.spawn(async move {
            let mut slots = 0u64;
            while let Some(slot) = scheduler.next(worker).await {
                slots += 1;
                agent.schedule(slot.due);
                agent = step(agent, slot).await;
            }
            slots
        });
    }
    let (mut slots, mut cancelled) = (0u64, 0u64);
    loop {
        match tokio::time::timeout_at(hard_deadline.into(), tasks.join_next()).await {
            Ok(Some(Ok(n))) => slots += n,
            // A panicking workload step loses nothing already recorded; the panic is counted.
            Ok(Some(Err(_))) => cancelled += 1,
            Ok(None) => break,
            Err(_) => {
                cancelled += tasks.len() as u64;
                tasks.abort_all();
                // Wait for the aborted tasks so their in-flight records are written.
                while tasks.join_next().await.is_some() {}
                break;
            }
        }
    }
    let lag = scheduler.lag.fold(new_lag_histogram(), |acc, h| {
        // Same bounds on both sides: adding cannot fail.
        let _ = acc.add(h);
    });
    PartRun {
        slots,
        cancelled,
        late: scheduler.late.load(Ordering::Relaxed),
        lag,
        watched: watch.finish().await,
    }
}

impl PartRun {
    /// A part that never ran (its thread was lost): its workers count as cancelled.
    pub(crate) fn lost(workers: usize) -> Self {
        Self {
            slots: 0,
            cancelled: workers as u64,
            late: 0,
            lag: new_lag_histogram(),
            watched: Watched::default(),
        }
    }

    /// The generator figures of a run made of `parts`, started at `start`: counts add up and
    /// histograms are merged sample for sample, so the quantiles are those of the whole run.
    pub(crate) fn finish(parts: Vec<Self>, start: Instant) -> GeneratorStats {
        let mut stats = GeneratorStats::default();
        let mut lag = new_lag_histogram();
        let mut watched: Option<Watched> = None;
        for part in parts {
            stats.slots += part.slots;
            stats.cancelled_workers += part.cancelled;
            stats.late_slots += part.late;
            // Same bounds on both sides: adding cannot fail.
            let _ = lag.add(&part.lag);
            match &mut watched {
                Some(w) => w.merge(part.watched),
                None => watched = Some(part.watched),
            }
        }
        let ms = |us: u64| us as f64 / 1000.0;
        if !lag.is_empty() {
            stats.timer_lag_p50_ms = ms(lag.value_at_quantile(0.5));
            stats.timer_lag_p99_ms = ms(lag.value_at_quantile(0.99));
            stats.timer_lag_max_ms = ms(lag.max());
        }
        // Slot counts stay far below 2^53, where u64 → f64 is exact.
        let late_share = stats.late_slots as f64 / stats.slots.max(1) as f64;
        let mean_gap_ms = start.elapsed().as_secs_f64() * 1000.0 / stats.slots.max(1) as f64;
        let lag_bound_ms =
            (SATURATION_LAG.as_secs_f64() * 1000.0).max(SATURATION_LAG_SHARE_OF_GAP * mean_gap_ms);
        stats.saturated =
            stats.timer_lag_p99_ms > lag_bound_ms || late_share > SATURATION_LATE_SHARE;
        if let Some(w) = watched {
            w.apply(&mut stats);
        }
        // A closed loop has no timer to be late for: a slow event loop is its saturation.
        stats.saturated |= stats
            .wake_lag_p99_ms
            .is_some_and(|l| l > SATURATION_LAG.as_secs_f64() * 1000.0);
        stats
    }
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
