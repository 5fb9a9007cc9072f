//! agent-memory's `POST /v1/messages`: agent id from `X-Session-ID` or a hash of the prompt,
//! usage with a hit flag, no cancellation, and pool exhaustion answered 503 `{"detail"}`
//! without `Retry-After` — before the generation for a cold short prompt, else after it, when
//! the finished sequence is stored, failing the whole batch.
//!
//! Citations are to yshk-mxim/agent-memory @ d7d7dea3, under `src/agent_memory/`.

use std::error::Error as StdError;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};

use super::store::Exhausted;
use crate::app::App;
use crate::engine::Job;
use crate::generate::{self, Reply};
use crate::personality::stream::{Follow, Step, send, sse_response};
use crate::personality::{Incoming, incoming};
use crate::response::{ApiError, Body, json as json_response};
use crate::stats::Ending;
use crate::tokenizer::{Prompt, hash_tokens};
use semantic_stress::anthropic::{Role, Usage};

/// 503 `{"detail": "Server capacity exceeded: …"}` with no `Retry-After`: FastAPI's default
/// for the route's `HTTPException` (`adapters/inbound/anthropic_adapter.py:830-835`).
pub(crate) fn capacity_exceeded(e: &Exhausted) -> ApiError {
    let detail = format!("Server capacity exceeded: {}", e.0);
    ApiError::overloaded(503, detail.clone(), std::time::Duration::ZERO)
        .without_retry_after()
        .with_body(json!({ "detail": detail }))
}

/// One generation, from submission to its stored cache.
struct Generation {
    app: App,
    agent: String,
    prompt: Prompt,
    reply: Reply,
}

impl Generation {
    fn store(&self) -> std::sync::MutexGuard<'_, super::Store> {
        super::store(&self.app)
    }

    /// Submits to the pool and the engine; `Err` if a cold placeholder does not fit.
    fn start(&self) -> Result<Follow, Exhausted> {
        let n = self.prompt.tokens.len();
        let reused = {
            let mut store = self.store();
            let reused = store.lookup(&self.agent, &self.prompt.tokens).unwrap_or(0);
            store.submit(&self.agent, n)?;
            reused
        };
        let total = self.reply.words.len();
        let rx = (!self.app.config().is_instant()).then(|| {
            let job = Job {
                prefill_tokens: n - reused,
                // Replies are at most 65536 tokens.
                output_tokens: total as u32,
                context_tokens: n,
            };
            // The queue is unbounded: submission cannot be refused.
            self.app.inner.engine.submit(job).ok()
        });
        Ok(Follow::new(rx.flatten(), total))
    }

    /// Stores the finished sequence (`save`: the client is still there). On exhaustion every
    /// other sequence of the batch fails too (`application/scheduler.py:357-365`).
    fn finalize(&self, save: bool) -> Result<(), Exhausted> {
        let mut sequence = self.prompt.clone();
        sequence.push_segment(Some(Role::Assistant), &self.reply.text());
        let stored = self.store().finalize(&self.agent, sequence.tokens, save);
        if stored.is_err() {
            self.app.inner.engine.fail_active();
        }
        stored
    }
}

/// The batch this sequence ran in was rejected by another sequence's exhaustion.
fn batch_rejected() -> Exhausted {
    Exhausted("the batch was rejected when the pool ran out of blocks".to_owned())
}

/// `POST /v1/messages` of agent-memory.
pub(crate) async fn messages<B>(app: &App, req: Request<B>) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let Incoming {
        parts,
        parsed,
        prompt,
    } = incoming(app, req).await.map_err(unprocessable)?;
    // `anthropic_adapter.py:652-658`; the original does not validate the header's value.
    let agent = match parts.headers.get("x-session-id") {
        Some(v) => format!("sess_{}", String::from_utf8_lossy(v.as_bytes())),
        None => prompt.anonymous_agent_id(),
    };
    let n = prompt.tokens.len() as u64;
    let config = app.config();
    let hit = super::store(app).lookup(&agent, &prompt.tokens).is_some();
    let reply = generate::reply(
        hash_tokens(&prompt.tokens),
        config.engine.seed,
        prompt.last_canary.as_deref(),
        parsed.max_tokens,
    );
    // `anthropic_adapter.py:816-821`: cache_read is the whole prompt on any hit, else 0.
    let usage = Usage {
        input_tokens: n,
        output_tokens: reply.words.len() as u64,
        cache_creation_input_tokens: if hit { 0 } else { n },
        cache_read_input_tokens: if hit { n } else { 0 },
    };
    let id = format!("msg_{:024x}", u128::from(app.next_id()));
    let generation = Generation {
        app: app.clone(),
        agent,
        prompt,
        reply,
    };
    if parsed.stream {
        return Ok(stream(generation, id, parsed.model, usage));
    }
    let mut follow = generation.start().map_err(|e| capacity_exceeded(&e))?;
    // No cancellation: the generation runs in its own task, which a client that goes away
    // does not stop (`anthropic_adapter.py:726-735`).
    let task = tokio::spawn(async move {
        let finished = follow.finish().await;
        let outcome = if finished {
            generation.finalize(true)
        } else {
            Err(batch_rejected())
        };
        (generation, outcome)
    });
    let (generation, outcome) = task
        .await
        .map_err(|_| ApiError::internal("Internal server error"))?;
    outcome.map_err(|e| capacity_exceeded(&e))?;
    let stop = generation.reply.stop_reason.as_str();
    generation
        .app
        .inner
        .counters
        .record(Ending::Completed { stream: false }, 200);
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "id": id, "type": "message", "role": "assistant",
            "content": [{"type": "text", "text": generation.reply.text()}],
            "model": parsed.model, "stop_reason": stop, "stop_sequence": null,
            "usage": usage,
        }),
    ))
}

/// Validation errors are 422 with the Anthropic envelope (`entrypoints/api_server.py:723-738`).
fn unprocessable(mut e: ApiError) -> ApiError {
    if e.status == StatusCode::BAD_REQUEST {
        e.status = StatusCode::UNPROCESSABLE_ENTITY;
    }
    e
}

/// The stream: `message_start` and `content_block_start` before the submission, deltas, and a
/// normal ending even when the pool refused the request — 200 with zero output tokens and no
/// `error` event (`anthropic_adapter.py:472-505`, `application/scheduler.py:169-173, 474-476`).
fn stream(generation: Generation, id: String, model: String, usage: Usage) -> Response<Body> {
    sse_response(move |mut tx| async move {
        let start = json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "content": [], "model": model,
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": usage.input_tokens, "output_tokens": 0,
                      "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                      "cache_read_input_tokens": usage.cache_read_input_tokens},
        }});
        let mut here = send(&mut tx, "message_start", &start).await;
        let block = json!({"type": "content_block_start", "index": 0,
                           "content_block": {"type": "text", "text": ""}});
        here = here && send(&mut tx, "content_block_start", &block).await;
        let mut output = 0;
        if let Ok(mut follow) = generation.start() {
            let mut finished = false;
            loop {
                match follow.next().await {
                    Step::Done => {
                        finished = true;
                        break;
                    }
                    Step::Lost => break,
                    Step::Tokens { from, to } if to > from && here => {
                        let text = generation.reply.chunk(from, to);
                        let delta = json!({"type": "content_block_delta", "index": 0,
                                           "delta": {"type": "text_delta", "text": text}});
                        here = send(&mut tx, "content_block_delta", &delta).await;
                    }
                    // A client that went away does not stop the generation.
                    Step::Tokens { .. } => {}
                }
            }
            if finished && generation.finalize(here).is_ok() {
                output = generation.reply.words.len();
            }
        }
        let app = &generation.app;
        if !here {
            crate::stats::bump(&app.inner.counters.cancelled);
            return;
        }
        let stop = if output > 0 {
            generation.reply.stop_reason.as_str()
        } else {
            "end_turn"
        };
        if app.config().faults.truncate_stream {
            app.inner.counters.record(Ending::Truncated, 200);
            return;
        }
        let ending = if output > 0 {
            Ending::Completed { stream: true }
        } else {
            Ending::Rejected
        };
        app.inner.counters.record(ending, 200);
        let _ = send(
            &mut tx,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        )
        .await
            && send(&mut tx, "message_delta", &message_delta(stop, output)).await
            && send(&mut tx, "message_stop", &json!({"type": "message_stop"})).await;
    })
}

/// `message_delta` with the original's usage: input 0 and no cache figures
/// (`anthropic_adapter.py:578-581`); no `stop_sequence` key.
fn message_delta(stop: &str, output: usize) -> Value {
    json!({"type": "message_delta", "delta": {"stop_reason": stop},
           "usage": {"input_tokens": 0, "output_tokens": output,
                     "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}})
}
