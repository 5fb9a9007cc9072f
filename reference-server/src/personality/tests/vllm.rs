//! vLLM: large continuous batches, an unbounded queue, preemption instead of rejection, a
//! prefix cache shared by all requests, inclusive usage, its metrics, model check and auth.
//! Also the semantic personality's copy of vLLM's serving families.

use std::time::Duration;

use http::StatusCode;

use super::*;

fn vllm(edit: impl FnOnce(ServerConfig) -> ServerConfig) -> App {
    app(Personality::Vllm, edit)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test]
async fn a_full_kv_cache_preempts_and_everyone_is_served() {
    // 1 MB: 512 tokens of KV in blocks of 16; 12 requests of ~100 tokens outgrow it.
    let app = vllm(|c| {
        c.pool(|p| p.cache_budget_mb = 1)
            .engine(|e| e.decode_tokens_per_sec = 1000.0)
    });
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                send(&app, ask(&words(i * 1000, 12), 100, false, None))
                    .await
                    .0
            })
        })
        .collect();
    let mut waited = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited |= app.stats().queued > 0;
    }
    for t in tasks {
        assert_eq!(
            t.await.unwrap().status(),
            StatusCode::OK,
            "no request is refused"
        );
    }
    assert!(waited, "some waited for KV room");
    let (_, m) = send(&app, get("/metrics")).await;
    let text = String::from_utf8_lossy(&m).into_owned();
    assert!(metric(&text, "vllm:num_preemptions_total") > 0.0, "{text}");
}

#[tokio::test]
async fn the_prefix_cache_is_shared_and_usage_has_no_cache_fields() {
    let app = vllm(ServerConfig::instant);
    let prefix = words(0, 320);
    for agent in ["A", "B"] {
        let (_, body) = send(
            &app,
            ask(&format!("{prefix} {agent}"), 10, false, Some(agent)),
        )
        .await;
        let usage = &json_of(&body)["usage"];
        assert!(usage.get("cache_read_input_tokens").is_none(), "{usage}");
        assert_eq!(usage["input_tokens"], 322, "the whole prompt");
    }
    let (_, m) = send(&app, get("/metrics")).await;
    let text = String::from_utf8_lossy(&m).into_owned();
    assert!(
        metric(&text, "vllm:prefix_cache_hits_total") >= 320.0,
        "B hit A's blocks"
    );
    assert_eq!(metric(&text, "vllm:prefix_cache_queries_total"), 644.0);
    for family in [
        "vllm:kv_cache_usage_perc",
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "process_resident_memory_bytes",
    ] {
        assert!(text.contains(family), "{family}");
    }
}

#[tokio::test]
async fn a_disconnected_request_is_aborted() {
    let app = vllm(|c| c.engine(|e| e.decode_tokens_per_sec = 100.0));
    let gone = tokio::time::timeout(
        Duration::from_millis(50),
        app.handle(ask("long work", 200, false, None)),
    )
    .await;
    assert!(gone.is_err());
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(app.stats().running, 0, "the engine aborted it");
}

#[tokio::test]
async fn health_model_check_and_bearer_auth_are_vllms() {
    let app = vllm(|c| c.instant().http(|h| h.api_keys = vec!["k".into()]));
    let (resp, body) = send(&app, get("/health")).await;
    assert_eq!(
        (resp.status(), body.len()),
        (StatusCode::OK, 0),
        "empty 200"
    );
    let (resp, body) = send(&app, ask("x", 5, false, None)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(&body), json!({"error": "Unauthorized"}));
    let mut x_api_key = ask("x", 5, false, None);
    x_api_key
        .headers_mut()
        .insert("x-api-key", "k".parse().unwrap());
    assert_eq!(
        send(&app, x_api_key).await.0.status(),
        StatusCode::UNAUTHORIZED,
        "Bearer only"
    );
    let bearer = |body: &str| {
        let mut r = Request::builder()
            .method(Method::POST)
            .uri("/v1/messages")
            .header("authorization", "Bearer k")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        r
    };
    let unknown = json!({"model": "gpt-x", "max_tokens": 5,
                         "messages": [{"role": "user", "content": "x"}]});
    let (resp, body) = send(&app, bearer(&unknown.to_string())).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        json_of(&body),
        json!({"type": "error", "error": {"type": "NotFoundError",
               "message": "The model `gpt-x` does not exist."}})
    );
    let (_, stream) = send(&app, {
        let mut r = ask("x", 5, true, None);
        r.headers_mut()
            .insert("authorization", "Bearer k".parse().unwrap());
        r
    })
    .await;
    let ev = events(&stream);
    assert_eq!(
        names(&ev),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(ev[4].1["usage"]["input_tokens"], 2);
}

#[tokio::test]
async fn the_semantic_metrics_carry_vllms_serving_families() {
    let app = app(Personality::Semantic, ServerConfig::instant);
    send(&app, ask("hello", 5, false, Some("s"))).await;
    send(&app, ask("hello", 5, false, Some("s"))).await;
    let (_, m) = send(&app, get("/metrics")).await;
    let text = String::from_utf8_lossy(&m).into_owned();
    assert!(metric(&text, "vllm:prefix_cache_hits_total") > 0.0);
    assert!(metric(&text, "vllm:prefix_cache_queries_total") > 0.0);
    for family in [
        "vllm:kv_cache_usage_perc",
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:num_preemptions_total 0",
    ] {
        assert!(text.contains(family), "{family}");
    }
}
