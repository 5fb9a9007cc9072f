//! [`Calibration`]: what the server can do, measured before a test sizes its load, so that the
//! sizes tuned to one server (rates, timeouts, phase lengths) follow the server under test.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Target, message};
use crate::metrics::serde_duration::millis;
use crate::{Load, MetricsCollector, Outcome, Stop};

/// Concurrencies tried, in order, until throughput stops rising or the budget runs out.
const CONCURRENCIES: &[usize] = &[1, 2, 4, 8, 16, 32, 64];
/// Throughput must rise by this factor for a doubled concurrency to count as a rise.
const RISE: f64 = 1.15;

/// What the server under test does with requests of one test's shape, measured on an idle
/// server within a time budget. Reported in each test's JSON under `calibration`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// Output tokens asked of each request.
    pub max_tokens: u32,
    /// Latency of one request alone (the median of three).
    #[serde(rename = "idle_latency_ms", with = "millis")]
    pub idle_latency: Duration,
    /// Output tokens per second of one request alone (its output tokens over its latency).
    pub decode_tokens_per_s: Option<f64>,
    /// The concurrency past which throughput stopped rising (the largest tried if it never did).
    pub knee_concurrency: usize,
    /// Requests per second served at the knee: the server's capacity for this shape.
    pub capacity_rps: f64,
    /// Peak pool utilization read during the sweep, when the profile can read it.
    pub peak_pool_utilization: Option<f64>,
    /// Whether every step ran within the budget (else the figures are lower bounds).
    pub complete: bool,
    /// Requests sent by the calibration.
    pub requests: u64,
    /// How long it took.
    #[serde(rename = "elapsed_ms", with = "millis")]
    pub elapsed: Duration,
}

impl Calibration {
    /// A paced overload: `factor` times the measured capacity, at least `floor` per second.
    pub fn overload_rate(&self, factor: f64, floor: f64) -> f64 {
        (self.capacity_rps * factor).max(floor)
    }

    /// How long `queued` requests of this shape take to drain at the measured capacity.
    pub fn drain_time(&self, queued: usize) -> Duration {
        if self.capacity_rps > 0.0 {
            Duration::from_secs_f64(queued as f64 / self.capacity_rps)
        } else {
            self.idle_latency * u32::try_from(queued).unwrap_or(u32::MAX)
        }
    }
}

/// Measures the server with requests of `max_tokens` output tokens: one alone (three times),
/// then closed loops of 1, 2, 4, … concurrent requests (two each) until throughput rises by
/// less than 15% or `budget` is spent. Bounded: every step is cut at the budget's end.
///
/// # Errors
/// [`Error::InvalidConfig`](crate::Error::InvalidConfig) when the target's settings are invalid.
pub async fn calibrate(
    target: &Target,
    max_tokens: u32,
    budget: Duration,
) -> crate::Result<Calibration> {
    let started = Instant::now();
    let deadline = started + budget;
    let body = message(target, "Say something about calibration.", max_tokens);
    let mut requests = 0;
    let mut alone = Vec::new();
    let one = target.harness(|c| c.workers(1))?;
    for _ in 0..3 {
        if Instant::now() >= deadline {
            break;
        }
        let r = one.client().send(&body, Instant::now()).await;
        requests += 1;
        if r.outcome == Outcome::Success {
            alone.push(r);
        }
    }
    alone.sort_by_key(crate::RequestResult::latency);
    let median = alone.get(alone.len() / 2);
    let idle_latency = median.map_or(Duration::ZERO, crate::RequestResult::latency);
    let decode_tokens_per_s = median.and_then(|r| {
        let tokens = r.usage?.output_tokens;
        (tokens > 0 && !r.latency().is_zero()).then(|| tokens as f64 / r.latency().as_secs_f64())
    });
    let pool = target.profile_ref().pool.clone();
    let probe = pool.as_ref().and_then(|reading| {
        Some(crate::Probe::start(
            one.client().clone(),
            crate::Request::get(reading.path()?).keep_text(),
            Duration::from_millis(100),
            10_000,
        ))
    });
    let mut best = (1, 0.0_f64);
    let mut complete = true;
    for &c in CONCURRENCIES {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            complete = false;
            break;
        }
        let harness = target.harness(|cfg| cfg.workers(c))?;
        let body = body.clone();
        let run = harness
            .run(
                Load::closed(
                    c,
                    Stop {
                        requests: Some(2 * c as u64),
                        after: Some(remaining),
                    },
                ),
                move |_| body.clone(),
            )
            .await?;
        requests += run.sent;
        let m = MetricsCollector::analyze(&run.results);
        let span = run
            .results
            .iter()
            .map(|r| r.finished_at)
            .max()
            .map_or(Duration::ZERO, |end| {
                end.saturating_duration_since(run.started)
            });
        if m.successful < 2 * c as u64 {
            // Cut by the budget, or the server refused part of it: the last full step stands.
            complete = m.rejected > 0;
            break;
        }
        let rps = m.successful as f64 / span.as_secs_f64().max(1e-6);
        if rps < best.1 * RISE {
            best.1 = best.1.max(rps);
            break;
        }
        best = (c, rps);
    }
    let peak_pool_utilization = match (probe, &pool) {
        (Some(probe), Some(reading)) => probe
            .stop()
            .await
            .iter()
            .filter_map(|p| reading.extract(p.text.as_deref()?))
            .reduce(f64::max),
        _ => None,
    };
    Ok(Calibration {
        max_tokens,
        idle_latency,
        decode_tokens_per_s,
        knee_concurrency: best.0,
        capacity_rps: best.1,
        peak_pool_utilization,
        complete,
        requests,
        elapsed: started.elapsed(),
    })
}
