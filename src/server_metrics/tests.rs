//! Parsing vLLM-, SGLang- and llama.cpp-style expositions, and aligning samples to windows.

use std::time::{Duration, Instant};

use super::*;
use crate::metrics::WindowedSeries;

/// What vLLM's exposition looks like (prometheus_client's text format 0.0.4: two engines,
/// counter families named with `_total`, `_created` as gauges of their own).
pub(crate) const VLLM: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 4.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 2.0
vllm:num_requests_waiting{engine="1",model_name="m"} 0.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.75
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 1000.0
# HELP vllm:prefix_cache_queries_created Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_created gauge
vllm:prefix_cache_queries_created{engine="0",model_name="m"} 1.7e+09
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 800.0
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="m \"quoted\", with a comma"} 7.0
# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{le="0.3",model_name="m"} 1.0
vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="m"} 2.0
vllm:e2e_request_latency_seconds_count{model_name="m"} 2.0
vllm:e2e_request_latency_seconds_sum{model_name="m"} 0.9
"#;

#[test]
fn reads_vllm_names_summing_engines_and_averaging_the_ratio() {
    let (s, error) = ServerSample::parse(VLLM, &ServerMetricNames::default(), Duration::ZERO);
    assert_eq!(error, None);
    assert_eq!(s.requests_running, Some(7.0));
    assert_eq!(s.requests_waiting, Some(2.0));
    assert_eq!(s.kv_cache_usage, Some(0.625));
    assert_eq!(s.prefix_cache_queries, Some(1000.0));
    assert_eq!(s.prefix_cache_hits, Some(800.0));
    assert_eq!(
        s.preemptions,
        Some(7.0),
        "a quoted label with a comma parses"
    );
}

#[test]
fn counter_families_named_without_total_still_give_their_samples() {
    // OpenMetrics-style grouping: the family has the base name, the sample `_total`.
    let text = "# TYPE vllm:num_preemptions counter\nvllm:num_preemptions_total{engine=\"0\"} 3\n";
    let (s, error) = ServerSample::parse(text, &ServerMetricNames::default(), Duration::ZERO);
    assert_eq!(s.preemptions, Some(3.0), "{error:?}");
}

#[test]
fn other_servers_names_and_absent_metrics() {
    let sglang = "# TYPE sglang:num_running_reqs gauge\nsglang:num_running_reqs{model_name=\"m\"} 5\n# TYPE sglang:num_queue_reqs gauge\nsglang:num_queue_reqs{model_name=\"m\"} 1\n# TYPE sglang:token_usage gauge\nsglang:token_usage{model_name=\"m\"} 0.42\n";
    let names = ServerMetricNames {
        kv_cache_usage: Some("sglang:token_usage".into()),
        requests_running: Some("sglang:num_running_reqs".into()),
        requests_waiting: Some("sglang:num_queue_reqs".into()),
        prefix_cache_hits: None,
        prefix_cache_queries: None,
        preemptions: Some("sglang:num_retracted_requests_total".into()),
    };
    let (s, _) = ServerSample::parse(sglang, &names, Duration::ZERO);
    assert_eq!(
        (s.requests_running, s.requests_waiting, s.kv_cache_usage),
        (Some(5.0), Some(1.0), Some(0.42))
    );
    // Not in the text: absent, not 0.
    assert_eq!(s.preemptions, None);
    assert_eq!(s.prefix_cache_hits, None);
    let llama = "# HELP llamacpp:requests_deferred Number of requests deferred.\n# TYPE llamacpp:requests_deferred gauge\nllamacpp:requests_deferred 4\n";
    let (s, _) = ServerSample::parse(llama, &ServerMetricNames::default(), Duration::ZERO);
    assert!(!s.has_any(), "vLLM names are not in a llama.cpp exposition");
}

#[test]
fn a_broken_text_is_reported_not_fatal() {
    let (s, error) = ServerSample::parse(
        "{{{ not prometheus",
        &ServerMetricNames::default(),
        Duration::ZERO,
    );
    assert!(!s.has_any());
    assert!(error.is_some());
}

fn sample(at_s: u64, kv: f64, waiting: f64, hits: f64, queries: f64) -> ServerSample {
    ServerSample {
        at: Duration::from_secs(at_s),
        kv_cache_usage: Some(kv),
        requests_waiting: Some(waiting),
        prefix_cache_hits: Some(hits),
        prefix_cache_queries: Some(queries),
        ..ServerSample::default()
    }
}

#[test]
fn samples_align_to_windows_and_counters_survive_a_reset() {
    let origin = Instant::now();
    let mut series = WindowedSeries::new(origin, Duration::from_secs(10));
    let mut r = crate::RequestResult::pending(origin, origin);
    r.finished_at = origin;
    series.record(&r);
    let mut late = crate::RequestResult::pending(origin + Duration::from_secs(25), origin);
    late.finished_at = origin;
    series.record(&late);
    let windows = series.windows();
    assert_eq!(windows.len(), 3);
    let samples = [
        sample(1, 0.2, 0.0, 0.0, 0.0),
        sample(5, 0.4, 2.0, 40.0, 100.0),
        sample(12, 0.8, 6.0, 100.0, 200.0),
        // The server restarted: counters start again.
        sample(18, 0.1, 0.0, 10.0, 50.0),
    ];
    let aligned = align(&samples, &windows);
    assert_eq!(aligned[0].samples, 2);
    assert!((aligned[0].kv_cache_usage_mean.unwrap() - 0.3).abs() < 1e-12);
    assert_eq!(aligned[0].requests_waiting_max, Some(2.0));
    assert_eq!(aligned[0].prefix_cache_hits, Some(40.0));
    assert_eq!(aligned[0].prefix_cache_hit_rate, Some(0.4));
    // From the last sample before the window: +60 then +10 after the reset.
    assert_eq!(aligned[1].prefix_cache_hits, Some(70.0));
    assert_eq!(aligned[1].prefix_cache_queries, Some(150.0));
    assert_eq!(aligned[1].kv_cache_usage_max, Some(0.8));
    // No sample in the last window: nothing measured, nothing invented.
    assert_eq!(aligned[2].samples, 0);
    assert_eq!(aligned[2].kv_cache_usage_mean, None);
    assert_eq!(aligned[2].prefix_cache_hits, None);
    let summary = summarize(&samples);
    assert_eq!(summary.samples, 4);
    assert_eq!(summary.requests_waiting_last, Some(0.0));
    assert_eq!(summary.requests_waiting_max, Some(6.0));
    assert_eq!(summary.prefix_cache_queries, Some(250.0));
    assert_eq!(summary.prefix_cache_hit_rate, Some(110.0 / 250.0));
}
