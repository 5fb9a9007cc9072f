//! Whether a run's timing can be trusted: [`Trust`], judged from the harness's own figures.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::engine::GeneratorStats;
use crate::metrics::TimingErrors;

/// The harness's own delay above which its timing is not trusted, at p99: the wake-up lag of a
/// ready task, and the TTFT or ITL error against a stamping server. The same figure as the
/// timer-lag bound of [`GeneratorStats::saturated`].
pub(crate) const OWN_DELAY_BOUND: Duration = Duration::from_millis(2);
/// Event-loop busy share above which ready sockets wait for their turn.
pub(crate) const BUSY_SHARE_BOUND: f64 = 0.9;
/// Share of the cores available to the generator above which it is short of CPU.
pub(crate) const CPU_SHARE_BOUND: f64 = 0.9;

/// "measurement trustworthy: yes/no — reason", in every report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trust {
    /// Whether the run's timing describes the server rather than the harness.
    pub trustworthy: bool,
    /// Why: the first figure over its bound, or the figures that were within theirs.
    pub reason: String,
}

impl Trust {
    /// Judges `generator`'s figures, and the timing `errors` measured against the server's
    /// stamps when there are any. Not trustworthy when: the figures were not recorded, the
    /// generator was saturated, a ready task waited over 2 ms at p99 (the timer-lag bound of
    /// saturation), the event loop was busy over 90% of the run, the process used over 90% of
    /// its cores' time, or the measured TTFT or ITL error is over 2 ms at p99.
    pub fn judge(generator: Option<&GeneratorStats>, errors: Option<&TimingErrors>) -> Self {
        let no = |reason: String| Self {
            trustworthy: false,
            reason,
        };
        let Some(g) = generator else {
            return no("the generator's own figures were not recorded".to_owned());
        };
        let bound_ms = OWN_DELAY_BOUND.as_secs_f64() * 1e3;
        if g.saturated {
            let wake = g
                .wake_lag_p99_ms
                .map_or(String::new(), |l| format!(", wake-up lag p99 {l:.2} ms"));
            return no(format!(
                "generator saturated: timer lag p99 {:.2} ms{wake}, {} of {} slots late",
                g.timer_lag_p99_ms, g.late_slots, g.slots
            ));
        }
        if let Some(lag) = g.wake_lag_p99_ms.filter(|&l| l > bound_ms) {
            return no(format!(
                "event loop slow to poll ready tasks: wake-up lag p99 {lag:.2} ms over {bound_ms:.0} ms"
            ));
        }
        if let Some(busy) = g.busy_share.filter(|&b| b > BUSY_SHARE_BOUND) {
            return no(format!("event loop busy {:.0}% of the run", busy * 100.0));
        }
        if let Some(cpu) = g.cpu_share.filter(|&c| c > CPU_SHARE_BOUND) {
            return no(format!(
                "generator used {:.0}% of its cores' time",
                cpu * 100.0
            ));
        }
        if let Some(why) = errors.and_then(|e| e.exceeds(OWN_DELAY_BOUND)) {
            return no(format!("against the server's stamps: {why}"));
        }
        let opt = |v: Option<f64>, unit: &str, scale: f64| {
            v.map_or("n/a".to_owned(), |v| format!("{:.2}{unit}", v * scale))
        };
        let mut reason = format!(
            "timer lag p99 {:.2} ms, wake-up lag p99 {}, event loop busy {}, CPU {} of its cores",
            g.timer_lag_p99_ms,
            opt(g.wake_lag_p99_ms, " ms", 1.0),
            opt(g.busy_share, "%", 100.0),
            opt(g.cpu_share, "%", 100.0),
        );
        if let Some(e) = errors {
            let p99 = |s: &Option<crate::metrics::LatencySummary>| {
                s.as_ref().map_or("n/a".to_owned(), |s| {
                    format!("{:.3} ms", s.p99.as_secs_f64() * 1e3)
                })
            };
            reason.push_str(&format!(
                "; against the server's stamps TTFT error p99 {}, ITL error p99 {}",
                p99(&e.ttft),
                p99(&e.itl)
            ));
        }
        Self {
            trustworthy: true,
            reason,
        }
    }

    /// `measurement trustworthy: yes — reason` (or `no`).
    pub fn line(&self) -> String {
        format!(
            "measurement trustworthy: {} — {}",
            if self.trustworthy { "yes" } else { "no" },
            self.reason
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_figure_over_its_bound_says_no() {
        assert!(!Trust::judge(None, None).trustworthy);
        let ok = GeneratorStats {
            wake_lag_p99_ms: Some(0.3),
            busy_share: Some(0.4),
            cpu_share: Some(0.5),
            ..GeneratorStats::default()
        };
        let t = Trust::judge(Some(&ok), None);
        assert!(t.trustworthy, "{t:?}");
        assert!(
            t.line()
                .starts_with("measurement trustworthy: yes — timer lag")
        );
        for bad in [
            GeneratorStats {
                saturated: true,
                ..ok.clone()
            },
            GeneratorStats {
                wake_lag_p99_ms: Some(3.0),
                ..ok.clone()
            },
            GeneratorStats {
                busy_share: Some(0.95),
                ..ok.clone()
            },
            GeneratorStats {
                cpu_share: Some(0.99),
                ..ok
            },
        ] {
            let t = Trust::judge(Some(&bad), None);
            assert!(!t.trustworthy, "{bad:?}");
            assert!(t.line().starts_with("measurement trustworthy: no — "));
        }
    }
}
