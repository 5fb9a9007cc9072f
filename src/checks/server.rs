//! Checks of server behaviour beyond one run's figures: isolation, recovery, health.

use std::time::Duration;

use serde::Serialize;

use super::Check;
use super::{Verdict, ms, pct};
use crate::metrics::LatencyHistogram;
use crate::{Outcome, RequestResult};

/// Paired evidence of cache isolation gathered under load.
///
/// Isolation is shown by pairs, never by absence alone: the same agent repeating its prefix
/// must hit (else the "miss" of another agent proves nothing: caching may simply be off),
/// another agent sending the identical prefix must miss, and no reply may carry another
/// agent's canary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IsolationEvidence {
    /// Follow-up turns of an agent over its own cached prefix.
    pub same_agent_pairs: u64,
    /// Of those, how many reused cached tokens.
    pub same_agent_hits: u64,
    /// First turns of an agent whose prefix another agent had cached.
    pub cross_agent_pairs: u64,
    /// Of those, how many reused cached tokens (must be 0).
    pub cross_agent_hits: u64,
    /// Replies whose text was checked for canaries.
    pub replies_checked: u64,
    /// Replies that repeated their own agent's canary, as asked: without any, a leak could not
    /// show in the text, so the canary check has nothing to judge.
    pub own_canaries_seen: u64,
    /// Replies carrying another agent's canary: `(agent, foreign canary)`.
    pub foreign_canaries: Vec<(String, String)>,
}

/// The three isolation verdicts: same agent hits (at least `min_same_hit_rate` of its
/// follow-ups; the seed's 80%), other agents miss (all), no foreign canary (none).
pub fn isolation(e: &IsolationEvidence, min_same_hit_rate: f64) -> Vec<Verdict> {
    let rate = |hits: u64, n: u64| if n == 0 { 0.0 } else { hits as f64 / n as f64 };
    let same = rate(e.same_agent_hits, e.same_agent_pairs);
    vec![
        Verdict::new(
            Check::IsolationSameAgentHits,
            e.same_agent_pairs > 0 && same >= min_same_hit_rate,
            format!(">= {}", pct(min_same_hit_rate)),
            pct(same),
            format!(
                "{} of {} same-agent follow-ups reused the agent's cache (without this, a miss by another agent proves nothing)",
                e.same_agent_hits, e.same_agent_pairs
            ),
        ),
        Verdict::new(
            Check::IsolationCrossAgentMisses,
            e.cross_agent_pairs > 0 && e.cross_agent_hits == 0,
            "0 hits",
            format!("{} of {}", e.cross_agent_hits, e.cross_agent_pairs),
            "first turns of agents sending a prefix another agent had cached must reuse nothing",
        ),
        no_foreign_canary(e),
    ]
}

/// No reply carries another agent's exact canary; inconclusive when the model repeated none of
/// its own (then a leak could not show in the text).
fn no_foreign_canary(e: &IsolationEvidence) -> Verdict {
    let measured = format!("{} of {}", e.foreign_canaries.len(), e.replies_checked);
    if let Some((agent, canary)) = e.foreign_canaries.first() {
        return Verdict::new(
            Check::IsolationNoForeignCanary,
            false,
            "0 replies",
            measured,
            format!(
                "agent {agent} received {canary}: another agent's content reached its reply ({} replies in all)",
                e.foreign_canaries.len()
            ),
        );
    }
    if e.own_canaries_seen == 0 {
        return Verdict::inconclusive(
            Check::IsolationNoForeignCanary,
            "0 replies",
            measured,
            format!(
                "none of {} replies repeated its own agent's canary as asked, so a canary from another agent could not show either",
                e.replies_checked
            ),
        );
    }
    Verdict::new(
        Check::IsolationNoForeignCanary,
        true,
        "0 replies",
        measured,
        format!(
            "no reply carried another agent's canary; {} of {} replies repeated their own",
            e.own_canaries_seen, e.replies_checked
        ),
    )
}

/// The pool recovered: normal requests succeeded in a row at baseline latency within `max` after load
/// stopped (seed: 30 s). `None`: it never did within the measurement window.
pub fn recovery(time: Option<Duration>, max: Duration) -> Verdict {
    Verdict::new(
        Check::PoolRecovery,
        time.is_some_and(|t| t < max),
        format!("< {:.0} s", max.as_secs_f64()),
        time.map_or("never".to_owned(), |t| format!("{:.2} s", t.as_secs_f64())),
        match time {
            Some(t) => format!(
                "normal requests succeeded in a row at baseline latency {:.2} s after load stopped",
                t.as_secs_f64()
            ),
            None => "normal requests did not succeed in a row at baseline latency within the measurement window".to_owned(),
        },
    )
}

/// Health probes during and after load all answered 2xx, with p99 below `max`.
pub fn health_responsive(probes: &[RequestResult], max: Duration) -> Verdict {
    if probes.is_empty() {
        return Verdict::inconclusive(
            Check::HealthResponsive,
            format!("all 2xx, p99 < {}", ms(max)),
            "0 probes",
            "no liveness probe was sent during the load: responsiveness was not measured",
        );
    }
    let mut h = LatencyHistogram::new();
    let mut failed = 0u64;
    for p in probes {
        h.record(p.latency());
        if p.outcome != Outcome::Success {
            failed += 1;
        }
    }
    let p99 = h.quantile(0.99);
    Verdict::new(
        Check::HealthResponsive,
        failed == 0 && p99 < max,
        format!("all 2xx, p99 < {}", ms(max)),
        format!("{failed} failed, p99 {}", ms(p99)),
        format!(
            "{} liveness probes during and after the load; max {}",
            probes.len(),
            ms(h.quantile(1.0))
        ),
    )
}

/// Every request sent was recorded exactly once.
pub fn accounted(sent: u64, recorded: u64) -> Verdict {
    Verdict::new(
        Check::Accounted,
        sent == recorded,
        "sent == recorded",
        format!("{sent} sent, {recorded} recorded"),
        "each request yields one record whatever happens",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_needs_both_halves_of_each_pair() {
        let good = IsolationEvidence {
            same_agent_pairs: 10,
            same_agent_hits: 10,
            cross_agent_pairs: 10,
            cross_agent_hits: 0,
            replies_checked: 20,
            own_canaries_seen: 20,
            foreign_canaries: vec![],
        };
        assert!(isolation(&good, 0.8).iter().all(|v| v.passed()));
        let silent_model = IsolationEvidence {
            own_canaries_seen: 0,
            ..good.clone()
        };
        assert_eq!(
            isolation(&silent_model, 0.8)[2].status,
            crate::checks::Status::Inconclusive,
            "a model that repeats no canary cannot show a foreign one"
        );
        let no_cache = IsolationEvidence {
            same_agent_hits: 0,
            ..good.clone()
        };
        let v = isolation(&no_cache, 0.8);
        assert!(!v[0].passed(), "caching off must fail the same-agent half");
        let bleed = IsolationEvidence {
            cross_agent_hits: 3,
            foreign_canaries: vec![("a".into(), "CANARY-b".into())],
            ..good
        };
        let v = isolation(&bleed, 0.8);
        assert!(!v[1].passed() && !v[2].passed());
        assert!(
            isolation(&IsolationEvidence::default(), 0.8)
                .iter()
                .all(|v| !v.passed())
        );
    }

    #[test]
    fn recovery_threshold() {
        let max = Duration::from_secs(30);
        assert!(recovery(Some(Duration::from_secs(2)), max).passed());
        assert!(!recovery(Some(Duration::from_secs(31)), max).passed());
        assert!(!recovery(None, max).passed());
    }
}

#[cfg(test)]
mod accounting_tests {
    use super::*;

    fn probe(outcome: Outcome, latency_ms: u64) -> RequestResult {
        let t0 = std::time::Instant::now();
        let mut r = RequestResult::pending(t0, t0);
        r.outcome = outcome;
        r.finished_at = t0 + Duration::from_millis(latency_ms);
        r
    }

    #[test]
    fn health_must_answer_every_probe_quickly() {
        let max = Duration::from_millis(500);
        let quick: Vec<_> = (0..50).map(|_| probe(Outcome::Success, 3)).collect();
        assert!(health_responsive(&quick, max).passed());
        let mut blocked = quick.clone();
        blocked.extend((0..5).map(|_| probe(Outcome::Success, 2000)));
        assert!(!health_responsive(&blocked, max).passed());
        let mut failing = quick;
        failing.push(probe(Outcome::Timeout, 3));
        assert!(!health_responsive(&failing, max).passed());
        let none = health_responsive(&[], max);
        assert_eq!(none.status, crate::checks::Status::Inconclusive, "{none}");
    }

    #[test]
    fn sent_must_equal_recorded() {
        assert!(accounted(10, 10).passed());
        assert!(!accounted(10, 9).passed());
    }
}

/// The server's waiting queue, read from its own `/metrics`, was empty in the last sample
/// (taken once the load had ended): nothing is left stuck. `None` when the server does not
/// expose a queue figure: there is nothing to judge, and no verdict pretends otherwise.
pub fn queue_drained(server: &crate::ServerMetrics) -> Option<Verdict> {
    let last = server.summary.requests_waiting_last?;
    Some(Verdict::new(
        Check::ServerQueueDrained,
        last == 0.0,
        "0 waiting",
        format!("{last} waiting"),
        format!(
            "the server's own queue after the load ({} samples; at most {} waiting during the run)",
            server.summary.samples,
            server
                .summary
                .requests_waiting_max
                .map_or("?".to_owned(), |m| m.to_string())
        ),
    ))
}
