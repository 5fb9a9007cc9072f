//! [`Agent`]: what a workload step works with — an identity, a growing conversation, and a
//! `send` that records every request exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::anthropic::{Message, MessagesRequest};
use crate::client::Conn;
use crate::{Client, Outcome, Request, RequestResult};

/// Where records go: a run keeps them all, or folds them into fixed-size aggregates.
pub(crate) trait Sink: Send + Sync {
    /// Takes one record; a sink that keeps records clones it, one that folds it does not.
    fn record(&self, result: &RequestResult);
}

/// Live counts of a run, readable while it runs (progress lines).
#[derive(Debug, Default)]
pub struct Tally {
    sent: AtomicU64,
    recorded: AtomicU64,
    errors: AtomicU64,
    rejected: AtomicU64,
}

impl Tally {
    /// Requests handed to the client so far.
    pub fn sent(&self) -> u64 {
        // Relaxed: independent counters read for display and for the final sent == recorded
        // check, which happens after every worker has been joined.
        self.sent.load(Ordering::Relaxed)
    }

    /// Records written so far.
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    /// Records counted as errors so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Graceful rejections so far.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

/// What every agent of a run shares.
pub(crate) struct RunShared {
    pub(crate) client: Client,
    pub(crate) sink: Arc<dyn Sink>,
    pub(crate) tally: Arc<Tally>,
    pub(crate) model: String,
    /// Whether agents' turns ask for a stream by default.
    pub(crate) stream: bool,
    pub(crate) deadline: Instant,
}

impl RunShared {
    fn record(&self, result: &RequestResult) {
        let t = &self.tally;
        t.recorded.fetch_add(1, Ordering::Relaxed);
        if result.is_error() {
            t.errors.fetch_add(1, Ordering::Relaxed);
        }
        if result.outcome == Outcome::Rejected {
            t.rejected.fetch_add(1, Ordering::Relaxed);
        }
        self.sink.record(result);
    }
}

impl std::fmt::Debug for RunShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunShared")
            .field("base_url", &self.client.base_url())
            .field("tally", &self.tally)
            .finish_non_exhaustive()
    }
}

/// One simulated agent (or anonymous worker) of a run.
///
/// A workload step receives the agent, sends through it, and hands it back. Every request
/// sent through [`send`](Self::send) is recorded exactly once, even when the run is cut short
/// at its deadline (the record then says so).
#[derive(Debug)]
pub struct Agent {
    index: usize,
    id: String,
    session: bool,
    conversation: Vec<Message>,
    turns: u32,
    /// `max_tokens` of the requests [`send_turn`](Self::send_turn) builds.
    pub max_tokens: u32,
    /// Whether [`send_turn`](Self::send_turn) asks for a stream: the harness's
    /// [`StressConfig::stream`](crate::StressConfig::stream) (on by default), as real clients
    /// stream.
    pub stream: bool,
    scheduled: Option<Instant>,
    /// The agent's own keep-alive connection (one request in flight at a time).
    conn: Conn,
    run: Arc<RunShared>,
}

impl Agent {
    pub(crate) fn new(index: usize, id: String, session: bool, run: Arc<RunShared>) -> Self {
        Self {
            index,
            id,
            session,
            conversation: Vec::new(),
            turns: 0,
            max_tokens: 50,
            stream: run.stream,
            scheduled: None,
            conn: Conn::new(),
            run,
        }
    }

    /// The agent's id; also its `X-Session-ID` when it is a session agent.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Position among the run's agents (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The conversation so far (user and assistant turns, alternating).
    pub fn conversation(&self) -> &[Message] {
        &self.conversation
    }

    /// Completed turns of the current conversation.
    pub fn turns(&self) -> u32 {
        self.turns
    }

    /// Starts a new conversation.
    pub fn reset_conversation(&mut self) {
        self.conversation.clear();
        self.turns = 0;
    }

    /// Whether the run's deadline has passed (a long workload should stop then).
    pub fn deadline_passed(&self) -> bool {
        Instant::now() >= self.run.deadline
    }

    /// Sleeps for `d` (think time), never past the run's deadline.
    pub async fn think(&self, d: Duration) {
        let until = super::later(Instant::now(), d).min(self.run.deadline);
        tokio::time::sleep_until(until.into()).await;
    }

    pub(crate) fn schedule(&mut self, at: Instant) {
        self.scheduled = Some(at);
    }

    /// Sends `request` for this agent and records it; returns a copy of the record.
    ///
    /// The first request after the harness scheduled this step is timed from the step's
    /// intended start (open-loop pacing); later ones from their actual start.
    pub async fn send(&mut self, mut request: Request) -> RequestResult {
        if self.session && request.session_id.is_none() {
            request.session_id = Some(self.id.clone());
        }
        let scheduled = self.scheduled.take().unwrap_or_else(Instant::now);
        self.run.tally.sent.fetch_add(1, Ordering::Relaxed);
        let mut guard = InFlight {
            run: &self.run,
            pending: Some(RequestResult::pending(scheduled, Instant::now())),
        };
        if let Some(p) = guard.pending.as_mut() {
            p.agent_id = request.session_id.clone();
            p.turn = request.turn;
        }
        let result = self
            .run
            .client
            .send_on(&mut self.conn, &request, scheduled)
            .await;
        guard.pending = None;
        self.run.record(&result);
        result
    }

    /// Sends the next user turn of the conversation (`POST /v1/messages` with the whole
    /// history, streamed when [`stream`](Self::stream) is set) and, on success, appends the
    /// reply (its text is kept, bounded by the harness's `text_limit`, streamed or not); on
    /// failure the user turn is dropped so the conversation stays alternating.
    pub async fn send_turn(&mut self, text: impl Into<String>) -> RequestResult {
        self.conversation.push(Message::user(text));
        let mut body = MessagesRequest::new(
            self.run.model.clone(),
            self.conversation.clone(),
            self.max_tokens,
        );
        body.stream = self.stream;
        let request = Request::messages(&body).keep_text().turn(self.turns + 1);
        let result = self.send(request).await;
        if result.outcome == Outcome::Success {
            let reply = result.text.clone().unwrap_or_default();
            self.conversation.push(Message::assistant(reply));
            self.turns += 1;
        } else {
            self.conversation.pop();
        }
        result
    }
}

/// Records a request that was sent but whose future was dropped (the run was cut at its hard
/// deadline), so that `sent == recorded` holds whatever happens.
struct InFlight<'a> {
    run: &'a RunShared,
    pending: Option<RequestResult>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(mut record) = self.pending.take() {
            record.finished_at = Instant::now();
            record.outcome = Outcome::Timeout;
            record.error = Some("cancelled: the run ended before a response".to_owned());
            self.run.record(&record);
        }
    }
}
