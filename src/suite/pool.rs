//! Pool exhaustion: bursts, the exhaustion ramp, overload with health probes, recovery, streams.

use std::time::{Duration, Instant};

use crate::anthropic::{Message, MessagesRequest};
use crate::checks::{self, Check, Verdict};
use crate::{Load, Outcome, Probe, Report, Request, RequestResult, Stage};

use super::*;

/// `n` identical requests at once (seed: 150, `max_tokens` 100): every one answered, no 5xx,
/// every non-2xx a graceful rejection.
///
/// The one scenario whose replies never stream, whatever the target's settings: the
/// non-streamed path stays covered (its replies have an end-to-end latency, and no TTFT).
pub async fn concurrent_burst(target: &Target, name: &str, n: usize) -> crate::Result<Report> {
    let model = target.config().model.clone();
    let harness = target.harness(|c| c.workers(n))?;
    let body = Request::messages(&MessagesRequest::new(
        &model,
        vec![Message::user(
            "Explain how a block pool serves many agents at once.",
        )],
        100,
    ));
    let load = Load::closed(n, crate::Stop::requests(n as u64));
    let run = harness.run(load, move |_| body.clone()).await?;
    let m = analyze(target, &run.results);
    let mut report = base_report(name, target);
    report
        .config("requests", n)
        .config("max_tokens", 100)
        .config("stream", false);
    report.verdicts([
        checks::accounted(run.sent, run.results.len() as u64),
        checks::served_some(&m, 1),
        checks::all_answered(&m),
        checks::no_server_errors(&m),
        checks::only_graceful_failures(&m),
    ]);
    report.metrics = Some(m);
    clean_up(target, &mut report, agents_of(&run.results)).await;
    report.generator = Some(run.generator);
    Ok(report)
}

/// Load until the pool passes 95%: a low phase (`low` closed-loop workers) that must see no
/// rejection, then paced arrivals at `high_rate` per second (far above what the pool can
/// serve) for `high_hold` that must see graceful rejections — each with `Retry-After` and the
/// envelope, answered at once — and an error rate under 5% with rejections not counted.
///
/// The exhausting phase is paced rather than a closed loop so that clients answered at once
/// do not turn into a retry storm that saturates the generator's own cores: rejection latency
/// then measures the server, not the client.
///
/// When the profile names an agent header, every request is a new agent (its own
/// `X-Session-ID`), as when many users arrive at once: a server that keeps each agent's cache
/// fills its pool, where identical anonymous prompts may all be one agent (agent-memory derives
/// an anonymous agent's id from its first 100 prompt tokens, `anthropic_adapter.py:652-658`).
pub async fn graceful_rejection(
    target: &Target,
    name: &str,
    low: Stage,
    high_rate: Option<f64>,
    high_hold: Duration,
    max_tokens: u32,
) -> crate::Result<Report> {
    let profile = target.profile_ref();
    if !profile.rejection.capacity {
        return Ok(queues_instead(
            target,
            name,
            &[
                Check::RejectionsSeen,
                Check::RejectionsWellFormed,
                Check::RejectionsFast,
            ],
        ));
    }
    let sizing = Sizing::overload(target, high_rate, max_tokens).await?;
    let (high_rate, high_hold) = (sizing.rate, sizing.hold(high_hold));
    let harness = target.harness(|c| c.workers(HIGH_IN_FLIGHT))?;
    let pool = profile.pool.clone();
    let health = pool.as_ref().and_then(|reading| {
        Some(Probe::start(
            harness.client().clone(),
            Request::get(reading.path()?).keep_text(),
            Duration::from_millis(20),
            100_000,
        ))
    });
    let body = message(
        target,
        "Write a long story about caches and agents.",
        max_tokens,
    );
    let per_request = !profile.agent_header.is_empty();
    let tag = run_tag();
    let agent = move |phase: &str, body: &Request, index: u64| {
        let request = body.clone();
        if per_request {
            request.session(format!("reject-{tag}-{phase}{index}"))
        } else {
            request
        }
    };
    let (low_body, low_agent) = (body.clone(), agent.clone());
    let low_run = harness
        .run(
            Load::closed(low.concurrency, crate::Stop::after(low.hold)),
            move |slot| low_agent("low", &low_body, slot.index),
        )
        .await?;
    let low_end = Instant::now();
    let high_run = harness
        .run(
            Load::open(
                HIGH_IN_FLIGHT,
                crate::Arrivals::Poisson {
                    per_second: high_rate,
                    seed: harness.config().seed,
                },
                crate::Stop::after(high_hold),
            ),
            move |slot| agent("high", &body, slot.index),
        )
        .await?;
    let probes = match health {
        Some(probe) => probe.stop().await,
        None => Vec::new(),
    };
    let mut run = low_run;
    run.sent += high_run.sent;
    run.results.extend(high_run.results);
    run.generator = high_run.generator;
    let m = analyze(target, &run.results);
    let util: Vec<(Instant, f64)> = match &pool {
        Some(reading) => probes
            .iter()
            .filter_map(|p| Some((p.started_at, reading.extract(p.text.as_deref()?)?)))
            .collect(),
        None => Vec::new(),
    };
    let low_rejections = run
        .results
        .iter()
        .filter(|r| r.started_at < low_end && is_rejection(r))
        .count() as u64;
    let low_peak = util
        .iter()
        .filter(|(t, _)| *t < low_end)
        .map(|(_, u)| *u)
        .fold(None, |a: Option<f64>, u| Some(a.map_or(u, |a| a.max(u))));
    let peak = util
        .iter()
        .map(|(_, u)| *u)
        .fold(None, |a: Option<f64>, u| Some(a.map_or(u, |a| a.max(u))));
    let first_rejection = run
        .results
        .iter()
        .filter(|r| is_rejection(r))
        .map(|r| r.started_at)
        .min();
    // The first pool reading taken at or after the first rejection was sent.
    let onset = first_rejection.and_then(|t| {
        util.iter()
            .filter(|(at, _)| *at >= t)
            .min_by_key(|(at, _)| *at)
            .map(|(_, u)| *u)
    });
    let mut report = base_report(name, target);
    report
        .config(
            "low_phase",
            format!("{} workers for {:?}", low.concurrency, low.hold),
        )
        .config(
            "high_phase",
            format!("{high_rate} requests/s for {high_hold:?}, at most {HIGH_IN_FLIGHT} in flight"),
        )
        .config("max_tokens", max_tokens)
        .config(
            "agents",
            if per_request {
                "one per request"
            } else {
                "anonymous"
            },
        )
        .config("high_rate_source", &sizing.source)
        .figure("calibration", &sizing.calibration)
        .figure("peak_pool_utilization", peak)
        .figure("low_phase_peak_utilization", low_peak)
        .figure("utilization_at_first_rejection", onset)
        .figure("health_probes", probes.len());
    let rejections = run.results.iter().filter(|r| is_rejection(r)).count();
    let pool_verdict = match &pool {
        Some(reading) => checks::pool_reached(peak, 0.9, &reading.describe()),
        None => Verdict::not_applicable(
            Check::PoolReached,
            format!(
                "the {} profile names no pool figure",
                target.profile_ref().name
            ),
        ),
    };
    let full = pool_verdict.passed();
    let rejection_verdicts = if rejections > 0 || full {
        vec![
            checks::rejections_seen(&m, 1),
            checks::rejections_well_formed(&run.results),
            checks::rejections_fast(&run.results, Duration::from_millis(50)),
        ]
    } else {
        let why = format!(
            "no rejection in {} requests, and the pool was not seen full ({}): whether the server rejects gracefully when exhausted was not tested",
            run.results.len(),
            pool_verdict.measured
        );
        [
            Check::RejectionsSeen,
            Check::RejectionsWellFormed,
            Check::RejectionsFast,
        ]
        .into_iter()
        .map(|c| Verdict::inconclusive(c, "under exhaustion", "0 rejections", why.clone()))
        .collect()
    };
    report.verdicts([
        checks::accounted(run.sent, run.results.len() as u64),
        pool_verdict,
        checks::no_early_rejections(low_rejections, low_peak),
    ]);
    report.verdicts(rejection_verdicts);
    report.verdicts([checks::error_rate(
        &m,
        target.threshold().exhaustion_error_rate,
    )]);
    report.metrics = Some(m);
    clean_up(target, &mut report, agents_of(&run.results)).await;
    report.generator = Some(run.generator);
    Ok(report)
}

/// Rate-paced load past capacity for `duration` while `/health/live` is probed: no 5xx,
/// health answers quickly during and after, and the server process stays alive.
pub async fn no_crash(
    target: &Target,
    name: &str,
    rate: Option<f64>,
    duration: Duration,
) -> crate::Result<Report> {
    let sizing = Sizing::overload(target, rate, 100).await?;
    let (rate, duration) = (sizing.rate, sizing.hold(duration));
    let workers = 256;
    let harness = target.harness(|c| c.workers(workers))?;
    let liveness = target.profile_ref().liveness.clone();
    let live = liveness.as_ref().map(|path| {
        Probe::start(
            harness.client().clone(),
            Request::get(path.clone()),
            Duration::from_millis(50),
            100_000,
        )
    });
    let body = message(
        target,
        "Keep answering while the pool is under pressure.",
        100,
    );
    let load = Load::open(
        workers,
        crate::Arrivals::Poisson {
            per_second: rate,
            seed: harness.config().seed,
        },
        crate::Stop::after(duration),
    );
    let run = harness.run(load, move |_| body.clone()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let health = match (live, &liveness) {
        (Some(probe), Some(path)) => checks::health_responsive(
            &probe.stop().await,
            Duration::from_secs_f64(target.threshold().health_p99_s),
        )
        .about(path.clone()),
        _ => Verdict::not_applicable(
            Check::HealthResponsive,
            format!(
                "the {} profile names no liveness route",
                target.profile_ref().name
            ),
        ),
    };
    let alive = target.is_alive();
    let m = analyze(target, &run.results);
    let mut report = base_report(name, target);
    report
        .config("rate_per_s", rate)
        .config("rate_source", &sizing.source)
        .config("duration_s", duration.as_secs_f64())
        .figure("calibration", &sizing.calibration);
    report.verdicts(sizing.unmeasured());
    report.verdicts([
        checks::accounted(run.sent, run.results.len() as u64),
        served_under_load(&m),
        checks::no_server_errors(&m),
        health,
        Verdict::new(
            Check::ServerAlive,
            alive,
            "running",
            if alive { "running" } else { "exited" },
            "the server process after the load",
        ),
    ]);
    report.metrics = Some(m);
    clean_up(target, &mut report, agents_of(&run.results)).await;
    report.generator = Some(run.generator);
    Ok(report)
}

/// Saturate the pool with many agents, stop, and measure how long until a new agent's normal
/// request succeeds again at baseline latency (seed: < 30 s). Probes every 100 ms for at
/// most `window`.
pub async fn recovery(
    target: &Target,
    name: &str,
    window: Duration,
    max: Duration,
) -> crate::Result<Report> {
    if !target.profile_ref().rejection.capacity {
        return Ok(queues_instead(target, name, &[Check::PoolRecovery]));
    }
    let harness = target.harness(|c| c.workers(200))?;
    // Every request is a new agent, as after a real burst of users: a server that never frees
    // their blocks (or never evicts idle caches) cannot admit anyone new.
    let tag = format!("{:x}", std::process::id());
    let normal = |who: &str| {
        message(target, "Is the pool back to normal?", 20).session(format!("{who}-{tag}"))
    };
    let mut baseline = Vec::new();
    for i in 0..5 {
        baseline.push(
            harness
                .client()
                .send(&normal(&format!("baseline-{i}")), Instant::now())
                .await,
        );
    }
    let base = analyze(target, &baseline);
    let heavy = message(
        target,
        "Write a very long story about caches and agents.",
        400,
    );
    let load = Load::closed(200, crate::Stop::after(Duration::from_secs(2)));
    let sat_tag = tag.clone();
    let saturation = harness
        .run(load, move |slot| {
            heavy
                .clone()
                .session(format!("sat-{sat_tag}-{}", slot.index))
        })
        .await?;
    let sat = analyze(target, &saturation.results);
    let stopped = Instant::now();
    let limit =
        (base.success_latency.p50 * 3).max(base.success_latency.p50 + Duration::from_millis(100));
    // Recovered when RECOVERY_STREAK new agents in a row are served at baseline latency: one
    // lucky request that fits in the last free blocks proves nothing.
    let mut recovered = None;
    let mut probes = 0u64;
    let mut probed = Vec::new();
    let mut streak = 0;
    while stopped.elapsed() < window {
        probes += 1;
        let r = harness
            .client()
            .send(&normal(&format!("probe-{probes}")), Instant::now())
            .await;
        let served = r.outcome == Outcome::Success && r.latency() <= limit;
        probed.push(r);
        if served {
            streak += 1;
            if streak == RECOVERY_STREAK {
                recovered = Some(stopped.elapsed());
                break;
            }
            continue;
        }
        streak = 0;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut report = base_report(name, target);
    report
        .figure(
            "baseline_p50_ms",
            base.success_latency.p50.as_secs_f64() * 1000.0,
        )
        .figure("baseline_limit_ms", limit.as_secs_f64() * 1000.0)
        .figure("saturation_rejected", sat.rejected)
        .figure("saturation_requests", sat.total)
        .figure("recovery_s", recovered.map(|d| d.as_secs_f64()))
        .figure("recovery_probes", probes);
    report.verdicts([
        checks::completed(&base, 5),
        checks::rejections_seen(&sat, 1),
        checks::recovery(recovered, max),
    ]);
    report.metrics = Some(sat);
    let used = baseline.iter().chain(&saturation.results).chain(&probed);
    clean_up(target, &mut report, agents_of(used)).await;
    Ok(report)
}

/// `n` streamed requests, `concurrency` at a time: every stream must end in `message_stop`
/// with tokens (a truncated stream is a protocol failure, never a success).
pub async fn streams(
    target: &Target,
    name: &str,
    n: usize,
    concurrency: usize,
) -> crate::Result<Report> {
    let harness = target.harness(|c| c.workers(concurrency))?;
    let mut body = MessagesRequest::new(
        target.config().model.clone(),
        vec![Message::user("Stream a short answer about caches.")],
        64,
    );
    body.stream = true;
    let request = Request::messages(&body);
    let load = Load::closed(concurrency, crate::Stop::requests(n as u64));
    let run = harness.run(load, move |_| request.clone()).await?;
    let m = analyze(target, &run.results);
    let mut report = base_report(name, target);
    report.config("requests", n).config("stream", true);
    report.verdicts([
        checks::accounted(run.sent, run.results.len() as u64),
        checks::all_answered(&m),
        checks::completed(&m, n as u64),
    ]);
    report.metrics = Some(m);
    clean_up(target, &mut report, agents_of(&run.results)).await;
    report.generator = Some(run.generator);
    Ok(report)
}

/// How a paced overload was sized: given, or from the server's measured capacity.
struct Sizing {
    /// Requests per second.
    rate: f64,
    /// Where the rate came from, for the report.
    source: String,
    /// The measurement, when one was made.
    calibration: Option<super::Calibration>,
}

impl Sizing {
    /// `rate` when given; else [`OVERLOAD_FACTOR`] times the capacity that
    /// [`calibrate`](super::calibrate) measures for requests of `max_tokens`.
    async fn overload(target: &Target, rate: Option<f64>, max_tokens: u32) -> crate::Result<Self> {
        if let Some(rate) = rate {
            return Ok(Self {
                rate,
                source: "given".to_owned(),
                calibration: None,
            });
        }
        let c = super::calibrate(target, max_tokens, CALIBRATION_BUDGET).await?;
        Ok(Self {
            rate: c.overload_rate(OVERLOAD_FACTOR, 1.0),
            source: format!(
                "{OVERLOAD_FACTOR} × the measured capacity of {:.1} requests/s (at {} concurrent)",
                c.capacity_rps, c.knee_concurrency
            ),
            calibration: Some(c),
        })
    }

    /// Inconclusive when the rate came from a calibration that measured no capacity (every
    /// request of the test's shape failed): the floor rate is then no known overload, and a
    /// server that survives it has shown nothing. `None` otherwise.
    fn unmeasured(&self) -> Option<Verdict> {
        let c = self.calibration.as_ref()?;
        if c.capacity_rps > 0.0 {
            return None;
        }
        Some(Verdict::inconclusive(
            Check::LoadApplied,
            "an overload sized from the measured capacity",
            format!("capacity 0 requests/s: {:.1} requests/s sent", self.rate),
            format!(
                "calibration served no request of the test's shape ({}): the load sent is not known to overload the server, so surviving it proves nothing",
                c.first_failure.as_deref().unwrap_or("no request completed")
            ),
        ))
    }

    /// A phase at least `given` long, and long enough for ten requests alone at the measured
    /// idle latency, so a slow server still sees the load build.
    fn hold(&self, given: Duration) -> Duration {
        match &self.calibration {
            Some(c) => given.max(c.idle_latency * 10),
            None => given,
        }
    }
}

/// The report of a test whose checks do not apply: the server's profile says it queues
/// instead of rejecting for capacity. No load is sent.
fn queues_instead(target: &Target, name: &str, checks: &[Check]) -> Report {
    let mut report = base_report(name, target);
    let why = format!(
        "the {} profile says the server queues work instead of rejecting it for capacity: there is no graceful rejection or pool recovery to test",
        target.profile_ref().name
    );
    report.verdicts(
        checks
            .iter()
            .map(|c| Verdict::not_applicable(*c, why.clone())),
    );
    report
}

/// Some requests were served: with none, the server's survival under load shows nothing (it
/// may have refused everything at the door), so the run is inconclusive rather than a pass.
fn served_under_load(m: &crate::LoadMetrics) -> Verdict {
    if m.successful > 0 {
        checks::served_some(m, 1)
    } else {
        Verdict::inconclusive(
            Check::ServedSome,
            ">= 1 success",
            format!("0 of {}", m.total),
            format!(
                "no request was served (status codes {:?}): surviving load the server never took on proves nothing",
                m.status_codes
            ),
        )
    }
}

/// A rejection, graceful or not: a graceful class, or any rejection status (429, 503, 529).
fn is_rejection(r: &RequestResult) -> bool {
    r.outcome == Outcome::Rejected || r.has_rejection_status()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(capacity_rps: f64) -> Sizing {
        Sizing {
            rate: (capacity_rps * OVERLOAD_FACTOR).max(1.0),
            source: "test".to_owned(),
            calibration: Some(super::super::Calibration {
                max_tokens: 100,
                idle_latency: Duration::from_millis(20),
                decode_tokens_per_s: None,
                knee_concurrency: 1,
                capacity_rps,
                peak_pool_utilization: None,
                complete: false,
                requests: 5,
                first_failure: Some("status 404: model not found".to_owned()),
                elapsed: Duration::from_millis(80),
            }),
        }
    }

    #[test]
    fn an_overload_sized_from_no_measured_capacity_judges_nothing() {
        let v = sized(0.0).unmeasured().expect("a verdict");
        assert_eq!(
            (v.check, v.status),
            (Check::LoadApplied, crate::checks::Status::Inconclusive)
        );
        assert!(v.message.contains("status 404: model not found"), "{v}");
        assert!(sized(12.0).unmeasured().is_none());
        let given = Sizing {
            rate: 400.0,
            source: "given".to_owned(),
            calibration: None,
        };
        assert!(given.unmeasured().is_none());
    }
}
