//! Deleting a test's agents: the request sent (method, path, headers), 404 as already gone, the
//! time budget against a server that never answers, nothing sent without a deletion, and the
//! reference server's agent-memory personality freeing its pool.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::StressConfig;
use crate::target::{Profile, Target};

/// A loopback server that keeps every request head it reads and answers 404 for paths that
/// contain `gone`, 429 for paths that contain `limit`, 204 otherwise, or never answers when
/// `hang`.
struct Capture {
    url: String,
    heads: Arc<Mutex<Vec<String>>>,
}

async fn capture(hang: bool) -> Capture {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&heads);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let kept = Arc::clone(&kept);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    kept.lock().unwrap().push(head.clone());
                    if hang {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    let line = head.lines().next().unwrap_or("");
                    let answer: &[u8] = if line.contains("gone") {
                        b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 22\r\n\r\n{\"detail\":\"not found\"}"
                    } else if line.contains("limit") {
                        b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 50\r\ncontent-length: 0\r\n\r\n"
                    } else {
                        b"HTTP/1.1 204 No Content\r\n\r\n"
                    };
                    if tcp.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Capture { url, heads }
}

fn target(url: &str, delete: Option<Deletion>) -> Target {
    let config = StressConfig::new(url).api_key("k1").header(
        HeaderName::from_static("x-team"),
        HeaderValue::from_static("blue"),
    );
    let mut profile = Profile::named("semantic").unwrap();
    profile.agents.delete = delete;
    Target::new(config)
        .profile(profile)
        .admin_key(Some("adm".to_owned()))
}

fn deletion() -> Deletion {
    Deletion {
        method: "DELETE".to_owned(),
        path: "/v1/agents/sess_{id}".to_owned(),
        headers: [("X-Admin-Key".to_owned(), "${SEMANTIC_ADMIN_KEY}".to_owned())].into(),
    }
}

fn ids(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn every_agent_is_deleted_with_the_targets_credentials_and_404_is_already_gone() {
    let server = capture(false).await;
    let target = target(&server.url, Some(deletion()));
    let c = target.delete_agents(ids(&["a-1", "a-2", "gone-3"])).await;
    assert_eq!(
        (c.agents, c.deleted, c.already_gone, c.failed, c.not_sent),
        (3, 2, 1, 0, 0),
        "{c}"
    );
    assert!(c.complete() && c.skipped.is_none() && c.first_failure.is_none());
    let mut heads = server.heads.lock().unwrap().clone();
    heads.sort();
    assert_eq!(heads.len(), 3, "one request per agent: {heads:?}");
    for (head, id) in heads.iter().zip(["a-1", "a-2", "gone-3"]) {
        let lower = head.to_ascii_lowercase();
        assert!(
            head.starts_with(&format!("DELETE /v1/agents/sess_{id} HTTP/1.1")),
            "{head}"
        );
        for header in ["x-api-key: k1", "x-team: blue", "x-admin-key: adm"] {
            assert!(lower.contains(header), "{header} missing: {head}");
        }
    }
    assert!(c.to_string().contains("2 deleted, 1 already gone"), "{c}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_bounded_by_the_budget() {
    let server = capture(true).await;
    let limits = CleanupLimits {
        budget: Duration::from_millis(400),
        concurrency: 2,
    };
    let target = target(&server.url, Some(deletion())).cleanup_limits(limits);
    let started = Instant::now();
    let c = target.delete_agents(ids(&["a", "b", "c", "d", "e"])).await;
    assert!(started.elapsed() < Duration::from_secs(2), "{c}");
    assert_eq!(c.failed, 2, "the two in flight are abandoned: {c}");
    assert_eq!(c.not_sent, 3, "the rest are never sent: {c}");
    assert_eq!(c.deleted + c.already_gone, 0);
    assert!(
        c.first_failure
            .as_deref()
            .is_some_and(|f| f.contains("within")),
        "{c}"
    );
    assert_eq!(server.heads.lock().unwrap().len(), 2, "{c}");
    assert!(!c.complete());
}

#[tokio::test]
async fn a_rate_limited_deletion_stops_the_cleanup() {
    let server = capture(false).await;
    let limits = CleanupLimits {
        budget: Duration::from_secs(5),
        concurrency: 1,
    };
    let target = target(&server.url, Some(deletion())).cleanup_limits(limits);
    // Popped from the end: `limit-4` first.
    let c = target
        .delete_agents(ids(&["a-1", "a-2", "a-3", "limit-4"]))
        .await;
    assert_eq!((c.failed, c.not_sent, c.deleted), (1, 3, 0), "{c}");
    assert!(
        c.first_failure
            .as_deref()
            .is_some_and(|f| f.contains("rate limited")),
        "{c}"
    );
    assert_eq!(server.heads.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn nothing_is_sent_without_a_deletion_or_with_an_unset_variable() {
    let server = capture(false).await;
    let c = target(&server.url, None)
        .delete_agents(ids(&["a", "b"]))
        .await;
    assert_eq!((c.agents, c.deleted, c.failed), (2, 0, 0));
    assert!(
        c.skipped
            .as_deref()
            .is_some_and(|s| s.contains("declares no agent deletion")),
        "{c}"
    );
    let mut unset = deletion();
    unset.headers = [(
        "X-Key".to_owned(),
        "${SEMANTIC_TEST_UNSET_VARIABLE}".to_owned(),
    )]
    .into();
    let c = target(&server.url, Some(unset))
        .delete_agents(ids(&["a"]))
        .await;
    assert!(c.skipped.is_some(), "{c}");
    assert!(server.heads.lock().unwrap().is_empty());
    // The built-in profiles of servers without agents declare none.
    for name in ["llama.cpp", "vllm", "sglang"] {
        assert_eq!(Profile::named(name).unwrap().agents.delete, None, "{name}");
    }
}

#[test]
fn ids_are_substituted_encoded_and_a_path_needs_one() {
    let d = deletion();
    let t = d.template(|_| Some("adm".to_owned())).unwrap().unwrap();
    assert_eq!(
        Deletion::for_agent(&t, "agent-1f/x y").path,
        "/v1/agents/sess_agent-1f%2Fx%20y"
    );
    let no_id = Deletion {
        path: "/v1/agents".to_owned(),
        ..d
    };
    assert!(no_id.template(|_| None).is_err());
    let text = "name = \"x\"\ndescription = \"\"\nliveness = \"/h\"\nagent_header = \"X-Session-ID\"\nusage = \"none\"\nshared_prefix = false\ncancels_on_disconnect = true\n[rejection]\ncapacity = false\n[agents]\ndelete = { method = \"DELETE\", path = \"/v1/agents\" }\n";
    let err = Profile::from_toml(text).unwrap_err().to_string();
    assert!(err.contains("{id}"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_memory_frees_the_pool_blocks_of_deleted_agents() {
    use reference_server::{Personality, ReferenceServer, ServerConfig};
    let server =
        ReferenceServer::start(ServerConfig::default().personality(Personality::AgentMemory))
            .await
            .unwrap();
    let target = Target::new(StressConfig::new(server.base_url()))
        .profile(Profile::named("agent-memory").unwrap());
    let report = crate::suite::rapid_agents(&target, "cleanup", 3, 2)
        .await
        .unwrap();
    let c = report.cleanup.clone().expect("a cleanup summary");
    assert_eq!((c.agents, c.deleted, c.failed), (3, 3, 0), "{c}");
    let stats = server.stats();
    assert_eq!(stats.pool.used_blocks, 0, "{stats:?}");
    // Deleting them again finds them gone.
    let again = target
        .delete_agents(
            report.figures["per_agent_completed"]
                .as_object()
                .unwrap()
                .keys()
                .cloned(),
        )
        .await;
    assert_eq!(again.already_gone, 3, "{again}");
    server.shutdown().await;
}

#[test]
fn a_cleanup_where_every_deletion_found_nothing_says_the_route_may_be_missing() {
    let all_404 = Cleanup {
        agents: 3,
        already_gone: 3,
        ..Cleanup::default()
    };
    assert!(all_404.to_string().contains("no such route"), "{all_404}");
    let some_deleted = Cleanup {
        agents: 3,
        deleted: 1,
        already_gone: 2,
        ..Cleanup::default()
    };
    assert!(
        !some_deleted.to_string().contains("no such route"),
        "{some_deleted}"
    );
}
