//! The scenarios behind the stress suites, shared with the fault-detection tests: each runs
//! load against a [`Target`] and returns a [`Report`] whose verdicts say what held.

use std::sync::Arc;
use std::time::{Duration, Instant};

use semantic_stress::anthropic::{Message, MessagesRequest};
use semantic_stress::checks::{self, IsolationEvidence, Verdict};
use semantic_stress::workload::{TextGen, canaries_in, canary};
use semantic_stress::{
    Agent, Load, MetricsCollector, Outcome, Probe, Report, Request, RequestResult, Stage,
    pool_utilization,
};
use tokio::sync::watch;

use super::Target;

/// Model name in generated requests.
const MODEL: &str = "test-model";
/// New agents in a row that must be served at baseline latency for the pool to count as
/// recovered.
const RECOVERY_STREAK: u32 = 5;
/// Warm-up of sustained runs (at most half the run): memory and latency before it are not
/// judged.
const SUSTAINED_WARMUP: Duration = Duration::from_secs(20);
/// Cap on requests in flight in the exhausting phase.
const HIGH_IN_FLIGHT: usize = 256;
/// Workers of the background traffic that runs beside multi-turn conversations.
const BACKGROUND_WORKERS: usize = 8;

fn message(text: &str, max_tokens: u32) -> Request {
    Request::messages(&MessagesRequest::new(
        MODEL,
        vec![Message::user(text)],
        max_tokens,
    ))
}

fn base_report(name: &str, target: &Target) -> Report {
    let mut r = Report::new(name, target.base_url());
    r.config("reference_server", target.is_reference());
    r
}

/// `n` identical requests at once (seed: 150, `max_tokens` 100): every one answered, no 5xx,
/// every non-2xx a graceful rejection.
pub async fn concurrent_burst(target: &Target, name: &str, n: usize) -> Report {
    let harness = target.harness(|c| c.workers(n));
    let body = message("Explain how a block pool serves many agents at once.", 100);
    let load = Load::closed(n, semantic_stress::Stop::requests(n as u64));
    let run = harness
        .run(load, move |_| body.clone())
        .await
        .expect("valid load");
    let m = MetricsCollector::analyze(&run.results);
    let mut report = base_report(name, target);
    report.config("requests", n).config("max_tokens", 100);
    report.verdicts([
        checks::accounted(run.sent, run.results.len() as u64),
        checks::all_answered(&m),
        checks::no_server_errors(&m),
        checks::only_graceful_failures(&m),
    ]);
    report.metrics = Some(m);
    report.generator = Some(run.generator);
    report
}

/// Load until the pool passes 95%: a low phase (`low` closed-loop workers) that must see no
/// rejection, then paced arrivals at `high_rate` per second (far above what the pool can
/// serve) for `high_hold` that must see graceful rejections — each with `Retry-After` and the
/// envelope, answered at once — and an error rate under 5% with rejections not counted.
///
/// The exhausting phase is paced rather than a closed loop so that clients answered at once
/// do not turn into a retry storm that saturates the generator's own cores: rejection latency
/// then measures the server, not the client.
pub async fn graceful_rejection(
    target: &Target,
    name: &str,
    low: Stage,
    high_rate: f64,
    high_hold: Duration,
    max_tokens: u32,
) -> Report {
    let harness = target.harness(|c| c.workers(HIGH_IN_FLIGHT));
    let health = Probe::start(
        harness.client().clone(),
        Request::get("/health").keep_text(),
        Duration::from_millis(20),
        100_000,
    );
    let body = message("Write a long story about caches and agents.", max_tokens);
    let low_body = body.clone();
    let low_run = harness
        .run(
            Load::closed(low.concurrency, semantic_stress::Stop::after(low.hold)),
            move |_| low_body.clone(),
        )
        .await
        .expect("valid load");
    let low_end = Instant::now();
    let high_run = harness
        .run(
            Load::open(
                HIGH_IN_FLIGHT,
                semantic_stress::Arrivals::Poisson {
                    per_second: high_rate,
                    seed: harness.config().seed,
                },
                semantic_stress::Stop::after(high_hold),
            ),
            move |_| body.clone(),
        )
        .await
        .expect("valid load");
    let probes = health.stop().await;
    let mut run = low_run;
    run.sent += high_run.sent;
    run.results.extend(high_run.results);
    run.generator = high_run.generator;
    let m = MetricsCollector::analyze(&run.results);
    let util: Vec<(Instant, f64)> = probes
        .iter()
        .filter_map(|p| pool_utilization(p).map(|u| (p.started_at, u)))
        .collect();
    let low_rejections = run
        .results
        .iter()
        .filter(|r| r.started_at < low_end && r.status == 429)
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
        .filter(|r| r.status == 429)
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
        .figure("peak_pool_utilization", peak)
        .figure("low_phase_peak_utilization", low_peak)
        .figure("utilization_at_first_rejection", onset)
        .figure("health_probes", probes.len());
    report.verdicts([
        checks::accounted(run.sent, run.results.len() as u64),
        checks::pool_reached(peak, 0.9),
        checks::no_early_rejections(low_rejections, low_peak),
        checks::rejections_seen(&m, 1),
        checks::rejections_well_formed(&run.results),
        checks::rejections_fast(&run.results, Duration::from_millis(50)),
        checks::error_rate(&m, 0.05),
    ]);
    report.metrics = Some(m);
    report.generator = Some(run.generator);
    report
}

/// Rate-paced load past capacity for `duration` while `/health/live` is probed: no 5xx,
/// health answers quickly during and after, and the server process stays alive.
pub async fn no_crash(target: &mut Target, name: &str, rate: f64, duration: Duration) -> Report {
    let workers = 256;
    let harness = target.harness(|c| c.workers(workers));
    let live = Probe::start(
        harness.client().clone(),
        Request::get("/health/live"),
        Duration::from_millis(50),
        100_000,
    );
    let body = message("Keep answering while the pool is under pressure.", 100);
    let load = Load::open(
        workers,
        semantic_stress::Arrivals::Poisson {
            per_second: rate,
            seed: harness.config().seed,
        },
        semantic_stress::Stop::after(duration),
    );
    let run = harness
        .run(load, move |_| body.clone())
        .await
        .expect("valid load");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let probes = live.stop().await;
    let alive = target.is_alive();
    let m = MetricsCollector::analyze(&run.results);
    let mut report = base_report(name, target);
    report
        .config("rate_per_s", rate)
        .config("duration_s", duration.as_secs_f64());
    report.verdicts([
        checks::accounted(run.sent, run.results.len() as u64),
        checks::no_server_errors(&m),
        checks::health_responsive(&probes, Duration::from_millis(500)),
        Verdict::new(
            "server_alive",
            alive,
            "running",
            if alive { "running" } else { "exited" },
            "the server process after the load",
        ),
    ]);
    report.metrics = Some(m);
    report.generator = Some(run.generator);
    report
}

/// Saturate the pool with many agents, stop, and measure how long until a new agent's normal
/// request succeeds again at baseline latency (seed: < 30 s). Probes every 100 ms for at
/// most `window`.
pub async fn recovery(target: &Target, name: &str, window: Duration, max: Duration) -> Report {
    let harness = target.harness(|c| c.workers(200));
    // Every request is a new agent, as after a real burst of users: a server that never frees
    // their blocks (or never evicts idle caches) cannot admit anyone new.
    let tag = format!("{:x}", std::process::id());
    let normal =
        |who: &str| message("Is the pool back to normal?", 20).session(format!("{who}-{tag}"));
    let mut baseline = Vec::new();
    for i in 0..5 {
        baseline.push(
            harness
                .client()
                .send(&normal(&format!("baseline-{i}")), Instant::now())
                .await,
        );
    }
    let base = MetricsCollector::analyze(&baseline);
    let heavy = message("Write a very long story about caches and agents.", 400);
    let load = Load::closed(200, semantic_stress::Stop::after(Duration::from_secs(2)));
    let sat_tag = tag.clone();
    let saturation = harness
        .run(load, move |slot| {
            heavy
                .clone()
                .session(format!("sat-{sat_tag}-{}", slot.index))
        })
        .await
        .expect("valid load");
    let sat = MetricsCollector::analyze(&saturation.results);
    let stopped = Instant::now();
    let limit =
        (base.success_latency.p50 * 3).max(base.success_latency.p50 + Duration::from_millis(100));
    // Recovered when RECOVERY_STREAK new agents in a row are served at baseline latency: one
    // lucky request that fits in the last free blocks proves nothing.
    let mut recovered = None;
    let mut probes = 0u64;
    let mut streak = 0;
    while stopped.elapsed() < window {
        probes += 1;
        let r = harness
            .client()
            .send(&normal(&format!("probe-{probes}")), Instant::now())
            .await;
        if r.outcome == Outcome::Success && r.latency() <= limit {
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
    report
}

/// The seed's rapid agents: `agents` agents × `per_agent` single-turn requests each
/// ("Agent A request i", `max_tokens` 50), all at once; every request must complete.
pub async fn rapid_agents(target: &Target, name: &str, agents: usize, per_agent: usize) -> Report {
    let harness = target.harness(|c| c.workers(agents));
    let by_agent = harness
        .run_agent_workloads(agents, move |mut agent: Agent| async move {
            for i in 0..per_agent {
                let text = format!("Agent {} request {i}", agent.id());
                agent.send(message(&text, 50)).await;
            }
            agent
        })
        .await;
    let results: Vec<RequestResult> = by_agent.values().flatten().cloned().collect();
    let m = MetricsCollector::analyze(&results);
    let expected = (agents * per_agent) as u64;
    let mut report = base_report(name, target);
    report
        .config("agents", agents)
        .config("requests_per_agent", per_agent);
    report.figure(
        "per_agent_completed",
        by_agent
            .iter()
            .map(|(id, rs)| {
                (
                    id.clone(),
                    rs.iter().filter(|r| r.outcome == Outcome::Success).count(),
                )
            })
            .collect::<std::collections::BTreeMap<_, _>>(),
    );
    report.verdicts([
        checks::completed(&m, expected),
        checks::latency_p95(&m, Duration::from_secs(2)),
    ]);
    report.metrics = Some(m);
    report
}

/// Multi-turn conversations by `agents` agents at once, `turns` turns each, every agent with
/// its own canary in its first turn after a prefix shared by all agents. Gives the run's
/// metrics and the paired isolation evidence.
pub async fn conversations(
    target: &Target,
    agents: usize,
    turns: u32,
    prefix_words: usize,
) -> (Vec<RequestResult>, IsolationEvidence) {
    let harness = target.harness(|c| c.workers(agents));
    let background = target.harness(|c| c.workers(BACKGROUND_WORKERS));
    let shared_prefix = Arc::new(TextGen::new(42).words(prefix_words));
    // The first agent caches the shared prefix before the others send it, so that a server
    // sharing caches across agents would show hits on their first turns.
    let (leader_done, leader_rx) = watch::channel(false);
    let leader_done = Arc::new(leader_done);
    // Other traffic while the agents talk: anonymous single-turn requests, so the checks
    // hold under load and not only on an idle server.
    let noise_requests = (agents as u64 * u64::from(turns)).max(20);
    let noise = background.run(
        Load::closed(
            BACKGROUND_WORKERS,
            semantic_stress::Stop::requests(noise_requests),
        ),
        |slot| message(&TextGen::new(1000 + slot.index).words(30), 32),
    );
    let talk = harness.run_agent_workloads(agents, move |mut agent: Agent| {
        let prefix = Arc::clone(&shared_prefix);
        let done = Arc::clone(&leader_done);
        let mut rx = leader_rx.clone();
        async move {
            if agent.index() > 0 {
                let _ = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|d| *d)).await;
            }
            let mut text = TextGen::new(agent.index() as u64 + 1);
            let first = format!("{prefix} {} {}", canary(agent.id()), text.words(12));
            agent.max_tokens = 40;
            agent.send_turn(first).await;
            if agent.index() == 0 {
                let _ = done.send(true);
            }
            for _ in 1..turns {
                let follow = text.words_in(8..=24);
                agent.send_turn(follow).await;
            }
            agent
        }
    });
    let (by_agent, _) = tokio::join!(talk, noise);
    let mut evidence = IsolationEvidence::default();
    let mut results = Vec::new();
    for (id, records) in &by_agent {
        let own = canary(id);
        for r in records {
            let hit = r.cache_hit();
            match r.turn {
                Some(1) if !id.ends_with("-0") => {
                    evidence.cross_agent_pairs += 1;
                    evidence.cross_agent_hits += u64::from(hit);
                }
                Some(t) if t >= 2 => {
                    evidence.same_agent_pairs += 1;
                    evidence.same_agent_hits += u64::from(hit);
                }
                _ => {}
            }
            if let Some(text) = &r.text {
                evidence.replies_checked += 1;
                for c in canaries_in(text) {
                    if c != own {
                        evidence.foreign_canaries.push((id.clone(), c.to_owned()));
                    }
                }
            }
        }
        results.extend(records.iter().cloned());
    }
    (results, evidence)
}

/// Cache isolation under concurrent load, shown by pairs and canaries.
pub async fn isolation(target: &Target, name: &str, agents: usize, turns: u32) -> Report {
    let (results, evidence) = conversations(target, agents, turns, 300).await;
    let m = MetricsCollector::analyze(&results);
    let mut report = base_report(name, target);
    report.config("agents", agents).config("turns", turns);
    report.figure("isolation", &evidence);
    report.verdicts(checks::isolation(&evidence, 0.8));
    report.verdicts([checks::error_rate(&m, 0.05)]);
    report.metrics = Some(m);
    report
}

/// Latency of multi-turn agents under load: p95 of successes under `max` (seed: 2 s).
pub async fn latency_under_load(target: &Target, name: &str, agents: usize, turns: u32) -> Report {
    let (results, _) = conversations(target, agents, turns, 100).await;
    let m = MetricsCollector::analyze(&results);
    let mut report = base_report(name, target);
    report.config("agents", agents).config("turns", turns);
    report.verdicts([
        checks::latency_p95(&m, Duration::from_secs(2)),
        checks::error_rate(&m, 0.05),
    ]);
    report.metrics = Some(m);
    report
}

/// Cache hit rate of multi-turn conversations (turns ≥ 2) above `min` (seed: 80%).
pub async fn hit_rate(target: &Target, name: &str, agents: usize, turns: u32, min: f64) -> Report {
    let (results, _) = conversations(target, agents, turns, 100).await;
    let m = MetricsCollector::analyze(&results);
    let mut report = base_report(name, target);
    report.config("agents", agents).config("turns", turns);
    report.verdicts([
        checks::cache_hit_rate(&m, min),
        checks::error_rate(&m, 0.05),
    ]);
    report.metrics = Some(m);
    report
}

/// One sustained run: `agents` session agents in multi-turn conversations (of random length), paced at `rate` requests/s in total, for `duration`, with the server's memory
/// sampled when its pid is known. Progress goes to stderr.
pub async fn sustained(
    target: &Target,
    name: &str,
    duration: Duration,
    rate: f64,
    agents: usize,
) -> (Report, semantic_stress::SustainedLoadMetrics) {
    let harness = target.harness(|c| c.workers(agents).rate_limit(Some(rate)));
    let every = Duration::from_secs(1);
    let mut options = semantic_stress::Sustained::new(duration)
        .memory_pid(target.pid())
        .memory_from_metrics(!target.is_reference())
        .progress(
            every,
            semantic_stress::report::progress::ProgressPrinter::stderr(name).into_callback(),
        );
    // Warm-up covers the workload's own ramp: conversations reach their steady-state length
    // (at most 16 turns at about one turn per agent per second) within 20 s.
    options.warmup = options.window.max(SUSTAINED_WARMUP).min(duration / 2);
    let sustained = harness
        .run_sustained(options.clone(), |mut agent: Agent, slot| async move {
            // Conversations end at random (one in eight turns, at most 16), so the agents are
            // out of phase and the workload is the same early and late in the run.
            let mut text = TextGen::new(slot.index);
            if agent.turns() >= 16 || (agent.turns() > 0 && text.pick(0..=7) == 0) {
                agent.reset_conversation();
            }
            agent.max_tokens = 50;
            agent.send_turn(text.words_in(20..=60)).await;
            agent
        })
        .await
        .expect("valid sustained run");
    let mut report = base_report(name, target);
    report
        .config("duration_s", duration.as_secs_f64())
        .config("rate_per_s", rate)
        .config("agents", agents)
        .config("window_s", options.window.as_secs_f64())
        .config("warmup_s", options.warmup.as_secs_f64());
    report.series = Some(semantic_stress::report::Series::of(&sustained));
    report.verdicts([checks::accounted(sustained.sent, sustained.load.total)]);
    report.metrics = Some(sustained.load.clone());
    report.generator = Some(sustained.generator.clone());
    (report, sustained)
}

/// The seed's five agent profiles at once for `span`: every agent completes its workload, no
/// request hangs, per-profile latency and cache figures, long-context follow-ups hit.
pub async fn realistic(target: &Target, name: &str, span: Duration) -> Report {
    let profiles = semantic_stress::workload::Profile::seed_profiles(span);
    let n = profiles.len();
    let harness = target.harness(|c| c.workers(n));
    let shared = Arc::new(profiles.clone());
    let sampler = target.pid().and_then(|pid| {
        semantic_stress::MemorySampler::start(pid, (span / 100).max(Duration::from_millis(100)))
            .ok()
    });
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
                        agent.think(text.think(p.turn_gap)).await;
                    }
                    agent.think(text.think(p.idle_gap)).await;
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
    for (i, (id, records)) in by_agent.iter().enumerate() {
        let m = MetricsCollector::analyze(records);
        let profile = profiles[i].name;
        per_profile.insert(
            profile.to_owned(),
            serde_json::json!({
                "agent": id,
                "requests": m.total,
                "successful": m.successful,
                "p50_ms": m.success_latency.p50.as_secs_f64() * 1000.0,
                "p95_ms": m.success_latency.p95.as_secs_f64() * 1000.0,
                "ttft_p50_ms": m.ttft.p50.as_secs_f64() * 1000.0,
                "request_hit_rate": m.cache.request_hit_rate,
                "token_hit_rate": m.cache.token_hit_rate,
                "prompt_tokens": m.cache.prompt_tokens,
            }),
        );
        let mut v = checks::completed(&m, m.total.max(1));
        v.check = format!("completed_{profile}");
        verdicts.push(v);
        if profile == "long_context_occasional" {
            let mut v = checks::cache_hit_rate(&m, 0.8);
            v.check = "long_context_followups_hit".to_owned();
            verdicts.push(v);
        }
        all.extend(records.iter().cloned());
    }
    let m = MetricsCollector::analyze(&all);
    let window = (span / 10).max(Duration::from_secs(1));
    let mut windows = semantic_stress::metrics::WindowedSeries::new(started, window);
    for r in &all {
        windows.record(r);
    }
    let memory_samples = match sampler {
        Some(s) => s.stop().await,
        None => Vec::new(),
    };
    report.series = Some(semantic_stress::report::Series {
        windows: windows.windows(),
        memory: semantic_stress::metrics::MemoryTrend::from_samples(&memory_samples, window),
        memory_samples,
        degradation: windows.degradation(2),
    });
    report.figure("profiles", per_profile);
    verdicts.push(checks::all_answered(&m));
    report.verdicts(verdicts);
    report.metrics = Some(m);
    report
}

/// `n` streamed requests, `concurrency` at a time: every stream must end in `message_stop`
/// with tokens (a truncated stream is a protocol failure, never a success).
pub async fn streams(target: &Target, name: &str, n: usize, concurrency: usize) -> Report {
    let harness = target.harness(|c| c.workers(concurrency));
    let mut body = MessagesRequest::new(
        MODEL,
        vec![Message::user("Stream a short answer about caches.")],
        64,
    );
    body.stream = true;
    let request = Request::messages(&body);
    let load = Load::closed(concurrency, semantic_stress::Stop::requests(n as u64));
    let run = harness
        .run(load, move |_| request.clone())
        .await
        .expect("valid load");
    let m = MetricsCollector::analyze(&run.results);
    let mut report = base_report(name, target);
    report.config("requests", n).config("stream", true);
    report.verdicts([
        checks::accounted(run.sent, run.results.len() as u64),
        checks::all_answered(&m),
        checks::completed(&m, n as u64),
    ]);
    report.metrics = Some(m);
    report.generator = Some(run.generator);
    report
}
