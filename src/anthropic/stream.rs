//! Folding the events of a streamed Messages reply into one reply.

use serde_json::Value;

use super::Usage;
use super::sse::Event;

/// What one event meant for the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing of interest (`ping`, block start/stop, unknown event types).
    Nothing,
    /// A `content_block_delta` carrying text: a token chunk arrived.
    Delta,
    /// `message_stop`: the reply is complete.
    Stop,
}

/// Why a stream is not a valid reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The server sent `event: error`.
    #[error("error event mid-stream: {kind}: {message}")]
    ErrorEvent {
        /// `error.type`.
        kind: String,
        /// `error.message`.
        message: String,
    },
    /// An event's data was not the JSON its type requires.
    #[error("malformed {event} event: {reason}")]
    Malformed {
        /// The event type.
        event: String,
        /// What was wrong.
        reason: String,
    },
}

/// Accumulates a streamed reply event by event.
#[derive(Debug, Default)]
pub struct Accumulator {
    /// Usage: prompt and cache figures from `message_start`, output from `message_delta`.
    pub usage: Usage,
    /// `stop_reason` from `message_delta`.
    pub stop_reason: Option<String>,
    /// Text received so far (bounded by `text_limit`).
    pub text: String,
    /// Number of text chunks.
    pub chunks: u32,
    /// Whether `message_start` arrived.
    pub started: bool,
    /// The message id from `message_start`, when it had one.
    pub id: Option<String>,
    /// Whether `message_stop` arrived.
    pub stopped: bool,
    text_limit: usize,
}

impl Accumulator {
    /// An accumulator keeping at most `text_limit` bytes of text.
    pub fn new(text_limit: usize) -> Self {
        Self {
            text_limit,
            ..Self::default()
        }
    }

    /// Applies one event.
    ///
    /// # Errors
    ///
    /// [`StreamError`] on an `error` event or malformed data.
    pub fn apply(&mut self, event: &Event) -> Result<Step, StreamError> {
        let kind = event.event.as_deref().unwrap_or("message");
        let parse = || -> Result<Value, StreamError> {
            serde_json::from_str(&event.data).map_err(|e| StreamError::Malformed {
                event: kind.to_owned(),
                reason: e.to_string(),
            })
        };
        match kind {
            "message_start" => {
                let v = parse()?;
                let usage = v.pointer("/message/usage").cloned().unwrap_or(Value::Null);
                if let Ok(u) = serde_json::from_value::<Usage>(usage) {
                    self.usage.input_tokens = u.input_tokens;
                    self.usage.cache_read_input_tokens = u.cache_read_input_tokens;
                    self.usage.cache_creation_input_tokens = u.cache_creation_input_tokens;
                }
                self.id = v
                    .pointer("/message/id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                self.started = true;
                Ok(Step::Nothing)
            }
            "content_block_delta" => {
                let v = parse()?;
                let Some(text) = v.pointer("/delta/text").and_then(Value::as_str) else {
                    return Ok(Step::Nothing);
                };
                self.chunks += 1;
                let room = self.text_limit.saturating_sub(self.text.len());
                if room > 0 {
                    let mut end = room.min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    self.text.push_str(&text[..end]);
                }
                Ok(Step::Delta)
            }
            "message_delta" => {
                let v = parse()?;
                if let Some(n) = v.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    self.usage.output_tokens = n;
                }
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(r.to_owned());
                }
                Ok(Step::Nothing)
            }
            "message_stop" => {
                self.stopped = true;
                Ok(Step::Stop)
            }
            "error" => {
                let v = parse().unwrap_or(Value::Null);
                let field = |p: &str| {
                    v.pointer(p)
                        .and_then(Value::as_str)
                        .unwrap_or("unknown")
                        .to_owned()
                };
                Err(StreamError::ErrorEvent {
                    kind: field("/error/type"),
                    message: field("/error/message"),
                })
            }
            _ => Ok(Step::Nothing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, data: &str) -> Event {
        Event {
            event: Some(kind.to_owned()),
            data: data.to_owned(),
            stamp: None,
        }
    }

    #[test]
    fn folds_a_full_stream() {
        let mut acc = Accumulator::new(1024);
        let start = r#"{"type":"message_start","message":{"usage":{"input_tokens":30,"output_tokens":0,"cache_read_input_tokens":20,"cache_creation_input_tokens":10}}}"#;
        assert_eq!(
            acc.apply(&ev("message_start", start)).unwrap(),
            Step::Nothing
        );
        let delta = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi "}}"#;
        assert_eq!(
            acc.apply(&ev("content_block_delta", delta)).unwrap(),
            Step::Delta
        );
        assert_eq!(
            acc.apply(&ev("content_block_delta", delta)).unwrap(),
            Step::Delta
        );
        let md = r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}"#;
        acc.apply(&ev("message_delta", md)).unwrap();
        assert_eq!(acc.apply(&ev("message_stop", "{}")).unwrap(), Step::Stop);
        assert_eq!(acc.text, "Hi Hi ");
        assert_eq!(acc.chunks, 2);
        assert_eq!(acc.usage.output_tokens, 7);
        assert_eq!(acc.usage.cache_read_input_tokens, 20);
        assert_eq!(acc.stop_reason.as_deref(), Some("end_turn"));
        assert!(acc.started && acc.stopped);
    }

    #[test]
    fn error_event_is_an_error() {
        let mut acc = Accumulator::new(0);
        let err = acc
            .apply(&ev(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"full"}}"#,
            ))
            .unwrap_err();
        assert_eq!(
            err,
            StreamError::ErrorEvent {
                kind: "overloaded_error".into(),
                message: "full".into()
            }
        );
    }

    #[test]
    fn malformed_json_is_an_error_and_text_is_bounded() {
        let mut acc = Accumulator::new(4);
        assert!(acc.apply(&ev("content_block_delta", "{not json")).is_err());
        let delta = r#"{"delta":{"type":"text_delta","text":"héllo"}}"#;
        acc.apply(&ev("content_block_delta", delta)).unwrap();
        assert_eq!(acc.text, "hél");
    }
}
