//! Synthetic reports shared by the report tests: a sustained-looking run with every object the
//! schema documents.

use std::time::{Duration, Instant};

use semantic_stress::anthropic::Usage;
use semantic_stress::checks::{self, Check, Verdict};
use semantic_stress::metrics::{
    MemoryTrend, MetricsCollector, Outcome, RequestResult, TimingTruth, WindowedSeries,
};
use semantic_stress::report::Series;
use semantic_stress::report::baseline::{self, Tolerance};
use semantic_stress::target::Cleanup;
use semantic_stress::{
    GeneratorStats, MemorySample, Report, ServerMetricNames, ServerMetrics, ServerSample,
};

/// Length of the synthetic run.
const RUN: Duration = Duration::from_secs(600);
/// One request every this many milliseconds.
const SPACING_MS: u64 = 500;
/// Window width of the synthetic series.
const WINDOW: Duration = Duration::from_secs(30);
/// Memory growth of the synthetic server, MiB per hour.
const GROWTH_MIB_PER_HOUR: f64 = 60.0;
const MIB: f64 = 1024.0 * 1024.0;

/// A sustained-looking run of `RUN` whose success latency is about `20–45 ms × scale` with a
/// slow tail, a burst of rejections in the middle, a few errors, and a server whose memory grows
/// by `GROWTH_MIB_PER_HOUR` after a warm-up ramp.
pub(crate) fn synthetic(name: &str, scale: f64) -> Report {
    let origin = Instant::now();
    let mut collector = MetricsCollector::new();
    let mut windows = WindowedSeries::new(origin, WINDOW).with_seed(7);
    let n = RUN.as_millis() as u64 / SPACING_MS;
    for i in 0..n {
        let at = origin + Duration::from_millis(i * SPACING_MS);
        let t = i as f64 / n as f64;
        let jitter = (i * 7919 % 100) as f64 / 10.0;
        let tail = if i % 25 == 0 { 3.0 } else { 1.0 };
        let ms = (20.0 + 15.0 * t + jitter) * tail * scale;
        let mut r = RequestResult::pending(at, at);
        r.finished_at = at + Duration::from_secs_f64(ms / 1000.0);
        let rejecting = (0.45..0.55).contains(&t) && i % 3 == 0;
        if rejecting {
            r.outcome = Outcome::Rejected;
            r.status = 429;
            r.retry_after = Some(Duration::from_secs(1));
            r.finished_at = at + Duration::from_millis(2);
        } else if i % 97 == 0 {
            r.outcome = Outcome::ServerError;
            r.status = 500;
        } else {
            r.outcome = Outcome::Success;
            r.status = 200;
            // A streamed reply: 40 deltas from a quarter of the latency to the end.
            r.streamed = true;
            let first = at + Duration::from_secs_f64(ms / 4000.0);
            let gap = (r.finished_at - first) / 39;
            let mut truth = TimingTruth::default();
            for k in 0..40 {
                r.delta_arrived(first + gap * k, Duration::from_secs(1));
                // The server wrote each delta 300 µs (plus a little jitter) before it was read.
                let written = first + gap * k - Duration::from_micros(300 + (k as u64 % 3) * 50);
                truth.observe(
                    (first + gap * k) - at,
                    Some(written.saturating_duration_since(at)),
                );
            }
            r.truth = Some(Box::new(truth));
            r.turn = Some(1 + (i % 5) as u32);
            r.usage = Some(Usage {
                input_tokens: 400,
                output_tokens: 40,
                cache_read_input_tokens: if i % 5 == 0 { 0 } else { 300 },
                ..Usage::default()
            });
        }
        collector.record(&r);
        windows.record(&r);
    }
    let samples: Vec<MemorySample> = (0..=RUN.as_secs() / 5)
        .map(|k| {
            let s = (k * 5) as f64;
            let warm = if s < 40.0 {
                -30.0 * (1.0 - s / 40.0)
            } else {
                0.0
            };
            let noise = ((k * 31 % 17) as f64 - 8.0) / 8.0;
            let mib = 120.0 + GROWTH_MIB_PER_HOUR * s / 3600.0 + warm + noise;
            MemorySample {
                at: Duration::from_secs(k * 5),
                rss_bytes: (mib * MIB) as u64,
            }
        })
        .collect();
    let metrics = collector.metrics();
    let mut report = Report::new(name, "http://127.0.0.1:8000");
    report
        .config("duration_s", RUN.as_secs_f64())
        .config("rate_per_s", 1000.0 / SPACING_MS as f64)
        .config("profile", "synthetic")
        .figure("note", "synthetic | with a pipe");
    report.verdicts([
        checks::error_rate(&metrics, 0.05),
        checks::latency_p95(&metrics, Duration::from_millis(500)),
        Verdict::new(Check::Completed, true, "< 1", "0", "multi\nline | message").about("custom"),
    ]);
    report.generator = Some(GeneratorStats {
        slots: n,
        late_slots: 3,
        timer_lag_p50_ms: 0.1,
        timer_lag_p99_ms: 0.9,
        timer_lag_max_ms: 4.2,
        saturated: false,
        cancelled_workers: 0,
        busy_share: Some(0.42),
        wake_lag_p99_ms: Some(0.3),
        wake_lag_max_ms: Some(1.7),
        cpu_s: Some(12.5),
        cpu_share: Some(0.35),
    });
    report.series = Some(Series {
        windows: windows.windows(),
        memory: MemoryTrend::from_samples(&samples, Duration::from_secs(60)),
        harness_memory: MemoryTrend::from_samples(&samples, Duration::from_secs(60)),
        memory_samples: samples,
        degradation: windows.degradation(3),
    });
    report.metrics = Some(metrics);
    report.cleanup = Some(Cleanup {
        agents: 12,
        deleted: 9,
        already_gone: 2,
        failed: 1,
        not_sent: 0,
        first_failure: Some("DELETE /v1/agents/sess_a-3: status 500".to_owned()),
        took: Duration::from_millis(35),
        budget: Duration::from_secs(10),
        concurrency: 8,
        skipped: None,
    });
    let server: Vec<ServerSample> = (0..=RUN.as_secs() / 10)
        .map(|k| ServerSample {
            at: Duration::from_secs(k * 10),
            kv_cache_usage: Some(0.3 + 0.5 * (k % 7) as f64 / 7.0),
            prefix_cache_hits: Some((k * 80) as f64),
            prefix_cache_queries: Some((k * 100) as f64),
            requests_running: Some((k % 5) as f64),
            requests_waiting: Some((k % 3) as f64),
            preemptions: None,
        })
        .collect();
    report.server_metrics(ServerMetrics::from_samples(
        ServerMetricNames::default(),
        Duration::from_secs(10),
        server,
    ));
    report
}

/// A synthetic run with a baseline comparison recorded (so the JSON has every object).
pub(crate) fn compared() -> Report {
    let mut report = synthetic("soak", 1.0);
    let base = synthetic("soak", 1.0);
    let c = baseline::compare(&report, &base, &Tolerance::default());
    report.compare_with_baseline(c);
    report
}
