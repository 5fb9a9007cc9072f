//! llama.cpp `llama-server` (ggml-org/llama.cpp @ d6588daa, `tools/server/`): its routes,
//! OpenAI-style errors on every route, `Authorization` (or `X-Api-Key`) keys, `/slots`,
//! `/props` and `llamacpp:` metrics behind a flag.

mod serve;
mod slots;

use std::error::Error as StdError;
use std::fmt::Write as _;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use serde_json::json;

pub(crate) use slots::Slots;

use crate::app::{App, Failure};
use crate::response::{ApiError, Body, full, json as json_response};
use serve::slots;

/// The OpenAI-like error body `{"error":{"code","message","type"}}` with the status as code
/// (`server-common.cpp:16-58`), on `/v1/messages` too.
fn openai(mut e: ApiError) -> ApiError {
    if e.body.is_some() {
        return e;
    }
    let kind = match e.status.as_u16() {
        400 | 413 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        501 => "not_supported_error",
        503 => "unavailable_error",
        _ => "server_error",
    };
    let body = json!({"error": {"code": e.status.as_u16(), "message": e.message, "type": kind}});
    e.kind = kind;
    e.retry_after = None;
    e.with_body(body)
}

/// Every route of llama.cpp.
pub(crate) async fn route<B>(
    app: &App,
    req: Request<B>,
) -> (&'static str, Result<Response<Body>, Failure>)
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let path = req.uri().path().to_owned();
    // Public routes (`server-http.cpp:175-233`).
    let public = matches!(
        path.as_str(),
        "/" | "/health" | "/v1/health" | "/models" | "/v1/models"
    );
    if !public && let Err(e) = authenticate(app, &req) {
        return ("unauthenticated", Err(openai(e).into()));
    }
    let method = req.method().clone();
    let (label, result): (&'static str, Result<Response<Body>, Failure>) =
        match (method, path.as_str()) {
            (Method::POST, "/v1/messages") => {
                ("/v1/messages", crate::messages::messages(app, req).await)
            }
            (Method::POST, "/v1/messages/count_tokens") => (
                "/v1/messages/count_tokens",
                crate::messages::count_tokens(app, req).await,
            ),
            (Method::GET, "/health" | "/v1/health") => (
                "/health",
                Ok(json_response(StatusCode::OK, &json!({"status": "ok"}))),
            ),
            (Method::GET, "/slots") => ("/slots", Ok(slot_list(app))),
            (Method::GET, "/props") => ("/props", Ok(props(app))),
            (Method::GET, "/models" | "/v1/models") => ("/v1/models", Ok(models(app))),
            (Method::GET, "/metrics") if app.config().personality.metrics => {
                ("/metrics", Ok(metrics(app)))
            }
            (Method::GET, "/metrics") => {
                let mut e = ApiError::internal(
                    "This server does not support metrics endpoint. Start it with `--metrics`",
                );
                e.status = StatusCode::NOT_IMPLEMENTED;
                ("/metrics", Err(e.into()))
            }
            // `server-http.cpp:134-147`.
            _ => (
                "unmatched",
                Err(ApiError::not_found("File Not Found").into()),
            ),
        };
    let result = result.map_err(|f| match f {
        Failure::Api(e) => Failure::Api(openai(e)),
        other => other,
    });
    (label, result)
}

/// `Authorization` (a `Bearer ` prefix stripped), or `X-Api-Key` only when `Authorization` is
/// empty (`server-http.cpp:175-233`).
fn authenticate<B>(app: &App, req: &Request<B>) -> Result<(), ApiError> {
    let keys = &app.config().http.api_keys;
    if keys.is_empty() {
        return Ok(());
    }
    let h = req.headers();
    let given = h
        .get("authorization")
        .filter(|v| !v.is_empty())
        .map(|v| {
            let v = v.as_bytes();
            v.strip_prefix(b"Bearer ").unwrap_or(v).to_vec()
        })
        .or_else(|| h.get("x-api-key").map(|v| v.as_bytes().to_vec()));
    match given {
        Some(k) if keys.iter().any(|key| key.as_bytes() == k.as_slice()) => Ok(()),
        _ => Err(ApiError::unauthenticated("Invalid API Key")),
    }
}

/// `GET /slots` (`server-context.cpp:495-529`).
fn slot_list(app: &App) -> Response<Body> {
    let s = slots(app);
    let (list, _) = s.snapshot();
    let n_ctx = s.n_ctx();
    let items: Vec<_> = list
        .iter()
        .enumerate()
        .map(|(id, slot)| {
            json!({"id": id, "n_ctx": n_ctx, "speculative": false, "is_processing": slot.busy,
                   "id_task": slot.id_task, "n_prompt_tokens": slot.n_prompt,
                   "n_prompt_tokens_processed": slot.n_prompt - slot.n_cache,
                   "n_prompt_tokens_cache": slot.n_cache, "params": {},
                   "next_token": [{"has_next_token": slot.busy, "has_new_line": false,
                                   "n_remain": slot.n_max.saturating_sub(slot.n_decoded),
                                   "n_decoded": slot.n_decoded}]})
        })
        .collect();
    json_response(StatusCode::OK, &items)
}

/// `GET /props` (`server-context.cpp:4076-4087`).
fn props(app: &App) -> Response<Body> {
    let s = slots(app);
    json_response(
        StatusCode::OK,
        &json!({"total_slots": s.snapshot().0.len(), "model_alias": app.config().model.name,
                "default_generation_settings": {"n_ctx": s.n_ctx()}}),
    )
}

fn models(app: &App) -> Response<Body> {
    let name = &app.config().model.name;
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": [{"id": name, "object": "model", "created": 0,
                                             "owned_by": "llamacpp"}]}),
    )
}

/// `GET /metrics` with `llamacpp:` names (`server-context.cpp:3885-3982`); there is no KV or
/// cache-hit metric since 2025-05.
fn metrics(app: &App) -> Response<Body> {
    let s = slots(app);
    let (list, t) = s.snapshot();
    let busy = list.iter().filter(|x| x.busy).count();
    let e = app.config().engine;
    let secs = |tokens: u64, rate: f64| {
        if rate > 0.0 {
            tokens as f64 / rate
        } else {
            0.0
        }
    };
    let families: [(&str, &str, f64); 11] = [
        ("prompt_tokens_total", "counter", t.prompt_tokens as f64),
        (
            "prompt_seconds_total",
            "counter",
            secs(t.prompt_tokens, e.prefill_tokens_per_sec),
        ),
        (
            "tokens_predicted_total",
            "counter",
            t.tokens_predicted as f64,
        ),
        (
            "tokens_predicted_seconds_total",
            "counter",
            secs(t.tokens_predicted, e.decode_tokens_per_sec),
        ),
        ("n_decode_total", "counter", t.n_decode as f64),
        ("n_tokens_max", "counter", t.n_tokens_max as f64),
        ("prompt_tokens_seconds", "gauge", e.prefill_tokens_per_sec),
        ("predicted_tokens_seconds", "gauge", e.decode_tokens_per_sec),
        ("requests_processing", "gauge", busy as f64),
        ("requests_deferred", "gauge", s.deferred() as f64),
        ("n_busy_slots_per_decode", "gauge", busy as f64),
    ];
    let mut out = String::new();
    for (name, kind, value) in families {
        let _ = writeln!(
            out,
            "# HELP llamacpp:{name} {name}\n# TYPE llamacpp:{name} {kind}\nllamacpp:{name} {value}"
        );
    }
    let mut resp = Response::new(full(out));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

pub(crate) use serve::messages;
