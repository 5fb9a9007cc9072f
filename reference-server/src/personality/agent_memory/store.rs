//! agent-memory's block pool: blocks are taken when a cold prompt is submitted (a placeholder
//! on one layer) and when a generation finishes (every layer of the whole sequence); an idle
//! agent's blocks are never freed.
//!
//! Citations are to yshk-mxim/agent-memory @ d7d7dea3, under `src/agent_memory/`.

use std::collections::HashMap;

use crate::config::PoolGeometry;
use crate::tokenizer::common_prefix;

/// Prompts at least this long (and cold) go to chunked prefill, which allocates nothing when
/// submitted (`adapters/config/settings.py:155-160`, `application/scheduler.py:284-308`).
const INTERLEAVE_THRESHOLD: usize = 2048;

/// The pool could not give the blocks asked for; the text is the original's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exhausted(pub(crate) String);

/// One agent's entry.
#[derive(Debug, Default)]
struct Entry {
    /// Blocks held: a placeholder while cold and running, else its cache of every layer.
    blocks: u64,
    /// A cache was saved (hot or on disk): any later request of the agent is a "hit".
    cached: bool,
    /// The saved context (for the prefill time of a warm request).
    tokens: Vec<u32>,
    /// Order of last use (hot tier: the 12 most recent).
    last_used: u64,
}

/// Pool figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Figures {
    pub(crate) total_blocks: u64,
    pub(crate) used_blocks: u64,
    pub(crate) peak_used_blocks: u64,
    pub(crate) cached_agents: usize,
    pub(crate) leaked_blocks: u64,
}

/// The pool and the agents' entries.
#[derive(Debug)]
pub(crate) struct Store {
    geometry: PoolGeometry,
    used: u64,
    peak: u64,
    /// Placeholders lost when a second cold request of an agent overwrote the first
    /// (`application/batch_engine.py:811-813`); freed only by an admin reset.
    leaked: u64,
    agents: HashMap<String, Entry>,
    clock: u64,
}

impl Store {
    /// An empty pool of `geometry.total_blocks` blocks.
    pub(crate) fn new(geometry: PoolGeometry) -> Self {
        Self {
            geometry,
            used: 0,
            peak: 0,
            leaked: 0,
            agents: HashMap::new(),
            clock: 0,
        }
    }

    fn free(&self) -> u64 {
        self.geometry.total_blocks - self.used
    }

    fn take(&mut self, n: u64) {
        self.used += n;
        self.peak = self.peak.max(self.used);
    }

    /// Whether the agent has a saved cache (`anthropic_adapter.py:660`: `cache_store.load`
    /// is truthy for any entry), and how many prompt tokens it shares with `prompt`.
    pub(crate) fn lookup(&self, agent: &str, prompt: &[u32]) -> Option<usize> {
        let e = self.agents.get(agent).filter(|e| e.cached)?;
        Some(common_prefix(&e.tokens, prompt))
    }

    /// A request is submitted: a cold, short prompt takes ceil(prompt/256) blocks on layer 0 as
    /// a placeholder, or is refused at once (`batch_engine.py:783-799`); warm and long cold
    /// prompts take nothing (`batch_engine.py:1179-1287`).
    pub(crate) fn submit(&mut self, agent: &str, prompt_tokens: usize) -> Result<(), Exhausted> {
        let warm = self.agents.get(agent).is_some_and(|e| e.cached);
        if warm || prompt_tokens >= INTERLEAVE_THRESHOLD {
            return Ok(());
        }
        let need = (prompt_tokens as u64).div_ceil(self.geometry.tokens_per_block);
        if need > self.free() {
            return Err(Exhausted(format!(
                "Failed to allocate {need} blocks for agent {agent}"
            )));
        }
        self.take(need);
        let e = self.agents.entry(agent.to_owned()).or_default();
        // A second cold request of the same agent overwrites the first placeholder, which then
        // belongs to nobody.
        self.leaked += std::mem::replace(&mut e.blocks, need);
        Ok(())
    }

    /// A generation finished: the agent's old blocks are freed, then its whole sequence is
    /// stored in every layer (`batch_engine.py:1447-1462`, `2022-2055`). `save` is false when
    /// the client went away: the blocks are still taken, but no cache entry is saved
    /// (`anthropic_adapter.py:591-593`).
    pub(crate) fn finalize(
        &mut self,
        agent: &str,
        sequence: Vec<u32>,
        save: bool,
    ) -> Result<(), Exhausted> {
        self.clock += 1;
        let clock = self.clock;
        let e = self.agents.entry(agent.to_owned()).or_default();
        let old = std::mem::take(&mut e.blocks);
        self.used -= old;
        let need = self.geometry.blocks_for(sequence.len() as u64);
        if need > self.geometry.total_blocks - self.used {
            // `domain/services.py:152-157`.
            return Err(Exhausted(format!(
                "Requested {need} blocks but only {} available. Total pool size: {}, allocated: {}",
                self.free(),
                self.geometry.total_blocks,
                self.used
            )));
        }
        self.take(need);
        let e = self.agents.entry(agent.to_owned()).or_default();
        e.blocks = need;
        e.last_used = clock;
        if save {
            e.cached = true;
            e.tokens = sequence;
        }
        Ok(())
    }

    /// `DELETE /v1/agents/{id}`: frees the agent's blocks and forgets it; `false` if unknown
    /// (`adapters/inbound/direct_agent_adapter.py:336-400`).
    pub(crate) fn remove(&mut self, agent: &str) -> bool {
        match self.agents.remove(agent) {
            Some(e) if e.cached || e.blocks > 0 => {
                self.used -= e.blocks;
                true
            }
            Some(_) | None => false,
        }
    }

    /// `DELETE /admin/caches`: forgets every agent and force-clears the pool
    /// (`adapters/inbound/admin_api.py:387-458`). Returns (agents, agents holding blocks).
    pub(crate) fn clear(&mut self) -> (usize, usize) {
        let holding = self.agents.values().filter(|e| e.blocks > 0).count();
        let n = self.agents.len();
        self.agents.clear();
        self.used = 0;
        self.leaked = 0;
        (n, holding)
    }

    /// Agents with a saved cache, most recently used first.
    fn cached_by_recency(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .agents
            .values()
            .filter(|e| e.cached)
            .map(|e| e.last_used)
            .collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    }

    /// Current figures.
    pub(crate) fn figures(&self) -> Figures {
        Figures {
            total_blocks: self.geometry.total_blocks,
            used_blocks: self.used,
            peak_used_blocks: self.peak,
            cached_agents: self.cached_by_recency().len(),
            leaked_blocks: self.leaked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerConfig;

    /// 32 blocks of 4 layers.
    fn store() -> Store {
        let mut g = ServerConfig::default().geometry();
        g.total_blocks = 32;
        Store::new(g)
    }

    #[test]
    fn idle_agents_keep_their_blocks_until_deleted() {
        let mut s = store();
        for i in 0..4 {
            let agent = format!("a{i}");
            s.submit(&agent, 20).unwrap();
            s.finalize(&agent, vec![1; 300], true).unwrap();
        }
        assert_eq!(
            s.figures().used_blocks,
            32,
            "4 agents × 2 blocks × 4 layers, all idle"
        );
        assert!(
            s.submit("new", 20).is_err(),
            "no room for even a placeholder"
        );
        assert!(s.remove("a0"));
        assert_eq!(s.figures().used_blocks, 24);
        assert!(!s.remove("a0"));
        assert_eq!(s.clear(), (3, 3));
        assert_eq!(s.figures().used_blocks, 0);
    }

    #[test]
    fn exhaustion_after_the_generation_frees_the_old_blocks_first() {
        let mut s = store();
        for i in 0..7 {
            let agent = format!("a{i}");
            s.finalize(&agent, vec![1; 10], true).unwrap();
        }
        s.submit("late", 10).unwrap();
        assert_eq!(s.figures().used_blocks, 29);
        let err = s.finalize("late", vec![1; 600], true).unwrap_err();
        assert!(
            err.0
                .starts_with("Requested 12 blocks but only 4 available"),
            "{err:?}"
        );
        assert_eq!(s.figures().used_blocks, 28, "the placeholder was freed");
        assert_eq!(s.lookup("late", &[1]), None, "nothing saved");
    }

    #[test]
    fn a_hit_is_any_saved_entry_and_an_orphan_saves_none() {
        let mut s = store();
        s.submit("a", 5).unwrap();
        s.finalize("a", vec![7; 5], false).unwrap();
        assert_eq!(
            s.lookup("a", &[7; 9]),
            None,
            "the client went away: no entry saved"
        );
        assert_eq!(s.figures().used_blocks, 4, "but the blocks were taken");
        s.finalize("a", vec![7; 5], true).unwrap();
        assert_eq!(s.lookup("a", &[7; 9]), Some(5));
        assert_eq!(
            s.figures().used_blocks,
            4,
            "old blocks freed before the new ones"
        );
    }

    #[test]
    fn a_second_cold_request_of_one_agent_leaks_the_first_placeholder() {
        let mut s = store();
        s.submit("same", 20).unwrap();
        s.submit("same", 20).unwrap();
        assert_eq!(s.figures().leaked_blocks, 1);
        s.finalize("same", vec![1; 20], true).unwrap();
        assert_eq!(s.figures().used_blocks, 5, "4 cached + 1 leaked");
    }
}
