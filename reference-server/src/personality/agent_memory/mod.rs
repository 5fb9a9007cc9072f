//! agent-memory (yshk-mxim/agent-memory @ d7d7dea3, FastAPI + MLX): its routes, in its
//! middleware order — rate limiter, then auth, then the route
//! (`src/agent_memory/entrypoints/api_server.py:474-512`).
//!
//! Pool figures are on `/v1/agents/stats`, `/debug/memory` and `/health/ready` only; `/health`
//! is `{"status":"ok"}`; `/metrics` has no process-memory gauge; FastAPI's `{"detail"}` bodies
//! answer unknown routes, admin errors and pool exhaustion.

mod serve;
mod store;

use std::error::Error as StdError;
use std::sync::MutexGuard;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use serde_json::json;

pub(crate) use store::Store;

use super::State;
use crate::app::{App, Failure};
use crate::response::{ApiError, Body, full, json as json_response};

/// The agent-memory pool of `app` (only reached when it is the personality in force).
pub(crate) fn store(app: &App) -> MutexGuard<'_, Store> {
    match &app.inner.persona {
        // A poisoned lock leaves consistent counts; keep serving.
        State::AgentMemory(s) => s.lock().unwrap_or_else(|e| e.into_inner()),
        // `route` runs only for this personality, whose state is always `AgentMemory`.
        _ => unreachable!("agent-memory routes run with agent-memory state"),
    }
}

/// A FastAPI `HTTPException` body: `{"detail": …}`.
fn detail(status: StatusCode, kind: &'static str, text: &str) -> ApiError {
    let mut e = ApiError::not_found(text).with_body(json!({ "detail": text }));
    e.status = status;
    e.kind = kind;
    e
}

/// Every route of agent-memory.
pub(crate) async fn route<B>(
    app: &App,
    req: Request<B>,
) -> (&'static str, Result<Response<Body>, Failure>)
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let path = req.uri().path().to_owned();
    // `src/adapters/inbound/rate_limiter.py:197-199`: only `/health/…` is exempt, so `/health`
    // itself counts.
    if !path.starts_with("/health/")
        && let Some(limited) = rate_limit(app, &req)
    {
        return ("rate_limited", Ok(limited));
    }
    let public = path == "/" || path == "/health" || path.starts_with("/health/");
    if !public && let Err(e) = authenticate(app, &req) {
        return ("unauthenticated", Err(e.into()));
    }
    let method = req.method().clone();
    let label = crate::routes::label(&path);
    let result = match (method, path.as_str()) {
        (Method::POST, "/v1/messages") => {
            return ("/v1/messages", crate::messages::messages(app, req).await);
        }
        (Method::POST, "/v1/messages/count_tokens") => {
            return (
                "/v1/messages/count_tokens",
                crate::messages::count_tokens(app, req).await,
            );
        }
        (Method::GET, "/health") => json_response(StatusCode::OK, &json!({"status": "ok"})),
        (Method::GET, "/health/live") => json_response(StatusCode::OK, &json!({"status": "alive"})),
        (Method::GET, "/health/startup") => {
            json_response(StatusCode::OK, &json!({"status": "started"}))
        }
        (Method::GET, "/health/ready") => ready(app),
        (Method::GET, "/v1/models") => models(app),
        (Method::GET, "/v1/agents/stats") => agent_stats(app),
        (Method::GET, "/debug/memory") => {
            return ("/debug/memory", Ok(debug_memory(app)));
        }
        (Method::GET, "/metrics") => crate::routes::metrics_text(app, None),
        (Method::DELETE, "/admin/caches") => {
            return ("/admin/caches", clear(app, &req).map_err(Failure::from));
        }
        (Method::DELETE, p) if p.starts_with("/v1/agents/") => {
            let id = &p["/v1/agents/".len()..];
            let removed = store(app).remove(id);
            return (
                "/v1/agents/{id}",
                if removed {
                    let mut resp = Response::new(full(""));
                    *resp.status_mut() = StatusCode::NO_CONTENT;
                    Ok(resp)
                } else {
                    let text = format!("Agent {id} not found");
                    Err(detail(StatusCode::NOT_FOUND, "not_found_error", &text).into())
                },
            );
        }
        _ => {
            let e = detail(StatusCode::NOT_FOUND, "not_found_error", "Not Found");
            return ("unmatched", Err(e.into()));
        }
    };
    (label, Ok(result))
}

/// The global window (every route but `/health/…`) and the per-agent one, keyed by
/// `X-Agent-ID` only; 429 with `Retry-After` and a body that is not the Anthropic envelope
/// (`rate_limiter.py:152-156, 174-185, 210-245`).
fn rate_limit<B>(app: &App, req: &Request<B>) -> Option<Response<Body>> {
    let limiter = app.inner.limiter.as_ref()?;
    let agent = req
        .headers()
        .get("x-agent-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let checked = limiter
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .check(agent.as_deref(), Instant::now());
    let hit = checked.err()?;
    let secs = hit.retry_after.as_secs().max(1);
    let scope = if hit.scope == "global" {
        "Global"
    } else {
        "Agent"
    };
    let mut resp = json_response(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({"error": {"type": "rate_limit_error",
                "message": format!("{scope} rate limit exceeded. Retry after {secs}s.")}}),
    );
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs));
    Some(resp)
}

/// `x-api-key` or `anthropic-api-key`; never `Authorization: Bearer`
/// (`adapters/inbound/auth_middleware.py:344-374`).
fn authenticate<B>(app: &App, req: &Request<B>) -> Result<(), ApiError> {
    let keys = &app.config().http.api_keys;
    if keys.is_empty() {
        return Ok(());
    }
    let h = req.headers();
    let given = h.get("x-api-key").or_else(|| h.get("anthropic-api-key"));
    let message = match given {
        None => "Missing API key. Provide x-api-key header.",
        Some(k) if keys.iter().any(|key| key.as_bytes() == k.as_bytes()) => return Ok(()),
        Some(_) => "Invalid API key.",
    };
    Err(ApiError::unauthenticated(message)
        .with_body(json!({"error": {"type": "authentication_error", "message": message}})))
}

/// `/health/ready`: 503 above 90% of the pool (`entrypoints/api_server.py:523-577`).
fn ready(app: &App) -> Response<Body> {
    let f = store(app).figures();
    let pct = (crate::pool::ratio(f.used_blocks, f.total_blocks) * 1000.0).round() / 10.0;
    if app.is_draining() {
        let body = json!({"status": "not_ready", "reason": "shutting_down"});
        return json_response(StatusCode::SERVICE_UNAVAILABLE, &body);
    }
    if pct > 90.0 {
        let body = json!({"status": "not_ready", "reason": "pool_near_exhaustion", "pool_utilization": pct});
        return json_response(StatusCode::SERVICE_UNAVAILABLE, &body);
    }
    json_response(
        StatusCode::OK,
        &json!({"status": "ready", "pool_utilization": pct}),
    )
}

/// `/v1/models` (`entrypoints/api_server.py:782-813`).
fn models(app: &App) -> Response<Body> {
    let m = &app.config().model;
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": [{"id": m.name, "object": "model", "owned_by": "local",
            "spec": {"n_layers": m.n_layers, "n_kv_heads": m.n_kv_heads, "head_dim": m.head_dim,
                     "block_tokens": 256, "kv_bits": m.dtype, "max_context_length": 100_000}}]}),
    )
}

/// `/v1/agents/stats` (`adapters/inbound/direct_agent_adapter.py:129-172`): the 12 most recent
/// caches are hot, the rest warm (on disk).
fn agent_stats(app: &App) -> Response<Body> {
    let f = store(app).figures();
    let hot = f.cached_agents.min(app.config().pool.max_hot_agents);
    let pct = (crate::pool::ratio(f.used_blocks, f.total_blocks) * 10_000.0).round() / 100.0;
    json_response(
        StatusCode::OK,
        &json!({"hot_count": hot, "warm_count": f.cached_agents - hot,
                "total_count": f.cached_agents, "dirty_count": 0,
                "pool_utilization_pct": pct, "total_cache_size_mb": 0.0}),
    )
}

/// `/debug/memory` (`entrypoints/api_server.py:600-614`).
fn debug_memory(app: &App) -> Response<Body> {
    let f = store(app).figures();
    let mb = |blocks: u64| {
        let bytes = blocks * app.config().geometry().bytes_per_block_layer;
        // Megabytes of a pool are far below 2^52: the conversion is exact.
        (bytes as f64 / f64::from(1 << 20) * 10.0).round() / 10.0
    };
    json_response(
        StatusCode::OK,
        &json!({"active_memory_mb": mb(f.used_blocks), "peak_memory_mb": mb(f.peak_used_blocks),
                "cache_memory_mb": mb(f.used_blocks), "pool_used_blocks": f.used_blocks,
                "pool_total_blocks": f.total_blocks}),
    )
}

/// `DELETE /admin/caches` with `X-Admin-Key` (`adapters/inbound/admin_api.py:94-123, 387-458`).
fn clear<B>(app: &App, req: &Request<B>) -> Result<Response<Body>, ApiError> {
    let Some(key) = app.config().http.admin_key.as_deref() else {
        let text = "Admin authentication not configured (SEMANTIC_ADMIN_KEY missing)";
        return Err(detail(StatusCode::INTERNAL_SERVER_ERROR, "api_error", text));
    };
    match req.headers().get("x-admin-key") {
        None => {
            let text = "Admin authentication required (X-Admin-Key header missing)";
            return Err(detail(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                text,
            ));
        }
        Some(k) if k.as_bytes() != key.as_bytes() => {
            let text = "Invalid admin key";
            return Err(detail(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                text,
            ));
        }
        Some(_) => {}
    }
    let (agents, holding) = store(app).clear();
    Ok(json_response(
        StatusCode::OK,
        &json!({"status": "success", "hot_cleared": agents, "disk_cleared": agents,
                "pool_cleared": holding,
                "message": format!("Cleared {} total items (hot: {agents}, disk: {agents}, pool: {holding})", 2 * agents + holding)}),
    ))
}

pub(crate) use serve::messages;
