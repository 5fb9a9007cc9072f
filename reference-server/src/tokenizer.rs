//! A deterministic tokenizer, prefix-stable at message boundaries.
//!
//! A prompt is the concatenation of its segments: for the system prompt and for each message,
//! one role-marker token followed by the tokens of the text. A *word* (a maximal run of letters,
//! digits, `-` and `_`) is one token; every other non-space character is a token of its own;
//! white space is dropped. Token ids come from a stable hash (FNV-1a) of the token text, so
//! tokenizing `messages[..k]` gives a prefix of tokenizing `messages[..k + 1]`, and the same text
//! gives the same ids in every process. English prose comes out at about one token per word.
//!
//! Words of the form `CANARY-<id>` are canaries: the prompt remembers the last one so that the
//! reply can repeat it (see [`super::generate`]).

use semantic_stress::anthropic::Role;

/// Token of the system prompt's role marker.
const SYSTEM_MARKER: u32 = 1;
/// Token of a user turn's role marker.
const USER_MARKER: u32 = 2;
/// Token of an assistant turn's role marker.
const ASSISTANT_MARKER: u32 = 3;
/// Ids below this are reserved for markers.
const FIRST_WORD_ID: u32 = 16;
/// Prefix of a canary word.
const CANARY_PREFIX: &str = "CANARY-";
/// Prompt tokens hashed into an agent id when no session id is given.
const AGENT_ID_TOKENS: usize = 100;

/// A tokenized prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Prompt {
    /// Token ids, role markers included.
    pub(crate) tokens: Vec<u32>,
    /// The last `CANARY-<id>` word of the prompt, if any.
    pub(crate) last_canary: Option<String>,
}

impl Prompt {
    /// Appends one segment: a role marker (`None` for the system prompt) and the text's tokens.
    pub(crate) fn push_segment(&mut self, role: Option<Role>, text: &str) {
        self.tokens.push(match role {
            None => SYSTEM_MARKER,
            Some(Role::User) => USER_MARKER,
            Some(Role::Assistant) => ASSISTANT_MARKER,
        });
        for word in words(text) {
            if word.len() > CANARY_PREFIX.len() && word.starts_with(CANARY_PREFIX) {
                self.last_canary = Some(word.to_owned());
            }
            self.tokens.push(word_id(word));
        }
    }

    /// The agent of a request without a session id: `msg_` and 16 hex digits of a hash of the
    /// first 100 tokens.
    pub(crate) fn anonymous_agent_id(&self) -> String {
        let head = &self.tokens[..self.tokens.len().min(AGENT_ID_TOKENS)];
        format!("msg_{:016x}", hash_tokens(head))
    }
}

/// Splits text into token strings: words, and single punctuation characters.
pub(crate) fn words(text: &str) -> impl Iterator<Item = &str> {
    let is_word = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    let mut rest = text;
    std::iter::from_fn(move || {
        rest = rest.trim_start();
        let first = rest.chars().next()?;
        let len = if is_word(first) {
            rest.find(|c: char| !is_word(c)).unwrap_or(rest.len())
        } else {
            first.len_utf8()
        };
        let (word, tail) = rest.split_at(len);
        rest = tail;
        Some(word)
    })
}

/// The id of one token string.
pub(crate) fn word_id(word: &str) -> u32 {
    let h = fnv1a(word.as_bytes());
    // The modulus keeps the id below 2^31, so the cast cannot truncate.
    FIRST_WORD_ID + (h % (1 << 31)) as u32
}

/// FNV-1a, 64 bits: stable across processes and platforms (unlike `DefaultHasher`).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A stable hash of a token sequence.
pub(crate) fn hash_tokens(tokens: &[u32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for t in tokens {
        for b in t.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Length of the longest common prefix of two token sequences.
pub(crate) fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tokenize(system: Option<&str>, turns: &[&str]) -> Prompt {
        let mut p = Prompt::default();
        if let Some(s) = system {
            p.push_segment(None, s);
        }
        for (i, t) in turns.iter().enumerate() {
            let role = if i % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            };
            p.push_segment(Some(role), t);
        }
        p
    }

    #[test]
    fn about_one_token_per_word() {
        let p = tokenize(None, &["Hello, world! How are you today?"]);
        // marker + Hello , world ! How are you today ?
        assert_eq!(p.tokens.len(), 10);
        assert_eq!(
            words("a-b_c  d.").collect::<Vec<_>>(),
            vec!["a-b_c", "d", "."]
        );
    }

    #[test]
    fn same_text_same_ids_and_markers_differ_by_role() {
        let a = tokenize(None, &["same words"]);
        let b = tokenize(None, &["same words"]);
        assert_eq!(a, b);
        let mut c = Prompt::default();
        c.push_segment(Some(Role::Assistant), "same words");
        assert_ne!(a.tokens[0], c.tokens[0]);
        assert_eq!(a.tokens[1..], c.tokens[1..]);
    }

    #[test]
    fn last_canary_is_remembered() {
        let p = tokenize(None, &["remember CANARY-abc1", "ok", "and CANARY-zz9 too"]);
        assert_eq!(p.last_canary.as_deref(), Some("CANARY-zz9"));
        assert_eq!(tokenize(None, &["CANARY- alone"]).last_canary, None);
    }

    #[test]
    fn anonymous_agent_hashes_only_the_first_100_tokens() {
        let long = "word ".repeat(150);
        let a = tokenize(None, &[&long]);
        let b = tokenize(None, &[&format!("{long} different tail")]);
        assert_eq!(a.anonymous_agent_id(), b.anonymous_agent_id());
        let c = tokenize(None, &["short prompt"]);
        assert_ne!(a.anonymous_agent_id(), c.anonymous_agent_id());
        assert_eq!(c.anonymous_agent_id().len(), 4 + 16);
    }

    proptest! {
        #[test]
        fn prefix_stable_at_message_boundaries(
            system in proptest::option::of("[a-zA-Z ,.!]{0,40}"),
            turns in proptest::collection::vec("[a-zA-Z0-9 ,.!?'-]{0,60}", 1..8),
        ) {
            let refs: Vec<&str> = turns.iter().map(String::as_str).collect();
            for k in 1..refs.len() {
                let shorter = tokenize(system.as_deref(), &refs[..k]);
                let longer = tokenize(system.as_deref(), &refs[..=k]);
                prop_assert!(longer.tokens.starts_with(&shorter.tokens));
                prop_assert_eq!(common_prefix(&shorter.tokens, &longer.tokens), shorter.tokens.len());
            }
        }
    }
}
