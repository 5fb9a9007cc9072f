//! Checks over a run's course in time: memory growth and latency degradation.

use super::Check;
use super::{Verdict, pct};
use crate::metrics::{Degradation, MemoryTrend};

/// Server memory growth after warm-up below `max` (seed: 5%), judged over all samples after
/// warm-up (tail tenth vs head tenth), with the fitted slope and its 95% confidence interval
/// reported. `error` says why there are no samples, when known.
pub fn memory_growth(trend: Option<&MemoryTrend>, max: f64, error: Option<&str>) -> Verdict {
    let Some(t) = trend else {
        return Verdict::new(
            Check::MemoryGrowth,
            false,
            format!("< {}", pct(max)),
            "no samples",
            match error {
                Some(e) => format!("server memory could not be sampled: {e}"),
                None => "server memory was not sampled: run against the embedded reference server, or set SEMANTIC_SERVER_PID to the server's pid".to_owned(),
            },
        );
    };
    let mib = |b: f64| b / (1024.0 * 1024.0);
    Verdict::new(
        Check::MemoryGrowth,
        t.relative_growth < max,
        format!("< {}", pct(max)),
        pct(t.relative_growth),
        format!(
            "{} samples over {:.0} s after a {:.0} s warm-up: {:.1} → {:.1} MiB; slope {:+.2} MiB/h (95% CI {:+.2} .. {:+.2})",
            t.n_samples,
            t.span.as_secs_f64(),
            t.warmup.as_secs_f64(),
            mib(t.head_mean_bytes),
            mib(t.tail_mean_bytes),
            mib(t.slope_bytes_per_hour),
            mib(t.slope_ci_bytes_per_hour.lower),
            mib(t.slope_ci_bytes_per_hour.upper),
        ),
    )
}

/// No performance degradation over time: the late windows' p95 is not more than `max_ratio`
/// times the early windows' p95 **and** significantly slower (one-sided Mann–Whitney U,
/// p < `alpha`). Both must hold to call it degraded, so noise alone cannot fail a run and a
/// tiny but significant shift cannot either.
pub fn no_degradation(d: Option<&Degradation>, max_ratio: f64, alpha: f64) -> Verdict {
    let threshold = format!("not (p95 ratio > {max_ratio:.2} and p < {alpha})");
    let Some(d) = d else {
        return Verdict::new(
            Check::NoDegradation,
            false,
            threshold,
            "not enough windows",
            "the run was too short to compare early and late windows",
        );
    };
    let ratio = d.p95_ratio;
    let p = d.rank_test.map(|t| t.p_greater);
    let degraded = ratio.is_some_and(|r| r > max_ratio) && p.is_some_and(|p| p < alpha);
    let measurable = ratio.is_some() && p.is_some();
    Verdict::new(
        Check::NoDegradation,
        measurable && !degraded,
        threshold,
        format!(
            "p95 ratio {}, p {}",
            ratio.map_or("n/a".to_owned(), |r| format!("{r:.2}")),
            p.map_or("n/a".to_owned(), |p| format!("{p:.2e}"))
        ),
        format!(
            "early p95 {:.1} ms ({} ok) vs late p95 {:.1} ms ({} ok); p95 trend {}",
            d.early_p95.as_secs_f64() * 1000.0,
            d.early_count,
            d.late_p95.as_secs_f64() * 1000.0,
            d.late_count,
            d.p95_trend.map_or("n/a".to_owned(), |t| format!(
                "{:+.3} ms/s (95% CI {:+.3} .. {:+.3})",
                t.slope, t.slope_ci.lower, t.slope_ci.upper
            ))
        ),
    )
}
