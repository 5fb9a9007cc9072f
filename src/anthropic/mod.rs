//! Wire types of the Anthropic Messages API, as spoken by the semantic caching server.
//!
//! Only what the harness and the reference server exchange: requests, responses, usage, the
//! error envelope and the server-sent events of a streamed reply. Parsing is lenient where the
//! API allows variants (string or block content) and strict nowhere else; validation of
//! requests with messages that name the problem lives in the reference server.

pub mod sse;
pub mod stream;

use serde::{Deserialize, Serialize};

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The client (the agent's user side).
    User,
    /// The model.
    Assistant,
}

/// One block of a message's content.
///
/// Read leniently, as the Messages API allows: any block type parses (`thinking`,
/// `tool_use`, …; their other fields are ignored), and only `text` blocks carry text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextBlock {
    /// `"text"`, or another block type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text (empty for blocks of other types).
    #[serde(default)]
    pub text: String,
}

impl TextBlock {
    /// Whether this is a text block.
    pub fn is_text(&self) -> bool {
        self.kind == "text"
    }
}

impl TextBlock {
    /// A `{"type":"text","text":…}` block.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            kind: "text".to_owned(),
            text: text.into(),
        }
    }
}

/// Message content: a plain string or a list of text blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// `"content": "…"`.
    Text(String),
    /// `"content": [{"type":"text","text":"…"}, …]`.
    Blocks(Vec<TextBlock>),
}

impl Content {
    /// The content's text, blocks joined without separator.
    pub fn text(&self) -> String {
        match self {
            Self::Text(t) => t.clone(),
            Self::Blocks(blocks) => blocks
                .iter()
                .filter(|b| b.is_text())
                .map(|b| b.text.as_str())
                .collect(),
        }
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: Content,
}

impl Message {
    /// A user turn with plain text content.
    pub fn user(text: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: Content::Text(text.into()),
        }
    }

    /// An assistant turn with plain text content.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: Content::Text(text.into()),
        }
    }
}

/// A `POST /v1/messages` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesRequest {
    /// Model name; echoed by the server.
    pub model: String,
    /// The conversation so far, starting with a user turn, alternating roles.
    pub messages: Vec<Message>,
    /// Upper bound on output tokens (1..=65536).
    pub max_tokens: u32,
    /// Optional system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Content>,
    /// Ask for a server-sent-event stream instead of one JSON body.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Sampling temperature (accepted, may be ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

impl MessagesRequest {
    /// A request for `model` with the given messages and output bound, not streamed.
    pub fn new(model: impl Into<String>, messages: Vec<Message>, max_tokens: u32) -> Self {
        Self {
            model: model.into(),
            messages,
            max_tokens,
            system: None,
            stream: false,
            temperature: None,
        }
    }
}

/// Token accounting of one reply.
///
/// The semantic caching server counts cached tokens **inside** `input_tokens` (inclusive
/// convention); Anthropic's API counts them outside. See [`Usage::prompt_tokens`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens as the server reports them.
    #[serde(default)]
    pub input_tokens: u64,
    /// Generated tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Prompt tokens newly prefilled and stored in the cache.
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    /// Prompt tokens reused from the agent's cache.
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

impl Usage {
    /// Whether `input_tokens` already includes the cached tokens (this server family's
    /// convention): `input_tokens >= cache_read + cache_creation`.
    pub fn is_inclusive(&self) -> bool {
        self.input_tokens
            >= self
                .cache_read_input_tokens
                .saturating_add(self.cache_creation_input_tokens)
    }

    /// The whole prompt in tokens, whichever convention the server uses.
    pub fn prompt_tokens(&self) -> u64 {
        if self.is_inclusive() {
            self.input_tokens
        } else {
            self.input_tokens
                .saturating_add(self.cache_read_input_tokens)
                .saturating_add(self.cache_creation_input_tokens)
        }
    }
}

/// A non-streamed `POST /v1/messages` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    /// `msg_…`.
    pub id: String,
    /// Always `"message"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always `assistant`.
    pub role: Role,
    /// The reply's content blocks.
    pub content: Vec<TextBlock>,
    /// The model, echoed.
    pub model: String,
    /// `end_turn` or `max_tokens`.
    pub stop_reason: Option<String>,
    /// Which stop sequence matched, if any.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Token accounting.
    pub usage: Usage,
}

impl MessagesResponse {
    /// The reply's text: its text blocks joined (thinking and tool blocks are not text).
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter(|b| b.is_text())
            .map(|b| b.text.as_str())
            .collect()
    }
}

/// The body of an error reply: `{"type":"error","error":{"type":T,"message":M}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// Always `"error"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inner object of an [`ErrorEnvelope`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// `invalid_request_error`, `overloaded_error`, `rate_limit_error`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// A message naming the problem.
    pub message: String,
}

impl ErrorEnvelope {
    /// An envelope of the given error type and message.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: "error".to_owned(),
            error: ErrorDetail {
                kind: kind.into(),
                message: message.into(),
            },
        }
    }

    /// Parses a body as an error envelope; `None` unless it is one (`type` must be `"error"`).
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(body)
            .ok()
            .filter(|e| e.kind == "error")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_with_thinking_and_tool_blocks_parse_and_only_text_is_text() {
        let body = r#"{"id":"msg_1","type":"message","role":"assistant","model":"m",
            "content":[{"type":"thinking","thinking":"hmm","signature":""},
                       {"type":"text","text":"Hello"},
                       {"type":"tool_use","id":"t1","name":"f","input":{"x":1}},
                       {"type":"text","text":" world"}],
            "stop_reason":"end_turn","stop_sequence":null,"unknown_field":[1,2],
            "usage":{"input_tokens":3,"output_tokens":4,"service_tier":"standard"}}"#;
        let r: MessagesResponse = serde_json::from_str(body).unwrap();
        assert_eq!(r.text(), "Hello world");
        assert_eq!(r.content.len(), 4);
        assert_eq!(r.usage.output_tokens, 4);
    }
}
