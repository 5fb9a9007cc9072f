//! llama.cpp's `POST /v1/messages`: wait for a slot (never refused), reuse the slot's cached
//! prefix, report `input_tokens` without the cached tokens, and stop when the client goes away.
//!
//! Citations are to ggml-org/llama.cpp @ d6588daa, under `tools/server/`.

use std::error::Error as StdError;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::OwnedSemaphorePermit;

use super::slots::Refused;
use crate::app::App;
use crate::engine::Job;
use crate::generate::{self, Reply};
use crate::personality::stream::{Follow, Step, send, sse_response};
use crate::personality::{Incoming, State, incoming};
use crate::response::{ApiError, Body, json as json_response};
use crate::stats::Ending;
use crate::tokenizer::{Prompt, hash_tokens};
use semantic_stress::anthropic::Role;

/// Tokens of the `thinking` block, when on.
const THINKING_TOKENS: u32 = 8;

/// The slots of `app` (only reached when llama.cpp is the personality in force).
pub(crate) fn slots(app: &App) -> &super::Slots {
    match &app.inner.persona {
        State::LlamaCpp(s) => s,
        // `route` runs only for this personality, whose state is always `LlamaCpp`.
        _ => unreachable!("llama.cpp routes run with llama.cpp state"),
    }
}

/// The task on a slot; the slot is released when dropped, with the tokens its KV holds.
struct Task {
    app: App,
    slot: usize,
    _permit: OwnedSemaphorePermit,
    prompt: Prompt,
    thinking: Reply,
    reply: Reply,
    decoded: usize,
    done: bool,
}

impl Task {
    fn total(&self) -> usize {
        self.thinking.words.len() + self.reply.words.len()
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        let mut context = self.prompt.clone();
        if self.done {
            context.push_segment(Some(Role::Assistant), &self.reply.text());
        } else {
            // Cancelled (`server-context.cpp:2088-2096`): the slot keeps the prompt.
            crate::stats::bump(&self.app.inner.counters.cancelled);
        }
        slots(&self.app).release(self.slot, context.tokens, self.decoded);
    }
}

/// `POST /v1/messages` of llama.cpp.
pub(crate) async fn messages<B>(app: &App, req: Request<B>) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let Incoming { parsed, prompt, .. } = incoming(app, req).await?;
    // The deferred queue: no bound, no 429 (`server-context.cpp:2042-2052`). A client that
    // goes away while waiting drops this future and leaves the queue.
    let permit = slots(app).wait().await;
    let id_task = app.next_id();
    let (slot, n_past) = match slots(app).assign(id_task, &prompt.tokens, parsed.max_tokens) {
        Ok(assigned) => assigned,
        Err(Refused::PromptTooLong { n_prompt, n_ctx }) => {
            let message = format!(
                "request ({n_prompt} tokens) exceeds the available context size ({n_ctx} tokens), try increasing it"
            );
            let mut e = ApiError::invalid(message.clone());
            e.kind = "exceed_context_size_error";
            return Err(e.with_body(json!({"error": {"code": 400, "message": message,
                "type": "exceed_context_size_error", "n_prompt_tokens": n_prompt, "n_ctx": n_ctx}})));
        }
        Err(Refused::ContextExceeded) => {
            // Every running task fails with this one (`server-context.cpp:3119-3165`).
            app.inner.engine.fail_active();
            return Err(context_exceeded());
        }
    };
    let config = app.config();
    let context = hash_tokens(&prompt.tokens);
    let seed = config.engine.seed;
    let thinking_len = if config.personality.thinking {
        THINKING_TOKENS
    } else {
        0
    };
    let thinking = generate::reply(!context, seed, None, thinking_len);
    let reply = generate::reply(
        context,
        seed,
        prompt.last_canary.as_deref(),
        parsed.max_tokens,
    );
    let n = prompt.tokens.len();
    let mut task = Task {
        app: app.clone(),
        slot,
        _permit: permit,
        prompt,
        thinking,
        reply,
        decoded: 0,
        done: false,
    };
    let total = task.total();
    let rx = (!config.is_instant()).then(|| {
        let job = Job {
            prefill_tokens: n - n_past,
            // Replies are at most 65536 tokens.
            output_tokens: total as u32,
            context_tokens: n,
        };
        // One engine slot per llama.cpp slot: the engine never queues these.
        app.inner.engine.submit(job).ok()
    });
    let follow = Follow::new(rx.flatten(), total);
    // `server-task.cpp:1192-1196`: cached tokens are outside `input_tokens`; no
    // `cache_creation_input_tokens`.
    let usage = json!({"cache_read_input_tokens": n_past, "input_tokens": n - n_past,
                       "output_tokens": total});
    let id = format!("msg_{:024x}", u128::from(app.next_id()));
    let model = config.model.name.clone();
    if parsed.stream {
        return Ok(stream(task, follow, id, model, usage));
    }
    let mut follow = follow;
    if !follow.finish().await {
        return Err(context_exceeded());
    }
    task.decoded = total;
    task.done = true;
    let mut content = Vec::new();
    if !task.thinking.words.is_empty() {
        content
            .push(json!({"type": "thinking", "thinking": task.thinking.text(), "signature": ""}));
    }
    content.push(json!({"type": "text", "text": task.reply.text()}));
    let stop = task.reply.stop_reason.as_str();
    app.inner
        .counters
        .record(Ending::Completed { stream: false }, 200);
    Ok(json_response(
        StatusCode::OK,
        &json!({"id": id, "type": "message", "role": "assistant", "content": content,
                "model": model, "stop_reason": stop, "stop_sequence": null, "usage": usage}),
    ))
}

/// 500 `server_error` "Context size has been exceeded.".
fn context_exceeded() -> ApiError {
    ApiError::internal("Context size has been exceeded.")
}

/// The stream: headers once the slot started, `message_start` with the first token, blocks
/// opened lazily (thinking at index 0, then text), `message_delta` with the output count only,
/// `message_stop`, no `ping` (`server-task.cpp:1202-1381, 1697-1833`).
fn stream(
    mut task: Task,
    mut follow: Follow,
    id: String,
    model: String,
    usage: Value,
) -> Response<Body> {
    sse_response(move |mut tx| async move {
        let thinking = task.thinking.words.len();
        let text_index = usize::from(thinking > 0);
        let mut started = false;
        let mut text_open = false;
        loop {
            let (from, to) = match follow.next().await {
                Step::Done => break,
                Step::Lost => {
                    // A bare error object, not the Anthropic envelope
                    // (`server-context.cpp:3767-3776`).
                    let error = json!({"code": 500, "message": "Context size has been exceeded.",
                                       "type": "server_error"});
                    let _ = send(&mut tx, "error", &error).await;
                    task.app.inner.counters.record(Ending::ServerError, 500);
                    return;
                }
                Step::Tokens { from, to } => (from, to),
            };
            if to == from {
                continue;
            }
            let mut here = true;
            if !started {
                started = true;
                let start = json!({"type": "message_start", "message": {"id": id,
                    "type": "message", "role": "assistant", "content": [], "model": model,
                    "stop_reason": null, "stop_sequence": null,
                    "usage": {"cache_read_input_tokens": usage["cache_read_input_tokens"],
                              "input_tokens": usage["input_tokens"], "output_tokens": 0}}});
                here = send(&mut tx, "message_start", &start).await;
                if thinking > 0 {
                    let block = json!({"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "thinking", "thinking": ""}});
                    here = here && send(&mut tx, "content_block_start", &block).await;
                }
            }
            if from < thinking {
                let delta = json!({"type": "content_block_delta", "index": 0, "delta":
                    {"type": "thinking_delta", "thinking": task.thinking.chunk(from, to.min(thinking))}});
                here = here && send(&mut tx, "content_block_delta", &delta).await;
            }
            if to > thinking {
                if !text_open {
                    text_open = true;
                    let block = json!({"type": "content_block_start", "index": text_index,
                                       "content_block": {"type": "text", "text": ""}});
                    here = here && send(&mut tx, "content_block_start", &block).await;
                }
                let text = task
                    .reply
                    .chunk(from.max(thinking) - thinking, to - thinking);
                let delta = json!({"type": "content_block_delta", "index": text_index,
                                   "delta": {"type": "text_delta", "text": text}});
                here = here && send(&mut tx, "content_block_delta", &delta).await;
            }
            task.decoded = to;
            slots(&task.app).progress(task.slot, to);
            if !here {
                // Gone: the task is cancelled and its slot released (`server-context.cpp:3779-3783`).
                return;
            }
        }
        task.done = true;
        let app = task.app.clone();
        if app.config().faults.truncate_stream {
            app.inner.counters.record(Ending::Truncated, 200);
            return;
        }
        let stop = task.reply.stop_reason.as_str();
        let mut events = Vec::new();
        if thinking > 0 {
            events.push((
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "signature_delta", "signature": ""}}),
            ));
            events.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ));
        }
        events.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": text_index}),
        ));
        events.push((
            "message_delta",
            json!({"type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"output_tokens": task.total()}}),
        ));
        app.inner
            .counters
            .record(Ending::Completed { stream: true }, 200);
        events.push(("message_stop", json!({"type": "message_stop"})));
        for (name, data) in events {
            if !send(&mut tx, name, &data).await {
                return;
            }
        }
    })
}
