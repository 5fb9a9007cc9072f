//! The `/metrics` scraper against real HTTP: a tiny local server serving a fixed vLLM-style
//! exposition, one without `/metrics`, and the reference server's own `/metrics`.
//!
//! Ungated and quick: `cargo test --test server_metrics`.

mod common;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use semantic_stress::checks::{self, Check};
use semantic_stress::{ServerMetricNames, ServerScraper, StressConfig, StressHarness};

/// A vLLM exposition (prometheus_client's text format 0.0.4) with a queue of 2.
const VLLM: &str = "# HELP vllm:num_requests_running Running.\n# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine=\"0\",model_name=\"m\"} 3.0\n# HELP vllm:num_requests_waiting Waiting.\n# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 2.0\n# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\"} 0.42\n# HELP vllm:prefix_cache_queries_total Queried tokens.\n# TYPE vllm:prefix_cache_queries_total counter\nvllm:prefix_cache_queries_total{engine=\"0\",model_name=\"m\"} 1000.0\n# HELP vllm:prefix_cache_hits_total Cached tokens.\n# TYPE vllm:prefix_cache_hits_total counter\nvllm:prefix_cache_hits_total{engine=\"0\",model_name=\"m\"} 900.0\n";

/// Serves `body` with `status` for every request on a free loopback port, until the task is
/// aborted.
async fn serve(status: StatusCode, body: &'static str) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = service_fn(move |_req| async move {
                let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                *response.status_mut() = status;
                Ok::<_, Infallible>(response)
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (url, task)
}

fn client(url: &str) -> semantic_stress::Client {
    StressHarness::new(StressConfig::new(url).timeout(Duration::from_secs(5)))
        .expect("valid settings")
        .client()
        .clone()
}

#[tokio::test]
async fn reads_a_vllm_exposition_on_an_interval() {
    let (url, server) = serve(StatusCode::OK, VLLM).await;
    let scraper = ServerScraper::start(
        client(&url),
        ServerMetricNames::default(),
        Instant::now(),
        Duration::from_millis(100),
    );
    tokio::time::timeout(Duration::from_secs(10), async {
        while scraper.latest().is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a first sample within 10 s");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let metrics = tokio::time::timeout(Duration::from_secs(10), scraper.stop())
        .await
        .expect("stop is bounded");
    server.abort();
    assert!(metrics.samples.len() >= 3, "{:?}", metrics.samples);
    assert!(metrics.samples.windows(2).all(|w| w[0].at < w[1].at));
    let last = metrics.samples.last().unwrap();
    assert_eq!(last.kv_cache_usage, Some(0.42));
    assert_eq!(last.requests_running, Some(3.0));
    assert_eq!(metrics.summary.requests_waiting_last, Some(2.0));
    assert_eq!(metrics.error, None);
    // The queue never drained: the check says so.
    let verdict = checks::queue_drained(&metrics).expect("the queue is exposed");
    assert_eq!(verdict.check, Check::ServerQueueDrained);
    assert!(!verdict.passed(), "{verdict}");
}

#[tokio::test]
async fn a_target_without_metrics_is_given_up_with_a_reason() {
    let (url, server) = serve(StatusCode::NOT_FOUND, "no such route").await;
    let scraper = ServerScraper::start(
        client(&url),
        ServerMetricNames::default(),
        Instant::now(),
        Duration::from_millis(100),
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let metrics = tokio::time::timeout(Duration::from_secs(10), scraper.stop())
        .await
        .expect("stop is bounded");
    server.abort();
    assert!(metrics.samples.is_empty());
    assert!(
        metrics.error.as_deref().is_some_and(|e| e.contains("404")),
        "{:?}",
        metrics.error
    );
    assert!(
        checks::queue_drained(&metrics).is_none(),
        "nothing to judge, no verdict"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_reference_servers_metrics() {
    let server = common::Server::reference(&[]);
    let url = server.target().base_url().to_owned();
    // It exports vLLM's serving families under vLLM's names (docs/personalities.md).
    let vllm = ServerScraper::start(
        client(&url),
        ServerMetricNames::default(),
        Instant::now(),
        Duration::from_millis(100),
    );
    // Its own gauges, under the names a profile would give.
    let own = ServerMetricNames {
        kv_cache_usage: Some("semantic_pool_utilization_ratio".into()),
        requests_running: Some("semantic_agents_active".into()),
        requests_waiting: None,
        prefix_cache_hits: Some("semantic_cache_read_tokens_total".into()),
        prefix_cache_queries: None,
        preemptions: None,
    };
    let scraper = ServerScraper::start(
        client(&url),
        own,
        Instant::now(),
        Duration::from_millis(100),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (vllm, metrics) = tokio::join!(vllm.stop(), scraper.stop());
    assert!(vllm.samples.len() >= 2, "{vllm:?}");
    let read = vllm.samples.last().unwrap();
    assert!(
        read.kv_cache_usage
            .is_some_and(|u| (0.0..=1.0).contains(&u))
    );
    assert!(read.requests_running.is_some() && read.requests_waiting.is_some());
    assert!(read.prefix_cache_hits.is_some() && read.preemptions.is_some());
    assert!(metrics.samples.len() >= 2, "{metrics:?}");
    let last = metrics.samples.last().unwrap();
    assert!(
        last.kv_cache_usage
            .is_some_and(|u| (0.0..=1.0).contains(&u))
    );
    assert!(last.requests_running.is_some());
    assert_eq!(last.requests_waiting, None);
}
