//! Precise wake-ups for open-loop slots.
//!
//! tokio's timer counts in 1 ms ticks and rounds a deadline up to the next tick, so a request
//! paced by it starts 0–2 ms late (p99 ≈ 2 ms at 1,000 req/s, measured). A [`Pacer`] is a
//! plain thread that waits on a condition variable with a timeout (sub-millisecond on Linux)
//! and releases each slot at its due time through a oneshot channel: the measured start lag
//! then is the thread's wake-up plus one task wake-up.
//!
//! Slots are registered in due order (the caller holds the arrival clock's lock), so a FIFO
//! queue is enough. The thread exits within [`IDLE_WAIT`] of the pacer being dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Longest wait of the thread when nothing is due: also how soon it sees the pacer dropped.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// Releases open-loop slots at their due time from a dedicated thread.
pub(crate) struct Pacer {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<(Instant, oneshot::Sender<()>)>,
    closed: bool,
}

impl Pacer {
    /// Starts the pacing thread; `None` when the system refuses a thread (the caller then
    /// falls back to the runtime's timer).
    pub(crate) fn start() -> Option<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("stress-pacer".to_owned())
            .spawn(move || run(&thread_shared))
            .ok()?;
        Some(Self { shared })
    }

    /// A receiver that completes at `due`. Calls must come in due order.
    pub(crate) fn wake_at(&self, due: Instant) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.lock();
        let was_empty = state.waiting.is_empty();
        state.waiting.push_back((due, tx));
        drop(state);
        if was_empty {
            self.shared.wake.notify_one();
        }
        rx
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The queue stays consistent even if a holder panicked: every operation is one push
        // or one pop.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

fn run(shared: &Shared) {
    let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    while !state.closed {
        let now = Instant::now();
        let wait = match state.waiting.front() {
            None => IDLE_WAIT,
            Some((due, _)) if *due <= now => {
                if let Some((_, tx)) = state.waiting.pop_front() {
                    // A receiver dropped (its worker was cancelled) is not an error.
                    let _ = tx.send(());
                }
                continue;
            }
            Some((due, _)) => (*due - now).min(IDLE_WAIT),
        };
        state = shared
            .wake
            .wait_timeout(state, wait)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn releases_slots_in_order_near_their_due_time() {
        let pacer = Pacer::start().expect("a thread");
        let start = Instant::now();
        let dues: Vec<Instant> = (1..=20)
            .map(|i| start + Duration::from_millis(2 * i))
            .collect();
        let receivers: Vec<_> = dues.iter().map(|&d| pacer.wake_at(d)).collect();
        for (due, rx) in dues.into_iter().zip(receivers) {
            tokio::time::timeout(Duration::from_secs(5), rx)
                .await
                .expect("pacer fired in time")
                .expect("pacer alive");
            assert!(Instant::now() >= due, "released early");
        }
    }
}
