//! The suite's verdicts on each personality of the reference server: every fast seed scenario
//! runs against a server started with `--personality NAME`, reached the way a user reaches an
//! external server (`SEMANTIC_BASE_URL` and `SEMANTIC_MODEL`: a plain target, no process id,
//! not marked as the reference), and its verdicts must match the expected table below, which
//! `docs/personalities.md` reproduces with the sources of each modelled behaviour.
//!
//! The target is declared as a user declares it: with the server family's own built-in profile
//! (`SEMANTIC_PROFILE=NAME`), or, with `SEMANTIC_PERSONALITIES_UNDECLARED=1`, with none (the
//! contract's profile, as `Target::new(StressConfig::new(url))` gives). The table has a column
//! for each.
//!
//! A row lists the checks that do not pass (failed, inconclusive or not applicable) and why;
//! every other check must pass. The table records what the suite says today, including
//! verdicts that are wrong about the server (marked as such).
//!
//! One test per personality and scenario, `<personality>__<scenario>`, so that
//! `cargo test --features stress --test personalities agent_memory` runs one personality.
//! Run: `cargo test --features stress --test personalities -- --nocapture`. Reports:
//! `target/stress-reports/personality_*`.

mod common;

use std::time::Duration;

use common::{ReferenceProcess, reports_dir};
use semantic_stress::checks::{Check, Status};
use semantic_stress::suite::{self, Target};
use semantic_stress::target::Profile;
use semantic_stress::{Report, Stage, StressConfig};
use serial_test::file_serial;

/// The model the reference server serves (vLLM checks it, as a user sets `SEMANTIC_MODEL`).
const MODEL: &str = "semantic-reference-tiny";
/// pool_exhaustion.rs: requests sent at once.
const BURST: usize = 150;
/// pool_exhaustion.rs: workers of the low-load phase.
const LOW_WORKERS: usize = 4;
/// pool_exhaustion.rs: paced overload, requests per second.
const OVERLOAD_RATE: f64 = 400.0;
/// pool_exhaustion.rs: the pool recovers within 30 s.
const RECOVERY_MAX: Duration = Duration::from_secs(30);
/// concurrent_agents.rs: agents, rapid requests per agent, turns, hit rate.
const AGENTS: usize = 10;
const REQUESTS_PER_AGENT: usize = 50;
const TURNS: u32 = 12;
const MIN_HIT_RATE: f64 = 0.8;
/// realistic_conversations.rs runs 30 s; shortened here.
const REALISTIC_SPAN: Duration = Duration::from_secs(6);

/// The seed scenarios that run here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Burst,
    GracefulRejection,
    NoCrash,
    Recovery,
    RapidAgents,
    Isolation,
    Latency,
    HitRate,
    Realistic,
}

/// One row of the expected verdict table: the verdicts that do not pass, by check.
struct Expected {
    personality: &'static str,
    scenario: Scenario,
    /// With the server family's own profile.
    declared: &'static [(Check, Status)],
    /// With no profile declared (the contract's).
    undeclared: &'static [(Check, Status)],
    /// Why (and whether the verdict is right about the server).
    why: &'static str,
}

/// Whether the targets are left undeclared (`SEMANTIC_PERSONALITIES_UNDECLARED=1`).
fn undeclared() -> bool {
    std::env::var("SEMANTIC_PERSONALITIES_UNDECLARED").is_ok_and(|v| v == "1")
}

use Check::*;
use Scenario::*;

const FAIL: Status = Status::Fail;
const INCONCLUSIVE: Status = Status::Inconclusive;
const NA: Status = Status::NotApplicable;

/// Every check of the graceful-rejection scenario on the pool, inconclusive: the server never
/// rejected and gave no pool figures.
const NEVER_EXHAUSTED: &[(Check, Status)] = &[
    (NoEarlyRejections, INCONCLUSIVE),
    (PoolReached, INCONCLUSIVE),
    (RejectionsFast, INCONCLUSIVE),
    (RejectionsSeen, INCONCLUSIVE),
    (RejectionsWellFormed, INCONCLUSIVE),
];
/// The rejection checks, not applicable: the profile says the server queues instead.
const QUEUES: &[(Check, Status)] = &[
    (RejectionsFast, NA),
    (RejectionsSeen, NA),
    (RejectionsWellFormed, NA),
];

/// The expected verdicts: for each personality and scenario, the checks that do not pass with
/// the server's own profile declared and with none. "Wrong verdict" marks a verdict that fails
/// the server for something that is not a fault of the server.
const TABLE: &[Expected] = &[
    // ---- semantic: the intended contract passes everything.
    row(
        "semantic",
        Burst,
        &[],
        &[],
        "the burst fits the pool: all 150 served",
    ),
    row(
        "semantic",
        GracefulRejection,
        &[],
        &[],
        "429 overloaded_error + Retry-After at once, past 95%",
    ),
    row(
        "semantic",
        NoCrash,
        &[],
        &[],
        "no 5xx; /health/live answers during the load",
    ),
    row(
        "semantic",
        Recovery,
        &[],
        &[],
        "in-flight blocks released, idle caches evicted",
    ),
    row("semantic", RapidAgents, &[], &[], ""),
    row(
        "semantic",
        Isolation,
        &[],
        &[],
        "prefix reuse strictly per agent",
    ),
    row("semantic", Latency, &[], &[], ""),
    row("semantic", HitRate, &[], &[], ""),
    row("semantic", Realistic, &[], &[], ""),
    // ---- agent-memory (the original server).
    row(
        "agent-memory",
        Burst,
        &[],
        &[],
        "queues without bound; 150 identical prompts are one agent",
    ),
    row(
        "agent-memory",
        GracefulRejection,
        &[
            (ErrorRate, FAIL),
            (RejectionsSeen, FAIL),
            (RejectionsWellFormed, FAIL),
        ],
        &[
            (ErrorRate, FAIL),
            (NoEarlyRejections, INCONCLUSIVE),
            (PoolReached, INCONCLUSIVE),
            (RejectionsSeen, FAIL),
            (RejectionsWellFormed, FAIL),
        ],
        "right: 400 requests/s trip the global 1000/min limiter, whose 429 has Retry-After but not \
         the envelope; identical prompts are one agent, so the pool never runs out here \
         (undeclared: /health has no pool figures)",
    ),
    row(
        "agent-memory",
        NoCrash,
        &[],
        &[],
        "the limiter's 429s are not 5xx; /health/live is exempt from it",
    ),
    row(
        "agent-memory",
        Recovery,
        &[(PoolRecovery, FAIL), (RejectionsSeen, FAIL)],
        &[(PoolRecovery, FAIL), (RejectionsSeen, FAIL)],
        "right: 200 new agents exhaust the pool; 503 {\"detail\"} without Retry-After, after the \
         generation, is not graceful; idle agents' blocks are never freed: no recovery",
    ),
    row(
        "agent-memory",
        RapidAgents,
        &[],
        &[],
        "slow batches of two, still under 2 s",
    ),
    row(
        "agent-memory",
        Isolation,
        &[],
        &[],
        "one agent per X-Session-ID",
    ),
    row("agent-memory", Latency, &[], &[], ""),
    row(
        "agent-memory",
        HitRate,
        &[],
        &[],
        "the hit flag reads every follow-up as a whole-prompt hit",
    ),
    row("agent-memory", Realistic, &[], &[], ""),
    // ---- llama.cpp.
    row("llama.cpp", Burst, &[], &[], "four slots; the rest wait"),
    row(
        "llama.cpp",
        GracefulRejection,
        QUEUES,
        NEVER_EXHAUSTED,
        "right: queues without bound and never rejects (undeclared: no pool figures, so nothing \
         to judge)",
    ),
    row(
        "llama.cpp",
        NoCrash,
        &[],
        &[(HealthResponsive, FAIL)],
        "undeclared, wrong verdict: llama-server has no /health/live (404); /health answers at once",
    ),
    row(
        "llama.cpp",
        Recovery,
        &[(PoolRecovery, NA)],
        &[(RejectionsSeen, FAIL)],
        "right: never rejects, so saturation proves nothing about recovery",
    ),
    row(
        "llama.cpp",
        RapidAgents,
        &[],
        &[(Completed, FAIL)],
        "undeclared, right about the server: it closes the connection after each streamed reply \
         although it advertised keep-alive, and an agent's next request written on it at once is \
         lost; the profile asks Connection: close on streams",
    ),
    row(
        "llama.cpp",
        Isolation,
        &[(IsolationCrossAgentMisses, NA)],
        &[(IsolationCrossAgentMisses, FAIL)],
        "undeclared, wrong verdict: another agent reuses the identical shared prefix left in a \
         slot, which is safe (no canary crosses)",
    ),
    row("llama.cpp", Latency, &[], &[], ""),
    row(
        "llama.cpp",
        HitRate,
        &[],
        &[],
        "cache_read_input_tokens from the slot's prefix",
    ),
    row(
        "llama.cpp",
        Realistic,
        &[],
        &[(AllAnswered, FAIL), (Completed, FAIL)],
        "undeclared, right about the server: requests sent at once after a streamed reply are \
         lost on the connection it closes (as for rapid agents)",
    ),
    // ---- vLLM.
    row("vllm", Burst, &[], &[], "batches of 256"),
    row(
        "vllm",
        GracefulRejection,
        QUEUES,
        NEVER_EXHAUSTED,
        "right: queues and preempts, never rejects (undeclared: /health is empty)",
    ),
    row(
        "vllm",
        NoCrash,
        &[],
        &[(HealthResponsive, FAIL)],
        "undeclared, wrong verdict: vLLM has no /health/live (404); /health answers at once",
    ),
    row(
        "vllm",
        Recovery,
        &[(PoolRecovery, NA)],
        &[(RejectionsSeen, FAIL)],
        "right: never rejects",
    ),
    row("vllm", RapidAgents, &[], &[], ""),
    row(
        "vllm",
        Isolation,
        &[
            (IsolationCrossAgentMisses, NA),
            (IsolationSameAgentHits, NA),
        ],
        &[(IsolationSameAgentHits, FAIL)],
        "undeclared, wrong verdict: usage has no cache fields, so reuse is invisible in replies",
    ),
    row("vllm", Latency, &[], &[], ""),
    row(
        "vllm",
        HitRate,
        &[(CacheHitRate, NA)],
        &[(CacheHitRate, FAIL)],
        "undeclared, wrong verdict: the prefix cache hits, but usage has no cache fields \
         (declared: no load is sent, nothing applies)",
    ),
    row(
        "vllm",
        Realistic,
        &[(CacheHitRate, NA)],
        &[(CacheHitRate, FAIL)],
        "undeclared, wrong verdict: the long-context agent's hit rate is judged from usage, which \
         has no cache fields",
    ),
];

const fn row(
    personality: &'static str,
    scenario: Scenario,
    declared: &'static [(Check, Status)],
    undeclared: &'static [(Check, Status)],
    why: &'static str,
) -> Expected {
    Expected {
        personality,
        scenario,
        declared,
        undeclared,
        why,
    }
}

/// Runs `scenario` against a fresh server of `personality`.
async fn run(personality: &str, scenario: Scenario) -> Report {
    // llama-server serves /metrics only when started with --metrics, as the profile says.
    let args: &[&str] = match personality {
        "llama.cpp" => &["--personality", personality, "--llamacpp-metrics"],
        _ => &["--personality", personality],
    };
    let process = ReferenceProcess::spawn(args);
    let config = StressConfig::new(process.base_url()).model(MODEL);
    let target = if undeclared() {
        Target::new(config)
    } else {
        Target::new(config).profile(Profile::named(personality).expect("a built-in profile"))
    };
    let name = format!(
        "personality_{}_{scenario:?}",
        personality.replace(['.', '-'], "_")
    )
    .to_lowercase();
    let report = match scenario {
        Burst => suite::concurrent_burst(&target, &name, BURST).await,
        GracefulRejection => {
            let low = Stage {
                concurrency: LOW_WORKERS,
                hold: Duration::from_secs(1),
            };
            let hold = Duration::from_secs(3);
            let rate = Some(OVERLOAD_RATE);
            suite::graceful_rejection(&target, &name, low, rate, hold, 200).await
        }
        NoCrash => {
            let hold = Duration::from_secs(5);
            suite::no_crash(&target, &name, Some(OVERLOAD_RATE), hold).await
        }
        Recovery => {
            let window = RECOVERY_MAX + Duration::from_secs(5);
            suite::recovery(&target, &name, window, RECOVERY_MAX).await
        }
        RapidAgents => suite::rapid_agents(&target, &name, AGENTS, REQUESTS_PER_AGENT).await,
        Isolation => suite::isolation(&target, &name, AGENTS, TURNS).await,
        Latency => suite::latency_under_load(&target, &name, AGENTS, TURNS).await,
        HitRate => suite::hit_rate(&target, &name, AGENTS, TURNS, MIN_HIT_RATE).await,
        Realistic => suite::realistic(&target, &name, REALISTIC_SPAN).await,
    };
    let report = report.expect("valid settings");
    drop(process);
    // The server's own metrics are read by the names its profile declares.
    if let (false, Some(server)) = (undeclared(), &report.server) {
        assert!(
            server.error.is_none() && server.summary.samples > 0,
            "{name}: /metrics read by {:?}: {} samples, {:?}",
            server.names,
            server.summary.samples,
            server.error
        );
    }
    let _ = report.write_all(&reports_dir());
    report
}

/// Runs the scenario and compares its verdicts with the table's row.
async fn check(personality: &str, scenario: Scenario) {
    let started = std::time::Instant::now();
    let report = run(personality, scenario).await;
    let took = started.elapsed();
    let mut seen: Vec<(Check, Status)> = report
        .verdicts
        .iter()
        .filter(|v| v.status != Status::Pass)
        .map(|v| (v.check, v.status))
        .collect();
    seen.sort_by_key(|(c, s)| (c.name(), s.label()));
    seen.dedup();
    let shown: Vec<String> = seen.iter().map(|(c, s)| format!("{c}:{s}")).collect();
    println!(
        "VERDICT {} {personality} {scenario:?} ({:.1} s): {}",
        if undeclared() {
            "undeclared"
        } else {
            "declared"
        },
        took.as_secs_f64(),
        if seen.is_empty() {
            "pass".to_owned()
        } else {
            shown.join(", ")
        }
    );
    for v in report.verdicts.iter().filter(|v| !v.passed()) {
        println!("  {v}");
    }
    if let Some(cleanup) = &report.cleanup {
        println!("  {cleanup}");
    }
    let row = TABLE
        .iter()
        .find(|r| r.personality == personality && r.scenario == scenario)
        .unwrap_or_else(|| panic!("no expected row for {personality} {scenario:?}"));
    let mut expected = if undeclared() {
        row.undeclared
    } else {
        row.declared
    }
    .to_vec();
    expected.sort_by_key(|(c, s)| (c.name(), s.label()));
    assert!(
        seen == expected,
        "{personality} {scenario:?} ({}): expected {expected:?} not to pass, saw {seen:?}:\n{}",
        row.why,
        report.text()
    );
}

/// One test per personality and scenario.
macro_rules! cases {
    ($($test:ident: $personality:literal, $scenario:ident;)+) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr(not(feature = "stress"), ignore = "stress test: cargo test --features stress")]
        #[file_serial(stress)]
        #[allow(non_snake_case)]
        async fn $test() {
            check($personality, Scenario::$scenario).await;
        }
    )+};
}

cases! {
    semantic__burst: "semantic", Burst;
    semantic__graceful_rejection: "semantic", GracefulRejection;
    semantic__no_crash: "semantic", NoCrash;
    semantic__recovery: "semantic", Recovery;
    semantic__rapid_agents: "semantic", RapidAgents;
    semantic__isolation: "semantic", Isolation;
    semantic__latency: "semantic", Latency;
    semantic__hit_rate: "semantic", HitRate;
    semantic__realistic: "semantic", Realistic;
    agent_memory__burst: "agent-memory", Burst;
    agent_memory__graceful_rejection: "agent-memory", GracefulRejection;
    agent_memory__no_crash: "agent-memory", NoCrash;
    agent_memory__recovery: "agent-memory", Recovery;
    agent_memory__rapid_agents: "agent-memory", RapidAgents;
    agent_memory__isolation: "agent-memory", Isolation;
    agent_memory__latency: "agent-memory", Latency;
    agent_memory__hit_rate: "agent-memory", HitRate;
    agent_memory__realistic: "agent-memory", Realistic;
    llama_cpp__burst: "llama.cpp", Burst;
    llama_cpp__graceful_rejection: "llama.cpp", GracefulRejection;
    llama_cpp__no_crash: "llama.cpp", NoCrash;
    llama_cpp__recovery: "llama.cpp", Recovery;
    llama_cpp__rapid_agents: "llama.cpp", RapidAgents;
    llama_cpp__isolation: "llama.cpp", Isolation;
    llama_cpp__latency: "llama.cpp", Latency;
    llama_cpp__hit_rate: "llama.cpp", HitRate;
    llama_cpp__realistic: "llama.cpp", Realistic;
    vllm__burst: "vllm", Burst;
    vllm__graceful_rejection: "vllm", GracefulRejection;
    vllm__no_crash: "vllm", NoCrash;
    vllm__recovery: "vllm", Recovery;
    vllm__rapid_agents: "vllm", RapidAgents;
    vllm__isolation: "vllm", Isolation;
    vllm__latency: "vllm", Latency;
    vllm__hit_rate: "vllm", HitRate;
    vllm__realistic: "vllm", Realistic;
}
