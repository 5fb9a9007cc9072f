//! Runs over time: sustained load and realistic conversations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checks::{self};
use crate::workload::TextGen;
use crate::{Agent, Report};

use super::*;

/// What makes two sustained runs the same run: the verdicts of one run can be judged by
/// several tests when their settings match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SustainedSettings {
    /// How long the load runs.
    pub duration: Duration,
    /// Requests per second, in total.
    pub rate: f64,
    /// Agents in multi-turn conversations.
    pub agents: usize,
}

/// One sustained run: its report (settings, figures, series, the accounting verdict) and the
/// figures the sustained verdicts judge (error rate, memory trend, degradation).
#[derive(Debug, Clone)]
pub struct SustainedRun {
    /// The run's report, without the verdicts of the tests that judge it.
    pub report: Report,
    /// The run's figures.
    pub metrics: crate::SustainedLoadMetrics,
}

/// One sustained run: `settings.agents` session agents in multi-turn conversations (of random
/// length), paced at `settings.rate` requests/s in total, for `settings.duration`, with the
/// server's memory sampled when its pid is known. `progress`, if given, is called every
/// second (e.g. [`ProgressPrinter`](crate::report::progress::ProgressPrinter)).
pub async fn sustained(
    target: &Target,
    name: &str,
    settings: SustainedSettings,
    progress: Option<crate::ProgressFn>,
) -> crate::Result<SustainedRun> {
    let SustainedSettings {
        duration,
        rate,
        agents,
    } = settings;
    let harness = target.harness(|c| c.workers(agents).rate_limit(Some(rate)))?;
    let mut options = crate::Sustained::new(duration)
        .memory_pid(target.server_pid())
        .memory_reading(match &target.profile_ref().memory {
            Some(crate::target::Reading::Pid) | None => None,
            Some(reading) => Some(reading.clone()),
        });
    if let Some(progress) = progress {
        options = options.progress(Duration::from_secs(1), move |p| progress(p));
    }
    // Warm-up covers the workload's own ramp: conversations reach their steady-state length
    // (at most 16 turns at about one turn per agent per second) within 20 s.
    options.warmup = options.window.max(SUSTAINED_WARMUP).min(duration / 2);
    let scraper = scrape(&harness, options.memory_interval.max(SCRAPE_FLOOR));
    // The session agents of the run, to delete after it (the run keeps no records).
    let used = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let seen = Arc::clone(&used);
    let sustained = harness
        .run_sustained(options.clone(), move |mut agent: Agent, slot| {
            if agent.turns() == 0 {
                seen.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(agent.id().to_owned());
            }
            async move {
                // Conversations end at random (one in eight turns, at most 16), so the agents are
                // out of phase and the workload is the same early and late in the run.
                let mut text = TextGen::new(slot.index);
                if agent.turns() >= 16 || (agent.turns() > 0 && text.pick(0..=7) == 0) {
                    agent.reset_conversation();
                }
                agent.max_tokens = 50;
                agent.send_turn(text.words_in(20..=60)).await;
                agent
            }
        })
        .await?;
    let mut report = base_report(name, target);
    report
        .config("duration_s", duration.as_secs_f64())
        .config("rate_per_s", rate)
        .config("agents", agents)
        .config("window_s", options.window.as_secs_f64())
        .config("warmup_s", options.warmup.as_secs_f64());
    report.series = Some(crate::report::Series::of(&sustained));
    // Open-loop pacing: one request at t = 0, then one every 1/rate.
    let offered = (duration.as_secs_f64() * rate).ceil() as u64;
    let c = &sustained.load.counts;
    let answered = sustained.load.total.saturating_sub(c.timeout + c.connect);
    report.verdicts([
        checks::accounted(sustained.sent, sustained.load.total),
        checks::load_applied(answered, offered, MIN_LOAD_APPLIED),
    ]);
    record_server(&mut report, scraper).await;
    report.metrics = Some(sustained.load.clone());
    let used = std::mem::take(
        &mut *used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    clean_up(target, &mut report, used).await;
    report.generator = Some(sustained.generator.clone());
    Ok(SustainedRun {
        report,
        metrics: sustained,
    })
}

/// The seed's five agent profiles at once for `span`: every agent completes its workload, no
/// request hangs, per-profile latency and cache figures, long-context follow-ups hit.
pub async fn realistic(target: &Target, name: &str, span: Duration) -> crate::Result<Report> {
    let profiles = crate::workload::Profile::seed_profiles(span);
    let n = profiles.len();
    let harness = target.harness(|c| c.workers(n))?;
    let shared = Arc::new(profiles.clone());
    let sampler = target.server_pid().and_then(|pid| {
        crate::MemorySampler::start(pid, (span / 100).max(Duration::from_millis(100))).ok()
    });
    let scraper = scrape(&harness, (span / 100).max(SCRAPE_FLOOR));
    let started = Instant::now();
    let by_agent = harness
        .run_agent_workloads(n, move |mut agent: Agent| {
            let profiles = Arc::clone(&shared);
            async move {
                let p = profiles[agent.index()].clone();
                let mut text = TextGen::new(agent.index() as u64 * 7919 + 1);
                let end = Instant::now() + span;
                agent.max_tokens = p.max_tokens;
                while Instant::now() < end {
                    for _ in 0..text.pick(p.burst_turns.clone()) {
                        if agent.turns() >= p.conversation_turns {
                            agent.reset_conversation();
                        }
                        let words = if agent.turns() == 0 {
                            text.words_in(p.prompt_words.clone())
                        } else {
                            text.words_in(p.followup_words.clone())
                        };
                        agent.send_turn(words).await;
                        agent.think(until(end, text.think(p.turn_gap))).await;
                    }
                    agent.think(until(end, text.think(p.idle_gap))).await;
                }
                agent
            }
        })
        .await;
    let mut report = base_report(name, target);
    report.config("span_s", span.as_secs_f64());
    let mut all = Vec::new();
    let mut per_profile = serde_json::Map::new();
    let mut verdicts = Vec::new();
    for (id, records) in &by_agent {
        let m = analyze(target, records);
        // Agent ids end in the agent's index, which picked its profile.
        let index: usize = id
            .rsplit('-')
            .next()
            .and_then(|i| i.parse().ok())
            .expect("agent ids end in their index");
        let profile = profiles[index].name;
        per_profile.insert(
            profile.to_owned(),
            serde_json::json!({
                "agent": id,
                "requests": m.total,
                "successful": m.successful,
                "p50_ms": m.success_latency.p50.as_secs_f64() * 1000.0,
                "p95_ms": m.success_latency.p95.as_secs_f64() * 1000.0,
                "ttft_p50_ms": m.serving.ttft.map(|t| t.p50.as_secs_f64() * 1000.0),
                "tpot_p50_ms": m.serving.tpot.map(|t| t.p50.as_secs_f64() * 1000.0),
                "request_hit_rate": m.cache.request_hit_rate,
                "token_hit_rate": m.cache.token_hit_rate,
                "prompt_tokens": m.cache.prompt_tokens,
            }),
        );
        verdicts.push(checks::completed(&m, m.total.max(1)).about(profile));
        if profile == "long_context_occasional" {
            let server = target.profile_ref();
            verdicts.push(if server.usage.reports_cache() {
                checks::cache_hit_rate(&m, target.threshold().cache_hit_rate).about(profile)
            } else {
                crate::checks::Verdict::not_applicable(
                    crate::checks::Check::CacheHitRate,
                    super::agents::no_cache_fields(server),
                )
                .about(profile)
            });
        }
        all.extend(records.iter().cloned());
    }
    let m = analyze(target, &all);
    let window = (span / 10).max(Duration::from_secs(1));
    let mut windows = crate::metrics::WindowedSeries::new(started, window);
    for r in &all {
        windows.record(r);
    }
    let memory_samples = match sampler {
        Some(s) => s.stop().await,
        None => Vec::new(),
    };
    report.series = Some(crate::report::Series {
        windows: windows.windows(),
        memory: crate::metrics::MemoryTrend::from_samples(&memory_samples, window),
        memory_samples,
        degradation: windows.degradation(2),
        harness_memory: None,
    });
    report.figure("profiles", per_profile);
    verdicts.push(checks::all_answered(&m));
    report.verdicts(verdicts);
    record_server(&mut report, scraper).await;
    report.metrics = Some(m);
    clean_up(target, &mut report, agents_of(&all)).await;
    Ok(report)
}

/// Shortest interval between `/metrics` reads of a timed run.
const SCRAPE_FLOOR: Duration = Duration::from_millis(250);

/// `pause`, cut short at `end`.
fn until(end: Instant, pause: Duration) -> Duration {
    pause.min(end.saturating_duration_since(Instant::now()))
}
