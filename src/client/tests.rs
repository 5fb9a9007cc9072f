//! Arbitrary bytes as a reply: whatever a server sends, the client returns one record, in
//! time, whose class agrees with what it says.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::classify::{classify_failure, retry_after};
use super::{Client, ClientConfig, Conn, Request, ResponseLimits};
use crate::Outcome;
use crate::anthropic::{Message, MessagesRequest};

const TIMEOUT: Duration = Duration::from_secs(2);

/// Replies that reach every branch of the reader: random bytes, and HTTP heads with random
/// statuses and framing before random or event-stream-shaped bodies.
fn reply_bytes() -> impl Strategy<Value = Vec<u8>> {
    let status = prop_oneof![
        Just(200u16),
        Just(429),
        Just(503),
        Just(302),
        Just(100),
        100u16..600
    ];
    let header = prop_oneof![
        Just("content-type: text/event-stream".to_owned()),
        Just("content-type: application/json".to_owned()),
        Just("transfer-encoding: chunked".to_owned()),
        Just("content-encoding: gzip".to_owned()),
        Just("retry-after: 1".to_owned()),
        Just("connection: close".to_owned()),
        (0usize..300).prop_map(|n| format!("content-length: {n}")),
        "[a-z-]{1,10}: [ -~]{0,20}",
    ];
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        Just(
            br#"{"type":"error","error":{"type":"overloaded_error","message":"full"}}"#.to_vec()
        ),
        Just(
            br#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"model":"m","stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":2}}"#
                .to_vec()
        ),
        proptest::collection::vec(
            prop_oneof![
                Just("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":3}}}\n\n"),
                Just("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\"}}\n\n"),
                Just("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":1}}\n\n"),
                Just("event: message_stop\ndata: {}\n\n"),
                Just("event: error\ndata: {\"error\":{\"type\":\"x\",\"message\":\"y\"}}\n\n"),
                Just(": ping\n"),
                Just("data: {broken\n\n"),
            ],
            0..8
        )
        .prop_map(|events| events.concat().into_bytes()),
    ];
    let http = (status, proptest::collection::vec(header, 0..5), body).prop_map(
        |(status, headers, body)| {
            let mut out = format!("HTTP/1.1 {status} X\r\n");
            for h in headers {
                out.push_str(&h);
                out.push_str("\r\n");
            }
            out.push_str("\r\n");
            let mut out = out.into_bytes();
            out.extend_from_slice(&body);
            out
        },
    );
    prop_oneof![1 => proptest::collection::vec(any::<u8>(), 0..200), 4 => http]
}

/// Serves `reply` to the first request on a fresh loopback listener, then closes.
async fn serve_once(reply: Vec<u8>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let mut buf = [0_u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(&reply).await;
        let _ = s.shutdown().await;
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });
    addr
}

fn client(addr: std::net::SocketAddr) -> Client {
    Client::new(ClientConfig {
        base_url: format!("http://{addr}"),
        connections: 1,
        connect_timeout: TIMEOUT,
        request_timeout: TIMEOUT,
        api_key: None,
        headers: Vec::new(),
        graceful_statuses: vec![429, 503],
        text_limit: 64,
        stall_gap: crate::metrics::DEFAULT_STALL_GAP,
        ca_file: None,
        timing_truth: false,
        receive_delay: Duration::ZERO,
        policy: super::Policy::default(),
        limits: ResponseLimits {
            stream_idle: Duration::from_millis(500),
            ..ResponseLimits::default()
        },
    })
    .expect("valid config")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_reply_becomes_one_consistent_record_in_time(
        reply in reply_bytes(),
        stream in any::<bool>(),
        own_conn in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let r = rt.block_on(async {
            let client = client(serve_once(reply).await);
            let mut body = MessagesRequest::new("m", vec![Message::user("hi")], 8);
            body.stream = stream;
            let request = Request::messages(&body).keep_text();
            if own_conn {
                client.send_on(&mut Conn::new(), &request, Instant::now()).await
            } else {
                client.send(&request, Instant::now()).await
            }
        });
        prop_assert!(r.latency() < TIMEOUT + Duration::from_millis(500), "{:?}", r);
        prop_assert_eq!(r.outcome == Outcome::Success, r.error.is_none(), "{:?}", r);
        if r.outcome == Outcome::Success {
            prop_assert!((200..300).contains(&r.status), "{:?}", r);
        }
        if r.status == 0 {
            prop_assert!(
                matches!(r.outcome, Outcome::Connect | Outcome::Protocol | Outcome::Timeout),
                "{:?}", r
            );
        }
        if r.outcome == Outcome::Rejected {
            prop_assert!(r.retry_after.is_some() && r.error_type.is_some(), "{:?}", r);
        }
        prop_assert!(r.text.as_ref().is_none_or(|t| t.len() <= 64), "{:?}", r);
    }

    #[test]
    fn the_class_of_any_status_follows_the_contract(
        status in any::<u16>(),
        retry in any::<bool>(),
        envelope in any::<bool>(),
        graceful in proptest::collection::vec(any::<u16>(), 0..4),
    ) {
        let class = classify_failure(status, retry, envelope, &graceful);
        let expected = if graceful.contains(&status) && retry && envelope {
            Outcome::Rejected
        } else if (400..500).contains(&status) {
            Outcome::ClientError
        } else if status >= 500 {
            Outcome::ServerError
        } else {
            Outcome::Protocol
        };
        prop_assert_eq!(class, expected);
    }

    #[test]
    fn any_retry_after_is_whole_seconds_of_at_least_one(value in ".{0,30}") {
        if let Some(d) = retry_after(&value) {
            prop_assert!(d >= Duration::from_secs(1) && d.subsec_nanos() == 0);
        }
    }
}

#[test]
fn the_policy_names_the_agent_header_and_closes_streams_only() {
    use super::transport::{Endpoint, Policy};
    let tls = super::tls::config(None).expect("default roots");
    let policy = Policy {
        agent_header: http::HeaderName::from_static("x-conversation"),
        close_after_stream: true,
    };
    let endpoint = Endpoint::new("http://127.0.0.1:9", None, Vec::new(), policy, &tls)
        .expect("valid endpoint");
    let mut body = MessagesRequest::new("m", vec![Message::user("hi")], 8);
    body.stream = true;
    let streamed = Request::messages(&body).session("sess-a");
    let built = endpoint
        .build(&streamed, "/v1/messages".parse().unwrap(), true)
        .expect("builds");
    assert_eq!(built.headers()["x-conversation"], "sess-a");
    assert!(built.headers().get("x-session-id").is_none());
    assert_eq!(built.headers()[http::header::CONNECTION], "close");
    body.stream = false;
    let whole = endpoint
        .build(
            &Request::messages(&body),
            "/v1/messages".parse().unwrap(),
            true,
        )
        .expect("builds");
    assert!(whole.headers().get(http::header::CONNECTION).is_none());
    // The default: X-Session-ID, connections kept.
    let default = Endpoint::new(
        "http://127.0.0.1:9",
        None,
        Vec::new(),
        Policy::default(),
        &tls,
    )
    .expect("valid endpoint");
    let built = default
        .build(&streamed, "/v1/messages".parse().unwrap(), true)
        .expect("builds");
    assert_eq!(built.headers()["x-session-id"], "sess-a");
    assert!(built.headers().get(http::header::CONNECTION).is_none());
}
