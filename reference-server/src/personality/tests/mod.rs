//! Each modelled behaviour of each personality is a property tested here, in-process.

mod agent_memory;
mod llamacpp;
mod vllm;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::app::App;
use crate::config::ServerConfig;
use crate::personality::Personality;

/// A service of `kind` with its defaults, edited by `edit`.
fn app(kind: Personality, edit: impl FnOnce(ServerConfig) -> ServerConfig) -> App {
    App::new(edit(ServerConfig::default().personality(kind))).expect("valid config")
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::GET)
        .uri(path)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A messages request of `text`, for session `session` (if any).
fn ask(text: &str, max_tokens: u32, stream: bool, session: Option<&str>) -> Request<Full<Bytes>> {
    let body = json!({"model": "semantic-reference-tiny", "max_tokens": max_tokens,
                      "stream": stream, "messages": [{"role": "user", "content": text}]});
    let mut b = Request::builder()
        .method(Method::POST)
        .uri("/v1/messages")
        .header("content-type", "application/json");
    if let Some(s) = session {
        b = b.header("x-session-id", s);
    }
    b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

/// Sends and reads the whole answer (bounded by 20 s).
async fn send(app: &App, req: Request<Full<Bytes>>) -> (Response<()>, Bytes) {
    let resp = tokio::time::timeout(Duration::from_secs(20), app.handle(req))
        .await
        .expect("answered in time")
        .expect("not dropped");
    let (parts, body) = resp.into_parts();
    let bytes = tokio::time::timeout(Duration::from_secs(20), body.collect())
        .await
        .expect("body in time")
        .unwrap()
        .to_bytes();
    (Response::from_parts(parts, ()), bytes)
}

fn json_of(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{e}: {bytes:?}"))
}

/// The (event, data) pairs of an SSE body.
fn events(bytes: &Bytes) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(bytes).unwrap();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap();
                }
            }
            (name, data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

/// A long prompt of `n` distinct words starting at `seed`.
fn words(seed: usize, n: usize) -> String {
    (seed..seed + n)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}
