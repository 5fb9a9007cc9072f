//! Tests of the serving figures on synthetic records: goodput counts exactly the requests under
//! every objective; TTFT, ITL, TPOT and stalls follow their definitions; unmeasured figures are
//! absent.

use std::time::{Duration, Instant};

use super::*;
use crate::MetricsCollector;
use crate::anthropic::Usage;

const MS: Duration = Duration::from_millis(1);
const STALL: Duration = Duration::from_millis(500);

/// A streamed success sent at `t0 + start`, first delta after `ttft`, then `tokens - 1`
/// further deltas `gap` apart (one token each), ending with the last delta.
fn stream(
    t0: Instant,
    start: Duration,
    ttft: Duration,
    gap: Duration,
    tokens: u32,
) -> RequestResult {
    let started = t0 + start;
    let mut r = RequestResult::pending(started, started);
    r.outcome = Outcome::Success;
    r.status = 200;
    r.streamed = true;
    let mut at = started + ttft;
    r.delta_arrived(at, STALL);
    for _ in 1..tokens {
        at += gap;
        r.delta_arrived(at, STALL);
    }
    r.finished_at = at;
    r.usage = Some(Usage {
        output_tokens: u64::from(tokens),
        ..Usage::default()
    });
    r
}

/// The same reply not streamed: it arrived whole after `latency`.
fn whole(t0: Instant, latency: Duration) -> RequestResult {
    let mut r = RequestResult::pending(t0, t0);
    r.outcome = Outcome::Success;
    r.status = 200;
    r.finished_at = t0 + latency;
    r.usage = Some(Usage {
        output_tokens: 5,
        ..Usage::default()
    });
    r
}

fn slo(ttft_ms: u64, tpot_ms: u64, e2e_ms: u64) -> Slo {
    Slo::NONE
        .ttft(Some(MS * u32::try_from(ttft_ms).unwrap()))
        .tpot(Some(MS * u32::try_from(tpot_ms).unwrap()))
        .e2e(Some(MS * u32::try_from(e2e_ms).unwrap()))
}

#[test]
fn goodput_counts_exactly_the_requests_under_every_slo() {
    let t0 = Instant::now();
    // SLO: TTFT ≤ 100 ms, TPOT ≤ 20 ms, e2e ≤ 1000 ms.
    let s = slo(100, 20, 1000);
    let records = vec![
        // Meets all three: TTFT 50, TPOT 10, e2e 50 + 9·10 = 140.
        stream(t0, Duration::ZERO, 50 * MS, 10 * MS, 10),
        // TTFT exactly at the limit meets it (≤), TPOT 20 at the limit: meets all.
        stream(t0, Duration::ZERO, 100 * MS, 20 * MS, 5),
        // TTFT 150 > 100: fails TTFT only.
        stream(t0, Duration::ZERO, 150 * MS, 10 * MS, 10),
        // TPOT 30 > 20: fails TPOT only.
        stream(t0, Duration::ZERO, 10 * MS, 30 * MS, 10),
        // e2e 10 + 99·9 = 901 ms: meets; 10 + 99·10 = 1000: meets (≤); 10 + 99·11 > 1000 fails.
        stream(t0, Duration::ZERO, 10 * MS, 9 * MS, 100),
        stream(t0, Duration::ZERO, 10 * MS, 11 * MS, 100),
        // One token: TPOT undefined, counted as 0 for goodput (vLLM): meets all.
        stream(t0, Duration::ZERO, 20 * MS, 10 * MS, 1),
    ];
    let mut failed = stream(t0, Duration::ZERO, 10 * MS, 10 * MS, 3);
    failed.outcome = Outcome::Protocol;
    let mut all = records;
    all.push(failed);
    let m = MetricsCollector::analyze_with(&all, s, STALL);
    let g = &m.serving.goodput;
    assert_eq!(g.met_all, 4, "{g:?}");
    assert_eq!(g.unjudged, 0);
    let secs = m.duration.as_secs_f64();
    assert!((g.goodput_rps.unwrap() - 4.0 / secs).abs() < 1e-9);
    assert_eq!(g.met_share, Some(4.0 / 8.0));
    let by = |name: &str| g.per_slo.iter().find(|o| o.slo == name).unwrap().clone();
    assert_eq!((by("ttft").met, by("ttft").measured), (6, 7));
    assert_eq!((by("tpot").met, by("tpot").measured), (6, 7));
    assert_eq!((by("e2e").met, by("e2e").measured), (6, 7));
    assert_eq!(by("ttft").share, Some(6.0 / 8.0));
    assert!(
        g.per_slo.iter().all(|o| o.slo != "max_itl"),
        "unset SLOs are not listed"
    );
}

#[test]
fn a_max_itl_slo_judges_the_longest_gap() {
    let t0 = Instant::now();
    let mut bursty = stream(t0, Duration::ZERO, 10 * MS, 10 * MS, 3);
    // One late delta: gaps 10 and 300 ms.
    bursty.delta_arrived(t0 + 330 * MS, STALL);
    let steady = stream(t0, Duration::ZERO, 10 * MS, 10 * MS, 20);
    let s = Slo::NONE.max_itl(Some(100 * MS));
    let m = MetricsCollector::analyze_with(&[bursty, steady], s, STALL);
    assert_eq!(m.serving.goodput.met_all, 1);
    assert_eq!(m.serving.goodput.per_slo[0].slo, "max_itl");
}

#[test]
fn replies_that_did_not_stream_have_no_ttft_and_leave_goodput_unmeasured() {
    let t0 = Instant::now();
    let records = [whole(t0, 40 * MS), whole(t0, 60 * MS)];
    let m = MetricsCollector::analyze_with(&records, slo(100, 20, 1000), STALL);
    let s = &m.serving;
    assert_eq!(s.streamed, 0);
    assert!(
        s.ttft.is_none() && s.itl.is_none() && s.tpot.is_none(),
        "{s:?}"
    );
    assert!(s.output_tokens_per_s_per_request.is_none());
    // End-to-end latency is measured for every success.
    assert_eq!(s.e2e_latency.unwrap().count, 2);
    assert_eq!(s.goodput.unjudged, 2);
    assert_eq!(s.goodput.goodput_rps, None);
    assert_eq!(s.goodput.met_share, None);
    // Only the end-to-end objective could be judged.
    let e2e = s.goodput.per_slo.iter().find(|o| o.slo == "e2e").unwrap();
    assert_eq!((e2e.met, e2e.measured), (2, 2));
    // Under an end-to-end objective alone, the same replies are judged.
    let m = MetricsCollector::analyze_with(&records, Slo::NONE.e2e(Some(50 * MS)), STALL);
    assert_eq!(m.serving.goodput.met_all, 1);
    assert!(m.serving.goodput.goodput_rps.is_some());
    // With no objective, goodput is not defined.
    let m = MetricsCollector::analyze_with(&records, Slo::NONE, STALL);
    assert_eq!(m.serving.goodput.goodput_rps, None);
    assert!(m.serving.goodput.per_slo.is_empty());
}

#[test]
fn itl_is_every_gap_of_every_stream_and_stalls_are_counted() {
    let t0 = Instant::now();
    // 10 deltas 10 ms apart (9 gaps) and 4 deltas 40 ms apart (3 gaps).
    let a = stream(t0, Duration::ZERO, 5 * MS, 10 * MS, 10);
    let b = stream(t0, Duration::ZERO, 5 * MS, 40 * MS, 4);
    let mut c = stream(t0, Duration::ZERO, 5 * MS, 10 * MS, 2);
    // Two stalls of 600 ms.
    c.delta_arrived(c.finished_at + 600 * MS, STALL);
    c.delta_arrived(c.finished_at + 1200 * MS, STALL);
    c.finished_at += 1200 * MS;
    c.usage.as_mut().unwrap().output_tokens = 4;
    let m = MetricsCollector::analyze_with(&[a, b, c], Slo::NONE, STALL);
    let s = &m.serving;
    assert_eq!(s.streamed, 3);
    let itl = s.itl.unwrap();
    assert_eq!(itl.count, 9 + 3 + 3);
    // Nearest rank 8 of 15 is 10 ms; 2 significant digits: at most 1/128 above.
    assert!(
        itl.p50 >= 10 * MS && itl.p50 <= Duration::from_micros(10_079),
        "{itl:?}"
    );
    assert!(itl.max >= 600 * MS);
    assert_eq!((s.stalls, s.requests_with_stalls), (2, 1));
    assert_eq!(s.stall_gap, STALL);
    // TPOT per request: 10, 40, and (10 + 1200) / 3 ms.
    let tpot = s.tpot.unwrap();
    assert_eq!(tpot.count, 3);
    let rates = s.output_tokens_per_s_per_request.unwrap();
    assert!((rates.max - 100.0).abs() < 0.2, "{rates:?}");
    assert!((rates.min - 3.0 / 1.21).abs() < 0.01, "{rates:?}");
    let mean = (100.0 + 25.0 + 3.0 / 1.21) / 3.0;
    assert!((rates.mean - mean).abs() < 1e-6, "{rates:?}");
}

#[test]
fn ttft_and_e2e_are_taken_from_the_intended_start() {
    let t0 = Instant::now();
    let mut late = stream(t0, 100 * MS, 20 * MS, 10 * MS, 2);
    // Meant to go out at t0, sent 100 ms late: the wait is part of what the user sees.
    late.scheduled_at = t0;
    let m = MetricsCollector::analyze_with(&[late.clone()], Slo::NONE, STALL);
    assert_eq!(late.ttft(), Some(20 * MS));
    assert_eq!(late.corrected_ttft(), Some(120 * MS));
    let ttft = m.serving.ttft.unwrap();
    assert!(ttft.p50 >= 120 * MS && ttft.p50 < 121 * MS);
    let e2e = m.serving.e2e_latency.unwrap();
    assert!(e2e.p50 >= 130 * MS && e2e.p50 < 131 * MS);
}

#[test]
fn serving_figures_merge_like_the_concatenation() {
    let t0 = Instant::now();
    let records: Vec<RequestResult> = (0..40_u32)
        .map(|i| stream(t0, MS * i, MS * (5 + i), MS * (1 + i % 7), 2 + i % 9))
        .collect();
    let s = slo(20, 4, 100);
    let (left, right) = records.split_at(17);
    let mut merged = MetricsCollector::with_slo(s, STALL);
    left.iter().for_each(|r| merged.record(r));
    let mut other = MetricsCollector::with_slo(s, STALL);
    right.iter().for_each(|r| other.record(r));
    merged.merge(&other);
    assert_eq!(
        merged.metrics(),
        MetricsCollector::analyze_with(&records, s, STALL)
    );
}

#[test]
fn json_writes_milliseconds_and_null_for_unset_objectives() {
    let json = serde_json::to_value(Slo::default()).unwrap();
    assert_eq!(json["ttft_ms"], 2000.0);
    assert_eq!(json["tpot_ms"], 200.0);
    assert!(json["max_itl_ms"].is_null());
    let back: Slo = serde_json::from_value(json).unwrap();
    assert_eq!(back, Slo::default());
}
