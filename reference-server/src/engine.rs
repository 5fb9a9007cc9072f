//! The batch engine: up to `max_batch_size` sequences advance together; the rest wait in a
//! bounded queue.
//!
//! The engine never sleeps once per token (tokio timers have about 1 ms granularity). One task
//! ticks every `engine_tick` while sequences run; each tick credits every running sequence with
//! the wall time since its last credit. A sequence first spends `uncached / prefill_rate`
//! seconds in prefill, then has produced `floor((elapsed - prefill) × decode_rate)` tokens.
//! Progress is published through a `watch` channel per sequence, so a streaming handler emits
//! one delta per tick with every token produced since the last one. A rate of 0 is instant.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::config::EngineSettings;

/// One generation to run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job {
    /// Prompt tokens to prefill (the uncached part).
    pub(crate) prefill_tokens: usize,
    /// Tokens to decode.
    pub(crate) output_tokens: u32,
}

/// The wait queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueFull {
    /// Sequences waiting.
    pub(crate) waiting: usize,
}

/// A running or waiting sequence.
#[derive(Debug)]
struct Seq {
    prefill: Duration,
    output: u32,
    elapsed: Duration,
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
    batches: Mutex<Batches>,
    wake: Notify,
}

impl Engine {
    /// An engine with nothing running; call [`Engine::run`] to drive it.
    pub(crate) fn new(settings: EngineSettings) -> Self {
        Self {
            shared: Arc::new(Shared {
                settings,
                batches: Mutex::new(Batches::default()),
                wake: Notify::new(),
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

    /// Queues a job; the receiver sees the number of tokens produced so far, reaching
    /// `job.output_tokens` at the end. The sender is dropped if the engine stops first.
    pub(crate) fn submit(&self, job: Job) -> Result<watch::Receiver<u32>, QueueFull> {
        let s = self.shared.settings;
        let prefill = if s.prefill_tokens_per_sec > 0.0 {
            // Token counts are far below 2^52: the conversion is exact.
            Duration::from_secs_f64(job.prefill_tokens as f64 / s.prefill_tokens_per_sec)
        } else {
            Duration::ZERO
        };
        let (progress, rx) = watch::channel(0);
        let seq = Seq {
            prefill,
            output: job.output_tokens,
            elapsed: Duration::ZERO,
            credited_at: Instant::now(),
            progress,
        };
        let mut b = self.batches();
        if b.active.len() < s.max_batch_size && b.waiting.is_empty() {
            b.active.push(seq);
        } else if b.waiting.len() < s.max_queue {
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

    /// Credits running sequences up to `now`, retires finished ones and starts waiting ones.
    /// Returns whether anything is still running.
    fn step(&self, now: Instant) -> bool {
        let s = self.shared.settings;
        let mut b = self.batches();
        b.active.retain_mut(|seq| {
            seq.elapsed += now.saturating_duration_since(seq.credited_at);
            seq.credited_at = now;
            let done = produced(seq, s.decode_tokens_per_sec);
            if done != *seq.progress.borrow() {
                seq.progress.send_replace(done);
            }
            done < seq.output && !seq.progress.is_closed()
        });
        while b.active.len() < s.max_batch_size {
            let Some(mut seq) = b.waiting.pop_front() else {
                break;
            };
            if seq.progress.is_closed() {
                continue;
            }
            seq.credited_at = now;
            b.active.push(seq);
        }
        !b.active.is_empty()
    }
}

/// Tokens a sequence has produced after `elapsed` of running.
fn produced(seq: &Seq, decode_rate: f64) -> u32 {
    let Some(decoding) = seq.elapsed.checked_sub(seq.prefill) else {
        return 0;
    };
    if decode_rate <= 0.0 {
        return seq.output;
    }
    let tokens = (decoding.as_secs_f64() * decode_rate).floor();
    // Clamped to `output` (a u32) before the cast, so it cannot truncate.
    tokens.min(f64::from(seq.output)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(batch: usize, queue: usize) -> EngineSettings {
        EngineSettings {
            prefill_tokens_per_sec: 1000.0,
            decode_tokens_per_sec: 1000.0,
            max_batch_size: batch,
            max_queue: queue,
            tick: Duration::from_millis(2),
            seed: 0,
        }
    }

    #[test]
    fn progress_follows_wall_time_times_rate() {
        let engine = Engine::new(settings(4, 4));
        let rx = engine
            .submit(Job {
                prefill_tokens: 10,
                output_tokens: 100,
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
        let engine = Engine::new(settings(2, 1));
        let job = Job {
            prefill_tokens: 0,
            output_tokens: 5,
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
        let engine = Engine::new(settings(1, 4));
        let job = Job {
            prefill_tokens: 0,
            output_tokens: 1000,
        };
        drop(engine.submit(job).unwrap());
        let _kept = engine.submit(job).unwrap();
        engine.step(Instant::now());
        assert_eq!(engine.load(), (1, 0));
    }

    #[tokio::test]
    async fn run_drives_jobs_to_the_end() {
        let engine = Engine::new(settings(4, 4));
        let stop = CancellationToken::new();
        let task = tokio::spawn(engine.clone().run(stop.clone()));
        let mut rx = engine
            .submit(Job {
                prefill_tokens: 5,
                output_tokens: 20,
            })
            .unwrap();
        let done = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|n| *n == 20)).await;
        assert!(done.expect("engine finished in time").is_ok());
        stop.cancel();
        task.await.unwrap();
    }
}
