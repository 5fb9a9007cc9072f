//! Deterministic reply text: the same (context, seed) always gives the same words.
//!
//! A reply is a sequence of words, one token each. Its natural length (16–160 tokens) and its
//! words come from a SplitMix64 generator seeded by the context hash and the server's seed; it
//! stops at `max_tokens` if that comes first. If the context holds a canary (`CANARY-<id>`),
//! the reply begins with it, so that context leaking between agents shows in the text.

/// Why a reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// The reply reached its natural end.
    EndTurn,
    /// `max_tokens` cut it short.
    MaxTokens,
}

impl StopReason {
    /// The wire name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::EndTurn => "end_turn",
            Self::MaxTokens => "max_tokens",
        }
    }
}

/// A generated reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// One word per output token.
    pub(crate) words: Vec<String>,
    /// Why it ended.
    pub(crate) stop_reason: StopReason,
}

impl Reply {
    /// The whole text.
    pub(crate) fn text(&self) -> String {
        self.chunk(0, self.words.len())
    }

    /// Text of tokens `from..to`, with the separating space before it unless it is the start.
    pub(crate) fn chunk(&self, from: usize, to: usize) -> String {
        let to = to.min(self.words.len());
        let mut out = String::new();
        for (i, w) in self.words[from.min(to)..to].iter().enumerate() {
            if from + i > 0 {
                out.push(' ');
            }
            out.push_str(w);
        }
        out
    }
}

/// Words replies are made of.
const VOCABULARY: [&str; 32] = [
    "the", "cache", "agent", "block", "pool", "token", "reply", "prefix", "server", "request",
    "memory", "layer", "batch", "queue", "stream", "model", "is", "keeps", "holds", "reuses",
    "frees", "admits", "and", "with", "of", "a", "every", "context", "shared", "warm", "quiet",
    "steady",
];

/// SplitMix64: small, fast, and good enough to pick words.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The reply to a context with hash `context` (and last canary `canary`).
pub(crate) fn reply(context: u64, seed: u64, canary: Option<&str>, max_tokens: u32) -> Reply {
    let mut state = context ^ seed.rotate_left(32);
    // Both moduli are small, so the casts cannot truncate.
    let natural = 16 + (splitmix(&mut state) % 145) as usize;
    let max = usize::try_from(max_tokens).unwrap_or(usize::MAX);
    let len = natural.min(max);
    let mut words = Vec::with_capacity(len);
    if let Some(c) = canary {
        words.push(c.to_owned());
    }
    while words.len() < len {
        let i = (splitmix(&mut state) % VOCABULARY.len() as u64) as usize;
        words.push(VOCABULARY[i].to_owned());
    }
    words.truncate(len);
    let stop_reason = if natural > max {
        StopReason::MaxTokens
    } else {
        StopReason::EndTurn
    };
    Reply { words, stop_reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_per_context_and_seed() {
        assert_eq!(reply(1, 2, None, 500), reply(1, 2, None, 500));
        assert_ne!(reply(1, 2, None, 500), reply(3, 2, None, 500));
        assert_ne!(reply(1, 2, None, 500), reply(1, 4, None, 500));
    }

    #[test]
    fn max_tokens_cuts_and_says_so() {
        let r = reply(7, 0, None, 3);
        assert_eq!(r.words.len(), 3);
        assert_eq!(r.stop_reason, StopReason::MaxTokens);
        let r = reply(7, 0, None, 1000);
        assert!((16..=160).contains(&r.words.len()));
        assert_eq!(r.stop_reason, StopReason::EndTurn);
    }

    #[test]
    fn canary_comes_first_and_chunks_rebuild_the_text() {
        let r = reply(9, 9, Some("CANARY-x1"), 50);
        assert_eq!(r.words[0], "CANARY-x1");
        assert!(r.text().starts_with("CANARY-x1 "));
        let joined = format!("{}{}{}", r.chunk(0, 1), r.chunk(1, 10), r.chunk(10, 50));
        assert_eq!(joined, r.text());
        assert_eq!(reply(9, 9, Some("CANARY-x1"), 1).text(), "CANARY-x1");
    }
}
