//! Cache figures from usage accounting: [`CacheStats`].
//!
//! The definitions are stated in the [`metrics`](crate::metrics#cache-figures) module docs.

use serde::{Deserialize, Serialize};

use crate::anthropic::Usage;
use crate::metrics::RequestResult;

/// Cache hit rates and the sums behind them. See the [definitions](crate::metrics#cache-figures) for the definitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Records with usage that are not the first turn of a conversation.
    pub eligible: u64,
    /// Eligible records with `cache_read_input_tokens > 0`.
    pub hits: u64,
    /// `hits / eligible`; `None` when nothing is eligible.
    pub request_hit_rate: Option<f64>,
    /// Σ `cache_read_input_tokens` over every record with usage.
    pub cache_read_tokens: u64,
    /// Σ `cache_creation_input_tokens` over every record with usage.
    pub cache_creation_tokens: u64,
    /// Σ [`Usage::prompt_tokens`] over every record with usage.
    pub prompt_tokens: u64,
    /// `cache_read_tokens / prompt_tokens`; `None` when no prompt tokens were reported.
    pub token_hit_rate: Option<f64>,
    /// Responses whose `input_tokens` include the cached tokens (this server family).
    pub inclusive_responses: u64,
    /// Responses whose `input_tokens` exclude the cached tokens (Anthropic's convention).
    pub anthropic_responses: u64,
    /// Responses without any cache tokens, where both conventions agree.
    pub undetermined_responses: u64,
}

impl CacheStats {
    /// Counts one record; records without usage are ignored.
    ///
    /// Time: O(1).
    pub(crate) fn record(&mut self, result: &RequestResult) {
        let Some(usage) = result.usage else {
            return;
        };
        if result.turn != Some(1) {
            self.eligible += 1;
            self.hits += u64::from(usage.cache_read_input_tokens > 0);
        }
        self.cache_read_tokens = self
            .cache_read_tokens
            .saturating_add(usage.cache_read_input_tokens);
        self.cache_creation_tokens = self
            .cache_creation_tokens
            .saturating_add(usage.cache_creation_input_tokens);
        self.prompt_tokens = self.prompt_tokens.saturating_add(usage.prompt_tokens());
        match convention(&usage) {
            Some(true) => self.inclusive_responses += 1,
            Some(false) => self.anthropic_responses += 1,
            None => self.undetermined_responses += 1,
        }
        self.refresh_rates();
    }

    /// Adds `other`'s counts to `self`.
    ///
    /// Time: O(1).
    pub(crate) fn merge(&mut self, other: &Self) {
        self.eligible += other.eligible;
        self.hits += other.hits;
        self.cache_read_tokens = self
            .cache_read_tokens
            .saturating_add(other.cache_read_tokens);
        self.cache_creation_tokens = self
            .cache_creation_tokens
            .saturating_add(other.cache_creation_tokens);
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.inclusive_responses += other.inclusive_responses;
        self.anthropic_responses += other.anthropic_responses;
        self.undetermined_responses += other.undetermined_responses;
        self.refresh_rates();
    }

    /// Recomputes both rates from the sums, so that they never go stale.
    fn refresh_rates(&mut self) {
        self.request_hit_rate = ratio(self.hits, self.eligible);
        self.token_hit_rate = ratio(self.cache_read_tokens, self.prompt_tokens);
    }
}

/// `Some(true)` for the inclusive convention, `Some(false)` for Anthropic's, `None` when the
/// response has no cache tokens and both conventions agree.
fn convention(usage: &Usage) -> Option<bool> {
    if usage.cache_read_input_tokens == 0 && usage.cache_creation_input_tokens == 0 {
        None
    } else {
        Some(usage.is_inclusive())
    }
}

/// `num / den`, or `None` when `den` is zero.
fn ratio(num: u64, den: u64) -> Option<f64> {
    // Token counts stay far below 2^53, where u64 → f64 is exact.
    (den > 0).then(|| num as f64 / den as f64)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn with_usage(turn: Option<u32>, input: u64, read: u64, creation: u64) -> RequestResult {
        let now = Instant::now();
        let mut r = RequestResult::pending(now, now);
        r.turn = turn;
        r.usage = Some(Usage {
            input_tokens: input,
            output_tokens: 10,
            cache_creation_input_tokens: creation,
            cache_read_input_tokens: read,
        });
        r
    }

    #[test]
    fn inclusive_convention_uses_input_tokens_as_the_prompt() {
        let mut stats = CacheStats::default();
        // Turn 1: 100 prompt tokens, all prefilled and stored.
        stats.record(&with_usage(Some(1), 100, 0, 100));
        // Turn 2: 150 prompt tokens, 100 of them from the cache.
        stats.record(&with_usage(Some(2), 150, 100, 50));
        assert_eq!((stats.eligible, stats.hits), (1, 1));
        assert_eq!(stats.request_hit_rate, Some(1.0));
        assert_eq!(stats.prompt_tokens, 250);
        assert_eq!(stats.token_hit_rate, Some(100.0 / 250.0));
        assert_eq!(stats.inclusive_responses, 2);
        assert_eq!(stats.anthropic_responses, 0);
    }

    #[test]
    fn anthropic_convention_adds_cached_tokens_to_the_prompt() {
        let mut stats = CacheStats::default();
        stats.record(&with_usage(Some(1), 5, 0, 100));
        stats.record(&with_usage(Some(2), 10, 100, 40));
        stats.record(&with_usage(Some(3), 10, 0, 0));
        // Prompts: 105, 150, 10.
        assert_eq!(stats.prompt_tokens, 265);
        assert_eq!(stats.token_hit_rate, Some(100.0 / 265.0));
        assert_eq!((stats.eligible, stats.hits), (2, 1));
        assert_eq!(stats.request_hit_rate, Some(0.5));
        assert_eq!(stats.anthropic_responses, 2);
        assert_eq!(stats.undetermined_responses, 1);
    }

    #[test]
    fn rates_are_none_without_eligible_records() {
        let mut stats = CacheStats::default();
        let now = Instant::now();
        stats.record(&RequestResult::pending(now, now));
        stats.record(&with_usage(Some(1), 0, 0, 0));
        assert_eq!(stats.request_hit_rate, None);
        assert_eq!(stats.token_hit_rate, None);
        assert_eq!(stats.eligible, 0);
    }

    #[test]
    fn records_outside_a_conversation_are_eligible() {
        let mut stats = CacheStats::default();
        stats.record(&with_usage(None, 50, 0, 50));
        let mut other = CacheStats::default();
        other.record(&with_usage(None, 50, 40, 10));
        stats.merge(&other);
        assert_eq!((stats.eligible, stats.hits), (2, 1));
        assert_eq!(stats.request_hit_rate, Some(0.5));
        assert_eq!(stats.token_hit_rate, Some(0.4));
    }
}
