//! The small routes: info, health probes, models, agent stats, admin and metrics.

use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use serde_json::json;

use super::app::{App, Failure};
use super::metrics::{ServingFigures, resident_memory_bytes, serving_families};
use super::response::{ApiError, Body, full, json, retry_after_secs};

/// The route label (for metrics) of a GET path.
pub(crate) fn label(path: &str) -> &'static str {
    match path {
        "/" => "/",
        "/health" => "/health",
        "/health/live" => "/health/live",
        "/health/ready" => "/health/ready",
        "/health/startup" => "/health/startup",
        "/v1/models" => "/v1/models",
        "/v1/agents/stats" => "/v1/agents/stats",
        "/metrics" => "/metrics",
        _ => "unmatched",
    }
}

/// Answers a GET route by its label.
pub(crate) async fn get(app: &App, route: &'static str) -> Result<Response<Body>, Failure> {
    if route.starts_with("/health") && app.config().faults.blocking_health {
        app.wait_inference_idle().await;
    }
    Ok(match route {
        "/" => info(app),
        "/health" => health(app),
        "/health/live" => json(StatusCode::OK, &json!({"status": "alive"})),
        "/health/ready" => ready(app),
        "/health/startup" => json(StatusCode::OK, &json!({"status": "started"})),
        "/v1/models" => models(app),
        "/v1/agents/stats" => agent_stats(app),
        "/metrics" => metrics(app),
        other => return Err(ApiError::not_found(format!("no route {other}")).into()),
    })
}

fn info(app: &App) -> Response<Body> {
    let c = app.config();
    let faults: Vec<String> = c.faults().iter().map(ToString::to_string).collect();
    json(
        StatusCode::OK,
        &json!({
            "name": "semantic-stress reference server",
            "version": env!("CARGO_PKG_VERSION"),
            "model": c.model.name,
            "faults": faults,
            "endpoints": [
                "POST /v1/messages", "POST /v1/messages/count_tokens", "GET /v1/models",
                "GET /health", "GET /health/live", "GET /health/ready", "GET /health/startup",
                "GET /v1/agents/stats", "DELETE /v1/agents/{id}", "DELETE /admin/caches",
                "GET /metrics",
            ],
        }),
    )
}

fn health(app: &App) -> Response<Body> {
    let p = app.stats().pool;
    json(
        StatusCode::OK,
        &json!({"status": "ok", "pool": {
            "total_blocks": p.total_blocks, "used_blocks": p.used_blocks,
            "utilization": p.utilization,
        }}),
    )
}

/// `/health/ready`. `pool_utilization` is the whole pool in use (%); readiness is decided on
/// the *pinned* part (`pinned_utilization`: in use minus idle caches that admission can evict),
/// so that a pool full of idle caches, which the next request can reclaim, still reads ready.
fn ready(app: &App) -> Response<Body> {
    let p = app.stats().pool;
    let pct = p.utilization * 100.0;
    let pinned = super::pool::ratio(p.used_blocks - p.evictable_blocks, p.total_blocks);
    let reason = if app.is_draining() {
        Some("shutting_down")
    } else if pinned > app.config().pool.ready_max_utilization {
        Some("pool_near_exhaustion")
    } else {
        None
    };
    let Some(reason) = reason else {
        return json(
            StatusCode::OK,
            &json!({"status": "ready", "pool_utilization": pct,
                    "pinned_utilization": pinned * 100.0}),
        );
    };
    let mut resp = json(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"status": "not_ready", "reason": reason, "pool_utilization": pct,
                "pinned_utilization": pinned * 100.0}),
    );
    if !app.config().faults.no_retry_after {
        let secs = retry_after_secs(app.config().admission.retry_after);
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

fn models(app: &App) -> Response<Body> {
    let c = app.config();
    let g = c.geometry();
    let id = &c.model.name;
    json(
        StatusCode::OK,
        &json!({
            "data": [{
                "type": "model", "id": id, "display_name": id,
                "created_at": "2025-01-01T00:00:00Z",
                "cache": {
                    "n_layers": c.model.n_layers, "n_kv_heads": c.model.n_kv_heads,
                    "head_dim": c.model.head_dim, "dtype": c.model.dtype,
                    "tokens_per_block": g.tokens_per_block,
                    "bytes_per_block_layer": g.bytes_per_block_layer,
                    "cache_budget_mb": c.pool.cache_budget_mb, "total_blocks": g.total_blocks,
                    "max_batch_size": c.engine.max_batch_size,
                },
            }],
            "has_more": false, "first_id": id, "last_id": id,
        }),
    )
}

fn agent_stats(app: &App) -> Response<Body> {
    let s = app.stats();
    json(
        StatusCode::OK,
        &json!({
            "hot_count": s.agents.hot_count,
            "total_count": s.agents.total_count,
            "pool_utilization_pct": s.pool.utilization * 100.0,
            "pool": s.pool,
            "server": s,
        }),
    )
}

/// The semantic personality's `/metrics`: its own families, then the serving families vLLM
/// exports, under vLLM's names so that what reads vLLM reads it too (the pool's utilization as
/// KV usage, reused prompt tokens as prefix-cache hits, prompt tokens as queries; it never
/// preempts).
fn metrics(app: &App) -> Response<Body> {
    let s = app.stats();
    let figures = ServingFigures {
        running: s.running,
        waiting: s.queued,
        kv_usage: s.pool.utilization,
        prefix_hits: s.cache_read_tokens,
        prefix_queries: s.input_tokens,
        preemptions: 0,
    };
    let mut text = app.inner.http.render(&s, resident_memory_bytes());
    text.push_str(&serving_families("vllm:", "", &figures));
    prometheus(text)
}

/// The request counters and pool gauges as Prometheus text, with the resident memory if
/// given.
pub(crate) fn metrics_text(app: &App, rss: Option<u64>) -> Response<Body> {
    prometheus(app.inner.http.render(&app.stats(), rss))
}

fn prometheus(text: String) -> Response<Body> {
    let mut resp = Response::new(full(text));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// `DELETE /v1/agents/{id}`: 204, or 404. A bare session id `S` also finds agent `sess_S`.
pub(crate) fn delete_agent(app: &App, id: &str) -> Result<Response<Body>, ApiError> {
    if id.is_empty() || id.contains('/') {
        return Err(ApiError::not_found(format!(
            "no route for DELETE /v1/agents/{id}"
        )));
    }
    let removed = {
        let mut caches = app.caches();
        caches.remove(id) || caches.remove(&format!("sess_{id}"))
    };
    if !removed {
        return Err(ApiError::not_found(format!("no agent {id:?}")));
    }
    let mut resp = Response::new(full(""));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

/// `DELETE /admin/caches`: drops every agent's cache (needs `X-Admin-Key`).
pub(crate) fn clear_caches<B>(app: &App, req: &Request<B>) -> Result<Response<Body>, ApiError> {
    let Some(key) = app.config().http.admin_key.as_deref() else {
        return Err(ApiError::forbidden(
            "admin routes are disabled: SEMANTIC_ADMIN_KEY is not set",
        ));
    };
    match req.headers().get("x-admin-key") {
        None => return Err(ApiError::unauthenticated("missing X-Admin-Key header")),
        Some(k) if k.as_bytes() != key.as_bytes() => {
            return Err(ApiError::unauthenticated("invalid X-Admin-Key"));
        }
        Some(_) => {}
    }
    let (dropped, freed) = {
        let mut caches = app.caches();
        let before = caches.figures().used_blocks;
        let dropped = caches.clear();
        (dropped, before - caches.figures().used_blocks)
    };
    Ok(json(
        StatusCode::OK,
        &json!({"status": "cleared", "agents_dropped": dropped, "blocks_freed": freed}),
    ))
}
