//! What a response or a failure counts as: the [`Outcome`] class of a non-2xx status, and
//! [`Failure`], every way an exchange can go wrong, each with its class.

use std::time::Duration;

use crate::Outcome;
use crate::anthropic::ErrorEnvelope;
use crate::anthropic::sse::ParseError;
use crate::anthropic::stream::StreamError;

/// Why one exchange failed. Per-request failures are data: the client writes the class
/// ([`outcome`](Self::outcome)) and the message into the request's record and goes on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// The request could not be built (a path or header the URI or header grammar refuses).
    #[error("cannot build request: {0}")]
    Build(String),
    /// No TCP connection.
    #[error("tcp connect error: {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// No TCP connection within the connect timeout.
    #[error("tcp connect error: {addr}: no connection within {:.1} s", after.as_secs_f64())]
    ConnectTimeout {
        /// `host:port`.
        addr: String,
        /// The connect timeout.
        after: Duration,
    },
    /// The TLS handshake of an `https://` connection failed (certificate not trusted, name
    /// mismatch, no common protocol) or did not finish within the connect timeout.
    #[error("tls handshake failed: {addr}: {reason}")]
    Tls {
        /// `host:port`.
        addr: String,
        /// Why (rustls's error).
        reason: String,
    },
    /// The HTTP/1 handshake on a new connection failed.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The request was sent but no response head came back (closed or reset).
    #[error("{0}")]
    NoResponse(String),
    /// A response head larger than the bound (or with too many header fields).
    #[error("response head larger than {limit} bytes or with too many fields")]
    HeadTooLarge {
        /// The bound in bytes.
        limit: usize,
    },
    /// Bytes that are no HTTP/1 response head.
    #[error("response head is not HTTP: {0}")]
    BadHead(String),
    /// A body in a content coding that was not asked for (requests say
    /// `accept-encoding: identity`).
    #[error("body in content-encoding {0:?}, not asked for")]
    Encoding(String),
    /// A reply carrying the same message id as the previous reply on this worker's
    /// connection: the reply to an earlier request, not to this one — or a server that gives
    /// every reply the same id (a LiteLLM `mock_response` deployment answers
    /// `msg_013Zva2CMHLNnXjNJJKqJ2EF` each time), which the wire cannot tell apart.
    #[error(
        "reply repeats message id {id:?} of the previous reply on this connection: a stale reply, or a server whose message ids are not unique"
    )]
    StaleReply {
        /// The repeated id.
        id: String,
    },
    /// A response body ended in an error (reset, bad framing).
    #[error("body cut short: {0}")]
    BodyCut(String),
    /// A response body grew past the largest body read.
    #[error("body larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A 2xx body that is not a Messages reply.
    #[error("2xx body is not a message: {0}")]
    NotAMessage(serde_json::Error),
    /// A valid reply with zero output tokens although `max_tokens` was positive.
    #[error("{} with zero output tokens", if *streamed { "stream" } else { "2xx" })]
    ZeroOutput {
        /// Whether the reply was streamed.
        streamed: bool,
    },
    /// A stream body ended in an error (reset, bad chunk framing).
    #[error("stream cut short: {0}")]
    StreamCut(String),
    /// Bytes that are no event stream (an event too large, not UTF-8).
    #[error("invalid event stream: {0}")]
    EventStream(#[from] ParseError),
    /// Events that are no Messages stream (an error event, malformed data).
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// A stream with more events than the bound.
    #[error("stream longer than {limit} events")]
    StreamTooLong {
        /// The bound.
        limit: u64,
    },
    /// A stream that sent no byte for longer than the bound.
    #[error("stream idle for {:.1} s", after.as_secs_f64())]
    StreamIdle {
        /// The bound.
        after: Duration,
    },
    /// A stream that ended before `message_stop`.
    #[error("stream ended without message_stop")]
    StreamWithoutStop,
    /// No complete response within the request timeout.
    #[error("no complete response within {:.1} s", after.as_secs_f64())]
    Timeout {
        /// The request timeout.
        after: Duration,
    },
    /// A control request answered with a status other than 2xx.
    #[error("status {status}: {body}")]
    Status {
        /// The status.
        status: http::StatusCode,
        /// The head of the body.
        body: String,
    },
}

impl Failure {
    /// The class a request that failed this way is recorded under.
    pub(crate) fn outcome(&self) -> Outcome {
        match self {
            Self::Build(_) => Outcome::ClientError,
            Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::Tls { .. }
            | Self::Handshake(_)
            | Self::NoResponse(_) => Outcome::Connect,
            Self::Timeout { .. } | Self::StreamIdle { .. } => Outcome::Timeout,
            Self::HeadTooLarge { .. }
            | Self::BadHead(_)
            | Self::Encoding(_)
            | Self::StaleReply { .. }
            | Self::StreamTooLong { .. }
            | Self::BodyCut(_)
            | Self::BodyTooLarge { .. }
            | Self::NotAMessage(_)
            | Self::ZeroOutput { .. }
            | Self::StreamCut(_)
            | Self::EventStream(_)
            | Self::Stream(_)
            | Self::StreamWithoutStop
            | Self::Status { .. } => Outcome::Protocol,
        }
    }
}

/// The failure of a request that got no usable response head: `err` (a hyper or pool error)
/// is a head too large or not HTTP when hyper says so anywhere in its chain, else no response.
///
/// hyper tells a head too large apart only with its `server` feature
/// (`Error::is_parse_too_large`), which a client should not pull in: its message, "message
/// head is too large", is matched instead (`tests/hostile.rs` fails if it changes).
pub(crate) fn no_response(err: &(dyn std::error::Error + 'static), head_limit: usize) -> Failure {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && (h.is_parse() || h.is_parse_status())
        {
            let chain = error_chain(h);
            return if chain.contains("too large") {
                Failure::HeadTooLarge { limit: head_limit }
            } else {
                Failure::BadHead(chain)
            };
        }
        cause = e.source();
    }
    Failure::NoResponse(error_chain(err))
}

/// A `Retry-After` value as the contract allows it: whole seconds, at least 1 (`0` invites a
/// retry storm; the HTTP-date form is not used by this server family).
pub(crate) fn retry_after(value: &str) -> Option<Duration> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|s| *s >= 1)
        .map(Duration::from_secs)
}

/// Whether a status is a 2xx.
pub(crate) fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// The outcome class of a non-2xx reply.
///
/// A status in `graceful` is a graceful rejection only with `Retry-After` and the error
/// envelope; without them it falls back to its plain class (4xx client error, 5xx server error).
pub(crate) fn classify_failure(
    status: u16,
    has_retry_after: bool,
    has_envelope: bool,
    graceful: &[u16],
) -> Outcome {
    if graceful.contains(&status) && has_retry_after && has_envelope {
        Outcome::Rejected
    } else if (400..500).contains(&status) {
        Outcome::ClientError
    } else if status >= 500 {
        Outcome::ServerError
    } else {
        // 1xx/3xx: not a reply the Messages API gives.
        Outcome::Protocol
    }
}

/// What a non-2xx reply said, for the record: the envelope's type and message, or the head
/// of a body that is no envelope.
pub(crate) fn describe_status(
    status: u16,
    envelope: Option<&ErrorEnvelope>,
    body: &[u8],
) -> String {
    match envelope {
        Some(e) => format!("{status} {}: {}", e.error.kind, e.error.message),
        None => format!("{status} without error envelope: {}", truncated(body, 200)),
    }
}

/// The first `limit` bytes of `bytes` as text (invalid UTF-8 replaced).
pub(crate) fn truncated(bytes: &[u8], limit: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(limit)]).into_owned()
}

/// An error and its sources, joined with `: `.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graceful_rejection_needs_retry_after_and_envelope() {
        let g = [429];
        assert_eq!(classify_failure(429, true, true, &g), Outcome::Rejected);
        assert_eq!(classify_failure(429, false, true, &g), Outcome::ClientError);
        assert_eq!(classify_failure(429, true, false, &g), Outcome::ClientError);
        assert_eq!(classify_failure(503, true, true, &g), Outcome::ServerError);
        assert_eq!(
            classify_failure(503, true, true, &[429, 503]),
            Outcome::Rejected
        );
        assert_eq!(classify_failure(400, false, true, &g), Outcome::ClientError);
        assert_eq!(classify_failure(500, false, true, &g), Outcome::ServerError);
        assert_eq!(classify_failure(302, false, false, &g), Outcome::Protocol);
    }

    #[test]
    fn retry_after_is_whole_seconds_of_at_least_one() {
        assert_eq!(retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(retry_after("0"), None);
        assert_eq!(retry_after("1.5"), None);
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn failures_keep_their_messages_and_classes() {
        let f = Failure::Timeout {
            after: Duration::from_millis(1500),
        };
        assert_eq!(f.to_string(), "no complete response within 1.5 s");
        assert_eq!(f.outcome(), Outcome::Timeout);
        let f = Failure::ZeroOutput { streamed: true };
        assert_eq!(f.to_string(), "stream with zero output tokens");
        assert_eq!(f.outcome(), Outcome::Protocol);
        let f = Failure::EventStream(ParseError::TooLarge { limit: 16 });
        assert_eq!(
            f.to_string(),
            "invalid event stream: event larger than 16 bytes"
        );
        assert_eq!(Failure::Build("x".into()).outcome(), Outcome::ClientError);
        assert_eq!(Failure::NoResponse("x".into()).outcome(), Outcome::Connect);
    }
}
