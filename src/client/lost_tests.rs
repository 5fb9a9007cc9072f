//! Which side lost a request: loopback servers that answer late, close after reading, stop
//! reading, answer before reading the body or close idle connections, and what the record
//! says for each (class, bound, connection use, message).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::loopback::{Script, Server, start};
use super::{Client, ClientConfig, Conn, Request, may_send_again};
use crate::{ConnectionUse, Delivery, Outcome, RequestResult};

/// Slack over a bound for scheduling on a loaded machine.
const SLACK: Duration = Duration::from_millis(750);

fn client(url: &str, timeout: Duration) -> Client {
    Client::new(ClientConfig {
        base_url: url.to_owned(),
        connections: 1,
        connect_timeout: Duration::from_secs(2),
        request_timeout: timeout,
        api_key: None,
        headers: Vec::new(),
        graceful_statuses: vec![429],
        text_limit: 0,
        ca_file: None,
        timing_truth: false,
        receive_delay: Duration::ZERO,
        policy: super::Policy::default(),
        stall_gap: crate::metrics::DEFAULT_STALL_GAP,
        limits: super::ResponseLimits::default(),
    })
    .expect("client")
}

async fn get(c: &Client, conn: &mut Conn) -> RequestResult {
    c.send_on(conn, &Request::get("/x"), Instant::now()).await
}

fn big() -> Request {
    Request::post_json("/x", &serde_json::json!({ "p": "a".repeat(8 << 20) }))
}

fn error(r: &RequestResult) -> &str {
    r.error.as_deref().unwrap_or("")
}

fn conns(s: &Server) -> usize {
    s.connections.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_late_answer_times_out_on_a_request_the_server_had() {
    let s = start(Script::Late(Duration::from_secs(3)));
    let timeout = Duration::from_millis(500);
    let c = client(&s.url(), timeout);
    let mut conn = Conn::new();
    let r = get(&c, &mut conn).await;
    assert_eq!(r.outcome, Outcome::Timeout, "{r:?}");
    assert!(r.latency() >= timeout && r.latency() < timeout + SLACK);
    let u = r.connection.clone().expect("connection use");
    assert_eq!(u.delivery(), Delivery::Whole);
    assert!(!u.reused && u.connected && u.request_bytes > 0);
    assert_eq!(u.response_bytes, 0);
    assert_eq!(
        error(&r),
        "no complete response within 0.5 s to a request written whole on a new connection, \
         no response byte: the server had it"
    );
    assert_eq!(s.requests.load(Ordering::SeqCst), 1);
    // The timed-out connection is never used again.
    let r = get(&c, &mut conn).await;
    assert!(!r.connection.expect("use").reused);
    assert_eq!(conns(&s), 2);
}

#[tokio::test]
async fn a_close_after_reading_is_a_connect_failure_on_a_request_the_server_had() {
    let s = start(Script::CloseOnRead(1));
    let c = client(&s.url(), Duration::from_secs(5));
    let mut conn = Conn::new();
    let r = get(&c, &mut conn).await;
    assert_eq!(r.outcome, Outcome::Connect, "{r:?}");
    assert!(r.latency() < SLACK);
    assert_eq!(
        r.connection.clone().expect("use").delivery(),
        Delivery::Whole
    );
    assert_eq!(
        error(&r),
        "connection closed before message completed; a request written whole on a new \
         connection, no response byte: the server had it and closed the connection without \
         answering"
    );
}

#[tokio::test]
async fn a_written_request_is_never_sent_again() {
    // The second request goes on the kept connection; the server reads it and closes.
    let s = start(Script::CloseOnRead(2));
    let c = client(&s.url(), Duration::from_secs(5));
    let mut conn = Conn::new();
    assert_eq!(get(&c, &mut conn).await.outcome, Outcome::Success);
    let r = get(&c, &mut conn).await;
    assert_eq!(r.outcome, Outcome::Connect, "{r:?}");
    assert!(r.latency() < SLACK);
    let u = r.connection.clone().expect("use");
    assert!(u.reused && u.requests_before == 1 && u.moved_from_reused.is_none());
    assert_eq!(u.delivery(), Delivery::Whole);
    assert!(
        error(&r).contains("a request written whole on a connection reused after 0.0 s idle (its 2nd request), no response byte: the server had it"),
        "{}",
        error(&r)
    );
    assert_eq!((s.requests.load(Ordering::SeqCst), conns(&s)), (2, 1));
}

#[tokio::test]
async fn a_body_the_server_stops_reading_times_out_written_in_part() {
    let s = start(Script::NeverRead);
    let timeout = Duration::from_millis(500);
    let c = client(&s.url(), timeout);
    let mut conn = Conn::new();
    let r = c.send_on(&mut conn, &big(), Instant::now()).await;
    assert_eq!(r.outcome, Outcome::Timeout, "{r:?}");
    assert!(r.latency() < timeout + SLACK);
    let u = r.connection.clone().expect("use");
    assert_eq!(u.delivery(), Delivery::Partly);
    assert!(u.request_bytes > 0 && u.request_bytes < 8 << 20);
    assert!(
        error(&r)
            .starts_with("no complete response within 0.5 s to a request written only in part (")
            && error(&r)
                .ends_with("on a new connection, no response byte: the server had part of it"),
        "{}",
        error(&r)
    );
}

#[tokio::test]
async fn a_connection_still_writing_its_last_request_is_not_reused() {
    // The server answers before reading an 8 MiB body and stops reading: the reply is whole,
    // the request is not. Reusing that connection would queue the next request behind the
    // unwritten body until the timeout.
    let s = start(Script::AnswerBeforeBody);
    let timeout = Duration::from_secs(2);
    let c = client(&s.url(), timeout);
    let mut conn = Conn::new();
    let r = c.send_on(&mut conn, &big(), Instant::now()).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(r.connection.expect("use").delivery(), Delivery::Partly);
    let r = get(&c, &mut conn).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(r.latency() < SLACK);
    assert!(!r.connection.expect("use").reused);
    assert_eq!(conns(&s), 2);
}

#[tokio::test]
async fn an_idle_close_seen_before_the_next_request_opens_a_new_connection() {
    let s = start(Script::IdleClose(Duration::from_millis(50)));
    let c = client(&s.url(), Duration::from_secs(5));
    let mut conn = Conn::new();
    assert_eq!(get(&c, &mut conn).await.outcome, Outcome::Success);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = get(&c, &mut conn).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let u = r.connection.expect("use");
    assert!(!u.reused && u.moved_from_reused.is_none());
    assert_eq!((s.requests.load(Ordering::SeqCst), conns(&s)), (2, 2));
}

#[tokio::test]
async fn a_close_right_after_the_answer_is_seen_before_the_next_request() {
    // The close arrives with the answer: the connection is not reused.
    let s = start(Script::CloseAfterAnswer);
    let c = client(&s.url(), Duration::from_secs(5));
    let mut conn = Conn::new();
    for _ in 0..5 {
        let r = get(&c, &mut conn).await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        assert!(!r.connection.expect("use").reused);
        // Time for the close to arrive (the test is about a close that has arrived; one
        // that crosses the next request is `an_idle_close_unseen_…`).
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(conns(&s), 5);
}

#[tokio::test]
async fn an_idle_close_unseen_when_the_request_is_written_is_not_sent_again() {
    let s = start(Script::IdleClose(Duration::from_millis(50)));
    let c = client(&s.url(), Duration::from_secs(5));
    let mut conn = Conn::new();
    assert_eq!(get(&c, &mut conn).await.outcome, Outcome::Success);
    // The server closes the idle connection while this thread cannot run the runtime: the
    // close is in the socket, unseen, when the next request is written.
    std::thread::sleep(Duration::from_millis(300));
    let r = get(&c, &mut conn).await;
    assert_eq!(r.outcome, Outcome::Connect, "{r:?}");
    assert!(r.latency() < SLACK);
    let u = r.connection.clone().expect("use");
    assert!(u.reused && u.moved_from_reused.is_none());
    assert_eq!(u.delivery(), Delivery::Whole);
    assert!(
        error(&r).contains(
            "; a request written whole on a connection reused after 0.3 s idle (its 2nd \
             request), no response byte: the server had it and closed the connection without \
             answering (a keep-alive close crossing"
        ),
        "{}",
        error(&r)
    );
    // Written, so not sent again; and the server dropped it unread.
    assert_eq!((s.requests.load(Ordering::SeqCst), conns(&s)), (1, 1));
}

#[test]
fn only_a_request_not_a_byte_of_which_was_written_goes_again() {
    let unwritten = ConnectionUse {
        reused: true,
        connected: true,
        requests_before: 3,
        ..ConnectionUse::default()
    };
    assert!(may_send_again(&unwritten));
    for not_again in [
        ConnectionUse {
            reused: false,
            ..unwritten.clone()
        },
        ConnectionUse {
            request_bytes: 1,
            ..unwritten.clone()
        },
        ConnectionUse {
            request_bytes: 73,
            request_written: true,
            ..unwritten.clone()
        },
        ConnectionUse {
            response_bytes: 5,
            ..unwritten.clone()
        },
        ConnectionUse {
            moved_from_reused: Some("closed".to_owned()),
            ..unwritten
        },
    ] {
        assert!(!may_send_again(&not_again), "{not_again:?}");
    }
}

#[tokio::test]
async fn no_connection_means_the_server_never_had_it() {
    // A port nothing listens on: bind, read the port, close.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let c = client(&format!("http://{addr}"), Duration::from_secs(5));
    let mut conn = Conn::new();
    let r = get(&c, &mut conn).await;
    assert_eq!(r.outcome, Outcome::Connect, "{r:?}");
    let u = r.connection.clone().expect("use");
    assert!(!u.connected && u.delivery() == Delivery::Never);
    assert!(
        error(&r).ends_with(
            "; no connection was established, the request was never written: the server never had it"
        ),
        "{}",
        error(&r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_close_races_end_at_once_and_say_which_side() {
    // Ten workers send at about the server's idle close (40 ms): every request ends within
    // milliseconds, a success or a connect failure that says what was written.
    let s = start(Script::IdleClose(Duration::from_millis(40)));
    let c = client(&s.url(), Duration::from_secs(3));
    let mut tasks = Vec::new();
    for w in 0..10u64 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new();
            let mut out = Vec::new();
            for i in 0..20u64 {
                out.push(get(&c, &mut conn).await);
                let jitter = (w * 977 + i * 331) % 4000;
                tokio::time::sleep(Duration::from_micros(38_000 + jitter)).await;
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    assert_eq!(all.len(), 200);
    for r in &all {
        assert!(r.latency() < SLACK, "{r:?}");
        let u = r.connection.as_ref().expect("use");
        match r.outcome {
            Outcome::Success => assert_eq!(u.delivery(), Delivery::Whole),
            Outcome::Connect => {
                // Only a request of which some byte was written fails: the others go again.
                assert_ne!(u.delivery(), Delivery::Never, "{r:?}");
                assert!(error(r).contains("the server had"), "{r:?}");
            }
            other => panic!("unexpected {other}: {r:?}"),
        }
    }
    assert!(all.iter().any(|r| r.outcome == Outcome::Success));
    // A request that went again did so once, from a reused connection to a new one.
    for r in all.iter().filter(|r| {
        r.connection
            .as_ref()
            .is_some_and(|u| u.moved_from_reused.is_some())
    }) {
        let u = r.connection.as_ref().expect("use");
        assert!(!u.reused && r.outcome == Outcome::Success, "{r:?}");
    }
}
