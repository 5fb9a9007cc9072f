//! The harness against a hostile or broken server: every behaviour of the chaos target
//! (`reference_server::chaos`, the code of the `chaos-server` binary, started in each test)
//! ends as a failure of a named class, within its bound, with the harness's memory bounded,
//! and without stalling the other requests of the run. Each test is one row of
//! `docs/hostile.md`.
//!
//! Fast (seconds), so not gated behind the `stress` feature: `cargo test --test hostile`.

use std::time::{Duration, Instant};

use reference_server::chaos::{ChaosConfig, ChaosServer};

use semantic_stress::anthropic::{Message, MessagesRequest};
use semantic_stress::{
    Load, Outcome, Request, RequestResult, ResponseLimits, Stop, StressConfig, StressHarness,
    process_rss_bytes,
};

/// The request timeout of these tests: the outer bound of every exchange.
const TIMEOUT: Duration = Duration::from_millis(1500);
/// Slack on top of a bound for scheduling on a loaded machine.
const SLACK: Duration = Duration::from_millis(1500);

/// A chaos target for one test, on this test's runtime (its writes are lazy: a 100 MiB event
/// costs it one 64 KiB buffer, so it does not blur the harness's memory figures).
async fn chaos() -> ChaosServer {
    ChaosServer::start(ChaosConfig::default())
        .await
        .expect("start the chaos target")
}

fn body(stream: bool) -> MessagesRequest {
    let mut body = MessagesRequest::new("test-model", vec![Message::user("hello")], 16);
    body.stream = stream;
    body
}

/// A harness whose requests all play `case`.
fn harness(chaos: &ChaosServer, case: &str, limits: ResponseLimits) -> StressHarness {
    let config = StressConfig::new(format!("{}/chaos/{case}", chaos.base_url()))
        .workers(1)
        .timeout(TIMEOUT)
        .limits(limits);
    StressHarness::new(config).expect("valid config")
}

/// Sends `n` requests on one worker (one connection) with `limits`; returns the records and
/// how long the run took.
async fn play_n(
    case: &str,
    stream: bool,
    n: u64,
    limits: ResponseLimits,
) -> (Vec<RequestResult>, Duration) {
    let chaos = chaos().await;
    let h = harness(&chaos, case, limits);
    let request = Request::messages(&body(stream));
    let started = Instant::now();
    let run = h
        .run(Load::closed(1, Stop::requests(n)), move |_| request.clone())
        .await
        .expect("valid load");
    assert_eq!(run.results.len() as u64, n, "every request recorded once");
    (run.results, started.elapsed())
}

/// One request playing `case`: asserts its class, that its error names `detail`, and that it
/// ended within `bound` (plus slack).
async fn expect_case(
    case: &str,
    stream: bool,
    limits: ResponseLimits,
    outcome: Outcome,
    detail: &str,
    bound: Duration,
) -> RequestResult {
    let (mut results, took) = play_n(case, stream, 1, limits).await;
    let r = results.pop().expect("one record");
    assert_eq!(r.outcome, outcome, "{case} (stream {stream}): {r:?}");
    let error = r.error.clone().unwrap_or_default();
    assert!(
        error.contains(detail),
        "{case} (stream {stream}): error {error:?} should name {detail:?}"
    );
    assert!(
        took < bound + SLACK,
        "{case} (stream {stream}) took {took:?}, bound {bound:?}"
    );
    r
}

fn defaults() -> ResponseLimits {
    ResponseLimits::default()
}

/// Quick cases: the response ends (or breaks) at once; the bound is the request timeout.
async fn protocol(case: &str, stream: bool, detail: &str) -> RequestResult {
    expect_case(case, stream, defaults(), Outcome::Protocol, detail, TIMEOUT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_reply_is_a_success() {
    for stream in [false, true] {
        let (results, _) = play_n("ok", stream, 3, defaults()).await;
        assert!(
            results.iter().all(|r| r.outcome == Outcome::Success),
            "{results:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_a_status_line_is_protocol() {
    let r = protocol("garbage", false, "response head is not HTTP").await;
    assert_eq!(r.status, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_line_then_silence_times_out() {
    expect_case(
        "status-then-silence",
        false,
        defaults(),
        Outcome::Timeout,
        "no complete response within 1.5 s",
        TIMEOUT,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_never_end_hit_the_head_bound() {
    protocol(
        "endless-headers",
        false,
        "response head larger than 65536 bytes",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_mib_header_hits_the_head_bound() {
    protocol(
        "huge-header",
        false,
        "response head larger than 65536 bytes",
    )
    .await;
    // Raised over 1 MiB, the same reply is read whole and is a success.
    let limits = ResponseLimits {
        head_bytes: 2 << 20,
        ..defaults()
    };
    let (results, _) = play_n("huge-header", false, 1, limits).await;
    assert_eq!(results[0].outcome, Outcome::Success, "{:?}", results[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_longer_than_its_length_is_protocol() {
    protocol(
        "body-longer-than-length",
        false,
        "2xx body is not a message",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_its_length_is_protocol() {
    protocol("body-shorter-than-length", false, "body cut short").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_chunked_encoding_is_protocol() {
    protocol("broken-chunked", false, "body cut short").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_a_200_is_protocol() {
    protocol("invalid-utf8", false, "2xx body is not a message").await;
    protocol("invalid-utf8", true, "event is not valid UTF-8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_in_a_200_is_protocol() {
    protocol("invalid-json", false, "2xx body is not a message").await;
    protocol("invalid-json", true, "malformed content_block_delta event").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_never_ends_is_cut_by_its_length_or_the_timeout() {
    let limits = ResponseLimits {
        stream_events: 50,
        ..defaults()
    };
    // 50 events at one per 10 ms: about half a second.
    let r = expect_case(
        "endless-stream",
        true,
        limits,
        Outcome::Protocol,
        "stream longer than 50 events",
        Duration::from_millis(500),
    )
    .await;
    assert!(r.chunks > 0 && r.first_token_at.is_some(), "{r:?}");
    // With the default length bound, the request timeout ends it.
    expect_case(
        "endless-stream",
        true,
        defaults(),
        Outcome::Timeout,
        "no complete response",
        TIMEOUT,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_drips_a_byte_a_second_hits_the_idle_bound() {
    let limits = ResponseLimits {
        stream_idle: Duration::from_millis(300),
        ..defaults()
    };
    expect_case(
        "drip",
        true,
        limits,
        Outcome::Timeout,
        "stream idle for 0.3 s",
        Duration::from_millis(1300),
    )
    .await;
    // A non-streamed body has no idle bound: the request timeout ends it.
    expect_case(
        "drip",
        false,
        limits,
        Outcome::Timeout,
        "no complete response",
        TIMEOUT,
    )
    .await;
}

/// Peak growth of this process's resident memory while `work` runs, sampled every 5 ms.
async fn rss_growth<F: std::future::Future>(work: F) -> (F::Output, u64) {
    let pid = std::process::id();
    let before = process_rss_bytes(pid).expect("own RSS");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(process_rss_bytes(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let out = work.await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().expect("sampler thread");
    (out, peak.saturating_sub(before))
}

/// Growth of the harness's memory allowed while it meets a 100 MiB event: the event bound
/// (1 MiB) and the body bound (8 MiB) with room for the other tests of this process.
const RSS_GROWTH_BOUND: u64 = 48 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_of_100_mib_hits_the_event_bound_with_memory_bounded() {
    let ((results, took), growth) = rss_growth(play_n("huge-event", true, 1, defaults())).await;
    let r = &results[0];
    assert_eq!(r.outcome, Outcome::Protocol, "{r:?}");
    let error = r.error.as_deref().unwrap_or_default();
    assert!(error.contains("event larger than 1048576 bytes"), "{error}");
    assert!(took < TIMEOUT + SLACK, "took {took:?}");
    eprintln!("100 MiB event: harness RSS +{} KiB, {took:?}", growth >> 10);
    assert!(
        growth < RSS_GROWTH_BOUND,
        "harness RSS grew {} MiB reading a 100 MiB event",
        growth >> 20
    );
    // The same 100 MiB as one non-streamed body: the body bound.
    let ((results, _), growth) = rss_growth(play_n("huge-event", false, 1, defaults())).await;
    assert_eq!(results[0].outcome, Outcome::Protocol, "{:?}", results[0]);
    let error = results[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("body larger than 8388608 bytes"), "{error}");
    eprintln!("100 MiB body: harness RSS +{} KiB", growth >> 10);
    assert!(growth < RSS_GROWTH_BOUND, "grew {} MiB", growth >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_on_a_body_that_is_not_gzip_is_protocol() {
    for stream in [false, true] {
        protocol("fake-gzip", stream, "content-encoding \"gzip\"").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_with_a_close_delimited_body_is_a_success() {
    for stream in [false, true] {
        let (results, _) = play_n("http10-close", stream, 2, defaults()).await;
        assert!(
            results.iter().all(|r| r.outcome == Outcome::Success),
            "{results:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_loop_is_not_followed() {
    let (results, took) = play_n("redirect-loop", false, 3, defaults()).await;
    for r in &results {
        assert_eq!((r.outcome, r.status), (Outcome::Protocol, 302), "{r:?}");
    }
    assert!(
        took < TIMEOUT,
        "three redirects answered at once, took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informational_replies_before_the_real_one_are_skipped() {
    for stream in [false, true] {
        let (results, _) = play_n("informational", stream, 2, defaults()).await;
        for r in &results {
            assert_eq!((r.outcome, r.status), (Outcome::Success, 200), "{r:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_after_the_headers_is_protocol() {
    let r = protocol("reset-after-headers", false, "body cut short").await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_before_the_body_was_read_is_recorded_as_sent() {
    let r = expect_case(
        "early-reply",
        false,
        defaults(),
        Outcome::ClientError,
        "413 request_too_large",
        TIMEOUT,
    )
    .await;
    assert_eq!(r.status, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reply_to_a_previous_request_is_not_taken_for_this_one() {
    for stream in [false, true] {
        let (results, _) = play_n("stale-reply", stream, 3, defaults()).await;
        let classes: Vec<Outcome> = results.iter().map(|r| r.outcome).collect();
        // The second reply repeats the first: refused, and its connection dropped; the third
        // request goes on a new connection and gets a reply of its own.
        assert_eq!(
            classes,
            [Outcome::Success, Outcome::Protocol, Outcome::Success],
            "{results:?}"
        );
        let error = results[1].error.as_deref().unwrap_or_default();
        assert!(error.contains("stale reply"), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_naming_another_model_is_a_success() {
    // Real servers name their own model, never the requested one: not a failure.
    let (results, _) = play_n("wrong-model", false, 2, defaults()).await;
    assert!(
        results.iter().all(|r| r.outcome == Outcome::Success),
        "{results:?}"
    );
}

/// The hostile cases that hold a worker longest: each until the request timeout.
const STALLING: [&str; 4] = [
    "status-then-silence",
    "endless-stream",
    "drip",
    "endless-headers",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_never_stall_the_other_workers() {
    // 8 workers, 80 requests: every 8th plays a stalling case, the others are valid.
    const N: u64 = 80;
    const EVERY: u64 = 8;
    let chaos = chaos().await;
    let config = StressConfig::new(chaos.base_url())
        .workers(8)
        .timeout(TIMEOUT)
        .limits(defaults());
    let h = StressHarness::new(config).expect("valid config");
    let started = Instant::now();
    let run = h
        .run(Load::closed(8, Stop::requests(N)), |slot| {
            let mut request = Request::messages(&body(slot.index % 2 == 1));
            if slot.index % EVERY == 0 {
                let case = STALLING[(slot.index / EVERY) as usize % STALLING.len()];
                request.path = format!("/chaos/{case}/v1/messages");
            }
            request
        })
        .await
        .expect("valid load");
    let took = started.elapsed();
    assert_eq!(run.results.len() as u64, N);
    let hostile = run
        .results
        .iter()
        .filter(|r| r.outcome != Outcome::Success)
        .count() as u64;
    assert_eq!(hostile, N / EVERY, "only the hostile requests fail");
    // 10 stalls of at most 1.5 s over 8 workers: the others went on meanwhile.
    assert!(
        took < TIMEOUT * 3 + SLACK,
        "the run took {took:?}: hostile connections stalled the pool"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chaos_target_lets_go_when_its_client_leaves() {
    let target = chaos().await;
    let cases = [
        "status-then-silence",
        "endless-stream",
        "endless-headers",
        "huge-event",
        "drip",
    ];
    let mut runs = Vec::new();
    for case in cases {
        let config = StressConfig::new(format!("{}/chaos/{case}", target.base_url()))
            .workers(1)
            .timeout(Duration::from_millis(500));
        let h = StressHarness::new(config).expect("valid config");
        let request = Request::messages(&body(true));
        runs.push(async move {
            h.run(Load::closed(1, Stop::requests(1)), move |_| request.clone())
                .await
                .expect("valid load")
        });
    }
    for run in futures_join(runs).await {
        assert_ne!(run.results[0].outcome, Outcome::Success);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while target.open_connections() > 0 {
        assert!(
            Instant::now() < deadline,
            "the chaos target still holds {} connections",
            target.open_connections()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the futures at once and returns their outputs in order.
async fn futures_join<F: std::future::Future + Send + 'static>(futures: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}
