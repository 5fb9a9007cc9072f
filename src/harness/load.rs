//! The shape of a run: how many workers, when requests start, when the run stops.
//!
//! Orthogonal values that one worker loop matches on: [`Pacing`] (closed loop or open-loop
//! [`Arrivals`]), [`Stop`] (a request count, a duration, or both) and optional ramp
//! [`Stage`]s. The seed's operations (`run_concurrent_requests`, `run_sustained`, `run_bursty`,
//! `run_ramp_up`) are named combinations of these.

use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Exp};

/// When requests start.
#[derive(Debug, Clone, PartialEq)]
pub enum Pacing {
    /// Closed loop: each worker starts its next request when the previous one ends.
    Closed,
    /// Open loop: requests are due at arrival times fixed in advance; latency is measured
    /// from the due time (coordinated omission corrected).
    Open(Arrivals),
}

/// An arrival process for open-loop pacing.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrivals {
    /// Evenly spaced, `per_second` a second.
    Constant {
        /// Requests per second.
        per_second: f64,
    },
    /// Exponential gaps (a Poisson process) with mean rate `per_second`, from `seed`.
    Poisson {
        /// Mean requests per second.
        per_second: f64,
        /// Seed of the gap sequence.
        seed: u64,
    },
    /// `size` requests at once every `every`.
    Bursts {
        /// Requests per burst.
        size: usize,
        /// Time between burst starts.
        every: Duration,
    },
}

/// When a run stops scheduling requests. In-flight requests still finish (bounded by the
/// request timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stop {
    /// Stop after this many steps.
    pub requests: Option<u64>,
    /// Stop scheduling after this long.
    pub after: Option<Duration>,
}

impl Stop {
    /// Stop after `n` steps.
    pub fn requests(n: u64) -> Self {
        Self {
            requests: Some(n),
            after: None,
        }
    }

    /// Stop after `d`.
    pub fn after(d: Duration) -> Self {
        Self {
            requests: None,
            after: Some(d),
        }
    }
}

/// One stage of a ramp: run `concurrency` workers for `hold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// Workers active during the stage.
    pub concurrency: usize,
    /// How long the stage lasts.
    pub hold: Duration,
}

/// A whole run's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// Concurrent workers: the cap on requests in flight.
    pub workers: usize,
    /// When requests start.
    pub pacing: Pacing,
    /// When scheduling stops.
    pub stop: Stop,
    /// Ramp stages (closed loop): worker `i` runs only while the current stage's concurrency
    /// exceeds `i`. Empty: every worker runs throughout.
    pub stages: Vec<Stage>,
}

impl Load {
    /// `workers` closed-loop workers until `stop`.
    pub fn closed(workers: usize, stop: Stop) -> Self {
        Self {
            workers,
            pacing: Pacing::Closed,
            stop,
            stages: Vec::new(),
        }
    }

    /// Open-loop arrivals served by up to `workers` in flight, until `stop`.
    pub fn open(workers: usize, arrivals: Arrivals, stop: Stop) -> Self {
        Self {
            workers,
            pacing: Pacing::Open(arrivals),
            stop,
            stages: Vec::new(),
        }
    }

    /// A closed-loop ramp through `stages`; workers = the largest stage.
    pub fn ramp(stages: Vec<Stage>) -> Self {
        let total = stages
            .iter()
            .fold(Duration::ZERO, |t, s| t.saturating_add(s.hold));
        Self {
            workers: stages.iter().map(|s| s.concurrency).max().unwrap_or(1),
            pacing: Pacing::Closed,
            stop: Stop::after(total),
            stages,
        }
    }

    /// The longest the run can schedule for, if bounded by time.
    pub fn scheduling_bound(&self) -> Option<Duration> {
        self.stop.after
    }

    pub(crate) fn validate(&self) -> crate::Result<()> {
        let bad = |field, reason: String| Err(crate::Error::InvalidConfig { field, reason });
        if self.workers == 0 {
            return bad("workers", "must be at least 1".to_owned());
        }
        if self.stop.requests.is_none() && self.stop.after.is_none() {
            return bad(
                "stop",
                "a run needs a request count or a duration".to_owned(),
            );
        }
        match &self.pacing {
            Pacing::Closed => {}
            Pacing::Open(
                Arrivals::Constant { per_second } | Arrivals::Poisson { per_second, .. },
            ) => {
                if !(per_second.is_finite() && *per_second > 0.0) {
                    return bad("rate", format!("{per_second} is not a positive rate"));
                }
            }
            Pacing::Open(Arrivals::Bursts { size, every }) => {
                if *size == 0 || every.is_zero() {
                    return bad("bursts", "size and interval must be positive".to_owned());
                }
            }
        }
        Ok(())
    }
}

/// Arrival offsets from the run's start, one per call, in order.
#[derive(Debug)]
pub(crate) struct ArrivalClock {
    arrivals: Arrivals,
    index: u64,
    offset: f64,
    rng: Option<(StdRng, Exp<f64>)>,
}

impl ArrivalClock {
    pub(crate) fn new(arrivals: Arrivals) -> Self {
        let rng = match &arrivals {
            Arrivals::Poisson { per_second, seed } => Exp::new(*per_second)
                .ok()
                .map(|exp| (StdRng::seed_from_u64(*seed), exp)),
            _ => None,
        };
        Self {
            arrivals,
            index: 0,
            offset: 0.0,
            rng,
        }
    }

    /// The offset of arrival `index` (0-based), skipping the arrivals before it; indices
    /// must not go back (an index already passed gives the next arrival's offset).
    pub(crate) fn offset_at(&mut self, index: u64) -> Duration {
        while self.index < index {
            self.next_offset();
        }
        self.next_offset()
    }

    /// The next arrival's offset from the start.
    pub(crate) fn next_offset(&mut self) -> Duration {
        let i = self.index;
        self.index += 1;
        let secs = match &self.arrivals {
            // Index as f64 is exact below 2^53 requests.
            Arrivals::Constant { per_second } => i as f64 / per_second,
            Arrivals::Poisson { per_second, .. } => {
                if i > 0 {
                    self.offset += match &mut self.rng {
                        Some((rng, exp)) => exp.sample(rng),
                        None => 1.0 / per_second,
                    };
                }
                self.offset
            }
            Arrivals::Bursts { size, every } => {
                // usize → u64 is lossless on every supported target.
                (i / *size as u64) as f64 * every.as_secs_f64()
            }
        };
        // Huge offsets (a vanishing rate) saturate: the slot is then past any stop time.
        Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX)
    }
}

/// Ramp stages as absolute activation windows per worker.
pub(crate) fn worker_active(
    stages: &[Stage],
    start: Instant,
    worker: usize,
    now: Instant,
) -> Activity {
    if stages.is_empty() {
        return Activity::Active;
    }
    let mut at = start;
    let mut next_start: Option<Instant> = None;
    for stage in stages {
        let end = at + stage.hold;
        if stage.concurrency > worker {
            if now < at {
                next_start.get_or_insert(at);
            } else if now < end {
                return Activity::Active;
            }
        }
        at = end;
    }
    match next_start {
        Some(t) => Activity::Later(t),
        None => Activity::Done,
    }
}

/// Whether a worker runs now under a ramp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activity {
    Active,
    Later(Instant),
    Done,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_and_burst_offsets() {
        let mut c = ArrivalClock::new(Arrivals::Constant { per_second: 4.0 });
        let v: Vec<_> = (0..3).map(|_| c.next_offset().as_secs_f64()).collect();
        assert_eq!(v, vec![0.0, 0.25, 0.5]);
        let mut b = ArrivalClock::new(Arrivals::Bursts {
            size: 2,
            every: Duration::from_secs(1),
        });
        let v: Vec<_> = (0..5).map(|_| b.next_offset().as_secs()).collect();
        assert_eq!(v, vec![0, 0, 1, 1, 2]);
    }

    #[test]
    fn parts_of_a_schedule_keep_its_due_times() {
        let arrivals = Arrivals::Poisson {
            per_second: 100.0,
            seed: 3,
        };
        let mut whole = ArrivalClock::new(arrivals.clone());
        let all: Vec<Duration> = (0..30).map(|_| whole.next_offset()).collect();
        for shard in 0..3u64 {
            let mut part = ArrivalClock::new(arrivals.clone());
            for i in (shard..30).step_by(3) {
                assert_eq!(part.offset_at(i), all[i as usize], "arrival {i}");
            }
        }
    }

    #[test]
    fn poisson_mean_rate_and_reproducible() {
        let run = || {
            let mut c = ArrivalClock::new(Arrivals::Poisson {
                per_second: 50.0,
                seed: 7,
            });
            (0..20_001).map(|_| c.next_offset()).last().unwrap()
        };
        let last = run();
        assert_eq!(last, run(), "same seed, same arrivals");
        let rate = 20_000.0 / last.as_secs_f64();
        assert!((rate - 50.0).abs() < 2.0, "rate {rate}");
    }

    #[test]
    fn ramp_activation() {
        let s = Instant::now();
        let stages = [
            Stage {
                concurrency: 1,
                hold: Duration::from_secs(10),
            },
            Stage {
                concurrency: 3,
                hold: Duration::from_secs(10),
            },
        ];
        assert_eq!(worker_active(&stages, s, 0, s), Activity::Active);
        assert_eq!(
            worker_active(&stages, s, 2, s),
            Activity::Later(s + Duration::from_secs(10))
        );
        assert_eq!(
            worker_active(&stages, s, 2, s + Duration::from_secs(15)),
            Activity::Active
        );
        assert_eq!(
            worker_active(&stages, s, 0, s + Duration::from_secs(25)),
            Activity::Done
        );
        assert_eq!(worker_active(&stages, s, 5, s), Activity::Done);
    }
}
