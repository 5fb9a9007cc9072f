//! How fast, how lean and how punctual the load generator is: runs the harness against a URL
//! and prints ONE JSON line of figures.
//!
//! ```sh
//! cargo run --release --example generator_bench -- --url http://127.0.0.1:8080/ --connections 50 --duration 10
//! cargo run --release --example generator_bench -- --url http://127.0.0.1:8080/ --rate 1000
//! cargo run --release --example generator_bench -- --url http://127.0.0.1:8080/ --idle --connections 5000
//! cargo run --release --example generator_bench -- --stall
//! ```
//!
//! Modes:
//! - closed loop (default): `--connections` workers, each sends its next request when the
//!   previous one ends;
//! - `--rate R`: open loop at `R` requests/s, at most `--connections` in flight; latency is
//!   reported corrected (from the intended start) and uncorrected (from the actual start);
//! - `--idle`: every connection sends one request a second (bursts of `--connections`), so the
//!   connections sit open and idle most of the time: the memory cost of an open connection;
//! - `--stall`: against an embedded target that stops answering for one second in the middle of
//!   a paced run (1,000 req/s, 50 connections unless given): corrected p99 shows the stall,
//!   uncorrected p99 hides it (coordinated omission).
//!
//! Runtime: by default the harness runs its workers on one single-threaded runtime per core
//! (`Runtime::per_core`, `--threads N` for another count), the way `wrk -t N` runs one event
//! loop per thread; `--shared-runtime` runs them instead on one work-stealing tokio runtime of
//! `--threads` threads (the caller's runtime).
//!
//! Every flag also reads an environment variable: `BENCH_URL`, `BENCH_CONNECTIONS`,
//! `BENCH_DURATION` (seconds), `BENCH_RATE`, `BENCH_THREADS`, `BENCH_SHARED_RUNTIME` (`1`). `--rss-samples` adds the resident memory sampled
//! every second. CPU time comes from `/proc/self/stat` (user + system, this process only).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use semantic_stress::{Arrivals, Load, Request, Runtime, Stop, StressConfig, StressHarness};

/// Stall window of `--stall`, as offsets from the target's start.
const STALL_FROM: Duration = Duration::from_secs(4);
const STALL_FOR: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Closed,
    Rate(f64),
    Idle,
    Stall(f64),
}

#[derive(Debug)]
struct Args {
    url: Option<String>,
    connections: usize,
    duration: Duration,
    mode: Mode,
    rss_samples: bool,
    /// Runtime threads (default: one per core).
    threads: Option<usize>,
    /// Workers on one work-stealing runtime instead of one single-threaded runtime per thread.
    shared_runtime: bool,
}

fn env_or(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse_args() -> anyhow::Result<Args> {
    let mut url = env_or("BENCH_URL");
    let mut connections: Option<usize> = env_or("BENCH_CONNECTIONS")
        .map(|v| v.parse())
        .transpose()
        .context("BENCH_CONNECTIONS")?;
    let mut duration: Option<f64> = env_or("BENCH_DURATION")
        .map(|v| v.parse())
        .transpose()
        .context("BENCH_DURATION")?;
    let mut rate: Option<f64> = env_or("BENCH_RATE")
        .map(|v| v.parse())
        .transpose()
        .context("BENCH_RATE")?;
    let mut threads: Option<usize> = env_or("BENCH_THREADS")
        .map(|v| v.parse())
        .transpose()
        .context("BENCH_THREADS")?;
    let (mut idle, mut stall, mut rss_samples) = (false, false, false);
    let mut shared_runtime = env_or("BENCH_SHARED_RUNTIME").is_some_and(|v| v == "1");
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => url = Some(value()?),
            "--connections" | "-c" => {
                connections = Some(value()?.parse().context("--connections")?)
            }
            "--duration" | "-d" => duration = Some(value()?.parse().context("--duration")?),
            "--rate" => rate = Some(value()?.parse().context("--rate")?),
            "--threads" => threads = Some(value()?.parse().context("--threads")?),
            "--idle" => idle = true,
            "--stall" => stall = true,
            "--rss-samples" => rss_samples = true,
            "--shared-runtime" => shared_runtime = true,
            other => bail!("unknown argument {other:?} (see the example's header)"),
        }
    }
    let mode = match (stall, idle, rate) {
        (true, _, r) => Mode::Stall(r.unwrap_or(1000.0)),
        (false, true, _) => Mode::Idle,
        (false, false, Some(r)) => Mode::Rate(r),
        (false, false, None) => Mode::Closed,
    };
    let stalling = matches!(mode, Mode::Stall(_));
    if stalling {
        connections = connections.or(Some(50));
    } else if url.is_none() {
        bail!("--url (or BENCH_URL) is required");
    }
    Ok(Args {
        url,
        connections: connections.unwrap_or(50),
        duration: Duration::try_from_secs_f64(duration.unwrap_or(10.0)).context("--duration")?,
        mode,
        rss_samples,
        threads,
        shared_runtime,
    })
}

impl Args {
    fn rate(&self) -> Option<f64> {
        match self.mode {
            Mode::Rate(r) | Mode::Stall(r) => Some(r),
            Mode::Closed | Mode::Idle => None,
        }
    }
}

/// User + system CPU time of this process, from `/proc/self/stat` (clock ticks of 10 ms).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

/// A `/proc/self/status` field in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// Samples resident memory and open descriptors on a plain thread until told to stop.
struct Sampler {
    stop: Arc<Mutex<bool>>,
    handle: std::thread::JoinHandle<SamplerOutput>,
}

#[derive(Debug, Default)]
struct SamplerOutput {
    peak_rss_kib: u64,
    peak_fds: usize,
    /// (seconds since start, RSS KiB), one a second.
    series: Vec<(f64, u64)>,
}

impl Sampler {
    fn start(bound: Duration) -> Self {
        let stop = Arc::new(Mutex::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            let mut out = SamplerOutput::default();
            let mut next_series = Duration::ZERO;
            while !*flag.lock().unwrap_or_else(PoisonError::into_inner) && start.elapsed() < bound {
                let rss = status_kib("VmRSS:").unwrap_or(0);
                out.peak_rss_kib = out.peak_rss_kib.max(rss);
                out.peak_fds = out.peak_fds.max(open_fds());
                if start.elapsed() >= next_series {
                    out.series.push((start.elapsed().as_secs_f64(), rss));
                    next_series += Duration::from_secs(1);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            out
        });
        Self { stop, handle }
    }

    fn finish(self) -> SamplerOutput {
        *self.stop.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.handle.join().unwrap_or_default()
    }
}

/// A loopback target that answers at once, except that requests arriving in the stall window
/// are held until it ends (a one-second pause, like a stop-the-world collection).
async fn start_stalling_target() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let origin = Instant::now();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(move |_req: hyper::Request<Incoming>| async move {
                    let at = origin.elapsed();
                    if at >= STALL_FROM && at < STALL_FROM + STALL_FOR {
                        tokio::time::sleep_until((origin + STALL_FROM + STALL_FOR).into()).await;
                    }
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        b"hello world\n",
                    ))))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// Whether resident memory stayed flat over a run.
struct Flatness {
    /// Mean RSS over the first tenth of the run after warm-up (the first tenth).
    warm_kib: f64,
    /// Mean RSS over the last tenth of the run.
    end_kib: f64,
    /// `end / warm − 1`, in percent.
    growth_pct: f64,
    /// Least-squares slope of RSS over time after warm-up.
    slope_kib_per_min: f64,
}

fn rss_flatness(series: &[(f64, u64)], duration: Duration) -> Flatness {
    let total = duration.as_secs_f64();
    let tenth = (total / 10.0).max(1.0);
    let mean_in = |from: f64, to: f64| {
        let v: Vec<f64> = series
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|&(_, kib)| kib as f64)
            .collect();
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let warm_kib = mean_in(tenth, 2.0 * tenth);
    let end_kib = mean_in(total - tenth, total);
    let growth_pct = if warm_kib > 0.0 {
        (end_kib / warm_kib - 1.0) * 100.0
    } else {
        0.0
    };
    let after: Vec<(f64, f64)> = series
        .iter()
        .filter(|(t, _)| *t >= tenth && *t < total)
        .map(|&(t, kib)| (t, kib as f64))
        .collect();
    let n = after.len() as f64;
    let (mx, my) = (
        after.iter().map(|p| p.0).sum::<f64>() / n,
        after.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = after.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = after.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    Flatness {
        warm_kib,
        end_kib,
        growth_pct,
        slope_kib_per_min: slope * 60.0,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let mut args = parse_args()?;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    args.threads = Some(threads);
    // With a runtime per thread the harness starts its own threads: this one only waits
    // (and, for `--stall`, serves the embedded target).
    let runtime = if threads <= 1 || !args.shared_runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(bench(args))
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let url = match args.mode {
        Mode::Stall(_) => format!("http://{}/", start_stalling_target().await?),
        _ => args.url.clone().context("no url")?,
    };
    let uri: http::Uri = url.parse().context("--url")?;
    let base = format!(
        "http://{}",
        uri.authority().context("--url needs host:port")?
    );
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let config = StressConfig::new(base)
        .workers(args.connections)
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .runtime(if args.shared_runtime {
            Runtime::Caller
        } else {
            Runtime::PerThread(args.threads.unwrap_or(1))
        });
    let harness = StressHarness::new(config)?;
    let stop = Stop::after(args.duration);
    let load = match args.mode {
        Mode::Closed => Load::closed(args.connections, stop),
        Mode::Idle => Load::open(
            args.connections,
            Arrivals::Bursts {
                size: args.connections,
                every: Duration::from_secs(1),
            },
            stop,
        ),
        Mode::Rate(_) | Mode::Stall(_) => Load::open(
            args.connections,
            Arrivals::Constant {
                per_second: args.rate().unwrap_or(1000.0),
            },
            stop,
        ),
    };

    let rss_before_kib = status_kib("VmRSS:").unwrap_or(0);
    let sampler = Sampler::start(args.duration + Duration::from_secs(60));
    let cpu_before = cpu_time();
    let run = harness
        .run_streaming(load, move |_| Request::get(path.as_str()))
        .await?;
    let cpu_after = cpu_time();
    let sampled = sampler.finish();
    let metrics = run.load;
    let generator = run.generator;
    let sent = run.sent;
    let recorded = metrics.total;

    let cpu = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => Duration::ZERO,
    };
    let cpu_us_per_request = if recorded > 0 {
        cpu.as_secs_f64() * 1e6 / recorded as f64
    } else {
        0.0
    };
    let peak_rss_kib = sampled.peak_rss_kib.max(status_kib("VmHWM:").unwrap_or(0));
    let rss_delta_kib = sampled.peak_rss_kib.saturating_sub(rss_before_kib);
    let mode = match args.mode {
        Mode::Closed => "closed",
        Mode::Rate(_) => "rate",
        Mode::Idle => "idle",
        Mode::Stall(_) => "stall",
    };
    let mut line = serde_json::json!({
        "mode": mode,
        "url": url,
        "connections": args.connections,
        "threads": args.threads,
        "runtime": if args.shared_runtime { "shared" } else { "per-thread" },
        "duration_s": args.duration.as_secs_f64(),
        "rate": args.rate(),
        "sent": sent,
        "recorded": recorded,
        "errors": metrics.errors,
        "requests_per_s": metrics.throughput_rps,
        "cpu_s": cpu.as_secs_f64(),
        "cpu_us_per_request": cpu_us_per_request,
        "rss_before_kib": rss_before_kib,
        "peak_rss_kib": peak_rss_kib,
        "rss_delta_kib": rss_delta_kib,
        "rss_delta_per_connection_kib": rss_delta_kib as f64 / args.connections as f64,
        "peak_open_fds": sampled.peak_fds,
        "latency_p50_ms": ms(metrics.uncorrected_latency.p50),
        "latency_p99_ms": ms(metrics.uncorrected_latency.p99),
        "corrected_p50_ms": ms(metrics.corrected_latency.p50),
        "corrected_p99_ms": ms(metrics.corrected_latency.p99),
        "start_lag_p99_ms": ms(metrics.scheduler_lag.p99),
        "timer_lag_p99_ms": generator.timer_lag_p99_ms,
        "late_slots": generator.late_slots,
        "saturated": generator.saturated,
    });
    if args.rss_samples {
        let flat = rss_flatness(&sampled.series, args.duration);
        line["rss_warm_kib"] = serde_json::json!(flat.warm_kib);
        line["rss_end_kib"] = serde_json::json!(flat.end_kib);
        line["rss_growth_pct"] = serde_json::json!(flat.growth_pct);
        line["rss_slope_kib_per_min"] = serde_json::json!(flat.slope_kib_per_min);
        line["rss_samples_kib"] = serde_json::json!(sampled.series);
    }
    println!("{line}");
    Ok(())
}
