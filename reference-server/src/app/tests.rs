//! The service answered in-process, without sockets: routes, bad input, auth, streaming,
//! admission and faults.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use super::*;
use crate::fault::Fault;

fn app(config: ServerConfig) -> App {
    App::new(config).expect("valid config")
}

fn request(method: Method, path: &str, body: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

fn ask(text: &str, max_tokens: u32) -> String {
    json!({"model": "m", "max_tokens": max_tokens,
           "messages": [{"role": "user", "content": text}]})
    .to_string()
}

async fn send(app: &App, req: Request<Full<Bytes>>) -> (Response<()>, Bytes) {
    let resp = tokio::time::timeout(Duration::from_secs(10), app.handle(req))
        .await
        .expect("answered in time")
        .expect("not dropped");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (Response::from_parts(parts, ()), bytes)
}

async fn error_of(app: &App, req: Request<Full<Bytes>>) -> (StatusCode, String, String) {
    let (resp, body) = send(app, req).await;
    let v: Value = serde_json::from_slice(&body).expect("JSON error body");
    assert_eq!(v["type"], "error", "{v}");
    assert!(resp.headers().contains_key("x-request-id"));
    (
        resp.status(),
        v["error"]["type"].as_str().unwrap().to_owned(),
        v["error"]["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn json_reply_has_honest_usage_and_reuse_on_the_next_turn() {
    let app = app(ServerConfig::default().instant());
    let mut req = request(
        Method::POST,
        "/v1/messages",
        &ask("hello there CANARY-k1", 50),
    );
    req.headers_mut()
        .insert("x-session-id", "s1".parse().unwrap());
    let (resp, body) = send(&app, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["usage"]["input_tokens"], 4);
    assert_eq!(v["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(v["usage"]["cache_creation_input_tokens"], 4);
    let text = v["content"][0]["text"].as_str().unwrap().to_owned();
    assert!(text.starts_with("CANARY-k1"), "{text}");
    let next = json!({"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": "hello there CANARY-k1"},
        {"role": "assistant", "content": text},
        {"role": "user", "content": "and more"}]});
    let mut req = request(Method::POST, "/v1/messages", &next.to_string());
    req.headers_mut()
        .insert("x-session-id", "s1".parse().unwrap());
    let (_, body) = send(&app, req).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    let input = v["usage"]["input_tokens"].as_u64().unwrap();
    let read = v["usage"]["cache_read_input_tokens"].as_u64().unwrap();
    assert_eq!(input - read, 3, "only the new user turn is prefilled: {v}");
    let stats = app.stats();
    assert_eq!((stats.messages_received, stats.completed), (2, 2));
    assert_eq!(stats.cache_read_tokens, read);
}

#[tokio::test]
async fn streaming_follows_the_event_sequence() {
    let app = app(ServerConfig::default().engine(|e| e.decode_tokens_per_sec = 5000.0));
    let body = json!({"model": "m", "max_tokens": 40, "stream": true,
                      "messages": [{"role": "user", "content": "stream please"}]});
    let (resp, bytes) = send(
        &app,
        request(Method::POST, "/v1/messages", &body.to_string()),
    )
    .await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = std::str::from_utf8(&bytes).unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names[..3], ["message_start", "content_block_start", "ping"]);
    assert_eq!(
        names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert!(
        names[3..names.len() - 3]
            .iter()
            .all(|n| *n == "content_block_delta")
    );
    assert!(names.len() > 6);
    let stats = app.stats();
    assert_eq!((stats.completed, stats.completed_streams), (1, 1));
    assert_eq!(stats.pool.used_blocks, stats.pool.cached_blocks);
}

#[tokio::test]
async fn bad_input_gets_the_envelope_and_a_named_problem() {
    let app = app(ServerConfig::default()
        .instant()
        .http(|h| h.max_body_bytes = 1000));
    let cases: Vec<(Request<Full<Bytes>>, StatusCode, &str, &str)> = vec![
        (
            request(Method::POST, "/v1/messages", "{oops"),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid JSON",
        ),
        (
            request(
                Method::POST,
                "/v1/messages",
                r#"{"model":"m","max_tokens":1,"messages":[]}"#,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "must not be empty",
        ),
        (
            request(Method::POST, "/v1/messages", &ask("x", 0)),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "max_tokens",
        ),
        (
            request(Method::POST, "/v1/messages", &"x".repeat(5000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            "1000 bytes",
        ),
        (
            request(Method::GET, "/v1/nothing", ""),
            StatusCode::NOT_FOUND,
            "not_found_error",
            "no route",
        ),
        (
            request(Method::GET, "/v1/messages", ""),
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "allowed: POST",
        ),
        (
            request(Method::POST, "/health", ""),
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "allowed: GET",
        ),
        (
            request(Method::POST, "/v1/messages", &ask("x", 65_536)),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "lower max_tokens",
        ),
    ];
    for (req, status, kind, needle) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let (s, k, m) = error_of(&app, req).await;
        assert_eq!((s, k.as_str()), (status, kind), "{what}: {m}");
        assert!(m.contains(needle), "{what}: {m:?} lacks {needle:?}");
    }
    let mut bad_session = request(Method::POST, "/v1/messages", "{not even json");
    bad_session
        .headers_mut()
        .insert("x-session-id", "no spaces".parse().unwrap());
    let (s, _, m) = error_of(&app, bad_session).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        m.starts_with("invalid X-Session-ID"),
        "checked before the body: {m}"
    );
    let (resp, _) = send(
        &app,
        request(Method::POST, "/v1/messages", &ask("still fine", 5)),
    )
    .await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "bad input never affects others"
    );
    assert_eq!(app.stats().invalid_requests, 6);
}

#[tokio::test]
async fn auth_exempts_health_and_request_ids_are_echoed() {
    let app = app(ServerConfig::default()
        .instant()
        .http(|h| h.api_keys = vec!["k1".into(), "k2".into()]));
    let (s, k, _) = error_of(&app, request(Method::GET, "/v1/models", "")).await;
    assert_eq!(
        (s, k.as_str()),
        (StatusCode::UNAUTHORIZED, "authentication_error")
    );
    let mut req = request(Method::GET, "/v1/models", "");
    req.headers_mut()
        .insert("anthropic-api-key", "k2".parse().unwrap());
    req.headers_mut()
        .insert("x-request-id", "abc-123".parse().unwrap());
    let (resp, body) = send(&app, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["data"][0]["cache"]["total_blocks"], 768);
    let (resp, _) = send(&app, request(Method::GET, "/health/live", "")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
}

#[tokio::test]
async fn exhaustion_is_refused_at_once_with_retry_after_and_recovers() {
    let app = app(ServerConfig::default()
        .pool(|p| p.cache_budget_mb = 32)
        .engine(|e| e.decode_tokens_per_sec = 200.0));
    let mut tasks = Vec::new();
    for i in 0..80 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut req = request(
                Method::POST,
                "/v1/messages",
                &ask("a prompt of a few words", 100),
            );
            req.headers_mut()
                .insert("x-session-id", format!("a{i}").parse().unwrap());
            send(&app, req).await.0
        }));
    }
    let mut rejected = 0;
    for t in tasks {
        let resp = t.await.unwrap();
        match resp.status().as_u16() {
            200 => {}
            429 => {
                rejected += 1;
                let after: u64 = resp.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(after >= 1);
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(rejected, 20, "60 fit under 95% of 256 blocks");
    let stats = app.stats();
    assert_eq!(stats.rejected_by_status.get(&429), Some(&20));
    assert!(stats.pool.peak_utilization > 0.9);
    let (ready, _) = send(&app, request(Method::GET, "/health/ready", "")).await;
    assert_eq!(
        ready.status(),
        StatusCode::OK,
        "in-flight blocks were released"
    );
    let (resp, _) = send(
        &app,
        request(Method::POST, "/v1/messages", &ask("after", 10)),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn faults_change_behaviour() {
    // 8 blocks, admission stops at 7; without recovery the first reply keeps its 4.
    let crash = app(ServerConfig::default()
        .instant()
        .pool(|p| p.cache_budget_mb = 1)
        .fault(Fault::NoRecovery)
        .fault(Fault::CrashOnExhaustion));
    let (first, _) = send(
        &crash,
        request(Method::POST, "/v1/messages", &ask("x", 100)),
    )
    .await;
    assert_eq!(first.status(), StatusCode::OK);
    let (s, k, _) = error_of(
        &crash,
        request(Method::POST, "/v1/messages", &ask("y", 100)),
    )
    .await;
    assert_eq!((s.as_u16(), k.as_str()), (500, "api_error"));

    let bleed = app(ServerConfig::default()
        .instant()
        .fault(Fault::CrossAgentBleed));
    let mut a = request(Method::POST, "/v1/messages", &ask("secret CANARY-aaa", 5));
    a.headers_mut().insert("x-session-id", "a".parse().unwrap());
    send(&bleed, a).await;
    let mut b = request(
        Method::POST,
        "/v1/messages",
        &ask("what do you remember", 5),
    );
    b.headers_mut().insert("x-session-id", "b".parse().unwrap());
    let (_, body) = send(&bleed, b).await;
    assert!(String::from_utf8_lossy(&body).contains("CANARY-aaa"));

    let drop = app(ServerConfig::default()
        .instant()
        .fault(Fault::DropConnection { every: 2 }));
    assert!(
        drop.handle(request(Method::POST, "/v1/messages", &ask("x", 5)))
            .await
            .is_ok()
    );
    assert!(
        drop.handle(request(Method::POST, "/v1/messages", &ask("x", 5)))
            .await
            .is_err()
    );
    assert_eq!(drop.stats().connections_dropped, 1);

    let leak = app(ServerConfig::default().instant().fault(Fault::Leak {
        bytes_per_request: 4096,
    }));
    send(&leak, request(Method::POST, "/v1/messages", &ask("x", 5))).await;
    assert_eq!(leak.stats().leaked_bytes, 4096);

    let hang = app(ServerConfig::default()
        .instant()
        .fault(Fault::Hang { after_requests: 1 }));
    send(&hang, request(Method::POST, "/v1/messages", &ask("x", 5))).await;
    let hung = tokio::time::timeout(
        Duration::from_millis(100),
        hang.handle(request(Method::GET, "/health", "")),
    )
    .await;
    assert!(hung.is_err(), "no answer after the first request");
    hang.begin_drain();
    assert!(
        hang.handle(request(Method::GET, "/health", ""))
            .await
            .is_err(),
        "released by shutdown"
    );
}

#[tokio::test]
async fn admin_and_agent_deletion() {
    let app = app(ServerConfig::default()
        .instant()
        .http(|h| h.admin_key = Some("adm".into())));
    let mut req = request(Method::POST, "/v1/messages", &ask("x", 5));
    req.headers_mut()
        .insert("x-session-id", "gone".parse().unwrap());
    send(&app, req).await;
    assert_eq!(app.stats().agents.hot_count, 1);
    let (resp, _) = send(&app, request(Method::DELETE, "/v1/agents/sess_gone", "")).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (s, _, _) = error_of(&app, request(Method::DELETE, "/v1/agents/sess_gone", "")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    send(&app, request(Method::POST, "/v1/messages", &ask("y", 5))).await;
    let (s, _, _) = error_of(&app, request(Method::DELETE, "/admin/caches", "")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let mut req = request(Method::DELETE, "/admin/caches", "");
    req.headers_mut()
        .insert("x-admin-key", "adm".parse().unwrap());
    let (resp, body) = send(&app, req).await;
    assert_eq!(resp.status(), StatusCode::OK, "{body:?}");
    assert_eq!(app.stats().pool.used_blocks, 0);
    let (resp, body) = send(&app, request(Method::GET, "/metrics", "")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains(
            "semantic_request_total{method=\"DELETE\",path=\"/admin/caches\",status_code=\"200\"} 1"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn more_faults_change_behaviour() {
    // late-reject: a refused request runs its generation first, then fails.
    let config = ServerConfig::default()
        .pool(|p| p.cache_budget_mb = 1)
        .engine(|e| e.decode_tokens_per_sec = 400.0)
        .fault(Fault::NoRecovery)
        .fault(Fault::LateReject)
        .fault(Fault::NoRetryAfter);
    let late = app(config);
    send(
        &late,
        request(Method::POST, "/v1/messages", &ask("fill", 100)),
    )
    .await;
    let started = std::time::Instant::now();
    let (s, k, _) = error_of(
        &late,
        request(Method::POST, "/v1/messages", &ask("late", 100)),
    )
    .await;
    assert_eq!((s.as_u16(), k.as_str()), (429, "overloaded_error"));
    assert!(
        started.elapsed() >= Duration::from_millis(30),
        "failed only after generating"
    );
    assert_eq!(late.stats().late_rejected, 1);
    let (resp, _) = send(
        &late,
        request(Method::POST, "/v1/messages", &ask("late", 100)),
    )
    .await;
    assert!(
        resp.headers().get("retry-after").is_none(),
        "no-retry-after"
    );

    // truncate-stream: no message_stop.
    let trunc = app(ServerConfig::default()
        .instant()
        .fault(Fault::TruncateStream));
    let body = json!({"model": "m", "max_tokens": 5, "stream": true,
                      "messages": [{"role": "user", "content": "x"}]});
    let (_, bytes) = send(
        &trunc,
        request(Method::POST, "/v1/messages", &body.to_string()),
    )
    .await;
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("content_block_delta") && !text.contains("message_stop"));
    assert_eq!(trunc.stats().streams_truncated, 1);

    // degrade: each request waits longer than the last.
    let step = Duration::from_millis(20);
    let slow = app(ServerConfig::default()
        .instant()
        .fault(Fault::Degrade { step }));
    for _ in 0..3 {
        send(&slow, request(Method::POST, "/v1/messages", &ask("x", 5))).await;
    }
    let started = std::time::Instant::now();
    send(&slow, request(Method::POST, "/v1/messages", &ask("x", 5))).await;
    assert!(started.elapsed() >= step * 3);

    // blocking-health: probes wait while inference is in flight.
    let blocking = app(ServerConfig::default()
        .engine(|e| e.decode_tokens_per_sec = 100.0)
        .fault(Fault::BlockingHealth));
    let busy = {
        let app = blocking.clone();
        tokio::spawn(async move {
            send(&app, request(Method::POST, "/v1/messages", &ask("x", 30))).await
        })
    };
    while blocking.stats().in_flight == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let started = std::time::Instant::now();
    let (resp, _) = send(&blocking, request(Method::GET, "/health/live", "")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "live waited for inference"
    );
    busy.await.unwrap();
}

#[tokio::test]
async fn no_cache_and_rate_limits() {
    let app = app(ServerConfig::default()
        .instant()
        .fault(Fault::NoCache)
        .admission(|a| a.agent_rate_limit = Some(2)));
    let turn = |n: u32| {
        let mut req = request(Method::POST, "/v1/messages", &ask("same prompt again", n));
        req.headers_mut()
            .insert("x-session-id", "rl".parse().unwrap());
        req
    };
    send(&app, turn(5)).await;
    let (_, body) = send(&app, turn(5)).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["usage"]["cache_read_input_tokens"], 0,
        "no-cache never reuses"
    );
    let (s, k, m) = error_of(&app, turn(5)).await;
    assert_eq!((s.as_u16(), k.as_str()), (429, "rate_limit_error"), "{m}");
    assert_eq!(app.stats().rate_limited, 1);
}
