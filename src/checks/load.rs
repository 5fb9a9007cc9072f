//! Checks over a run's [`LoadMetrics`] and records.

use std::time::Duration;

use super::Check;
use super::{Verdict, ms, pct};
use crate::metrics::{LatencyHistogram, LoadMetrics};
use crate::{Outcome, RequestResult};

/// Error rate (graceful rejections not counted) below `max` (seed: 5% under exhaustion, 1%
/// sustained).
pub fn error_rate(m: &LoadMetrics, max: f64) -> Verdict {
    let c = &m.counts;
    let classes: Vec<String> = [
        ("protocol", c.protocol),
        ("client_error", c.client_error),
        ("server_error", c.server_error),
        ("timeout", c.timeout),
        ("connect", c.connect),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(name, n)| format!("{name} {n}"))
    .collect();
    Verdict::new(
        Check::ErrorRate,
        m.total > 0 && m.error_rate < max,
        format!("< {}", pct(max)),
        pct(m.error_rate),
        format!(
            "{} of {} requests failed (graceful rejections, {}, not counted){}{}",
            m.errors,
            m.total,
            m.rejected,
            if classes.is_empty() {
                String::new()
            } else {
                format!(": {}", classes.join(", "))
            },
            if m.total == 0 {
                "; no requests were recorded"
            } else {
                ""
            }
        ),
    )
}

/// The load was applied: at least `min_share` (e.g. 90%) of the `offered` requests were
/// sent and answered. Below that the run judged a lighter load than it claims, so the verdict
/// is inconclusive (never a pass): the server (or the generator) could not take the load.
pub fn load_applied(answered: u64, offered: u64, min_share: f64) -> Verdict {
    let share = if offered == 0 {
        0.0
    } else {
        answered as f64 / offered as f64
    };
    let threshold = format!(">= {} of the offered load", pct(min_share));
    let measured = format!("{answered} of {offered} ({})", pct(share));
    if offered > 0 && share >= min_share {
        Verdict::new(
            Check::LoadApplied,
            true,
            threshold,
            measured,
            "the offered load was applied",
        )
    } else {
        Verdict::inconclusive(
            Check::LoadApplied,
            threshold,
            measured,
            format!(
                "only {answered} of {offered} offered requests were answered in the run: the load the verdicts judge is lighter than the test's, so they judge nothing (lower the rate, or give the server more time)"
            ),
        )
    }
}

/// No 5xx that is not a configured graceful rejection: a server under load must not crash.
pub fn no_server_errors(m: &LoadMetrics) -> Verdict {
    let n = m.counts.server_error;
    Verdict::new(
        Check::NoServerErrors,
        n == 0,
        "0",
        n.to_string(),
        if n == 0 {
            "no 5xx responses".to_owned()
        } else {
            format!(
                "{n} responses were server errors: {:?}",
                statuses_at_least(m, 500)
            )
        },
    )
}

/// Every request got a complete HTTP answer: no connect failures, resets, timeouts or broken
/// streams.
pub fn all_answered(m: &LoadMetrics) -> Verdict {
    let c = &m.counts;
    let lost = c.connect + c.timeout + c.protocol;
    Verdict::new(
        Check::AllAnswered,
        lost == 0 && m.total > 0,
        "0 unanswered",
        lost.to_string(),
        format!(
            "{} connection failures, {} timeouts, {} protocol failures of {} requests",
            c.connect, c.timeout, c.protocol, m.total
        ),
    )
}

/// Every non-2xx was a graceful rejection (429 with `Retry-After` and the error envelope).
pub fn only_graceful_failures(m: &LoadMetrics) -> Verdict {
    Verdict::new(
        Check::OnlyGracefulFailures,
        m.errors == 0 && m.total > 0,
        "0 non-graceful failures",
        m.errors.to_string(),
        format!("status codes {:?}", m.status_codes),
    )
}

/// The server served part of the load: at least `min` successes. A server that rejects
/// everything gracefully has not handled the load, it has refused it.
pub fn served_some(m: &LoadMetrics, min: u64) -> Verdict {
    Verdict::new(
        Check::ServedSome,
        m.successful >= min,
        format!(">= {min} successes"),
        format!("{} of {}", m.successful, m.total),
        format!("status codes {:?}", m.status_codes),
    )
}

/// Graceful rejections appear under exhaustion: at least `min` of them.
pub fn rejections_seen(m: &LoadMetrics, min: u64) -> Verdict {
    Verdict::new(
        Check::RejectionsSeen,
        m.rejected >= min,
        format!(">= {min} graceful rejections"),
        m.rejected.to_string(),
        format!(
            "{} graceful rejections of {} requests; status codes {:?}",
            m.rejected, m.total, m.status_codes
        ),
    )
}

/// Every response with a rejection status (429, 503, 529) carried `Retry-After` and the error
/// envelope.
pub fn rejections_well_formed(results: &[RequestResult]) -> Verdict {
    let total = results.iter().filter(|r| r.has_rejection_status()).count();
    let no_retry = results
        .iter()
        .filter(|r| r.has_rejection_status() && r.retry_after.is_none())
        .count();
    let no_envelope = results
        .iter()
        .filter(|r| r.has_rejection_status() && r.error_type.is_none())
        .count();
    let bad = results
        .iter()
        .filter(|r| r.has_rejection_status() && r.outcome != Outcome::Rejected)
        .count();
    Verdict::new(
        Check::RejectionsWellFormed,
        bad == 0,
        "every 429/503/529 graceful",
        format!("{bad} of {total} malformed"),
        format!(
            "{no_retry} without Retry-After, {no_envelope} without the error envelope, {bad} not counted as graceful"
        ),
    )
}

/// Rejections come at once, not after the work: rejection p95 at most `max(floor, half the
/// success p50)`. A server that accepts and then fails late holds resources and wastes the
/// client's time.
pub fn rejections_fast(results: &[RequestResult], floor: Duration) -> Verdict {
    let mut rejected = LatencyHistogram::new();
    let mut ok = LatencyHistogram::new();
    for r in results {
        if r.has_rejection_status() {
            rejected.record(r.latency());
        } else if r.outcome == Outcome::Success {
            ok.record(r.latency());
        }
    }
    let limit = floor.max(ok.quantile(0.5) / 2);
    let p95 = rejected.quantile(0.95);
    Verdict::new(
        Check::RejectionsFast,
        !rejected.is_empty() && p95 <= limit,
        format!("p95 <= {}", ms(limit)),
        if rejected.is_empty() {
            "no rejections".to_owned()
        } else {
            ms(p95)
        },
        format!(
            "{} rejections, p95 {}; successes p50 {}",
            rejected.len(),
            ms(p95),
            ms(ok.quantile(0.5))
        ),
    )
}

/// Latency p95 of successful requests below `max` (seed: 2 s).
pub fn latency_p95(m: &LoadMetrics, max: Duration) -> Verdict {
    let l = &m.success_latency;
    Verdict::new(
        Check::LatencyP95,
        l.count > 0 && l.p95 < max,
        format!("< {}", ms(max)),
        ms(l.p95),
        format!(
            "{} successes: p50 {}, p95 {}, p99 {}, max {}",
            l.count,
            ms(l.p50),
            ms(l.p95),
            ms(l.p99),
            ms(l.max)
        ),
    )
}

/// Request cache hit rate (turn ≥ 2) above `min` (seed: 80%).
pub fn cache_hit_rate(m: &LoadMetrics, min: f64) -> Verdict {
    let c = &m.cache;
    if c.eligible == 0 {
        return Verdict::inconclusive(
            Check::CacheHitRate,
            format!("> {}", pct(min)),
            "no follow-up turn",
            format!(
                "no follow-up turn came back with usage ({} of {} requests succeeded): there was no reuse to judge",
                m.successful, m.total
            ),
        );
    }
    let rate = c.request_hit_rate.unwrap_or(0.0);
    Verdict::new(
        Check::CacheHitRate,
        rate > min,
        format!("> {}", pct(min)),
        pct(rate),
        format!(
            "{} of {} follow-up turns reused cached tokens; token hit rate {}",
            c.hits,
            c.eligible,
            c.token_hit_rate.map_or("n/a".to_owned(), pct)
        ),
    )
}

/// Exactly `expected` requests succeeded (seed: all 500 of 10 agents × 50).
pub fn completed(m: &LoadMetrics, expected: u64) -> Verdict {
    Verdict::new(
        Check::Completed,
        m.successful == expected && m.total == expected,
        format!("{expected} of {expected}"),
        format!("{} of {}", m.successful, m.total),
        format!("status codes {:?}", m.status_codes),
    )
}

/// The load really pushed the pool near exhaustion: peak utilization at least `min`, as read
/// from `source` (e.g. `GET /health at /pool/utilization`). Without it a rejection test
/// proves nothing, so a peak below `min`, or no reading at all, is inconclusive, never a pass.
pub fn pool_reached(peak: Option<f64>, min: f64, source: &str) -> Verdict {
    let threshold = format!(">= {}", pct(min));
    match peak {
        Some(p) if p >= min => Verdict::new(
            Check::PoolReached,
            true,
            threshold,
            pct(p),
            format!("peak pool utilization from {source} during the load"),
        ),
        Some(p) => Verdict::inconclusive(
            Check::PoolReached,
            threshold,
            pct(p),
            format!(
                "the load never pushed the pool past {} (peak {} from {source}): exhaustion was not reached, so rejection under exhaustion was not tested",
                pct(min),
                pct(p)
            ),
        ),
        None => Verdict::inconclusive(
            Check::PoolReached,
            threshold,
            "unknown",
            format!("{source} gave no pool figure during the load"),
        ),
    }
}

/// No rejection while utilization is low: the low phase of a ramp saw no rejection, and its
/// peak utilization stayed below 90%. Inconclusive when the phase was not low, or its
/// utilization unknown, and it saw no rejection.
pub fn no_early_rejections(low_phase_rejections: u64, low_phase_peak: Option<f64>) -> Verdict {
    let low = low_phase_peak.is_some_and(|p| p < 0.9);
    let threshold = "0 rejections below 90% utilization";
    let measured = format!(
        "{low_phase_rejections} rejections, peak {}",
        low_phase_peak.map_or("unknown".to_owned(), pct)
    );
    if low || low_phase_rejections > 0 && low_phase_peak.is_none() {
        Verdict::new(
            Check::NoEarlyRejections,
            low_phase_rejections == 0,
            threshold,
            measured,
            "rejections during the low-load phase",
        )
    } else {
        Verdict::inconclusive(
            Check::NoEarlyRejections,
            threshold,
            measured,
            "the low-load phase was not seen to be low (no pool figure, or it passed 90%): lower its concurrency",
        )
    }
}

fn statuses_at_least(m: &LoadMetrics, min: u16) -> Vec<(u16, u64)> {
    m.status_codes
        .iter()
        .filter(|(s, _)| **s >= min)
        .map(|(s, n)| (*s, *n))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::MetricsCollector;
    use crate::anthropic::Usage;

    fn rec(outcome: Outcome, status: u16, latency_ms: u64) -> RequestResult {
        let t0 = Instant::now();
        let mut r = RequestResult::pending(t0, t0);
        r.outcome = outcome;
        r.status = status;
        r.finished_at = t0 + Duration::from_millis(latency_ms);
        if outcome == Outcome::Rejected {
            r.retry_after = Some(Duration::from_secs(1));
            r.error_type = Some("overloaded_error".to_owned());
        }
        if outcome == Outcome::Success {
            r.usage = Some(Usage {
                input_tokens: 10,
                output_tokens: 5,
                cache_read_input_tokens: 8,
                cache_creation_input_tokens: 2,
            });
        }
        r
    }

    fn many(outcome: Outcome, status: u16, latency_ms: u64, n: usize) -> Vec<RequestResult> {
        (0..n).map(|_| rec(outcome, status, latency_ms)).collect()
    }

    #[test]
    fn error_rate_counts_failures_not_rejections_and_fails_on_nothing() {
        let mut rs = many(Outcome::Success, 200, 10, 90);
        rs.extend(many(Outcome::Rejected, 429, 1, 10));
        let m = MetricsCollector::analyze(&rs);
        assert!(error_rate(&m, 0.05).passed());
        rs.extend(many(Outcome::ServerError, 500, 1, 10));
        assert!(!error_rate(&MetricsCollector::analyze(&rs), 0.05).passed());
        assert!(!error_rate(&MetricsCollector::analyze(&[]), 0.05).passed());
    }

    #[test]
    fn graceful_only_served_and_seen() {
        let ok = many(Outcome::Success, 200, 10, 3);
        let rejected = many(Outcome::Rejected, 429, 1, 3);
        let all_rejected = MetricsCollector::analyze(&rejected);
        assert!(only_graceful_failures(&all_rejected).passed());
        assert!(
            !served_some(&all_rejected, 1).passed(),
            "refusing everyone is not serving"
        );
        assert!(rejections_seen(&all_rejected, 1).passed());
        let m = MetricsCollector::analyze(&ok);
        assert!(served_some(&m, 1).passed());
        assert!(
            !rejections_seen(&m, 1).passed(),
            "no rejection under exhaustion"
        );
        let mut bad = ok;
        bad.push(rec(Outcome::ClientError, 429, 1));
        assert!(!only_graceful_failures(&MetricsCollector::analyze(&bad)).passed());
    }

    #[test]
    fn rejections_must_be_well_formed_and_fast() {
        let mut rs = many(Outcome::Success, 200, 200, 10);
        rs.extend(many(Outcome::Rejected, 429, 2, 10));
        assert!(rejections_well_formed(&rs).passed());
        assert!(rejections_fast(&rs, Duration::from_millis(50)).passed());
        let mut late = many(Outcome::Success, 200, 200, 10);
        late.extend(many(Outcome::Rejected, 429, 400, 10));
        assert!(!rejections_fast(&late, Duration::from_millis(50)).passed());
        let mut bare = rec(Outcome::ClientError, 429, 1);
        bare.error_type = Some("overloaded_error".to_owned());
        rs.push(bare);
        assert!(!rejections_well_formed(&rs).passed());
    }

    #[test]
    fn latency_completion_and_cache_thresholds() {
        let fast = MetricsCollector::analyze(&many(Outcome::Success, 200, 100, 20));
        let slow = MetricsCollector::analyze(&many(Outcome::Success, 200, 2500, 20));
        assert!(latency_p95(&fast, Duration::from_secs(2)).passed());
        assert!(!latency_p95(&slow, Duration::from_secs(2)).passed());
        assert!(completed(&fast, 20).passed());
        assert!(!completed(&fast, 21).passed());
        assert!(cache_hit_rate(&fast, 0.8).passed());
        let mut cold = many(Outcome::Success, 200, 100, 20);
        for r in &mut cold {
            r.usage = Some(Usage {
                input_tokens: 10,
                output_tokens: 5,
                ..Usage::default()
            });
        }
        let cold = cache_hit_rate(&MetricsCollector::analyze(&cold), 0.8);
        assert_eq!(cold.status, crate::checks::Status::Fail, "{cold}");
        // Nothing eligible (every request failed): nothing judged, not a failure of the cache.
        let failed = MetricsCollector::analyze(&many(Outcome::ServerError, 500, 100, 20));
        let none = cache_hit_rate(&failed, 0.8);
        assert_eq!(none.status, crate::checks::Status::Inconclusive, "{none}");
    }

    #[test]
    fn pool_figures_are_required_and_low_phase_must_be_quiet() {
        use crate::checks::Status;
        assert!(pool_reached(Some(0.94), 0.9, "GET /health").passed());
        let low = pool_reached(Some(0.5), 0.9, "GET /health");
        assert_eq!(low.status, Status::Inconclusive, "never full is not a pass");
        assert_eq!(pool_reached(None, 0.9, "x").status, Status::Inconclusive);
        assert!(no_early_rejections(0, Some(0.1)).passed());
        assert_eq!(no_early_rejections(3, Some(0.1)).status, Status::Fail);
        assert_eq!(no_early_rejections(3, None).status, Status::Fail);
        assert_eq!(
            no_early_rejections(0, Some(0.95)).status,
            Status::Inconclusive
        );
        assert_eq!(no_early_rejections(0, None).status, Status::Inconclusive);
    }

    #[test]
    fn all_answered_fails_on_each_lost_class() {
        for outcome in [Outcome::Connect, Outcome::Timeout, Outcome::Protocol] {
            let mut rs = many(Outcome::Success, 200, 10, 5);
            rs.push(rec(outcome, 0, 10));
            assert!(
                !all_answered(&MetricsCollector::analyze(&rs)).passed(),
                "{outcome}"
            );
        }
        assert!(
            all_answered(&MetricsCollector::analyze(&many(
                Outcome::Success,
                200,
                10,
                5
            )))
            .passed()
        );
    }
}
