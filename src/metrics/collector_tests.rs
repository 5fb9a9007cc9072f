//! Tests of [`MetricsCollector`]: class counting, rates, and merge = analyze(concatenation).

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::anthropic::Usage;

/// Asserts that a histogram figure is `want` within HdrHistogram's error: never below, and above
/// by less than 1/1024 (3 significant digits).
fn assert_close(got: Duration, want: Duration) {
    assert!(
        got >= want && got <= want + want / 1024,
        "got {got:?}, want {want:?}"
    );
}

/// A record of the given class and status that started `start_ms` after `t0` and took
/// `latency_ms`.
fn record(
    t0: Instant,
    outcome: Outcome,
    status: u16,
    start_ms: u64,
    latency_ms: u64,
) -> RequestResult {
    let started = t0 + Duration::from_millis(start_ms);
    let mut r = RequestResult::pending(t0, started);
    r.outcome = outcome;
    r.status = status;
    r.finished_at = started + Duration::from_millis(latency_ms);
    r
}

#[test]
fn classes_are_counted_and_rejections_are_not_errors() {
    let t0 = Instant::now();
    let mut results = Vec::new();
    for i in 0..6 {
        results.push(record(t0, Outcome::Success, 200, i, 10));
    }
    results.push(record(t0, Outcome::Rejected, 429, 1, 1));
    results.push(record(t0, Outcome::Rejected, 429, 1, 1));
    results.push(record(t0, Outcome::ServerError, 500, 2, 1));
    results.push(record(t0, Outcome::Timeout, 0, 3, 1000));
    let m = MetricsCollector::analyze(&results);
    assert_eq!(m.total, 10);
    assert_eq!(m.successful, 6);
    assert_eq!(m.rejected, 2);
    assert_eq!(m.errors, 2);
    assert_eq!(m.counts.get(Outcome::Timeout), 1);
    assert_eq!(m.counts.get(Outcome::Connect), 0);
    assert_eq!(m.error_rate, 0.2);
    assert_eq!(m.rejection_rate, 0.2);
    assert_eq!(m.status_codes[&0], 1);
    assert_eq!(m.status_codes[&429], 2);
    // Both 429s lack Retry-After.
    assert_eq!(m.retry_after_missing, 2);
    // Failures never leak into success latency.
    assert_eq!(m.success_latency.count, 6);
    assert_close(m.success_latency.max, Duration::from_millis(10));
    assert_eq!(m.failure_latency.count, 4);
    assert_close(m.failure_latency.max, Duration::from_millis(1000));
    // Last end (3 + 1000 ms) − first start (0 ms).
    assert_eq!(m.duration, Duration::from_millis(1003));
    assert!((m.throughput_rps - 10.0 / 1.003).abs() < 1e-9);
    assert_eq!(MetricsCollector::analyze_latency(&results).count, 6);
}

#[test]
fn coordinated_omission_is_reported_beside_the_raw_latency() {
    let t0 = Instant::now();
    // Meant to start at t0, started 90 ms late, took 10 ms.
    let r = record(t0, Outcome::Success, 200, 90, 10);
    let m = MetricsCollector::analyze(&[r]);
    assert_close(m.uncorrected_latency.p50, Duration::from_millis(10));
    assert_close(m.corrected_latency.p50, Duration::from_millis(100));
    assert_close(m.scheduler_lag.p50, Duration::from_millis(90));
}

#[test]
fn tokens_and_tpot_come_from_usage() {
    let t0 = Instant::now();
    let mut r = record(t0, Outcome::Success, 200, 0, 1000);
    r.first_token_at = Some(t0 + Duration::from_millis(100));
    r.usage = Some(Usage {
        input_tokens: 10,
        output_tokens: 10,
        ..Usage::default()
    });
    r.chunks = 3;
    r.streamed = true;
    // The same reply, not streamed: it arrived whole, so it has no TTFT and no TPOT.
    let mut whole = r.clone();
    whole.streamed = false;
    // A stream cut short: its `message_start` usage counts toward no token or cache figure.
    let mut cut = r.clone();
    cut.outcome = Outcome::Protocol;
    let m = MetricsCollector::analyze(&[r, whole, cut]);
    assert_eq!(m.output_tokens, 20);
    assert_eq!(m.output_tokens_per_s, 20.0);
    assert_eq!(m.success_rps, 2.0);
    assert_eq!(m.throughput_rps, 3.0);
    assert_eq!(m.cache.prompt_tokens, 20);
    let ttft = m.serving.ttft.expect("one streamed success");
    assert_eq!(ttft.count, 1);
    assert_close(ttft.p50, Duration::from_millis(100));
    // 900 ms over 9 gaps between 10 tokens, whatever the number of chunks.
    let tpot = m.serving.tpot.expect("one streamed success of 10 tokens");
    assert_eq!(tpot.count, 1);
    assert_close(tpot.p50, Duration::from_millis(100));
    // Both successes have an end-to-end latency.
    assert_eq!(m.serving.e2e_latency.unwrap().count, 2);
}

#[test]
fn absurd_usage_saturates_instead_of_overflowing() {
    let t0 = Instant::now();
    let mut r = record(t0, Outcome::Success, 200, 0, 10);
    r.usage = Some(Usage {
        input_tokens: 1,
        output_tokens: u64::MAX,
        cache_read_input_tokens: u64::MAX,
        cache_creation_input_tokens: 1,
    });
    let m = MetricsCollector::analyze(&[r.clone(), r]);
    assert_eq!(m.output_tokens, u64::MAX);
    assert_eq!(m.cache.cache_read_tokens, u64::MAX);
}

#[test]
fn an_empty_run_has_zero_rates() {
    let m = MetricsCollector::new().metrics();
    assert_eq!(m.total, 0);
    assert_eq!(m.error_rate, 0.0);
    assert_eq!(m.throughput_rps, 0.0);
    assert_eq!(m.cache.request_hit_rate, None);
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["duration_s"], 0.0);
}

/// One generated record, relative to a base instant.
#[derive(Debug, Clone)]
struct Spec {
    outcome: Outcome,
    status: u16,
    start_us: u64,
    latency_us: u64,
    usage: Option<Usage>,
    turn: Option<u32>,
    retry_after: bool,
}

fn arb_usage() -> impl Strategy<Value = Usage> {
    (0..500_u64, 0..50_u64, 0..300_u64, 0..300_u64).prop_map(|(input, output, creation, read)| {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_creation_input_tokens: creation,
            cache_read_input_tokens: read,
        }
    })
}

fn arb_spec() -> impl Strategy<Value = Spec> {
    (
        prop::sample::select(Outcome::ALL.to_vec()),
        prop::sample::select(vec![0_u16, 200, 400, 429, 500, 503, 529]),
        0..5_000_u64,
        0..100_000_u64,
        prop::option::of(arb_usage()),
        prop::option::of(1..5_u32),
        any::<bool>(),
    )
        .prop_map(
            |(outcome, status, start_us, latency_us, usage, turn, retry_after)| Spec {
                outcome,
                status,
                start_us,
                latency_us,
                usage,
                turn,
                retry_after,
            },
        )
}

fn build(t0: Instant, spec: &Spec) -> RequestResult {
    let started = t0 + Duration::from_micros(spec.start_us);
    let mut r = RequestResult::pending(t0, started);
    r.outcome = spec.outcome;
    r.status = spec.status;
    r.finished_at = started + Duration::from_micros(spec.latency_us);
    r.first_token_at = Some(started + Duration::from_micros(spec.latency_us / 3));
    r.usage = spec.usage;
    r.turn = spec.turn;
    r.retry_after = spec.retry_after.then_some(Duration::from_secs(1));
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn merge_equals_analyzing_the_concatenation(
        a in prop::collection::vec(arb_spec(), 0..40),
        b in prop::collection::vec(arb_spec(), 0..40),
    ) {
        let t0 = Instant::now();
        let a: Vec<_> = a.iter().map(|s| build(t0, s)).collect();
        let b: Vec<_> = b.iter().map(|s| build(t0, s)).collect();
        let mut merged = MetricsCollector::new();
        a.iter().for_each(|r| merged.record(r));
        let mut right = MetricsCollector::new();
        b.iter().for_each(|r| right.record(r));
        merged.merge(&right);
        let all: Vec<_> = a.iter().chain(&b).cloned().collect();
        prop_assert_eq!(merged.metrics(), MetricsCollector::analyze(&all));
    }

    #[test]
    fn percentiles_are_monotone(specs in prop::collection::vec(arb_spec(), 1..60)) {
        let t0 = Instant::now();
        let all: Vec<_> = specs.iter().map(|s| build(t0, s)).collect();
        let s = MetricsCollector::analyze(&all).uncorrected_latency;
        prop_assert!(s.min <= s.p50 && s.p50 <= s.p90 && s.p90 <= s.p95);
        prop_assert!(s.p95 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.max);
        prop_assert_eq!(s.count, all.len() as u64);
    }
}
