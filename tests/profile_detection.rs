//! `SEMANTIC_PROFILE=auto`: each reference-server personality, a LiteLLM-like proxy and an
//! unknown server are told apart by the routes they answer, and the reason names the route.
//!
//! Ungated and fast (in-process servers on loopback): `cargo test --test profile_detection`.

use std::time::Duration;

use reference_server::{Personality, ReferenceServer, ServerConfig};
use semantic_stress::target::Profile;
use semantic_stress::{StressConfig, StressHarness};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The profile `auto` picks for the server at `base_url`, with its reason.
async fn detect(base_url: &str) -> (String, String) {
    let harness = StressHarness::new(
        StressConfig::new(base_url)
            .workers(1)
            .timeout(Duration::from_secs(5)),
    )
    .expect("valid config");
    let (profile, why) = Profile::detect(harness.client()).await;
    (profile.name, why)
}

#[tokio::test]
async fn every_personality_is_recognised_by_its_routes() {
    for (kind, name, route) in [
        (Personality::Semantic, "semantic", "/health"),
        (Personality::AgentMemory, "agent-memory", "/v1/agents/stats"),
        (Personality::LlamaCpp, "llama.cpp", "/slots"),
        (Personality::Vllm, "vllm", "/metrics"),
    ] {
        let server = ReferenceServer::start(ServerConfig::default().personality(kind))
            .await
            .expect("start reference server");
        let (picked, why) = detect(&server.base_url()).await;
        assert_eq!(picked, name, "{kind:?}: {why}");
        assert!(why.contains(route), "{kind:?}: {why}");
    }
}

/// A server answering `routes` (path → 200 body) and 404 to anything else, one request per
/// connection.
async fn serve(routes: &'static [(&'static str, &'static str)]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0_u8; 4096];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let path = head.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = routes
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map_or(("404 Not Found", "{\"detail\":\"Not Found\"}"), |(_, b)| {
                        ("200 OK", *b)
                    });
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_litellm_proxy_is_recognised_by_its_liveness_route() {
    // litellm/proxy/health_endpoints/_health_endpoints.py: `return "I'm alive!"`.
    let url = serve(&[("/health/liveliness", "\"I'm alive!\"")]).await;
    let (picked, why) = detect(&url).await;
    assert_eq!(picked, "litellm", "{why}");
    assert!(why.contains("/health/liveliness"), "{why}");
    let profile = Profile::named("litellm").expect("built in");
    assert_eq!(profile.liveness.as_deref(), Some("/health/liveliness"));
}

#[tokio::test]
async fn an_unknown_server_is_assumed_to_keep_the_contract_and_the_reason_says_so() {
    let url = serve(&[]).await;
    let (picked, why) = detect(&url).await;
    assert_eq!(picked, "semantic");
    assert!(why.contains("no known server"), "{why}");
}
