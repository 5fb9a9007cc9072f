//! The harness's timing error budget: at several numbers of concurrent streaming agents against
//! a reference server in another process, how much error the harness adds to TTFT and ITL
//! (measured against the server's write stamps), its CPU per token, its memory per agent, and
//! whether it flagged itself saturated. Prints ONE JSON line.
//!
//! ```sh
//! cargo build --release -p reference-server && cargo build --release --example timing_bench
//! target/release/examples/timing_bench                      # 100, 1000 and 10000 agents
//! target/release/examples/timing_bench --agents 1000 --duration 20
//! ```
//!
//! With `taskset` on the path and two cores or more, the server runs pinned to core 0 and the
//! bench re-runs itself pinned to core 1 (`--no-pin` to turn that off): each side has one
//! core, and neither steals the other's.
//!
//! Each level starts a fresh server (`--decode-tokens-per-sec` chosen so that all agents
//! together stream about `--token-rate` tokens per second, at most 50 per agent; replies of
//! about 4 s), runs a closed loop of `agents` streaming agents for `--duration` seconds with
//! the timing self-test on, and reports:
//!
//! - `ttft_error_*_ms`, `itl_error_*_ms`: the harness's TTFT minus the server's, and the
//!   difference of consecutive gaps (`TimingErrors`, see `docs/report-schema.md`);
//! - `cpu_us_per_token`: the generator process's CPU time over output tokens received;
//! - `rss_per_agent_kib`: resident memory in the middle of the run (agents mostly idle,
//!   waiting for their next token) minus before the run, over the agents; in self-test mode
//!   each stream also keeps its per-delta and ITL errors (4 bytes each a delta), `--no-truth`
//!   measures without;
//! - `saturated`, `trustworthy` and `trust_reason`: the generator's own verdict on its figures.
//!
//! `--per-core` runs the agents on the harness's own single-threaded runtimes, one per core
//! available (`Runtime::per_core`; one when pinned), instead of the bench's multi-thread
//! runtime.
//!
//! Set `SEMANTIC_REFERENCE_SERVER` to the server binary; by default it is `reference-server`
//! beside this example's directory (`target/release/`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use semantic_stress::anthropic::{Message, MessagesRequest};
use semantic_stress::metrics::LatencySummary;
use semantic_stress::{Load, Report, Request, Runtime, Stop, StressConfig, StressHarness};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
struct Args {
    agents: Vec<usize>,
    duration: Duration,
    token_rate: f64,
    pin: bool,
    truth: bool,
    per_core: bool,
}

fn parse_args() -> anyhow::Result<(Args, bool)> {
    let mut args = Args {
        agents: vec![100, 1000, 10_000],
        duration: Duration::from_secs(15),
        token_rate: 20_000.0,
        pin: true,
        truth: true,
        per_core: false,
    };
    let mut pinned = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--agents" => {
                args.agents = it
                    .next()
                    .context("--agents N[,N…]")?
                    .split(',')
                    .map(|n| n.trim().parse().context("--agents"))
                    .collect::<anyhow::Result<_>>()?;
            }
            "--duration" => {
                let s: f64 = it.next().context("--duration S")?.parse()?;
                args.duration = Duration::from_secs_f64(s);
            }
            "--token-rate" => args.token_rate = it.next().context("--token-rate")?.parse()?,
            "--no-pin" => args.pin = false,
            "--no-truth" => args.truth = false,
            "--per-core" => args.per_core = true,
            "--pinned" => pinned = true,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok((args, pinned))
}

/// Whether `taskset` runs here and there are two cores to split.
fn can_pin() -> bool {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    cores >= 2
        && Command::new("taskset")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

fn server_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("SEMANTIC_REFERENCE_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .context("examples directory")?;
    let bin = dir.join("reference-server");
    if !bin.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p reference-server) or set SEMANTIC_REFERENCE_SERVER",
            bin.display()
        );
    }
    Ok(bin)
}

/// A reference server process, killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(pin: bool, decode: f64, agents: usize) -> anyhow::Result<Self> {
        let bin = server_binary()?;
        let mut cmd = if pin {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(bin);
            c
        } else {
            Command::new(bin)
        };
        let capacity = (agents * 2).to_string();
        cmd.args(["--host", "127.0.0.1", "--port", "0", "--exit-on-stdin-eof"])
            .args(["--decode-tokens-per-sec", &decode.to_string()])
            .args(["--prefill-tokens-per-sec", "100000", "--engine-tick", "5ms"])
            .args(["--max-batch-size", &capacity, "--max-queue", &capacity])
            .args(["--max-hot-agents", &capacity, "--cache-budget-mb", "65536"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().context("start the reference server")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().context("server exited")??;
        std::thread::spawn(move || for _ in lines {});
        let url = first
            .strip_prefix("listening on ")
            .context("unexpected first line")?
            .trim()
            .to_owned();
        Ok(Self { child, url })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn ms(s: &Option<LatencySummary>, q: &str) -> Value {
    s.as_ref().map_or(Value::Null, |s| {
        let d = match q {
            "p50" => s.p50,
            "p99" => s.p99,
            _ => s.max,
        };
        json!(d.as_secs_f64() * 1e3)
    })
}

/// One level: `agents` streaming agents for the run's duration.
async fn level(args: &Args, pin: bool, agents: usize) -> anyhow::Result<Value> {
    let decode = (args.token_rate / agents as f64).clamp(0.5, 50.0);
    let max_tokens = ((decode * 4.0).round() as u32).max(3);
    let server = Server::start(pin, decode, agents)?;
    let config = StressConfig::new(server.url.clone())
        .workers(agents)
        .timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(30))
        .duration(args.duration)
        .timing_truth(args.truth)
        .runtime(if args.per_core {
            Runtime::per_core()
        } else {
            Runtime::Caller
        });
    let harness = StressHarness::new(config)?;
    // RSS sampled every 100 ms; the median of the middle half of the run is the steady state.
    let rss_before = status_kib("VmRSS:").unwrap_or(0);
    let samples = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (samples, stop) = (Arc::clone(&samples), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(kib) = status_kib("VmRSS:") {
                    samples
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(kib);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let seq = Arc::new(AtomicU64::new(0));
    let load = Load::closed(agents, Stop::after(args.duration));
    let run = harness
        .run_streaming(load, move |slot| {
            let n = seq.fetch_add(1, Ordering::Relaxed);
            let text = format!("agent {} turn {n}: tell me a story", slot.index);
            let mut body =
                MessagesRequest::new("test-model", vec![Message::user(text)], max_tokens);
            body.stream = true;
            Request::messages(&body)
        })
        .await?;
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let mut rss = samples
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let steady = if rss.len() >= 4 {
        let n = rss.len();
        let mid = &mut rss[n / 4..3 * n / 4];
        mid.sort_unstable();
        mid[mid.len() / 2]
    } else {
        status_kib("VmRSS:").unwrap_or(0)
    };
    let m = &run.load;
    let g = &run.generator;
    let mut report = Report::new("timing_bench", server.url.clone());
    report.metrics = Some(m.clone());
    report.generator = Some(g.clone());
    let trust = report.trust();
    let e = m.timing_errors.as_ref();
    let cpu_us_per_token = g
        .cpu_s
        .filter(|_| m.output_tokens > 0)
        .map(|c| c * 1e6 / m.output_tokens as f64);
    Ok(json!({
        "agents": agents,
        "decode_tokens_per_s_per_agent": decode,
        "max_tokens": max_tokens,
        "requests": m.total,
        "requests_per_s": m.throughput_rps,
        "ttft_p50_ms": ms(&m.serving.ttft, "p50"),
        "ttft_p99_ms": ms(&m.serving.ttft, "p99"),
        "errors": m.errors,
        "rejected": m.rejected,
        "output_tokens": m.output_tokens,
        "output_tokens_per_s": m.output_tokens_per_s,
        "stamped_deltas": e.map(|e| e.stamped_deltas),
        "unstamped_deltas": e.map(|e| e.unstamped_deltas),
        "early_deltas": e.map(|e| e.early_deltas),
        "ttft_error_p50_ms": e.map_or(Value::Null, |e| ms(&e.ttft, "p50")),
        "ttft_error_p99_ms": e.map_or(Value::Null, |e| ms(&e.ttft, "p99")),
        "ttft_error_max_ms": e.map_or(Value::Null, |e| ms(&e.ttft, "max")),
        "itl_error_p50_ms": e.map_or(Value::Null, |e| ms(&e.itl, "p50")),
        "itl_error_p99_ms": e.map_or(Value::Null, |e| ms(&e.itl, "p99")),
        "itl_error_max_ms": e.map_or(Value::Null, |e| ms(&e.itl, "max")),
        "server_ttft_p50_ms": e.map_or(Value::Null, |e| ms(&e.server_ttft, "p50")),
        "cpu_s": g.cpu_s,
        "cpu_share": g.cpu_share,
        "cpu_us_per_token": cpu_us_per_token,
        "busy_share": g.busy_share,
        "wake_lag_p99_ms": g.wake_lag_p99_ms,
        "timer_lag_p99_ms": g.timer_lag_p99_ms,
        "rss_before_kib": rss_before,
        "rss_steady_kib": steady,
        "rss_per_agent_kib": steady.saturating_sub(rss_before) as f64 / agents as f64,
        "saturated": g.saturated,
        "trustworthy": trust.trustworthy,
        "trust_reason": trust.reason,
    }))
}

fn main() -> anyhow::Result<()> {
    let (args, pinned) = parse_args()?;
    if args.pin && !pinned && can_pin() {
        // Run again on core 1, the server going to core 0.
        let exe = std::env::current_exe()?;
        let status = Command::new("taskset")
            .args(["-c", "1"])
            .arg(exe)
            .args(std::env::args().skip(1))
            .arg("--pinned")
            .status()?;
        if !status.success() {
            bail!("pinned run failed: {status}");
        }
        return Ok(());
    }
    let pin = pinned;
    let load_before = loadavg();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut levels = Vec::new();
    for &agents in &args.agents {
        levels.push(runtime.block_on(level(&args, pin, agents))?);
    }
    let line = json!({
        "bench": "timing",
        "pinned": pin,
        "cores": std::thread::available_parallelism().map_or(1, usize::from),
        "truth": args.truth,
        "runtime": if args.per_core { "per-core" } else { "shared" },
        "duration_s": args.duration.as_secs_f64(),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "levels": levels,
    });
    println!("{line}");
    Ok(())
}
