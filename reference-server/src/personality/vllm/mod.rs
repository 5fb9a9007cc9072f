//! vLLM (vllm-project/vllm @ 4ff865c3, `vllm/entrypoints/`): its routes, the model-name check,
//! `Authorization: Bearer` keys on `/v1…`, an empty `/health` and `vllm:` metrics.

mod prefix;
mod serve;

use std::error::Error as StdError;
use std::sync::MutexGuard;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use serde_json::json;

pub(crate) use prefix::PrefixCache;
pub(crate) use serve::messages;

use super::State;
use crate::app::{App, Failure};
use crate::config::PoolGeometry;
use crate::engine::PagedKv;
use crate::metrics::{ServingFigures, resident_memory_bytes, serving_families};
use crate::response::{ApiError, Body, full, json as json_response};

/// The paged KV cache: the pool's tokens in blocks of 16 (`vllm/v1/core/block_pool.py`).
pub(crate) fn kv(g: &PoolGeometry) -> PagedKv {
    PagedKv {
        capacity_blocks: g.token_capacity() / prefix::BLOCK_TOKENS,
        block_tokens: prefix::BLOCK_TOKENS,
    }
}

/// The prefix cache of `app` (only reached when vLLM is the personality in force).
pub(crate) fn prefix_cache(app: &App) -> MutexGuard<'_, PrefixCache> {
    match &app.inner.persona {
        // A poisoned lock leaves consistent counts; keep serving.
        State::Vllm(c) => c.lock().unwrap_or_else(|e| e.into_inner()),
        // `route` runs only for this personality, whose state is always `Vllm`.
        _ => unreachable!("vLLM routes run with vLLM state"),
    }
}

/// Every route of vLLM.
pub(crate) async fn route<B>(
    app: &App,
    req: Request<B>,
) -> (&'static str, Result<Response<Body>, Failure>)
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let path = req.uri().path().to_owned();
    if path.starts_with("/v1")
        && let Err(e) = authenticate(app, &req)
    {
        return ("unauthenticated", Err(e.into()));
    }
    let method = req.method().clone();
    match (method, path.as_str()) {
        (Method::POST, "/v1/messages") => {
            ("/v1/messages", crate::messages::messages(app, req).await)
        }
        (Method::POST, "/v1/messages/count_tokens") => (
            "/v1/messages/count_tokens",
            crate::messages::count_tokens(app, req).await,
        ),
        // `entrypoints/serve/instrumentator/health.py:22-33`: 200, empty body.
        (Method::GET, "/health") => ("/health", Ok(Response::new(full("")))),
        (Method::GET, "/v1/models") => ("/v1/models", Ok(models(app))),
        (Method::GET, "/metrics") => ("/metrics", Ok(metrics(app))),
        _ => {
            let mut e = ApiError::not_found("Not Found").with_body(json!({"detail": "Not Found"}));
            e.kind = "not_found_error";
            ("unmatched", Err(e.into()))
        }
    }
}

/// Only `Authorization: Bearer <key>`, only on `/v1…`; 401 `{"error":"Unauthorized"}`
/// (`entrypoints/openai/server_utils.py:38-89`).
fn authenticate<B>(app: &App, req: &Request<B>) -> Result<(), ApiError> {
    let keys = &app.config().http.api_keys;
    if keys.is_empty() {
        return Ok(());
    }
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.to_owned());
    match bearer {
        Some(k) if keys.contains(&k) => Ok(()),
        _ => {
            Err(ApiError::unauthenticated("Unauthorized")
                .with_body(json!({"error": "Unauthorized"})))
        }
    }
}

fn models(app: &App) -> Response<Body> {
    let name = &app.config().model.name;
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": [{"id": name, "object": "model", "created": 0,
                "owned_by": "vllm", "root": name,
                "max_model_len": app.config().geometry().token_capacity()}]}),
    )
}

/// `GET /metrics`: the prometheus_client exposition of `vllm/v1/metrics/loggers.py:452-673`,
/// with `process_resident_memory_bytes` as prometheus_client's default registry has it.
fn metrics(app: &App) -> Response<Body> {
    let (running, waiting) = app.inner.engine.load();
    let (hits, queries) = {
        let c = prefix_cache(app);
        (c.hits, c.queries)
    };
    let figures = ServingFigures {
        running,
        waiting,
        kv_usage: app.inner.engine.kv_usage().unwrap_or(0.0),
        prefix_hits: hits,
        prefix_queries: queries,
        preemptions: app.inner.engine.preemptions(),
    };
    let labels = format!(
        "engine=\"0\",model_name=\"{}\"",
        app.config().model.name.replace('"', "")
    );
    let mut out = serving_families("vllm:", &labels, &figures);
    if let Some(rss) = resident_memory_bytes() {
        out.push_str(&format!(
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}.0\n"
        ));
    }
    let mut resp = Response::new(full(out));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
