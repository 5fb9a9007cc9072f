//! `POST /v1/messages` and `POST /v1/messages/count_tokens`.
//!
//! The order of work is the contract's: session id (400 before anything), body size (413),
//! validation (400), tokenizing and agent identity, rate limits (429 `rate_limit_error`),
//! admission to the pool (429/503/529 `overloaded_error` at once), the engine's wait queue
//! (429 when full), generation, and completion, where the reservation becomes the agent's cache.

use std::error::Error as StdError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::CONTENT_LENGTH;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::agents::{Admission, Refusal};
use super::app::{App, Failure};
use super::engine::Job;
use super::generate::{self, Reply};
use super::personality::{self, Personality};
use super::response::{ApiError, Body, json};
use super::stats::{Ending, bump};
use super::stream::{self, Finish, StreamPlan};
use super::tokenizer::{Prompt, hash_tokens};
use super::validate::{Endpoint, ParsedRequest, parse_request, session_agent};
use semantic_stress::anthropic::{MessagesResponse, Role, TextBlock, Usage};

/// Bytes of an oversized body read and discarded before answering 413, so that the client
/// gets the answer instead of a reset.
const DRAIN_CAP: usize = 64 << 20;
/// How long an oversized body is drained at most.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// `POST /v1/messages`.
pub(crate) async fn messages<B>(app: &App, req: Request<B>) -> Result<Response<Body>, Failure>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let counters = &app.inner.counters;
    // Counting only; `Relaxed` suffices.
    let n = counters.messages_received.fetch_add(1, Ordering::Relaxed) + 1;
    let faults = &app.config().faults;
    if let Some(every) = faults.drop_every
        && n.is_multiple_of(every)
    {
        bump(&counters.connections_dropped);
        return Err(Failure::Drop);
    }
    if let Some(bytes) = faults.leak_bytes {
        app.leak(bytes);
    }
    let served = match app.config().personality.kind {
        Personality::Semantic => serve(app, req).await,
        Personality::AgentMemory => personality::agent_memory::messages(app, req).await,
        Personality::LlamaCpp => personality::llamacpp::messages(app, req).await,
        Personality::Vllm => personality::vllm::messages(app, req).await,
    };
    served.map_err(|e| {
        let ending = match (e.kind, e.status.as_u16()) {
            ("rate_limit_error", _) => Ending::RateLimited,
            ("overloaded_error", _) => Ending::Rejected,
            (_, 400..=499) => Ending::Invalid,
            _ => Ending::ServerError,
        };
        counters.record(ending, e.status.as_u16());
        Failure::Api(e)
    })
}

async fn serve<B>(app: &App, req: Request<B>) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    let session = match parts.headers.get("x-session-id") {
        Some(v) => Some(session_agent(v.as_bytes()).map_err(ApiError::invalid)?),
        None => None,
    };
    let bytes = read_body(app, &parts, body).await?;
    let parsed = parse_request(&bytes, Endpoint::Messages).map_err(ApiError::invalid)?;
    let prompt = tokenize(&parsed);
    let agent = session.unwrap_or_else(|| prompt.anonymous_agent_id());
    check_rate(app, &agent)?;
    let config = app.config();
    if let Some(step) = config.faults.degrade_step {
        let served = super::stats::read(&app.inner.counters.completed);
        let served = u32::try_from(served).unwrap_or(u32::MAX);
        tokio::time::sleep(step.saturating_mul(served)).await;
    }
    let admitted = app
        .caches()
        .admit(&agent, &prompt.tokens, parsed.max_tokens);
    let admission = match admitted {
        Ok(a) => a,
        Err(Refusal::TooLarge { need, limit }) => {
            return Err(ApiError::invalid(format!(
                "prompt ({} tokens) + max_tokens ({}) needs {need} cache blocks, more than this server ever admits ({limit} of {} blocks); lower max_tokens",
                prompt.tokens.len(),
                parsed.max_tokens,
                config.geometry().total_blocks
            )));
        }
        Err(Refusal::Exhausted { need, used, limit }) => {
            if config.faults.late_reject {
                return late_reject(app, parsed, &prompt).await;
            }
            if config.faults.crash_on_exhaustion {
                return Err(ApiError::internal("internal error: block pool exhausted"));
            }
            return Err(ApiError::overloaded(
                config.admission.reject_status,
                format!(
                    "block pool exhausted: the request needs {need} blocks, {used} of {} are in use and admission stops at {limit}, even after evicting idle agents; retry later",
                    config.geometry().total_blocks
                ),
                config.admission.retry_after,
            ));
        }
    };
    let held = Held::new(app, admission);
    let (context, canary) = if config.faults.cross_agent_bleed {
        app.caches().other_context(&agent)
    } else {
        None
    }
    .unwrap_or_else(|| (hash_tokens(&prompt.tokens), prompt.last_canary.clone()));
    let reply = generate::reply(
        context,
        config.engine.seed,
        canary.as_deref(),
        parsed.max_tokens,
    );
    let reused = held.reused();
    // Token counts (at most a body's length, and output at most 65536) fit every integer type
    // used here, so these casts are lossless.
    let usage = Usage {
        input_tokens: prompt.tokens.len() as u64,
        output_tokens: reply.words.len() as u64,
        cache_read_input_tokens: reused as u64,
        cache_creation_input_tokens: (prompt.tokens.len() - reused) as u64,
    };
    let progress = if config.is_instant() {
        None
    } else {
        let job = Job {
            prefill_tokens: prompt.tokens.len() - reused,
            output_tokens: reply.words.len() as u32,
            context_tokens: prompt.tokens.len(),
        };
        match app.inner.engine.submit(job) {
            Ok(rx) => Some(rx),
            Err(full) => {
                held.release();
                return Err(ApiError::overloaded(
                    config.admission.reject_status,
                    format!("engine queue full ({} waiting); retry later", full.waiting),
                    config.admission.retry_after,
                ));
            }
        }
    };
    let id = format!("msg_{:016x}", app.next_id());
    if parsed.stream {
        let plan = StreamPlan {
            id,
            model: parsed.model,
            usage,
            reply,
            progress,
        };
        return Ok(stream::respond(app, plan, Finish::Commit { held, prompt }));
    }
    if let Some(mut rx) = progress {
        let total = usage.output_tokens as u32;
        if rx.wait_for(|n| *n >= total).await.is_err() {
            return Err(ApiError::internal(
                "the server stopped before the reply was complete",
            ));
        }
    }
    let stop_reason = reply.stop_reason.as_str().to_owned();
    let text = held.complete(prompt, &reply, &usage);
    app.inner
        .counters
        .record(Ending::Completed { stream: false }, 200);
    Ok(json(
        StatusCode::OK,
        &MessagesResponse {
            id,
            kind: "message".to_owned(),
            role: Role::Assistant,
            content: vec![TextBlock::new(text)],
            model: parsed.model,
            stop_reason: Some(stop_reason),
            stop_sequence: None,
            usage,
        },
    ))
}

/// Fault `late-reject`: run a whole generation without a reservation, then fail.
async fn late_reject(
    app: &App,
    parsed: ParsedRequest,
    prompt: &Prompt,
) -> Result<Response<Body>, ApiError> {
    let config = app.config();
    let guard = InFlight::new(app);
    let reply = generate::reply(
        hash_tokens(&prompt.tokens),
        config.engine.seed,
        None,
        parsed.max_tokens,
    );
    let job = Job {
        prefill_tokens: prompt.tokens.len(),
        output_tokens: reply.words.len() as u32,
        context_tokens: prompt.tokens.len(),
    };
    let progress = if config.is_instant() {
        None
    } else {
        app.inner.engine.submit(job).ok()
    };
    let usage = Usage {
        input_tokens: prompt.tokens.len() as u64,
        ..Usage::default()
    };
    if parsed.stream {
        let plan = StreamPlan {
            id: format!("msg_{:016x}", app.next_id()),
            model: parsed.model,
            usage,
            reply,
            progress,
        };
        return Ok(stream::respond(
            app,
            plan,
            Finish::LateReject { _guard: guard },
        ));
    }
    if let Some(mut rx) = progress {
        let total = job.output_tokens;
        let _ = rx.wait_for(|n| *n >= total).await;
    }
    drop(guard);
    let error = ApiError::overloaded(
        config.admission.reject_status,
        "block pool exhausted after generation",
        config.admission.retry_after,
    );
    app.inner
        .counters
        .record(Ending::LateRejected, error.status.as_u16());
    Ok(error.into_response(config.faults.no_retry_after))
}

/// `POST /v1/messages/count_tokens`.
pub(crate) async fn count_tokens<B>(app: &App, req: Request<B>) -> Result<Response<Body>, Failure>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    let bytes = read_body(app, &parts, body).await?;
    let parsed = parse_request(&bytes, Endpoint::CountTokens).map_err(ApiError::invalid)?;
    let n = tokenize(&parsed).tokens.len();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"input_tokens": n}),
    ))
}

pub(crate) fn tokenize(parsed: &ParsedRequest) -> Prompt {
    let mut prompt = Prompt::default();
    if let Some(system) = &parsed.system {
        prompt.push_segment(None, system);
    }
    for (role, text) in &parsed.messages {
        prompt.push_segment(Some(*role), text);
    }
    prompt
}

fn check_rate(app: &App, agent: &str) -> Result<(), ApiError> {
    let Some(limiter) = &app.inner.limiter else {
        return Ok(());
    };
    let checked = limiter
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .check(Some(agent), Instant::now());
    checked.map_err(|hit| {
        ApiError::rate_limited(
            format!(
                "{} rate limit of {} requests per minute exceeded",
                hit.scope, hit.limit
            ),
            hit.retry_after,
        )
    })
}

/// Reads the whole body, or answers 413 past the limit (draining the rest, within bounds, so
/// the client reads the answer instead of a reset).
pub(crate) async fn read_body<B>(app: &App, parts: &Parts, body: B) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let limit = app.config().http.max_body_bytes;
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_CAP as u64) {
        return Err(ApiError::too_large(limit));
    }
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    let mut seen = 0usize;
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) if seen > limit => break,
            Err(_) => return Err(ApiError::invalid("timed out reading the request body")),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ApiError::invalid(format!(
                    "cannot read the request body: {}",
                    e.into()
                )));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            buf.extend_from_slice(&data);
        } else if seen > DRAIN_CAP {
            break;
        }
    }
    if seen > limit {
        return Err(ApiError::too_large(limit));
    }
    Ok(buf.freeze())
}

/// Counts a messages request in flight for as long as it lives.
#[derive(Debug)]
pub(crate) struct InFlight(App);

impl InFlight {
    fn new(app: &App) -> Self {
        bump(&app.inner.counters.in_flight);
        Self(app.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // A gauge read for reporting only.
        self.0
            .inner
            .counters
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// An admitted request's reservation: released if dropped before completion (the client went
/// away or the request failed), so every block always has a holder.
#[derive(Debug)]
pub(crate) struct Held {
    flight: InFlight,
    admission: Option<Admission>,
}

impl Held {
    fn new(app: &App, admission: Admission) -> Self {
        Self {
            flight: InFlight::new(app),
            admission: Some(admission),
        }
    }

    fn reused(&self) -> usize {
        self.admission.as_ref().map_or(0, |a| a.reused)
    }

    /// Frees the reservation after a refusal (not counted as a cancellation).
    fn release(mut self) {
        if let Some(a) = self.admission.take() {
            self.flight.0.caches().release(a);
        }
    }

    /// Makes the reservation the agent's cache of prompt + reply; counts the tokens; returns
    /// the reply's text.
    pub(crate) fn complete(mut self, mut prompt: Prompt, reply: &Reply, usage: &Usage) -> String {
        let text = reply.text();
        prompt.push_segment(Some(Role::Assistant), &text);
        let app = &self.flight.0;
        if let Some(a) = self.admission.take() {
            app.caches().complete(a, prompt.tokens, prompt.last_canary);
        }
        let c = &app.inner.counters;
        // Sums read for reporting only.
        c.input_tokens
            .fetch_add(usage.input_tokens, Ordering::Relaxed);
        c.output_tokens
            .fetch_add(usage.output_tokens, Ordering::Relaxed);
        c.cache_read_tokens
            .fetch_add(usage.cache_read_input_tokens, Ordering::Relaxed);
        c.cache_creation_tokens
            .fetch_add(usage.cache_creation_input_tokens, Ordering::Relaxed);
        text
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(a) = self.admission.take() {
            self.flight.0.caches().release(a);
            bump(&self.flight.0.inner.counters.cancelled);
        }
    }
}
