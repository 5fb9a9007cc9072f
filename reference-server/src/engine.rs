//! The batch engine: up to `max_batch_size` sequences advance together; the rest wait in a
//! queue (bounded or not).
//!
//! The engine never sleeps once per token (tokio timers have about 1 ms granularity). One task
//! ticks every `tick` while sequences run; each tick credits every running sequence with the
//! wall time since its last credit: first its prefill (`uncached / prefill_rate` seconds), then
//! decode at `decode_rate / (1 + batch_slowdown × (n − 1))` tokens per second with `n`
//! sequences in the batch. Progress is published through a `watch` channel per sequence, so a
//! streaming handler emits one delta per tick with every token produced since the last one. A
//! rate of 0 is instant.
//!
//! Batching is continuous (a free slot is filled at the next tick) or static (a new batch is
//! admitted only once the whole running batch has finished). A sequence whose receiver is gone
//! is dropped when `cancel_on_disconnect` is set, else it runs to its end. With a paged KV
//! budget, a waiting sequence starts only if its prompt's blocks fit, and when the running
//! sequences outgrow the budget the last one started is preempted: its blocks are freed and it
//! waits again at the head of the queue, to recompute its prompt and output so far.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::config::{Batching, EngineSettings};

/// One generation to run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job {
    /// Prompt tokens to prefill (the uncached part).
    pub(crate) prefill_tokens: usize,
    /// Tokens to decode.
    pub(crate) output_tokens: u32,
    /// The whole prompt, cached part included (what the sequence holds in a paged KV cache).
    pub(crate) context_tokens: usize,
}

/// The wait queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueFull {
    /// Sequences waiting.
    pub(crate) waiting: usize,
}

/// A paged KV cache shared by the running sequences (vLLM's block manager).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PagedKv {
    /// Blocks in the cache.
    pub(crate) capacity_blocks: u64,
    /// Tokens per block.
    pub(crate) block_tokens: u64,
}

impl PagedKv {
    fn blocks(&self, seq: &Seq) -> u64 {
        let tokens = seq.context as u64 + u64::from(produced(seq));
        tokens.div_ceil(self.block_tokens.max(1))
    }
}

/// A running or waiting sequence.
#[derive(Debug)]
struct Seq {
    /// Prefill still to do.
    prefill_left: Duration,
    /// Tokens decoded, fractional.
    decoded: f64,
    output: u32,
    context: usize,
    credited_at: Instant,
    progress: watch::Sender<u32>,
}

#[derive(Debug, Default)]
struct Batches {
    active: Vec<Seq>,
    waiting: VecDeque<Seq>,
}

/// Handle to the batch engine (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    settings: EngineSettings,
    kv: Option<PagedKv>,
    batches: Mutex<Batches>,
    wake: Notify,
    preemptions: AtomicU64,
}

impl Engine {
    /// An engine with nothing running; call [`Engine::run`] to drive it.
    pub(crate) fn new(settings: EngineSettings, kv: Option<PagedKv>) -> Self {
        Self {
            shared: Arc::new(Shared {
                settings,
                kv,
                batches: Mutex::new(Batches::default()),
                wake: Notify::new(),
                preemptions: AtomicU64::new(0),
            }),
        }
    }

    fn batches(&self) -> std::sync::MutexGuard<'_, Batches> {
        // A panic while holding the lock leaves consistent counts; keep serving.
        self.shared
            .batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn prefill_time(&self, tokens: usize) -> Duration {
        let rate = self.shared.settings.prefill_tokens_per_sec;
        if rate > 0.0 {
            // Token counts are far below 2^52: the conversion is exact.
            Duration::from_secs_f64(tokens as f64 / rate)
        } else {
            Duration::ZERO
        }
    }

    /// Queues a job; the receiver sees the number of tokens produced so far, reaching
    /// `job.output_tokens` at the end. The sender is dropped if the engine stops first or
    /// fails the sequence ([`Engine::fail_active`]).
    pub(crate) fn submit(&self, job: Job) -> Result<watch::Receiver<u32>, QueueFull> {
        let s = self.shared.settings;
        let (progress, rx) = watch::channel(0);
        let seq = Seq {
            prefill_left: self.prefill_time(job.prefill_tokens),
            decoded: 0.0,
            output: job.output_tokens,
            context: job.context_tokens,
            credited_at: Instant::now(),
            progress,
        };
        let mut b = self.batches();
        // A static batch and a paged cache admit at the next tick, so that requests arriving
        // together start together and the KV budget is checked in one place.
        let starts_now = s.batching == Batching::Continuous
            && self.shared.kv.is_none()
            && b.active.len() < s.max_batch_size
            && b.waiting.is_empty();
        if starts_now {
            b.active.push(seq);
        } else if s.max_queue.is_none_or(|max| b.waiting.len() < max) {
            b.waiting.push_back(seq);
        } else {
            return Err(QueueFull {
                waiting: b.waiting.len(),
            });
        }
        drop(b);
        self.shared.wake.notify_one();
        Ok(rx)
    }

    /// Sequences running and waiting.
    pub(crate) fn load(&self) -> (usize, usize) {
        let b = self.batches();
        (b.active.len(), b.waiting.len())
    }

    /// Sequences preempted so far (paged KV only).
    pub(crate) fn preemptions(&self) -> u64 {
        // A counter read for reporting only.
        self.shared.preemptions.load(Ordering::Relaxed)
    }

    /// Fraction of the paged KV cache held by running sequences (`None` without one).
    pub(crate) fn kv_usage(&self) -> Option<f64> {
        let kv = self.shared.kv?;
        let b = self.batches();
        let used: u64 = b.active.iter().map(|s| kv.blocks(s)).sum();
        Some(super::pool::ratio(used, kv.capacity_blocks))
    }

    /// Fails every running sequence: its receiver sees the sender dropped. Without
    /// cancellation the sequences still run to their end, unobserved.
    pub(crate) fn fail_active(&self) {
        let mut b = self.batches();
        for seq in &mut b.active {
            seq.progress = watch::channel(0).0;
        }
    }

    /// Drives the engine until `stop` is cancelled. Running sequences are then abandoned
    /// (their receivers see the sender dropped).
    pub(crate) async fn run(self, stop: CancellationToken) {
        let tick = self.shared.settings.tick;
        loop {
            let busy = self.step(Instant::now());
            let idle = async {
                if busy {
                    tokio::time::sleep(tick).await;
                } else {
                    self.shared.wake.notified().await;
                }
            };
            tokio::select! {
                () = idle => {}
                () = stop.cancelled() => break,
            }
        }
        let mut b = self.batches();
        b.active.clear();
        b.waiting.clear();
    }

    /// Credits running sequences up to `now`, retires finished ones, preempts past the KV
    /// budget and starts waiting ones. Returns whether anything is still running or waiting.
    fn step(&self, now: Instant) -> bool {
        let s = self.shared.settings;
        let mut b = self.batches();
        let n = b.active.len().max(1);
        // Batch sizes are small integers: the conversion is exact.
        let rate = s.decode_tokens_per_sec / (1.0 + s.batch_slowdown * (n - 1) as f64);
        let cancel = s.cancel_on_disconnect;
        b.active.retain_mut(|seq| {
            credit(seq, now, rate);
            let done = produced(seq);
            if done != *seq.progress.borrow() {
                seq.progress.send_replace(done);
            }
            done < seq.output && !(cancel && seq.progress.is_closed())
        });
        if let Some(kv) = self.shared.kv {
            self.preempt(&mut b, kv);
        }
        let may_start = match s.batching {
            Batching::Continuous => true,
            Batching::Static => b.active.is_empty(),
        };
        while may_start && b.active.len() < s.max_batch_size {
            let Some(front) = b.waiting.front() else {
                break;
            };
            if cancel && front.progress.is_closed() {
                b.waiting.pop_front();
                continue;
            }
            if let Some(kv) = self.shared.kv {
                let used: u64 = b.active.iter().map(|q| kv.blocks(q)).sum();
                if used + kv.blocks(front) + 1 > kv.capacity_blocks && !b.active.is_empty() {
                    break;
                }
            }
            if let Some(mut seq) = b.waiting.pop_front() {
                seq.credited_at = now;
                b.active.push(seq);
            }
        }
        !b.active.is_empty() || !b.waiting.is_empty()
    }

    /// vLLM's recompute preemption: while the running sequences need more blocks than the
    /// cache holds, the last one started gives its blocks back and waits at the head of the
    /// queue (`vllm/v1/core/sched/scheduler.py:446-491`).
    fn preempt(&self, b: &mut Batches, kv: PagedKv) {
        while b.active.len() > 1 {
            let used: u64 = b.active.iter().map(|q| kv.blocks(q)).sum();
            if used <= kv.capacity_blocks {
                break;
            }
            let Some(mut seq) = b.active.pop() else {
                break;
            };
            let recompute = seq.context + produced(&seq) as usize;
            seq.prefill_left = self.prefill_time(recompute);
            // Tokens already produced stay produced; decoding resumes after the recompute.
            seq.decoded = f64::from(produced(&seq));
            b.waiting.push_front(seq);
            // A counter read for reporting only.
            self.shared.preemptions.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Credits `seq` with the time since its last credit: prefill first, then decode at `rate`.
fn credit(seq: &mut Seq, now: Instant, rate: f64) {
    let mut dt = now.saturating_duration_since(seq.credited_at);
    seq.credited_at = now;
    let prefill = dt.min(seq.prefill_left);
    seq.prefill_left -= prefill;
    dt -= prefill;
    if !seq.prefill_left.is_zero() {
        return;
    }
    if rate <= 0.0 {
        seq.decoded = f64::from(seq.output);
    } else {
        seq.decoded += dt.as_secs_f64() * rate;
    }
}

/// Tokens a sequence has produced.
fn produced(seq: &Seq) -> u32 {
    if !seq.prefill_left.is_zero() && seq.decoded < 1.0 {
        return 0;
    }
    // A tiny epsilon absorbs the rounding of summed float credits; the value is clamped to
    // `output` (a u32) before the cast, so it cannot truncate.
    (seq.decoded + 1e-9).floor().min(f64::from(seq.output)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Engine {
        fn new_for_test(settings: EngineSettings) -> Self {
            Self::new(settings, None)
        }
    }

    fn settings(batch: usize, queue: usize) -> EngineSettings {
        EngineSettings {
            prefill_tokens_per_sec: 1000.0,
            decode_tokens_per_sec: 1000.0,
            max_batch_size: batch,
            max_queue: Some(queue),
            batching: Batching::Continuous,
            batch_slowdown: 0.0,
            cancel_on_disconnect: true,
            tick: Duration::from_millis(2),
            seed: 0,
        }
    }

    #[test]
    fn progress_follows_wall_time_times_rate() {
        let engine = Engine::new_for_test(settings(4, 4));
        let rx = engine
            .submit(Job {
                prefill_tokens: 10,
                output_tokens: 100,
                context_tokens: 10,
            })
            .unwrap();
        let t0 = engine.batches().active[0].credited_at;
        assert!(engine.step(t0 + Duration::from_millis(5)));
        assert_eq!(*rx.borrow(), 0, "still prefilling 10 tokens at 1000/s");
        engine.step(t0 + Duration::from_millis(30));
        assert_eq!(*rx.borrow(), 20);
        assert!(!engine.step(t0 + Duration::from_secs(1)));
        assert_eq!(*rx.borrow(), 100);
        assert_eq!(engine.load(), (0, 0));
    }

    #[test]
    fn batch_limit_queues_and_full_queue_refuses() {
        let engine = Engine::new_for_test(settings(2, 1));
        let job = Job {
            prefill_tokens: 0,
            output_tokens: 5,
            context_tokens: 0,
        };
        let _a = engine.submit(job).unwrap();
        let _b = engine.submit(job).unwrap();
        let c = engine.submit(job).unwrap();
        assert_eq!(engine.load(), (2, 1));
        assert_eq!(engine.submit(job).unwrap_err(), QueueFull { waiting: 1 });
        let t = Instant::now() + Duration::from_secs(1);
        engine.step(t);
        assert_eq!(engine.load(), (1, 0), "the waiting one started");
        engine.step(t + Duration::from_secs(1));
        assert_eq!(*c.borrow(), 5);
    }

    #[test]
    fn dropped_receivers_free_their_slot() {
        let engine = Engine::new_for_test(settings(1, 4));
        let job = Job {
            prefill_tokens: 0,
            output_tokens: 1000,
            context_tokens: 0,
        };
        drop(engine.submit(job).unwrap());
        let _kept = engine.submit(job).unwrap();
        engine.step(Instant::now());
        assert_eq!(engine.load(), (1, 0));
    }

    fn job(output_tokens: u32) -> Job {
        Job {
            prefill_tokens: 0,
            output_tokens,
            context_tokens: 16,
        }
    }

    #[test]
    fn a_static_batch_never_admits_a_third_sequence_until_it_has_finished() {
        let s = EngineSettings {
            batching: Batching::Static,
            max_queue: None,
            ..settings(2, 0)
        };
        let engine = Engine::new_for_test(s);
        let a = engine.submit(job(10)).unwrap();
        let _b = engine.submit(job(1000)).unwrap();
        let c = engine.submit(job(10)).unwrap();
        let t = Instant::now();
        engine.step(t);
        assert_eq!(
            engine.load(),
            (2, 1),
            "two start together, the unbounded queue holds C"
        );
        engine.step(t + Duration::from_millis(100));
        assert_eq!(*a.borrow(), 10, "A finished");
        assert_eq!(
            engine.load(),
            (1, 1),
            "C waits for B although a slot is free"
        );
        assert_eq!(*c.borrow(), 0);
        engine.step(t + Duration::from_secs(5));
        engine.step(t + Duration::from_secs(5));
        assert_eq!(
            engine.load(),
            (1, 0),
            "the next batch starts once B is done"
        );
    }

    #[test]
    fn per_sequence_decode_is_slower_in_a_batch_of_two() {
        let s = EngineSettings {
            batch_slowdown: 1.36,
            ..settings(2, 4)
        };
        let alone = Engine::new_for_test(s);
        let rx = alone.submit(job(1000)).unwrap();
        let t = Instant::now();
        alone.step(t);
        alone.step(t + Duration::from_millis(100));
        let solo = *rx.borrow();
        let pair = Engine::new_for_test(s);
        let rx = pair.submit(job(1000)).unwrap();
        let _other = pair.submit(job(1000)).unwrap();
        pair.step(t);
        pair.step(t + Duration::from_millis(100));
        let shared = *rx.borrow();
        assert!((99..=101).contains(&solo), "{solo}");
        // 1000 / 2.36 tokens/s: the original's 26 tok/s alone and 11 per sequence in pairs.
        assert!((40..=44).contains(&shared), "{shared}");
    }

    #[test]
    fn without_cancellation_a_disconnected_sequence_keeps_decoding_and_its_slot() {
        let s = EngineSettings {
            cancel_on_disconnect: false,
            ..settings(1, 4)
        };
        let engine = Engine::new_for_test(s);
        drop(engine.submit(job(100)).unwrap());
        let kept = engine.submit(job(10)).unwrap();
        let t = Instant::now();
        engine.step(t + Duration::from_millis(50));
        assert_eq!(engine.load(), (1, 1), "the abandoned one still runs");
        engine.step(t + Duration::from_millis(200));
        engine.step(t + Duration::from_millis(300));
        assert_eq!(*kept.borrow(), 10, "the next one ran after it");
    }

    #[test]
    fn failing_the_batch_drops_every_running_receiver() {
        let engine = Engine::new_for_test(settings(2, 4));
        let a = engine.submit(job(100)).unwrap();
        let b = engine.submit(job(100)).unwrap();
        engine.fail_active();
        assert!(a.has_changed().is_err() && b.has_changed().is_err());
    }

    #[test]
    fn a_full_paged_cache_preempts_the_newest_sequence_instead_of_refusing() {
        let kv = PagedKv {
            capacity_blocks: 8,
            block_tokens: 16,
        };
        let s = EngineSettings {
            max_queue: None,
            ..settings(8, 0)
        };
        let engine = Engine::new(s, Some(kv));
        let a = engine.submit(job(200)).unwrap();
        let b = engine.submit(job(200)).unwrap();
        let t = Instant::now();
        engine.step(t);
        assert_eq!(engine.load(), (2, 0), "both prompts fit");
        engine.step(t + Duration::from_millis(70));
        assert_eq!(
            engine.preemptions(),
            1,
            "86 tokens each outgrow 8 blocks of 16"
        );
        assert_eq!(
            engine.load(),
            (1, 1),
            "B waits again at the head of the queue"
        );
        assert!(*b.borrow() > 0, "its tokens so far stay produced");
        for ms in (100..3000).step_by(20) {
            engine.step(t + Duration::from_millis(ms));
        }
        assert_eq!((*a.borrow(), *b.borrow()), (200, 200), "both finished");
        assert!(engine.kv_usage().is_some_and(|u| u == 0.0));
    }

    #[tokio::test]
    async fn run_drives_jobs_to_the_end() {
        let engine = Engine::new_for_test(settings(4, 4));
        let stop = CancellationToken::new();
        let task = tokio::spawn(engine.clone().run(stop.clone()));
        let mut rx = engine
            .submit(Job {
                prefill_tokens: 5,
                output_tokens: 20,
                context_tokens: 5,
            })
            .unwrap();
        let done = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|n| *n == 20)).await;
        assert!(done.expect("engine finished in time").is_ok());
        stop.cancel();
        task.await.unwrap();
    }
}
