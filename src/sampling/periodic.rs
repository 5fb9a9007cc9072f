//! [`Periodic`]: one background task that reads a [`Source`] every interval into a bounded
//! [`Series`], until stopped or dropped.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::series::{Retention, Series};

/// No sampler reads more often than this, whatever it is asked: sampling must not become load.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// What a [`Periodic`] sampler reads, once per tick. The read may be a blocking call moved to
/// tokio's blocking pool (`/proc`), an HTTP request (a probe, a `/metrics` scrape) or a look at
/// shared counters (progress).
pub(crate) trait Source: Send + 'static {
    /// One reading.
    type Sample: Send + 'static;

    /// Reads once; `None` when there was nothing to read (the source keeps why, if it matters).
    ///
    /// A read is never interrupted by [`Periodic::stop`]: it must be bounded by itself (a
    /// client timeout, a short blocking call).
    fn read(&mut self, tick: Tick) -> impl Future<Output = Option<Self::Sample>> + Send;
}

/// When a read happens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tick {
    /// When the read was due (the schedule, not the wake-up: an open-loop send time).
    pub(crate) scheduled: Instant,
    /// Time since the sampler's origin, taken just before the read.
    pub(crate) at: Duration,
}

/// When the first sample is taken.
#[derive(Debug)]
pub(crate) enum First<T> {
    /// Read at once, then every interval.
    ReadNow,
    /// Read first after one interval.
    AfterInterval,
    /// This sample was read by the caller at start; read next after one interval.
    Given(T),
}

/// How a [`Periodic`] sampler reads and keeps.
#[derive(Debug)]
pub(crate) struct Plan<T> {
    interval: Duration,
    floor: Duration,
    retention: Retention,
    first: First<T>,
    origin: Instant,
}

impl<T> Plan<T> {
    /// Reads every `interval` (at least [`MIN_INTERVAL`]), keeping by `retention`, the first
    /// read at once, offsets counted from now.
    pub(crate) fn every(interval: Duration, retention: Retention) -> Self {
        Self {
            interval,
            floor: MIN_INTERVAL,
            retention,
            first: First::ReadNow,
            origin: Instant::now(),
        }
    }

    /// Never reads more often than every `floor` (raised to [`MIN_INTERVAL`]).
    #[must_use]
    pub(crate) fn floor(mut self, floor: Duration) -> Self {
        self.floor = floor.max(MIN_INTERVAL);
        self
    }

    /// When the first sample is taken.
    #[must_use]
    pub(crate) fn first(mut self, first: First<T>) -> Self {
        self.first = first;
        self
    }

    /// Counts [`Tick::at`] from `origin` instead of from the plan's creation.
    #[must_use]
    pub(crate) fn origin(mut self, origin: Instant) -> Self {
        self.origin = origin;
        self
    }
}

/// A background sampler: reads its [`Source`] every interval into a bounded [`Series`].
///
/// # Schedule
///
/// Reads are sequential (never two at once). Each read is due one interval after the previous
/// one was due, or at once when that time has passed (a slow read delays the schedule rather
/// than bunching reads). The interval is the [`Plan`]'s, raised to its floor, and doubles when a
/// decimating series halves itself.
///
/// # Stopping
///
/// One cancellation token ends the task, between reads: [`stop`](Self::stop) cancels it and
/// waits for the task, and dropping the sampler cancels it too (through a drop guard). A read
/// in flight is finished and kept, so that a request sent is recorded; sources bound their own
/// reads.
pub(crate) struct Periodic<S: Source> {
    series: Arc<Mutex<Series<S::Sample>>>,
    cancel: CancellationToken,
    task: JoinHandle<S>,
    _stop_on_drop: DropGuard,
}

/// What a stopped [`Periodic`] sampler leaves.
#[derive(Debug)]
pub(crate) struct Stopped<S: Source> {
    /// The samples kept.
    pub(crate) series: Series<S::Sample>,
    /// The source, back (`None` if a read panicked).
    pub(crate) source: Option<S>,
}

impl<S: Source> std::fmt::Debug for Periodic<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let series = lock(&self.series);
        f.debug_struct("Periodic")
            .field("samples", &series.samples().len())
            .field("not_kept", &series.not_kept())
            .field("interval", &series.interval())
            .field("running", &!self.task.is_finished())
            .finish()
    }
}

impl<S: Source> Periodic<S> {
    /// Starts reading `source` by `plan`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as `tokio::spawn` does).
    pub(crate) fn start(source: S, plan: Plan<S::Sample>) -> Self {
        let interval = plan.interval.max(plan.floor).max(MIN_INTERVAL);
        let mut series = Series::new(plan.retention, interval);
        let now = Instant::now();
        let first_due = match plan.first {
            First::ReadNow => now,
            First::AfterInterval => now + interval,
            First::Given(sample) => {
                series.push(sample);
                now + interval
            }
        };
        let series = Arc::new(Mutex::new(series));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(read_until_cancelled(
            source,
            Arc::clone(&series),
            cancel.clone(),
            plan.origin,
            first_due,
        ));
        Self {
            series,
            _stop_on_drop: cancel.clone().drop_guard(),
            cancel,
            task,
        }
    }

    /// The current interval between kept samples.
    pub(crate) fn interval(&self) -> Duration {
        lock(&self.series).interval()
    }

    /// A copy of the samples kept so far, oldest first. Time: O(n).
    pub(crate) fn samples(&self) -> Vec<S::Sample>
    where
        S::Sample: Clone,
    {
        lock(&self.series).samples().to_vec()
    }

    /// The newest sample, kept or not, through `f` (without copying it).
    pub(crate) fn latest<U>(&self, f: impl FnOnce(&S::Sample) -> U) -> Option<U> {
        lock(&self.series).latest().map(f)
    }

    /// Stops reading (after the read in flight, if any) and returns the series and the source.
    pub(crate) async fn stop(self) -> Stopped<S> {
        self.cancel.cancel();
        // The task ends only by cancellation; a join error (a read panicked) still leaves the
        // samples gathered so far, which are what the caller wants.
        let source = self.task.await.ok();
        let series = lock(&self.series).take();
        Stopped { series, source }
    }
}

/// Locks the series; a panic elsewhere cannot leave it inconsistent (each update is one push),
/// so a poisoned lock is still usable.
fn lock<T>(series: &Mutex<Series<T>>) -> MutexGuard<'_, Series<T>> {
    series.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The sampling loop: wait for the due time, read, push; until cancelled. Returns the source.
async fn read_until_cancelled<S: Source>(
    mut source: S,
    series: Arc<Mutex<Series<S::Sample>>>,
    cancel: CancellationToken,
    origin: Instant,
    mut due: Instant,
) -> S {
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return source,
            () = tokio::time::sleep_until(due.into()) => {}
        }
        let tick = Tick {
            scheduled: due,
            at: origin.elapsed(),
        };
        if let Some(sample) = source.read(tick).await {
            lock(&series).push(sample);
        }
        let interval = lock(&series).interval();
        due = due.checked_add(interval).unwrap_or(due).max(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts its reads.
    struct Counter(u32);

    impl Source for Counter {
        type Sample = u32;
        async fn read(&mut self, _: Tick) -> Option<u32> {
            self.0 += 1;
            Some(self.0)
        }
    }

    #[tokio::test]
    async fn reads_until_stopped_and_gives_the_source_back() {
        let sampler = Periodic::start(
            Counter(0),
            Plan::every(Duration::ZERO, Retention::KeepFirst { capacity: 3 }),
        );
        assert_eq!(sampler.interval(), MIN_INTERVAL, "the floor applies");
        tokio::time::timeout(Duration::from_secs(10), async {
            while sampler.latest(|n| *n).unwrap_or(0) < 5 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("the sampler read nothing");
        let stopped = sampler.stop().await;
        assert_eq!(stopped.series.samples(), [1, 2, 3]);
        let reads = stopped.source.expect("no read panicked").0;
        assert_eq!(u64::from(reads) - 3, stopped.series.not_kept());
    }

    #[tokio::test]
    async fn a_given_first_sample_is_kept_and_the_next_read_waits() {
        let sampler = Periodic::start(
            Counter(10),
            Plan::every(
                Duration::from_secs(60),
                Retention::KeepFirst { capacity: 8 },
            )
            .first(First::Given(0)),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(sampler.samples(), [0]);
        let stopped = sampler.stop().await;
        assert_eq!(stopped.series.samples(), [0]);
        assert_eq!(stopped.source.map(|c| c.0), Some(10));
    }

    #[tokio::test]
    async fn dropping_the_sampler_ends_its_task() {
        /// Holds a reference for as long as the task keeps it.
        struct Held(#[expect(dead_code, reason = "held, never read")] Arc<()>);
        impl Source for Held {
            type Sample = ();
            async fn read(&mut self, _: Tick) -> Option<()> {
                Some(())
            }
        }
        let held = Arc::new(());
        let sampler = Periodic::start(
            Held(Arc::clone(&held)),
            Plan::every(
                Duration::from_millis(1),
                Retention::KeepFirst { capacity: 0 },
            ),
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(sampler);
        tokio::time::timeout(Duration::from_secs(10), async {
            while Arc::strong_count(&held) > 1 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the task outlived its sampler");
    }
}
