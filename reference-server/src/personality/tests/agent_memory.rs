//! agent-memory: static batches of two, no cancellation, a hit-flag usage, blocks never freed
//! while idle, 503 `{"detail"}` without `Retry-After` after the generation, a rejected stream
//! that still answers 200, and a global rate limiter that counts `/health`.

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;

use super::*;

fn am(edit: impl FnOnce(ServerConfig) -> ServerConfig) -> App {
    app(Personality::AgentMemory, edit)
}

#[tokio::test]
async fn the_batch_never_holds_a_third_sequence_and_the_queue_never_refuses() {
    let app = am(|c| c.engine(|e| e.decode_tokens_per_sec = 400.0));
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                send(&app, ask("hi", 40, false, Some(&format!("b{i}"))))
                    .await
                    .0
            })
        })
        .collect();
    let mut most = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        most = most.max(app.stats().running);
    }
    assert_eq!(most, 2, "two sequences at most decode together");
    for t in tasks {
        assert_eq!(
            t.await.unwrap().status(),
            StatusCode::OK,
            "everyone is served"
        );
    }
}

#[tokio::test]
async fn a_disconnected_request_keeps_decoding() {
    let app = am(|c| c.engine(|e| e.decode_tokens_per_sec = 200.0));
    let gone = tokio::time::timeout(
        Duration::from_millis(50),
        app.handle(ask("work on", 60, false, Some("leaver"))),
    )
    .await;
    assert!(gone.is_err(), "the client gave up first");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(app.stats().running, 1, "the sequence still decodes");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(app.stats().running, 0);
    assert!(
        app.stats().pool.used_blocks > 0,
        "its finished sequence took blocks"
    );
}

#[tokio::test]
async fn usage_reports_a_hit_flag_and_sessions_name_the_agent() {
    let app = am(ServerConfig::instant);
    let (_, first) = send(&app, ask("hello there", 10, false, Some("s1"))).await;
    let u = &json_of(&first)["usage"];
    let n = u["input_tokens"].as_u64().unwrap();
    assert_eq!(
        (
            u["cache_read_input_tokens"].as_u64(),
            u["cache_creation_input_tokens"].as_u64()
        ),
        (Some(0), Some(n))
    );
    let (_, second) = send(&app, ask("something else entirely", 10, false, Some("s1"))).await;
    let u = &json_of(&second)["usage"];
    assert_eq!(
        u["cache_read_input_tokens"], u["input_tokens"],
        "the whole prompt counts as read on any hit, even a different one"
    );
    let del = Request::builder()
        .method(Method::DELETE)
        .uri("/v1/agents/sess_s1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&app, del).await.0.status(), StatusCode::NO_CONTENT);
    // Without a session, identical prompts are one agent (a hash of the first 100 tokens).
    send(&app, ask("same words", 10, false, None)).await;
    let (_, again) = send(&app, ask("same words", 10, false, None)).await;
    assert!(json_of(&again)["usage"]["cache_read_input_tokens"].as_u64() > Some(0));
}

#[tokio::test]
async fn idle_agents_hold_their_blocks_and_exhaustion_is_a_late_503_without_retry_after() {
    // 2 MB: 16 blocks of 4 layers; three short agents take 12 and keep them while idle.
    let app = am(|c| {
        c.pool(|p| p.cache_budget_mb = 2)
            .engine(|e| e.decode_tokens_per_sec = 100.0)
    });
    for i in 0..3 {
        let (resp, _) = send(&app, ask("short", 5, false, Some(&format!("idle{i}")))).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        app.stats().pool.used_blocks,
        12,
        "idle agents' blocks are never freed"
    );
    // A cold prompt of 300 tokens fits its placeholder (2 blocks) but not its finished sequence
    // (8 blocks): refused only after the generation ran.
    let started = Instant::now();
    let (resp, body) = send(&app, ask(&words(0, 300), 40, false, Some("late"))).await;
    let took = started.elapsed();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().get("retry-after").is_none());
    let v = json_of(&body);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("Server capacity exceeded: Requested 8 blocks"),
        "{v}"
    );
    assert!(v.get("type").is_none(), "not the Anthropic envelope");
    // Replies are at least 16 tokens: at least 160 ms of decode at 100 tokens/s.
    assert!(
        took >= Duration::from_millis(150),
        "after the generation: {took:?}"
    );
}

#[tokio::test]
async fn a_rejected_stream_is_a_200_with_zero_tokens_and_the_normal_events() {
    // 1 MB: 8 blocks; two idle agents fill them, so a third cold one gets no placeholder.
    let app = am(|c| c.pool(|p| p.cache_budget_mb = 1).instant());
    for i in 0..2 {
        send(&app, ask("short", 5, false, Some(&format!("full{i}")))).await;
    }
    let (resp, body) = send(&app, ask("stream please", 20, true, Some("cold"))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ev = events(&body);
    assert_eq!(
        names(&ev),
        [
            "message_start",
            "content_block_start",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let delta = &ev[3].1;
    assert_eq!(delta["usage"]["output_tokens"], 0);
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    let (resp, body) = send(&app, ask("json please", 20, false, Some("cold2"))).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{body:?}");
}

#[tokio::test]
async fn health_is_bare_and_pool_figures_are_elsewhere() {
    let app = am(ServerConfig::instant);
    send(&app, ask("x", 5, false, Some("one"))).await;
    let (_, h) = send(&app, get("/health")).await;
    assert_eq!(json_of(&h), json!({"status": "ok"}));
    let (_, s) = send(&app, get("/v1/agents/stats")).await;
    assert!(json_of(&s)["pool_utilization_pct"].as_f64().unwrap() > 0.0);
    let (_, d) = send(&app, get("/debug/memory")).await;
    assert_eq!(json_of(&d)["pool_used_blocks"], 4);
    let (_, m) = send(&app, get("/metrics")).await;
    let text = String::from_utf8_lossy(&m);
    assert!(text.contains("semantic_request_total"));
    assert!(
        !text.contains("process_resident_memory_bytes"),
        "a private registry"
    );
    let (resp, body) = send(&app, get("/nowhere")).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_of(&body), json!({"detail": "Not Found"}));
}

#[tokio::test]
async fn the_global_rate_limit_counts_health_and_answers_without_the_envelope() {
    let app = am(|c| c.instant().admission(|a| a.global_rate_limit = Some(3)));
    for _ in 0..3 {
        assert_eq!(send(&app, get("/health")).await.0.status(), StatusCode::OK);
    }
    let (resp, body) = send(&app, ask("x", 5, false, None)).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let v: Value = json_of(&body);
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert!(v.get("type").is_none(), "no top-level \"type\": \"error\"");
    assert_eq!(
        send(&app, get("/health/live")).await.0.status(),
        StatusCode::OK,
        "exempt"
    );
}

#[tokio::test]
async fn admin_reset_frees_every_block_and_needs_the_key() {
    let app = am(|c| c.instant().http(|h| h.admin_key = Some("adm".into())));
    send(&app, ask("x", 5, false, Some("a"))).await;
    let del = |key: Option<&str>| {
        let mut b = Request::builder()
            .method(Method::DELETE)
            .uri("/admin/caches");
        if let Some(k) = key {
            b = b.header("x-admin-key", k);
        }
        b.body(Full::new(Bytes::new())).unwrap()
    };
    let (resp, body) = send(&app, del(None)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        json_of(&body)["detail"]
            .as_str()
            .unwrap()
            .contains("X-Admin-Key")
    );
    let (resp, body) = send(&app, del(Some("adm"))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(json_of(&body)["status"], "success");
    assert_eq!(app.stats().pool.used_blocks, 0);
}
