//! Ungated, seconds: every harness operation against the embedded reference server, checking
//! that every request sent is recorded once and that the harness's numbers match what the
//! server counted.

use std::time::{Duration, Instant};

use reference_server::{ReferenceServer, ServerConfig};
use semantic_stress::anthropic::{Message, MessagesRequest};
use semantic_stress::{
    Agent, Arrivals, Load, MetricsCollector, Outcome, Probe, Request, RequestResult, Stage, Stop,
    StressConfig, StressHarness, Sustained, checks, pool_utilization,
};

fn message(text: &str, max_tokens: u32) -> Request {
    Request::messages(&MessagesRequest::new(
        "test-model",
        vec![Message::user(text)],
        max_tokens,
    ))
}

fn harness(server: &ReferenceServer, workers: usize) -> StressHarness {
    StressHarness::new(
        StressConfig::new(server.base_url())
            .workers(workers)
            .timeout(Duration::from_secs(10)),
    )
    .expect("valid config")
}

fn messages_only(results: &[RequestResult]) -> Vec<RequestResult> {
    results
        .iter()
        .filter(|r| r.usage.is_some() || r.status != 0)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_accounted_for_and_matches_the_server() {
    let server = ReferenceServer::start(ServerConfig::default())
        .await
        .expect("start reference server");
    let mut all: Vec<RequestResult> = Vec::new();

    // Concurrent requests: n copies, `workers` at once.
    let h = harness(&server, 10);
    let results = h
        .run_concurrent_requests(&message("hello pool", 16), Some(30))
        .await
        .expect("valid load");
    assert_eq!(results.len(), 30, "one record per request");
    let m = MetricsCollector::analyze(&results);
    assert_eq!(m.successful, 30, "{:?}", m.status_codes);
    assert!(m.success_latency.p50 > Duration::ZERO);
    all.extend(results);

    // Agent workloads: conversations that grow; turn 2+ reuses the agent's cache.
    let by_agent = harness(&server, 3)
        .run_agent_workloads(3, |mut agent: Agent| async move {
            agent.max_tokens = 12;
            for i in 0..4 {
                agent
                    .send_turn(format!("turn {i} of agent {}", agent.id()))
                    .await;
            }
            agent
        })
        .await;
    assert_eq!(by_agent.len(), 3);
    let agent_results: Vec<RequestResult> = by_agent.values().flatten().cloned().collect();
    assert_eq!(agent_results.len(), 12);
    let m = MetricsCollector::analyze(&agent_results);
    assert_eq!(m.successful, 12);
    assert_eq!(m.cache.eligible, 9, "turns 2..=4 of 3 agents");
    assert_eq!(
        m.cache.hits, 9,
        "every follow-up reuses the agent's own cache"
    );
    for (id, records) in &by_agent {
        assert!(
            records
                .iter()
                .all(|r| r.agent_id.as_deref() == Some(id.as_str()))
        );
    }
    all.extend(agent_results);

    // Bursts, a ramp, and an open-loop Poisson run.
    let bursts = harness(&server, 5)
        .run_bursty(3, 5, Duration::from_millis(100), |_| message("burst", 8))
        .await
        .expect("valid load");
    assert_eq!(bursts.len(), 15);
    all.extend(bursts);
    let ramp = harness(&server, 4)
        .run_ramp_up(
            vec![
                Stage {
                    concurrency: 2,
                    hold: Duration::from_millis(300),
                },
                Stage {
                    concurrency: 4,
                    hold: Duration::from_millis(300),
                },
            ],
            |_| message("ramp", 8),
        )
        .await
        .expect("valid load");
    assert!(!ramp.is_empty());
    all.extend(ramp);
    let h = harness(&server, 8);
    let paced = h
        .run(
            Load::open(
                8,
                Arrivals::Poisson {
                    per_second: 50.0,
                    seed: 1,
                },
                Stop::after(Duration::from_secs(1)),
            ),
            |_| message("paced", 8),
        )
        .await
        .expect("valid load");
    assert_eq!(paced.sent, paced.results.len() as u64);
    assert!(
        (20..=90).contains(&paced.results.len()),
        "about 50 arrivals in 1 s: {}",
        paced.results.len()
    );
    let lag = MetricsCollector::analyze(&paced.results).scheduler_lag;
    assert!(lag.count > 0);
    all.extend(paced.results);

    // A streamed reply: time to first token, chunks, usage.
    let mut body = MessagesRequest::new("test-model", vec![Message::user("stream please")], 24);
    body.stream = true;
    let r = h
        .client()
        .send(&Request::messages(&body).keep_text(), Instant::now())
        .await;
    assert_eq!(r.outcome, Outcome::Success, "{:?}", r.error);
    assert!(r.ttft().is_some() && r.chunks > 0 && r.text.as_deref().is_some_and(|t| !t.is_empty()));
    all.push(r);

    // Sustained: streamed into histograms and windows, with memory sampling of this process
    // (the server is in-process here).
    let h = StressHarness::new(
        StressConfig::new(server.base_url())
            .workers(2)
            .rate_limit(Some(20.0)),
    )
    .expect("valid config");
    let health = Probe::start(
        h.client().clone(),
        Request::get("/health").keep_text(),
        Duration::from_millis(100),
        1000,
    );
    let s = h
        .run_sustained(
            Sustained::new(Duration::from_secs(2)).memory_pid(Some(std::process::id())),
            |mut agent: Agent, _| async move {
                agent.max_tokens = 8;
                agent.send_turn("sustained").await;
                agent
            },
        )
        .await
        .expect("valid run");
    let probes = health.stop().await;
    assert!(
        probes.iter().any(|p| pool_utilization(p).is_some()),
        "GET /health has pool figures"
    );
    assert_eq!(s.sent, s.load.total);
    assert!(
        (30..=45).contains(&s.load.total),
        "20/s for 2 s: {}",
        s.load.total
    );
    assert!(!s.windows.is_empty() && !s.memory_samples.is_empty());

    // Without a pid, server memory comes from the Prometheus gauge on GET /metrics.
    let scraped = h
        .run_sustained(
            Sustained::new(Duration::from_secs(1)).memory_from_metrics(true),
            |mut agent: Agent, _| async move {
                agent.max_tokens = 8;
                agent.send_turn("scraped").await;
                agent
            },
        )
        .await
        .expect("valid run");
    assert!(scraped.memory_error.is_none(), "{:?}", scraped.memory_error);
    assert!(scraped.memory_samples.iter().all(|m| m.rss_bytes > 0));
    assert!(!scraped.memory_samples.is_empty());

    // What the harness recorded matches what the server counted.
    let stats = server.stats();
    let recorded = all.len() as u64 + s.load.total + scraped.load.total;
    assert_eq!(
        stats.messages_received, recorded,
        "server saw every request once"
    );
    let m = MetricsCollector::analyze(&messages_only(&all));
    assert_eq!(
        stats.completed,
        m.successful + s.load.successful + scraped.load.successful
    );
    assert_eq!(
        stats.output_tokens,
        m.output_tokens + s.load.output_tokens + scraped.load.output_tokens
    );
    assert_eq!(
        stats.cache_read_tokens,
        m.cache.cache_read_tokens
            + s.load.cache.cache_read_tokens
            + scraped.load.cache.cache_read_tokens
    );
    assert!(checks::accounted(s.sent, s.load.total).passed());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_records_not_errors() {
    // Nothing listens on this port: every request is a connect failure, recorded.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let h = StressHarness::new(
        StressConfig::new(format!("http://127.0.0.1:{port}"))
            .workers(4)
            .timeout(Duration::from_secs(2)),
    )
    .expect("valid config");
    let results = h
        .run_concurrent_requests(&message("anyone?", 8), Some(8))
        .await
        .expect("valid load");
    assert_eq!(results.len(), 8);
    assert!(
        results
            .iter()
            .all(|r| r.outcome == Outcome::Connect && r.status == 0)
    );
    let m = MetricsCollector::analyze(&results);
    assert_eq!(m.error_rate, 1.0);
    assert!(!checks::all_answered(&m).passed());

    // Bad settings are errors that name the setting.
    let err = StressHarness::new(StressConfig::new("ftp://x").workers(1)).unwrap_err();
    assert!(err.to_string().contains("ftp"), "{err}");
}
