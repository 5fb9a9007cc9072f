//! One record per request sent, whatever happened: [`RequestResult`] and its [`Outcome`] class.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::anthropic::Usage;

/// What became of one request.
///
/// The seed's "error rate" counts every class but [`Success`](Outcome::Success) and
/// [`Rejected`](Outcome::Rejected); graceful rejections are counted apart as the rejection rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 2xx with a valid message, or a stream that ended in `message_stop`.
    Success,
    /// A graceful rejection: 429 (or a configured graceful status) with `Retry-After` and the
    /// error envelope.
    Rejected,
    /// Any other 4xx, including a 429 that lacks `Retry-After` or the envelope.
    ClientError,
    /// 5xx that is not a configured graceful rejection.
    ServerError,
    /// No complete response within the request timeout.
    Timeout,
    /// No HTTP response at all: refused, reset or closed before a status line.
    Connect,
    /// A response that breaks the protocol: invalid JSON or SSE, a stream without
    /// `message_stop`, an `event: error` mid-stream, 200 with zero output tokens.
    Protocol,
}

impl Outcome {
    /// Every class, in report order.
    pub const ALL: [Self; 7] = [
        Self::Success,
        Self::Rejected,
        Self::ClientError,
        Self::ServerError,
        Self::Timeout,
        Self::Connect,
        Self::Protocol,
    ];

    /// Whether this class counts toward the error rate (everything but success and graceful
    /// rejection).
    pub fn is_error(self) -> bool {
        !matches!(self, Self::Success | Self::Rejected)
    }

    /// The class's name as written in reports (`success`, `rejected`, `client_error`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Rejected => "rejected",
            Self::ClientError => "client_error",
            Self::ServerError => "server_error",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Protocol => "protocol",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The record of one request: timings, status, outcome class and what the reply said.
///
/// Timestamps are [`Instant`]s; reports express them relative to the run's start. Derived
/// durations are methods.
#[derive(Debug, Clone)]
pub struct RequestResult {
    /// When the request was meant to start (open-loop pacing); equals `started_at` in a
    /// closed loop.
    pub scheduled_at: Instant,
    /// When the request was handed to the connection.
    pub started_at: Instant,
    /// When the response head arrived, if it did.
    pub first_byte_at: Option<Instant>,
    /// When the first token arrived: the first `content_block_delta` of a stream, or the
    /// whole body of a non-streamed reply.
    pub first_token_at: Option<Instant>,
    /// When the request ended, whatever the ending.
    pub finished_at: Instant,
    /// HTTP status; 0 when there was no HTTP response.
    pub status: u16,
    /// The outcome class.
    pub outcome: Outcome,
    /// Why the request failed, for every class but success.
    pub error: Option<String>,
    /// `Retry-After`, when the response carried a valid one.
    pub retry_after: Option<Duration>,
    /// The error envelope's `error.type`, when the body was an envelope.
    pub error_type: Option<String>,
    /// Token accounting of a successful reply.
    pub usage: Option<Usage>,
    /// The agent this request was sent for (`X-Session-ID`), if any.
    pub agent_id: Option<String>,
    /// The conversation turn (1-based) when sent by an agent workload.
    pub turn: Option<u32>,
    /// Whether the reply was streamed.
    pub streamed: bool,
    /// The reply's text, bounded, when the caller asked to keep it.
    pub text: Option<String>,
    /// Number of stream chunks (`content_block_delta` events) received.
    pub chunks: u32,
    /// The connection the request went on and what reached it, for requests sent on a
    /// worker's own connection; `None` through the shared pool.
    pub connection: Option<ConnectionUse>,
}

/// How one request used its connection: new or reused, and how much of the request and the
/// response crossed it. Says which side lost a request that got no response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionUse {
    /// Whether the connection had carried earlier requests.
    pub reused: bool,
    /// How long the connection had been idle before this request (zero when new).
    pub idle_before: Duration,
    /// How many requests the connection had carried before this one.
    pub requests_before: u32,
    /// Whether the connection was established (TCP, TLS, HTTP/1 handshake).
    pub connected: bool,
    /// Request bytes handed to the operating system (head and body; TLS records over https).
    pub request_bytes: u64,
    /// Whether the request was written whole.
    pub request_written: bool,
    /// Response bytes received while this request was in flight.
    pub response_bytes: u64,
    /// When the request first went on a reused connection that closed before a byte of it
    /// was written, and was then sent once more on a new connection: why the first try
    /// failed.
    pub moved_from_reused: Option<String>,
}

/// How much of a request reached the server's side of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Not a byte: the server never had it.
    Never,
    /// Part of it (the server stopped reading, or the connection broke mid-request).
    Partly,
    /// All of it: the server had it.
    Whole,
}

impl ConnectionUse {
    /// How much of the request was written.
    pub fn delivery(&self) -> Delivery {
        if self.request_written {
            Delivery::Whole
        } else if self.request_bytes > 0 {
            Delivery::Partly
        } else {
            Delivery::Never
        }
    }

    /// The connection in words: `a new connection`, or `a connection reused after 4.1 s idle
    /// (its 7th request)`.
    pub fn describe_connection(&self) -> String {
        if !self.reused {
            return "a new connection".to_owned();
        }
        let nth = self.requests_before.saturating_add(1);
        format!(
            "a connection reused after {:.1} s idle (its {nth}{} request)",
            self.idle_before.as_secs_f64(),
            ordinal_suffix(nth)
        )
    }

    /// Which side lost a request that got no (complete) response, in words; `closed` when
    /// the connection closed (or was reset) rather than staying silent.
    pub fn verdict(&self, closed: bool) -> String {
        let conn = self.describe_connection();
        let received = match self.response_bytes {
            0 => "no response byte".to_owned(),
            n => format!("{n} response bytes"),
        };
        match self.delivery() {
            Delivery::Whole if closed && self.response_bytes == 0 && self.reused => format!(
                "a request written whole on {conn}, {received}: the server had it and closed \
                 the connection without answering (a keep-alive close crossing the request \
                 looks like this: such a server drops the request unread)"
            ),
            Delivery::Whole if closed && self.response_bytes == 0 => format!(
                "a request written whole on {conn}, {received}: the server had it and closed \
                 the connection without answering"
            ),
            Delivery::Whole => {
                format!("a request written whole on {conn}, {received}: the server had it")
            }
            Delivery::Partly => format!(
                "a request written only in part ({} bytes) on {conn}, {received}: the server \
                 had part of it",
                self.request_bytes
            ),
            Delivery::Never if !self.connected => {
                "no connection was established, the request was never written: the server \
                 never had it"
                    .to_owned()
            }
            Delivery::Never => {
                format!("a request never written on {conn}, {received}: the server never had it")
            }
        }
    }
}

fn ordinal_suffix(n: u32) -> &'static str {
    match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    }
}

impl RequestResult {
    /// A record with no response yet: every optional field empty, outcome `Connect`, status 0.
    /// The client fills it in as the request progresses.
    pub fn pending(scheduled_at: Instant, started_at: Instant) -> Self {
        Self {
            scheduled_at,
            started_at,
            first_byte_at: None,
            first_token_at: None,
            finished_at: started_at,
            status: 0,
            outcome: Outcome::Connect,
            error: None,
            retry_after: None,
            error_type: None,
            usage: None,
            agent_id: None,
            turn: None,
            streamed: false,
            text: None,
            chunks: 0,
            connection: None,
        }
    }

    /// Service time: from the actual start to the end (what a closed-loop tool reports).
    pub fn latency(&self) -> Duration {
        self.finished_at.saturating_duration_since(self.started_at)
    }

    /// Latency from the **intended** start: corrected for coordinated omission in paced runs.
    pub fn corrected_latency(&self) -> Duration {
        self.finished_at
            .saturating_duration_since(self.scheduled_at)
    }

    /// How late the generator started the request (intended vs actual start).
    pub fn scheduler_lag(&self) -> Duration {
        self.started_at.saturating_duration_since(self.scheduled_at)
    }

    /// Time to first token, from the actual start.
    pub fn ttft(&self) -> Option<Duration> {
        self.first_token_at
            .map(|t| t.saturating_duration_since(self.started_at))
    }

    /// Mean time per output token after the first (token-accurate, from `usage.output_tokens`,
    /// not per chunk). `None` for a non-streamed reply, or without at least two output tokens
    /// and a first token time.
    pub fn inter_token_latency(&self) -> Option<Duration> {
        // A non-streamed reply arrives whole: there is no time between its tokens to measure.
        if !self.streamed {
            return None;
        }
        let first = self.first_token_at?;
        let tokens = self.usage?.output_tokens;
        if tokens < 2 {
            return None;
        }
        let rest = self.finished_at.saturating_duration_since(first);
        // tokens >= 2, so the divisor is >= 1; u32 saturation only for absurd counts.
        Some(rest / u32::try_from(tokens - 1).unwrap_or(u32::MAX))
    }

    /// Whether the reply reused any cached prompt tokens.
    pub fn cache_hit(&self) -> bool {
        self.usage.is_some_and(|u| u.cache_read_input_tokens > 0)
    }

    /// Whether the status is one a server uses to refuse for capacity and ask the client to
    /// come back later (429, 503, 529), graceful or not.
    pub fn has_rejection_status(&self) -> bool {
        matches!(self.status, 429 | 503 | 529)
    }

    /// Whether this request counts toward the error rate.
    pub fn is_error(&self) -> bool {
        self.outcome.is_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_use_says_which_side_had_the_request() {
        let mut u = ConnectionUse {
            reused: true,
            idle_before: Duration::from_millis(4_120),
            requests_before: 6,
            connected: true,
            request_bytes: 900,
            request_written: true,
            ..ConnectionUse::default()
        };
        assert_eq!(
            u.verdict(false),
            "a request written whole on a connection reused after 4.1 s idle (its 7th \
             request), no response byte: the server had it"
        );
        u.request_written = false;
        assert_eq!(u.delivery(), Delivery::Partly);
        assert!(u.verdict(false).ends_with("the server had part of it"));
        u.request_bytes = 0;
        assert_eq!(u.delivery(), Delivery::Never);
        assert!(u.verdict(true).ends_with("the server never had it"));
        let nths: Vec<String> = [0, 1, 2, 10, 11, 20, 22, 102, 110]
            .iter()
            .map(|&before| {
                ConnectionUse {
                    reused: true,
                    requests_before: before,
                    ..ConnectionUse::default()
                }
                .describe_connection()
            })
            .map(|d| d.rsplit("(its ").next().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            nths,
            [
                "1st request)",
                "2nd request)",
                "3rd request)",
                "11th request)",
                "12th request)",
                "21st request)",
                "23rd request)",
                "103rd request)",
                "111th request)"
            ]
        );
    }
}
