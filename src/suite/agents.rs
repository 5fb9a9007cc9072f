//! Concurrent agents: rapid requests, multi-turn conversations, isolation, latency, hit rate.

use std::sync::Arc;
use std::time::Duration;

use crate::checks::{self, Check, IsolationEvidence, Verdict};
use crate::target::Profile;
use crate::workload::{TextGen, canaries_in, canary};
use crate::{Agent, Load, Outcome, Report, RequestResult};
use tokio::sync::watch;

use super::*;

/// The seed's rapid agents: `agents` agents × `per_agent` single-turn requests each
/// ("Agent A request i", `max_tokens` 50), all at once; every request must complete.
pub async fn rapid_agents(
    target: &Target,
    name: &str,
    agents: usize,
    per_agent: usize,
) -> crate::Result<Report> {
    let harness = target.harness(|c| c.workers(agents))?;
    let shared = Arc::new(target.clone());
    let by_agent = harness
        .run_agent_workloads(agents, move |mut agent: Agent| {
            let target = Arc::clone(&shared);
            async move {
                for i in 0..per_agent {
                    let text = format!("Agent {} request {i}", agent.id());
                    agent.send(message(&target, &text, 50)).await;
                }
                agent
            }
        })
        .await;
    let results: Vec<RequestResult> = by_agent.values().flatten().cloned().collect();
    let m = analyze(target, &results);
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
        checks::latency_p95(
            &m,
            Duration::from_secs_f64(target.threshold().p95_latency_s),
        ),
    ]);
    report.metrics = Some(m);
    clean_up(target, &mut report, agents_of(&results)).await;
    Ok(report)
}

/// Multi-turn conversations by `agents` agents at once, `turns` turns each, every agent with
/// its own canary in its first turn after a prefix shared by all agents. Gives the run's
/// metrics and the paired isolation evidence.
pub(crate) async fn conversations(
    target: &Target,
    agents: usize,
    turns: u32,
    prefix_words: usize,
) -> crate::Result<(
    Vec<RequestResult>,
    IsolationEvidence,
    Option<crate::ServerMetrics>,
)> {
    let harness = target.harness(|c| c.workers(agents))?;
    let noise_target = target.clone();
    let background = target.harness(|c| c.workers(BACKGROUND_WORKERS))?;
    let shared_prefix = Arc::new(TextGen::new(42).words(prefix_words));
    // The first agent caches the shared prefix before the others send it, so that a server
    // sharing caches across agents would show hits on their first turns.
    let (leader_done, leader_rx) = watch::channel(false);
    let leader_done = Arc::new(leader_done);
    // Other traffic while the agents talk: anonymous single-turn requests, so the checks
    // hold under load and not only on an idle server.
    let noise_requests = (agents as u64 * u64::from(turns)).max(20);
    let noise = background.run(
        Load::closed(BACKGROUND_WORKERS, crate::Stop::requests(noise_requests)),
        move |slot| {
            message(
                &noise_target,
                &TextGen::new(1000 + slot.index).words(30),
                32,
            )
        },
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
            // Asked to repeat its canary, a model shows whose context it answers from.
            let first = format!(
                "{prefix} Your code is {}. Begin every reply with your code. {}",
                canary(agent.id()),
                text.words(12)
            );
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
    let scraper = scrape(&harness, Duration::from_millis(250));
    let (by_agent, _) = tokio::join!(talk, noise);
    let server = match scraper {
        Some(s) => Some(s.stop().await),
        None => None,
    };
    let mut evidence = IsolationEvidence::default();
    let mut results = Vec::new();
    // Only the exact canaries of this run's agents count: a model may make up others.
    let run_canaries: std::collections::HashSet<String> =
        by_agent.keys().map(|id| canary(id)).collect();
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
                let found = canaries_in(text);
                evidence.own_canaries_seen += u64::from(found.contains(&own.as_str()));
                for c in found {
                    if c != own && run_canaries.contains(c) {
                        evidence.foreign_canaries.push((id.clone(), c.to_owned()));
                    }
                }
            }
        }
        results.extend(records.iter().cloned());
    }
    Ok((results, evidence, server))
}

/// Cache isolation under concurrent load, shown by pairs and canaries.
pub async fn isolation(
    target: &Target,
    name: &str,
    agents: usize,
    turns: u32,
) -> crate::Result<Report> {
    let (results, evidence, server) = conversations(target, agents, turns, 300).await?;
    let m = analyze(target, &results);
    let mut report = base_report(name, target);
    with_server(&mut report, &m, server);
    report.config("agents", agents).config("turns", turns);
    report.figure("isolation", &evidence);
    let profile = target.profile_ref();
    let thresholds = target.threshold();
    let verdicts = checks::isolation(&evidence, thresholds.cache_hit_rate)
        .into_iter()
        .map(|v| match v.check {
            Check::IsolationSameAgentHits if !profile.usage.reports_cache() => {
                Verdict::not_applicable(v.check, no_cache_fields(profile))
            }
            Check::IsolationCrossAgentMisses if profile.shared_prefix => Verdict::not_applicable(
                v.check,
                format!(
                    "the {} profile shares an identical prefix across agents, which is safe (no content crosses); isolation is judged by canaries",
                    profile.name
                ),
            ),
            Check::IsolationCrossAgentMisses if !profile.usage.reports_cache() => {
                Verdict::not_applicable(v.check, no_cache_fields(profile))
            }
            _ => v,
        });
    report.verdicts(verdicts);
    report.verdicts([checks::error_rate(&m, thresholds.exhaustion_error_rate)]);
    report.metrics = Some(m);
    clean_up(target, &mut report, agents_of(&results)).await;
    Ok(report)
}

/// Latency of multi-turn agents under load: p95 of successes under `max` (seed: 2 s).
pub async fn latency_under_load(
    target: &Target,
    name: &str,
    agents: usize,
    turns: u32,
) -> crate::Result<Report> {
    let (results, _, server) = conversations(target, agents, turns, 100).await?;
    let m = analyze(target, &results);
    let mut report = base_report(name, target);
    with_server(&mut report, &m, server);
    report.config("agents", agents).config("turns", turns);
    report.verdicts([
        checks::latency_p95(
            &m,
            Duration::from_secs_f64(target.threshold().p95_latency_s),
        ),
        checks::error_rate(&m, target.threshold().exhaustion_error_rate),
    ]);
    report.metrics = Some(m);
    clean_up(target, &mut report, agents_of(&results)).await;
    Ok(report)
}

/// Cache hit rate of multi-turn conversations (turns ≥ 2) above `min` (seed: 80%).
pub async fn hit_rate(
    target: &Target,
    name: &str,
    agents: usize,
    turns: u32,
    min: f64,
) -> crate::Result<Report> {
    let profile = target.profile_ref();
    if !profile.usage.reports_cache() {
        // Nothing to judge without cache figures in replies: no load is sent.
        let mut report = base_report(name, target);
        report.verdicts([Verdict::not_applicable(
            Check::CacheHitRate,
            no_cache_fields(profile),
        )]);
        return Ok(report);
    }
    let (results, _, server) = conversations(target, agents, turns, 100).await?;
    let m = analyze(target, &results);
    let mut report = base_report(name, target);
    with_server(&mut report, &m, server);
    report.config("agents", agents).config("turns", turns);
    report.verdicts([
        checks::cache_hit_rate(&m, min),
        checks::error_rate(&m, target.threshold().exhaustion_error_rate),
    ]);
    report.metrics = Some(m);
    clean_up(target, &mut report, agents_of(&results)).await;
    Ok(report)
}

/// Records the server's `/metrics` in `report`, with its prefix-cache hit rate beside the
/// client's token hit rate (the server counts tokens it found cached; the client reads
/// `cache_read_input_tokens`), and the queue check when the server exposes its queue.
fn with_server(report: &mut Report, m: &crate::LoadMetrics, server: Option<crate::ServerMetrics>) {
    let Some(server) = server else {
        return;
    };
    report
        .figure(
            "server_prefix_cache_hit_rate",
            server.summary.prefix_cache_hit_rate,
        )
        .figure("client_token_hit_rate", m.cache.token_hit_rate);
    if let Some(verdict) = checks::queue_drained(&server) {
        report.verdicts([verdict]);
    }
    report.server_metrics(server);
}

/// Why a cache check does not apply: the server reports no cache figures in `usage`.
pub(super) fn no_cache_fields(profile: &Profile) -> String {
    format!(
        "the {} profile says replies carry no cache fields, so cache hits cannot be seen",
        profile.name
    )
}
