//! [`Report::text`]: the short plain-text summary a test prints.

use std::fmt::Write as _;

use super::Report;
use crate::metrics::{LatencySummary, ServingMetrics};

impl Report {
    /// A short human summary: counts, latency, throughput, cache, verdicts.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "== {} ({})", self.name, self.target);
        if let Some(m) = &self.metrics {
            let c = &m.counts;
            let _ = writeln!(
                s,
                "requests {} | ok {} | rejected {} ({:.1}%) | errors {} ({:.2}%) | statuses {:?}",
                m.total,
                c.success,
                m.rejected,
                m.rejection_rate * 100.0,
                m.errors,
                m.error_rate * 100.0,
                m.status_codes
            );
            let _ = writeln!(s, "latency ok   {}", line(&m.success_latency));
            if m.failure_latency.count > 0 {
                let _ = writeln!(s, "latency fail {}", line(&m.failure_latency));
            }
            serving(&mut s, &m.serving);
            let _ = writeln!(
                s,
                "throughput {:.1} req/s ({:.1} succeeded/s), {:.0} output tokens/s over {:.2} s",
                m.throughput_rps,
                m.success_rps,
                m.output_tokens_per_s,
                m.duration.as_secs_f64()
            );
            if let Some(rate) = m.cache.request_hit_rate {
                let _ = writeln!(
                    s,
                    "cache hits {:.1}% of {} follow-ups; token hit rate {}",
                    rate * 100.0,
                    m.cache.eligible,
                    m.cache
                        .token_hit_rate
                        .map_or("n/a".to_owned(), |t| format!("{:.1}%", t * 100.0))
                );
            }
        }
        let _ = writeln!(s, "{}", self.trust().line());
        if let Some(cleanup) = &self.cleanup {
            let _ = writeln!(s, "{cleanup}");
        }
        if let Some(g) = &self.generator
            && (g.saturated || g.late_slots > 0)
        {
            let _ = writeln!(
                s,
                "generator: timer lag p99 {:.2} ms, {} late slots{}",
                g.timer_lag_p99_ms,
                g.late_slots,
                if g.saturated {
                    " — GENERATOR SATURATED"
                } else {
                    ""
                }
            );
        }
        if let Some(series) = &self.series {
            let mib = |b: f64| b / (1024.0 * 1024.0);
            for (who, trend) in [
                ("server", &series.memory),
                ("harness", &series.harness_memory),
            ] {
                if let Some(t) = trend {
                    let _ = writeln!(
                        s,
                        "{who} memory after {:.0} s warm-up: {:.1} → {:.1} MiB ({:+.2}%), slope {:+.2} MiB/h",
                        t.warmup.as_secs_f64(),
                        mib(t.head_mean_bytes),
                        mib(t.tail_mean_bytes),
                        t.relative_growth * 100.0,
                        mib(t.slope_bytes_per_hour)
                    );
                }
            }
        }
        for (k, v) in &self.figures {
            let _ = writeln!(s, "{k}: {v}");
        }
        for v in &self.verdicts {
            let _ = writeln!(s, "{v}");
        }
        s
    }
}

/// TTFT, ITL, TPOT, stalls and goodput, or why they are absent.
fn serving(s: &mut String, m: &ServingMetrics) {
    if m.streamed == 0 {
        let _ = writeln!(s, "ttft/itl/tpot not measured: no reply streamed");
    }
    for (name, l) in [("ttft", &m.ttft), ("itl", &m.itl), ("tpot", &m.tpot)] {
        if let Some(l) = l {
            let _ = writeln!(s, "{name:<12} {}", line(l));
        }
    }
    if let Some(r) = &m.output_tokens_per_s_per_request {
        let _ = writeln!(
            s,
            "per request  p50 {:.0} tokens/s | slowest 10% under {:.0} | slowest {:.0}",
            r.p50, r.p10, r.min
        );
    }
    if m.streamed > 0 {
        let _ = writeln!(
            s,
            "stalls {} in {} requests (gaps over {:.0} ms)",
            m.stalls,
            m.requests_with_stalls,
            m.stall_gap.as_secs_f64() * 1000.0
        );
    }
    let g = &m.goodput;
    let objectives = g
        .per_slo
        .iter()
        .map(|o| {
            format!(
                "{} ≤ {:.0} ms: {}",
                o.slo,
                o.limit.as_secs_f64() * 1000.0,
                o.share
                    .map_or("n/a".to_owned(), |x| format!("{:.1}%", x * 100.0))
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    match g.goodput_rps {
        Some(rps) => {
            let _ = writeln!(
                s,
                "goodput {rps:.1} req/s ({} met every SLO, {}); {objectives}",
                g.met_all,
                g.met_share.map_or("n/a".to_owned(), |x| format!(
                    "{:.1}% of requests",
                    x * 100.0
                ))
            );
        }
        None if g.per_slo.is_empty() => {
            let _ = writeln!(s, "goodput not defined: no SLO set");
        }
        None => {
            let _ = writeln!(
                s,
                "goodput not measured: {} successes lack a figure an SLO needs; {objectives}",
                g.unjudged
            );
        }
    }
}

fn line(l: &LatencySummary) -> String {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    format!(
        "n {} | p50 {:.1} ms | p90 {:.1} | p95 {:.1} | p99 {:.1} | max {:.1}",
        l.count,
        ms(l.p50),
        ms(l.p90),
        ms(l.p95),
        ms(l.p99),
        ms(l.max)
    )
}
