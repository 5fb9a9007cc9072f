//! One record per request sent, whatever happened: [`RequestResult`] and its [`Outcome`] class.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::connection::ConnectionUse;
use super::tokens::TokenTiming;
use super::truth::TimingTruth;
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
    /// No complete response within the request timeout, or a stream idle for longer than
    /// [`ResponseLimits::stream_idle`](crate::ResponseLimits::stream_idle).
    Timeout,
    /// No HTTP response at all: refused, reset or closed before a status line.
    Connect,
    /// A response that breaks the protocol: a head that is not HTTP or too large, a body cut
    /// short or too large, invalid JSON or SSE, an event or a stream past its bound, a stream
    /// without `message_stop`, an `event: error` mid-stream, 200 with zero output tokens, an
    /// unasked-for content coding, a reply repeating the previous reply's id.
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
    /// When the first token arrived: the first `content_block_delta` carrying text of a
    /// stream. `None` for a reply that did not stream: its body arrives whole, and its arrival
    /// is not a first token.
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
    /// Arrival times of the stream's content deltas, folded in bounded memory.
    pub tokens: TokenTiming,
    /// The connection the request went on and what reached it, for requests sent on a
    /// worker's own connection; `None` through the shared pool.
    pub connection: Option<ConnectionUse>,
    /// The harness's timing error against the server's write stamps, in self-test mode
    /// ([`StressConfig::timing_truth`](crate::StressConfig::timing_truth)) only.
    pub truth: Option<Box<TimingTruth>>,
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
            tokens: TokenTiming::default(),
            connection: None,
            truth: None,
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

    /// Records the arrival at `at` of a content delta of a streamed reply: the first sets
    /// [`first_token_at`](Self::first_token_at), later ones a gap in [`tokens`](Self::tokens);
    /// a gap longer than `stall` counts as a stall.
    ///
    /// Time: O(1); memory stays bounded however long the stream.
    pub fn delta_arrived(&mut self, at: Instant, stall: Duration) {
        if self.tokens.arrived(at, stall) {
            self.first_token_at = Some(at);
        }
    }

    /// Time to first token from the actual start; `None` for a reply that did not stream.
    pub fn ttft(&self) -> Option<Duration> {
        self.streamed_first_token()
            .map(|t| t.saturating_duration_since(self.started_at))
    }

    /// Time to first token from the **intended** start (coordinated omission corrected in paced
    /// runs; equal to [`ttft`](Self::ttft) in a closed loop).
    pub fn corrected_ttft(&self) -> Option<Duration> {
        self.streamed_first_token()
            .map(|t| t.saturating_duration_since(self.scheduled_at))
    }

    /// Time per output token after the first: `(end − first token) / (output_tokens − 1)`, with
    /// `output_tokens` from the reply's usage (token-accurate whatever the number of deltas).
    /// `None` for a reply that did not stream, or without at least two output tokens.
    pub fn tpot(&self) -> Option<Duration> {
        let first = self.streamed_first_token()?;
        let tokens = self.usage?.output_tokens;
        if tokens < 2 {
            return None;
        }
        let rest = self.finished_at.saturating_duration_since(first);
        // tokens >= 2, so the divisor is >= 1; u32 saturation only for absurd counts.
        Some(rest / u32::try_from(tokens - 1).unwrap_or(u32::MAX))
    }

    /// The first token's arrival, for a streamed reply only.
    fn streamed_first_token(&self) -> Option<Instant> {
        // A reply that did not stream arrives whole: there is no first token to time.
        self.first_token_at.filter(|_| self.streamed)
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
