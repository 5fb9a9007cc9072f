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
    /// `n` shards (1 to 16), each made by `make`: one when a single thread records.
    pub(crate) fn with_cells(n: usize, mut make: impl FnMut() -> T) -> Self {
        let n = n.clamp(1, MAX_SHARDS);
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
}

impl ShardedCollector {
    /// `cells` shards (one per thread that records into it) that each start as a copy of
    /// `empty` (which carries the objectives).
    pub(crate) fn new(empty: MetricsCollector, cells: usize) -> Self {
        Self {
            shards: Shards::with_cells(cells, move || empty.clone()),
        }
    }

    /// `empty` with every record of every collector in `all` merged in.
    pub(crate) fn merge_all(
        all: &[std::sync::Arc<Self>],
        mut empty: MetricsCollector,
    ) -> MetricsCollector {
        for collector in all {
            collector.shards.fold(&mut empty, |acc, c| acc.merge(c));
        }
        empty
    }
}

impl Sink for ShardedCollector {
    fn record(&self, result: &RequestResult) {
        self.shards.with(|c| c.record(result));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::Outcome;

    /// Record `i` of a test run: successes and failures, latencies spread over 1 µs – 50 ms.
    fn record(origin: Instant, i: u64) -> RequestResult {
        let start = origin + Duration::from_micros(i * 7);
        let mut r = RequestResult::pending(start, start + Duration::from_micros(i % 13));
        r.finished_at = start + Duration::from_micros(1 + (i * 7919) % 50_000);
        if i.is_multiple_of(17) {
            r.outcome = Outcome::ServerError;
            r.status = 500;
        } else {
            r.outcome = Outcome::Success;
            r.status = 200;
            r.first_byte_at = Some(start + Duration::from_micros(1 + (i * 31) % 9_000));
        }
        r
    }

    #[test]
    fn merged_shards_count_every_record_once() {
        let sink = Arc::new(ShardedCollector::new(MetricsCollector::new(), 4));
        let origin = Instant::now();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        sink.record(&record(origin, t * 1000 + i));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let m = ShardedCollector::merge_all(&[sink], MetricsCollector::new()).metrics();
        assert_eq!(m.total, 4000);
        assert_eq!(m.successful + m.errors, 4000);
    }

    /// Per-thread sinks (one cell each, as a run on threads of its own has) merged at the end
    /// give exactly the figures of one collector that saw every record.
    #[test]
    fn merging_per_thread_sinks_equals_recording_all_in_one() {
        let origin = Instant::now();
        let records: Vec<RequestResult> = (0..10_000).map(|i| record(origin, i)).collect();
        let mut whole = MetricsCollector::new();
        for r in &records {
            whole.record(r);
        }
        // Three threads, records dealt unevenly (thread i takes records ≡ i mod 3, and thread 2
        // also the last thousand), as a run's threads finish unequal shares.
        let sinks: Vec<_> = (0..3)
            .map(|_| Arc::new(ShardedCollector::new(MetricsCollector::new(), 1)))
            .collect();
        for (i, r) in records.iter().enumerate() {
            let t = if i >= 9_000 { 2 } else { i % 3 };
            sinks[t].record(r);
        }
        let merged = ShardedCollector::merge_all(&sinks, MetricsCollector::new());
        let (a, b) = (merged.metrics(), whole.metrics());
        assert_eq!(a.total, 10_000);
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::to_value(&b).unwrap()
        );
    }
}
