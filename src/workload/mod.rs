//! What to send: deterministic text, canaries that make cross-agent bleed visible, and the
//! agent profiles of realistic conversations.

use std::ops::RangeInclusive;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

/// Vocabulary of generated prompts: plain lowercase words, one token each for a word-level
/// tokenizer.
const WORDS: &[&str] = &[
    "cache", "agent", "block", "pool", "token", "prefix", "stream", "batch", "model", "query",
    "answer", "memory", "context", "layer", "budget", "request", "reply", "session", "server",
    "latency", "window", "growth", "eviction", "reuse", "prompt", "system", "tool", "result",
    "graph", "table", "index", "vector", "search", "plan", "step", "task", "note", "draft",
    "review", "summary", "detail", "error", "retry", "limit", "queue", "worker", "signal",
    "health", "metric", "report",
];

/// A seeded source of prompt text.
#[derive(Debug)]
pub struct TextGen {
    rng: StdRng,
}

impl TextGen {
    /// A generator from `seed`: the same seed gives the same text.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// `n` words separated by spaces.
    pub fn words(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n * 7);
        for i in 0..n {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(WORDS[self.rng.random_range(0..WORDS.len())]);
        }
        s
    }

    /// A number of words drawn uniformly from `range`.
    pub fn words_in(&mut self, range: RangeInclusive<usize>) -> String {
        let n = self.rng.random_range(range);
        self.words(n)
    }

    /// A value drawn uniformly from `range`.
    pub fn pick(&mut self, range: RangeInclusive<u64>) -> u64 {
        self.rng.random_range(range)
    }

    /// A think time drawn from an exponential distribution with the given mean, capped at 5×
    /// the mean.
    pub fn think(&mut self, mean: Duration) -> Duration {
        let u: f64 = self.rng.random::<f64>().max(f64::MIN_POSITIVE);
        let secs = (-u.ln() * mean.as_secs_f64()).min(5.0 * mean.as_secs_f64());
        Duration::from_secs_f64(secs)
    }

    /// Raw access to the generator.
    pub fn rng(&mut self) -> &mut impl Rng {
        &mut self.rng
    }
}

/// The canary token of an agent: `CANARY-<agent id>`. A server that echoes an agent's last
/// canary lets a test see whose context produced a reply.
pub fn canary(agent_id: &str) -> String {
    format!("CANARY-{agent_id}")
}

/// Every canary token (`CANARY-…`) in `text`.
pub fn canaries_in(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| w.starts_with("CANARY-") && w.len() > "CANARY-".len())
        .collect()
}

/// How an agent of a realistic conversation behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Short name for reports (`short_frequent`, …).
    pub name: &'static str,
    /// Words of a conversation's first user turn (about one token each).
    pub prompt_words: RangeInclusive<usize>,
    /// Words of each follow-up turn.
    pub followup_words: RangeInclusive<usize>,
    /// Turns after which the agent starts a new conversation.
    pub conversation_turns: u32,
    /// `max_tokens` of each turn.
    pub max_tokens: u32,
    /// Turns per burst of activity.
    pub burst_turns: RangeInclusive<u64>,
    /// Mean pause between turns within a burst.
    pub turn_gap: Duration,
    /// Mean pause between bursts.
    pub idle_gap: Duration,
}

impl Profile {
    /// The seed's five agents, with pauses scaled so one pass fits in about `span`:
    /// 1. short queries (10–50 tokens), frequent;
    /// 2. long context (500–1000 tokens), occasional;
    /// 3. rapid-fire questions in bursts;
    /// 4. and 5. intermittent, sporadic use.
    pub fn seed_profiles(span: Duration) -> [Self; 5] {
        let frac = |f: f64| span.mul_f64(f);
        [
            Self {
                name: "short_frequent",
                followup_words: 10..=50,
                conversation_turns: 12,
                prompt_words: 10..=50,
                max_tokens: 64,
                burst_turns: 1..=1,
                turn_gap: Duration::ZERO,
                idle_gap: frac(0.03),
            },
            Self {
                name: "long_context_occasional",
                followup_words: 10..=30,
                conversation_turns: 4,
                prompt_words: 500..=1000,
                max_tokens: 128,
                burst_turns: 3..=4,
                turn_gap: frac(0.01),
                idle_gap: frac(0.2),
            },
            Self {
                name: "rapid_fire_bursts",
                followup_words: 5..=30,
                conversation_turns: 20,
                prompt_words: 5..=30,
                max_tokens: 32,
                burst_turns: 5..=10,
                turn_gap: Duration::ZERO,
                idle_gap: frac(0.15),
            },
            Self {
                name: "intermittent_a",
                followup_words: 20..=120,
                conversation_turns: 6,
                prompt_words: 20..=120,
                max_tokens: 64,
                burst_turns: 1..=3,
                turn_gap: frac(0.02),
                idle_gap: frac(0.3),
            },
            Self {
                name: "intermittent_b",
                followup_words: 20..=120,
                conversation_turns: 6,
                prompt_words: 20..=120,
                max_tokens: 64,
                burst_turns: 1..=2,
                turn_gap: frac(0.02),
                idle_gap: frac(0.4),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_reproducible_and_sized() {
        let a = TextGen::new(3).words(20);
        assert_eq!(a, TextGen::new(3).words(20));
        assert_eq!(a.split(' ').count(), 20);
        assert_ne!(a, TextGen::new(4).words(20));
    }

    #[test]
    fn canaries_are_found_in_text() {
        let t = format!("Remember {}. ok {}, done", canary("agent-1"), canary("b_2"));
        assert_eq!(canaries_in(&t), vec!["CANARY-agent-1", "CANARY-b_2"]);
        assert!(canaries_in("CANARY- alone").is_empty());
    }

    #[test]
    fn think_times_are_bounded() {
        let mut g = TextGen::new(1);
        let mean = Duration::from_millis(100);
        for _ in 0..1000 {
            assert!(g.think(mean) <= mean * 5);
        }
    }
}
