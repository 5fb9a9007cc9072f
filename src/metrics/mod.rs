//! Numbers only: records in, figures out.
//!
//! # Overview
//!
//! - [`RequestResult`] and [`Outcome`]: one record per request sent, and its class.
//! - [`LatencyHistogram`] → [`LatencySummary`]: latency distributions in fixed memory.
//! - [`MetricsCollector`] → [`LoadMetrics`]: streaming, mergeable run figures, including
//!   [`CacheStats`] and the [`ServingMetrics`] (TTFT, ITL, TPOT, goodput under an [`Slo`]).
//! - [`TokenTiming`] and [`CompactHistogram`]: every content delta's arrival, per record, in
//!   bounded memory.
//! - [`TimingTruth`] → [`TruthCollector`] → [`TimingErrors`]: the harness's own timing error
//!   against a stamping server's write times (self-test mode).
//! - [`WindowedSeries`] → [`Window`]s and [`Degradation`]: figures over time for sustained runs.
//! - [`fit_trend`] → [`Trend`], and [`MemoryTrend`] over [`MemorySample`]s.
//!
//! Every figure is defined once, here; the code cites these sections.
//!
//! # Percentiles
//!
//! Latencies are recorded in whole microseconds (a [`Duration`](std::time::Duration) is
//! truncated to µs) into an HdrHistogram tracking 1 µs to 1 h at 3 significant decimal digits.
//! Longer values are clamped to 1 h and counted as *saturated*.
//!
//! The quantile `q` is HdrHistogram's `value_at_quantile(q)`: with `N` recorded values, take the
//! nearest rank `r = max(1, ⌈q·N⌉)`, find the bucket holding the `r`-th smallest value and report
//! that bucket's *highest equivalent value*. So the reported quantile `v` and the exact
//! nearest-rank quantile `x` (of the µs-truncated values) satisfy `x ≤ v ≤ x·(1 + 1/1024)`:
//! 3 significant digits give 2048 sub-buckets per power of two, hence a relative error below
//! 0.1%. Quantile 0 reports the lowest equivalent value of the minimum.
//!
//! Memory is fixed by the bounds (about 24 k counters of 8 bytes, ≈ 190 KiB), whatever the run
//! length. Histograms with these bounds merge exactly: merging and then asking a quantile gives
//! the same answer as recording everything into one histogram.
//!
//! # Run figures
//!
//! - `total` counts every record: each request sent yields exactly one.
//! - `error_rate = errors / total`, where errors are the classes with
//!   [`Outcome::is_error`]; graceful rejections are **not** errors and have their own
//!   `rejection_rate = rejected / total`. Both are 0 for an empty run.
//! - `success_latency` holds [`RequestResult::latency`] of successes only; `failure_latency`
//!   holds it for every other class (rejections included). Neither hides in the other.
//! - `corrected_latency` ([`RequestResult::corrected_latency`], from the intended start) and
//!   `uncorrected_latency` ([`RequestResult::latency`], from the actual start) cover the same
//!   population, every record, so they can be read side by side. They are equal in a closed
//!   loop; in a paced run the gap is the coordinated omission a closed-loop tool would hide.
//! - `scheduler_lag` is the intended-vs-actual start of every record: when it grows, the
//!   generator is saturated, not the server.
//! - `serving` holds the streaming figures (see [Serving figures](#serving-figures)).
//! - `duration = last end − first actual start`; `throughput_rps = total / duration` (every
//!   record), `success_rps = successful / duration` (so fast rejections cannot pass for
//!   service; this is **not** goodput, see below), `output_tokens_per_s = Σ usage.output_tokens
//!   / duration`. All are 0 when the duration is.
//! - `output_tokens` and every cache figure count **successes only**: a stream cut short still
//!   carried `message_start` usage, for a reply that never arrived. Sums saturate rather than
//!   overflow on absurd usage values.
//! - `retry_after_missing` counts 429, 503 and 529 responses that came without `Retry-After`.
//!
//! Memory is fixed (nine [`LatencyHistogram`]s, ≈ 1.7 MiB, plus one counter per distinct
//! status code); collectors merge exactly, so workers can aggregate locally and merge at the end.
//!
//! # Serving figures
//!
//! The definitions follow vLLM's serving benchmark (`vllm/benchmarks/serve.py`,
//! `calculate_metrics`) and NVIDIA AIPerf's metrics reference; `docs/serving-metrics.md` cites
//! them and says where they differ. Only successes count; a figure with no value is `None`
//! (`null`), never another figure under its name.
//!
//! - A streamed reply's **content deltas** are its `content_block_delta` events carrying text.
//!   The client records each one's arrival ([`RequestResult::delta_arrived`]): the first sets
//!   `first_token_at`; each later one adds the gap since the previous one to the record's
//!   [`TokenTiming`] (a [`CompactHistogram`] of its gaps, their maximum, and the number of
//!   gaps longer than the stall threshold). Several events read in one network read share an
//!   arrival time: their gaps are 0, as a client would see them.
//! - **TTFT** = `first_token_at − intended start`, for streamed successes only (a reply that
//!   did not stream has no first token: its arrival is not a TTFT). In a closed loop the
//!   intended start is the actual start.
//! - **ITL** is the distribution of every gap between consecutive content deltas of every
//!   streamed success (vLLM's `itl`; AIPerf calls it inter-chunk latency). A delta may carry
//!   several tokens; ITL times deltas, TPOT times tokens.
//! - **TPOT** = `(end − first_token_at) / (output_tokens − 1)` per streamed success with
//!   `output_tokens ≥ 2` (vLLM's `tpot`; AIPerf calls it inter-token latency), `output_tokens`
//!   from the reply's usage.
//! - **End-to-end latency** = `end − intended start` of each success (vLLM's `e2el`).
//! - **Output tokens/s per request** = `1 / TPOT` (AIPerf's output token throughput per user);
//!   its percentiles are the reciprocals of TPOT's: the rate 90% of requests beat is
//!   `1 / TPOT p90` (up to one rank of nearest-rank rounding).
//! - **Stalls**: gaps longer than the stall threshold (1 s by default), summed over requests,
//!   and the number of requests with at least one.
//! - **Goodput** = requests per second that met every set objective of the [`Slo`] (DistServe's
//!   and vLLM's definition): a success meets an objective when its figure is at most the limit;
//!   failures meet none. As in vLLM, a streamed success of one token has TPOT 0 for this
//!   purpose; likewise a stream of one delta has no gap. A success lacking a figure an objective
//!   needs (it did not stream, under a TTFT objective) is *unjudged*, and goodput is then `None`
//!   rather than a count that silently leaves it out. Each objective's share is `met / total
//!   requests`.
//!
//! ITL values pass through each record's [`CompactHistogram`] (2 significant digits), so ITL
//! percentiles are within 1/128 + 1/1024 above the exact nearest-rank value; the other figures
//! have the usual 1/1024.//!
//! # Cache figures
//!
//! - **Request hit rate** = `hits / eligible`. A record is *eligible* when it is a success with usage and
//!   is not the first turn of a conversation (`turn != Some(1)`: turn ≥ 2, or a request sent
//!   outside any conversation). It is a *hit* when `cache_read_input_tokens > 0`.
//! - **Token hit rate** = `Σ cache_read_input_tokens / Σ prompt tokens` over **every** record
//!   success with usage (first turns included: their prompt tokens are real prefill work). Prompt tokens
//!   are [`Usage::prompt_tokens`](crate::anthropic::Usage::prompt_tokens): `input_tokens` when
//!   the response counts cached tokens inside `input_tokens` (this server family), else
//!   `input_tokens + cache_read + cache_creation` (Anthropic's convention). The convention is
//!   detected per response by [`Usage::is_inclusive`](crate::anthropic::Usage::is_inclusive).
//! - A rate is `None` when its denominator is zero (nothing eligible), never a misleading 0.
//!
//! Responses are also counted by convention. A response with no cache tokens at all
//! (`cache_read = cache_creation = 0`) gives the same prompt size under both conventions and is
//! counted as `undetermined_responses`.
//!
//! # Windows
//!
//! ## Window rule
//!
//! A record belongs to window `i = ⌊(scheduled_at − origin) / width⌋` (records scheduled before
//! the origin go to window 0). Windows are keyed by the **intended** start, which equals the
//! actual start in a closed loop: in a paced run, requests delayed by a stalled server stay in
//! the window in which they should have gone out, and so does their latency.
//!
//! Per window: requests, successes, errors, rejections, output tokens, and the latency of the
//! successes from their intended start ([`RequestResult::corrected_latency`], equal to the plain
//! latency in a closed loop) in a [`LatencyHistogram`] plus a seeded uniform reservoir of up to
//! 512 of them (in µs) for rank tests. The TTFT (from the intended start) and the delta gaps
//! (ITL) of its streamed successes go to two [`CompactHistogram`]s (2 significant digits).
//! `throughput_rps = requests / width`, so a last window that the run only partly covers reads
//! low.
//!
//! ## Memory
//!
//! Each window costs about 220 KiB (a histogram, a reservoir and two compact histograms). At
//! most `max_windows` (128 by default, ≈ 28 MiB) are kept: when a record falls beyond them, neighbouring windows are merged
//! in pairs and the width doubles, as often as needed. An hour in one-minute windows (60) is
//! never coalesced.
//!
//! # Degradation
//!
//! With `n` windows and `k` windows per side (requires `n ≥ 2k + 1`):
//!
//! - **early** = windows `1 ..= k`: window 0 is skipped as warm-up (connections opening, caches
//!   cold, the first window often partial);
//! - **late** = the last `k` windows, `n − k .. n` (the last one may be partial).
//!
//! Each side merges its windows' histograms (success latency from the intended start) and
//! reports p50 and p95; the ratios are `late / early`.
//!
//! The **rank test** is the Mann–Whitney U test (statrs `mannwhitneyu`) on the sides' latency
//! reservoirs (concatenated, then at most 2048 values per side drawn at random). `p_greater` is
//! one-sided (H₁: late latencies are stochastically greater than early ones), `p_two_sided` is
//! two-sided. Both use the normal approximation with tie and continuity corrections (as scipy
//! does for large samples). statrs' exact method is not used: in statrs 0.19.1 it returns the
//! complement of the one-sided p-value whenever the first sample is not the larger one.
//! `prob_late_slower = U_late / (n_early·n_late)` is the chance that a random late latency
//! exceeds a random early one (ties count half).
//!
//! The **trend** is the least-squares slope ([`fit_trend`]) of each window's p95 (ms) against
//! its midpoint (s), over every window after the warm-up that has a success: ms per second.
//!
//! Numbers only: the verdict (e.g. "degraded when `p95_ratio > 1.5` and `p_greater < 0.05`")
//! belongs to the checks.
//!
//! # Trends
//!
//! Ordinary least squares on `n` points `(xᵢ, yᵢ)`, computed from centred sums for numerical
//! stability:
//!
//! - `Sxx = Σ(xᵢ − x̄)²`, `Sxy = Σ(xᵢ − x̄)(yᵢ − ȳ)`, `Syy = Σ(yᵢ − ȳ)²`
//! - slope `b = Sxy / Sxx`, intercept `a = ȳ − b·x̄`
//! - residual variance `s² = Σ(yᵢ − a − b·xᵢ)² / (n − 2)`
//! - standard error of the slope `SE = √(s² / Sxx)`
//! - 95% interval `b ± t₀.₉₇₅,ₙ₋₂ · SE`, with Student's t quantile on `n − 2` degrees of freedom
//!   (statrs `StudentsT`)
//! - `r² = 1 − SSres / Syy` (1 when `Syy = 0`: a flat series is fitted exactly).
//!
//! The interval assumes independent, normally distributed residuals of equal variance. Serially
//! correlated data (memory samples a second apart) make it too narrow; read it as a lower bound
//! on the uncertainty.
//!
//! # Memory growth
//!
//! Only samples taken at or after the warm-up (`at ≥ warmup`) count; they are sorted by time.
//! With `n` such samples and `m = max(1, ⌈n / 10⌉)`:
//!
//! - **relative growth** = `(mean of the last m − mean of the first m) / mean of the first m`.
//!   Averaging a tenth of the run at each end keeps one noisy reading (a GC pause, an allocator
//!   returning pages) from deciding the figure, which two points alone would. The seed asks
//!   for less than 5%.
//! - **trend**: the least-squares line of RSS bytes against time in seconds with a 95% interval
//!   on its slope ([`fit_trend`]), over **all** `n` samples; the slope and its interval are also
//!   given in bytes per hour.
//!
//! Samples a second apart are serially correlated, which makes the slope interval too narrow
//! (see [`fit_trend`]); the relative growth is the robust figure, the slope says where it goes.

mod cache;
mod collector;
mod connection;
mod degradation;
mod histogram;
mod memory_trend;
mod record;
mod reservoir;
pub(crate) mod serde_duration;
mod serving;
mod tokens;
mod trend;
mod truth;
mod windows;

pub use cache::CacheStats;
pub use collector::{LoadMetrics, MetricsCollector, OutcomeCounts};
pub use connection::{ConnectionUse, Delivery};
pub use degradation::{Degradation, RankTest};
pub use histogram::{LatencyHistogram, LatencySummary};
pub use memory_trend::{MemorySample, MemoryTrend};
pub use record::{Outcome, RequestResult};
pub use serving::{DEFAULT_STALL_GAP, Goodput, RateSummary, ServingMetrics, Slo, SloShare};
pub use tokens::{CompactHistogram, TokenTiming};
pub use trend::{ConfidenceInterval, Trend, fit_trend};
pub use truth::{TimingErrors, TimingTruth, TruthCollector};
pub use windows::{Window, WindowedSeries};
