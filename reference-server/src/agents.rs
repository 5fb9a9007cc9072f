//! Per-agent caches over the block pool: admission, prefix reuse, completion and eviction.
//!
//! Every block in use belongs to exactly one holder: an idle agent's cache, or an in-flight
//! request's reservation. Admission reserves blocks for prompt + `max_tokens`; if the agent is
//! idle its cache moves into the reservation (the reused prefix is read from it). Completion
//! shrinks the reservation to what the context really needs and makes it the agent's cache.
//! Idle caches are evicted least recently used first, when admission needs room and when
//! more than `max_hot_agents` idle agents hold caches. Reuse is strictly per agent.

use std::collections::{BTreeMap, HashMap};

use super::config::PoolGeometry;
use super::pool::BlockPool;
use super::tokenizer::{common_prefix, hash_tokens};

/// Behaviour of the caches, derived from the server's settings and faults.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CachePolicy {
    /// Pool geometry.
    pub(crate) geometry: PoolGeometry,
    /// Blocks in use that admission never passes.
    pub(crate) admit_limit: u64,
    /// Idle agents that may keep a cache.
    pub(crate) max_hot_agents: usize,
    /// Fault `no-cache`: never reuse a prefix.
    pub(crate) no_cache: bool,
    /// Fault `no-recovery`: completions keep their whole reservation; nothing is evicted.
    pub(crate) no_recovery: bool,
}

/// One agent's state.
#[derive(Debug)]
struct Agent {
    /// Distinguishes this record from a later one of the same id (after a delete).
    epoch: u64,
    /// The cached context's tokens.
    tokens: Vec<u32>,
    /// The last canary of the cached context.
    canary: Option<String>,
    /// Blocks held by the cache (0 while the cache is lent to an in-flight request).
    cached_blocks: u64,
    /// Requests of this agent in flight.
    in_flight: u32,
    /// Key in the LRU index while idle with a cache.
    lru_key: Option<u64>,
}

/// A request's claim on the pool, from admission to completion or release.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Admission {
    agent: String,
    epoch: u64,
    /// Blocks reserved (the agent's cache included).
    pub(crate) reserved: u64,
    /// Prompt tokens read from the agent's cache.
    pub(crate) reused: usize,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The request alone needs more than admission ever allows.
    TooLarge { need: u64, limit: u64 },
    /// Not enough room even after evicting every idle agent.
    Exhausted { need: u64, used: u64, limit: u64 },
}

/// Figures of the caches at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CacheFigures {
    pub(crate) total_blocks: u64,
    pub(crate) used_blocks: u64,
    pub(crate) peak_used_blocks: u64,
    pub(crate) cached_blocks: u64,
    /// Blocks of idle caches that admission may evict.
    pub(crate) evictable_blocks: u64,
    pub(crate) agents: usize,
    pub(crate) idle_cached_agents: usize,
    pub(crate) evictions: u64,
}

/// All agents and the pool they share.
#[derive(Debug)]
pub(crate) struct Caches {
    policy: CachePolicy,
    pool: BlockPool,
    agents: HashMap<String, Agent>,
    /// Idle agents with a cache, oldest use first.
    lru: BTreeMap<u64, String>,
    /// Blocks held by the agents in `lru`.
    idle_blocks: u64,
    /// Blocks held by all agents' caches.
    cached_blocks: u64,
    clock: u64,
    evictions: u64,
}

impl Caches {
    /// Empty caches over a fresh pool.
    pub(crate) fn new(policy: CachePolicy) -> Self {
        Self {
            pool: BlockPool::new(policy.geometry.total_blocks),
            policy,
            agents: HashMap::new(),
            lru: BTreeMap::new(),
            idle_blocks: 0,
            cached_blocks: 0,
            clock: 0,
            evictions: 0,
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Reserves blocks for `prompt` + `max_tokens` for `agent`, evicting idle agents if needed.
    pub(crate) fn admit(
        &mut self,
        agent: &str,
        prompt: &[u32],
        max_tokens: u32,
    ) -> Result<Admission, Refusal> {
        let g = self.policy.geometry;
        let need = g.blocks_for(prompt.len() as u64 + u64::from(max_tokens));
        let limit = self.policy.admit_limit;
        if need > limit {
            return Err(Refusal::TooLarge { need, limit });
        }
        let (own_cache, reused) = match self.agents.get(agent) {
            Some(a) if a.in_flight == 0 && a.cached_blocks > 0 => {
                let reused = if self.policy.no_cache {
                    0
                } else {
                    common_prefix(&a.tokens, prompt)
                };
                (a.cached_blocks, reused)
            }
            _ => (0, 0),
        };
        let reserved = need.max(own_cache);
        let new = reserved - own_cache;
        let used = self.pool.used();
        if used + new > limit {
            let evictable = if self.policy.no_recovery {
                0
            } else {
                self.idle_blocks - own_cache
            };
            if used + new > limit + evictable {
                return Err(Refusal::Exhausted { need, used, limit });
            }
            while self.pool.used() + new > limit {
                let victim = self.lru.values().find(|id| id.as_str() != agent).cloned();
                match victim {
                    Some(id) => self.evict(&id),
                    None => break,
                }
            }
        }
        let allocated = self.pool.allocate(new);
        debug_assert!(allocated, "admission checked the room");
        self.clock += 1;
        let epoch = self.clock;
        let a = self
            .agents
            .entry(agent.to_owned())
            .or_insert_with(|| Agent {
                epoch,
                tokens: Vec::new(),
                canary: None,
                cached_blocks: 0,
                in_flight: 0,
                lru_key: None,
            });
        if own_cache > 0 {
            // The idle cache moves into this request's reservation.
            if let Some(key) = a.lru_key.take() {
                self.lru.remove(&key);
                self.idle_blocks -= own_cache;
            }
            self.cached_blocks -= own_cache;
            a.cached_blocks = 0;
            a.tokens.clear();
        }
        a.in_flight += 1;
        Ok(Admission {
            agent: agent.to_owned(),
            epoch: a.epoch,
            reserved,
            reused,
        })
    }

    /// Ends a successful request: the reservation becomes the agent's cache of `context`
    /// (sized to it), the rest is freed.
    pub(crate) fn complete(
        &mut self,
        admission: Admission,
        context: Vec<u32>,
        canary: Option<String>,
    ) {
        let g = self.policy.geometry;
        let keep = if self.policy.no_recovery {
            admission.reserved
        } else {
            g.blocks_for(context.len() as u64).min(admission.reserved)
        };
        let now = self.tick();
        let Some(a) = self
            .agents
            .get_mut(&admission.agent)
            .filter(|a| a.epoch == admission.epoch)
        else {
            // The agent was deleted meanwhile: its reservation goes back whole.
            self.pool.release(admission.reserved);
            return;
        };
        a.in_flight -= 1;
        self.pool.release(admission.reserved - keep);
        // A newer completion replaces an older cache of the same agent.
        self.pool.release(a.cached_blocks);
        self.cached_blocks -= a.cached_blocks;
        let capacity =
            usize::try_from(keep / g.n_layers * g.tokens_per_block).unwrap_or(usize::MAX);
        a.tokens = context;
        a.tokens.truncate(capacity);
        a.canary = canary;
        a.cached_blocks = keep;
        self.cached_blocks += keep;
        self.settle(&admission.agent, now);
        self.enforce_hot_cap();
    }

    /// Ends a failed or cancelled request: its whole reservation is freed.
    pub(crate) fn release(&mut self, admission: Admission) {
        self.pool.release(admission.reserved);
        let now = self.tick();
        if let Some(a) = self
            .agents
            .get_mut(&admission.agent)
            .filter(|a| a.epoch == admission.epoch)
        {
            a.in_flight -= 1;
            self.settle(&admission.agent, now);
        }
    }

    /// After a request of `id` ended: index the agent as idle, or forget it if it holds nothing.
    fn settle(&mut self, id: &str, now: u64) {
        let Some(a) = self.agents.get_mut(id) else {
            return;
        };
        if a.in_flight > 0 {
            return;
        }
        if a.cached_blocks == 0 {
            self.agents.remove(id);
        } else if a.lru_key.is_none() {
            a.lru_key = Some(now);
            self.idle_blocks += a.cached_blocks;
            self.lru.insert(now, id.to_owned());
        }
    }

    fn enforce_hot_cap(&mut self) {
        if self.policy.no_recovery {
            return;
        }
        while self.lru.len() > self.policy.max_hot_agents {
            let Some(id) = self.lru.values().next().cloned() else {
                break;
            };
            self.evict(&id);
        }
    }

    fn evict(&mut self, id: &str) {
        if self.remove(id) {
            self.evictions += 1;
        }
    }

    /// Drops an agent and frees its cache; its in-flight requests free their reservations when
    /// they end. `false` if there was no such agent.
    pub(crate) fn remove(&mut self, id: &str) -> bool {
        let Some(a) = self.agents.remove(id) else {
            return false;
        };
        if let Some(key) = a.lru_key {
            self.lru.remove(&key);
            self.idle_blocks -= a.cached_blocks;
        }
        self.cached_blocks -= a.cached_blocks;
        self.pool.release(a.cached_blocks);
        true
    }

    /// Drops every agent; returns how many there were.
    pub(crate) fn clear(&mut self) -> usize {
        let ids: Vec<String> = self.agents.keys().cloned().collect();
        ids.iter().filter(|id| self.remove(id)).count()
    }

    /// Hash and canary of the most recently idle agent other than `id` (fault
    /// `cross-agent-bleed`).
    pub(crate) fn other_context(&self, id: &str) -> Option<(u64, Option<String>)> {
        let other = self.lru.values().rev().find(|o| *o != id)?;
        let a = self.agents.get(other)?;
        Some((hash_tokens(&a.tokens), a.canary.clone()))
    }

    /// Current figures.
    pub(crate) fn figures(&self) -> CacheFigures {
        CacheFigures {
            total_blocks: self.pool.total(),
            used_blocks: self.pool.used(),
            peak_used_blocks: self.pool.peak(),
            cached_blocks: self.cached_blocks,
            evictable_blocks: if self.policy.no_recovery {
                0
            } else {
                self.idle_blocks
            },
            agents: self.agents.len(),
            idle_cached_agents: self.lru.len(),
            evictions: self.evictions,
        }
    }
}

#[cfg(test)]
mod tests;
