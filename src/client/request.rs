//! [`Request`]: what to send (method, path, body, headers) and what the reply must be
//! ([`Expect`]).

use bytes::Bytes;
use http::Method;
use http::header::{HeaderName, HeaderValue};

use crate::anthropic::MessagesRequest;

/// What a request expects back, which decides its outcome class on a 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Any 2xx is a success (health, stats, admin routes).
    Any,
    /// A Messages reply: a valid message body, or a stream ending in `message_stop`; with
    /// non-zero `max_tokens`, zero output tokens is a protocol failure.
    Message {
        /// Whether the reply is a server-sent-event stream.
        stream: bool,
        /// The request's `max_tokens`.
        max_tokens: u32,
    },
}

/// One request to send: method, path, body and what to expect.
#[derive(Debug, Clone)]
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// Path and query, starting with `/`.
    pub path: String,
    /// JSON body, if any.
    pub body: Option<Bytes>,
    /// What the reply must be to count as a success.
    pub expect: Expect,
    /// `X-Session-ID`: the agent this request belongs to.
    pub session_id: Option<String>,
    /// Extra headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Keep the reply's text (bounded) in the record.
    pub keep_text: bool,
    /// Conversation turn, 1-based, recorded for cache-rate figures.
    pub turn: Option<u32>,
}

/// The path of the Messages API.
const MESSAGES_PATH: &str = "/v1/messages";

impl Request {
    /// The one place a request is assembled: no session, no extra header, no text kept.
    fn new(method: Method, path: String, body: Option<Bytes>, expect: Expect) -> Self {
        Self {
            method,
            path,
            body,
            expect,
            session_id: None,
            headers: Vec::new(),
            keep_text: false,
            turn: None,
        }
    }

    /// `POST /v1/messages` with the given body; streamed when `body.stream` is set.
    pub fn messages(body: &MessagesRequest) -> Self {
        // Serializing plain data structs with string keys cannot fail.
        let json = serde_json::to_vec(body).expect("MessagesRequest serializes");
        let expect = Expect::Message {
            stream: body.stream,
            max_tokens: body.max_tokens,
        };
        Self::new(
            Method::POST,
            MESSAGES_PATH.to_owned(),
            Some(Bytes::from(json)),
            expect,
        )
    }

    /// `POST path` with a JSON body; a Messages reply is expected when `path` is
    /// `/v1/messages` (with `stream` and `max_tokens` read from the body), any 2xx otherwise.
    pub fn post_json(path: impl Into<String>, body: &serde_json::Value) -> Self {
        let path = path.into();
        let expect = if path == MESSAGES_PATH {
            Expect::Message {
                stream: body
                    .get("stream")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false),
                max_tokens: body
                    .get("max_tokens")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0),
            }
        } else {
            Expect::Any
        };
        Self::new(
            Method::POST,
            path,
            Some(Bytes::from(body.to_string())),
            expect,
        )
    }

    /// A request without body (`GET`, `DELETE`, …); any 2xx is a success.
    pub fn bare(method: Method, path: impl Into<String>) -> Self {
        Self::new(method, path.into(), None, Expect::Any)
    }

    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self::bare(Method::GET, path)
    }

    /// Sets `X-Session-ID`.
    #[must_use]
    pub fn session(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Keeps the reply's text in the record.
    #[must_use]
    pub fn keep_text(mut self) -> Self {
        self.keep_text = true;
        self
    }

    /// Marks the conversation turn (1-based).
    #[must_use]
    pub fn turn(mut self, turn: u32) -> Self {
        self.turn = Some(turn);
        self
    }

    /// Whether the reply is expected as a server-sent-event stream.
    pub(crate) fn streamed(&self) -> bool {
        matches!(self.expect, Expect::Message { stream: true, .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_json_reads_stream_and_max_tokens() {
        let r = Request::post_json(
            MESSAGES_PATH,
            &serde_json::json!({"stream": true, "max_tokens": 7}),
        );
        assert_eq!(
            r.expect,
            Expect::Message {
                stream: true,
                max_tokens: 7
            }
        );
        assert_eq!(
            Request::post_json("/v1/messages/count_tokens", &serde_json::json!({})).expect,
            Expect::Any
        );
    }

    #[test]
    fn every_constructor_starts_plain() {
        let body = MessagesRequest::new("m", vec![], 3);
        for r in [
            Request::messages(&body),
            Request::post_json("/x", &serde_json::json!({})),
            Request::get("/health"),
        ] {
            assert!(r.session_id.is_none() && r.headers.is_empty());
            assert!(!r.keep_text && r.turn.is_none());
        }
        assert!(Request::get("/h").body.is_none());
    }
}
