//! vLLM's `POST /v1/messages`: the model name is checked, the prompt's cached blocks come from
//! the shared prefix cache, the request waits in an unbounded queue and may be preempted, and
//! usage has no cache fields (`input_tokens` is the whole prompt).
//!
//! Citations are to vllm-project/vllm @ 4ff865c3, under `vllm/entrypoints/`.

use std::error::Error as StdError;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde_json::json;

use crate::app::App;
use crate::engine::Job;
use crate::generate::{self, Reply};
use crate::personality::stream::{Follow, Step, send, sse_response};
use crate::personality::{Incoming, incoming};
use crate::response::{ApiError, Body, json as json_response};
use crate::stats::Ending;
use crate::tokenizer::hash_tokens;

/// An Anthropic-shaped error with vLLM's own type string (`anthropic/api_router.py:36-45`).
fn anthropic(mut e: ApiError, kind: &'static str) -> ApiError {
    let body = json!({"type": "error", "error": {"type": kind, "message": e.message}});
    e.kind = kind;
    e.with_body(body)
}

/// `POST /v1/messages` of vLLM.
pub(crate) async fn messages<B>(app: &App, req: Request<B>) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let Incoming { parsed, prompt, .. } = incoming(app, req).await.map_err(|e| {
        // Request validation is OpenAI-shaped (`openai/server_utils.py:409-443`).
        let body = json!({"error": {"message": e.message, "type": "Bad Request",
                                    "param": null, "code": e.status.as_u16()}});
        e.with_body(body)
    })?;
    let config = app.config();
    if parsed.model != config.model.name {
        // `openai/engine/serving.py:218-246`.
        let message = format!("The model `{}` does not exist.", parsed.model);
        return Err(anthropic(ApiError::not_found(message), "NotFoundError"));
    }
    let cached = super::prefix_cache(app).lookup_and_insert(&prompt.tokens);
    let reply = generate::reply(
        hash_tokens(&prompt.tokens),
        config.engine.seed,
        prompt.last_canary.as_deref(),
        parsed.max_tokens,
    );
    let n = prompt.tokens.len();
    let total = reply.words.len();
    let rx = (!config.is_instant()).then(|| {
        let job = Job {
            prefill_tokens: n - cached,
            // Replies are at most 65536 tokens.
            output_tokens: total as u32,
            context_tokens: n,
        };
        // The waiting queue is unbounded: submission cannot be refused.
        app.inner.engine.submit(job).ok()
    });
    let mut follow = Follow::new(rx.flatten(), total);
    let id = format!("msg_{:024x}", u128::from(app.next_id()));
    if parsed.stream {
        return Ok(stream(app.clone(), follow, reply, id, parsed.model, n));
    }
    // Dropping this future (the client went away) drops the receiver, and the engine aborts
    // the request, queued or running (`v1/engine/async_llm.py:588-596`).
    if !follow.finish().await {
        return Err(anthropic(
            ApiError::internal("the engine stopped before the reply was complete"),
            "internal_error",
        ));
    }
    app.inner
        .counters
        .record(Ending::Completed { stream: false }, 200);
    // `anthropic/serving.py:484-534`: usage is inclusive and has no cache fields.
    Ok(json_response(
        StatusCode::OK,
        &json!({"id": id, "type": "message", "role": "assistant",
                "content": [{"type": "text", "text": reply.text()}], "model": parsed.model,
                "stop_reason": reply.stop_reason.as_str(),
                "usage": {"input_tokens": n, "output_tokens": total}}),
    ))
}

/// The stream (`anthropic/serving.py:536-836`): `message_start` with the first chunk, one text
/// block, `message_delta` with input and output tokens, `message_stop`; no `ping`.
fn stream(
    app: App,
    mut follow: Follow,
    reply: Reply,
    id: String,
    model: String,
    n: usize,
) -> Response<Body> {
    sse_response(move |mut tx| async move {
        let mut started = false;
        loop {
            let (from, to) = match follow.next().await {
                Step::Done => break,
                Step::Lost => {
                    let error = json!({"type": "error", "error": {"type": "internal_error",
                        "message": "the engine stopped before the reply was complete"}});
                    let _ = send(&mut tx, "error", &error).await;
                    app.inner.counters.record(Ending::ServerError, 500);
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
                    "stop_reason": null, "usage": {"input_tokens": n, "output_tokens": 0}}});
                let block = json!({"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "text", "text": ""}});
                here = send(&mut tx, "message_start", &start).await
                    && send(&mut tx, "content_block_start", &block).await;
            }
            let delta = json!({"type": "content_block_delta", "index": 0,
                               "delta": {"type": "text_delta", "text": reply.chunk(from, to)}});
            if !(here && send(&mut tx, "content_block_delta", &delta).await) {
                // Gone: dropping the receiver aborts the request in the engine.
                crate::stats::bump(&app.inner.counters.cancelled);
                return;
            }
        }
        if app.config().faults.truncate_stream {
            app.inner.counters.record(Ending::Truncated, 200);
            return;
        }
        app.inner
            .counters
            .record(Ending::Completed { stream: true }, 200);
        let _ = send(
            &mut tx,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        )
        .await
            && send(
                &mut tx,
                "message_delta",
                &json!({"type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason.as_str()},
                "usage": {"input_tokens": n, "output_tokens": reply.words.len()}}),
            )
            .await
            && send(&mut tx, "message_stop", &json!({"type": "message_stop"})).await;
    })
}
