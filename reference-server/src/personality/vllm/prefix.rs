//! vLLM's automatic prefix caching: one cache of full blocks keyed by the hash of the block and
//! everything before it, shared by every request (`vllm/config/cache.py:92`;
//! `vllm/v1/core/kv_cache_utils.py`). Counts are in tokens, as `vllm:prefix_cache_*` are
//! (`vllm/v1/metrics/loggers.py:543-554`).

use std::collections::{BTreeMap, HashMap};

/// Tokens per KV block (vLLM's default `block_size`).
pub(crate) const BLOCK_TOKENS: u64 = 16;

/// Cached blocks by chained hash, least recently used first out.
#[derive(Debug)]
pub(crate) struct PrefixCache {
    capacity: usize,
    blocks: HashMap<u64, u64>,
    lru: BTreeMap<u64, u64>,
    clock: u64,
    /// Prompt tokens looked up.
    pub(crate) queries: u64,
    /// Of those, tokens found cached.
    pub(crate) hits: u64,
}

impl PrefixCache {
    /// A cache of at most `capacity` blocks (cached blocks are evictable KV blocks).
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX),
            blocks: HashMap::new(),
            lru: BTreeMap::new(),
            clock: 0,
            queries: 0,
            hits: 0,
        }
    }

    /// Looks `prompt` up and caches its full blocks; returns the cached prompt tokens. The last
    /// prompt token is always computed, so a whole-prompt match counts one block less.
    pub(crate) fn lookup_and_insert(&mut self, prompt: &[u32]) -> usize {
        let block = usize::try_from(BLOCK_TOKENS).unwrap_or(16);
        let full = prompt.len() / block;
        let usable = prompt.len().saturating_sub(1) / block;
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut hit_blocks = 0;
        let mut missed = false;
        for (i, chunk) in prompt.chunks(block).take(full).enumerate() {
            for t in chunk {
                hash = (hash ^ u64::from(*t)).wrapping_mul(0x0000_0100_0000_01b3);
            }
            self.clock += 1;
            let known = self.blocks.insert(hash, self.clock);
            if let Some(old) = known {
                self.lru.remove(&old);
            }
            self.lru.insert(self.clock, hash);
            if known.is_some() && !missed && i < usable {
                hit_blocks += 1;
            } else {
                missed = true;
            }
        }
        while self.blocks.len() > self.capacity {
            let Some((_, oldest)) = self.lru.pop_first() else {
                break;
            };
            self.blocks.remove(&oldest);
        }
        let hit = hit_blocks * block;
        self.queries += prompt.len() as u64;
        self.hits += hit as u64;
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_request_reuses_a_prefix_another_one_cached() {
        let mut c = PrefixCache::new(1000);
        let shared: Vec<u32> = (0..320).collect();
        let mut a = shared.clone();
        a.extend(5000..5010);
        assert_eq!(c.lookup_and_insert(&a), 0);
        let mut b = shared.clone();
        b.extend(6000..6040);
        assert_eq!(c.lookup_and_insert(&b), 320, "the 20 blocks agent A left");
        assert_eq!(
            c.lookup_and_insert(&shared),
            304,
            "the last token is computed"
        );
        assert_eq!(c.queries, 330 + 360 + 320);
        assert_eq!(c.hits, 320 + 304);
    }

    #[test]
    fn the_cache_holds_at_most_its_capacity() {
        let mut c = PrefixCache::new(4);
        c.lookup_and_insert(&(0..160).collect::<Vec<u32>>());
        assert_eq!(c.blocks.len(), 4);
    }
}
