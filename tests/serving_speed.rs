//! The serving figures measure what the server does: against a reference server with a known
//! decode and prefill speed, measured TPOT and ITL agree with the decode speed and TTFT with the
//! prefill speed, within stated tolerances — and the same comparison rejects a wrong speed.
//!
//! The reference server produces `⌊(t − prefill) × decode⌋` tokens after `t` of running, where
//! `prefill = uncached prompt tokens / prefill speed`, and emits one delta per engine tick that
//! produced tokens (`reference-server/src/engine.rs`). With `1 / decode` (20 ms) well above the
//! tick (5 ms), each delta carries one token, so:
//!
//! - **TPOT** ≈ `1 / decode`: within 10%;
//! - **ITL** p50 ≈ `1 / decode`: within one tick + 2 ms (each delta is seen at a tick);
//! - **TTFT** p50 ≈ `uncached / prefill + 1 / decode` (the first token needs its decode time):
//!   from 5 ms under to one tick + 20 ms over (a tick, HTTP and parsing).
//!
//! Run: `cargo test --features stress --test serving_speed`.

mod common;

use std::time::Duration;

use common::Server;
use semantic_stress::anthropic::{Message, MessagesRequest};
use semantic_stress::{Load, LoadMetrics, MetricsCollector, Request, RequestResult, Stop};
use serial_test::file_serial;

/// Configured decode speed, tokens per second per sequence.
const DECODE: f64 = 50.0;
/// Configured prefill speed, tokens per second.
const PREFILL: f64 = 2000.0;
/// The engine's step.
const TICK: Duration = Duration::from_millis(5);
/// Streams sent, and at once (far under the batch size: no queueing).
const REQUESTS: u64 = 12;
const CONCURRENCY: usize = 4;

/// What the run measured, and the uncached prompt tokens its replies report (mean).
struct Measured {
    metrics: LoadMetrics,
    uncached_tokens: f64,
}

/// Streams `REQUESTS` replies of about 30 tokens with prompts of about 600 tokens from a fresh
/// reference server running at `DECODE` and `PREFILL`.
async fn measure() -> Measured {
    let server = Server::reference(&[
        "--decode-tokens-per-sec",
        &DECODE.to_string(),
        "--prefill-tokens-per-sec",
        &PREFILL.to_string(),
        "--engine-tick",
        "5ms",
    ]);
    let harness = server
        .target()
        .harness(|c| c.workers(CONCURRENCY))
        .expect("valid settings");
    let load = Load::closed(CONCURRENCY, Stop::requests(REQUESTS));
    let run = harness
        .run(load, |slot| {
            let words: Vec<String> = (0..600).map(|i| format!("w{}x{i}", slot.index)).collect();
            let mut body =
                MessagesRequest::new("test-model", vec![Message::user(words.join(" "))], 30);
            body.stream = true;
            Request::messages(&body)
        })
        .await
        .expect("valid load");
    let ok: Vec<&RequestResult> = run
        .results
        .iter()
        .filter(|r| r.outcome == semantic_stress::Outcome::Success)
        .collect();
    assert_eq!(ok.len() as u64, REQUESTS, "every stream served");
    let uncached: f64 = ok
        .iter()
        .map(|r| {
            let u = r.usage.expect("usage");
            (u.prompt_tokens() - u.cache_read_input_tokens) as f64
        })
        .sum::<f64>()
        / ok.len() as f64;
    Measured {
        metrics: MetricsCollector::analyze(&run.results),
        uncached_tokens: uncached,
    }
}

/// Whether the measured figures agree with `decode` and `prefill` (tokens/s) within the
/// tolerances stated in the module docs; the reasons they do not, otherwise.
fn agrees(m: &Measured, decode: f64, prefill: f64) -> Result<(), Vec<String>> {
    let s = &m.metrics.serving;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let per_token = 1000.0 / decode;
    let tick = ms(TICK);
    let mut wrong = Vec::new();
    let tpot = ms(s.tpot.expect("TPOT measured").p50);
    if (tpot - per_token).abs() > 0.1 * per_token {
        wrong.push(format!(
            "TPOT p50 {tpot:.2} ms, expected {per_token:.2} ms ± 10%"
        ));
    }
    let itl = ms(s.itl.expect("ITL measured").p50);
    if (itl - per_token).abs() > tick + 2.0 {
        wrong.push(format!(
            "ITL p50 {itl:.2} ms, expected {per_token:.2} ms ± {:.0} ms",
            tick + 2.0
        ));
    }
    let ttft = ms(s.ttft.expect("TTFT measured").p50);
    let expected = 1000.0 * m.uncached_tokens / prefill + per_token;
    if ttft < expected - 5.0 || ttft > expected + tick + 20.0 {
        wrong.push(format!(
            "TTFT p50 {ttft:.1} ms, expected {expected:.1} ms ({:.0} uncached tokens at {prefill} tokens/s, then one token) from −5 to +{:.0} ms",
            m.uncached_tokens,
            tick + 20.0
        ));
    }
    if wrong.is_empty() { Ok(()) } else { Err(wrong) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "stress"),
    ignore = "stress test: cargo test --features stress"
)]
#[file_serial(stress)]
async fn tpot_itl_and_ttft_agree_with_the_configured_speeds() {
    let measured = measure().await;
    let s = &measured.metrics.serving;
    println!(
        "decode {DECODE} tokens/s, prefill {PREFILL} tokens/s, {:.0} uncached prompt tokens: TTFT {:?}, ITL {:?}, TPOT {:?}",
        measured.uncached_tokens,
        s.ttft.map(|t| t.p50),
        s.itl.map(|t| t.p50),
        s.tpot.map(|t| t.p50)
    );
    if let Err(wrong) = agrees(&measured, DECODE, PREFILL) {
        panic!(
            "measured figures disagree with the configured speeds:\n{}",
            wrong.join("\n")
        );
    }
    // The same measurement, compared with speeds the server was not given, must disagree:
    // the comparison can fail.
    let slow_decode = agrees(&measured, DECODE * 0.8, PREFILL).unwrap_err();
    assert!(
        slow_decode.iter().any(|w| w.starts_with("TPOT")),
        "{slow_decode:?}"
    );
    let slow_prefill = agrees(&measured, DECODE, PREFILL * 0.75).unwrap_err();
    assert!(
        slow_prefill.iter().any(|w| w.starts_with("TTFT")),
        "{slow_prefill:?}"
    );
}
