//! llama.cpp: fixed slots and a queue that never refuses, prefix reuse reported outside
//! `input_tokens`, cancellation, its routes and OpenAI-style errors.

use std::time::Duration;

use http::StatusCode;

use super::*;

fn llama(edit: impl FnOnce(ServerConfig) -> ServerConfig) -> App {
    app(Personality::LlamaCpp, edit)
}

#[tokio::test]
async fn beyond_four_slots_requests_wait_and_none_gets_a_429() {
    let app = llama(|c| {
        c.engine(|e| e.decode_tokens_per_sec = 1000.0)
            .personality_options(|p| p.metrics = true)
    });
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                send(&app, ask(&format!("q{i}"), 40, i % 2 == 0, None))
                    .await
                    .0
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(15)).await;
    let (_, slots) = send(&app, get("/slots")).await;
    let slots = json_of(&slots);
    assert_eq!(slots.as_array().unwrap().len(), 4);
    let busy = slots
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["is_processing"] == true)
        .count();
    assert_eq!(busy, 4, "every slot is taken");
    let (_, m) = send(&app, get("/metrics")).await;
    let text = String::from_utf8_lossy(&m).into_owned();
    assert!(text.contains("llamacpp:requests_processing 4"), "{text}");
    assert!(
        !text.contains("llamacpp:requests_deferred 0\n"),
        "the rest wait: {text}"
    );
    for t in tasks {
        assert_eq!(
            t.await.unwrap().status(),
            StatusCode::OK,
            "never 429 for capacity"
        );
    }
}

#[tokio::test]
async fn a_shared_prefix_is_reused_and_reported_outside_input_tokens() {
    let app = llama(ServerConfig::instant);
    let prefix = words(0, 300);
    let (_, a) = send(
        &app,
        ask(&format!("{prefix} agent A"), 10, false, Some("A")),
    )
    .await;
    let a = json_of(&a);
    assert_eq!(a["usage"]["cache_read_input_tokens"], 0);
    assert!(a["usage"].get("cache_creation_input_tokens").is_none());
    assert_eq!(
        a["model"], "semantic-reference-tiny",
        "the server's name, not the request's"
    );
    let (_, b) = send(
        &app,
        ask(&format!("{prefix} agent B"), 10, false, Some("B")),
    )
    .await;
    let b = json_of(&b);
    let read = b["usage"]["cache_read_input_tokens"].as_u64().unwrap();
    assert!(read >= 300, "B reuses the prefix A left in the slot: {b}");
    assert!(
        !b["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("agent A")
    );
    let total = read + b["usage"]["input_tokens"].as_u64().unwrap();
    assert_eq!(total, 303, "input_tokens excludes the cached tokens");
}

#[tokio::test]
async fn a_disconnected_request_frees_its_slot() {
    let app = llama(|c| c.engine(|e| e.decode_tokens_per_sec = 100.0));
    let gone = tokio::time::timeout(
        Duration::from_millis(50),
        app.handle(ask("long work", 200, false, None)),
    )
    .await;
    assert!(gone.is_err());
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(app.stats().running, 0, "the engine dropped it");
    let (_, slots) = send(&app, get("/slots")).await;
    assert!(
        json_of(&slots)
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["is_processing"] == false)
    );
    assert_eq!(app.stats().cancelled, 1);
}

#[tokio::test]
async fn routes_errors_and_thinking_are_llama_servers() {
    let app = llama(|c| c.instant().personality_options(|p| p.thinking = true));
    let (_, h) = send(&app, get("/health")).await;
    assert_eq!(json_of(&h), json!({"status": "ok"}));
    let (resp, body) = send(&app, get("/health/live")).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        json_of(&body),
        json!({"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})
    );
    let (resp, _) = send(&app, get("/metrics")).await;
    assert_eq!(
        resp.status(),
        StatusCode::NOT_IMPLEMENTED,
        "only with --metrics"
    );
    let bad = Request::builder()
        .method(Method::POST)
        .uri("/v1/messages")
        .body(Full::new(Bytes::from("{oops")))
        .unwrap();
    let (resp, body) = send(&app, bad).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&body)["error"]["code"], 400);
    let (_, reply) = send(&app, ask("think first", 30, false, None)).await;
    let reply = json_of(&reply);
    assert_eq!(reply["content"][0]["type"], "thinking");
    assert_eq!(reply["content"][1]["type"], "text");
    let (_, stream) = send(&app, ask("think first", 30, true, None)).await;
    let ev = events(&stream);
    assert_eq!(ev[0].0, "message_start");
    assert_eq!(ev[1].1["content_block"]["type"], "thinking");
    assert!(!names(&ev).contains(&"ping"));
    assert_eq!(ev.last().unwrap().0, "message_stop");
}

#[tokio::test]
async fn keys_come_from_authorization_or_else_x_api_key() {
    let app = llama(|c| c.instant().http(|h| h.api_keys = vec!["k".into()]));
    let with = |name: &str, value: &str| {
        let mut r = ask("x", 5, false, None);
        r.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        r
    };
    assert_eq!(
        send(&app, with("authorization", "Bearer k"))
            .await
            .0
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&app, with("x-api-key", "k")).await.0.status(),
        StatusCode::OK
    );
    let (resp, body) = send(&app, ask("x", 5, false, None)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(&body)["error"]["type"], "authentication_error");
    assert_eq!(
        send(&app, get("/health")).await.0.status(),
        StatusCode::OK,
        "public"
    );
}

#[tokio::test]
async fn an_overfull_context_fails_every_running_task_with_500() {
    // 1 MB of the tiny model: 8 blocks of 4 layers, 512 tokens of context for all slots.
    let app = llama(|c| {
        c.pool(|p| p.cache_budget_mb = 1)
            .engine(|e| e.decode_tokens_per_sec = 200.0)
    });
    let first = {
        let app = app.clone();
        tokio::spawn(async move { send(&app, ask("first", 300, false, None)).await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (resp, body) = send(&app, ask("second", 300, false, None)).await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        json_of(&body)["error"]["message"],
        "Context size has been exceeded."
    );
    let (resp, _) = first.await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "the running one fails too"
    );
}
