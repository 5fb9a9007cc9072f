//! llama.cpp's slots: a fixed number, a FIFO wait for a free one that never refuses, a prompt
//! cache per slot, and a host-RAM prompt cache whose entries move into one slot at a time.
//!
//! Citations are to ggml-org/llama.cpp @ d6588daa, under `tools/server/`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::tokenizer::common_prefix;

/// `--slot-prompt-similarity` default (`common/common.h:594-599`).
const SIMILARITY: f64 = 0.1;
/// A cached prompt is loaded only if it keeps at least this share of its own tokens
/// (`server-task.cpp:2059-2131`, `f_keep_cur >= 0.25`).
const MIN_KEEP: f64 = 0.25;
/// The host-RAM prompt cache holds this many times the KV cache's tokens (`--cache-ram`
/// 8192 MiB by default: far more than the context).
const RAM_FACTOR: usize = 8;

/// One slot.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slot {
    /// Tokens whose KV the slot holds.
    pub(crate) tokens: Vec<u32>,
    /// A task is running on it.
    pub(crate) busy: bool,
    /// Order of last use (LRU pick).
    last_used: u64,
    /// Task id of the last task.
    pub(crate) id_task: u64,
    /// Prompt tokens of the last task, and how many came from the cache.
    pub(crate) n_prompt: usize,
    pub(crate) n_cache: usize,
    /// The last task's output bound and output so far.
    pub(crate) n_max: u32,
    pub(crate) n_decoded: u32,
}

/// Why a task cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The prompt alone is longer than a slot's context: 400 `exceed_context_size_error`
    /// (`server-context.cpp:2619-2637`).
    PromptTooLong { n_prompt: usize, n_ctx: usize },
    /// The unified KV cache cannot hold the running tasks: every one fails with 500
    /// "Context size has been exceeded." (`server-context.cpp:3119-3165`).
    ContextExceeded,
}

/// Counters behind `llamacpp:` metrics (`server-context.cpp:3885-3982`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Totals {
    pub(crate) prompt_tokens: u64,
    pub(crate) tokens_predicted: u64,
    pub(crate) n_decode: u64,
    pub(crate) n_tokens_max: u64,
}

#[derive(Debug, Default)]
struct State {
    slots: Vec<Slot>,
    ram: VecDeque<Vec<u32>>,
    ram_tokens: usize,
    clock: u64,
    totals: Totals,
}

/// The slots and the wait for them.
#[derive(Debug)]
pub(crate) struct Slots {
    free: Arc<Semaphore>,
    state: Mutex<State>,
    deferred: AtomicUsize,
    n_ctx: usize,
}

impl Slots {
    /// `n` slots sharing a unified KV cache of `n_ctx` tokens (auto `-np` turns `kv_unified`
    /// on, `server.cpp:101-106`).
    pub(crate) fn new(n: usize, n_ctx: u64) -> Self {
        Self {
            free: Arc::new(Semaphore::new(n)),
            state: Mutex::new(State {
                slots: vec![Slot::default(); n],
                ..State::default()
            }),
            deferred: AtomicUsize::new(0),
            n_ctx: usize::try_from(n_ctx).unwrap_or(usize::MAX),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock leaves consistent slots; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Context tokens of the KV cache.
    pub(crate) fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Waits, first come first served and without limit, until a slot is free
    /// (`server-context.cpp:2042-2052`; `server-queue.cpp:63-97`). Dropping the future leaves
    /// the queue, as a cancelled deferred task does (`server-queue.cpp:211-222`).
    pub(crate) async fn wait(&self) -> OwnedSemaphorePermit {
        // A gauge read for `llamacpp:requests_deferred` only.
        self.deferred.fetch_add(1, Ordering::Relaxed);
        let permit = Arc::clone(&self.free).acquire_owned().await;
        self.deferred.fetch_sub(1, Ordering::Relaxed);
        // The semaphore is never closed.
        permit.expect("the slot semaphore stays open")
    }

    /// Tasks waiting for a slot.
    pub(crate) fn deferred(&self) -> usize {
        self.deferred.load(Ordering::Relaxed)
    }

    /// Picks an idle slot for `prompt` (a slot is free: the caller holds a permit) and says how
    /// many prompt tokens its cache covers (`server-context.cpp:1247-1345, 2640-2712`).
    pub(crate) fn assign(
        &self,
        task: u64,
        prompt: &[u32],
        max_tokens: u32,
    ) -> Result<(usize, usize), Refused> {
        if prompt.len() > self.n_ctx {
            return Err(Refused::PromptTooLong {
                n_prompt: prompt.len(),
                n_ctx: self.n_ctx,
            });
        }
        let mut s = self.state();
        let busy_ctx: usize = s
            .slots
            .iter()
            .filter(|x| x.busy)
            .map(|x| x.n_prompt + x.n_max as usize)
            .sum();
        if busy_ctx + prompt.len() + max_tokens as usize > self.n_ctx {
            return Err(Refused::ContextExceeded);
        }
        let sim =
            |tokens: &[u32]| common_prefix(tokens, prompt) as f64 / prompt.len().max(1) as f64;
        let idle = (0..s.slots.len()).filter(|&i| !s.slots[i].busy);
        let similar = idle
            .clone()
            .map(|i| (i, sim(&s.slots[i].tokens)))
            .filter(|(_, x)| *x > SIMILARITY)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i);
        let lru = idle.min_by_key(|&i| s.slots[i].last_used);
        let Some(id) = similar.or(lru) else {
            return Err(Refused::ContextExceeded);
        };
        let current = s.slots[id].tokens.clone();
        let lcp = common_prefix(&current, prompt);
        let f_keep = lcp as f64 / current.len().max(1) as f64;
        if similar.is_none() || f_keep < 0.5 {
            // Save the slot's state to the host-RAM cache, then load the cached prompt that
            // covers the most of this one, moving it out of the cache.
            s.save(current);
            if let Some(best) = s.best_cached(prompt, lcp) {
                let tokens = s.ram.remove(best).unwrap_or_default();
                s.ram_tokens -= tokens.len();
                s.slots[id].tokens = tokens;
            }
        }
        let n_past = common_prefix(&s.slots[id].tokens, prompt).min(prompt.len().saturating_sub(1));
        s.clock += 1;
        let clock = s.clock;
        let slot = &mut s.slots[id];
        *slot = Slot {
            tokens: prompt.to_vec(),
            busy: true,
            last_used: clock,
            id_task: task,
            n_prompt: prompt.len(),
            n_cache: n_past,
            n_max: max_tokens,
            n_decoded: 0,
        };
        // `--cache-idle-slots` (on by default): once a task is launched, every idle slot is
        // saved to the prompt cache and cleared (`server-context.cpp:1161-1174, 2080-2086`).
        let idle: Vec<usize> = (0..s.slots.len()).filter(|&i| !s.slots[i].busy).collect();
        for i in idle {
            let tokens = std::mem::take(&mut s.slots[i].tokens);
            s.save(tokens);
        }
        let budget = self.n_ctx.saturating_mul(RAM_FACTOR);
        while s.ram_tokens > budget {
            let old = s.ram.pop_front().unwrap_or_default();
            s.ram_tokens -= old.len();
        }
        s.totals.prompt_tokens += (prompt.len() - n_past) as u64;
        Ok((id, n_past))
    }

    /// Notes the output so far of slot `id`.
    pub(crate) fn progress(&self, id: usize, n_decoded: usize) {
        if let Some(slot) = self.state().slots.get_mut(id) {
            slot.n_decoded = u32::try_from(n_decoded).unwrap_or(u32::MAX);
        }
    }

    /// The task on slot `id` ended; its KV holds `tokens` (the prompt and what was decoded).
    pub(crate) fn release(&self, id: usize, tokens: Vec<u32>, decoded: usize) {
        let mut s = self.state();
        let n = tokens.len() as u64;
        let t = &mut s.totals;
        t.tokens_predicted += decoded as u64;
        t.n_decode += 1;
        t.n_tokens_max = t.n_tokens_max.max(n);
        if let Some(slot) = s.slots.get_mut(id) {
            slot.tokens = tokens;
            slot.busy = false;
        }
    }

    /// The slots as they are.
    pub(crate) fn snapshot(&self) -> (Vec<Slot>, Totals) {
        let s = self.state();
        (s.slots.clone(), s.totals)
    }
}

impl State {
    fn save(&mut self, tokens: Vec<u32>) {
        if !tokens.is_empty() {
            self.ram_tokens += tokens.len();
            self.ram.push_back(tokens);
        }
    }

    /// The cached prompt sharing the longest prefix with `prompt`, longer than `than`, that
    /// keeps at least a quarter of its own tokens.
    fn best_cached(&self, prompt: &[u32], than: usize) -> Option<usize> {
        self.ram
            .iter()
            .enumerate()
            .map(|(i, t)| (i, common_prefix(t, prompt), t.len()))
            .filter(|&(_, lcp, len)| lcp > than && lcp as f64 / len.max(1) as f64 >= MIN_KEEP)
            .max_by_key(|&(_, lcp, _)| lcp)
            .map(|(i, _, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(range: std::ops::Range<u32>) -> Vec<u32> {
        range.collect()
    }

    #[test]
    fn a_slot_reuses_its_own_prefix_but_never_the_whole_prompt() {
        let slots = Slots::new(2, 10_000);
        let (id, n_past) = slots.assign(1, &words(0..50), 10).unwrap();
        assert_eq!(n_past, 0);
        slots.release(id, words(0..60), 10);
        let (_, n_past) = slots.assign(2, &words(0..60), 10).unwrap();
        assert_eq!(n_past, 59, "at least one prompt token is evaluated again");
    }

    #[test]
    fn two_agents_with_one_prefix_both_reuse_it_one_at_a_time() {
        let slots = Slots::new(4, 10_000);
        let prefix = words(0..300);
        let mut a = prefix.clone();
        a.extend(1000..1020);
        let (id, _) = slots.assign(1, &a, 10).unwrap();
        slots.release(id, a.clone(), 10);
        let mut b = prefix;
        b.extend(2000..2020);
        let (id_b, n_b) = slots.assign(2, &b, 10).unwrap();
        assert_eq!(n_b, 300, "B reuses the identical prefix A left behind");
        let mut a2 = a.clone();
        a2.extend(1020..1030);
        let (id_busy, n_busy) = slots.assign(3, &a2, 10).unwrap();
        assert_ne!(id_busy, id_b);
        assert_eq!(
            n_busy, 0,
            "while B owns the prefix, A's next turn starts cold"
        );
        slots.release(id_busy, a2.clone(), 10);
        slots.release(id_b, b.clone(), 10);
        let (id_a, n_a) = slots.assign(4, &a2, 10).unwrap();
        assert_eq!(n_a, a2.len() - 1, "its idle slot still holds A's context");
        let (slots_now, _) = slots.snapshot();
        assert_eq!(slots_now[id_a].tokens, a2, "the slot holds only A's tokens");
    }

    #[test]
    fn an_overfull_context_fails_and_a_long_prompt_is_refused() {
        let slots = Slots::new(4, 1000);
        assert_eq!(
            slots.assign(1, &words(0..1001), 1),
            Err(Refused::PromptTooLong {
                n_prompt: 1001,
                n_ctx: 1000
            })
        );
        slots.assign(2, &words(0..400), 200).unwrap();
        assert_eq!(
            slots.assign(3, &words(500..900), 200),
            Err(Refused::ContextExceeded)
        );
    }

    #[tokio::test]
    async fn beyond_the_slots_tasks_wait_in_order_and_are_never_refused() {
        let slots = Arc::new(Slots::new(1, 1000));
        let first = slots.wait().await;
        let waiting: Vec<_> = (0..50)
            .map(|_| {
                let s = Arc::clone(&slots);
                tokio::spawn(async move { drop(s.wait().await) })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(slots.deferred(), 50, "all wait, none refused");
        drop(first);
        for w in waiting {
            tokio::time::timeout(std::time::Duration::from_secs(5), w)
                .await
                .expect("every waiting task gets a slot")
                .unwrap();
        }
        assert_eq!(slots.deferred(), 0);
    }
}
