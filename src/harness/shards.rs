//! Per-thread shards of an aggregate: workers on different runtime threads record into
//! different cells, so a busy run does not serialize on one lock; the cells are merged once,
//! at the end.
//!
//! A shard is picked by the recording thread, not by the worker: a runtime with `t` threads
//! touches at most `t` cells, so `n` shards cost `n` aggregates of memory whatever the number of
//! workers (5,000 workers with one aggregate each would cost 5,000 × 1.3 MiB).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use super::agent::Sink;
use crate::{MetricsCollector, RequestResult};

/// Upper bound on shards: more than the cores buys nothing.
const MAX_SHARDS: usize = 16;

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Relaxed: the counter only hands out distinct numbers; nothing is ordered by it.
    static THREAD_INDEX: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}

/// One aggregate per shard, each behind its own lock.
pub(crate) struct Shards<T> {
    cells: Box<[Mutex<T>]>,
}

impl<T> Shards<T> {
    /// As many shards as the machine has cores (at most 16), each made by `make`.
    pub(crate) fn new(mut make: impl FnMut() -> T) -> Self {
        let n = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .clamp(1, MAX_SHARDS);
        Self {
            cells: (0..n).map(|_| Mutex::new(make())).collect(),
        }
    }

    /// Runs `f` on the calling thread's shard.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let i = THREAD_INDEX.with(|i| *i) % self.cells.len();
        // A poisoned shard still holds every value recorded before the panic.
        f(&mut self.cells[i].lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Folds every shard into `acc` with `merge`.
    pub(crate) fn fold<A>(&self, mut acc: A, mut merge: impl FnMut(&mut A, &T)) -> A {
        for cell in &self.cells {
            merge(
                &mut acc,
                &cell.lock().unwrap_or_else(PoisonError::into_inner),
            );
        }
        acc
    }
}

/// A sink that folds records into per-thread [`MetricsCollector`]s: fixed memory for any run
/// length, no shared lock on the hot path.
pub(crate) struct ShardedCollector {
    shards: Shards<MetricsCollector>,
    empty: MetricsCollector,
}

impl ShardedCollector {
    /// Shards that each start as a copy of `empty` (which carries the objectives).
    pub(crate) fn new(empty: MetricsCollector) -> Self {
        let template = empty.clone();
        Self {
            shards: Shards::new(move || template.clone()),
            empty,
        }
    }

    /// The merged collector of every record so far.
    pub(crate) fn merged(&self) -> MetricsCollector {
        self.shards
            .fold(self.empty.clone(), MetricsCollector::merge)
    }
}

impl Sink for ShardedCollector {
    fn record(&self, result: &RequestResult) {
        self.shards.with(|c| c.record(result));
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::Outcome;

    #[test]
    fn merged_shards_count_every_record_once() {
        let sink = std::sync::Arc::new(ShardedCollector::new(MetricsCollector::new()));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let sink = std::sync::Arc::clone(&sink);
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        let t = Instant::now();
                        let mut r = RequestResult::pending(t, t);
                        r.finished_at = t + Duration::from_micros(i + 1);
                        r.outcome = Outcome::Success;
                        r.status = 200;
                        sink.record(&r);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let m = sink.merged().metrics();
        assert_eq!(m.total, 4000);
        assert_eq!(m.successful, 4000);
    }
}
